"""test_manager.py - CacheManager (async), every method, in L1-only mode and with Redis behind.

The mode fixture runs each test twice: "l1" (no Redis) and "l1+l2" (a real redis-server of the
test's own). Values are checked through the manager and, where it matters, through the segment
itself (RawSegment) or Redis (redis-py), so a test cannot pass by reading its own mistake back.
"""
import asyncio
import os
import time

import pytest

from shmcache import (BadPatternError, CacheManager, CacheTier, KeyTooLongError,
                      ShmcacheError, ValueTooLargeError, _ffi, _segment)
from shmc_test_support import RawSegment, awrite_kept, cli_path

STATS_SHAPE = {
    "l1_cache": {"hits", "misses", "hit_rate", "size", "max_size"},
    "l2_cache": {"hits", "misses", "hit_rate", "connected", "errors"},
}


@pytest.mark.asyncio
async def test_set_get_delete_exists(config_for):
    async with CacheManager(config_for()) as cache:
        assert await cache.get("user:1") is None
        assert await cache.get("user:1", default="d") == "d"
        assert await cache.set("user:1", {"name": "ada", "roles": ["x"]}) is True
        assert await cache.get("user:1") == {"name": "ada", "roles": ["x"]}
        assert await cache.exists("user:1") is True
        assert await cache.delete("user:1") is True
        assert await cache.delete("user:1") is False
        assert await cache.exists("user:1") is False
        assert await cache.get("user:1", default=0) == 0


@pytest.mark.parametrize("value", [
    "text", "", b"\x00bytes\xff", b"", 0, -7, 3.25, True, False, [1, "a", None],
    {"nested": {"list": [1, 2, 3], "none": None}}, "ünïcödé ✓"])
@pytest.mark.asyncio
async def test_values_round_trip(config_for, value):
    async with CacheManager(config_for()) as cache:
        await cache.set("v", value)
        got = await cache.get("v", default=KeyError)
        assert got == value and type(got) is type(value)


@pytest.mark.asyncio
async def test_a_stored_none_is_a_hit_not_the_default(config_for):
    async with CacheManager(config_for()) as cache:
        await cache.set("none", None)
        assert await cache.get("none", default="d") is None
        assert await cache.exists("none")


@pytest.mark.asyncio
async def test_the_value_is_serialized_when_set_is_called(config_for):
    # With Redis the write itself happens in a pool thread; the object is serialized before
    # that, so mutating it while the write is in flight does not change what is stored.
    async with CacheManager(config_for()) as cache:
        value = {"n": 1}
        task = asyncio.ensure_future(cache.set("m", value))
        await asyncio.sleep(0)  # the set runs up to its first real suspension
        value["n"] = 2
        assert await task is True
        assert await cache.get("m") == {"n": 1}


@pytest.mark.asyncio
async def test_ttl_expires_in_every_tier(config_for, mode):
    async with CacheManager(config_for()) as cache:
        await cache.set("short", "v", ttl=0.2)
        # Kept in L1 (shmc_test_support.write_kept): a copy read back from Redis has the L1 TTL.
        await awrite_kept(lambda: cache.set("forever", "v", ttl=0), cache.config.shm_name,
                          b"forever")
        assert await cache.get("short") == "v"
        await asyncio.sleep(0.3)
        assert await cache.get("short") is None  # gone from L1 and, with Redis, from L2 too
        assert await cache.get("forever") == "v"
        with RawSegment(cache.config.shm_name) as raw:
            assert raw.get(b"forever")[2] == -1  # ttl_left -1: never expires


@pytest.mark.asyncio
async def test_default_ttls_apply_per_tier(config_for, mode, request):
    async with CacheManager(config_for(memory_cache_ttl=0.2, redis_ttl=30)) as cache:
        # Kept in L1 (shmc_test_support.write_kept), where its TTL is read below.
        await awrite_kept(lambda: cache.set("k", "v"), cache.config.shm_name, b"k")
        with RawSegment(cache.config.shm_name) as raw:
            assert 0 < raw.get(b"k")[2] <= 200
        if mode == "l1+l2":
            redis = request.getfixturevalue("redis_server").client()
            assert 25_000 < redis.pttl("k") <= 30_000
        await asyncio.sleep(0.3)
        with RawSegment(cache.config.shm_name) as raw:
            assert raw.get(b"k") is None
        # With Redis the value is still there, and comes back from L2.
        assert await cache.get("k") == ("v" if mode == "l1+l2" else None)


