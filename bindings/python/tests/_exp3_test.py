from __future__ import annotations
import asyncio, time
import pytest
from fastapi import FastAPI, Request, Response, Depends, BackgroundTasks, Header
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel
from shmcache import CacheConfig, CacheManager
from shmcache.fastapi import setup_cache
from shmcache.responses import cache_response, ResponseCacheMiddleware

class Out(BaseModel):
    id: int

class Full(BaseModel):
    id: int
    secret: str

def mk(shm_name, **kw):
    m = CacheManager(CacheConfig(shm_name=shm_name, shm_size=8 << 20, enable_monitoring=False))
    app = FastAPI(); setup_cache(app, m)
    if kw: app.add_middleware(ResponseCacheMiddleware, **kw)
    return app

log = []
def dep_yield():
    log.append("open"); yield "db"; log.append("close")

def test_features(shm_name):
    app = mk(shm_name)
    @app.get("/a/{x}")
    @cache_response(ttl=60)
    def a(x: int, bg: BackgroundTasks, db: str = Depends(dep_yield), q: int = 0) -> Out:
        bg.add_task(log.append, f"bg{x}")
        return Full(id=x + q, secret="s")
    with TestClient(app) as c:
        r1 = c.get("/a/1?q=2"); r2 = c.get("/a/1?q=2")
        print(r1.status_code, r1.text, r1.headers, r2.headers.get("x-cache"), r2.text, log)
        assert r1.json() == {"id": 3} and r2.json() == {"id": 3}

def test_nested_head_refresh(shm_name):
    app = mk(shm_name, paths=["/p/*"], ttl=1, stale_ttl=30)
    n = {"c": 0}
    @app.api_route("/p/{x}", methods=["GET"])
    async def p(x: str, request: Request):
        n["c"] += 1
        return {"m": request.method, "n": n["c"]}
    with TestClient(app) as c:
        print(c.get("/p/1").headers)
        h = c.head("/p/1"); print("head", h.status_code, h.headers, h.content)
        time.sleep(1.5)
        h = c.head("/p/1"); print("head2", h.status_code, h.headers, h.content)
        time.sleep(0.3)
        g = c.get("/p/1"); print("get", g.status_code, g.headers, g.content)
