"""test_guide_examples.py - the "Comprehensive Caching System" guide's usage, as its readers write
it, run against shmcache in L1-only mode and with a real Redis as L2 (the mode fixture).

Each test is one section of the guide: configuration, the manager's life, get/set with TTLs,
@cached on async and sync functions, invalidation after an update, clear_pattern, warming from
sync and async sources in batches, statistics, and a FastAPI application with lifespan,
dependency and the health/metrics endpoints. Only the guide's names are used (plus
shmcache.fastapi for the FastAPI wiring).
"""
import asyncio
import time

import pytest
from fastapi import Depends, FastAPI, HTTPException
from fastapi.testclient import TestClient

from shmc_test_support import awrite_kept
from shmcache import (CacheManager, CacheStrategy, CacheTier, cache_invalidate,
                      cached, create_cache_manager, get_cache_manager, set_cache_manager)
from shmcache.fastapi import add_cache_routes, cache_lifespan, get_cache

# A stand-in for the guide's database.
USERS = {123: {"id": 123, "name": "Ada", "email": "ada@example.com"},
         124: {"id": 124, "name": "Alan", "email": "alan@example.com"}}
CALLS = {"profile": 0, "calc": 0, "report": 0}


@pytest.fixture(autouse=True)
def _fresh_state():
    previous = set_cache_manager(None)
    for k in CALLS:
        CALLS[k] = 0
    USERS[123]["name"] = "Ada"
    yield
    set_cache_manager(previous)


@pytest.fixture
def guide_config(config_for, mode):
    """The guide's configuration block (L2 only in the l1+l2 mode)."""
    return config_for(
        redis_ttl=3600,
        redis_max_connections=20,
        redis_retry_on_timeout=True,
        memory_cache_size=1000,
        memory_cache_ttl=300,
        memory_cache_strategy=CacheStrategy.LRU,
        enable_multi_tier=True,
        cache_tier=CacheTier.BOTH,
        key_prefix="myapp",
        key_separator=":",
        enable_compression=True,
        compression_threshold=1024,
        enable_monitoring=True,
        monitor_interval=60,
        enable_cache_warming=True,
        warming_batch_size=100,
    )


# The guide's decorated functions, defined at import time, before any manager exists.
@cached(ttl=300, key_prefix="user_profile")
async def get_user_profile(user_id: int) -> dict:
    CALLS["profile"] += 1
    await asyncio.sleep(0.001)  # the "database query"
    return dict(USERS[user_id])


@cached(ttl=3600, key_prefix="expensive_calc")
def expensive_calculation(x: int, y: int) -> int:
    CALLS["calc"] += 1
    return sum(i * x for i in range(y))


@cached(ttl=600, key_prefix="report")
async def monthly_report(year: int, month: int, region: str = "all") -> dict:
    CALLS["report"] += 1
    return {"year": year, "month": month, "region": region, "total": year * month}


@cache_invalidate("user_profile:{user_id}*")
async def update_user_profile(user_id: int, name: str) -> dict:
    USERS[user_id]["name"] = name
    return dict(USERS[user_id])


@pytest.mark.asyncio
async def test_configuration_and_lifecycle(guide_config, mode):
    cache_manager = create_cache_manager(guide_config)
    assert get_cache_manager() is cache_manager
    await cache_manager.start()
    try:
        health = await cache_manager.health_check()
        assert health["status"] == "healthy"
        assert health["l2"]["configured"] is (mode == "l1+l2")
        stats = await cache_manager.get_stats()
        assert stats["segment"]["strategy"] == "LRU" and stats["l1_cache"]["max_size"] == 1000
    finally:
        await cache_manager.stop()


@pytest.mark.asyncio
async def test_basic_get_and_set_with_ttl(guide_config):
    async with create_cache_manager(guide_config) as cache_manager:
        user_data = {"id": 123, "name": "Ada", "preferences": {"theme": "dark"}}
        assert await cache_manager.set("user:123", user_data, ttl=3600)
        assert await cache_manager.get("user:123") == user_data
        await cache_manager.set("session:abc", {"user": 123}, ttl=0.2)
        assert await cache_manager.exists("session:abc")
        await asyncio.sleep(0.3)
        assert await cache_manager.get("session:abc") is None
        assert await cache_manager.get("missing", default={}) == {}
        assert await cache_manager.delete("user:123")
        assert await cache_manager.get("user:123") is None


@pytest.mark.asyncio
async def test_cached_decorator_on_async_and_sync_functions(guide_config):
    async with create_cache_manager(guide_config) as cache_manager:
        t = time.perf_counter()
        first = await get_user_profile(123)
        second = await get_user_profile(123)
        assert first == second == USERS[123] and CALLS["profile"] == 1
        # Stored under the key the guide's patterns expect (namespace applied transparently).
        assert await cache_manager.get("user_profile:123") == USERS[123]
        assert expensive_calculation(3, 1000) == expensive_calculation(3, 1000)
        assert CALLS["calc"] == 1
        assert await cache_manager.get("expensive_calc:3:1000") == 3 * sum(range(1000))
        await monthly_report(2024, 10)
        await monthly_report(2024, 10)
        await monthly_report(2024, 10, region="eu")
        assert CALLS["report"] == 2
        assert await cache_manager.exists("report:2024:10")
        # region is a positional parameter given by keyword: bound to its place, so
        # monthly_report(2024, 10, "eu") is the same entry.
        assert await cache_manager.exists("report:2024:10:eu")
        assert time.perf_counter() - t < 5


