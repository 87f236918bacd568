"""test_guide_fidelity.py - the guide's code as its readers write it, and figures they can trust.

  * the guide's configuration-from-environment function, verbatim (CacheStrategy from a string);
  * the guide's L2-only configuration (enable_multi_tier=False, cache_tier=CacheTier.L2)
    caches in Redis and nowhere else;
  * memory_cache_size=N holds at most N entries and evicts nothing before N are stored;
  * statistics of a known sequence of calls, without and with Redis: each lookup counted once
    per tier it asked; l2_cache.connected true from start() for a healthy Redis; l2_cache.errors
    the errors of the recent window, not the host's lifetime;
  * results too large for the cache: returned, logged once, and never lost from Redis.
"""
import asyncio
import dataclasses
import logging
import os

import pytest

import shmcache._core
from shmc_test_support import awrite_kept, wait_subscribed, wait_until
from shmcache import (CacheConfig, CacheManager, CacheStrategy, CacheTier, SyncCacheManager,
                      ValueTooLargeError, _ffi)


# ---- the guide's configuration ---------------------------------------------------------------------
def get_cache_config() -> CacheConfig:
    """Get cache configuration from environment (the guide's function, verbatim)"""
    return CacheConfig(
        redis_url=os.getenv("REDIS_URL", "redis://localhost:6379"),
        memory_cache_size=int(os.getenv("MEMORY_CACHE_SIZE", "1000")),
        memory_cache_ttl=int(os.getenv("MEMORY_CACHE_TTL", "300")),
        memory_cache_strategy=CacheStrategy(os.getenv("CACHE_STRATEGY", "TTL")),
        enable_multi_tier=os.getenv("ENABLE_MULTI_TIER", "true").lower() == "true",
        enable_compression=os.getenv("ENABLE_COMPRESSION", "true").lower() == "true",
        enable_monitoring=os.getenv("ENABLE_CACHE_MONITORING", "true").lower() == "true",
        enable_cache_warming=os.getenv("ENABLE_CACHE_WARMING", "true").lower() == "true",
    )


