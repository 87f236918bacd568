"""responses.py - HTTP response caching for ASGI applications and FastAPI path operations, in the
shared cache: one stored response per host (and in Redis when configured), the same ETag from
every worker and every host, 304 revalidation, single flight and stale-while-revalidate.

    from shmcache.responses import ResponseCacheMiddleware, cache_response

    app.add_middleware(ResponseCacheMiddleware)        # or setup_cache(app, ...), which adds it

    @app.get("/products/{product_id}")
    @cache_response(ttl=60, vary=["accept-language"])
    async def product(product_id: int): ...

Two ways to choose what is cached:
  * @cache_response on a path operation (under @app.get). FastAPI resolves the operation's
    dependencies first (an authentication dependency still runs on a hit), then the decorator
    looks the response up; on a miss the operation runs, FastAPI serializes its result
    (response_model and all), and the middleware stores the response it sends.
  * ResponseCacheMiddleware(app, paths=["/catalog/*"], ttl=...) caches every GET to those paths
    before routing, as a reverse proxy would (the application is not entered on a hit).
The middleware is needed either way: it captures the response on its way out and stores it.

The rules (RFC 9110/9111; _http.py has them, docs/python.md "HTTP response caching" lists them):
only GET is stored, HEAD is answered from a stored GET response; only the heuristically
cacheable statuses; never a response with Set-Cookie, Cache-Control private, no-store or
no-cache, Vary: *, or an event stream; a request carrying one of `private_headers`
(Authorization and Cookie by default) bypasses the cache unless the policy varies on that
header; request Cache-Control no-cache (or max-age=0, or Pragma: no-cache) makes the response
again and stores it, no-store leaves it unstored. A stored response is sent with an ETag (a
content digest unless the application set one), Cache-Control max-age=<ttl> (unless the
application set Cache-Control), Age, Vary, and X-Cache: HIT, STALE, MISS or PASS; a request
whose If-None-Match matches (weak comparison) gets 304.

Keys are documented in _http.py: "route:/users/1 @http://host" and its variants, so that
clear_pattern("route:/users/*") or @cache_invalidate(route_pattern("/users/{user_id}")) drop a
route's responses on every worker (and in Redis).
"""
import asyncio
import functools
import inspect
import math
import time
import types

from . import _http
from ._core import MISS, log
from ._ffi import FETCH_STALE, FETCH_STALE_REFRESH, SER_RAW, TIER_L2
from .decorators import (_REFRESH_OUTCOMES, FlightPolicy, _abandon_soon, _complete,
                         _compute_ms_since, _seconds, acquire_async, spawn_refresh)
from .errors import ShmcacheError, ValueTooLargeError
from .keys import escape_glob
from .manager import CacheManager, get_cache_manager

_EXCHANGE = "shmcache.response_exchange"  # scope key: this request's _Exchange
_REFRESH = "shmcache.response_refresh"  # scope key of a background refresh: (key, lease)
_PASS_TTL_S = 10  # how long a URL whose responses cannot be stored skips single flight
_ANY = (b"GET", b"HEAD")


