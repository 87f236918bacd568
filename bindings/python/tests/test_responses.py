"""test_responses.py - HTTP response caching (shmcache.responses) in one process: the header rules
of docs/python.md "HTTP response caching", what is never shared, single flight, stale-while-
revalidate, invalidation, and the stored record. Starlette's TestClient drives the app (it runs
the lifespan); httpx's ASGI client drives concurrent requests. The same app runs with L1 alone
and with Redis behind it (conftest's config_for). test_gunicorn_responses.py checks the
multi-worker claims under real gunicorn.

String annotations on purpose (the __future__ import): @cache_response must let FastAPI resolve
them in this module, not in shmcache's.
"""
from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse, StreamingResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel

from shmcache import CacheManager, set_cache_manager
from shmcache._http import (escape_part, if_none_match_matches, index_key, RequestHeaders,
                            RequestRules, variant_key)
from shmcache.fastapi import setup_cache
from shmcache.responses import (ResponseCacheMiddleware, ResponsePolicy, cache_response,
                                route_pattern)


@pytest.fixture(autouse=True)
def _restore_default_manager():
    previous = set_cache_manager(None)
    yield
    set_cache_manager(previous)


class Item(BaseModel):
    id: int
    name: str


class ItemOut(BaseModel):
    id: int


def make_app(config, **middleware):
    """An app with cached routes; app.calls counts each route's computations."""
    manager = CacheManager(config)
    app = FastAPI()
    setup_cache(app, manager)  # adds a ResponseCacheMiddleware for @cache_response
    if middleware:  # and one with a path rule, inside it: it answers the paths it covers
        app.add_middleware(ResponseCacheMiddleware, **middleware)
    calls = app.calls = {}

    def count(name):
        calls[name] = calls.get(name, 0) + 1
        return calls[name]

    @app.get("/items/{item_id}")
    @cache_response(ttl=60)
    async def item(item_id: int, q: str = ""):
        return {"id": item_id, "q": q, "n": count("item")}

    @app.get("/stable")
    @cache_response(ttl=60)
    async def stable():
        count("stable")
        return {"always": "the same"}

    @app.get("/lang")
    @cache_response(ttl=60, vary=["accept-language"])
    async def lang(request: Request):
        return {"lang": request.headers.get("accept-language"), "n": count("lang")}

    @app.get("/vary-by-response")
    @cache_response(ttl=60)
    async def vary_by_response(response: Response, x_tenant: str | None = Header(None)):
        response.headers["Vary"] = "X-Tenant"
        return {"tenant": x_tenant, "n": count("vary-by-response")}

    @app.get("/cookie")
    @cache_response(ttl=60)
    async def sets_cookie(response: Response):
        response.set_cookie("session", f"s{count('cookie')}")
        return {"n": calls["cookie"]}

    @app.get("/private")
    @cache_response(ttl=60)
    async def private(response: Response):
        response.headers["Cache-Control"] = "private, max-age=30"
        return {"n": count("private")}

    @app.get("/per-user")
    @cache_response(ttl=60, vary=["authorization"])
    async def per_user(authorization: str = Header("")):
        return {"user": authorization, "n": count("per-user")}

    @app.get("/status/{code}")
    @cache_response(ttl=60)
    async def status(code: int, response: Response):
        response.status_code = code
        return {"code": code, "n": count(f"status-{code}")}

    @app.get("/html", response_class=HTMLResponse)
    @cache_response(ttl=60)
    async def html():
        return f"<p>caf\u00e9 {count('html')}</p>"

    @app.get("/text")
    @cache_response(ttl=60)
    def text():  # a sync operation
        return PlainTextResponse(f"plain {count('text')}")

    @app.get("/model", response_model=ItemOut)
    @cache_response(ttl=60)
    async def model():
        return Item(id=count("model"), name="secret")

    def api_key(x_api_key: str = Header("")):
        if x_api_key != "k":
            raise HTTPException(401, "no key")

    @app.get("/guarded", dependencies=[Depends(api_key)])
    @cache_response(ttl=60)
    async def guarded():
        return {"n": count("guarded")}

    @app.get("/stream")
    @cache_response(ttl=60)
    async def stream():
        n = count("stream")

        async def chunks():
            for i in range(3):
                yield f"chunk {i} of {n};".encode()
        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/events")
    @cache_response(ttl=60)
    async def events():
        count("events")

        async def one():
            yield b"data: 1\n\n"
        return StreamingResponse(one(), media_type="text/event-stream")

    @app.get("/big")
    @cache_response(ttl=60, max_body_size=100)
    async def big():
        return PlainTextResponse("x" * 200 + str(count("big")))

    @app.get("/stale")
    @cache_response(ttl=1, stale_ttl=30)
    async def stale():
        return {"n": count("stale")}

    @app.put("/items/{item_id}")
    @manager.cache_invalidate(route_pattern("/items/{item_id}"))
    async def update(item_id: int):
        return {"updated": item_id}

    @app.post("/items/{item_id}")
    @cache_response(ttl=60)
    async def post(item_id: int):
        return {"n": count("post")}

    @app.get("/raw/{x}")
    async def raw(x: str, request: Request):
        return {"x": x, "host": request.headers.get("host"), "n": count("raw")}

    return app