@pytest.mark.asyncio
async def test_the_guides_environment_function_works_as_written(monkeypatch, redis_server,
                                                                 shm_name):
    for var in ("MEMORY_CACHE_SIZE", "MEMORY_CACHE_TTL", "CACHE_STRATEGY", "ENABLE_MULTI_TIER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("ENABLE_CACHE_MONITORING", "false")
    config = get_cache_config()
    assert config.memory_cache_strategy is CacheStrategy.TTL  # the guide's default, "TTL"
    assert config.memory_cache_size == 1000 and config.l2_enabled
    monkeypatch.setenv("CACHE_STRATEGY", "lru")
    assert get_cache_config().memory_cache_strategy is CacheStrategy.LRU
    async with CacheManager(dataclasses.replace(config, shm_name=shm_name)) as cache:
        await cache.set("k", {"v": 1})
        assert await cache.get("k") == {"v": 1}
        assert redis_server.client().get("k") is not None  # both tiers, as configured
        stats = await cache.get_stats()
        assert stats["segment"]["strategy"] == "TTL"


@pytest.mark.asyncio
async def test_the_guides_l2_only_configuration_caches_in_redis(redis_server, shm_name):
    config = CacheConfig(redis_url=redis_server.url, enable_multi_tier=False,
                         cache_tier=CacheTier.L2, shm_name=shm_name, enable_monitoring=False)
    calls = []
    async with CacheManager(config) as cache:
        assert await cache.set("user:1", {"name": "ada"})
        assert await cache.get("user:1") == {"name": "ada"}
        assert redis_server.client().get("user:1") is not None
        assert not await cache.exists("user:1", tier="l1")  # Redis only

        @cache.cached(ttl=60, key_prefix="profile")
        async def profile(user_id):
            calls.append(user_id)
            return {"id": user_id}

        assert await profile(7) == {"id": 7} and await profile(7) == {"id": 7}
        assert calls == [7]
        assert redis_server.client().get("profile:7") is not None
        stats = await cache.get_stats()
        assert stats["l1_cache"]["size"] == 0 and stats["l2_cache"]["hits"] == 2
        assert await cache.clear_pattern("profile:*") == 1
    # Without Redis an L2-only configuration is an error, not a cache that stores nothing.
    with pytest.raises(ValueError, match="needs redis_url"):
        CacheConfig(enable_multi_tier=False, cache_tier=CacheTier.L2)


# ---- memory_cache_size -----------------------------------------------------------------------------
@pytest.mark.parametrize("n", [10, 1000, 100_000])
def test_memory_cache_size_is_exact(shm_name, n):
    config = CacheConfig(shm_name=shm_name, memory_cache_size=n, shm_size=64 << 20,
                         enable_monitoring=False)
    with SyncCacheManager(config) as cache:
        for i in range(n):
            assert cache.set(f"k{i}", i)
        stats = cache.get_stats()
        assert stats["l1_cache"]["size"] == n  # never evicting before N are stored
        assert stats["segment"]["evictions"] == 0
        extra = max(10, n // 10)
        for i in range(n, n + extra):
            assert cache.set(f"k{i}", i)
            if i % 97 == 0:
                assert cache.get_stats()["l1_cache"]["size"] <= n
        stats = cache.get_stats()
        assert stats["l1_cache"]["size"] == n  # never more
        assert stats["l1_cache"]["max_size"] == n
        assert stats["segment"]["evictions"] == extra
        assert cache.get(f"k{n + extra - 1}") == n + extra - 1  # the newest is there


# ---- statistics ------------------------------------------------------------------------------------
def _figures(stats):
    l1, l2 = stats["l1_cache"], stats["l2_cache"]
    return {"l1": (l1["hits"], l1["misses"]), "l2": (l2["hits"], l2["misses"]),
            "total": (stats["total_hits"], stats["total_misses"], stats["total_sets"])}


@pytest.mark.asyncio
async def test_statistics_of_a_known_sequence_without_redis(shm_name):
    config = CacheConfig(shm_name=shm_name, enable_monitoring=False)
    async with CacheManager(config) as cache:
        await cache.set("a", 1)
        assert await cache.get("a") == 1       # L1 hit
        assert await cache.get("b") is None    # L1 miss
        assert await cache.get("a") == 1       # L1 hit
        assert cache.sync.get("c") is None     # L1 miss (the sync face counts the same)
        stats = await cache.get_stats()
        assert _figures(stats) == {"l1": (2, 2), "l2": (0, 0), "total": (2, 2, 1)}
        assert stats["l1_cache"]["hit_rate"] == 0.5
        assert stats["process"]["gets"] == 4


@pytest.mark.asyncio
@pytest.mark.parametrize("face", ["async", "sync"])
async def test_statistics_of_a_known_sequence_with_redis(redis_server, shm_name, face):
    config = CacheConfig(shm_name=shm_name, redis_url=redis_server.url, enable_monitoring=False)
    async with CacheManager(config) as cache:
        # Until the host's invalidation subscription is up, Redis hits are not copied into L1
        # (and its start drops such copies): wait for it, as a running service has.
        await wait_subscribed(cache)
        stats = await cache.get_stats()
        assert stats["l2_cache"]["connected"] is True  # from start(), before any call
        assert _figures(stats) == {"l1": (0, 0), "l2": (0, 0), "total": (0, 0, 0)}

        async def get(key):
            if face == "async":
                return await cache.get(key)
            return await asyncio.get_running_loop().run_in_executor(None, cache.sync.get, key)

        # L1 and Redis (kept in L1 for the hit that follows: shmc_test_support.write_kept)
        writes = await awrite_kept(lambda: cache.set("a", 1), shm_name, b"a")
        assert await get("a") == 1             # L1 hit
        assert await get("b") is None          # L1 miss, L2 miss
        await cache.delete("a", tier="l1")
        assert await get("a") == 1             # L1 miss, L2 hit (copied into L1)
        assert await get("a") == 1             # L1 hit
        stats = await cache.get_stats()
        # Each lookup once per tier asked: 4 lookups, 2 of them went on to Redis.
        assert _figures(stats) == {"l1": (2, 2), "l2": (1, 1),
                                   "total": (3, 1, stats["total_sets"])}
        assert 1 <= stats["total_sets"] <= writes  # one per write whose L1 copy was stored
        assert stats["l2_cache"]["errors"] == 0


def test_l2_errors_are_those_of_the_recent_window(redis_server, shm_name, monkeypatch):
    monkeypatch.setattr(shmcache._core, "L2_ERROR_WINDOW", 0.5)
    config = CacheConfig(shm_name=shm_name, redis_url=redis_server.url, enable_monitoring=False,
                         redis_connect_timeout=0.05, redis_command_timeout=0.05)
    with SyncCacheManager(config) as cache:
        cache.set("a", 1)
        redis_server.kill()
        cache.delete("a", tier="l1")
        assert cache.get("a") is None  # Redis down: a miss, and an error
        stats = cache.get_stats()
        assert stats["l2_cache"]["errors"] >= 1 and not stats["l2_cache"]["connected"]
        lifetime = stats["l2_detail"]["errors"]
        wait_until(lambda: cache.get_stats()["l2_cache"]["errors"] == 0, timeout=5,
                   what="the errors to leave the window")
        assert cache.get_stats()["l2_detail"]["errors"] == lifetime  # the host's count stays
    # A restarted service starts with no recent errors, whatever the host's lifetime count.
    redis_server.restart()
    with SyncCacheManager(config) as cache:
        stats = cache.get_stats()
        assert stats["l2_cache"]["errors"] == 0 and stats["l2_detail"]["errors"] >= lifetime
        assert stats["l2_cache"]["connected"] is True


# ---- results too large -----------------------------------------------------------------------------
def test_a_result_over_every_limit_is_returned_and_logged_once(shm_name, caplog):
    config = CacheConfig(shm_name=shm_name, shm_size=8 << 20, enable_monitoring=False)
    calls = []
    with SyncCacheManager(config) as cache:
        @cache.cached(ttl=60, key_prefix="huge")
        def huge(i) -> bytes:
            calls.append(i)
            return b"x" * (_ffi.MAX_VALUE_LEN + 1)  # over the library's limit for any tier

        with caplog.at_level(logging.WARNING, logger="shmcache"):
            for _ in range(3):
                assert len(huge(1)) == _ffi.MAX_VALUE_LEN + 1  # the result, not an error
        assert calls == [1, 1, 1]  # never cached, never lost
        assert caplog.text.count("not cached") == 1  # logged once, not per call
        with pytest.raises(ValueTooLargeError, match="nothing stored"):
            cache.set("huge", b"x" * (_ffi.MAX_VALUE_LEN + 1))
        assert cache.get_stats()["single_flight"]["leases_held"] == 0


def test_a_result_too_large_for_l1_is_kept_in_redis(redis_server, shm_name):
    config = CacheConfig(shm_name=shm_name, shm_size=8 << 20, redis_url=redis_server.url,
                         enable_monitoring=False)
    calls = []
    with SyncCacheManager(config) as cache:
        limit = cache.get_stats()["segment"]["max_value_len"]

        @cache.cached(ttl=60, key_prefix="big")
        def big(i) -> bytes:
            calls.append(i)
            return os.urandom(limit + 100)

        first = big(1)
        assert big(1) == first and calls == [1]  # served from Redis
        assert redis_server.client().get(big.cache_key(1)) is not None
        assert 0 < redis_server.client().pttl(big.cache_key(1)) <= 60_000  # the function's ttl
        assert not cache.exists(big.cache_key(1), tier="l1")
        cache.set("v", "small")  # an older, smaller L1 copy must not outlive a large set
        assert cache.set("v", os.urandom(limit + 1))
        assert len(cache.get("v")) == limit + 1
