#!/usr/bin/python3
"""bench_cached_hit.py - the cost of a hit, before and after a change, side by side in one run.

Extracts the Python package as it was at a git revision (--before, default: the 0.3.0 package,
commit cc4852f) next to the working tree's, and times the same calls through each, alternating
between them so that both see the same machine:

  get (sync)            SyncCacheManager.get of a 200-byte JSON dict, default configuration
  get (async)           await CacheManager.get of the same, default configuration
  @cached hit (async)   an awaited `@cached(ttl=300, key_prefix=...)` function, argument 123
  @cached hit (sync)    the same for a plain function
  TTLCache.get          cachetools.TTLCache, the private cache it replaces (the reference)

Each figure is the best of ROUNDS runs of N calls (time.perf_counter over the loop: the cost of
one call, the loop included), in a fresh interpreter per package and round. Both packages load
the same library (--lib, default build/lib/libshmcache.so): only the Python differs. Default
configuration means what a user gets without tuning: `local_cache_size` was 0 before this change
and is 1024 after, `single_flight` off before and on after.

Usage: bench/python/bench_cached_hit.py [--before REV] [--rounds 5] [--n 50000] [--lib PATH]
Prints a markdown table with each call's time before and after, and after/before and
after/TTLCache ratios. Not a test; about 30 s.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = r'''
import asyncio, json, os, sys, time
sys.path.insert(0, sys.argv[1])
import shmcache
from shmcache import CacheConfig, CacheManager, SyncCacheManager
from cachetools import TTLCache

N = int(sys.argv[2])
name = f"bench-hit-{os.getpid()}"
value = {"id": 123, "name": "x" * 140, "tags": [1, 2, 3], "active": True}
config = CacheConfig(shm_name=name, enable_monitoring=False)


def best(loop_once):
    t0 = time.perf_counter()
    loop_once()
    return (time.perf_counter() - t0) / N


out = {}
sync = SyncCacheManager(config).start()
sync.set("user_profile:123", value)
get = sync.get


def sync_gets():
    for _ in range(N):
        get("user_profile:123")


@sync.cached(ttl=300, key_prefix="sync_profile")
def sync_profile(user_id):
    return value


sync_profile(123)


def sync_hits():
    for _ in range(N):
        sync_profile(123)


ttl = TTLCache(2000, 300)
ttl["user_profile:123"] = value
tget = ttl.get


def ttl_gets():
    for _ in range(N):
        tget("user_profile:123")


out["get (sync)"] = best(sync_gets)
out["@cached hit (sync)"] = best(sync_hits)
out["TTLCache.get"] = best(ttl_gets)


async def main():
    manager = CacheManager(config)
    await manager.start()

    @manager.cached(ttl=300, key_prefix="profile")
    async def profile(user_id):
        return value

    await profile(123)
    aget = manager.get
    t0 = time.perf_counter()
    for _ in range(N):
        await aget("user_profile:123")
    out["get (async)"] = (time.perf_counter() - t0) / N
    t0 = time.perf_counter()
    for _ in range(N):
        await profile(123)
    out["@cached hit (async)"] = (time.perf_counter() - t0) / N
    await manager.stop()


asyncio.run(main())
sync.stop()
shmcache.destroy_segment(name, force=True)
print(json.dumps(out))
'''

CALLS = ("get (sync)", "get (async)", "@cached hit (async)", "@cached hit (sync)", "TTLCache.get")


def extract(rev, dest):
    """The package at rev, under dest/shmcache."""
    archive = subprocess.run(["git", "-C", ROOT, "archive", rev, "bindings/python/shmcache"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", dest, "--strip-components=2"], input=archive, check=True)
    return dest


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", default="cc4852f")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=50000)
    ap.add_argument("--lib", default=os.path.join(ROOT, "build", "lib", "libshmcache.so"))
    args = ap.parse_args()
    env = dict(os.environ, SHMCACHE_LIB=os.path.abspath(args.lib))
    env.pop("PYTHONPATH", None)
    with tempfile.TemporaryDirectory() as tmp:
        packages = {"before": extract(args.before, tmp),
                    "after": os.path.join(ROOT, "bindings", "python")}
        results = {side: {c: [] for c in CALLS} for side in packages}
        for _ in range(args.rounds):
            for side, path in packages.items():  # alternating: both see the same machine
                got = subprocess.run([sys.executable, "-c", CHILD, path, str(args.n)], env=env,
                                     check=True, capture_output=True, text=True)
                for call, secs in json.loads(got.stdout.strip().splitlines()[-1]).items():
                    results[side][call].append(secs)
    best = {side: {c: min(v) * 1e6 for c, v in calls.items()} for side, calls in results.items()}
    ttl = best["after"]["TTLCache.get"]
    print(f"Hit cost in microseconds, best of {args.rounds} rounds of {args.n} calls; before = "
          f"package at {args.before}, after = this tree; the same library "
          f"({os.path.relpath(os.path.abspath(args.lib), ROOT)}); load average "
          f"{os.getloadavg()[0]:.2f}.\n")
    print("| call (default configuration) | before us | after us | after / before | "
          "after / TTLCache.get |")
    print("|---|---|---|---|---|")
    for call in CALLS:
        b, a = best["before"][call], best["after"][call]
        print(f"| {call} | {b:.2f} | {a:.2f} | {a / b:.2f}x | {a / ttl:.2f}x |")


if __name__ == "__main__":
    main()
