"""shmc_test_support.py - helpers shared by the Python package's tests (fixtures are in
conftest.py). Test modules import from here, never from conftest: scripts/test.sh runs this
directory together with tests/cli, which has a conftest.py of its own, and `import conftest`
would then find whichever was loaded first. Hence also this module's unlikely name."""
import asyncio
import ctypes
import os
import re
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PKG_ROOT = os.path.dirname(HERE)  # bindings/python
REPO = os.path.dirname(os.path.dirname(PKG_ROOT))
INVAL_TRACKING = 2  # shmc_l2_stats.invalidation_mode: SHMC_INVAL_TRACKING


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

    def holds(self, key):
        """Whether L1 serves key, seen by shmc_scan: unlike get(), counts no hit or miss in the
        host's figures."""
        pattern = re.sub(rb"([*?[\\])", rb"\\\1", key)
        found = []
        visit = self.ffi.SCAN_FN(lambda *_: found.append(key) or 1)
        rc = self.ffi.lib.shmc_scan(self.h, pattern, len(pattern), visit, None)
        if rc != 0:  # not "absent": a failed scan must not read as a dropped copy
            self.ffi.raise_for(rc)
        return bool(found)

    def l2_stats(self):
        """The host's L2 figures (shmc_l2_get_stats), whichever process holds the Redis link."""
        out = self.ffi.L2Stats()
        self.ffi.lib.shmc_l2_get_stats(self.h, ctypes.byref(out))
        return out

    def await_echoes(self, applied, timeout=2.0):
        """In tracking mode, until this host has applied at least `applied` invalidations and
        then none for 5 ms: the echoes of the writes made so far are in (they are applied in
        order)."""
        if self.l2_stats().invalidation_mode != INVAL_TRACKING:
            return
        last, deadline = None, time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.l2_stats().invalidations_applied
            if now >= applied and now == last:
                return
            last = now
            time.sleep(0.005)


# A write to both tiers keeps its L1 copy only if this host's own tracking echo of it is applied
# within the 5 ms the write waits for it (docs/l2.md, "Own writes"); an echo applied later drops
# the copy by design (the next get reads Redis, never a stale value), as when the subscriber is
# descheduled that long (a sanitizer build on 2 busy CPUs). The copy is still there when the write
# returns and goes a moment later, so a test that counts on it writes through write_kept: each try
# waits for the write's echoes (one per key), then the write is made again, up to 5 times, until
# its copies are still there. For a host that hears of no other writes meanwhile.
def write_kept(write, shm_name, *keys, undo=None):
    """write(): the call that writes the stored keys `keys` (bytes) to both tiers; made until
    their L1 copies stay. undo(), for a write() that writes on a miss only (a cached function, a
    cached route): deletes the keys before the next try. Returns the number of tries."""
    with RawSegment(shm_name) as raw:
        for n in range(1, 6):
            applied = raw.l2_stats().invalidations_applied
            assert write() is not False, "the write failed"
            raw.await_echoes(applied + len(keys))
            if all(map(raw.holds, keys)):
                break
            if undo is not None:
                applied = raw.l2_stats().invalidations_applied
                undo()
                raw.await_echoes(applied + len(keys))
    return n


async def awrite_kept(write, shm_name, *keys, undo=None):
    """write_kept for a write() (and undo()) that return an awaitable."""
    loop = asyncio.get_running_loop()
    with RawSegment(shm_name) as raw:
        for n in range(1, 6):
            applied = raw.l2_stats().invalidations_applied
            assert await write() is not False, "the write failed"
            await loop.run_in_executor(None, raw.await_echoes, applied + len(keys))
            if all(map(raw.holds, keys)):
                break
            if undo is not None:
                applied = raw.l2_stats().invalidations_applied
                await undo()
                await loop.run_in_executor(None, raw.await_echoes, applied + len(keys))
    return n
