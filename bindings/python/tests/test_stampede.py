"""test_stampede.py - @cached's stampede options (shmcache.decorators, docs/stampede.md), with real
processes sharing one segment:

* 16 callers in 4 processes (threads, or coroutines as in uvicorn workers) on one cold key: one
  computation, and every caller gets its value;
* the computing process SIGKILLed mid-computation: a waiting caller takes over within the bound
  (well under lease_timeout: the owner's death is seen within milliseconds);
* stale-while-revalidate: while a stale value may be served, no caller waits for the refresh;
* XFetch early refresh, a failing function, None results, a cancelled caller, bad options;
* the event loop never blocked by a wait; a worker stopped mid-computation gives its lease back;
  coroutines of one process wait for each other within wait_timeout, and only for their own cache;
* with Redis: the cross-host lock makes one of two hosts compute for both, and a value one host
  computed is served to another's coroutines.
"""
import asyncio
import multiprocessing
import os
import signal
import threading
import time

import pytest

import shmcache
from shmc_test_support import wait_until
from shmcache import CacheConfig, CacheManager, SyncCacheManager

COMPUTE_S = 0.2


def _kw(shm_name, **extra):
    kw = dict(shm_name=shm_name, shm_size=8 << 20, enable_monitoring=False)
    kw.update(extra)
    return kw


def _record(path):
    # One byte per computation, appended: the count across processes is the file's size.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, b"x")
    finally:
        os.close(fd)


def _count(path):
    return os.path.getsize(path) if os.path.exists(path) else 0


# ---- child processes (spawned: fresh interpreters, as separate workers are) ---------------------
def _four_threads_call(compute, arg, ready, go):
    """Four threads call compute(arg) as soon as go is set (this process says it is ready
    first); their results."""
    got = []

    def caller():
        go.wait(30)
        got.append(compute(arg))

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for t in threads:
        t.start()
    ready.put(os.getpid())
    for t in threads:
        t.join()
    return got


def herd_child(kw, kind, count_path, ready, go, results, options):
    config = CacheConfig(**kw)

    def compute_value(x):
        _record(count_path)
        return {"x": x, "by": os.getpid(), "at": time.time()}

    if kind == "threads":
        with SyncCacheManager(config) as cache:
            @cache.cached(ttl=60, key_prefix="herd", **options)
            def compute(x):
                value = compute_value(x)
                time.sleep(COMPUTE_S)
                return value

            results.put(_four_threads_call(compute, 7, ready, go))
        return

    async def main():
        async with CacheManager(config) as cache:
            @cache.cached(ttl=60, key_prefix="herd", **options)
            async def compute(x):
                value = compute_value(x)
                await asyncio.sleep(COMPUTE_S)
                return value

            loop = asyncio.get_running_loop()
            ready.put(os.getpid())
            await loop.run_in_executor(None, go.wait, 30)
            results.put(list(await asyncio.gather(*(compute(7) for _ in range(4)))))

    asyncio.run(main())


def slow_owner_child(kw, count_path, started):
    with SyncCacheManager(CacheConfig(**kw)) as cache:
        @cache.cached(ttl=60, key_prefix="owner", single_flight=True, lease_timeout=5)
        def compute(x):
            _record(count_path)
            started.set()
            time.sleep(60)  # killed long before this ends
            return "from the killed owner"

        compute(1)


def swr_child(kw, count_path, go, results):
    with SyncCacheManager(CacheConfig(**kw)) as cache:
        @cache.cached(ttl=0.3, stale_ttl=60, key_prefix="swr")
        def compute(x):
            _record(count_path)
            time.sleep(0.3)  # the refresh: no caller may wait for it
            return {"version": _count(count_path)}

        slowest = [0.0]
        seen = set()
        span = [float("inf"), 0.0]  # first call's start, last call's end (CLOCK_MONOTONIC)

        def caller():
            go.wait(30)
            end = time.monotonic() + 0.6
            while time.monotonic() < end:
                t0 = time.monotonic()
                seen.add(compute(1)["version"])
                t1 = time.monotonic()
                slowest[0] = max(slowest[0], t1 - t0)
                span[0], span[1] = min(span[0], t0), max(span[1], t1)
                time.sleep(0.005)

        threads = [threading.Thread(target=caller) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        results.put((slowest[0], sorted(seen), span[0], span[1]))


def _spawn(target, *args):
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=target, args=args)
    proc.start()
    return proc


