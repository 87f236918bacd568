"""_http.py - the HTTP rules of response caching (RFC 9110 and 9111) as pure functions: the keys
of a request, the request and response directives, what may be stored, the stored record, and
the headers a stored response is sent with. responses.py does the I/O; docs/python.md
("HTTP response caching") states the same rules for users.

Keys. A response is found in two steps, so that Vary works without knowing it in advance:

    route:<path>[ ?<query>] @<scheme>://<host>            the index key: the response itself,
                                                          or a "vary" record naming the request
                                                          headers its responses vary on;
    route:<path>[ ?<query>] @<scheme>://<host> #<digest>  a variant: the response for one
                                                          combination of those headers' values
                                                          (a BLAKE2b digest).

<path> is root_path + path as the application routes it (decoded), <query> the query string as
sent (not reordered: ?a=1&b=2 and ?b=2&a=1 are two entries), <scheme> the request's (http or
https: pages with absolute links differ), <host> the Host header lowercased ("*" when the
policy leaves the host out). Each part is percent-escaped (%, space, '#', '*',
control and non-ASCII bytes), so no part can run into the next: the key is injective, and
"route:/users/1 *" matches exactly /users/1 with any query, host and variant. GET and HEAD
share entries; only GET stores.
"""
import hashlib
import json
import re
import struct

# RFC 9110 15.1: the statuses cacheable by default ("heuristically cacheable").
CACHEABLE_STATUSES = frozenset({200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501})

# RFC 9110 7.6.1 hop-by-hop fields, and fields a stored response must not repeat: the server
# adds its own Date; Content-Length, Age and the status header are made at each send.
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate",
                         b"proxy-authorization", b"te", b"trailer", b"transfer-encoding",
                         b"upgrade", b"proxy-connection"})
_MADE_AT_SEND = frozenset({b"date", b"content-length", b"age"})

# RFC 9110 15.4.5: the fields a 304 carries (those the 200 would have had), besides Date.
_NOT_MODIFIED_FIELDS = frozenset({b"cache-control", b"content-location", b"etag", b"expires",
                                  b"vary"})

_SAFE_BYTES = frozenset(range(0x21, 0x7F)) - {ord("%"), ord("#"), ord("*")}
_ESCAPED = {b: f"%{b:02X}" for b in range(256) if b not in _SAFE_BYTES}


_NEEDS_ESCAPE = re.compile(rb"[^\x21-\x7e]|[%#*]").search


def escape_part(raw):
    """A key part (bytes) as text with %, space, '#', '*', control and non-ASCII bytes
    percent-escaped: injective, and free of the separators " ?", " @" and " #"."""
    if _NEEDS_ESCAPE(raw) is None:
        return raw.decode("ascii")
    return "".join(_ESCAPED.get(b) or chr(b) for b in raw)


def path_bytes(scope):
    """The routed path (root_path + path) of an ASGI scope, as UTF-8 bytes."""
    path = scope.get("root_path", "") + scope.get("path", "")
    return path.encode("utf-8", "surrogateescape")


def index_key(prefix, path, query, host, scheme=b"http"):
    """The index key of a request: prefix, escaped path, query (bytes, may be empty), scheme
    and host (bytes, or None when the policy leaves it out)."""
    key = f"{prefix}:{escape_part(path)}"
    if query:
        key += f" ?{escape_part(query)}"
    where = "*" if host is None else escape_part(host.lower())
    return f"{key} @{escape_part(scheme.lower())}://{where}"


def variant_key(index, names, headers):
    """The key of the variant of index for the values of the request headers `names` (sorted,
    lowercase bytes) in headers (a RequestHeaders). An absent header and an empty one differ."""
    h = hashlib.blake2b(digest_size=16)
    for name in names:
        value = headers.get(name)
        h.update(name + (b"\x00" if value is None else b"\x01" + value) + b"\x02")
    return f"{index} #{h.hexdigest()}"


