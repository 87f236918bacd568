import asyncio, time
import httpx, pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.testclient import TestClient
from starlette.background import BackgroundTask
from shmcache import CacheConfig, CacheManager, set_cache_manager
from shmcache.fastapi import setup_cache
from shmcache.responses import ResponseCacheMiddleware, cache_response

def mk(shm_name):
    m = CacheManager(CacheConfig(shm_name=shm_name, shm_size=8 << 20, enable_monitoring=False))
    app = FastAPI(); setup_cache(app, m); return app

def test_head_then_get(shm_name):
    app = mk(shm_name)
    @app.api_route("/doc", methods=["GET", "HEAD"])
    @cache_response(ttl=60)
    async def doc(request: Request):
        if request.method == "HEAD":
            return Response(headers={"x-kind": "head"}, media_type="text/plain")
        return Response("full body", media_type="text/plain")
    with TestClient(app) as c:
        h = c.head("/doc"); print("HEAD", h.status_code, h.headers)
        g = c.get("/doc"); print("GET", g.status_code, g.headers, g.content)
        assert g.content == b"full body"

def test_inm_star_404(shm_name):
    app = mk(shm_name)
    @app.get("/nf")
    @cache_response(ttl=60)
    async def nf(response: Response):
        response.status_code = 404
        return {"detail": "nope"}
    with TestClient(app) as c:
        a = c.get("/nf"); print(a.status_code, a.headers)
        b = c.get("/nf", headers={"if-none-match": "*"}); print(b.status_code, b.headers)
        d = c.get("/nf", headers={"if-none-match": a.headers["etag"]}); print(d.status_code)
        assert b.status_code == 404

def test_bg_task_holds_waiters(shm_name):
    app = mk(shm_name)
    @app.get("/bg")
    @cache_response(ttl=60)
    async def bg():
        await asyncio.sleep(0.2)
        return JSONResponse({"x": 1}, background=BackgroundTask(asyncio.sleep, 2))
    async def run():
        async with app.router.lifespan_context(app):
            tr = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=tr, base_url="http://t") as c:
                t0 = time.monotonic()
                async def one(delay):
                    await asyncio.sleep(delay)
                    r = await c.get("/bg"); return r.headers.get("x-cache"), time.monotonic() - t0
                return await asyncio.gather(one(0), one(0.05))
    res = asyncio.run(run()); print(res)
    assert res[1][1] < 1.5