def _join_all(procs):
    for p in procs:
        p.join(60)
        if p.is_alive():
            p.kill()
            p.join()
    return [p.exitcode for p in procs]


# ---- the guarantees ---------------------------------------------------------------------
def _herd(shm_name, tmp_path, kind, options):
    """16 callers (4 processes x 4 threads or coroutines) of one cold key at the same instant:
    (values they got, computations made, the host's single-flight figures)."""
    ctx = multiprocessing.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    count_path = str(tmp_path / "computations")
    kw = _kw(shm_name)
    with SyncCacheManager(CacheConfig(**kw)) as cache:  # create the segment before the herd
        procs = [ctx.Process(target=herd_child,
                             args=(kw, kind, count_path, ready, go, results, options))
                 for _ in range(4)]
        for p in procs:
            p.start()
        try:
            for _ in procs:
                ready.get(timeout=60)
            go.set()  # all 16 callers at the same instant
            got = [v for _ in procs for v in results.get(timeout=60)]
        finally:
            codes = _join_all(procs)
        assert codes == [0, 0, 0, 0]
        return got, _count(count_path), cache.get_stats()["single_flight"]


# Plain @cached: single flight is the default.
@pytest.mark.parametrize("options", [{}, {"single_flight": True}],
                         ids=["plain @cached", "single_flight=True"])
@pytest.mark.parametrize("kind", ["threads", "coroutines"])
def test_16_callers_in_4_processes_on_one_cold_key_compute_it_once(shm_name, tmp_path, kind,
                                                                    options):
    got, computations, stats = _herd(shm_name, tmp_path, kind, options)
    assert len(got) == 16
    assert computations == 1
    assert all(v == got[0] for v in got)  # everyone got the one computed value
    assert stats["leases_granted"] == 1 and stats["lease_timeouts"] == 0
    assert stats["leases_held"] == 0


def test_single_flight_false_is_a_plain_cache_every_missing_caller_computes(shm_name, tmp_path):
    got, computations, stats = _herd(shm_name, tmp_path, "threads", {"single_flight": False})
    assert len(got) == 16 and computations > 1  # the opt-out really is off
    assert stats["leases_granted"] == 0


def test_the_computing_process_killed_a_waiting_caller_takes_over_at_once(shm_name, tmp_path):
    ctx = multiprocessing.get_context("spawn")
    count_path = str(tmp_path / "computations")
    kw = _kw(shm_name)
    with SyncCacheManager(CacheConfig(**kw)) as cache:
        started = ctx.Event()
        owner = ctx.Process(target=slow_owner_child, args=(kw, count_path, started))
        owner.start()
        try:
            assert started.wait(30), "the owner never started computing"

            @cache.cached(ttl=60, key_prefix="owner", single_flight=True, lease_timeout=5)
            def compute(x):
                _record(count_path)
                return "from the successor"

            result = {}

            def waiter():
                result["value"] = compute(1)
                result["at"] = time.monotonic()

            t = threading.Thread(target=waiter)
            t.start()
            time.sleep(0.3)  # the waiter is waiting for the owner now
            assert t.is_alive(), "the waiter did not wait for the lease owner"
            killed_at = time.monotonic()
            os.kill(owner.pid, signal.SIGKILL)
            t.join(10)
            assert not t.is_alive()
        finally:
            _join_all([owner])
        took = result["at"] - killed_at
        assert result["value"] == "from the successor"
        assert took < 1.0, f"takeover took {took:.3f} s (lease_timeout is 5 s)"
        assert _count(count_path) == 2
        stats = cache.get_stats()["single_flight"]
        assert stats["takeovers"] == 1 and stats["leases_held"] == 0
        print(f"takeover {took * 1000:.1f} ms after SIGKILL")