@pytest.mark.asyncio
async def test_bad_ttls_raise(config_for):
    async with CacheManager(config_for()) as cache:
        with pytest.raises(ValueError, match=">= 0"):
            await cache.set("k", 1, ttl=-1)
        with pytest.raises(TypeError, match="seconds"):
            await cache.set("k", 1, ttl="60")
        assert not await cache.exists("k")


@pytest.mark.asyncio
async def test_oversized_keys_and_values_raise_clear_errors(config_for):
    async with CacheManager(config_for()) as cache:
        long_key = "k" * 5000
        for call in (cache.get(long_key), cache.set(long_key, 1), cache.delete(long_key)):
            with pytest.raises(KeyTooLongError) as e:
                await call
            assert e.value.code == _ffi.E_KEY_TOO_LONG and "4096" in e.value.message
        max_value = (await cache.get_stats())["segment"]["max_value_len"]
        if cache.core.has_l2:
            # Too large for L1 alone: Redis takes it; only an L1-only set refuses it.
            assert await cache.set("big", os.urandom(max_value + 1))
            assert await cache.exists("big", tier="l2") and not await cache.exists("big", "l1")
            await cache.delete("big")
        with pytest.raises(ValueTooLargeError) as e:
            await cache.set("big", os.urandom(max_value + 1), tier="l1")
        assert e.value.code == _ffi.E_VALUE_TOO_LARGE and "big" in e.value.message
        assert not await cache.exists("big")
        with pytest.raises(ValueTooLargeError, match="library's limit"):
            await cache.set("huge", b"x" * (_ffi.MAX_VALUE_LEN + 1))
        with pytest.raises(TypeError):
            await cache.get(123)
        with pytest.raises(ValueError, match="empty"):
            await cache.set("", 1)


@pytest.mark.asyncio
async def test_clear_pattern(config_for):
    async with CacheManager(config_for()) as cache:
        for i in range(5):
            await cache.set(f"user_profile:{i}", i)
        await cache.set("user_list:all", [1])
        await cache.set("user_profile", "exact, no colon")
        assert await cache.clear_pattern("user_profile:*") == 5
        assert await cache.get("user_profile:1") is None
        assert await cache.get("user_list:all") == [1]
        assert await cache.get("user_profile") == "exact, no colon"
        assert await cache.clear_pattern("nothing:*") == 0
        with pytest.raises(BadPatternError) as e:
            await cache.clear_pattern("user[")
        assert e.value.code == _ffi.E_BAD_PATTERN


@pytest.mark.asyncio
async def test_namespace_is_applied_to_keys_and_patterns(config_for, mode, request):
    cfg = config_for(key_prefix="app", key_separator=":")
    async with CacheManager(cfg) as cache, CacheManager(config_for(key_prefix="other")) as other:
        # Kept in L1 (shmc_test_support.write_kept), where it is read below.
        await awrite_kept(lambda: cache.set("user:1", "mine"), cfg.shm_name, b"app:user:1")
        await other.set("user:1", "theirs")
        with RawSegment(cfg.shm_name) as raw:
            assert raw.get(b"app:user:1") is not None and raw.get(b"user:1") is None
        if mode == "l1+l2":
            redis = request.getfixturevalue("redis_server").client()
            assert sorted(redis.keys("*")) == [b"app:user:1", b"other:user:1"]
        assert await cache.clear_pattern("*") == 1  # only this namespace
        assert await other.get("user:1") == "theirs"


@pytest.mark.asyncio
async def test_tiers_can_be_chosen_per_call(config_for, mode, request):
    async with CacheManager(config_for()) as cache:
        await cache.set("only-l1", 1, tier=CacheTier.L1)
        assert await cache.get("only-l1", tier="l1") == 1
        assert await cache.exists("only-l1", tier=CacheTier.L1)
        if mode == "l1":
            # No L2: asking only for it finds nothing and stores nothing.
            assert await cache.set("only-l2", 2, tier=CacheTier.L2) is False
            assert await cache.get("only-l1", tier=CacheTier.L2) is None
            return
        redis = request.getfixturevalue("redis_server").client()
        assert redis.get("only-l1") is None
        await cache.set("only-l2", 2, tier=CacheTier.L2)
        assert redis.get("only-l2") is not None
        assert not await cache.exists("only-l2", tier=CacheTier.L1)
        assert await cache.get("only-l2", tier=CacheTier.L2) == 2
        assert await cache.delete("only-l2", tier=CacheTier.L2) is True
        assert redis.get("only-l2") is None


