import asyncio, time
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask
from shmcache import CacheConfig, CacheManager
from shmcache.fastapi import setup_cache
from shmcache.responses import cache_response

def mk(shm_name):
    m = CacheManager(CacheConfig(shm_name=shm_name, shm_size=8 << 20, enable_monitoring=False))
    app = FastAPI(); setup_cache(app, m); return app

async def call(app, path, t0, headers=()):
    scope = {"type": "http", "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
             "headers": [(b"host", b"t")] + list(headers), "client": ("1.2.3.4", 1), "server": ("t", 80), "app": app}
    out = {}
    async def receive():
        await asyncio.sleep(100); return {"type": "http.disconnect"}
    async def send(m):
        if m["type"] == "http.response.start":
            out["status"] = m["status"]; out["headers"] = dict(m["headers"]); out["ts"] = round(time.monotonic() - t0, 2)
        elif m["type"] == "http.response.body" and not m.get("more_body") and "t" not in out:
            out["t"] = round(time.monotonic() - t0, 2)
    await app(scope, receive, send)
    return out

def test_bg(shm_name):
    app = mk(shm_name)
    @app.get("/bg")
    @cache_response(ttl=60)
    async def bg():
        await asyncio.sleep(0.2)
        return JSONResponse({"x": 1}, background=BackgroundTask(asyncio.sleep, 2))
    @app.get("/sse")
    @cache_response(ttl=60)
    async def sse():
        await asyncio.sleep(0.2)
        async def gen():
            for i in range(4):
                yield b"data: x\n\n"; await asyncio.sleep(0.5)
        return StreamingResponse(gen(), media_type="text/event-stream")
    async def run():
        async with app.router.lifespan_context(app):
            t0 = time.monotonic()
            async def late(p, d):
                await asyncio.sleep(d); return await call(app, p, t0)
            r = await asyncio.gather(call(app, "/bg", t0), late("/bg", 0.05))
            print([(x["t"], x["headers"].get(b"x-cache")) for x in r])
            t0 = time.monotonic()
            r2 = await asyncio.gather(call(app, "/sse", t0), late("/sse", 0.05))
            print([(x["ts"], x["t"], x["headers"].get(b"x-cache")) for x in r2])
            return r, r2
    r, r2 = asyncio.run(run())
    assert r[1]["t"] < 1.0