def test_with_stale_while_revalidate_no_caller_waits_for_the_refresh(shm_name, tmp_path):
    ctx = multiprocessing.get_context("spawn")
    count_path = str(tmp_path / "computations")
    kw = _kw(shm_name)
    with SyncCacheManager(CacheConfig(**kw)) as cache:
        @cache.cached(ttl=0.3, stale_ttl=60, key_prefix="swr")
        def compute(x):
            _record(count_path)
            return {"version": _count(count_path)}

        assert compute(1) == {"version": 1}
        time.sleep(0.35)  # now stale
        go, results = ctx.Event(), ctx.Queue()
        procs = [_spawn(swr_child, kw, count_path, go, results) for _ in range(4)]
        try:
            time.sleep(1.0)  # let the interpreters start
            go.set()
            reports = [results.get(timeout=60) for _ in procs]
        finally:
            assert _join_all(procs) == [0, 0, 0, 0]
    slowest = max(r[0] for r in reports)
    assert slowest < 0.1, f"a caller waited {slowest:.3f} s (the refresh takes 0.3 s)"
    seen = set(v for r in reports for v in r[1])
    assert 1 in seen  # the stale value was served
    # One refresh per expiry: the first at once, then at most one more for each 0.3 s TTL that
    # ran out while calls were made: 0.6 s per child, more if a child started late (under ASan an
    # interpreter may take longer than the second given to start; CLOCK_MONOTONIC is host-wide).
    # A child's stop() lets its refresh store its value: a child that finishes first must not
    # throw its refresh away and leave another to compute it again.
    window = max(r[3] for r in reports) - min(r[2] for r in reports)
    assert 2 <= _count(count_path) <= 2 + int(window / 0.3), f"calls spanned {window:.2f} s"
    print(f"16 callers, slowest call {slowest * 1000:.1f} ms, versions seen {sorted(seen)}")


# ---- one process ---------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_coroutines_of_one_process_share_one_computation(shm_name):
    calls = []
    async with CacheManager(CacheConfig(**_kw(shm_name))) as cache:
        @cache.cached(ttl=60, single_flight=True)
        async def compute(x):
            calls.append(x)
            await asyncio.sleep(0.05)
            return [x]

        got = await asyncio.gather(*(compute(1) for _ in range(50)))
        assert calls == [1] and all(g == [1] for g in got)
        assert got[0] is not got[1]  # each caller decodes its own copy
        assert await cache.get(compute.cache_key(1)) == [1]  # the usual key and envelope
        stats = await cache.get_stats()
        # One lease; the 49 others waited for this process's computation, not the host's.
        assert stats["single_flight"]["leases_granted"] == 1
        assert stats["process"]["flight_joined"] >= 49 - stats["single_flight"]["waits"]


@pytest.mark.asyncio
async def test_a_waiting_coroutine_never_blocks_the_event_loop(shm_name):
    # Another "process" (a thread with a SyncCacheManager of its own: another handle) holds the
    # lease; the coroutine waits for it in a thread while the loop keeps running.
    kw = _kw(shm_name)
    release = threading.Event()
    with SyncCacheManager(CacheConfig(**kw)) as other:
        @other.cached(ttl=60, key_prefix="loop", single_flight=True)
        def slow(x):
            release.wait(10)
            return "computed elsewhere"

        t = threading.Thread(target=slow, args=(1,))
        t.start()
        wait_until(lambda: other.get_stats()["single_flight"]["leases_held"] == 1)
        async with CacheManager(CacheConfig(**kw)) as cache:
            @cache.cached(ttl=60, key_prefix="loop", single_flight=True)
            async def slow_async(x):
                raise AssertionError("the lease owner computes this, not the waiter")

            ticks = 0

            async def ticker():
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.01)

            tick_task = asyncio.ensure_future(ticker())
            waiter = asyncio.ensure_future(slow_async(1))
            await asyncio.sleep(0.3)
            assert not waiter.done() and ticks >= 10
            release.set()
            assert await asyncio.wait_for(waiter, 5) == "computed elsewhere"
            tick_task.cancel()
        t.join()