@pytest.fixture
def client(config_for):
    app = make_app(config_for(), paths=["/raw/*"], ttl=60)
    with TestClient(app) as c:
        c.app_calls = app.calls
        c.manager = app.state.cache
        yield c


# ---- the rules, as pure functions ----------------------------------------------------------------
def test_if_none_match_uses_the_weak_comparison():
    tag = b'"abc"'
    assert if_none_match_matches(b'"abc"', tag)
    assert if_none_match_matches(b'W/"abc"', tag)
    assert if_none_match_matches(b'"x", W/"abc"', tag)
    assert if_none_match_matches(b"*", tag)
    assert if_none_match_matches(b'"abc"', b'W/"abc"')
    assert not if_none_match_matches(b'"abcd"', tag)
    assert not if_none_match_matches(b'"ab"', tag)
    assert not if_none_match_matches(b"abc", tag)  # unquoted: malformed, no match
    assert not if_none_match_matches(b'"x", garbage', tag)
    assert not if_none_match_matches(None, tag)
    assert if_none_match_matches(b'"a,b"', b'"a,b"')  # a comma inside a tag


def test_request_directives():
    def rules(**h):
        return RequestRules(RequestHeaders([(k.replace("_", "-").encode(), v.encode())
                                            for k, v in h.items()]))
    assert rules(cache_control="no-cache").no_cache
    assert rules(cache_control="max-age=0").no_cache
    assert not rules(cache_control="max-age=10").no_cache
    assert rules(cache_control="no-store").no_store
    assert rules(pragma="no-cache").no_cache
    assert not rules(pragma="no-cache", cache_control="max-age=5").no_cache  # CC wins
    r = rules(cache_control='NO-CACHE, foo="a,b"')
    assert r.no_cache and not r.no_store


def test_keys_are_injective_and_separated():
    seen = {}
    paths = [b"/a", b"/a ", b"/a%20", b"/a?x", b"/a @h", b"/a #x", b"/a\x00", "/\u00e9".encode(),
             b"/%C3%A9", b"/a/", b"/A"]
    queries = [b"", b"x=1", b"x=1 ", b"x=1%20", b"x=1&y=2", b"y=2&x=1", b"x=1 @h"]
    hosts = [None, b"h", b"h:80", b"-", b"*", b"h @x"]
    for p in paths:
        for q in queries:
            for h in hosts:
                k = index_key("route", p, q, h)
                assert k not in seen, (k, seen.get(k), (p, q, h))
                seen[k] = (p, q, h)
                assert k.count(" @") == 1 and " #" not in k
    assert index_key("route", b"/users/1", b"", b"Example.COM") == \
        "route:/users/1 @http://example.com"
    assert index_key("route", b"/users/1", b"page=2", b"h", b"https") == \
        "route:/users/1 ?page=2 @https://h"
    assert index_key("route", b"/a", b"", b"h", b"http") != index_key("route", b"/a", b"", b"h",
                                                                        b"https")
    names = [b"accept-language"]
    a = variant_key("k", names, RequestHeaders([(b"accept-language", b"en")]))
    b = variant_key("k", names, RequestHeaders([(b"accept-language", b"")]))
    c = variant_key("k", names, RequestHeaders([]))
    assert len({a, b, c}) == 3  # a value, empty, absent: three variants
    assert escape_part(b"/a b%") == "/a%20b%25"