@pytest.mark.asyncio
async def test_start_is_idempotent_stop_closes_and_start_reopens(config_for):
    cache = CacheManager(config_for())
    assert await cache.start() is cache
    assert await cache.start() is cache
    await cache.set("k", 1)
    await cache.stop()
    with pytest.raises(ShmcacheError, match="was stopped"):
        await cache.get("k")
    await cache.start()
    assert await cache.get("k") == 1  # the segment outlives its handles
    await cache.stop()
    await cache.stop()  # idempotent too


@pytest.mark.asyncio
async def test_calls_before_start_open_the_segment_on_first_use(config_for):
    cache = CacheManager(config_for())
    try:
        assert await cache.set("early", 1) and await cache.get("early") == 1
        assert os.path.exists(f"/dev/shm/{cache.config.shm_name}")
    finally:
        await cache.stop()


@pytest.mark.asyncio
async def test_get_stats_shape_and_figures(config_for, mode):
    async with CacheManager(config_for(memory_cache_size=500)) as cache:
        # Kept in L1 (shmc_test_support.write_kept), for the L1 hit below.
        writes = await awrite_kept(lambda: cache.set("a", 1), cache.config.shm_name, b"a")
        await cache.get("a")
        await cache.get("missing")
        stats = await cache.get_stats()
        assert {"l1_cache", "l2_cache", "total_hits", "total_misses", "total_sets"} <= set(stats)
        for block, keys in STATS_SHAPE.items():
            assert set(stats[block]) == keys
        l1 = stats["l1_cache"]
        assert l1["hits"] == 1 and l1["size"] == 1 and l1["max_size"] == 500
        assert 0 < l1["hit_rate"] < 1 and l1["misses"] >= 1
        assert stats["total_hits"] >= 1
        assert 1 <= stats["total_sets"] <= writes  # one per write whose L1 copy was stored
        assert stats["total_misses"] == 1
        assert stats["segment"]["name"] == cache.config.shm_name
        assert stats["segment"]["bytes_capacity"] > 0
        assert stats["process"]["gets"] == 2 and stats["process"]["pid"] == os.getpid()
        l2 = stats["l2_cache"]
        if mode == "l1":
            assert l2 == {"hits": 0, "misses": 0, "hit_rate": 0.0, "connected": False,
                          "errors": 0}
            assert stats["l2_detail"] == {"configured": False}
        else:
            assert l2["connected"] is True and l2["misses"] == 1 and l2["errors"] == 0
            assert stats["l2_detail"]["configured"] and stats["l2_detail"]["sets"] == writes


@pytest.mark.asyncio
async def test_health_check(config_for, mode):
    async with CacheManager(config_for()) as cache:
        report = await cache.health_check()
        assert report["status"] == "healthy" and report["l1"]["ok"] is True
        assert report["l2"]["configured"] is (mode == "l1+l2")
        assert report["l2"]["connected"] is (mode == "l1+l2")
    report = await cache.health_check()  # stopped: no segment to read
    assert report["status"] == "unhealthy" and report["l1"]["ok"] is False


@pytest.mark.asyncio
async def test_a_damaged_value_is_a_miss_and_is_deleted(config_for):
    async with CacheManager(config_for()) as cache:
        with RawSegment(cache.config.shm_name) as raw:
            raw.set(b"plain", b'{"written": "by a client without the envelope"}')
            raw.set(b"badjson", _segment.encode(_ffi.SER_JSON, b"{oops"))
            raw.set(b"badzstd", bytes([0xC5, 0x10 | _ffi.SER_JSON]) + b"\x28\xb5\x2f\xfdjunk")
            raw.set(b"reserved", bytes([0xC5, 0x20 | _ffi.SER_JSON]) + b"{}")  # reserved bit
            for key in (b"plain", b"badjson", b"badzstd", b"reserved"):
                assert await cache.get(key.decode(), "miss") == "miss"
                assert raw.get(key) is None, key
        assert (await cache.get_stats())["process"]["bad_envelopes"] == 4


