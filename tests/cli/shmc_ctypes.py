"""shmc_ctypes.py - a minimal ctypes view of libshmcache for the CLI tests.

The CLI tests need processes other than shmcache-cli that really use the segment: writers that
store values while the CLI purges and reads stats, readers that check what `warm` wrote, and a
process that stays attached while `destroy` is tried. They go through the public C ABI, with the
value envelope (shmc_encode/shmc_decode), exactly as the Python package will.

This is test code, not the Python binding (bindings/python, a later issue).

Run as a script it is one of those processes:
    shmc_ctypes.py write NAME PREFIX STOPFILE   write PREFIX:<n> until STOPFILE exists; print count
    shmc_ctypes.py hold NAME                    attach, print "attached", wait for stdin to close
    shmc_ctypes.py dump NAME KEY...             print one JSON line per key: serializer, payload
                                                (base64), ttl_left_ms, or {"missing": true}
    shmc_ctypes.py hammer NAME KEY SIZE         set KEY to SIZE random bytes over and over, until
                                                killed (most of its time is spent holding the
                                                stripe lock, copying the value)
    shmc_ctypes.py lease NAME KEY               shmc_fetch KEY (default options), print the result
                                                as one JSON line, then act on one line of stdin:
                                                "complete VALUE", "abandon", or EOF: exit with
                                                the lease still held (as a crashed owner would)

The single-flight structures (FetchOptions, FetchResult, FlightStats) and L2Options mirror
shmcache.h field for field; test_cli_flight.py checks their sizes against the header's.
"""
import base64
import ctypes
import json
import os
import sys

SER_RAW, SER_JSON, SER_PICKLE, SER_MSGPACK, SER_STR = 0, 1, 2, 3, 4
E_NOTFOUND = -1
E_BUFFER_TOO_SMALL = -6
E_LOCK_TIMEOUT = -7

TIER_L1, TIER_L2, TIER_BOTH = 1, 2, 3
L2_NO_SUBSCRIBE = 0x1
# shmc_fetch_result.outcome
FETCH_HIT, FETCH_STALE, FETCH_STALE_REFRESH, FETCH_EARLY_REFRESH = 1, 2, 3, 4
FETCH_COMPUTE, FETCH_COMPUTE_UNLEASED = 5, 6
FETCH_L2_LOCK = 0x1  # shmc_fetch_options.flags
OUTCOMES = {FETCH_HIT: "hit", FETCH_STALE: "stale", FETCH_STALE_REFRESH: "stale_refresh",
            FETCH_EARLY_REFRESH: "early_refresh", FETCH_COMPUTE: "compute",
            FETCH_COMPUTE_UNLEASED: "compute_unleased"}

u8, u32, u64, i64 = ctypes.c_uint8, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_int64


class FetchOptions(ctypes.Structure):
    """shmc_fetch_options. Start from Cache.fetch_options() (shmc_fetch_options_default)."""
    _fields_ = [("tiers", u32), ("flags", u32), ("ttl_ms", u64), ("stale_ttl_ms", u64),
                ("l2_ttl_ms", u64), ("fill_ttl_ms", u64), ("lease_ms", u32), ("wait_ms", u32),
                ("xfetch_beta", ctypes.c_double), ("reserved", u8 * 64)]


class FetchResult(ctypes.Structure):
    """shmc_fetch_result."""
    _fields_ = [("outcome", u32), ("flags", u32), ("value_len", u64), ("lease", u64),
                ("ttl_left_ms", i64), ("served_by", u32), ("waited_ms", u32),
                ("reserved", u64 * 4)]


class FlightStats(ctypes.Structure):
    """shmc_flight_stats."""
    _fields_ = [(n, u64) for n in (
        "leases_granted", "waits", "stampedes_avoided", "lease_timeouts", "takeovers",
        "stale_served", "early_refreshes", "unleased", "abandoned", "l2_locks", "l2_lock_busy",
        "l2_served", "leases_held", "leases_reclaimable", "lease_slots")] + [("reserved", u64 * 8)]


class L2Options(ctypes.Structure):
    """shmc_l2_options. Start from shmc_l2_options_default (Cache.l2_attach)."""
    _fields_ = [("url", ctypes.c_char_p), ("key_prefix", ctypes.c_char_p),
                ("key_separator", ctypes.c_char_p), ("connect_timeout_ms", u32),
                ("command_timeout_ms", u32), ("max_connections", u32),
                ("retry_on_timeout", u32), ("breaker_threshold", u32),
                ("breaker_cooldown_ms", u32), ("flags", u32), ("outage_write_ttl_ms", u32),
                ("link_lease_ms", u32), ("reserved32", u32),
                ("tracking_prefix", ctypes.c_char_p), ("reserved", u8 * 48)]


def library_path():
    env = os.environ.get("SHMCACHE_LIB")
    if env:
        return env
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(root, "build", "lib", "libshmcache.so")