def test_policy_checks_its_arguments():
    with pytest.raises(ValueError):
        ResponsePolicy(ttl=0)
    with pytest.raises(ValueError):
        ResponsePolicy(vary=["bad name"])
    with pytest.raises(ValueError):
        ResponsePolicy(key_prefix="a b")
    with pytest.raises(ValueError):
        ResponsePolicy(statuses=[99])
    with pytest.raises(ValueError):
        ResponsePolicy(max_body_size=0)
    with pytest.raises(ValueError):
        ResponsePolicy(single_flight=False, stale_ttl=5)
    with pytest.raises(ValueError):
        ResponseCacheMiddleware(None, paths=["no-slash"])
    assert ResponsePolicy(vary=["Authorization"]).private == (b"cookie",)


def test_route_pattern():
    assert route_pattern("/users/1") == "route:/users/1 *"
    assert route_pattern("/a b/[x]") == "route:/a%20b/\\[x\\] *"
    p = route_pattern("/users/{user_id}/posts")
    assert p(user_id=7) == "route:/users/7/posts *"
    with pytest.raises(TypeError):
        p(7)


# ---- a miss, a hit, 304 --------------------------------------------------------------------------
def test_miss_then_hit_sends_the_same_response(client):
    r1 = client.get("/items/1?q=a")
    r2 = client.get("/items/1?q=a")
    assert r1.status_code == r2.status_code == 200
    assert r1.content == r2.content and r1.json() == {"id": 1, "q": "a", "n": 1}
    assert r1.headers["x-cache"] == "MISS" and r2.headers["x-cache"] == "HIT"
    assert r1.headers["etag"] == r2.headers["etag"] and r1.headers["etag"].startswith('"')
    assert r1.headers["cache-control"] == r2.headers["cache-control"] == "max-age=60"
    assert r1.headers["content-type"] == r2.headers["content-type"] == "application/json"
    assert r2.headers["content-length"] == str(len(r2.content))
    assert "age" not in r1.headers and int(r2.headers["age"]) in (0, 1)
    assert client.app_calls["item"] == 1
    # Another query, another entry; the same query in another order is another entry too.
    assert client.get("/items/1?q=b").json()["n"] == 2
    assert client.get("/items/2?q=a").json()["n"] == 3
    assert client.get("/items/1?q=a").json()["n"] == 1


def test_a_hit_is_the_type_and_bytes_the_miss_was(client):
    for path, kind in [("/html", "text/html"), ("/text", "text/plain"),
                       ("/model", "application/json")]:
        r1, r2 = client.get(path), client.get(path)
        assert r2.headers["x-cache"] == "HIT", path
        assert r1.content == r2.content, path
        assert r1.headers["content-type"] == r2.headers["content-type"], path
        assert r1.headers["content-type"].startswith(kind), path
    assert "caf\u00e9" in client.get("/html").text
    # response_model filtered the miss; the hit is that filtered body, never the raw result.
    assert client.get("/model").json() == {"id": 1}


