"""test_gunicorn.py - the example app (examples/fastapi_app) under real gunicorn + uvicorn workers.

What the README promises, checked the way production runs it: several worker processes on one
port, each opening the same segment on its own.

  - a profile computed by one worker is served by the other, with no second computation (the
    value carries the computing pid and a per-worker computation number; the response carries
    the serving pid);
  - with --preload the app is imported and the cache opened in the master before the fork, and
    the workers still share one working cache;
  - with REDIS_URL set (a real redis-server, conftest's redis_server), a value set through one
    worker is in Redis, and after it is dropped from the shared L1 it comes back from Redis
    without being computed again;
  - a worker SIGKILLed in the middle of traffic is replaced by gunicorn and the cache keeps
    working: the values computed before the kill are still served, by the new worker too, and
    the segment checks clean.

Every test has its own segment, port and SQLite file; gunicorn is always stopped and the segment
always removed (gunicorn_support.running).
"""
import itertools
import os
import signal
import subprocess
import threading
import time

import pytest

from gunicorn_support import HttpError, cli_path, running, segment_exists
from shmc_test_support import write_kept

# With --preload, gunicorn imports this module in the master, before forking. The example app
# opens its cache in each worker's lifespan, after the fork; this opens it at import instead,
# so that the master holds the segment mapped and the workers inherit the handle.
PRELOADED_APP = """
from fastapi_app.app import app, cache
cache.sync.start()  # idempotent: the workers' lifespan start() finds it open
"""


@pytest.fixture
def segment(shm_name):
    """conftest's shm_name (removed and checked gone afterwards), also checked here."""
    yield shm_name
    assert not segment_exists(shm_name), f"segment {shm_name} left behind"


def profiles_by_computing_pid(g, user_ids):
    """GET each user once; {computing pid: [first response, ...]}."""
    out = {}
    for uid in user_ids:
        r = g.get(f"/users/{uid}")
        out.setdefault(r["profile"]["computed_by"], []).append(r)
    return out


def assert_served_by_other_worker(g, first):
    """Re-GET first's user until a worker other than the computing one serves it; that worker
    must return the very same computation."""
    computed_by = first["profile"]["computed_by"]
    uid = first["profile"]["id"]
    other = g.get_until(f"/users/{uid}", lambda r: r["served_by"] != computed_by)
    assert other["profile"] == first["profile"], "recomputed instead of served from the cache"
    return other["served_by"]


def test_each_worker_serves_what_the_other_computed(tmp_path, segment):
    with running(tmp_path, segment, workers=2) as g:
        by_pid = profiles_by_computing_pid(g, range(1, 21))
        # 20 first requests, each landing on either worker: both computed some (odds of not:
        # 2 in a million).
        assert len(by_pid) == 2, f"one worker computed all 20 profiles: {list(by_pid)}"
        for pid, responses in by_pid.items():
            assert all(r["served_by"] == pid for r in responses)  # a miss: computed where served
            served_by = assert_served_by_other_worker(g, responses[0])
            assert served_by != pid
        l1 = g.get("/metrics/cache")["l1_cache"]
        assert l1["hits"] >= 2 and l1["misses"] >= 20 and l1["size"] >= 20


def test_preload_opens_the_cache_in_the_master_and_workers_share_it(tmp_path, segment):
    (tmp_path / "preloaded_app.py").write_text(PRELOADED_APP)
    with running(tmp_path, segment, workers=2, preload=True, app="preloaded_app:app",
                 extra_pythonpath=[str(tmp_path)]) as g:
        # The master imported the app and opened the segment before forking the workers.
        assert g.maps_segment(g.proc.pid), "the master has not mapped the segment"
        workers = g.worker_pids()
        assert len(workers) == 2 and all(g.maps_segment(p) for p in workers)
        by_pid = profiles_by_computing_pid(g, range(1, 21))
        assert len(by_pid) == 2
        for responses in by_pid.values():
            assert_served_by_other_worker(g, responses[0])


def test_l1_and_redis_l2(tmp_path, segment, redis_server):
    import redis
    from shmcache import CacheConfig, CacheTier, SyncCacheManager

    with running(tmp_path, segment, workers=2, env={"REDIS_URL": redis_server.url}) as g:
        r = redis.Redis.from_url(redis_server.url)
        # Computed and set in both tiers by a worker: kept in L1 (shmc_test_support.write_kept),
        # where it is dropped from below.
        responses = []
        write_kept(lambda: responses.append(g.get("/users/5")), segment, b"user_profile:5",
                   undo=lambda: r.delete("user_profile:5"))
        first = responses[-1]
        keys = list(r.scan_iter(match="*user_profile:5"))
        assert len(keys) == 1, f"user_profile:5 not in Redis: {list(r.scan_iter())}"
        assert r.get(keys[0])[0] == 0xC5  # the library's value envelope
        assert r.ttl(keys[0]) > 0

        # Drop it from the shared L1 only (this process opens the segment too): the next GET,
        # on any worker, is an L2 hit.
        with SyncCacheManager(CacheConfig(shm_name=segment, enable_monitoring=False)) as local:
            assert local.delete("user_profile:5", tier=CacheTier.L1)
            assert local.get("user_profile:5", tier=CacheTier.L1) is None
        again = g.get("/users/5")
        assert again["profile"] == first["profile"], "computed again instead of read from Redis"
        stats = g.get("/metrics/cache")
        assert stats["l2_cache"]["hits"] >= 1  # host-wide: counted in the segment
        # "connected" is the answering worker's own (the one that served /users/5 may be the
        # other): the health route probes Redis from whichever worker answers.
        health = g.get("/health/cache")
        assert health["l2"]["connected"] and health["status"] == "healthy", health


def test_worker_sigkilled_mid_traffic(tmp_path, segment):
    with running(tmp_path, segment, workers=2) as g:
        before = {uid: g.get(f"/users/{uid}")["profile"] for uid in range(1, 31)}
        workers_before = g.worker_pids()
        stop = threading.Event()
        outcomes = {"ok": 0, "failed": 0}

        def traffic():
            for uid in itertools.cycle(range(1, 41)):
                if stop.is_set():
                    return
                try:
                    g.get(f"/users/{uid}", timeout=5)
                    outcomes["ok"] += 1
                except (OSError, HttpError):
                    outcomes["failed"] += 1  # requests in flight on the killed worker

        threads = [threading.Thread(target=traffic) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)
            ok_before_kill = outcomes["ok"]
            victim = min(workers_before)
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 15
            while len(g.worker_pids() - workers_before) != 1:
                if time.monotonic() > deadline:
                    pytest.fail(f"gunicorn did not replace worker {victim}:\n{g.log()}")
                time.sleep(0.05)
            (replacement,) = g.worker_pids() - workers_before
            ok_at_replacement = outcomes["ok"]
            time.sleep(1.0)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert ok_before_kill > 0, "no traffic was flowing when the worker was killed"
        assert outcomes["ok"] > ok_at_replacement, "no request succeeded after the kill"
        assert outcomes["failed"] <= 8, outcomes  # at most the requests the victim held

        # Every profile computed before the kill is still served, unchanged; the replacement,
        # which did not exist when they were computed, serves them too.
        for uid, profile in before.items():
            assert g.get(f"/users/{uid}")["profile"] == profile
        r = g.get_until("/users/1", lambda r: r["served_by"] == replacement)
        assert r["profile"] == before[1]
        check = subprocess.run([cli_path(), "--name", segment, "check"], capture_output=True,
                               text=True, timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr
