"""test_redis_outage.py - Redis hung (SIGSTOP), killed, restarted, or never there: the service
keeps being served from L1 (what L1 wrote itself; L1 copies of Redis values stop being served
within link_lease_ms, docs/l2.md "Coherence"), nothing raises, every call is bounded in time, the
outage is logged once, and the tier comes back by itself."""
import asyncio
import logging
import time

import pytest

from shmcache import CacheConfig, CacheManager, CacheTier, SyncCacheManager
from shmc_test_support import await_until, awrite_kept, wait_subscribed, wait_subscribed_sync

# redis_command_timeout 0.1 s (the default): one call waits at most that, once more with
# redis_retry_on_timeout, and the circuit breaker then fails calls at once. 0.5 s leaves room
# for a loaded CI machine.
BOUND = 0.5
# link_lease_ms (1 s by default): past it, no L1 copy of a Redis value is served; margin for CI.
LEASE = 1.5


def cfg(shm_name, redis_server, **kw):
    return CacheConfig(shm_name=shm_name, shm_size=4 << 20, redis_url=redis_server.url,
                       enable_monitoring=False, **kw)


async def timed(coro):
    t = time.monotonic()
    result = await coro
    return result, time.monotonic() - t


@pytest.mark.parametrize("fault", ["stop", "kill"])
@pytest.mark.asyncio
async def test_redis_down_gets_serve_l1_and_sets_write_l1(shm_name, redis_server, fault, caplog):
    async with CacheManager(cfg(shm_name, redis_server)) as cache:
        await wait_subscribed(cache)
        await cache.set("before", "cached before the outage")
        await cache.set("local", "written to L1 only", tier=CacheTier.L1)
        getattr(redis_server, fault)()
        t_fault = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="shmcache"):
            # An L1 hit does not involve Redis at all.
            value, took = await timed(cache.get("local"))
            assert value == "written to L1 only" and took < BOUND
            # The L1 copy of a Redis value: nobody vouches for it once the link is down (another
            # host may be writing), so within the lease it is a miss, bounded and quiet.
            value, took = await timed(cache.get("before"))
            assert value in ("cached before the outage", None) and took < BOUND
            await asyncio.sleep(max(0.0, LEASE - (time.monotonic() - t_fault)))
            value, took = await timed(cache.get("before"))
            assert value is None and took < BOUND
            for i in range(10):
                # Misses: bounded, no exception, the default comes back.
                value, took = await timed(cache.get(f"absent:{i}", "default"))
                assert value == "default" and took < BOUND, took
                # Sets: L1 is written (True, kept for outage_write_ttl_ms: 1 s), the Redis write
                # is dropped, nothing raises.
                stored, took = await timed(cache.set(f"during:{i}", i))
                assert stored is True and took < BOUND, took
                assert await cache.get(f"during:{i}") == i
            deleted, took = await timed(cache.delete("during:0"))
            assert took < BOUND and await cache.get("during:0") is None
            removed, took = await timed(cache.clear_pattern("during:*"))
            assert removed == 9 and took < BOUND  # L1 purged; L2 purge failed and was logged
        outage_warnings = [r for r in caplog.records if "redis" in r.getMessage()
                           and r.levelno == logging.WARNING]
        assert len(outage_warnings) == 1, [r.getMessage() for r in outage_warnings]
        stats = await cache.get_stats()
        assert stats["l2_cache"]["connected"] is False and stats["l2_cache"]["errors"] >= 1
        assert stats["process"]["l2_unavailable"] >= 10
        assert stats["l2_detail"]["dropped_writes"] >= 10
        health, took = await timed(cache.health_check())
        assert health["status"] == "degraded" and health["l1"]["ok"] and took < BOUND
        if fault == "stop":
            redis_server.cont()


@pytest.mark.asyncio
async def test_the_tier_comes_back_after_a_restart(shm_name, redis_server, caplog):
    async with CacheManager(cfg(shm_name, redis_server)) as cache:
        redis_server.kill()
        for i in range(5):  # enough failures to open the circuit breaker
            await cache.get(f"x{i}")
        redis_server.restart()
        with caplog.at_level(logging.INFO, logger="shmcache"):
            async def redis_back():
                await cache.set("after", "back", tier=CacheTier.BOTH)
                return redis_server.client().get("after") is not None
            await await_until(redis_back, timeout=5, interval=0.1, what="Redis writes to resume")
        assert any("recovered" in r.getMessage() for r in caplog.records)
        assert (await cache.health_check())["status"] == "healthy"


@pytest.mark.asyncio
async def test_redis_absent_at_start_does_not_stop_the_service(shm_name, redis_server):
    redis_server.kill()
    cache = CacheManager(cfg(shm_name, redis_server))
    _, took = await timed(cache.start())  # does not connect
    try:
        assert took < BOUND
        assert await cache.set("k", 1) is True and await cache.get("k") == 1
        assert (await cache.health_check())["status"] == "degraded"
    finally:
        await cache.stop()


@pytest.mark.asyncio
async def test_a_hung_redis_does_not_block_the_event_loop(shm_name, redis_server):
    # While pool threads wait on a stopped Redis, the loop keeps serving L1 hits.
    async with CacheManager(cfg(shm_name, redis_server, redis_command_timeout=0.4,
                                redis_retry_on_timeout=False)) as cache:
        await wait_subscribed(cache)
        # Kept in L1 (shmc_test_support.write_kept) before Redis hangs.
        await awrite_kept(lambda: cache.set("hot", 1), shm_name, b"hot")
        redis_server.stop()
        try:
            slow = asyncio.ensure_future(cache.get("cold"))  # waits ~0.4 s in a pool thread
            await asyncio.sleep(0.02)
            t = time.monotonic()
            for _ in range(100):
                assert await cache.get("hot") == 1
            assert time.monotonic() - t < 0.2 and not slow.done()
            assert await slow is None
        finally:
            redis_server.cont()


def test_sync_manager_with_redis_down(shm_name, redis_server):
    with SyncCacheManager(cfg(shm_name, redis_server)) as cache:
        wait_subscribed_sync(cache)  # before writing: subscribing drops L1 copies of L2 values
        cache.set("k", "v", tier=CacheTier.L1)
        redis_server.stop()
        try:
            for i in range(5):
                t = time.monotonic()
                assert cache.get("k") == "v"  # written to L1 only: served whatever the link
                assert cache.get(f"missing{i}", 0) == 0
                assert cache.set(f"n{i}", i) is True
                assert time.monotonic() - t < 2 * BOUND
            assert cache.health_check()["status"] == "degraded"
        finally:
            redis_server.cont()