def test_304_when_if_none_match_matches(client):
    etag = client.get("/items/5").headers["etag"]
    for inm in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        r = client.get("/items/5", headers={"If-None-Match": inm})
        assert r.status_code == 304, inm
        assert r.content == b""
        assert r.headers["etag"] == etag and r.headers["cache-control"] == "max-age=60"
        assert r.headers["x-cache"] == "HIT" and "content-length" not in r.headers
    r = client.get("/items/5", headers={"If-None-Match": '"nope"'})
    assert r.status_code == 200 and r.headers["etag"] == etag
    # A miss answers 304 too when the new response's tag matches: the tag is the content's.
    etag = client.get("/stable").headers["etag"]
    clear(client, "route:/stable *")
    r = client.get("/stable", headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.headers["x-cache"] == "MISS"
    assert client.app_calls["stable"] == 2


def clear(client, pattern):
    async def go():
        return await client.manager.clear_pattern(pattern)
    return client.portal.call(go)


# ---- Vary ----------------------------------------------------------------------------------------
def test_declared_vary_keeps_a_variant_per_value(client):
    en1 = client.get("/lang", headers={"Accept-Language": "en"})
    fr1 = client.get("/lang", headers={"Accept-Language": "fr"})
    none1 = client.get("/lang")
    en2 = client.get("/lang", headers={"Accept-Language": "en"})
    fr2 = client.get("/lang", headers={"Accept-Language": "fr"})
    none2 = client.get("/lang")
    assert en1.json()["lang"] == "en" and fr1.json()["lang"] == "fr"
    assert none1.json()["lang"] is None
    assert (en2.json(), fr2.json(), none2.json()) == (en1.json(), fr1.json(), none1.json())
    assert en2.headers["x-cache"] == fr2.headers["x-cache"] == "HIT"
    assert en1.headers["vary"] == "accept-language"
    assert en1.headers["etag"] != fr1.headers["etag"]
    assert client.app_calls["lang"] == 3


def test_a_vary_header_set_by_the_operation_is_respected(client):
    a = client.get("/vary-by-response", headers={"X-Tenant": "a"})
    b = client.get("/vary-by-response", headers={"X-Tenant": "b"})
    assert a.json()["tenant"] == "a" and b.json()["tenant"] == "b"
    for _ in range(3):
        assert client.get("/vary-by-response", headers={"X-Tenant": "a"}).json() == a.json()
        assert client.get("/vary-by-response", headers={"X-Tenant": "b"}).json() == b.json()
    assert client.app_calls["vary-by-response"] == 2
    assert a.headers["vary"] == "x-tenant"


# ---- never shared --------------------------------------------------------------------------------
def test_set_cookie_and_private_responses_are_never_stored(client):
    for i in range(3):
        r = client.get("/cookie")
        assert r.headers["x-cache"] == "PASS" and r.json() == {"n": i + 1}
        assert r.cookies.get("session") == f"s{i + 1}"
        client.cookies.clear()
        p = client.get("/private")
        assert p.headers["x-cache"] == "PASS" and p.json() == {"n": i + 1}
        assert p.headers["cache-control"] == "private, max-age=30"
        assert "etag" not in p.headers


def test_requests_with_credentials_bypass_unless_varied_on(client):
    assert client.get("/items/9").json()["n"] == 1
    r = client.get("/items/9", headers={"Authorization": "Bearer a"})
    assert r.json()["n"] == 2 and r.headers["x-cache"] == "PASS"
    client.cookies.set("session", "x")
    r = client.get("/items/9")
    client.cookies.clear()
    assert r.json()["n"] == 3 and r.headers["x-cache"] == "PASS"
    assert client.get("/items/9").json()["n"] == 1  # the shared entry, untouched
    # vary=["authorization"]: an entry per credential, never another's.
    a1 = client.get("/per-user", headers={"Authorization": "Bearer a"}).json()
    b1 = client.get("/per-user", headers={"Authorization": "Bearer b"}).json()
    a2 = client.get("/per-user", headers={"Authorization": "Bearer a"}).json()
    b2 = client.get("/per-user", headers={"Authorization": "Bearer b"}).json()
    assert a1 == a2 and a1["user"] == "Bearer a"
    assert b1 == b2 and b1["user"] == "Bearer b"
    assert client.app_calls["per-user"] == 2


def test_dependencies_run_on_a_hit(client):
    assert client.get("/guarded", headers={"X-Api-Key": "k"}).status_code == 200
    assert client.get("/guarded", headers={"X-Api-Key": "k"}).headers["x-cache"] == "HIT"
    assert client.get("/guarded").status_code == 401  # the stored response is not a way in
    assert client.app_calls["guarded"] == 1


# ---- statuses, methods, directives ---------------------------------------------------------------
def test_only_cacheable_statuses_are_stored(client):
    for code, stored in [(200, True), (404, True), (410, True), (201, False), (500, False),
                         (503, False), (302, False)]:
        first = client.get(f"/status/{code}", follow_redirects=False)
        second = client.get(f"/status/{code}", follow_redirects=False)
        assert first.status_code == second.status_code == code
        assert (second.headers["x-cache"] == "HIT") == stored, code
        assert client.app_calls[f"status-{code}"] == (1 if stored else 2), code


def test_only_get_is_cached(client):
    assert client.post("/items/1").json()["n"] == 1
    assert client.post("/items/1").json()["n"] == 2


def test_head_is_answered_from_the_stored_get(client):
    h = client.head("/raw/a")  # a miss: made as a GET, stored, sent without its body
    assert h.status_code == 200 and h.content == b"" and h.headers["x-cache"] == "MISS"
    g = client.get("/raw/a")
    assert g.headers["x-cache"] == "HIT" and g.json()["x"] == "a"
    h2 = client.head("/raw/a")
    assert h2.headers["x-cache"] == "HIT" and h2.content == b""
    assert h2.headers["content-length"] == str(len(g.content))
    assert client.app_calls["raw"] == 1


def test_request_no_cache_remakes_and_no_store_does_not_store(client):
    assert client.get("/items/3").json()["n"] == 1
    r = client.get("/items/3", headers={"Cache-Control": "no-cache"})
    assert r.json()["n"] == 2 and r.headers["x-cache"] == "MISS"
    assert client.get("/items/3").json()["n"] == 2  # the new response was stored
    assert client.get("/items/3", headers={"Pragma": "no-cache"}).json()["n"] == 3
    assert client.get("/items/3", headers={"Cache-Control": "max-age=0"}).json()["n"] == 4
    r = client.get("/items/4", headers={"Cache-Control": "no-store"})
    assert r.json()["n"] == 5 and r.headers["x-cache"] == "PASS"
    assert client.get("/items/4").json()["n"] == 6  # nothing had been stored
    r = client.get("/items/4", headers={"Cache-Control": "no-store"})
    assert r.json()["n"] == 6  # no-store still may use a stored response


def test_request_directives_can_be_ignored(config_for):
    app = FastAPI()
    setup_cache(app, CacheManager(config_for()))
    app.add_middleware(ResponseCacheMiddleware, paths=["/*"], request_directives=False)
    n = []

    @app.get("/x")
    async def x():
        n.append(1)
        return len(n)

    with TestClient(app) as c:
        c.get("/x")
        assert c.get("/x", headers={"Cache-Control": "no-cache"}).json() == 1


# ---- bodies --------------------------------------------------------------------------------------
def test_a_streamed_response_is_stored_at_its_end(client):
    r1 = client.get("/stream")
    assert r1.text == "chunk 0 of 1;chunk 1 of 1;chunk 2 of 1;"
    assert r1.headers["x-cache"] == "MISS" and "etag" not in r1.headers
    r2 = client.get("/stream")
    assert r2.headers["x-cache"] == "HIT" and r2.text == r1.text and "etag" in r2.headers
    assert client.app_calls["stream"] == 1


def test_event_streams_and_large_bodies_are_passed_through(client):
    for _ in range(2):
        r = client.get("/events")
        assert r.text == "data: 1\n\n" and r.headers["x-cache"] == "PASS"
        b = client.get("/big")
        assert len(b.text) > 200 and b.headers["x-cache"] == "PASS"
    assert client.app_calls["events"] == 2 and client.app_calls["big"] == 2


# ---- invalidation --------------------------------------------------------------------------------
def test_invalidation_by_route_pattern(client):
    assert client.get("/items/1").json()["n"] == 1
    assert client.get("/items/1?q=x").json()["n"] == 2
    assert client.get("/items/10").json()["n"] == 3
    client.put("/items/1")  # @cache_invalidate(route_pattern("/items/{item_id}"))
    assert client.get("/items/1").json()["n"] == 4
    assert client.get("/items/1?q=x").json()["n"] == 5
    assert client.get("/items/10").json()["n"] == 3  # another path: untouched
    assert clear(client, "route:/items/*") >= 3
    assert client.get("/items/10").json()["n"] == 6


def test_hosts_have_their_own_entries(client):
    a = client.get("/raw/h", headers={"Host": "a.example"}).json()
    b = client.get("/raw/h", headers={"Host": "b.example"}).json()
    assert a["host"] == "a.example" and b["host"] == "b.example"
    assert client.get("/raw/h", headers={"Host": "A.example"}).json() == a


def test_key_host_false_shares_across_hosts(config_for):
    app = FastAPI()
    setup_cache(app, CacheManager(config_for()))
    app.add_middleware(ResponseCacheMiddleware, paths=["/*"], key_host=False)

    @app.get("/x")
    async def x(request: Request):
        return request.headers["host"]

    with TestClient(app) as c:
        assert c.get("/x", headers={"Host": "a"}).json() == "a"
        assert c.get("/x", headers={"Host": "b"}).json() == "a"


def test_a_foreign_value_under_a_route_key_is_a_miss(client):
    async def put():
        await client.manager.set("route:/items/77 @http://testserver", {"not": "a response"})
        await client.manager.set("route:/items/78 @http://testserver",
                                 b"shmcache-response/1\n\xff")
    client.portal.call(put)
    assert client.get("/items/77").json()["n"] == 1
    assert client.get("/items/78").json()["n"] == 2
    assert client.get("/items/77").headers["x-cache"] == "HIT"


def test_without_the_middleware_the_decorator_says_so(config_for):
    app = FastAPI()
    setup_cache(app, CacheManager(config_for()), responses=False)

    @app.get("/x")
    @cache_response(ttl=5)
    async def x():
        return 1

    with TestClient(app) as c:
        with pytest.raises(RuntimeError, match="needs ResponseCacheMiddleware"):
            c.get("/x")


def test_stats_count_http_outcomes(client):
    client.get("/items/1")
    client.get("/items/1")
    client.get("/cookie")
    client.get("/items/1", headers={"Authorization": "x"})
    process = client.get("/metrics/cache").json()["process"]
    assert process["http_hits"] == 1 and process["http_stores"] == 1
    assert process["http_uncacheable"] == 1 and process["http_bypass"] == 1


# ---- single flight, stale-while-revalidate, hit-for-pass -----------------------------------------
def async_app(config, **policy):
    """An app with one slow route, and its manager, for concurrent requests."""
    manager = CacheManager(config)
    app = FastAPI()
    app.add_middleware(ResponseCacheMiddleware, manager=manager)
    state = {"calls": 0, "running": 0, "max_running": 0, "cookie": False}

    @app.get("/slow")
    @cache_response(ttl=60, **policy)
    async def slow(response: Response):
        state["calls"] += 1
        state["running"] += 1
        state["max_running"] = max(state["max_running"], state["running"])
        try:
            await asyncio.sleep(0.2)
        finally:
            state["running"] -= 1
        if state["cookie"]:
            response.set_cookie("s", "1")
        return {"calls": state["calls"]}

    return app, manager, state


async def gather_gets(app, n, path="/slow"):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        return await asyncio.gather(*[c.get(path) for _ in range(n)])


def test_single_flight_computes_once(config_for):
    app, manager, state = async_app(config_for())

    async def go():
        await manager.start()
        try:
            return await gather_gets(app, 8)
        finally:
            await manager.stop()

    rs = asyncio.run(go())
    assert state["calls"] == 1
    assert {r.content for r in rs} == {b'{"calls":1}'}
    assert sorted(r.headers["x-cache"] for r in rs) == ["HIT"] * 7 + ["MISS"]
    assert len({r.headers["etag"] for r in rs}) == 1


def test_without_single_flight_every_caller_computes(config_for):
    app, manager, state = async_app(config_for(), single_flight=False)

    async def go():
        await manager.start()
        try:
            await gather_gets(app, 4)
        finally:
            await manager.stop()

    asyncio.run(go())
    assert state["calls"] == 4


def test_uncacheable_responses_do_not_queue_behind_a_lease(config_for):
    """Hit-for-pass: once a URL's response proved uncacheable, concurrent requests for it run
    side by side instead of each waiting for the previous one's lease."""
    app, manager, state = async_app(config_for())
    state["cookie"] = True

    async def go():
        await manager.start()
        try:
            await gather_gets(app, 1)
            state["max_running"] = 0
            return await gather_gets(app, 4)
        finally:
            await manager.stop()

    rs = asyncio.run(go())
    assert all(r.headers["x-cache"] == "PASS" for r in rs)
    assert state["calls"] == 5 and state["max_running"] == 4


def test_stale_while_revalidate(client, mode):
    # With Redis too: Redis keeps the key for TTL + stale_ttl, so its expiry does not drop the
    # copies that may still be served stale (docs/l2.md, "Stale-while-revalidate").
    first = client.get("/stale").json()
    time.sleep(1.2)  # past the 1 s TTL, inside the 30 s stale window
    r = client.get("/stale")
    assert r.headers["x-cache"] == "STALE" and r.json() == first
    assert int(r.headers["age"]) >= 1
    assert r.headers["cache-control"] == "max-age=1, stale-while-revalidate=30"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the background refresh stores the new response
        r = client.get("/stale")
        if r.headers["x-cache"] == "HIT" and r.json()["n"] == 2:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"no refreshed response; last {r.headers['x-cache']} {r.json()}")
    assert client.app_calls["stale"] == 2


