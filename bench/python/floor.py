"""floor.py - the shortest path from Python to a shmcache value, and where a get's time goes.

bench_peers.py uses this for two things:
  - a row "shmcache (ctypes floor)": shmc_get/shmc_set called straight through ctypes in the
    cheapest way ctypes allows, the value copied out to bytes and decoded with the standard
    codec (json.loads, msgpack.unpackb...), as an application would write it by hand. Its
    foreign call is the lower bound for any ctypes binding (the breakdown's first row); its
    codec path is not: the package decodes from the receive buffer with the JSON decoder's
    own scanner, and with local_cache_size skips the decode, so its rows can be below this one;
  - the breakdown of one get into its steps (key encoding, the foreign call, copying the value
    out, the envelope, the codec), each step timed alone on the same keys.

The cheap way, measured on this machine (2 CPUs, Python 3.11, 8-argument shmc_get):
  - argtypes set on the function: about 750 ns per call, because ctypes converts every argument
    through its argtypes entry's from_param; an errcheck adds about 70 ns more;
  - no argtypes, every argument already a ctypes object or bytes (handle as c_void_p, buffer and
    out-parameter made once, byref made once, sizes as c_size_t): about 550 ns. Sizes must be
    wrapped: without argtypes a Python int is passed as a C int, not a size_t.
  - the package goes a little further (bindings/python/shmcache/_ffi.py, _segment.py):
    handle and buffer passed as prebuilt byref() objects, which ctypes passes as they are,
    where a c_void_p or an array is first converted into a new argument object every call.
Nothing here is the package's code or API; the package (bindings/python/shmcache) is measured
separately. This module exists only for the benchmark.
"""
import ctypes
import os

ENVELOPE_MAGIC = 0xC5
SER_IDS = {"raw": 0, "json": 1, "pickle": 2, "msgpack": 3, "str": 4}
E_NOTFOUND = -1
_BUF_CAP = 1 << 16  # ample for the 200 B values measured; a real binding grows it on demand


def library_path():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.environ.get("SHMCACHE_LIB") or os.path.join(root, "build", "lib",
                                                          "libshmcache.so")


class Floor:
    """A handle on one segment with the cheapest ctypes calls. Not thread-safe (one buffer)."""

    def __init__(self, segment, size_bytes=64 << 20):
        self.lib = lib = ctypes.CDLL(library_path())
        self.segment = segment.encode()
        # Open, unlink and close are not hot: declared the ordinary way.
        lib.shmc_open.argtypes = [ctypes.c_char_p, ctypes.c_void_p,
                                  ctypes.POINTER(ctypes.c_void_p)]
        lib.shmc_unlink.argtypes = [ctypes.c_char_p, ctypes.c_int]
        lib.shmc_close.argtypes = [ctypes.c_void_p]
        lib.shmc_errmsg.restype = ctypes.c_char_p
        lib.shmc_options_default.argtypes = [ctypes.c_void_p]
        # shmc_options starts with uint64 size_bytes; the struct is 112 bytes, 256 is room.
        opts = ctypes.create_string_buffer(256)
        lib.shmc_options_default(opts)
        ctypes.c_uint64.from_buffer(opts).value = size_bytes
        self.handle = ctypes.c_void_p()
        rc = lib.shmc_open(self.segment, opts, ctypes.byref(self.handle))
        if rc != 0:
            raise RuntimeError(f"shmc_open({segment}) = {rc}: {lib.shmc_errmsg().decode()}")
        # Hot path: no argtypes (see the module comment); everything prebuilt once.
        self._get = lib.shmc_get
        self._set = lib.shmc_set
        self._buf = ctypes.create_string_buffer(_BUF_CAP)
        self._view = memoryview(self._buf)
        self._cap = ctypes.c_size_t(_BUF_CAP)
        self._len = ctypes.c_size_t()
        self._len_ref = ctypes.byref(self._len)

    def call_only(self, key_bytes):
        """The foreign call alone: rc, value left in the buffer."""
        return self._get(self.handle, key_bytes, ctypes.c_size_t(len(key_bytes)), self._buf,
                         self._cap, self._len_ref, None, None)

    def get_bytes(self, key):
        """The stored bytes (envelope included) of str key, or None on a miss."""
        k = key.encode()
        rc = self._get(self.handle, k, ctypes.c_size_t(len(k)), self._buf, self._cap,
                       self._len_ref, None, None)
        if rc != 0:
            return None  # a miss, a lock timeout or any error: a cache's caller recomputes
        return self._view[:self._len.value].tobytes()

    def set_bytes(self, key, value, ttl_ms=0):
        k = key.encode()
        return self._set(self.handle, k, ctypes.c_size_t(len(k)), value,
                         ctypes.c_size_t(len(value)), ctypes.c_uint32(0), ctypes.c_uint64(ttl_ms))

    def codec_path(self, serializer, dumps, loads):
        """get(key) -> object and set(key, object) through the value envelope (uncompressed:
        a 200 B value is far below any compression threshold)."""
        header = bytes([ENVELOPE_MAGIC, SER_IDS[serializer]])
        get_bytes, set_bytes = self.get_bytes, self.set_bytes

        def get(key):
            raw = get_bytes(key)
            if raw is None or raw[:2] != header:
                return None
            return loads(raw[2:])

        def set(key, value):
            return set_bytes(key, header + dumps(value))

        return get, set

    def close(self, unlink=True):
        if self.handle:
            self.lib.shmc_close(self.handle)
            self.handle = ctypes.c_void_p()
        if unlink:
            self.lib.shmc_unlink(self.segment, 1)


def breakdown_steps(floor, serializer, loads, keys):
    """The steps of one object get, each a callable of the str key, cumulative: step i does
    everything step i-1 did plus one thing. bench_peers times each and prints the increments."""
    view, length, call_only = floor._view, floor._len, floor.call_only
    header = bytes([ENVELOPE_MAGIC, SER_IDS[serializer]])
    key_bytes = {k: k.encode() for k in keys}  # the first step leaves key encoding out

    def call(key):
        return call_only(key_bytes[key])

    def encode_and_call(key):
        return call_only(key.encode())

    def copy(key):
        call_only(key.encode())
        return view[:length.value].tobytes()

    def envelope(key):
        call_only(key.encode())
        raw = view[:length.value].tobytes()
        return raw[:2] == header and raw[2:]

    def decode(key):
        call_only(key.encode())
        raw = view[:length.value].tobytes()
        return raw[:2] == header and loads(raw[2:])

    return [("the foreign call (shmc_get into a reused buffer)", call),
            ("+ key str -> bytes", encode_and_call),
            ("+ copy the value out to bytes", copy),
            ("+ envelope header check and payload slice", envelope),
            (f"+ {serializer} decode of the payload", decode)]


def unlink(segment):
    """Remove a segment by name (shmc_unlink with force: the benchmark's own segments only)."""
    lib = ctypes.CDLL(library_path())
    lib.shmc_unlink.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return lib.shmc_unlink(segment.encode(), 1)
