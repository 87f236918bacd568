"""stats.py - the get_stats() dictionary, built from the library's figures.

The shape the guide's dashboards expect comes first:

    {"l1_cache": {"hits", "misses", "hit_rate", "size", "max_size"},
     "l2_cache": {"hits", "misses", "hit_rate", "connected", "errors"},
     "total_hits", "total_misses", "total_sets"}

Every figure there is host-wide: L1 counters live in the segment and count what every process
of the host did (shmc_get_stats); L2 counters too (shmc_l2_get_stats); "connected" is this
process's view. hit_rate is a fraction between 0 and 1 (0.0 before any lookup).
  * l1_cache.size is the number of live entries, max_size the segment's entry limit
    (shmc_get_info; 0 = limited by memory only);
  * total_hits = L1 hits + L2 hits; total_misses = lookups that no tier answered (L2 misses with
    a Redis tier, L1 misses without); total_sets = values written to L1, not counting the L1
    copies of L2 hits.
  * With a Redis tier, a get that misses L1 asks L1 once more in the same call as Redis (so that
    a value another worker stored meanwhile is found): l1_cache.misses then counts such a lookup
    twice.

Extra keys: "segment" (memory, evictions, geometry), "l2_detail" (every L2 counter),
"process" (this manager's own counts in this process, see _telemetry.COUNTERS) and
"single_flight" (the host's shmc_fetch figures: leases, waits, stampedes avoided, stale values
served; docs/stampede.md).
"""
import os

from .config import CacheStrategy


def _rate(hits, misses):
    total = hits + misses
    return round(hits / total, 6) if total else 0.0


def build_stats(config, st, info, l2, process_counters, flight=None):
    """The get_stats() dict from shmc_stats, shmc_info, shmc_l2_stats (or None), the process's
    counters and shmc_flight_stats (or None)."""
    l1 = {
        "hits": st.hits,
        "misses": st.misses,
        "hit_rate": _rate(st.hits, st.misses),
        "size": st.entries,
        "max_size": info.max_entries,
    }
    if l2 is not None and l2.configured:
        l2_block = {
            "hits": l2.hits,
            "misses": l2.misses,
            "hit_rate": _rate(l2.hits, l2.misses),
            "connected": bool(l2.connected),
            "errors": l2.errors,
        }
        total_misses = l2.misses
        fills = l2.fills
    else:
        l2_block = {"hits": 0, "misses": 0, "hit_rate": 0.0, "connected": False, "errors": 0}
        total_misses = st.misses
        fills = 0
    return {
        "l1_cache": l1,
        "l2_cache": l2_block,
        "total_hits": l1["hits"] + l2_block["hits"],
        "total_misses": total_misses,
        "total_sets": max(0, st.sets - fills),
        "segment": segment_block(st, info),
        "l2_detail": l2_detail(config, l2),
        "process": dict(process_counters, pid=os.getpid()),
        "single_flight": flight_block(flight),
    }


def flight_block(flight):
    """The host's single-flight figures (shmc_fetch; docs/stampede.md), {} if unavailable."""
    if flight is None:
        return {}
    return {name: getattr(flight, name) for name, _ in flight._fields_ if name != "reserved"}


def segment_block(st, info):
    return {
        "name": info.name.decode("utf-8", "replace"),
        "size_bytes": info.size_bytes,
        "bytes_used": st.bytes_used,
        "bytes_capacity": st.bytes_capacity,
        "bytes_data": st.bytes_data,
        "entries": st.entries,
        "max_entries": info.max_entries,
        "max_value_len": info.max_value_len,
        "sets": st.sets,
        "deletes": st.deletes,
        "evictions": st.evictions,
        "expirations": st.expirations,
        "lock_timeouts": st.lock_timeouts,
        "lock_recoveries": st.lock_recoveries,
        "strategy": _strategy_name(info.strategy),
        "n_stripes": info.n_stripes,
        "attached": info.attached,
        "layout_version": info.layout_version,
    }


def l2_detail(config, l2):
    from .config import redact_url

    if l2 is None or not l2.configured:
        return {"configured": False}
    out = {"configured": True, "url": redact_url(config.redis_url)}
    for name, _ in l2._fields_:
        if name not in ("reserved", "reserved32", "configured"):
            value = getattr(l2, name)
            out[name] = bool(value) if name in ("connected", "breaker_open", "subscribed") \
                else value
    return out


def _strategy_name(value):
    try:
        return CacheStrategy(value).name
    except ValueError:
        return str(value)