def route_glob(path_text, escape_glob):
    """The purge pattern matching one path (str, as routed) with any query, host and variant."""
    return f"{escape_glob(escape_part(path_text.encode('utf-8', 'surrogateescape')))} *"


class RequestHeaders:
    """The request's header fields by lowercase name, repeated fields joined with ", "."""

    __slots__ = ("_fields",)

    def __init__(self, raw):
        fields = {}
        for name, value in raw:
            name = name.lower()
            old = fields.get(name)
            fields[name] = value if old is None else old + b", " + value
        self._fields = fields

    def get(self, name):
        return self._fields.get(name)

    def __contains__(self, name):
        return name in self._fields


_CONDITIONALS = frozenset({b"if-none-match", b"if-modified-since", b"if-match",
                           b"if-unmodified-since", b"if-range", b"range"})


def without_conditionals(raw_headers):
    """Request headers without the conditional and range fields: what a cache sends when it
    fetches a response to store (RFC 9111 4.3.1: the client's conditions are answered by the
    cache, from what it stores)."""
    return [(n, v) for n, v in raw_headers if n.lower() not in _CONDITIONALS]


def directives(value):
    """Cache-Control directives (bytes field value) as {name: argument or None}, names
    lowercase; quoted arguments unquoted. Unparseable pieces are ignored."""
    out = {}
    if not value:
        return out
    for part in _split_list(value):
        name, sep, arg = part.partition(b"=")
        name = name.strip().lower()
        if not name:
            continue
        arg = arg.strip()
        if sep and len(arg) >= 2 and arg[:1] == b'"' and arg[-1:] == b'"':
            arg = arg[1:-1]
        out[name.decode("latin-1")] = arg.decode("latin-1") if sep else None
    return out


def _split_list(value):
    """A comma-separated field value, commas inside quoted strings kept."""
    parts, cur, quoted = [], bytearray(), False
    for b in value:
        if b == 0x22:  # "
            quoted = not quoted
        if b == 0x2C and not quoted:  # ,
            parts.append(bytes(cur))
            cur.clear()
        else:
            cur.append(b)
    parts.append(bytes(cur))
    return parts


def _seconds_arg(arg):
    try:
        return int(arg)
    except (TypeError, ValueError):
        return None


class RequestRules:
    """What the request's own directives allow (RFC 9111 5.2.1).

    no_cache: a stored response must not be used (Cache-Control: no-cache, max-age=0, or
    Pragma: no-cache without Cache-Control): the response is made again and stored.
    no_store: nothing made for this request is stored (a stored response may still be used)."""

    __slots__ = ("no_cache", "no_store")

    def __init__(self, headers, honour=True):
        self.no_cache = self.no_store = False
        if not honour:
            return
        cc = headers.get(b"cache-control")
        if cc is None:
            pragma = headers.get(b"pragma")
            self.no_cache = pragma is not None and b"no-cache" in pragma.lower()
            return
        d = directives(cc)
        self.no_store = "no-store" in d
        self.no_cache = "no-cache" in d or _seconds_arg(d.get("max-age")) == 0


_ETAG = re.compile(rb'\s*(W/)?("[^"]*")\s*(?:,|$)')


def if_none_match_matches(field, etag):
    """True if an If-None-Match field value (bytes) matches etag (bytes, with its quotes) by the
    weak comparison of RFC 9110 8.8.3.2: opaque tags equal, W/ ignored on both sides."""
    if field is None or not etag:
        return False
    if field.strip() == b"*":
        return True
    mine = etag[2:] if etag.startswith(b"W/") else etag
    pos = 0
    while pos < len(field):
        m = _ETAG.match(field, pos)
        if m is None:
            return False  # malformed: no match (the response is sent whole)
        if m.group(2) == mine:
            return True
        pos = m.end()
    return False