class ResponsePolicy:
    """How responses are cached; the arguments of cache_response and ResponseCacheMiddleware.

    ttl            seconds a stored response is fresh (None: the cache's default TTL); also
                   Cache-Control max-age;
    vary           request headers the response varies on, besides those its Vary names;
    stale_ttl, early_refresh, single_flight, lease_timeout, wait_timeout: as in @cached;
    key_prefix     the keys' first part ("route");
    statuses       the statuses stored (default: RFC 9110's heuristically cacheable ones);
    private_headers  a request carrying one of these bypasses the cache (not looked up, not
                   stored) unless `vary` names it (then each value has its own entry);
    key_host       the Host header is part of the key (True: a multi-tenant app never serves
                   one host's page to another);
    max_body_size  bytes; a larger response is passed through and not stored;
    status_header  the header saying HIT/STALE/MISS/PASS (None: not sent);
    request_directives  honour the request's Cache-Control no-cache/no-store;
    tier           the tiers to store in (None: the cache's)."""

    __slots__ = ("ttl", "vary", "stale_ttl", "flight", "key_prefix", "statuses", "private",
                 "key_host", "max_body_size", "status_header", "request_directives", "tier")

    def __init__(self, ttl=None, *, vary=(), stale_ttl=None, early_refresh=None,
                 single_flight=None, lease_timeout=None, wait_timeout=None, key_prefix="route",
                 statuses=None, private_headers=("authorization", "cookie"), key_host=True,
                 max_body_size=1 << 20, status_header="X-Cache", request_directives=True,
                 tier=None):
        self.ttl = None if ttl is None else _seconds(ttl, "ttl", False)
        self.vary = _header_names(vary, "vary")
        self.stale_ttl = stale_ttl
        self.flight = FlightPolicy(single_flight, stale_ttl, early_refresh, lease_timeout,
                                   wait_timeout)
        if not isinstance(key_prefix, str) or not key_prefix or " " in key_prefix:
            raise ValueError(f"key_prefix must be a non-empty str without spaces, not "
                             f"{key_prefix!r}")
        self.key_prefix = key_prefix
        if statuses is None:
            self.statuses = _http.CACHEABLE_STATUSES
        else:
            self.statuses = frozenset(statuses)
            if not all(isinstance(s, int) and 100 <= s <= 599 for s in self.statuses):
                raise ValueError(f"statuses must be HTTP status codes, not {statuses!r}")
        self.private = tuple(n for n in _header_names(private_headers, "private_headers")
                             if n not in self.vary)
        self.key_host = bool(key_host)
        if isinstance(max_body_size, bool) or not isinstance(max_body_size, int) \
                or max_body_size <= 0:
            raise ValueError(f"max_body_size must be a positive int, not {max_body_size!r}")
        self.max_body_size = max_body_size
        if status_header is not None and (not isinstance(status_header, str)
                                          or not status_header.strip()):
            raise ValueError(f"status_header must be a header name or None, not "
                             f"{status_header!r}")
        self.status_header = status_header.strip().lower().encode() if status_header else None
        self.request_directives = bool(request_directives)
        self.tier = tier

    def ttl_seconds(self, core):
        """The TTL in whole seconds (at least 1) for Cache-Control; None when entries never
        expire (memory_cache_ttl=0 and no ttl): kept until invalidated."""
        if self.ttl is None and not core.l1_ttl_ms:
            return None
        seconds = self.ttl if self.ttl is not None else core.l1_ttl_ms / 1000
        return max(1, int(math.floor(seconds)))

    def index_key(self, scope, headers):
        host = headers.get(b"host") if self.key_host else None
        if self.key_host and host is None:
            host = b""
        return _http.index_key(self.key_prefix, _http.path_bytes(scope),
                               scope.get("query_string", b""), host,
                               scope.get("scheme", "http").encode("latin-1"))


def _header_names(names, what):
    if isinstance(names, (str, bytes)):
        names = [names]
    out = set()
    for n in names:
        if isinstance(n, bytes):
            n = n.decode("latin-1")
        if not isinstance(n, str) or not n.strip() or any(c in n for c in " ,:\r\n"):
            raise ValueError(f"{what}: {n!r} is not a header name")
        out.add(n.strip().lower().encode("latin-1"))
    return tuple(sorted(out))


def route_pattern(template, key_prefix="route"):
    """A purge pattern for the responses of one path, with any query, host and variant:
    route_pattern("/users/1") is "route:/users/1 *". With {fields}, a callable pattern for
    @cache_invalidate: each field is the str() of the decorated function's argument of that
    name, as it appears in the path (route_pattern("/users/{user_id}"))."""
    if "{" not in template:
        return f"{key_prefix}:{_http.route_glob(template, escape_glob)}"
    fields = [name for _, name, _, _ in __import__("string").Formatter().parse(template) if name]

    def pattern(*args, **kwargs):
        values = {}
        for name in fields:
            if name not in kwargs:
                raise TypeError(f"route_pattern({template!r}) needs the argument {name!r} by "
                                "name (call the decorated function with keyword arguments, "
                                "as FastAPI does)")
            values[name] = str(kwargs[name])
        return f"{key_prefix}:{_http.route_glob(template.format(**values), escape_glob)}"

    pattern.__qualname__ = f"route_pattern({template!r})"
    return pattern