def test_entries_that_never_expire_tell_other_caches_to_revalidate(config_for):
    app = FastAPI()
    setup_cache(app, CacheManager(config_for(memory_cache_ttl=0)))

    @app.get("/forever")
    @cache_response()
    async def forever():
        return "kept until invalidated"

    with TestClient(app) as c:
        first, second = c.get("/forever"), c.get("/forever")
        assert first.headers["cache-control"] == "no-cache"
        assert second.headers["x-cache"] == "HIT"
        etag = second.headers["etag"]
        assert c.get("/forever", headers={"If-None-Match": etag}).status_code == 304


@pytest.mark.parametrize("fault", ["killed", "hung"])
def test_redis_down_or_hung_costs_no_response(redis_server, shm_name, fault):
    """With Redis as L2: when it dies or hangs, responses are still made and sent, each request
    within the Redis timeout, never an error."""
    from shmcache import CacheConfig

    config = CacheConfig(shm_name=shm_name, shm_size=8 << 20, redis_url=redis_server.url,
                         enable_monitoring=False)  # Redis calls bounded at 0.1 s
    app = FastAPI()
    setup_cache(app, CacheManager(config))
    n = []

    @app.get("/p/{i}")
    @cache_response(ttl=60)
    async def p(i: int):
        n.append(i)
        return {"i": i, "n": len(n)}

    with TestClient(app) as c:
        stored = c.get("/p/1").json()
        assert c.get("/p/1").headers["x-cache"] == "HIT"
        if fault == "killed":
            redis_server.kill()
        else:
            redis_server.stop()
        try:
            for _ in range(3):
                started = time.monotonic()
                # From L1, or made again once L1 stops serving copies of Redis values (within
                # its link lease, docs/l2.md): the same response either way.
                r = c.get("/p/1")
                assert r.status_code == 200 and r.json()["i"] == stored["i"]
                r = c.get("/p/2")
                assert r.status_code == 200 and r.json()["i"] == 2
                assert time.monotonic() - started < 3
        finally:
            if fault == "hung":
                redis_server.cont()