def load():
    path = library_path()
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise RuntimeError(f"cannot load libshmcache from {path} (set SHMCACHE_LIB): {e}")
    vp, sz, P = ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER
    table = {
        "shmc_open": (ctypes.c_int, [ctypes.c_char_p, vp, ctypes.POINTER(vp)]),
        "shmc_close": (None, [vp]),
        "shmc_unlink": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_int]),
        "shmc_errmsg": (ctypes.c_char_p, []),
        "shmc_set": (ctypes.c_int, [vp, ctypes.c_char_p, sz, ctypes.c_char_p, sz,
                                    ctypes.c_uint32, ctypes.c_uint64]),
        "shmc_get": (ctypes.c_int, [vp, ctypes.c_char_p, sz, vp, sz, ctypes.POINTER(sz),
                                    ctypes.POINTER(ctypes.c_uint32),
                                    ctypes.POINTER(ctypes.c_int64)]),
        "shmc_encode_bound": (sz, [sz]),
        "shmc_encode": (ctypes.c_int, [ctypes.c_uint32, ctypes.c_char_p, sz, sz, ctypes.c_int,
                                       vp, sz, ctypes.POINTER(sz)]),
        "shmc_decode": (ctypes.c_int, [ctypes.c_char_p, sz, ctypes.POINTER(ctypes.c_uint32), vp,
                                       sz, ctypes.POINTER(sz)]),
        "shmc_l2_options_default": (None, [P(L2Options)]),
        "shmc_l2_attach": (ctypes.c_int, [vp, P(L2Options)]),
        "shmc_fetch_options_default": (None, [P(FetchOptions)]),
        "shmc_fetch": (ctypes.c_int, [vp, ctypes.c_char_p, sz, vp, sz, P(FetchOptions),
                                      P(FetchResult)]),
        "shmc_fetch_complete": (ctypes.c_int, [vp, ctypes.c_char_p, sz, ctypes.c_char_p, sz,
                                               u32, u32, P(FetchOptions), u64]),
        "shmc_fetch_abandon": (ctypes.c_int, [vp, ctypes.c_char_p, sz, u64]),
        "shmc_flight_get_stats": (ctypes.c_int, [vp, P(FlightStats)]),
    }
    for name, (restype, argtypes) in table.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


L2_NO_TRACKING = 0x4


class Cache:
    """One handle on a segment that already exists (default options: no geometry given)."""

    def __init__(self, name):
        self.lib = load()
        self.h = ctypes.c_void_p()
        rc = self.lib.shmc_open(name.encode(), None, ctypes.byref(self.h))
        if rc != 0:
            raise RuntimeError(f"shmc_open({name}) = {rc}: {self.lib.shmc_errmsg().decode()}")

    def close(self):
        if self.h:
            self.lib.shmc_close(self.h)
            self.h = ctypes.c_void_p()

    def encode(self, serializer, payload, threshold=1024):
        cap = self.lib.shmc_encode_bound(len(payload))
        out = ctypes.create_string_buffer(cap)
        n = ctypes.c_size_t()
        rc = self.lib.shmc_encode(serializer, payload, len(payload), threshold, 0, out, cap,
                                  ctypes.byref(n))
        assert rc == 0, rc
        return out.raw[:n.value]

    def decode(self, envelope):
        n = ctypes.c_size_t()
        ser = ctypes.c_uint32()
        rc = self.lib.shmc_decode(envelope, len(envelope), ctypes.byref(ser), None, 0,
                                  ctypes.byref(n))
        if rc not in (0, E_BUFFER_TOO_SMALL):
            return None
        out = ctypes.create_string_buffer(max(n.value, 1))
        rc = self.lib.shmc_decode(envelope, len(envelope), ctypes.byref(ser), out, n.value,
                                  ctypes.byref(n))
        assert rc == 0, rc
        return ser.value, out.raw[:n.value]

    def set(self, key, value_bytes, ttl_ms=0):
        return self.lib.shmc_set(self.h, key, len(key), value_bytes, len(value_bytes), 0, ttl_ms)

    def get(self, key):
        """(stored bytes, ttl_left_ms), or None if absent."""
        cap = 4096
        while True:
            buf = ctypes.create_string_buffer(cap)
            n = ctypes.c_size_t()
            ttl = ctypes.c_int64()
            rc = self.lib.shmc_get(self.h, key, len(key), buf, cap, ctypes.byref(n), None,
                                   ctypes.byref(ttl))
            if rc == E_BUFFER_TOO_SMALL:
                cap = n.value
                continue
            if rc == E_NOTFOUND:
                return None
            assert rc == 0, rc
            return buf.raw[:n.value], ttl.value

    def l2_attach(self, url, prefix=None, flags=L2_NO_SUBSCRIBE):
        """Attach a Redis L2 as the CLI does (by default): never the host's invalidation
        subscriber. flags 0: may become it, as an application's process would."""
        o = L2Options()
        self.lib.shmc_l2_options_default(ctypes.byref(o))
        o.url = url.encode()
        o.key_prefix = prefix.encode() if prefix else None
        o.connect_timeout_ms = o.command_timeout_ms = 2000
        o.flags = flags
        rc = self.lib.shmc_l2_attach(self.h, ctypes.byref(o))
        assert rc == 0, (rc, self.lib.shmc_errmsg())

    def fetch_options(self, **fields):
        """shmc_fetch_options_default, then the fields given."""
        o = FetchOptions()
        self.lib.shmc_fetch_options_default(ctypes.byref(o))
        for k, v in fields.items():
            setattr(o, k, v)
        return o

    def fetch(self, key, opts=None, cap=4096):
        """shmc_fetch: (FetchResult, value bytes or None). Asserts it returned 0."""
        buf = ctypes.create_string_buffer(cap)
        r = FetchResult()
        rc = self.lib.shmc_fetch(self.h, key, len(key), buf, cap,
                                 ctypes.byref(opts) if opts else None, ctypes.byref(r))
        assert rc == 0, (rc, self.lib.shmc_errmsg())
        has_value = r.outcome in (FETCH_HIT, FETCH_STALE, FETCH_STALE_REFRESH, FETCH_EARLY_REFRESH)
        return r, buf.raw[:r.value_len] if has_value else None

    def complete(self, key, value, opts, lease, compute_ms=0, flags=0):
        return self.lib.shmc_fetch_complete(self.h, key, len(key), value, len(value), flags,
                                            compute_ms, ctypes.byref(opts) if opts else None,
                                            lease)

    def abandon(self, key, lease):
        return self.lib.shmc_fetch_abandon(self.h, key, len(key), lease)

    def flight_stats(self):
        """shmc_flight_get_stats as a dict (the reserved words left out)."""
        st = FlightStats()
        rc = self.lib.shmc_flight_get_stats(self.h, ctypes.byref(st))
        assert rc == 0, rc
        return {n: getattr(st, n) for n, _ in FlightStats._fields_ if n != "reserved"}