# ---- one request ---------------------------------------------------------------------------------
class _Plan:
    """How the response the application is about to send will be stored."""

    __slots__ = ("index", "key", "lease", "work", "store", "started")

    def __init__(self, index, key=None, lease=0, work=None, store=True):
        self.index = index  # the request's index key
        self.key = key  # the key the lease is on (None: no lease)
        self.lease, self.work, self.store = lease, work, store
        self.started = time.monotonic()


class _Exchange:
    """The cache's view of one HTTP request, from the middleware's entry to its exit."""

    __slots__ = ("mw", "scope", "initial", "method", "_headers", "manager", "policy", "plan",
                 "refresh", "decided", "head", "chunks", "size", "streaming", "passing",
                 "strip_body")

    def __init__(self, mw, scope):
        self.mw = mw
        self.scope = scope
        self.initial = dict(scope)  # as it came in: what a background refresh replays
        self.method = scope.get("method", "GET").encode()
        self._headers = None
        self.manager = self.policy = self.plan = None
        self.refresh = scope.get(_REFRESH)
        self.decided = False  # begin() ran (by a path rule or a decorated operation)
        self.head = None
        self.chunks, self.size, self.streaming, self.passing = [], 0, False, False
        self.strip_body = False

    @property
    def headers(self):
        """The request's headers by name, parsed when first needed (not for routes that are
        not cached)."""
        if self._headers is None:
            self._headers = _http.RequestHeaders(self.initial.get("headers", ()))
        return self._headers

    @property
    def eligible(self):
        return self.method in _ANY and not self.decided

    # ---- the lookup ----

    async def begin(self, policy, mw=None, head_as_get=False):
        """Decide this GET or HEAD: (StoredResponse, stale) to send, or None, when the
        application makes the response (self.plan then says how it is stored, if at all).
        mw: the middleware whose manager to use (None: the outermost one's). head_as_get: a
        HEAD will be made as a GET (a path rule); otherwise what the application makes for a
        HEAD is never stored (it may lack the body a GET needs)."""
        self.decided = True
        self.policy = policy
        manager = self.manager = (mw or self.mw).manager_for(self.scope)
        core = manager.core
        if not core.is_open:
            await manager.off_loop(core.segment)
        headers = self.headers
        index = policy.index_key(self.scope, headers)
        for name in policy.private:
            if name in headers:  # not looked up, not stored, sent as made (X-Cache: PASS)
                core.counters.add("http_bypass")
                self.plan = _Plan(index, store=False)
                return None
        if self.refresh is not None:  # a background refresh: make it, store it under the lease
            key, lease = self.refresh
            self.refresh = None
            self.plan = _Plan(index, key, lease)
            return None
        rules = _http.RequestRules(headers, policy.request_directives)
        store = not rules.no_store and (head_as_get or self.method != b"HEAD")
        if rules.no_cache:
            self.plan = _Plan(index, store=store)
            return None
        key = index
        for _ in range(3):  # the index, then a variant; once more if the vary record moved
            outcome, lease, value, work = await self._fetch(core, policy, key, store)
            found = _http.decode(value) if value is not MISS else None
            stale = outcome in (FETCH_STALE, FETCH_STALE_REFRESH)
            kind, data = found if found is not None else (None, None)
            if kind == "response" and stale and data.no_stale:
                kind = None  # it forbids being served stale: made again, under the lease held
            elif lease and value is not MISS and outcome in _REFRESH_OUTCOMES:
                if kind in ("response", "vary"):  # used now, made again in the background
                    self._refresh_later(core, key, lease)
                    lease = 0
            if kind is None or kind == "pass":  # made by the application
                if lease or work is not None:  # under this lease (a stale pass record's too)
                    self.plan = _Plan(index, key, lease, work, store=store)
                else:  # no lease (a pass record, a wait given up, single flight off)
                    self.plan = _Plan(index, store=store)
                return None
            if kind == "response":
                core.counters.add("http_hits")
                return data, stale
            key = _http.variant_key(index, data, headers)  # a vary record
        self.plan = _Plan(index, store=store)
        return None


    async def _fetch(self, core, policy, key, leasing):
        """(outcome, lease, value, work) for key: single flight when it applies."""
        tiers = core.default_tiers if policy.tier is None else core.tiers(policy.tier)
        if leasing and policy.flight.applies(tiers):
            nowait_ref, wait_ref, _ = policy.flight.options(core, policy.ttl, policy.tier)
            return await acquire_async(core, policy.flight, key, core.stored_key(key),
                                       nowait_ref, wait_ref, None)
        value = await core.alookup(self.manager.off_loop, key, tiers)
        return 0, 0, value, None

    def _refresh_later(self, core, key, lease):
        """Serve the stale value now; make the response again in the background, replaying the
        request as it came in (the application sees an ordinary GET), under the lease."""
        scope = dict(self.initial)
        scope["headers"] = _http.without_conditionals(scope.get("headers", ()))
        scope[_REFRESH] = (key, lease)
        spawn_refresh(core, core.stored_key(key), lease, self.policy.flight.lease_ms,
                      self.mw.replay(scope))

    # ---- sending a stored response ----

    async def send_stored(self, send, stored, stale):
        policy = self.policy
        status_value = b"STALE" if stale else b"HIT"
        age = max(0, int(time.time() - stored.stored_at))
        if stored.conditional and _http.if_none_match_matches(
                self.headers.get(b"if-none-match"), stored.etag):
            headers = _http.not_modified_headers(stored.headers, age, policy.status_header,
                                                 status_value)
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        if policy.status_header:
            headers = [*stored.sent_headers, (b"age", str(age).encode()),
                       (policy.status_header, status_value)]
        else:
            headers = [*stored.sent_headers, (b"age", str(age).encode())]
        await send({"type": "http.response.start", "status": stored.status, "headers": headers})
        body = b"" if self.method == b"HEAD" else stored.body
        await send({"type": "http.response.body", "body": body})

    # ---- capturing what the application sends ----

    def wrap(self, client_send):
        """The send the application gets: it captures the response when self.plan says it is
        to be stored (the plan may be made after this, by a decorated operation)."""
        async def send(message):
            if self.strip_body and message["type"] == "http.response.body" \
                    and message.get("body"):
                message = {**message, "body": b""}  # a HEAD made as a GET
            await client_send(message)

        async def capture(message):
            if self.plan is None or self.passing:
                return await send(message)
            kind = message["type"]
            if kind == "http.response.start":
                return await self._started(send, message)
            if kind != "http.response.body":
                return await send(message)
            body = message.get("body", b"")
            more = message.get("more_body", False)
            if self.size + len(body) > self.policy.max_body_size:
                await self._give_up(too_large=True)
                self.passing = True
                if not self.streaming:  # the held start goes out as the application made it
                    await send(self._start_message(self.head.headers, b"PASS"))
                    for chunk in self.chunks:
                        await send({"type": "http.response.body", "body": chunk,
                                    "more_body": True})
                self.chunks = []
                return await send(message)
            self.size += len(body)
            self.chunks.append(body)
            if not more and not self.streaming:  # the whole response: store, then send
                return await self._send_whole(send)
            if not self.streaming:  # a streamed response: sent as it comes, stored at its end
                self.streaming = True
                await send(self._start_message(self._streamed_headers(), b"MISS"))
            await send(message)
            if not more:
                await self._store(b"".join(self.chunks))

        return capture

    def _start_message(self, headers, status_value):
        if self.policy.status_header:
            headers = [*headers, (self.policy.status_header, status_value)]
        return {"type": "http.response.start", "status": self.head.status, "headers": headers}

    async def _started(self, send, message):
        self.head = head = _http.ResponseHead(message["status"], message.get("headers", ()),
                                              self.policy.statuses)
        if head.uncacheable is not None or not self.plan.store:
            if head.uncacheable is not None:
                self.manager.core.counters.add("http_uncacheable")
            await self._give_up(too_large=False)
            self.passing = True
            headers = list(message.get("headers", ()))
            if self.policy.status_header:
                headers.append((self.policy.status_header, b"PASS"))
            return await send({**message, "headers": headers})
        return None  # held until the body shows whether it comes whole

    def _streamed_headers(self):
        headers = _http.stored_headers(self.head, self._vary_names(), None,
                                       self.policy.ttl_seconds(self.manager.core),
                                       self.policy.stale_ttl, self.policy.status_header)
        length = self.head.header(b"content-length")
        return headers if length is None else [*headers, (b"content-length", length)]

    def _vary_names(self):
        return sorted(set(self.policy.vary) | set(self.head.vary))

    async def _send_whole(self, send):
        body = b"".join(self.chunks)
        headers = await self._store(body)
        if 200 <= self.head.status < 300 and _http.if_none_match_matches(
                self.headers.get(b"if-none-match"), dict(headers).get(b"etag")):
            await send({"type": "http.response.start", "status": 304,
                        "headers": _http.not_modified_headers(headers, None,
                                                              self.policy.status_header,
                                                              b"MISS")})
            await send({"type": "http.response.body", "body": b""})
            return
        headers.append((b"content-length", str(len(body)).encode()))
        await send(self._start_message(headers, b"MISS"))
        await send({"type": "http.response.body", "body": body})

    # ---- storing ----

    async def _store(self, body):
        """Store the response (status and headers from self.head) under the plan; the header
        fields it is sent with."""
        plan, policy, head = self.plan, self.policy, self.head
        core = self.manager.core
        vary = self._vary_names()
        etag = head.header(b"etag") or _http.make_etag(head.status, head.headers, body)
        headers = _http.stored_headers(head, vary, etag, policy.ttl_seconds(core),
                                       policy.stale_ttl, policy.status_header)
        record = _http.encode_response(head.status, headers, body, time.time(), head.no_stale)
        if vary:
            writes = [(_http.variant_key(plan.index, vary, self.headers), record),
                      (plan.index, _http.encode_vary(vary))]
        else:
            writes = [(plan.index, record)]
        ttl = policy.ttl  # shortened to the application's own max-age / s-maxage
        if head.lifetime is not None:
            default = policy.ttl or (core.l1_ttl_ms / 1000) or head.lifetime
            ttl = min(default, head.lifetime)
        leased = None
        for key, payload in writes:
            if plan.lease and key == plan.key:
                leased = payload  # written last: its waiters then find the others written
            else:
                await self._put(key, payload, ttl if payload is record else policy.ttl)
        if leased is not None:
            await self._complete(leased, ttl if leased is record else policy.ttl)
        elif plan.lease:  # the lease's key was not written (its Vary changed): given back
            self.end()
        core.counters.add("http_stores")
        return headers

    async def _put(self, key, payload, ttl=None):
        core = self.manager.core
        policy = self.policy
        tiers = core.default_tiers if policy.tier is None else core.tiers(policy.tier)
        try:
            await core.astore_encoded(self.manager.off_loop, core.stored_key(key),
                                      (SER_RAW, payload), policy.ttl if ttl is None else ttl,
                                      tiers)
        except ValueTooLargeError as e:
            core.logs.event("http-too-large", f"response for {key[:80]!r} not cached: {e}")
        except ShmcacheError as e:
            core.logs.event("http-not-stored", f"response for {key[:80]!r} not cached: {e}")

    async def _complete(self, payload, ttl):
        """Store payload under the plan's lease, which ends it (the waiters get the value)."""
        plan, core, policy = self.plan, self.manager.core, self.policy
        lease, plan.lease = plan.lease, 0
        k = core.stored_key(plan.key)
        try:
            await self._complete_lease(core, policy, plan, k, payload, ttl, lease)
        finally:  # the coroutines of this process waiting for the key look again now
            if plan.work is not None:
                work, plan.work = plan.work, None
                work.finish()

    async def _complete_lease(self, core, policy, plan, k, payload, ttl, lease):
        _, wait_ref, tiers = policy.flight.options(core, ttl, policy.tier)
        args = (core, k, (SER_RAW, payload), _compute_ms_since(plan.started), wait_ref, tiers,
                lease, ttl)
        try:
            if tiers & TIER_L2 or core.has_l2:
                await asyncio.shield(self.manager.off_loop(_complete, *args))
            else:
                _complete(*args)
        except ValueTooLargeError as e:
            core.logs.event("http-too-large", f"response for {plan.key[:80]!r} not cached: {e}")
        except ShmcacheError as e:
            core.logs.event("http-not-stored", f"response for {plan.key[:80]!r} not cached: {e}")

    async def _give_up(self, too_large):
        """The response will not be stored. A lease held for it ends with a pass record when
        the response cannot be stored by its nature (the next requests for the URL go to the
        application at once, for up to _PASS_TTL_S), or is given back (a server error, or a 304
        or 206 answering this client's own conditional or range: the next waiter tries)."""
        plan = self.plan
        if not plan.lease:
            return
        status = self.head.status if self.head is not None else None
        if too_large or (status is not None and status < 500 and status not in (206, 304)):
            await self._complete(_http.PASS_RECORD, min(_PASS_TTL_S, self.policy.ttl
                                                        or _PASS_TTL_S))
        else:
            self.end()

    def end(self):
        """At the exchange's end, whatever happened: a lease still held is given back, and the
        coroutines of this process waiting for this key are released."""
        plan = self.plan
        if plan is not None:
            if plan.lease:
                lease, plan.lease = plan.lease, 0
                core = self.manager.core
                _abandon_soon(core, core.stored_key(plan.key), lease)
            if plan.work is not None:
                work, plan.work = plan.work, None
                work.finish()
        if self.refresh is not None:  # a refresh that never reached a cached route
            key, lease = self.refresh
            self.refresh = None
            manager = self.mw.manager_for(self.scope)
            _abandon_soon(manager.core, manager.core.stored_key(key), lease)