def test_sync_threads_share_one_computation_and_refresh_in_the_background(shm_name):
    calls = []
    with SyncCacheManager(CacheConfig(**_kw(shm_name))) as cache:
        @cache.cached(ttl=0.2, stale_ttl=30, single_flight=True)
        def compute(x):
            calls.append(x)
            time.sleep(0.1)
            return len(calls)

        got = []
        threads = [threading.Thread(target=lambda: got.append(compute(1))) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert got == [1] * 8 and len(calls) == 1
        time.sleep(0.25)
        t0 = time.monotonic()
        assert compute(1) == 1  # stale, at once; the refresh runs in a background thread
        assert time.monotonic() - t0 < 0.05
        wait_until(lambda: compute(1) == 2, what="the background refresh")
        assert len(calls) == 2


@pytest.mark.asyncio
async def test_early_refresh_replaces_a_hot_value_before_it_expires(shm_name):
    versions = []
    async with CacheManager(CacheConfig(**_kw(shm_name))) as cache:
        @cache.cached(ttl=1.0, early_refresh=1e6)  # a huge beta: every hit refreshes early
        async def compute(x):
            versions.append(len(versions) + 1)
            await asyncio.sleep(0.01)
            return versions[-1]

        assert await compute(1) == 1
        assert await compute(1) == 1  # served, and refreshed in the background
        for _ in range(100):
            if len(versions) >= 2 and await cache.get(compute.cache_key(1)) == 2:
                break
            await asyncio.sleep(0.01)
        assert await cache.get(compute.cache_key(1)) == 2  # refreshed before expiring
        stats = (await cache.get_stats())["single_flight"]
        assert stats["early_refreshes"] >= 1

        @cache.cached(ttl=60, early_refresh=True)  # beta 1: far from expiry, never early
        async def calm(x):
            versions.append(-1)
            return 0

        before = len(versions)
        for _ in range(200):
            await calm(2)
        await asyncio.sleep(0.05)
        assert len(versions) == before + 1


@pytest.mark.asyncio
async def test_a_failing_function_hands_the_lease_to_the_next_caller_at_once(shm_name):
    attempts = []
    async with CacheManager(CacheConfig(**_kw(shm_name))) as cache:
        @cache.cached(ttl=60, single_flight=True, lease_timeout=30)
        async def flaky(x):
            attempts.append(x)
            await asyncio.sleep(0.05)
            if len(attempts) == 1:
                raise RuntimeError("origin down")
            return "ok"

        t0 = time.monotonic()
        first, second = await asyncio.gather(flaky(1), flaky(1), return_exceptions=True)
        assert isinstance(first, RuntimeError) and second == "ok"
        assert time.monotonic() - t0 < 5  # not the 30 s lease
        assert (await cache.get_stats())["single_flight"]["abandoned"] == 1


@pytest.mark.asyncio
async def test_a_cancelled_computation_gives_the_lease_back(shm_name):
    async with CacheManager(CacheConfig(**_kw(shm_name))) as cache:
        started = asyncio.Event()

        @cache.cached(ttl=60, single_flight=True, lease_timeout=30,
                      key_builder=lambda x, hang: f"cancel:{x}")  # one key for both calls
        async def compute(x, hang):
            started.set()
            if hang:
                await asyncio.sleep(60)
            return "second"

        task = asyncio.ensure_future(compute(1, True))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await cache.get_stats())["single_flight"]["leases_held"] == 0
        t0 = time.monotonic()
        assert await compute(1, False) == "second"
        assert time.monotonic() - t0 < 5


def test_none_is_not_cached_unless_asked_and_the_lease_is_freed(shm_name):
    calls = []
    with SyncCacheManager(CacheConfig(**_kw(shm_name))) as cache:
        @cache.cached(ttl=60, single_flight=True)
        def nothing(x):
            calls.append(x)

        @cache.cached(ttl=60, single_flight=True, cache_none=True)
        def nothing_cached(x):
            calls.append(x)

        assert nothing(1) is None and nothing(1) is None
        assert nothing_cached(2) is None and nothing_cached(2) is None
        assert calls == [1, 1, 2]
        assert cache.get_stats()["single_flight"]["leases_held"] == 0


def test_a_value_too_large_is_returned_uncached_and_frees_the_lease(shm_name):
    with SyncCacheManager(CacheConfig(**_kw(shm_name, shm_size=4 << 20))) as cache:
        @cache.cached(ttl=60, single_flight=True)
        def huge(x):
            return os.urandom(8 << 20).hex()

        assert len(huge(1)) == 16 << 20
        assert cache.get_stats()["single_flight"]["leases_held"] == 0

        @cache.cached(ttl=60, single_flight=True)
        def compressible(x):
            return "abc" * 100000  # 300 KB, stored compressed (a few hundred bytes)

        assert compressible(1) == compressible(1) == "abc" * 100000
        assert cache.get_stats()["process"]["hits_l1"] == 1

        @cache.cached(ttl=60, single_flight=True)
        def unencodable(x):
            return object()

        with pytest.raises(TypeError):
            unencodable(1)
        assert cache.get_stats()["single_flight"]["leases_held"] == 0