def test_the_applications_own_max_age_bounds_the_entry(config_for):
    app = FastAPI()
    setup_cache(app, CacheManager(config_for()))
    n = []

    @app.get("/short")
    @cache_response(ttl=60)
    async def short(response: Response):
        n.append(1)
        response.headers["Cache-Control"] = "public, max-age=60, s-maxage=1"
        return len(n)

    @app.get("/zero")
    @cache_response(ttl=60)
    async def zero(response: Response):
        n.append(1)
        response.headers["Cache-Control"] = "max-age=0"
        return len(n)

    with TestClient(app) as c:
        first = c.get("/short")
        assert first.headers["cache-control"] == "public, max-age=60, s-maxage=1"  # kept
        assert c.get("/short").headers["x-cache"] == "HIT"
        time.sleep(1.3)  # s-maxage=1 wins over max-age and over the policy's 60 s
        assert c.get("/short").json() == 2
        assert c.get("/zero").headers["x-cache"] == "PASS"
        assert c.get("/zero").json() == 4


def test_a_fill_is_made_whole_and_unconditional(config_for):
    """Path rule: the application does not see the client's conditionals or Range when the
    response is made to be stored; the client's If-None-Match is answered from the stored
    ETag. So an application's own 304 or 206 never takes the place of the stored response."""
    app = FastAPI()
    setup_cache(app, CacheManager(config_for()))
    app.add_middleware(ResponseCacheMiddleware, paths=["/doc"])
    seen = []

    @app.get("/doc")
    async def doc(request: Request):
        seen.append({k: v for k, v in request.headers.items()
                     if k in ("if-none-match", "range")})
        if "range" in request.headers:
            return Response(b"par", status_code=206)
        if request.headers.get("if-none-match") == '"mine"':
            return Response(status_code=304)
        return PlainTextResponse("the whole document")

    with TestClient(app) as c:
        r = c.get("/doc", headers={"Range": "bytes=0-2", "If-None-Match": '"mine"'})
        assert r.status_code == 200 and r.text == "the whole document"
        assert r.headers["x-cache"] == "MISS"
        assert seen == [{}]
        r = c.get("/doc")
        assert r.headers["x-cache"] == "HIT" and r.text == "the whole document"