# ---- the middleware ------------------------------------------------------------------------------
class ResponseCacheMiddleware:
    """ASGI middleware: stores the responses of @cache_response operations, and with `paths`
    (globs over the path, e.g. "/catalog/*") caches every GET to them before routing.
    manager: a CacheManager, else app.state.cache (set by cache_lifespan), else the default
    manager. The other keyword arguments are ResponsePolicy's, for the `paths` rule."""

    def __init__(self, app, manager=None, paths=(), exclude=(), **policy):
        self.app = app
        if manager is not None and not isinstance(manager, CacheManager):
            raise TypeError("manager must be a CacheManager (the async one), not "
                            f"{type(manager).__name__}")
        self.manager = manager
        self.paths = _globs(paths, "paths")
        self.exclude = _globs(exclude, "exclude")
        self.policy = ResponsePolicy(**policy)

    def manager_for(self, scope):
        if self.manager is not None:
            return self.manager
        app = scope.get("app")
        state = getattr(app, "state", None)
        cache = getattr(state, "cache", None)
        return cache if isinstance(cache, CacheManager) else get_cache_manager()

    def _rule_applies(self, scope):
        if not self.paths:
            return False
        path = scope.get("root_path", "") + scope.get("path", "")
        return any(p(path) for p in self.paths) and not any(p(path) for p in self.exclude)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        outer = scope.get(_EXCHANGE)
        if outer is not None:  # inside another ResponseCacheMiddleware: its exchange serves
            return await self._apply_rule(outer, scope, receive, send, send)
        exchange = _Exchange(self, scope)
        scope[_EXCHANGE] = exchange
        try:
            await self._apply_rule(exchange, scope, receive, send, exchange.wrap(send))
        finally:
            exchange.end()

    async def _apply_rule(self, exchange, scope, receive, send, app_send):
        if exchange.eligible and self._rule_applies(scope):
            found = await exchange.begin(self.policy, self, head_as_get=True)
            if found is not None:
                return await exchange.send_stored(send, *found)
            if exchange.method == b"HEAD":  # made as a GET (stored for both), sent bodiless
                scope = {**scope, "method": "GET"}
                exchange.strip_body = True
            if exchange.plan is not None and exchange.plan.store:
                # Made to be stored: whole and unconditional (the client's If-None-Match is
                # answered here, from the stored ETag).
                scope = {**scope, "headers": _http.without_conditionals(scope["headers"])}
        await self.app(scope, receive, app_send)

    async def replay(self, scope):
        """A background refresh: the request again, its response stored and not sent."""
        async def receive():
            if not received:
                received.append(True)
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()  # no disconnect: the refresh runs to its end

        async def discard(message):
            pass

        received = []
        try:
            await self(scope, receive, discard)
        except Exception as e:
            log.warning("shmcache: background refresh of %s failed: %r", scope.get("path"), e)