def make_etag(status, headers, body):
    """A strong ETag for a response: a digest of its status, Content-Type, Content-Encoding,
    Content-Language and body, so every worker and every host gives the same representation the same tag."""
    h = hashlib.blake2b(digest_size=16)
    h.update(str(status).encode())
    for name, value in headers:
        if name in (b"content-type", b"content-encoding", b"content-language"):
            h.update(b"\x00" + name + b"\x01" + value)
    h.update(b"\x02")
    h.update(body)
    return b'"' + h.hexdigest().encode() + b'"'


class ResponseHead:
    """A response's start (status and raw headers, names lowercased) and what the rules read
    from it."""

    __slots__ = ("status", "headers", "cache_control", "vary", "lifetime", "no_stale",
                 "uncacheable")

    def __init__(self, status, raw_headers, statuses):
        self.status = status
        self.headers = [(n.lower(), v) for n, v in raw_headers]
        cc = vary = None
        set_cookie = event_stream = False
        for name, value in self.headers:
            if name == b"cache-control":
                cc = value if cc is None else cc + b", " + value
            elif name == b"vary":
                vary = value if vary is None else vary + b", " + value
            elif name == b"set-cookie":
                set_cookie = True
            elif name == b"content-type" and value.lower().startswith(b"text/event-stream"):
                event_stream = True
        self.cache_control = directives(cc)
        self.vary = sorted({v.strip().lower() for v in (vary or b"").split(b",") if v.strip()})
        # The freshness the application gave it, for shared caches first (RFC 9111 4.2.1):
        # the entry is stored no longer than that.
        self.lifetime = _seconds_arg(self.cache_control.get("s-maxage"))
        if self.lifetime is None:
            self.lifetime = _seconds_arg(self.cache_control.get("max-age"))
        # RFC 9111 5.2.2.2, 5.2.2.8, 5.2.2.10: never reused stale by a shared cache.
        self.no_stale = any(d in self.cache_control
                            for d in ("must-revalidate", "proxy-revalidate", "s-maxage"))
        self.uncacheable = self._why_not(statuses, set_cookie, event_stream)

    def _why_not(self, statuses, set_cookie, event_stream):
        """None if this response may be stored by a shared cache, else the reason."""
        if self.status not in statuses:
            return f"status {self.status}"
        if set_cookie:
            return "Set-Cookie"
        for d in ("no-store", "private", "no-cache"):
            if d in self.cache_control:
                return f"Cache-Control: {d}"
        if self.lifetime is not None and self.lifetime <= 0:
            return "stale at once (max-age=0)"
        if b"*" in self.vary:
            return "Vary: *"
        if event_stream:
            return "an event stream"
        return None

    def header(self, name):
        for n, v in self.headers:
            if n == name:
                return v
        return None


def stored_headers(head, vary_names, etag, ttl, stale_ttl, status_header):
    """The header fields a stored response is sent with (besides Content-Length, Age and the
    status header): the application's, without hop-by-hop and per-send fields, with Vary
    naming every header the entry varies on, an ETag unless the application set one (or etag
    is None: a streamed response's, whose digest is known only at its end), and
    Cache-Control max-age from the TTL (no-cache for ttl None: entries that never expire, which
    other caches must revalidate) unless the application set Cache-Control."""
    out = []
    named = {t.strip().lower() for n, v in head.headers if n == b"connection"
             for t in v.split(b",")}  # fields the Connection header makes hop-by-hop
    for name, value in head.headers:
        if name in _HOP_BY_HOP or name in _MADE_AT_SEND or name == status_header \
                or name in named:
            continue
        if name == b"vary":
            continue  # written once below, with the policy's names
        out.append((name, value))
    if vary_names:
        out.append((b"vary", b", ".join(vary_names)))
    if etag is not None and head.header(b"etag") is None:
        out.append((b"etag", etag))
    if not head.cache_control and head.header(b"cache-control") is None:
        if ttl is None:  # stored until invalidated: other caches must ask again (a 304)
            cc = "no-cache"
        else:
            cc = f"max-age={int(ttl)}"
            if stale_ttl:
                cc += f", stale-while-revalidate={int(stale_ttl)}"
        out.append((b"cache-control", cc.encode()))
    return out