def test_an_operations_own_304_is_passed_on_and_not_remembered(config_for):
    app = FastAPI()
    setup_cache(app, CacheManager(config_for()))
    n = []

    @app.get("/conditional")
    @cache_response(ttl=60)
    async def conditional(if_none_match: str | None = Header(None)):
        n.append(1)
        if if_none_match == '"v1"':
            return Response(status_code=304, headers={"ETag": '"v1"'})
        return Response(b"version 1", headers={"ETag": '"v1"'}, media_type="text/plain")

    with TestClient(app) as c:
        assert c.get("/conditional", headers={"If-None-Match": '"v1"'}).status_code == 304
        r = c.get("/conditional")  # no pass record in the way: made and stored now
        assert r.status_code == 200 and r.headers["x-cache"] == "MISS"
        r = c.get("/conditional")
        assert r.headers["x-cache"] == "HIT" and r.text == "version 1"
        assert r.headers["etag"] == '"v1"'  # the application's own tag is kept
        assert c.get("/conditional", headers={"If-None-Match": '"v1"'}).status_code == 304
        assert len(n) == 2

def plain_app(config):
    app = FastAPI()
    setup_cache(app, CacheManager(config))
    return app


# ---- found in review: HEAD through an operation, preconditions on non-2xx, stale forbidden ------
def test_a_response_made_for_head_is_not_served_to_get(config_for):
    """A @cache_response operation on a route that accepts HEAD: what it makes for a HEAD (here
    headers only) is never stored, so a later GET gets the whole response, not an empty one."""
    app = plain_app(config_for())

    @app.api_route("/doc", methods=["GET", "HEAD"])
    @cache_response(ttl=60)
    async def doc(request: Request):
        if request.method == "HEAD":  # a common shortcut: headers only
            return Response(media_type="text/plain", headers={"x-len": "9"})
        return Response("full body", media_type="text/plain")

    with TestClient(app) as c:
        assert c.head("/doc").status_code == 200
        got = c.get("/doc")
        assert got.content == b"full body", (got.headers.get("x-cache"), got.content)