def test_bad_options_are_refused_when_decorating(shm_name):
    with pytest.raises(ValueError, match="single_flight"):
        shmcache.cached(ttl=1, single_flight=False, stale_ttl=5)
    with pytest.raises(TypeError):
        shmcache.cached(ttl=1, stale_ttl="5")
    with pytest.raises(ValueError):
        shmcache.cached(ttl=1, stale_ttl=-1)
    with pytest.raises(ValueError):
        shmcache.cached(ttl=1, early_refresh=-1.0)
    with pytest.raises(ValueError):
        shmcache.cached(ttl=1, lease_timeout=0)
    with pytest.raises(ValueError):
        shmcache.cached(ttl=1, lease_timeout=7200)
    with pytest.raises(TypeError):
        shmcache.cached(ttl=1, cross_host_lock="yes")
    with pytest.raises(TypeError):
        shmcache.cached(ttl=1, single_flight="yes")


def test_options_the_cache_cannot_honour_are_refused_at_the_first_call(shm_name):
    with SyncCacheManager(CacheConfig(**_kw(shm_name))) as cache:
        @cache.cached(ttl=1, cross_host_lock=True)
        def needs_redis(x):
            return x

        with pytest.raises(ValueError, match="redis"):
            needs_redis(1)

        @cache.cached(ttl=1, single_flight=True, tier="l2")
        def l2_only(x):
            return x

        with pytest.raises(ValueError, match="shared-memory tier"):
            l2_only(1)

        @cache.cached(ttl=1, tier="l2")  # the default single flight: off where it cannot be
        def l2_default(x):
            return x

        assert l2_default(1) == 1  # no Redis here: computed every time, nothing raised


# ---- with Redis: two hosts ----------------------------------------------------------------------
def host_child(kw, count_path, ready, go, results):
    from shmc_test_support import wait_subscribed_sync

    with SyncCacheManager(CacheConfig(**kw)) as cache:
        wait_subscribed_sync(cache)

        @cache.cached(ttl=60, key_prefix="xhost", single_flight=True, cross_host_lock=True)
        def compute(x):
            _record(count_path)
            time.sleep(COMPUTE_S)
            return {"x": x, "by": os.getpid()}

        results.put(_four_threads_call(compute, 3, ready, go))


