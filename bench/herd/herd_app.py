"""herd_app.py - one hot, expiring key behind a slow origin: the app bench/herd/run_herd.py loads.

    HERD_VARIANT=swr HERD_COUNT_FILE=/tmp/calls PYTHONPATH=bindings/python:bench/herd \
        SHMCACHE_LIB=build/lib/libshmcache.so /usr/bin/python3 -m gunicorn herd_app:app \
        -k uvicorn.workers.UvicornWorker -w 4 -b 127.0.0.1:8000

GET /hot returns the value of one cached function with no arguments, so every request of every
worker wants the same key. The function stands in for an origin (a slow query): it sleeps
HERD_ORIGIN_MS (default 50) and records each call by appending one byte to HERD_COUNT_FILE, so
the calls of all the worker processes together are the file's size.

HERD_VARIANT picks how the function is cached (ttl HERD_TTL seconds, default 1.0):
  plain          @cached(ttl, single_flight=False): no protection, every worker that misses
                 calls the origin (single flight is on by default)
  single_flight  one call per host on a miss, the other callers wait for its value
  swr            stale-while-revalidate: after expiry the old value is served at once for
                 30 s while one caller refreshes it
  xfetch         XFetch probabilistic early refresh, before the value expires
  cross_host     single flight plus a Redis lock (needs REDIS_URL): one host computes for all
  hits           plain @cached that never expires (HERD_TTL ignored): the reference latency
                 of a hit under the same load, with no herd at all

GET /origin-calls returns the count and the serving worker's pid (the driver uses the pid to
see that every worker is up). The cache's own routes (/health/cache, /metrics/cache) are there
too.
"""
import asyncio
import os
import time

from fastapi import FastAPI

from shmcache import CacheConfig, cached, create_cache_manager
from shmcache.fastapi import add_cache_routes, cache_lifespan

ORIGIN_S = float(os.environ.get("HERD_ORIGIN_MS", "50")) / 1000
# ttl 0 never expires: the "hits" reference computes once and is a hit ever after.
TTL_S = 0 if os.environ.get("HERD_VARIANT") == "hits" else float(os.environ.get("HERD_TTL", "1.0"))
COUNT_FILE = os.environ["HERD_COUNT_FILE"]
VARIANT = os.environ.get("HERD_VARIANT", "plain")

# The @cached options of each variant, on top of ttl.
VARIANT_OPTIONS = {
    "plain": {"single_flight": False},
    "single_flight": {"single_flight": True},
    "swr": {"stale_ttl": 30},
    "xfetch": {"early_refresh": True},
    "cross_host": {"single_flight": True, "cross_host_lock": True},
    "hits": {},
}
if VARIANT not in VARIANT_OPTIONS:
    raise SystemExit(f"herd_app: HERD_VARIANT must be one of {', '.join(VARIANT_OPTIONS)}, "
                     f"not {VARIANT!r}")

config = CacheConfig.from_env()
cache = create_cache_manager(config)  # also the default manager of @cached
app = FastAPI(title="shmcache thundering-herd benchmark", lifespan=cache_lifespan(cache))
add_cache_routes(app, cache)  # also installs the lifespan where FastAPI 0.92 would ignore it


def _record_origin_call():
    # O_APPEND per call: appends from every worker process land whole and in order, so the
    # file's size is the host's count with no shared counter to get wrong.
    fd = os.open(COUNT_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, b".")
    finally:
        os.close(fd)


@cached(ttl=TTL_S, key_prefix="herd_hot", **VARIANT_OPTIONS[VARIANT])
async def hot_value() -> dict:
    """The origin: slow, and counted."""
    _record_origin_call()
    await asyncio.sleep(ORIGIN_S)
    return {"computed_by": os.getpid(), "computed_at": time.time()}


@app.get("/hot")
async def hot():
    return await hot_value()


@app.get("/origin-calls")
async def origin_calls():
    try:
        calls = os.path.getsize(COUNT_FILE)
    except FileNotFoundError:
        calls = 0
    return {"calls": calls, "pid": os.getpid()}
