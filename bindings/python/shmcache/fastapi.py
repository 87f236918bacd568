"""shmcache.fastapi - FastAPI integration: lifespan, dependency, health and metrics routes.

    from fastapi import Depends, FastAPI
    from shmcache import CacheConfig
    from shmcache.fastapi import add_cache_routes, cache_lifespan, get_cache

    app = FastAPI(lifespan=cache_lifespan(CacheConfig.from_env()))
    add_cache_routes(app)

    @app.get("/users/{user_id}")
    async def user(user_id: int, cache=Depends(get_cache)): ...

cache_lifespan starts the manager when a worker starts serving and stops it at shutdown; under
gunicorn each worker runs it after the fork, so every worker opens the same segment (the
first creates it) and has its own Redis connections and thread pool.

setup_cache(app, ...) also adds shmcache.responses.ResponseCacheMiddleware, which stores the
responses of @cache_response path operations (docs/python.md "HTTP response caching").

Routes (add_cache_routes):
  GET {prefix}/health/cache              health_check(); 200 if healthy or degraded, 503 if not
  GET {prefix}/metrics/cache             get_stats() as JSON
  GET {prefix}/metrics/cache/prometheus  the same in the Prometheus text format

FastAPI before 0.93 (Debian 12 has 0.92) silently ignores FastAPI(lifespan=...): it lands in
app.extra and is never run. Either assign it where Starlette looks in every version,
`app.router.lifespan_context = cache_lifespan(...)`, or call setup_cache(app, ...), which does
that and mounts the routes; add_cache_routes() also moves an ignored lifespan there.

This module is shmcache.fastapi; `import fastapi` below is the FastAPI package (absolute
imports; nothing here is imported implicitly-relative).
"""
import contextlib

import fastapi
from fastapi.responses import JSONResponse, Response

from .config import CacheConfig
from .manager import CacheManager, create_cache_manager, get_cache_manager


def _manager_for(manager_or_config):
    if manager_or_config is None:
        return None  # the default manager, looked up at start-up
    if isinstance(manager_or_config, CacheManager):
        return manager_or_config
    if isinstance(manager_or_config, CacheConfig):
        return create_cache_manager(manager_or_config)
    raise TypeError("cache_lifespan takes a CacheManager, a CacheConfig or None, not "
                    f"{type(manager_or_config).__name__}")


def cache_lifespan(manager_or_config=None, lifespan=None):
    """A lifespan for FastAPI(lifespan=...): starts the cache manager (a CacheManager, or one
    made from a CacheConfig and registered as the default, or the default one for None), puts
    it in app.state.cache, runs the application's own `lifespan` inside if given, and stops the
    manager at shutdown."""
    manager = _manager_for(manager_or_config)

    @contextlib.asynccontextmanager
    async def _lifespan(app):
        cache = manager if manager is not None else get_cache_manager()
        await cache.start()
        app.state.cache = cache
        try:
            if lifespan is not None:
                async with lifespan(app) as state:
                    yield state
            else:
                yield
        finally:
            await cache.stop()

    return _lifespan


def _resolve(request, manager=None):
    if manager is not None:
        return manager
    cache = getattr(request.app.state, "cache", None)
    return cache if cache is not None else get_cache_manager()


def get_cache(request: fastapi.Request) -> CacheManager:
    """Dependency: the app's cache manager (app.state.cache, else the default manager).
    Use as `cache: CacheManager = Depends(get_cache)`."""
    return _resolve(request)


def _uses_default_lifespan(router):
    # Starlette's placeholder when no lifespan was given (private class name, stable since
    # Starlette 0.26; checked by name so that a rename only disables the adoption below).
    return type(getattr(router, "lifespan_context", None)).__name__ == "_DefaultLifespan"


def _adopt_ignored_lifespan(app):
    """On FastAPI < 0.93, move FastAPI(lifespan=...) from app.extra to the router."""
    extra = getattr(app, "extra", None)
    router = getattr(app, "router", None)
    if isinstance(extra, dict) and extra.get("lifespan") and _uses_default_lifespan(router):
        router.lifespan_context = extra.pop("lifespan")


def setup_cache(app, manager_or_config=None, prefix="", routes=True, responses=True):
    """Install cache_lifespan(manager_or_config) on app, on any FastAPI version (an existing
    lifespan of the app keeps running inside it), mount the routes unless routes=False, and add
    the ResponseCacheMiddleware that @cache_response operations need unless responses=False."""
    _adopt_ignored_lifespan(app)
    existing = app.router.lifespan_context
    app.router.lifespan_context = cache_lifespan(
        manager_or_config, lifespan=None if _uses_default_lifespan(app.router) else existing)
    manager = manager_or_config if isinstance(manager_or_config, CacheManager) else None
    if routes:
        add_cache_routes(app, manager, prefix)
    if responses:
        from .responses import ResponseCacheMiddleware

        app.add_middleware(ResponseCacheMiddleware, manager=manager)
    return app


def add_cache_routes(app, manager=None, prefix=""):
    """Mount the health and metrics routes on app (a FastAPI app or an APIRouter). manager None:
    app.state.cache (set by cache_lifespan), else the default manager, at each request."""
    _adopt_ignored_lifespan(app)
    router = fastapi.APIRouter()

    @router.get("/health/cache", tags=["cache"])
    async def cache_health(request: fastapi.Request):
        report = await _resolve(request, manager).health_check()
        status = 503 if report["status"] == "unhealthy" else 200
        return JSONResponse(report, status_code=status)

    @router.get("/metrics/cache", tags=["cache"])
    async def cache_metrics(request: fastapi.Request):
        return JSONResponse(await _resolve(request, manager).get_stats())

    @router.get("/metrics/cache/prometheus", tags=["cache"])
    async def cache_metrics_prometheus(request: fastapi.Request):
        from .prometheus import CONTENT_TYPE_LATEST, exposition

        stats = await _resolve(request, manager).get_stats()
        return Response(exposition(stats), media_type=CONTENT_TYPE_LATEST)

    app.include_router(router, prefix=prefix)
    return router
