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
    vp, sz = ctypes.c_void_p, ctypes.c_size_t
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
    }
    for name, (restype, argtypes) in table.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


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