@pytest.mark.parametrize("inm", ["*", "etag", "* on the miss"])
def test_if_none_match_is_ignored_for_a_stored_404(config_for, inm):
    """RFC 9110 13.2.1: preconditions are ignored when the response would not be 2xx (or 412).
    A stored 404 (cacheable by default) is sent as a 404 to If-None-Match: * (which means 'no
    current representation exists') and to its own ETag, never as a 304."""
    app = plain_app(config_for())

    @app.get("/gone")
    @cache_response(ttl=60)
    async def gone(response: Response):
        response.status_code = 404
        return {"detail": "not found"}

    with TestClient(app) as c:
        if inm == "* on the miss":  # _send_whole: the 404 just made is turned into a 304
            made = c.get("/gone", headers={"if-none-match": "*"})
            assert made.status_code == 404, (made.status_code, made.headers)
            return
        first = c.get("/gone")
        assert first.status_code == 404
        tag = "*" if inm == "*" else first.headers["etag"]
        again = c.get("/gone", headers={"if-none-match": tag})
        assert again.status_code == 404, (again.status_code, again.headers)


@pytest.mark.parametrize("cc", ["max-age=1, must-revalidate", "s-maxage=1",
                                "max-age=1, proxy-revalidate"])
def test_a_response_that_forbids_stale_is_not_served_stale(config_for, cc):
    """RFC 9111 5.2.2.2/5.2.2.8/5.2.2.10: once stale, a response with must-revalidate,
    proxy-revalidate or (in a shared cache) s-maxage must not be reused without revalidation.
    So with stale_ttl set, such a response is made again once stale, never sent as STALE."""
    app = plain_app(config_for())
    made = []

    @app.get("/strict")
    @cache_response(ttl=60, stale_ttl=60)
    async def strict(response: Response):
        made.append(1)
        response.headers["Cache-Control"] = cc
        return {"n": len(made)}

    with TestClient(app) as c:
        assert c.get("/strict").json() == {"n": 1}
        time.sleep(1.6)
        later = c.get("/strict")
        assert later.headers.get("x-cache") != "STALE", later.headers
        assert later.json() == {"n": 2}
