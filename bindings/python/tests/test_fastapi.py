"""test_fastapi.py - shmcache.fastapi: the lifespan (on FastAPI 0.92, which ignores
FastAPI(lifespan=...)), the get_cache dependency, cached endpoints, and the health and metrics
routes, with Starlette's TestClient (which runs the lifespan) and httpx's ASGI client."""
import os

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from shmc_test_support import awrite_kept, write_kept
from shmcache import CacheManager, set_cache_manager
from shmcache.fastapi import add_cache_routes, cache_lifespan, get_cache, setup_cache


@pytest.fixture(autouse=True)
def _restore_default_manager():
    previous = set_cache_manager(None)
    yield
    set_cache_manager(previous)


def make_app(cache_or_config, how):
    if how == "router":
        app = FastAPI()
        app.router.lifespan_context = cache_lifespan(cache_or_config)
        add_cache_routes(app)
    elif how == "constructor":  # ignored by FastAPI 0.92; add_cache_routes adopts it
        app = FastAPI(lifespan=cache_lifespan(cache_or_config))
        add_cache_routes(app)
    else:
        app = FastAPI()
        setup_cache(app, cache_or_config)
    computed = []

    @app.get("/users/{user_id}")
    async def read_user(user_id: int, cache: CacheManager = Depends(get_cache)):
        key = f"user:{user_id}"
        profile = await cache.get(key)
        if profile is None:
            computed.append(user_id)
            profile = {"id": user_id}
            await cache.set(key, profile)
        return profile

    app.computed = computed
    return app


@pytest.mark.parametrize("how", ["router", "constructor", "setup_cache"])
def test_lifespan_starts_and_stops_the_manager(config_for, how):
    cfg = config_for()
    app = make_app(cfg, how)
    with TestClient(app) as client:
        cache = app.state.cache
        assert isinstance(cache, CacheManager) and cache.core.is_open
        assert client.get("/users/1").json() == {"id": 1}
        assert client.get("/users/1").json() == {"id": 1}
        assert app.computed == [1]
    assert not cache.core.is_open  # stopped at shutdown


def test_an_apps_own_lifespan_keeps_running_inside_setup_cache(config_for):
    import contextlib

    events = []

    @contextlib.asynccontextmanager
    async def own(app):
        events.append("own start")
        yield
        events.append("own stop")

    app = FastAPI()
    app.router.lifespan_context = own
    setup_cache(app, config_for())
    with TestClient(app):
        assert events == ["own start"] and app.state.cache.core.is_open
    assert events == ["own start", "own stop"]


def test_health_route(config_for, mode, request):
    app = make_app(config_for(), "router")
    with TestClient(app) as client:
        r = client.get("/health/cache")
        assert r.status_code == 200 and r.json()["status"] == "healthy"
        assert r.json()["l1"]["ok"] is True
        assert r.json()["l2"]["connected"] is (mode == "l1+l2")
        if mode == "l1+l2":
            redis_server = request.getfixturevalue("redis_server")
            redis_server.kill()
            r = client.get("/health/cache")
            assert r.status_code == 200 and r.json()["status"] == "degraded"
        app.state.cache.core.close()  # the cache gone from under the app
        r = client.get("/health/cache")
        assert r.status_code == 503 and r.json()["status"] == "unhealthy"


def test_metrics_routes(config_for, mode):
    cfg = config_for()
    app = make_app(cfg, "router")
    with TestClient(app) as client:
        # A miss, computed and set in both tiers: kept in L1 (shmc_test_support.write_kept) for
        # the hit that follows.
        n = write_kept(lambda: client.get("/users/1"), cfg.shm_name, b"user:1",
                       undo=lambda: app.state.cache.sync.delete("user:1"))
        client.get("/users/1")
        stats = client.get("/metrics/cache").json()
        assert set(stats["l1_cache"]) == {"hits", "misses", "hit_rate", "size", "max_size"}
        assert set(stats["l2_cache"]) == {"hits", "misses", "hit_rate", "connected", "errors"}
        assert stats["l1_cache"]["hits"] >= 1 and 1 <= stats["total_sets"] <= n
        r = client.get("/metrics/cache/prometheus")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        text = r.text
        assert "# HELP shmcache_hits_total" in text and "# TYPE shmcache_hits_total counter" in text
        families = {f.name: f for f in text_string_to_metric_families(text)}
        hits = families["shmcache_hits"].samples[0]
        assert hits.labels["segment"] == cfg.shm_name and hits.value >= 1
        assert families["shmcache_entries"].type == "gauge"
        assert families["shmcache_entries"].samples[0].value == 1
        assert ("shmcache_l2_hits" in families) is (mode == "l1+l2")
        proc = families["shmcache_process_gets"].samples[0]
        assert proc.labels["pid"] == str(os.getpid()) and proc.value == n + 1


def test_routes_under_a_prefix_with_an_explicit_manager(config_for):
    cache = CacheManager(config_for())
    app = FastAPI()
    app.router.lifespan_context = cache_lifespan(cache)
    add_cache_routes(app, cache, prefix="/internal")
    with TestClient(app) as client:
        assert client.get("/internal/health/cache").json()["status"] == "healthy"
        assert client.get("/health/cache").status_code == 404


def test_cached_endpoint_keeps_its_signature_for_dependency_injection(config_for):
    cache = CacheManager(config_for())
    app = FastAPI()
    setup_cache(app, cache, routes=False)
    calls = []

    def settings():
        return {"currency": "EUR"}

    @app.get("/prices/{item}")
    @cache.cached(ttl=60, key_builder=lambda item, cfg=None: f"price:{item}")
    async def price(item: str, cfg: dict = Depends(settings)):
        calls.append(item)
        return {"item": item, "currency": cfg["currency"]}

    with TestClient(app) as client:
        assert client.get("/prices/tea").json() == {"item": "tea", "currency": "EUR"}
        assert client.get("/prices/tea").json() == {"item": "tea", "currency": "EUR"}
        assert calls == ["tea"]


@pytest.mark.asyncio
async def test_with_httpx_on_the_tests_own_loop(config_for):
    async with CacheManager(config_for()) as cache:
        app = FastAPI()
        app.state.cache = cache
        add_cache_routes(app)
        async with httpx.AsyncClient(app=app, base_url="http://test") as client:
            r = await client.get("/health/cache")
            assert r.status_code == 200 and r.json()["status"] == "healthy"
            # Kept in L1 (shmc_test_support.write_kept), where it is counted below.
            await awrite_kept(lambda: cache.set("x", 1), cache.config.shm_name, b"x")
            r = await client.get("/metrics/cache")
            assert r.json()["l1_cache"]["size"] == 1


def test_get_cache_falls_back_to_the_default_manager(config_for):
    from shmcache import create_cache_manager

    cache = create_cache_manager(config_for())
    app = FastAPI()
    app.router.lifespan_context = cache_lifespan()  # None: the default manager

    @app.get("/which")
    async def which(c: CacheManager = Depends(get_cache)):
        return {"same": c is cache}

    with TestClient(app) as client:
        assert client.get("/which").json() == {"same": True}
