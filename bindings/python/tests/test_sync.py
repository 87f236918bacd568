"""test_sync.py - SyncCacheManager (Flask, Django, scripts) and CacheManager.sync, in both modes;
thread safety; the monitor thread."""
import concurrent.futures
import logging

import pytest

from shmcache import CacheManager, CacheTier, KeyTooLongError, ShmcacheError, SyncCacheManager


def test_the_same_methods_without_async(config_for, mode):
    with SyncCacheManager(config_for()) as cache:
        assert cache.get("k") is None and cache.get("k", 1) == 1
        assert cache.set("k", {"v": 1}, ttl=60) is True
        assert cache.get("k") == {"v": 1} and cache.exists("k")
        assert cache.set("user_profile:1", 1) and cache.set("user_profile:2", 2)
        assert cache.clear_pattern("user_profile:*") == 2
        assert cache.delete("k") is True and not cache.exists("k")
        stats = cache.get_stats()
        assert set(stats["l1_cache"]) == {"hits", "misses", "hit_rate", "size", "max_size"}
        assert stats["l2_cache"]["connected"] is (mode == "l1+l2")
        assert cache.health_check()["status"] == "healthy"
        assert cache.warm_cache([("w:1", 1), ("w:2", 2, 30)]) == 2
        assert cache.get("w:2") == 2
        with pytest.raises(KeyTooLongError):
            cache.set("k" * 5000, 1)


def test_a_get_with_both_tiers_is_one_library_call_and_fills_l1(config_for, mode):
    with SyncCacheManager(config_for()) as cache:
        cache.set("x", 1)
        cache.delete("x", tier=CacheTier.L1)
        expected = 1 if mode == "l1+l2" else None
        assert cache.get("x") == expected
        assert cache.get_stats()["process"]["hits_l2"] == (1 if expected else 0)


@pytest.mark.asyncio
async def test_manager_sync_shares_the_handle(config_for):
    cache = CacheManager(config_for())
    await cache.start()
    try:
        assert cache.sync is cache.sync
        cache.sync.set("shared", [1, 2])
        assert await cache.get("shared") == [1, 2]
        await cache.set("back", "x")
        assert cache.sync.get("back") == "x"
    finally:
        await cache.stop()
    with pytest.raises(ShmcacheError, match="stopped"):
        cache.sync.get("shared")


def test_many_threads_share_one_manager(config_for):
    # No entry limit: with the default 1000 (250 per stripe), eviction could take a value
    # between its set and its get, which is a cache doing its job, not a failure.
    with SyncCacheManager(config_for(memory_cache_size=0)) as cache:
        def work(t):
            for i in range(200):
                cache.set(f"t{t}:{i}", {"t": t, "i": i})
                assert cache.get(f"t{t}:{i}") == {"t": t, "i": i}
            return t

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            assert sorted(pool.map(work, range(8))) == list(range(8))
        assert cache.get_stats()["process"]["sets"] == 1600


def test_stop_waits_for_calls_in_flight(config_for):
    # Closing frees the C handle: it must not happen under a thread that is still inside a
    # call. Hammer the cache from threads while it stops; every call either completes or gets a
    # clean ShmcacheError, none crashes the process.
    cache = SyncCacheManager(config_for()).start()
    cache.set("k", "v" * 1000)
    outcomes = {"ok": 0, "stopped": 0}

    def hammer():
        while True:
            try:
                cache.get("k")
                outcomes["ok"] += 1
            except ShmcacheError:
                outcomes["stopped"] += 1
                return

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(hammer) for _ in range(4)]
        while outcomes["ok"] < 2000:
            pass
        cache.stop()
        for f in futures:
            f.result(timeout=10)
    assert outcomes["stopped"] == 4


def test_monitor_thread_logs_statistics(config_for, caplog):
    with caplog.at_level(logging.INFO, logger="shmcache.monitor"):
        cache = SyncCacheManager(config_for(enable_monitoring=True, monitor_interval=0.05))
        with cache:
            cache.set("a", 1)
            cache.get("a")
            from shmc_test_support import wait_until
            wait_until(lambda: cache._monitor.last is not None, what="a monitor reading")
    assert "L1 hit rate" in caplog.text
    assert cache._monitor is None  # stopped with the manager