@pytest.mark.parametrize("delta", [-1, 0, 1])
@pytest.mark.asyncio
async def test_compression_around_the_threshold_and_readable_by_the_cli(config_for, delta):
    import subprocess

    threshold = 2000
    cfg = config_for(compression_threshold=threshold)
    text = ("abcdefgh" * 1000)[:threshold + delta]  # compressible
    async with CacheManager(cfg) as cache:
        # Kept in L1 (shmc_test_support.write_kept), where they are read below.
        await awrite_kept(lambda: cache.set("doc", text), cfg.shm_name, b"doc")
        incompressible = os.urandom(threshold + 100)  # kept raw
        await awrite_kept(lambda: cache.set("noise", incompressible), cfg.shm_name, b"noise")
        assert await cache.get("doc") == text
        with RawSegment(cfg.shm_name) as raw:
            stored = raw.get(b"doc")[0]
            noise = raw.get(b"noise")[0]
        assert stored[0] == _ffi.ENVELOPE_MAGIC and stored[1] & 0x0F == _ffi.SER_STR
        compressed = bool(stored[1] & 0x10)
        assert compressed is (delta >= 0)
        assert len(stored) < len(text) if compressed else len(stored) == len(text) + 2
        assert noise[1] == _ffi.SER_RAW and len(noise) == threshold + 100 + 2
        out = subprocess.run([cli_path(), "--name", cfg.shm_name, "get", "doc"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert out.stdout.rstrip("\n") == text


@pytest.mark.asyncio
async def test_compression_can_be_turned_off(config_for):
    async with CacheManager(config_for(enable_compression=False)) as cache:
        # Kept in L1 (shmc_test_support.write_kept), where it is read below.
        await awrite_kept(lambda: cache.set("doc", "a" * 10_000), cache.config.shm_name, b"doc")
        with RawSegment(cache.config.shm_name) as raw:
            assert not raw.get(b"doc")[0][1] & 0x10


@pytest.mark.asyncio
async def test_many_concurrent_calls_on_one_loop(config_for):
    async with CacheManager(config_for()) as cache:
        await asyncio.gather(*(cache.set(f"c:{i}", i) for i in range(200)))
        got = await asyncio.gather(*(cache.get(f"c:{i}") for i in range(200)))
        assert got == list(range(200))


@pytest.mark.asyncio
async def test_l1_calls_do_not_wait_for_the_executor(config_for):
    # An L1 hit is served inline: even with Redis configured it does not queue behind a slow
    # Redis call in the pool.
    async with CacheManager(config_for()) as cache:
        await cache.set("hot", 1)
        t = time.perf_counter()
        for _ in range(2000):
            assert await cache.get("hot") == 1
        per_call = (time.perf_counter() - t) / 2000
        assert per_call < 200e-6, f"{per_call * 1e6:.1f} us per L1 hit"


@pytest.mark.asyncio
async def test_monitoring_logs_statistics_on_the_loop(config_for, caplog):
    import logging

    from shmc_test_support import await_until

    cfg = config_for(enable_monitoring=True, monitor_interval=0.05)
    with caplog.at_level(logging.INFO, logger="shmcache.monitor"):
        async with CacheManager(cfg) as cache:
            await cache.set("a", 1)

            async def read():
                return cache._monitor.last is not None
            await await_until(read, what="a monitor reading")
            task = cache._monitor._task
        assert task.done()  # stopped with the manager
    assert "L1 hit rate" in caplog.text


def test_monitoring_restarts_on_each_event_loop(config_for):
    # asyncio.run() cancels its loop's tasks when it returns: a manager started under one
    # loop and used under the next (a script, a forked worker) gets a new monitor task there.
    cache = CacheManager(config_for(enable_monitoring=True, monitor_interval=30))

    async def start_and_check():
        await cache.start()
        return cache._monitor.running

    assert asyncio.run(start_and_check()) is True
    assert cache._monitor.running is False  # that loop is gone
    assert asyncio.run(start_and_check()) is True
    asyncio.run(cache.stop())
