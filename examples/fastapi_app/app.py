"""app.py - a FastAPI service whose gunicorn workers share one cache (the README's demo).

Run it the way production does, several worker processes on one port:

    PYTHONPATH=bindings/python:examples SHMCACHE_LIB=build/lib/libshmcache.so \
        /usr/bin/python3 -m gunicorn fastapi_app.app:app -k uvicorn.workers.UvicornWorker \
        -w 4 -b 127.0.0.1:8000

(docs/demo.md walks through it; scripts/demo.sh runs it and drives traffic at it.)

Every worker opens the same shared-memory segment, so a profile computed by one worker is a hit
for all of them. The configuration comes from the environment (CacheConfig.from_env):
SHMCACHE_NAME names the segment, REDIS_URL adds Redis as L2 behind it, MEMORY_CACHE_SIZE and
MEMORY_CACHE_TTL size the L1.

To make the sharing visible, a computed profile records the pid of the worker that computed it
(`computed_by`) and every response the pid that served it (`served_by`); when they differ, the
work of one worker was served by another. scripts/demo_traffic.py counts exactly that.

GET /users/{id}/card caches the whole HTTP response (@cache_response): one stored card for every
worker, the same ETag from each, and 304 Not Modified to a client that sends it back.

The "database" is a SQLite file shared by the workers (EXAMPLE_DB, default beside the segment
name in /tmp): PUT /users/{id} renames a user there and invalidates the cached profile, and any
worker's next GET computes it again with the new name.
"""
import asyncio
import contextlib
import html
import itertools
import os
import sqlite3
import time

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from shmcache import CacheConfig, cache_invalidate, cached, create_cache_manager
from shmcache.fastapi import add_cache_routes, cache_lifespan
from shmcache.responses import ResponseCacheMiddleware, cache_response, route_pattern

config = CacheConfig.from_env()
cache = create_cache_manager(config)  # also the default manager of @cached / @cache_invalidate

# The lifespan opens the cache in each worker as it starts and closes it at shutdown.
app = FastAPI(title="shmcache example: user profiles shared by every worker",
              lifespan=cache_lifespan(cache))
# GET /health/cache, /metrics/cache, /metrics/cache/prometheus. It also installs the lifespan
# where FastAPI 0.92 (Debian 12) would otherwise ignore it.
add_cache_routes(app, cache)
# Whole HTTP responses of the @cache_response routes are stored by this middleware, once for
# every worker, with one ETag (docs/python.md "HTTP response caching").
app.add_middleware(ResponseCacheMiddleware, manager=cache)


class ServedBy:
    """X-Served-By: the worker that sent the response (added outside the response cache, so a
    stored response shows which worker sent it this time). A plain ASGI middleware that adds
    the header as the response starts: `@app.middleware("http")` (Starlette's
    BaseHTTPMiddleware) runs every request through an extra task and stream, which cost the
    cached endpoint about half its throughput (bench/e2e)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_header(message):
            if message["type"] == "http.response.start":
                served_by = (b"x-served-by", str(os.getpid()).encode())  # after any fork
                message["headers"] = [*message.get("headers", []), served_by]
            await send(message)

        await self.app(scope, receive, send_with_header)


app.add_middleware(ServedBy)


# A profile costs this much to compute on a miss: a stand-in for a slow query.
PROFILE_COST_S = float(os.environ.get("EXAMPLE_PROFILE_COST_MS", "20")) / 1000
DB_PATH = os.environ.get("EXAMPLE_DB") or f"/tmp/{config.shm_name}-example.sqlite"

_computations = itertools.count(1)  # this worker's computations, numbered for the driver


@contextlib.contextmanager
def _db():
    # A connection per use: cheap for SQLite, and nothing is open when gunicorn forks.
    con = sqlite3.connect(DB_PATH, timeout=5)
    try:
        with con:  # one transaction, committed on success
            con.execute("CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT)")
            yield con
    finally:
        con.close()


@cached(ttl=300, key_prefix="user_profile", single_flight=True)
async def get_user_profile(user_id: int) -> dict:
    """Cached as user_profile:<user_id> for 5 minutes, in the segment every worker shares.
    single_flight: when workers miss the same profile at the same moment, one computes it and
    the others wait for its value (docs/stampede.md)."""
    await asyncio.sleep(PROFILE_COST_S)
    with _db() as con:
        row = con.execute("SELECT name FROM users WHERE id = ?", (user_id,)).fetchone()
    return {"id": user_id, "name": row[0] if row else f"user {user_id}",
            "computed_by": os.getpid(), "computation": next(_computations),
            "computed_at": time.time()}


@cached(ttl=3600, key_prefix="monthly_report")
def build_report(year: int, month: int) -> dict:
    """A sync function works the same way (FastAPI runs sync endpoints in its thread pool)."""
    time.sleep(5 * PROFILE_COST_S)
    return {"year": year, "month": month, "orders": (year * 12 + month) % 977,
            "computed_by": os.getpid(), "computed_at": time.time()}


class UserUpdate(BaseModel):
    name: str


@app.get("/users/{user_id}")
async def read_user(user_id: int):
    return {"served_by": os.getpid(), "profile": await get_user_profile(user_id)}


@app.get("/users/{user_id}/card", response_class=HTMLResponse)
@cache_response(ttl=60)
async def user_card(user_id: int):
    """The profile as an HTML card; the whole response is cached (body, headers, a content
    ETag): every worker sends the stored card, and answers 304 to a client that has it."""
    p = await get_user_profile(user_id)
    return (f"<div class='card'><h1>{html.escape(p['name'])}</h1><p>user {p['id']}, card made by worker "
            f"{os.getpid()} at {time.strftime('%H:%M:%S')}</p></div>")


@app.put("/users/{user_id}")
# After the update, gone for every worker (and Redis): the profile, and the card's responses.
@cache_invalidate("user_profile:{user_id}", route_pattern("/users/{user_id}/card"))
async def update_user(user_id: int, update: UserUpdate):
    with _db() as con:
        con.execute("INSERT OR REPLACE INTO users (id, name) VALUES (?, ?)",
                    (user_id, update.name))
    return {"served_by": os.getpid(), "id": user_id, "name": update.name}


@app.get("/reports/{year}/{month}")
def read_report(year: int, month: int):
    return {"served_by": os.getpid(), "report": build_report(year, month)}


@app.get("/whoami")
async def whoami():
    return {"pid": os.getpid(), "segment": config.shm_name,
            "l2": bool(config.redis_url)}