def _globs(patterns, what):
    import fnmatch

    if isinstance(patterns, str):
        patterns = [patterns]
    out = []
    for p in patterns:
        if not isinstance(p, str) or not p.startswith("/"):
            raise ValueError(f"{what}: {p!r} is not a path glob (it starts with '/')")
        out.append(__import__("re").compile(fnmatch.translate(p)).match)
    return tuple(out)


# ---- the decorator -------------------------------------------------------------------------------
_REQUEST_PARAM = "shmcache_request__"


def cache_response(ttl=None, **policy):
    """Cache the responses of a FastAPI path operation (put it under @app.get). The arguments
    are ResponsePolicy's. The application needs ResponseCacheMiddleware (setup_cache adds it)."""
    options = ResponsePolicy(ttl, **policy)

    def decorate(endpoint):
        from fastapi import Request
        from starlette.concurrency import run_in_threadpool

        if not callable(endpoint):
            raise TypeError(f"@cache_response needs a function, got {type(endpoint).__name__}")
        try:  # string annotations resolved where they were written, to find a Request
            signature = inspect.signature(endpoint, eval_str=True)
        except Exception:  # a name defined later: FastAPI resolves it (with our globals below)
            signature = inspect.signature(endpoint)
        request_param = next((p.name for p in signature.parameters.values()
                              if isinstance(p.annotation, type)
                              and issubclass(p.annotation, Request)), None)
        injected = request_param is None
        if injected:
            params = list(signature.parameters.values())
            extra = inspect.Parameter(_REQUEST_PARAM, inspect.Parameter.KEYWORD_ONLY,
                                      annotation=Request)
            at = next((i for i, p in enumerate(params)
                       if p.kind is inspect.Parameter.VAR_KEYWORD), len(params))
            params.insert(at, extra)
            signature = signature.replace(parameters=params)
            request_param = _REQUEST_PARAM
        is_async = inspect.iscoroutinefunction(endpoint) or inspect.iscoroutinefunction(
            getattr(endpoint, "__call__", None))

        # Only closure variables and builtins inside: the wrapper runs with the endpoint's
        # globals (below), so that FastAPI resolves string annotations where they were written.
        async def wrapper(*args, **kwargs):
            request = kwargs.pop(request_param) if injected else kwargs[request_param]
            exchange = request.scope.get(exchange_key)
            if exchange is None:
                raise RuntimeError(missing_middleware)
            if exchange.eligible:
                found = await exchange.begin(options)
                if found is not None:
                    return stored_response(exchange, *found)
            if is_async:
                return await endpoint(*args, **kwargs)
            return await run_in_threadpool(endpoint, *args, **kwargs)

        exchange_key = _EXCHANGE
        stored_response = _StoredResponse
        missing_middleware = (
            f"@cache_response on {endpoint.__qualname__} needs ResponseCacheMiddleware: "
            "app.add_middleware(ResponseCacheMiddleware), or setup_cache(app, ...)")
        globals_ = getattr(endpoint, "__globals__", None)  # None: a partial, a callable object
        rebound = wrapper if globals_ is None else types.FunctionType(
            wrapper.__code__, globals_, wrapper.__name__, wrapper.__defaults__,
            wrapper.__closure__)
        try:
            functools.update_wrapper(rebound, endpoint)
        except AttributeError:  # a partial has no __name__
            rebound.__wrapped__ = endpoint
        rebound.__signature__ = signature
        rebound.cache_policy = options
        return rebound

    return decorate


def _stored_response_class():
    from starlette.responses import Response

    class StoredResponse(Response):
        """A stored response, returned by a @cache_response operation on a hit; FastAPI sends
        Response objects as they are."""

        def __init__(self, exchange, stored, stale):
            self.exchange, self.stored, self.stale = exchange, stored, stale
            self.background = None
            self.status_code = stored.status
            self.body = stored.body

        async def __call__(self, scope, receive, send):
            await self.exchange.send_stored(send, self.stored, self.stale)
            if self.background is not None:
                await self.background()

    return StoredResponse


class _LazyStoredResponse:
    """Starlette is imported only by applications that use it."""

    cls = None

    def __call__(self, exchange, stored, stale):
        if _LazyStoredResponse.cls is None:
            _LazyStoredResponse.cls = _stored_response_class()
        return _LazyStoredResponse.cls(exchange, stored, stale)


_StoredResponse = _LazyStoredResponse()
