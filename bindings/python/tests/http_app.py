"""http_app.py - a FastAPI app with cached responses, for test_gunicorn_responses.py under real
gunicorn. Each response says which worker served it (X-Served-By, added outside the cache, so a
hit shows the worker that sent it); each computed body says which worker computed it and its
number there, so a test can tell a stored response from a new one.

Configured through the environment like the example app: SHMCACHE_NAME, REDIS_URL, and
EXAMPLE_DB (a SQLite file shared by the workers: PUT /pages/{id} renames a page there).
"""
import asyncio
import itertools
import os
import sqlite3

from fastapi import FastAPI, Request, Response

from shmcache import CacheConfig, create_cache_manager
from shmcache.fastapi import setup_cache
from shmcache.responses import cache_response, route_pattern

config = CacheConfig.from_env()
cache = create_cache_manager(config)
app = FastAPI()
setup_cache(app, cache)  # lifespan, /health and /metrics routes, response cache middleware
_computations = itertools.count(1)
DB_PATH = os.environ["EXAMPLE_DB"]


@app.middleware("http")
async def served_by(request, call_next):  # outermost: sees hits and misses alike
    response = await call_next(request)
    response.headers["X-Served-By"] = str(os.getpid())
    return response


def _computed(**fields):
    return {**fields, "computed_by": os.getpid(), "computation": next(_computations)}


def _title(page_id):
    con = sqlite3.connect(DB_PATH, timeout=5)
    try:
        with con:
            con.execute("CREATE TABLE IF NOT EXISTS pages (id INTEGER PRIMARY KEY, title TEXT)")
            row = con.execute("SELECT title FROM pages WHERE id = ?", (page_id,)).fetchone()
        return row[0] if row else f"page {page_id}"
    finally:
        con.close()


@app.get("/whoami")
async def whoami():
    return {"pid": os.getpid()}


@app.get("/pages/{page_id}")
@cache_response(ttl=300)
async def page(page_id: int):
    return _computed(page=page_id, title=_title(page_id))


@app.put("/pages/{page_id}")
@cache.cache_invalidate(route_pattern("/pages/{page_id}"))
async def rename(page_id: int, title: str):
    con = sqlite3.connect(DB_PATH, timeout=5)
    try:
        with con:
            con.execute("CREATE TABLE IF NOT EXISTS pages (id INTEGER PRIMARY KEY, title TEXT)")
            con.execute("INSERT OR REPLACE INTO pages (id, title) VALUES (?, ?)",
                        (page_id, title))
    finally:
        con.close()
    return {"page": page_id, "title": title}


@app.get("/greeting")
@cache_response(ttl=300, vary=["accept-language"])
async def greeting(request: Request):
    lang = request.headers.get("accept-language", "en")
    return _computed(text={"fr": "bonjour", "de": "hallo"}.get(lang, "hello"), lang=lang)


@app.get("/me")
@cache_response(ttl=300)
async def me(response: Response, request: Request):
    response.headers["Cache-Control"] = "private, max-age=60"
    return _computed(user=request.query_params.get("user"))


@app.get("/session")
@cache_response(ttl=300)
async def session(response: Response, request: Request):
    user = request.query_params.get("user")
    response.set_cookie("session", f"for-{user}")
    return _computed(user=user)


@app.get("/slow/{item_id}")
@cache_response(ttl=300, lease_timeout=1)
async def slow(item_id: int):
    """Takes 1.5 s, and says which worker is computing it in EXAMPLE_DB.computing first (the
    test SIGKILLs that worker in the middle, while it holds the lease)."""
    with open(DB_PATH + ".computing", "w") as f:
        f.write(str(os.getpid()))
    await asyncio.sleep(1.5)
    return _computed(item=item_id)