def main(argv):
    verb, name = argv[1], argv[2]
    cache = Cache(name)
    if verb == "write":
        prefix, stopfile = argv[3].encode(), argv[4]
        n = 0
        print("ready", flush=True)
        while not os.path.exists(stopfile):
            value = cache.encode(SER_JSON, json.dumps({"n": n, "pid": os.getpid()}).encode())
            rc = cache.set(b"%s:%d" % (prefix, n % 5000), value)
            assert rc in (0, E_LOCK_TIMEOUT), rc
            n += 1
        print(n, flush=True)
    elif verb == "hammer":
        key = argv[3].encode()
        value = cache.encode(SER_RAW, os.urandom(int(argv[4])), threshold=0)
        print("ready", flush=True)
        while True:
            cache.set(key, value)
    elif verb == "hold":
        print("attached", flush=True)
        sys.stdin.read()
    elif verb == "subscribe":
        # The host's invalidation subscriber, as an application process would be (the CLI never
        # is): L1 copies of Redis values are served only while one is live (docs/l2.md,
        # "Coherence"). argv[4] "publish": publish mode (SHMC_L2_NO_TRACKING).
        mode = argv[4] if len(argv) > 4 else "tracking"
        cache.l2_attach(argv[3], flags=L2_NO_TRACKING if mode == "publish" else 0)
        print("attached", flush=True)
        sys.stdin.read()
    elif verb == "lease":
        key = argv[3].encode()
        r, value = cache.fetch(key)
        print(json.dumps({"outcome": OUTCOMES[r.outcome], "lease": r.lease,
                          "waited_ms": r.waited_ms}), flush=True)
        cmd = sys.stdin.readline().split(maxsplit=1)
        if not cmd:
            os._exit(0)  # no complete, no close: the lease stays, its owner gone
        if cmd[0] == "complete":
            rc = cache.complete(key, cmd[1].strip().encode(), None, r.lease)
        else:
            rc = cache.abandon(key, r.lease)
        print(json.dumps({"rc": rc}), flush=True)
    elif verb == "dump":
        for key in argv[3:]:
            got = cache.get(key.encode())
            if got is None:
                print(json.dumps({"key": key, "missing": True}))
                continue
            stored, ttl = got
            dec = cache.decode(stored)
            if dec is None:
                print(json.dumps({"key": key, "envelope": False}))
                continue
            print(json.dumps({"key": key, "serializer": dec[0], "ttl_left_ms": ttl,
                              "payload_b64": base64.b64encode(dec[1]).decode(),
                              "compressed": bool(stored[1] & 0x10)}))
    cache.close()


if __name__ == "__main__":
    main(sys.argv)
