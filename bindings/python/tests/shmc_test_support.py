"""shmc_test_support.py - helpers shared by the Python package's tests (fixtures are in
conftest.py). Test modules import from here, never from conftest: scripts/test.sh runs this
directory together with tests/cli, which has a conftest.py of its own, and `import conftest`
would then find whichever was loaded first. Hence also this module's unlikely name."""
import asyncio
import ctypes
import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PKG_ROOT = os.path.dirname(HERE)  # bindings/python
REPO = os.path.dirname(os.path.dirname(PKG_ROOT))


def cli_path():
    return os.environ.get("SHMCACHE_CLI") or os.path.join(REPO, "build", "tools", "cli",
                                                          "shmcache-cli")


def wait_until(predicate, timeout=5.0, interval=0.01, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def await_until(predicate, timeout=5.0, interval=0.01, what="condition"):
    """predicate is an async callable."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_subscribed_sync(cache, timeout=5.0):
    """wait_subscribed for a SyncCacheManager."""
    wait_until(lambda: cache.get_stats()["l2_detail"].get("subscribed"), timeout, 0.005,
               "the invalidation subscription")


async def wait_subscribed(cache, timeout=5.0):
    """L2 hits are copied into L1 only while the host's invalidation subscription is live; tests
    that count on a fill wait for it first."""
    async def subscribed():
        return (await cache.get_stats())["l2_detail"].get("subscribed")
    await await_until(subscribed, timeout, what="the invalidation subscription")


def _ffi():
    from shmcache import _ffi as ffi  # imported late: conftest puts the package on sys.path
    return ffi


class RawSegment:
    """Direct access to a segment through the C ABI, bypassing the package: to plant bytes the
    package would never write, and to read exactly what it stored."""

    def __init__(self, name):
        self.ffi = _ffi()
        self.h = self.ffi.CacheP()
        self.ffi.lib.shmc_open(name.encode(), None, ctypes.byref(self.h))

    def close(self):
        self.ffi.lib.shmc_close(self.h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def set(self, key, data, ttl_ms=0):
        return self.ffi.lib.shmc_set(self.h, key, len(key), data, len(data), 0, ttl_ms)

    def get(self, key):
        """(stored bytes, flags, ttl_left_ms) or None."""
        buf = ctypes.create_string_buffer(self.ffi.MAX_VALUE_LEN // 16)
        n, flags, ttl = ctypes.c_size_t(), ctypes.c_uint32(), ctypes.c_int64()
        rc = self.ffi.lib.shmc_get(self.h, key, len(key), buf, len(buf), ctypes.byref(n),
                                   ctypes.byref(flags), ctypes.byref(ttl))
        if rc == self.ffi.E_NOTFOUND:
            return None
        assert rc == 0, rc
        return ctypes.string_at(buf, n.value), flags.value, ttl.value
