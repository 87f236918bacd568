"""test_prometheus.py - the Prometheus exposition: valid text format, HELP and TYPE for every
family, the CLI's names for L1, host-wide values, and the collector for prometheus_client's own
registry."""
import subprocess

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shmc_test_support import cli_path, write_kept
from shmcache import SyncCacheManager
from shmcache.prometheus import CacheCollector, exposition


def test_every_family_has_help_and_type_and_parses(config_for, mode):
    with SyncCacheManager(config_for()) as cache:
        # Kept in L1 (shmc_test_support.write_kept), for the L1 hit counted below.
        write_kept(lambda: cache.set("a", 1), cache.config.shm_name, b"a")
        cache.get("a")
        cache.get("b")
        text = exposition(cache.get_stats()).decode()
    lines = text.splitlines()
    families = list(text_string_to_metric_families(text))
    names = [f.name for f in families]
    assert len(names) == len(set(names))
    for f in families:
        sample_name = f.name + ("_total" if f.type == "counter" else "")
        assert f"# HELP {sample_name} " in text and f"# TYPE {sample_name} {f.type}" in lines
        assert f.samples and all("segment" in s.labels for s in f.samples)
    by_name = {f.name: f for f in families}
    assert by_name["shmcache_hits"].samples[0].value == 1
    assert by_name["shmcache_misses"].samples[0].value >= 1
    assert by_name["shmcache_entries"].samples[0].value == 1
    assert ("shmcache_l2_connected" in by_name) is (mode == "l1+l2")


def test_families_are_named_as_the_clis(config_for, mode):
    cfg = config_for()
    with SyncCacheManager(cfg) as cache:
        cache.set("a", 1)
        ours = {f.name for f in text_string_to_metric_families(
            exposition(cache.get_stats()).decode())}
        out = subprocess.run([cli_path(), "--name", cfg.shm_name, "stats", "--prometheus"],
                             capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    theirs = {f.name for f in text_string_to_metric_families(out.stdout)}
    if mode == "l1":
        # Without Redis the package has no L2 figures to show; the CLI shows the segment's
        # (zero) L2 counters anyway.
        theirs = {n for n in theirs if not n.startswith("shmcache_l2_")}
    # Everything the CLI exports for the segment, the application exports under the same name.
    assert theirs <= ours, sorted(theirs - ours)


def test_collector_on_a_registry_reads_at_each_scrape(config_for):
    with SyncCacheManager(config_for()) as cache:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(CacheCollector(cache))
        first = generate_latest(registry).decode()
        # Kept in L1 (shmc_test_support.write_kept), where it is counted below.
        write_kept(lambda: cache.set("new", 1), cache.config.shm_name, b"new")
        second = generate_latest(registry).decode()
    assert 'shmcache_entries{segment=' in first
    entries = [line for line in second.splitlines() if line.startswith("shmcache_entries{")]
    assert entries and entries[0].endswith(" 1.0")