def test_the_cross_host_lock_makes_one_of_two_hosts_compute(shm_name, redis_server, tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    count_path = str(tmp_path / "computations")
    names = [shm_name, shm_name + "-b"]
    try:
        procs = [ctx.Process(target=host_child,
                             args=(_kw(n, redis_url=redis_server.url), count_path, ready, go,
                                   results))
                 for n in names for _ in range(2)]  # two processes on each host
        for p in procs:
            p.start()
        try:
            for _ in procs:
                ready.get(timeout=60)
            go.set()
            got = [v for _ in procs for v in results.get(timeout=60)]
        finally:
            codes = _join_all(procs)
        assert codes == [0] * 4
        assert _count(count_path) == 1
        assert len(got) == 16 and all(v == got[0] for v in got)
    finally:
        shmcache.destroy_segment(names[1], force=True)


@pytest.mark.asyncio
async def test_with_redis_a_value_one_host_computed_is_served_to_another(shm_name, redis_server):
    from shmc_test_support import wait_subscribed

    calls = []
    kw = dict(redis_url=redis_server.url)
    other = shm_name + "-b"
    try:
        async with CacheManager(CacheConfig(**_kw(shm_name, **kw))) as a, \
                CacheManager(CacheConfig(**_kw(other, **kw))) as b:
            await wait_subscribed(a)
            await wait_subscribed(b)

            def define(cache):
                @cache.cached(ttl=60, key_prefix="l2", stale_ttl=30, cross_host_lock=True)
                async def compute(x):
                    calls.append(x)
                    await asyncio.sleep(0.05)
                    return {"x": x}
                return compute

            on_a, on_b = define(a), define(b)
            got = await asyncio.gather(*(on_a(1) for _ in range(5)), *(on_b(1) for _ in range(5)))
            assert calls == [1] and all(g == {"x": 1} for g in got)
            assert (await b.get_stats())["process"]["hits_l2"] + \
                (await a.get_stats())["process"]["hits_l2"] >= 1
            assert await on_b(1) == {"x": 1}  # now in b's L1
            stats = [(await c.get_stats())["single_flight"] for c in (a, b)]
            assert sum(s["l2_locks"] for s in stats) == 1
            assert sum(s["leases_held"] for s in stats) == 0
    finally:
        shmcache.destroy_segment(other, force=True)


@pytest.mark.asyncio
async def test_stopping_a_manager_mid_computation_gives_its_lease_back(shm_name):
    kw = _kw(shm_name)
    cache = CacheManager(CacheConfig(**kw))
    await cache.start()
    started = asyncio.Event()

    @cache.cached(ttl=60, single_flight=True, lease_timeout=60)
    async def slow(x):
        started.set()
        await asyncio.sleep(30)
        return x

    task = asyncio.ensure_future(slow(1))
    await started.wait()
    with SyncCacheManager(CacheConfig(**kw)) as other:
        assert other.get_stats()["single_flight"]["leases_held"] == 1
        await cache.stop()  # the worker shuts down while its computation runs
        assert other.get_stats()["single_flight"]["leases_held"] == 0
        t0 = time.monotonic()

        @other.cached(ttl=60, single_flight=True, lease_timeout=60,
                      key_builder=lambda x: slow.cache_key(x))
        def same_key(x):
            return "computed by the next worker"

        assert same_key(1) == "computed by the next worker"
        assert time.monotonic() - t0 < 5  # not the 60 s lease
    task.cancel()
    with pytest.raises((asyncio.CancelledError, shmcache.ShmcacheError)):
        await task


def test_stopping_a_sync_manager_lets_its_background_refresh_store_its_value(shm_name):
    kw = _kw(shm_name)
    versions = []
    with SyncCacheManager(CacheConfig(**kw)) as cache:
        @cache.cached(ttl=0.2, stale_ttl=60, key_prefix="drain")
        def compute(x):
            versions.append(len(versions) + 1)
            if len(versions) > 1:
                time.sleep(0.3)  # the refresh is still computing when stop() is called
            return versions[-1]

        assert compute(1) == 1
        time.sleep(0.25)  # now stale
        assert compute(1) == 1  # served stale; the refresh starts in the background
    # stop() returned: the refresh finished and stored its value, for the next worker
    with SyncCacheManager(CacheConfig(**kw)) as successor:
        assert successor.get(compute.cache_key(1)) == 2
        assert successor.get_stats()["single_flight"]["leases_held"] == 0
    assert versions == [1, 2]


def test_stop_waits_for_each_background_refresh_no_longer_than_its_own_lease(shm_name):
    kw = _kw(shm_name)
    release, calls = threading.Event(), []
    with SyncCacheManager(CacheConfig(**kw)) as cache:
        @cache.cached(ttl=0.2, stale_ttl=60, lease_timeout=0.3, key_prefix="hung")
        def hung(x):
            calls.append("hung")
            if calls.count("hung") > 1:  # the refresh: it hangs
                release.wait(30)
            return "v"

        @cache.cached(ttl=0.2, stale_ttl=60, lease_timeout=20, key_prefix="quick")
        def quick(x):
            calls.append("quick")
            return "v"

        assert hung(1) == "v" and quick(1) == "v"
        time.sleep(0.25)
        assert hung(1) == "v" and quick(1) == "v"  # two refreshes start; one hangs
        t0 = time.monotonic()
    # stop() gave up on the hung one at its own lease's deadline (0.3 s), not at the quick
    # one's (20 s), which ended long before, nor when the hung one returns (30 s)
    took = time.monotonic() - t0
    release.set()
    assert sorted(calls) == ["hung", "hung", "quick", "quick"]
    assert 0.1 < took < 10, f"stop() waited {took:.2f} s for a refresh with a 0.3 s lease"


@pytest.mark.asyncio
async def test_stopping_an_async_manager_lets_its_background_refresh_store_its_value(shm_name):
    kw = _kw(shm_name)
    versions = []
    cache = CacheManager(CacheConfig(**kw))
    await cache.start()

    @cache.cached(ttl=0.2, stale_ttl=60, key_prefix="drain-async")
    async def compute(x):
        versions.append(len(versions) + 1)
        if len(versions) > 1:
            await asyncio.sleep(0.3)
        return versions[-1]

    assert await compute(1) == 1
    await asyncio.sleep(0.25)
    assert await compute(1) == 1  # stale; refreshed in a task of this loop
    await cache.stop()
    with SyncCacheManager(CacheConfig(**kw)) as successor:
        assert successor.get(compute.cache_key(1)) == 2
        assert successor.get_stats()["single_flight"]["leases_held"] == 0
    assert versions == [1, 2]


@pytest.mark.asyncio
async def test_an_async_stop_waits_for_each_refresh_no_longer_than_its_own_lease(shm_name):
    cache = CacheManager(CacheConfig(**_kw(shm_name)))
    await cache.start()
    calls = []

    @cache.cached(ttl=0.2, stale_ttl=60, lease_timeout=0.3, key_prefix="hung-async")
    async def hung(x):
        calls.append("hung")
        if calls.count("hung") > 1:
            await asyncio.sleep(30)  # the refresh hangs
        return "v"

    @cache.cached(ttl=0.2, stale_ttl=60, lease_timeout=20, key_prefix="quick-async")
    async def quick(x):
        calls.append("quick")
        return "v"

    assert await hung(1) == "v" and await quick(1) == "v"
    await asyncio.sleep(0.25)
    assert await hung(1) == "v" and await quick(1) == "v"  # two refresh tasks; one hangs
    t0 = time.monotonic()
    await cache.stop()
    took = time.monotonic() - t0  # the hung one's 0.3 s lease, not the quick one's 20 s
    assert sorted(calls) == ["hung", "hung", "quick", "quick"]
    assert 0.1 < took < 10, f"stop() waited {took:.2f} s for a refresh with a 0.3 s lease"
    for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
        task.cancel()  # the hung refresh


@pytest.mark.asyncio
async def test_a_sync_stop_on_the_loop_thread_does_not_wait_for_that_loop_s_refreshes(shm_name):
    cache = CacheManager(CacheConfig(**_kw(shm_name)))
    await cache.start()
    calls = []

    @cache.cached(ttl=0.2, stale_ttl=60, lease_timeout=20, key_prefix="loop")
    async def compute(x):
        calls.append(x)
        if len(calls) > 1:
            await asyncio.sleep(0.1)  # cannot run while the loop's thread is blocked
        return len(calls)

    assert await compute(1) == 1
    await asyncio.sleep(0.25)
    assert await compute(1) == 1  # the refresh is a task of this loop
    t0 = time.monotonic()
    cache.sync.stop()  # a synchronous shutdown hook, on the loop's thread
    took = time.monotonic() - t0
    assert took < 10, f"the loop was blocked {took:.1f} s by a wait it could not end"
    await asyncio.sleep(0.3)  # the refresh ends, unstored (its lease is given back)


@pytest.mark.asyncio
async def test_a_coroutine_waits_for_a_sibling_no_longer_than_wait_timeout(shm_name):
    async with CacheManager(CacheConfig(**_kw(shm_name))) as cache:
        started = asyncio.Event()
        calls = []

        @cache.cached(ttl=60, single_flight=True, wait_timeout=0.3,
                      key_builder=lambda hang: "sibling")
        async def compute(hang):
            calls.append(hang)
            started.set()
            if hang:
                await asyncio.sleep(30)
            return "from the second caller"

        hung = asyncio.ensure_future(compute(True))
        await started.wait()
        t0 = time.monotonic()
        assert await compute(False) == "from the second caller"
        took = time.monotonic() - t0
        assert 0.25 < took < 3, f"the sibling waited {took:.2f} s (wait_timeout 0.3 s)"
        assert calls == [True, False]
        hung.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hung
        assert (await cache.get_stats())["single_flight"]["leases_held"] == 0


@pytest.mark.asyncio
async def test_two_caches_on_one_loop_do_not_share_a_computation(shm_name):
    other = shm_name + "-b"
    calls = []
    try:
        async with CacheManager(CacheConfig(**_kw(shm_name))) as a, \
                CacheManager(CacheConfig(**_kw(other))) as b:
            def define(cache, name):
                @cache.cached(ttl=60, single_flight=True, key_prefix="same")
                async def compute(x):
                    calls.append(name)
                    await asyncio.sleep(0.05)
                    return name
                return compute

            on_a, on_b = define(a, "a"), define(b, "b")
            got = await asyncio.gather(on_a(1), on_b(1), on_a(1), on_b(1))
            assert got == ["a", "b", "a", "b"]  # each from its own cache
            assert sorted(calls) == ["a", "b"]
    finally:
        shmcache.destroy_segment(other, force=True)
