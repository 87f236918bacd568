"""bench_app.py - the FastAPI app bench/http/run_http.py loads: one product page made three
ways, so that one server run compares them side by side.

  GET /computed/{id}   made at every request: 5 ms of awaited I/O (a database query stands in)
                       and a 50-item response_model serialized by FastAPI;
  GET /cached/{id}     the same operation under @cache_response (the shared response cache);
  GET /dict/{id}       the same operation cached the way fastapi-cache's @cache does with its
                       InMemoryBackend (fastapi-cache is not packaged in Debian 12, so its code
                       path is reproduced here): a dict private to each worker, the decoded
                       value returned on a hit (FastAPI validates and serializes it again), an
                       ETag from Python's hash(), 304 when the request's If-None-Match equals
                       it. hash() is salted per interpreter: gunicorn's forked workers share
                       their master's salt, so the tag agrees within one master, but not
                       across hosts or restarts (fastapi-cache#400).
"""
import asyncio
import json
import time

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel

from shmcache import CacheConfig, create_cache_manager
from shmcache.fastapi import setup_cache
from shmcache.responses import cache_response

cache = create_cache_manager(CacheConfig.from_env())
app = FastAPI()
setup_cache(app, cache)  # lifespan, /health and /metrics routes, response cache middleware
TTL = 300


class Item(BaseModel):
    sku: str
    name: str
    price: float
    stock: int
    tags: list


class Page(BaseModel):
    product: int
    items: list[Item]


async def make_page(product_id):
    await asyncio.sleep(0.005)  # the query
    return Page(product=product_id, items=[
        Item(sku=f"{product_id}-{i}", name=f"item {i} of product {product_id}",
             price=product_id + i / 100, stock=(product_id * 7 + i) % 50, tags=["a", "b"])
        for i in range(50)])


@app.get("/computed/{product_id}", response_model=Page)
async def computed(product_id: int):
    return await make_page(product_id)


@app.get("/cached/{product_id}", response_model=Page)
@cache_response(ttl=TTL)
async def cached(product_id: int):
    return await make_page(product_id)


_dict = {}  # key -> (expires at, encoded value): this worker's alone


@app.get("/dict/{product_id}", response_model=Page)
async def per_worker_dict(product_id: int, request: Request, response: Response):
    key = f"bench_app:per_worker_dict:{product_id}"
    now = time.monotonic()
    hit = _dict.get(key)
    if hit is not None and hit[0] > now:
        etag = f"W/{hash(hit[1])}"
        response.headers["Cache-Control"] = f"max-age={int(hit[0] - now)}"
        response.headers["ETag"] = etag
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        return json.loads(hit[1])  # FastAPI validates and serializes it again
    page = await make_page(product_id)
    encoded = page.json()
    _dict[key] = (now + TTL, encoded)
    response.headers["Cache-Control"] = f"max-age={TTL}"
    response.headers["ETag"] = f"W/{hash(encoded)}"
    return page
