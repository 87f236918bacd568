"""redis_app.py - the example app's cached endpoint with a plain redis-py cache: the baseline of
bench/e2e/run_e2e.py.

The same GET /users/{id} as examples/fastapi_app (the same profile, the same 20 ms cost on a
miss, the same 300 s TTL, JSON values), cached the way a service without shmcache would: each
request asks Redis (redis.asyncio, a connection pool per worker) and stores on a miss.
REDIS_URL names the server.
"""
import asyncio
import json
import os
import time

import redis.asyncio as aioredis
from fastapi import FastAPI

PROFILE_COST_S = float(os.environ.get("EXAMPLE_PROFILE_COST_MS", "20")) / 1000
TTL_S = 300

app = FastAPI(title="baseline: the profile endpoint cached in Redis with redis-py")
_redis = None


@app.on_event("startup")
async def _connect():
    global _redis  # one pool per worker, made after the fork
    _redis = aioredis.from_url(os.environ["REDIS_URL"], max_connections=16)


@app.on_event("shutdown")
async def _close():
    await _redis.close()


async def get_user_profile(user_id: int) -> dict:
    key = f"bench:user_profile:{user_id}"
    raw = await _redis.get(key)
    if raw is not None:
        return json.loads(raw)
    await asyncio.sleep(PROFILE_COST_S)
    profile = {"id": user_id, "name": f"user {user_id}", "computed_by": os.getpid(),
               "computed_at": time.time()}
    await _redis.set(key, json.dumps(profile), ex=TTL_S)
    return profile


@app.get("/users/{user_id}")
async def read_user(user_id: int):
    return {"served_by": os.getpid(), "profile": await get_user_profile(user_id)}
