"""test_hotpath.py - the fast get/set path, its closing protocol, and local_cache_size.

* With local_cache_size, a get of unchanged stored bytes returns the SAME object; bytes changed
  by another process (even to a value of the same length) are seen at the next get; at most
  local_cache_size keys are kept; it works with Redis behind; fork and stop() empty it.
* close() waits for calls in flight (simulated through the segment's counters, and a real one
  blocked on a hung Redis), refuses calls made after it began, and is not held up in a forked
  child by calls that other threads of the parent had in flight.
* Counters are exact under threads; a SyncCacheManager subclass keeps its own get/set.
* The envelope built in Python is the library's; the JSON codec's shortcuts give what json.dumps
  and json.loads give, and refuse what they refuse.
"""
import asyncio
import concurrent.futures
import ctypes
import json
import os
import threading
import time

import pytest

from shmc_test_support import RawSegment, wait_until, write_kept
from shmcache import (CacheConfig, CacheManager, CacheTier, ShmcacheError, SyncCacheManager,
                      _ffi, _segment)
from shmcache._segment import Segment, SegmentClosedError


def _in_forked_child(fn, timeout=30):
    """Run fn() in a forked child; its exit status (0 if fn returned, 1 if it raised)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fn()
            code = 0
        finally:
            os._exit(code)  # never run pytest's teardown in the child
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError(f"forked child {pid} did not finish in {timeout} s")


# ---- local_cache_size -------------------------------------------------------------------------
def test_local_cache_returns_the_same_object_while_the_bytes_are_unchanged(config_for, mode):
    with SyncCacheManager(config_for(local_cache_size=8)) as cache:
        # Kept in L1 (shmc_test_support.write_kept), for the L1 hits counted below.
        write_kept(lambda: cache.set("profile:1", {"name": "ada", "tags": ["x"]}),
                   cache.config.shm_name, b"profile:1")
        first = cache.get("profile:1")
        assert first == {"name": "ada", "tags": ["x"]}
        assert cache.get("profile:1") is first
        assert cache.get(b"profile:1") == first  # a bytes key: its own entry, same value
        stats = cache.get_stats()["process"]
        assert stats["hits_l1"] == 3 and stats["misses"] == 0


def test_without_local_cache_each_get_decodes_a_new_object(config_for):
    config = config_for(local_cache_size=0)
    with SyncCacheManager(config) as cache:
        cache.set("profile:1", {"name": "ada"})
        first = cache.get("profile:1")
        assert cache.get("profile:1") == first and cache.get("profile:1") is not first


@pytest.mark.asyncio
async def test_the_async_manager_shares_the_local_cache(config_for):
    async with CacheManager(config_for(local_cache_size=8)) as cache:
        await cache.set("k", [1, 2])
        first = await cache.get("k")
        assert await cache.get("k") is first
        assert cache.sync.get("k") is first


def test_the_mutation_caveat_is_real(config_for):
    # Documented: with local_cache_size, gets return the same object, so a caller that mutates
    # it changes what later gets in this process return (not what is stored).
    with SyncCacheManager(config_for(local_cache_size=8)) as cache:
        # Kept in L1 (shmc_test_support.write_kept), where it is read below.
        write_kept(lambda: cache.set("k", {"n": 1}), cache.config.shm_name, b"k")
        cache.get("k")["n"] = 99
        assert cache.get("k") == {"n": 99}
        with RawSegment(cache.config.shm_name) as raw:
            assert _segment.decode(raw.get(b"k")[0]) == (_ffi.SER_JSON, b'{"n":1}')


@pytest.mark.parametrize("new_value", [{"n": 2}, {"n": 10}, {"m": 1}],
                         ids=["same-length", "longer", "same-length-other-key"])
def test_a_value_changed_by_another_process_is_seen_at_once(config_for, new_value):
    config = config_for(local_cache_size=8)
    with SyncCacheManager(config) as cache:
        # Through write_kept (shmc_test_support): its own echo, applied late, would drop the
        # value the other process writes to L1 below.
        write_kept(lambda: cache.set("k", {"n": 1}), config.shm_name, b"k")
        before = cache.get("k")
        assert cache.get("k") is before

        def other_process_sets():  # its own manager, as another worker would have
            with SyncCacheManager(CacheConfig(shm_name=config.shm_name,
                                              enable_monitoring=False)) as other:
                assert other.set("k", new_value, tier=CacheTier.L1)

        assert _in_forked_child(other_process_sets) == 0
        assert cache.get("k") == new_value
        after = cache.get("k")
        assert after is cache.get("k") and after is not before


def test_a_value_deleted_or_damaged_elsewhere_is_not_served_from_the_local_cache(config_for):
    with SyncCacheManager(config_for(local_cache_size=8)) as cache:
        # Through write_kept (shmc_test_support): its own echo, applied late, would drop the
        # bytes written to L1 below.
        write_kept(lambda: cache.set("k", {"n": 1}), cache.config.shm_name, b"k")
        cache.get("k")
        with RawSegment(cache.config.shm_name) as raw:
            assert raw.set(b"k", b"not an envelope") == 0
            assert cache.get("k", "default") == "default"  # a miss, counted, deleted
            assert raw.get(b"k") is None
        assert cache.get_stats()["process"]["bad_envelopes"] == 1
        cache.set("k", {"n": 1})
        cache.get("k")
        cache.delete("k")
        assert cache.get("k", "gone") == "gone"


def test_the_local_cache_keeps_at_most_local_cache_size_keys(config_for):
    with SyncCacheManager(config_for(local_cache_size=3, memory_cache_size=0)) as cache:
        for i in range(10):
            cache.set(f"k{i}", [i])
        objects = {i: cache.get(f"k{i}") for i in range(10)}
        local = cache.core.local
        assert len(local) == 3 and set(local) == {"k7", "k8", "k9"}
        assert cache.get("k9") is objects[9]  # kept
        assert cache.get("k0") == [0] and cache.get("k0") is not objects[0]  # decoded again
        assert len(local) == 3


@pytest.mark.parametrize("mode", ["l1+l2"], indirect=True)  # Redis behind L1 only
def test_the_local_cache_with_redis_behind(config_for, mode):
    with SyncCacheManager(config_for(local_cache_size=8)) as cache:
        cache.set("k", {"n": 1})
        cache.delete("k", tier=CacheTier.L1)  # only Redis has it now
        first = cache.get("k")  # an L2 hit (and a fill)
        assert first == {"n": 1}
        assert cache.get("k") is first
        cache.set("k", {"n": 2})  # both tiers
        assert cache.get("k") == {"n": 2}
        stats = cache.get_stats()["process"]
        assert stats["hits_l2"] >= 1 and stats["misses"] == 0


@pytest.mark.parametrize("mode", ["l1+l2"], indirect=True)  # Redis behind L1 only
@pytest.mark.asyncio
async def test_the_local_cache_with_redis_behind_async(config_for, mode):
    async with CacheManager(config_for(local_cache_size=8)) as cache:
        await cache.set("k", {"n": 1})
        await cache.delete("k", tier=CacheTier.L1)
        first = await cache.get("k")  # through the pool, from Redis
        assert first == {"n": 1} and await cache.get("k") is first


def test_fork_and_stop_empty_the_local_cache_and_the_child_counts_from_zero(config_for):
    cache = SyncCacheManager(config_for(local_cache_size=8)).start()
    try:
        cache.set("k", {"n": 1})
        first = cache.get("k")
        assert len(cache.core.local) == 1

        def child():
            assert len(cache.core.local) == 0
            assert cache.get_stats()["process"]["hits_l1"] == 0  # the child counts its own
            again = cache.get("k")  # the parent's manager, used in the child
            assert again == first and again is not first

        assert _in_forked_child(child) == 0
        assert cache.get("k") is first  # the parent's is untouched
    finally:
        cache.stop()
    assert len(cache.core.local) == 0


def test_local_cache_size_is_checked_and_read_from_the_environment():
    with pytest.raises(ValueError, match="local_cache_size"):
        CacheConfig(local_cache_size=-1)
    with pytest.raises(ValueError, match="local_cache_size"):
        CacheConfig(local_cache_size=True)
    assert CacheConfig.from_env({"CACHE_LOCAL_CACHE_SIZE": "1024"}).local_cache_size == 1024
    with pytest.raises(ValueError, match="CACHE_LOCAL_CACHE_SIZE"):
        CacheConfig.from_env({"CACHE_LOCAL_CACHE_SIZE": "-3"})


# ---- keys and values through the fast path ------------------------------------------------------
@pytest.mark.parametrize("local", [0, 8])
def test_the_fast_path_checks_keys_as_the_general_one_does(config_for, local):
    with SyncCacheManager(config_for(local_cache_size=local, key_prefix="app")) as cache:
        # Kept in L1 (shmc_test_support.write_kept), where it is read below.
        write_kept(lambda: cache.set("k", 1), cache.config.shm_name, b"app:k")
        assert cache.get("k") == 1 and cache.get(b"k") == 1
        with RawSegment(cache.config.shm_name) as raw:
            assert raw.get(b"app:k") is not None and raw.get(b"k") is None
        for bad, error in [("", ValueError), (b"", ValueError), (5, TypeError),
                           (["k"], TypeError), (None, TypeError)]:
            with pytest.raises(error):
                cache.get(bad)
            with pytest.raises(error):
                cache.set(bad, 1)
        with pytest.raises(ShmcacheError):  # KeyTooLongError
            cache.get("x" * 5000)
        assert cache.get(bytearray(b"k")) == 1 and cache.get(memoryview(b"k")) == 1
        assert cache.get(bytearray(b"k")) == 1 and cache.get(memoryview(b"k")) == 1


def test_compressed_and_large_values_take_the_general_path(config_for):
    with SyncCacheManager(config_for(local_cache_size=4)) as cache:
        big = {"text": "abc" * 100_000}  # compressed, and larger than the 64 KiB buffer raw
        huge = "z" * 200_000  # incompressible would be bigger; this one compresses too
        # Kept in L1 (shmc_test_support.write_kept), where they are read below.
        write_kept(lambda: cache.set("big", big), cache.config.shm_name, b"big")
        write_kept(lambda: cache.set("huge", huge), cache.config.shm_name, b"huge")
        assert cache.get("big") == big and cache.get("big") is cache.get("big")
        assert cache.get("huge") == huge
        with RawSegment(cache.config.shm_name) as raw:
            assert raw.get(b"big")[0][1] & 0x10  # stored compressed


def test_a_subclass_keeps_its_own_get_and_set(config_for):
    class Counting(SyncCacheManager):
        calls = 0

        def get(self, key, default=None, tier=None):
            Counting.calls += 1
            return super().get(key, default, tier)

    with Counting(config_for()) as cache:
        cache.set("k", 1)
        assert cache.get("k") == 1 and cache.get("nope", 2) == 2
        assert Counting.calls == 2


def test_counters_are_exact_under_threads(config_for):
    with SyncCacheManager(config_for(memory_cache_size=0, local_cache_size=16)) as cache:
        # Kept in L1 (shmc_test_support.write_kept), for the L1 hits counted below.
        writes = sum(write_kept(lambda: cache.set(f"k{i}", i), cache.config.shm_name,
                                f"k{i}".encode()) for i in range(8))

        def work(t):
            for i in range(1000):
                assert cache.get(f"k{(t + i) % 8}") == (t + i) % 8
                cache.get("absent")

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(work, range(8)))
        stats = cache.get_stats()["process"]
        assert stats["hits_l1"] == 8000 and stats["misses"] == 8000 and stats["sets"] == writes


# ---- closing with calls in flight ---------------------------------------------------------------
def test_close_waits_for_the_calls_in_flight(shm_name):
    seg = Segment(shm_name, _ffi.default_options())
    next(seg.entered)  # a call in flight in another thread, as the hot path registers one
    closer = threading.Thread(target=seg.close)
    closer.start()
    wait_until(lambda: seg.closed, what="close() to refuse new calls")
    with pytest.raises(SegmentClosedError):
        seg.stats()  # refused at once, while the earlier call is still in flight
    time.sleep(0.05)
    assert closer.is_alive(), "close() freed the handle under a call in flight"
    next(seg.left)  # that call returns
    closer.join(5)
    assert not closer.is_alive()
    assert seg.in_flight() == 0
    seg.close()  # idempotent


def test_a_get_through_a_stale_fast_path_after_stop_is_refused(config_for):
    cache = SyncCacheManager(config_for()).start()
    cache.set("k", 1)
    stale_get, stale_set = cache.get, cache.set  # the hot closures, held past stop()
    cache.stop()
    with pytest.raises(ShmcacheError, match="stopped"):
        stale_get("k")
    with pytest.raises(ShmcacheError, match="stopped"):
        stale_set("k", 2)
    cache.start()
    assert cache.get("k") == 1 and stale_get("k") == 1  # a stale one works again once reopened
    cache.stop()


@pytest.mark.parametrize("mode", ["l1+l2"], indirect=True)  # Redis behind L1 only
def test_stop_waits_for_a_get_blocked_on_a_hung_redis(config_for, mode, redis_server):
    cache = SyncCacheManager(config_for(redis_command_timeout=0.5,
                                        redis_retry_on_timeout=False)).start()
    cache.get("warm up the connection")
    seg = cache.core._segment
    redis_server.stop()  # SIGSTOP: the next Redis call waits for its timeout
    try:
        results = []
        getter = threading.Thread(target=lambda: results.append(cache.get("absent", "d")))
        getter.start()
        wait_until(lambda: seg.in_flight() == 1, what="the get to be in flight")
        started = time.monotonic()
        cache.stop()
        waited = time.monotonic() - started
        getter.join(5)
        assert results == ["d"]  # the get finished (a miss), it did not crash
        assert waited > 0.1, "stop() did not wait for the call in flight"
    finally:
        redis_server.cont()


def test_a_forked_child_does_not_wait_for_its_parents_other_threads(shm_name):
    # L1 only: with a Redis tier, shmc_close itself can block in a forked child (the library's
    # Redis teardown; independent of the package), which is not what this test is about.
    cache = SyncCacheManager(CacheConfig(shm_name=shm_name, shm_size=8 << 20,
                                         enable_monitoring=False)).start()
    seg = cache.core._segment
    next(seg.entered)  # another thread of the parent is inside a call at the fork
    try:
        def child():
            done = threading.Event()
            threading.Thread(target=lambda: (cache.stop(), done.set()), daemon=True).start()
            assert done.wait(5), "stop() in the child waited for a call that never returns"

        assert _in_forked_child(child) == 0
    finally:
        next(seg.left)
        cache.stop()


# ---- the envelope built in Python ---------------------------------------------------------------
@pytest.mark.parametrize("payload", [b"", b"x", b'{"a":1}', bytes(range(256)) * 3])
@pytest.mark.parametrize("serializer", [_ffi.SER_RAW, _ffi.SER_JSON, _ffi.SER_PICKLE,
                                        _ffi.SER_MSGPACK, _ffi.SER_STR])
def test_an_uncompressed_envelope_built_in_python_is_the_librarys(serializer, payload):
    built, n = _segment.encode_into(serializer, payload, 0)
    assert isinstance(built, bytes) and n == len(built)
    out = ctypes.create_string_buffer(len(payload) + 64)
    size = ctypes.c_size_t()
    assert _ffi.lib.shmc_encode(serializer, payload, len(payload), 0, 0, out, len(out),
                                ctypes.byref(size)) == 0
    assert built == out.raw[:size.value]
    # Below the threshold the library does not compress either.
    assert _segment.encode(serializer, payload, len(payload) + 1) == built


def test_the_async_manager_uses_the_fast_path_inline(shm_name):
    async def run():
        async with CacheManager(CacheConfig(shm_name=shm_name, shm_size=8 << 20,
                                            enable_monitoring=False)) as cache:
            await cache.set("k", {"a": 1})
            assert await cache.get("k") == {"a": 1}
            assert await cache.get("absent", "d") == "d"
            assert await cache.get("k", tier=CacheTier.L1) == {"a": 1}
            return (await cache.get_stats())["process"]
    stats = asyncio.run(run())
    assert stats["hits_l1"] == 2 and stats["misses"] == 1 and stats["sets"] == 1


# ---- the JSON codec's shortcuts -----------------------------------------------------------------
JSON_VALUES = [{"a": 1, "b": [1.5, None, True, False]}, [], {}, 0, -7, 3.25, "text é ☃ \u2028",
               {"nested": {"deeper": [{"x": "y\n\t\"\\"}]}}, list(range(50)), 10**30,
               {"uni": "\ud7ff", "big": 1e300, "small": -1e-300}]


@pytest.mark.parametrize("value", JSON_VALUES)
def test_json_encoding_is_json_dumps(value):
    from shmcache.serialization import _json_dumps
    assert _json_dumps(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"),
                                            allow_nan=False)


def test_json_encoding_refuses_what_json_dumps_refuses():
    from shmcache.serialization import _json_dumps
    loop = []
    loop.append(loop)
    for bad in [float("nan"), float("inf"), loop, {"k": object()}, {(1, 2): 1}]:
        with pytest.raises((TypeError, ValueError)):
            _json_dumps(bad)


@pytest.mark.parametrize("text", [' {"a": 1} ', '\n[1, 2]\n', '{"a":1}', '"s"', "12", "NaN",
                                  "-Infinity", "[1e5, -0.0]"])
def test_json_decoding_is_json_loads(text):
    from shmcache.serialization import Codec
    value = Codec().loads(_ffi.SER_JSON, text.encode())
    expected = json.loads(text)
    assert value == expected or (value != value and expected != expected)  # NaN


@pytest.mark.parametrize("text", ["", " ", '{"a":1} x', '{"a":1}{}', "[1,", "nul", '"\\x"',
                                  "\xff"])
def test_json_decoding_refuses_what_json_loads_refuses(text):
    from shmcache.serialization import Codec, UndecodableValue
    with pytest.raises(UndecodableValue):
        Codec().loads(_ffi.SER_JSON, text.encode("latin-1"))