@pytest.mark.asyncio
async def test_invalidation_after_an_update(guide_config):
    async with create_cache_manager(guide_config):
        assert (await get_user_profile(123))["name"] == "Ada"
        await get_user_profile(124)
        await update_user_profile(123, "Grace")
        assert (await get_user_profile(123))["name"] == "Grace"
        assert CALLS["profile"] == 3  # 123 twice, 124 once: 124 was not invalidated
        await get_user_profile(124)
        assert CALLS["profile"] == 3


@pytest.mark.asyncio
async def test_clear_pattern(guide_config):
    async with create_cache_manager(guide_config) as cache_manager:
        for uid in USERS:
            await get_user_profile(uid)
        await cache_manager.set("user_session:1", "s")
        removed = await cache_manager.clear_pattern("user_profile:*")
        assert removed == len(USERS)
        assert await cache_manager.get("user_profile:123") is None
        assert await cache_manager.get("user_session:1") == "s"


@pytest.mark.asyncio
async def test_cache_warming_from_sync_and_async_sources(guide_config):
    products = [{"id": i, "name": f"product {i}", "price": i * 1.5} for i in range(250)]

    async def load_popular_products():
        await asyncio.sleep(0)
        return [(f"product:{p['id']}", p) for p in products]

    def load_categories():
        return [(f"category:{c}", {"name": c}, 600) for c in ("books", "music", "games")]

    async with create_cache_manager(guide_config) as cache_manager:
        assert await cache_manager.warm_cache(load_popular_products) == 250
        assert await cache_manager.warm_cache(load_categories) == 3
        report = await cache_manager.warm(load_popular_products)
        assert report.batches == 3  # warming_batch_size=100
        assert await cache_manager.get("product:42") == products[42]
        assert await cache_manager.get("category:music") == {"name": "music"}


@pytest.mark.asyncio
async def test_statistics(guide_config, mode):
    async with create_cache_manager(guide_config) as cache_manager:
        # The first call computes and stores in both tiers: kept in L1
        # (shmc_test_support.write_kept) for the hit of the second.
        calls = await awrite_kept(lambda: get_user_profile(123), guide_config.shm_name,
                                  b"myapp:user_profile:123",
                                  undo=lambda: cache_manager.delete("user_profile:123"))
        await get_user_profile(123)
        stats = await cache_manager.get_stats()
        l1, l2 = stats["l1_cache"], stats["l2_cache"]
        line = (f"L1 hit rate: {l1['hit_rate']:.2%} ({l1['size']}/{l1['max_size']}), "
                f"L2 connected: {l2['connected']}, hits {stats['total_hits']}, "
                f"misses {stats['total_misses']}, sets {stats['total_sets']}")
        assert "L1 hit rate: " in line
        assert l1["hits"] == 1 and l1["size"] == 1 and 1 <= stats["total_sets"] <= calls
        assert l2["connected"] is (mode == "l1+l2")
        assert stats["total_hits"] == 1 and stats["total_misses"] == calls


def test_fastapi_application(guide_config, mode):
    cache_manager = create_cache_manager(guide_config)
    app = FastAPI(title="guide app")
    # FastAPI(lifespan=...) is ignored by FastAPI 0.92 (Debian 12): set the router's.
    app.router.lifespan_context = cache_lifespan(cache_manager)
    add_cache_routes(app)

    @app.get("/users/{user_id}")
    async def get_user(user_id: int, cache: CacheManager = Depends(get_cache)):
        if user_id not in USERS:
            raise HTTPException(status_code=404, detail="user not found")
        profile = await get_user_profile(user_id)
        return {"profile": profile, "cached": await cache.exists(f"user_profile:{user_id}")}

    @app.put("/users/{user_id}")
    async def put_user(user_id: int, name: str):
        return await update_user_profile(user_id, name)

    @app.get("/reports/{year}/{month}")
    def report(year: int, month: int):  # a sync endpoint: FastAPI's thread pool
        return {"value": expensive_calculation(year, month)}

    with TestClient(app) as client:
        assert client.get("/users/123").json()["cached"] is True
        assert client.get("/users/123").json()["profile"]["name"] == "Ada"
        assert CALLS["profile"] == 1
        assert client.put("/users/123", params={"name": "Grace"}).json()["name"] == "Grace"
        assert client.get("/users/123").json()["profile"]["name"] == "Grace"
        assert client.get("/users/999").status_code == 404
        assert client.get("/reports/2024/10").json() == client.get("/reports/2024/10").json()
        assert CALLS["calc"] == 1
        health = client.get("/health/cache").json()
        assert health["status"] == "healthy"
        assert health["l2"]["connected"] is (mode == "l1+l2")
        metrics = client.get("/metrics/cache").json()
        # Hits from either tier: on a loaded machine the host's link lease may lapse for a
        # moment, and a copy of a Redis value is then served from Redis instead of L1.
        assert metrics["total_hits"] >= 2 and metrics["total_sets"] >= 3
        assert "shmcache_hits_total" in client.get("/metrics/cache/prometheus").text
