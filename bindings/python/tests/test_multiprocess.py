"""test_multiprocess.py - what the package is for: processes sharing one cache.

* a value set in a child process (a fresh interpreter, multiprocessing "spawn") is read by the
  parent, and the reverse;
* a function computed in one process is a hit in another (the decorator's keys agree across
  interpreters);
* fork after start (gunicorn --preload): the child uses the manager its parent opened, without
  reopening, in L1 mode and with Redis (its thread pool and Redis connections are its own).
"""
import asyncio
import json
import multiprocessing
import os
import signal
import time

from shmc_test_support import wait_subscribed_sync, write_kept
from shmcache import CacheConfig, CacheManager, SyncCacheManager


def child_set_and_get(config_kwargs, queue):
    import shmcache  # a fresh interpreter: the package and library are loaded again

    with shmcache.SyncCacheManager(shmcache.CacheConfig(**config_kwargs)) as cache:
        cache.set("from_child", {"pid": os.getpid(), "list": [1, 2, 3]})
        queue.put(cache.get("from_parent"))


def child_compute(config_kwargs, queue):
    import shmcache

    computed = []
    with shmcache.SyncCacheManager(shmcache.CacheConfig(**config_kwargs)) as cache:
        @cache.cached(key_prefix="square")
        def square(x):
            computed.append(x)
            return {"x": x, "sq": x * x, "by": os.getpid()}

        results = [square(x) for x in range(30)]
    queue.put((computed, results))


def config_kwargs(mode, shm_name, request):
    kw = dict(shm_name=shm_name, shm_size=4 << 20, enable_monitoring=False)
    if mode == "l1+l2":
        kw["redis_url"] = request.getfixturevalue("redis_server").url
    return kw


def run_child(target, *args):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=args + (queue,))
    proc.start()
    try:
        result = queue.get(timeout=60)
    finally:
        proc.join(timeout=60)
    assert proc.exitcode == 0
    return result


def test_a_value_set_in_a_child_process_is_read_in_the_parent(mode, shm_name, request):
    kw = config_kwargs(mode, shm_name, request)
    with SyncCacheManager(CacheConfig(**kw)) as cache:
        if mode == "l1+l2":
            wait_subscribed_sync(cache)  # its resync would drop L1 copies written before it
        cache.set("from_parent", "hello child")
        # The child's set is kept in L1 (shmc_test_support.write_kept: a child is run again if
        # its own tracking echo, applied late, dropped the copy), where it is read below.
        seen_by_child = []
        write_kept(lambda: seen_by_child.append(run_child(child_set_and_get, kw)), shm_name,
                   b"from_child")
        assert seen_by_child[-1] == "hello child"
        got = cache.get("from_child", tier="l1")  # L1: the shared memory, not Redis
        assert got["list"] == [1, 2, 3] and got["pid"] != os.getpid()


def test_a_function_computed_in_one_process_is_a_hit_in_the_next(mode, shm_name, request):
    kw = config_kwargs(mode, shm_name, request)
    computed_a, results_a = run_child(child_compute, kw)
    computed_b, results_b = run_child(child_compute, kw)
    assert computed_a == list(range(30)) and computed_b == []
    assert results_b == results_a  # the very values the first process computed
    with SyncCacheManager(CacheConfig(**kw)) as cache:
        assert cache.get("square:7")["sq"] == 49


def _forked_child_work(cache, write_fd):
    async def work():
        out = {"pid": os.getpid()}
        out["parent_value"] = await cache.get("before_fork")
        await cache.set("from_forked_child", {"pid": os.getpid()})
        out["own_value"] = await cache.get("from_forked_child")
        out["miss"] = await cache.get("never_set", "default")  # with Redis: via the pool
        out["stats_pid"] = (await cache.get_stats())["process"]["pid"]
        out["health"] = (await cache.health_check())["status"]
        return out

    try:
        result = asyncio.run(work())
        os.write(write_fd, json.dumps(result).encode())
        code = 0
    except BaseException as e:  # report anything to the parent; never run pytest's teardown
        os.write(write_fd, json.dumps({"error": repr(e)}).encode())
        code = 1
    os._exit(code)


def _wait_child(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"forked child {pid} did not finish in {timeout} s")


def test_fork_after_start_the_child_uses_the_parents_manager(mode, shm_name, request):
    kw = config_kwargs(mode, shm_name, request)
    cache = CacheManager(CacheConfig(**kw))
    asyncio.run(cache.start())
    try:
        asyncio.run(cache.set("before_fork", "set by the parent"))
        asyncio.run(cache.get("warm the pool"))  # the parent's pool threads exist at fork
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            _forked_child_work(cache, write_fd)
        os.close(write_fd)
        status = _wait_child(pid, timeout=30)  # a child stuck on its parent's pool would hang
        with os.fdopen(read_fd, "rb") as r:
            report = json.loads(r.read() or b"{}")
        assert status == 0, report
        assert report["parent_value"] == "set by the parent"
        assert report["own_value"] == {"pid": pid} and report["stats_pid"] == pid
        assert report["miss"] == "default"
        assert report["health"] == "healthy"
        # What the child stored is in the parent's view of the segment.
        assert asyncio.run(cache.get("from_forked_child")) == {"pid": pid}
    finally:
        asyncio.run(cache.stop())