# ---- the stored records ----------------------------------------------------------------------
# A response: magic, a 4-byte length, a JSON head, then the body. A vary record: magic and a JSON
# list of header names. A pass record ("hit-for-pass"): the URL's responses cannot be stored, so
# requests for it go to the application at once instead of queueing behind a lease.
RESPONSE_MAGIC = b"shmcache-response/1\n"
VARY_MAGIC = b"shmcache-vary/1\n"
PASS_RECORD = b"shmcache-pass/1\n"
_LEN = struct.Struct("<I")


class StoredResponse:
    """A decoded response record; `sent_headers` are its headers with Content-Length, made
    once (a record is decoded once while its bytes stay the same, see decode()). no_stale:
    the response forbids being served stale."""

    __slots__ = ("status", "headers", "body", "stored_at", "etag", "no_stale",
                 "sent_headers")

    def __init__(self, status, headers, body, stored_at, etag, no_stale=False):
        self.status, self.headers, self.body = status, headers, body
        self.stored_at, self.etag, self.no_stale = stored_at, etag, no_stale
        self.sent_headers = (*headers, (b"content-length", str(len(body)).encode()))

    @property
    def conditional(self):
        """If-None-Match applies: only to a 2xx response (RFC 9110 13.2.1)."""
        return 200 <= self.status < 300


def encode_response(status, headers, body, stored_at, no_stale=False):
    fields = {"s": status, "t": stored_at,
              "h": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in headers]}
    if no_stale:
        fields["r"] = 1
    head = json.dumps(fields, separators=(",", ":")).encode()
    return b"".join((RESPONSE_MAGIC, _LEN.pack(len(head)), head, body))


def encode_vary(names):
    return VARY_MAGIC + json.dumps([n.decode("latin-1") for n in names]).encode()


# The last records decoded, by the identity of their bytes: the cache's local copy hands back
# the same bytes object while the stored value is unchanged (local_cache_size), so a hot
# response is parsed once, not at each hit. Holding the bytes keeps the identity valid.
_DECODED = {}
_DECODED_MAX = 512


def decode(value):
    """A stored value as ("response", StoredResponse), ("vary", [names]), ("pass", None), or
    None for anything else (not ours, or damaged): treated as a miss."""
    known = _DECODED.get(id(value))
    if known is not None and known[0] is value:
        return known[1]
    found = _decode(value)
    if found is not None:
        if len(_DECODED) >= _DECODED_MAX:
            _DECODED.clear()
        _DECODED[id(value)] = (value, found)
    return found


def _decode(value):
    if not isinstance(value, bytes):
        return None
    try:
        if value.startswith(RESPONSE_MAGIC):
            at = len(RESPONSE_MAGIC)
            (n,) = _LEN.unpack_from(value, at)
            at += _LEN.size
            head = json.loads(value[at:at + n])
            headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in head["h"]]
            etag = next((v for k, v in headers if k == b"etag"), b"")
            return "response", StoredResponse(int(head["s"]), headers, value[at + n:],
                                              float(head["t"]), etag, bool(head.get("r")))
        if value.startswith(VARY_MAGIC):
            names = json.loads(value[len(VARY_MAGIC):])
            return "vary", [n.encode("latin-1") for n in names]
        if value == PASS_RECORD:
            return "pass", None
    except (ValueError, KeyError, TypeError, struct.error):
        return None
    return None


def not_modified_headers(stored_headers_, age, status_header, status_value):
    """The fields of a 304 for a stored (or just made) response: RFC 9110 15.4.5."""
    headers = [(n, v) for n, v in stored_headers_ if n in _NOT_MODIFIED_FIELDS]
    if age is not None:
        headers.append((b"age", str(age).encode()))
    if status_header:
        headers.append((status_header, status_value))
    return headers
