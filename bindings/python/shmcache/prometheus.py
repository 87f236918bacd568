"""prometheus.py - get_stats() as Prometheus metrics (text exposition format).

The L1 families have the names and meanings `shmcache-cli stats --prometheus` uses
(shmcache_hits_total, shmcache_entries, ...; see docs/cli.md), so one dashboard reads either
source. The Redis tier adds shmcache_l2_*, and this process's manager shmcache_process_*_total
with a `pid` label. Every sample carries `segment="<shm_name>"`.

Segment and L2 figures are host-wide: whichever worker a scrape reaches reports the same
numbers, which is what a multi-process server needs (a per-worker registry would show one
worker's share at random). Only shmcache_process_* and shmcache_l2_connected differ by worker.

Needs prometheus_client (Debian: python3-prometheus-client), imported only by this module.
"""
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ._ffi import library_version

# (stats["segment"] key, family name without _total, help) for counters, then gauges.
_SEGMENT_COUNTERS = (
    ("sets", "shmcache_sets", "Values stored, all processes."),
    ("deletes", "shmcache_deletes", "Keys removed by delete or purge, all processes."),
    ("evictions", "shmcache_evictions", "Live entries removed to make room."),
    ("expirations", "shmcache_expirations", "Expired entries reclaimed."),
    ("lock_recoveries", "shmcache_lock_recoveries",
     "Lock holders that died; their stripe was checked or rebuilt."),
    ("lock_timeouts", "shmcache_lock_timeouts", "Lock waits that gave up."),
)
_SEGMENT_GAUGES = (
    ("entries", "shmcache_entries", "Live entries."),
    ("bytes_used", "shmcache_used_bytes", "Memory held by entries, overhead included."),
    ("bytes_capacity", "shmcache_capacity_bytes", "Memory available for entries."),
    ("bytes_data", "shmcache_data_bytes", "Key and value bytes of the live entries."),
    ("size_bytes", "shmcache_segment_size_bytes", "Size of the segment."),
    ("max_value_len", "shmcache_max_value_bytes", "Largest value the segment accepts."),
    ("max_entries", "shmcache_max_entries", "Entry limit of the segment (0: memory only)."),
    ("attached", "shmcache_attached_handles", "Open handles of live processes."),
)
_L2_COUNTERS = (
    ("hits", "Redis lookups that found a value, all processes of this host."),
    ("misses", "Redis lookups that found nothing."),
    ("sets", "Values written to Redis."),
    ("deletes", "Keys removed from Redis."),
    ("errors", "Failed Redis calls (timeouts, connection errors, error replies)."),
    ("timeouts", "Failed Redis calls that timed out."),
    ("dropped_writes", "Writes to Redis not made (failure or open circuit breaker)."),
    ("breaker_opens", "Times a circuit breaker opened."),
    ("fills", "Redis hits copied into the shared memory."),
    ("invalidations_sent", "Invalidations published to other hosts."),
    ("invalidations_applied", "Invalidations from other hosts applied here."),
    ("resyncs", "Invalidation subscriptions (re)established."),
    ("resync_dropped", "Entries dropped by resyncs."),
)
_L2_GAUGES = (
    ("connected", "1 if this process's last Redis call succeeded."),
    ("breaker_open", "1 if this process's circuit breaker is open."),
    ("subscribed", "1 if a process of this host holds the invalidation subscription."),
    ("subscriber_pid", "The process holding this host's invalidation subscription (0: none)."),
)


_FLIGHT_GAUGES = {
    "leases_held": "Leases held now by a live owner before their deadline.",
    "leases_reclaimable": "Leases now held by a dead owner or past their deadline.",
    "lease_slots": "Lease slots in the segment.",
}


def metric_families(stats):
    """Prometheus metric families for one get_stats() result."""
    seg = stats["segment"]
    name = seg["name"]
    labels = ["segment"]

    def counter(family, doc, value, extra=None):
        m = CounterMetricFamily(family, doc, labels=labels + list(extra or {}))
        m.add_metric([name] + list((extra or {}).values()), value)
        return m

    def gauge(family, doc, value, extra=None):
        m = GaugeMetricFamily(family, doc, labels=labels + list(extra or {}))
        m.add_metric([name] + list((extra or {}).values()), value)
        return m

    l1 = stats["l1_cache"]
    yield counter("shmcache_hits", "Lookups that found a live value, all processes.", l1["hits"])
    yield counter("shmcache_misses", "Lookups that found no live value, all processes.",
                  l1["misses"])
    for key, family, doc in _SEGMENT_COUNTERS:
        yield counter(family, doc, seg[key])
    for key, family, doc in _SEGMENT_GAUGES:
        yield gauge(family, doc, seg[key])
    yield gauge("shmcache_info", "Always 1; the labels describe the segment.", 1,
                {"layout_version": str(seg["layout_version"]),
                 "library_version": library_version(), "strategy": seg["strategy"]})
    l2 = stats["l2_detail"]
    if l2.get("configured"):
        for key, doc in _L2_COUNTERS:
            yield counter(f"shmcache_l2_{key}", doc, l2[key])
        for key, doc in _L2_GAUGES:
            yield gauge(f"shmcache_l2_{key}", doc, int(l2[key]))
    # Named as shmcache-cli's: counters shmcache_flight_<figure>_total, the "now" figures gauges.
    for key, value in stats.get("single_flight", {}).items():
        if key in _FLIGHT_GAUGES:
            yield gauge(f"shmcache_flight_{key}", _FLIGHT_GAUGES[key], value)
        else:
            yield counter(f"shmcache_flight_{key}",
                          f"Single flight (shmc_fetch), all processes: {key.replace('_', ' ')}.",
                          value)
    proc = dict(stats["process"])
    pid = {"pid": str(proc.pop("pid"))}
    for key, value in proc.items():
        yield counter(f"shmcache_process_{key}", f"This process's manager: {key}.", value, pid)


class _Snapshot:
    """A collector over one stats dict (for a one-off exposition)."""

    def __init__(self, stats):
        self._stats = stats

    def collect(self):
        return metric_families(self._stats)


def exposition(stats):
    """The text exposition (bytes) of one get_stats() result."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(stats))
    return generate_latest(registry)


class CacheCollector:
    """A collector that reads a manager's statistics at each scrape; for applications that
    serve prometheus_client's registry themselves:
        prometheus_client.REGISTRY.register(CacheCollector(manager))
    It uses the synchronous path (scrapes run in prometheus_client's own thread)."""

    def __init__(self, manager):
        self._sync = manager.sync if hasattr(manager, "sync") else manager

    def collect(self):
        return metric_families(self._sync.get_stats())


__all__ = ["CONTENT_TYPE_LATEST", "exposition", "metric_families", "CacheCollector"]
