#!/usr/bin/python3
"""bench_peers.py - shmcache from Python next to the caches a Python service would otherwise use.

One run, one machine, the same keys and values for every peer: get and set latency (p50, p99)
and throughput of

  shmcache      the package's sync facade (default configuration, and with
                local_cache_size=1024), its async CacheManager (awaited in a running loop), and
                the ctypes floor (floor.py: the cheapest ctypes call, no package code, with the
                value copied out and decoded by hand)
  redis-py      on a redis-server this script starts on a free loopback port
  pymemcache    on a memcached this script starts (memcached -l 127.0.0.1 -p PORT -U 0)
  diskcache     in a /dev/shm directory
  python-lmdb   in a /dev/shm directory
  cachetools    TTLCache and LRUCache: private to the process, the object itself stored

then a markdown table with each peer's ratio to shmcache's default row, the two targets with
PASS/FAIL:

  1. shmcache get p50 no slower than cachetools.TTLCache's (the private cache it replaces);
  2. shmcache get p50 at least 50x faster than redis-py's (the shared cache it sits in front of);

judged on the default configuration, sync and async (shmcache_rows.JUDGED), each row named in
its verdicts;

and one shmcache get cut into its steps on the ctypes floor, then the package's get in its
configurations, to show where the time goes.

Workload: 1000 keys "user_profile:N", every get a hit, keys drawn uniformly at random (seeded);
the value is a profile dict padded so that it serializes to 200 bytes with the run's serializer
(--serializer, default json: the package's default), or with --value str a 200-character text,
which the package stores as UTF-8 with no serializer (the cache path alone). Out-of-process peers
serialize on set and deserialize on get; the in-process ones store the object (peers.py says
why).

Method: each phase runs three rounds, in all up to 200,000 operations or about one second
(--quick: 20,000 or 0.2 s), and reports the round with the median p50, so that a burst of other
work on the machine moves one round rather than the figure. In a round the ops are timed one by
one with time.perf_counter_ns (percentiles), then run again untimed over the same keys (ops/s,
without the timer's cost). The timer pair's cost is measured and included in every latency; the
verdicts are also given with it subtracted. The garbage collector is off while timing, as
timeit does.

Usage: bench/python/bench_peers.py [--quick] [--json OUT] [--serializer json|pickle|msgpack]
                                   [--value dict|str]
Run with /usr/bin/python3 after `meson compile -C build`, from anywhere. It is not a test: never
collected by pytest (its name does not start with test_), takes about 40 s (--quick: about
8 s), and removes its servers, segments and directories even when a peer fails.
"""
import argparse
import asyncio
import gc
import json
import os
import platform
import random
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.join(ROOT, "bindings", "python"))

import floor  # noqa: E402  (after the path set-up above)
import peers  # noqa: E402
import shmcache_rows  # noqa: E402

TARGET_TTL_RATIO = 1.0   # shmcache get p50 / TTLCache get p50 must be <= this
TARGET_REDIS_RATIO = 50  # redis-py get p50 / shmcache get p50 must be >= this


# ---- workload ----------------------------------------------------------------------------------

def make_value(kind, dumps, size):
    """A user-profile dict whose serialized form is `size` bytes (or the nearest above), or
    for kind "str" a text of `size` characters."""
    if kind == "str":
        return "x" * size
    value = {"id": 42, "name": "user 42", "email": "user42@example.com", "plan": "pro",
             "created": "2024-01-01T00:00:00Z", "tags": ["alpha", "beta", "gamma"],
             "score": 0.75, "bio": ""}
    while len(dumps(value)) < size:
        value["bio"] += "x"
    return value


# ---- timing ------------------------------------------------------------------------------------

def timer_cost_ns():
    """Median cost of one perf_counter_ns pair, the overhead in every per-op sample."""
    clock = time.perf_counter_ns
    samples = []
    for _ in range(100_000):
        t0 = clock()
        samples.append(clock() - t0)
    return statistics.median(samples)


def _timed(fn, seq, is_set, value):
    clock = time.perf_counter_ns
    out = []
    append = out.append
    if is_set:
        for k in seq:
            t0 = clock()
            fn(k, value)
            append(clock() - t0)
    else:
        for k in seq:
            t0 = clock()
            fn(k)
            append(clock() - t0)
    return out


def _untimed(fn, seq, is_set, value):
    t0 = time.perf_counter()
    if is_set:
        for k in seq:
            fn(k, value)
    else:
        for k in seq:
            fn(k)
    return time.perf_counter() - t0


async def _timed_async(fn, seq, is_set, value):
    clock = time.perf_counter_ns
    out = []
    append = out.append
    for k in seq:
        t0 = clock()
        if is_set:
            await fn(k, value)
        else:
            await fn(k)
        append(clock() - t0)
    return out


async def _untimed_async(fn, seq, is_set, value):
    t0 = time.perf_counter()
    for k in seq:
        if is_set:
            await fn(k, value)
        else:
            await fn(k)
    return time.perf_counter() - t0


def measure(fn, keys, rng, is_set, value, max_ops, budget_s, loop=None, rounds=3):
    """{p50_ns, p99_ns, ops_per_s, ops} for one phase: the round with the median p50 of
    `rounds` rounds, so that a burst of other work on the machine moves one round, not the
    figure. The op count per round is set from a 1000-op calibration pass so that a 100 us
    network peer and a 300 ns dict both finish in about budget_s in all."""
    def run(coro_fn, *a):
        return loop.run_until_complete(coro_fn(*a)) if loop else coro_fn(*a)
    timed, untimed = (_timed_async, _untimed_async) if loop else (_timed, _untimed)
    calibration = run(untimed, fn, keys, is_set, value) / len(keys)
    ops = max(1000, min(max_ops, int(budget_s / rounds / max(calibration, 1e-9))))
    results = []
    for _ in range(rounds):
        seq = rng.choices(keys, k=ops)
        gc.disable()
        try:
            samples = run(timed, fn, seq, is_set, value)
            elapsed = run(untimed, fn, seq, is_set, value)
        finally:
            gc.enable()
        samples.sort()
        results.append({"p50_ns": samples[len(samples) // 2],
                        "p99_ns": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
                        "ops_per_s": ops / elapsed, "ops": ops})
    results.sort(key=lambda r: r["p50_ns"])
    return results[len(results) // 2]


# ---- one peer ----------------------------------------------------------------------------------

def run_peer(peer, keys, value, args, rng):
    """Prefill every key, check that a get returns the value (a peer that silently missed would
    look fast), then measure set and get."""
    loop = asyncio.new_event_loop() if peer.is_async else None
    try:
        for k in keys:
            (loop.run_until_complete(peer.set(k, value)) if loop else peer.set(k, value))
        got = loop.run_until_complete(peer.get(keys[7])) if loop else peer.get(keys[7])
        if got != value:
            raise RuntimeError(f"get after set returned {got!r:.80}, not the value set")
        result = {"set": measure(peer.set, keys, rng, True, value, args.ops, args.budget, loop),
                  "get": measure(peer.get, keys, rng, False, value, args.ops, args.budget, loop)}
        return result
    finally:
        if loop:
            loop.close()


def build_peers(args, dumps, loads, segment):
    """(name, factory) in table order: shmcache rows first, then the peers."""
    rows = shmcache_rows.factories(args.serializer, args.codec, dumps, loads, segment,
                                   len_keys=args.keys)
    rows += [
        ("cachetools.TTLCache", lambda: peers.cachetools_ttl(2 * args.keys, 300)),
        ("cachetools.LRUCache", lambda: peers.cachetools_lru(2 * args.keys)),
        ("python-lmdb", lambda: peers.lmdb_shm(dumps, loads)),
        ("diskcache", lambda: peers.diskcache_shm(dumps, loads)),
        ("pymemcache", lambda: peers.pymemcache(dumps, loads)),
        ("redis-py", lambda: peers.redis_py(dumps, loads)),
    ]
    return rows


# ---- report ------------------------------------------------------------------------------------

def us(ns):
    return f"{ns / 1000:.2f}"


def ratio(a, b):
    return f"{a / b:.2f}x" if b else "-"


def report(results, ref_name, timer_ns, args, value_len, elapsed):
    ok = {n: r for n, r in results.items() if "error" not in r}
    ref = ok.get(ref_name)
    what = "text" if args.value == "str" else f"dict, {args.serializer}"
    lines = [f"shmcache Python peers: {args.keys} keys, {value_len} B values ({what}),"
             f" every get a hit; {platform.python_implementation()} "
             f"{platform.python_version()}, {os.cpu_count()} CPUs, "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             "| peer | where the data lives | get p50 us | get p99 us | get kops/s | get p50 vs "
             "shmcache | set p50 us | set p99 us | set kops/s | set p50 vs shmcache |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"| {name} | not run: {r['error']} |||||||||")
            continue
        g, s = r["get"], r["set"]
        g_vs = ratio(g["p50_ns"], ref["get"]["p50_ns"]) if ref else "-"
        s_vs = ratio(s["p50_ns"], ref["set"]["p50_ns"]) if ref else "-"
        lines.append(
            f"| {name} | {r['kind']} | {us(g['p50_ns'])} | {us(g['p99_ns'])} | "
            f"{g['ops_per_s'] / 1000:.0f} | {g_vs} | {us(s['p50_ns'])} | {us(s['p99_ns'])} | "
            f"{s['ops_per_s'] / 1000:.0f} | {s_vs} |")
    lines.append("")
    # The targets hold for the default configuration, sync and async alike: what a user gets
    # without tuning anything.
    verdicts = []
    for row in shmcache_rows.JUDGED:
        lines.append(f"Targets, judged on the default configuration: {row}")
        row_verdicts = targets(ok, row, timer_ns)
        if row != ref_name:
            row_verdicts = [v for v in row_verdicts if v["target"] != "floor"]
        lines += [v["line"] for v in row_verdicts]
        verdicts += row_verdicts
    lines.append("")
    notes = [f"- Reference row for the ratios: {ref_name} (what an application calls, default "
             f"configuration). \"vs shmcache\" is the peer's p50 over shmcache's: above 1x the "
             f"peer is slower."]
    notes += [f"- {n}: {r['note']}" for n, r in results.items() if r.get("note")]
    notes += [f"- Latencies include the timer pair ({timer_ns:.0f} ns, perf_counter_ns); kops/s "
              f"come from a second, untimed pass over the same keys. GC off while timing. Each "
              f"figure is from the median round (by p50) of 3.",
              f"- Ops per round: up to {args.ops // 3} or about {args.budget / 3:.2f} s; run time "
              f"{elapsed:.0f} s; load average {os.getloadavg()[0]:.2f} at the end."]
    lines += notes
    return "\n".join(lines), verdicts


def targets(ok, ref_name, timer_ns):
    out = []
    ref = ok.get(ref_name)

    def verdict(name, passed, detail):
        out.append({"target": name, "pass": passed, "row": ref_name,
                    "line": f"- target: {name}: **{'PASS' if passed else 'FAIL'}** ({detail})"})

    ttl, red = ok.get("cachetools.TTLCache"), ok.get("redis-py")
    if not ref:
        verdict("shmcache get no slower than cachetools.TTLCache", False,
                f"{ref_name} not measured")
        verdict("shmcache get >= 50x faster than redis-py", False, f"{ref_name} not measured")
        return out
    s = ref["get"]["p50_ns"]
    if ttl:
        t = ttl["get"]["p50_ns"]
        net = (s - timer_ns) / max(t - timer_ns, 1)
        verdict("shmcache get no slower than cachetools.TTLCache", s / t <= TARGET_TTL_RATIO,
                f"get p50 {us(s)} us vs {us(t)} us: {s / t:.2f}x TTLCache's; "
                f"{net:.2f}x with the timer subtracted from both")
    else:
        verdict("shmcache get no slower than cachetools.TTLCache", False, "TTLCache not measured")
    if red:
        r = red["get"]["p50_ns"]
        net = (r - timer_ns) / max(s - timer_ns, 1)
        verdict("shmcache get >= 50x faster than redis-py", r / s >= TARGET_REDIS_RATIO,
                f"get p50 {us(s)} us vs {us(r)} us: {r / s:.0f}x faster; "
                f"{net:.0f}x with the timer subtracted from both")
    else:
        verdict("shmcache get >= 50x faster than redis-py", False, "redis-py not measured")
    fl = ok.get(shmcache_rows.FLOOR)
    if fl and ttl and red:
        f = fl["get"]["p50_ns"]
        out.append({"target": "floor", "pass": None,
                    "line": f"- the ctypes floor row (no package code, the value copied out "
                            f"and decoded by hand): get p50 {us(f)} us, "
                            f"{f / ttl['get']['p50_ns']:.2f}x TTLCache's, "
                            f"{red['get']['p50_ns'] / f:.0f}x faster than redis-py"})
    return out


def _time_steps(steps, keys, rng, args, rounds=5, cumulative=True):
    """[(label, p50, added over the previous step)] for cumulative steps (added None for steps
    that are not). The steps are timed in turn, round after round, and each keeps its median
    round: a burst of other work on the machine then falls on every step alike instead of
    inflating one increment."""
    p50s = {label: [] for label, _ in steps}
    for _ in range(rounds):
        for label, fn in steps:
            r = measure(fn, keys, rng, False, None, args.ops // rounds,
                        args.budget / rounds, rounds=1)
            p50s[label].append(r["p50_ns"])
    rows, prev = [], 0
    for label, _ in steps:
        p50 = statistics.median(p50s[label])
        rows.append((label, p50, p50 - prev if cumulative else None))
        prev = p50
    return rows


def breakdown(args, dumps, loads, keys, value, rng, segment):
    """One get cut into its steps on the ctypes floor (what any ctypes binding must pay; each
    row's "added" is its cost over the row above), then the package's get in its
    configurations (see shmcache_rows.package_steps; not cumulative)."""
    rows = []
    f = floor.Floor(segment + "-steps")
    try:
        _, fset = f.codec_path(args.codec, dumps, loads)
        for k in keys:
            fset(k, value)
        rows += _time_steps(floor.breakdown_steps(f, args.codec, loads, keys), keys, rng, args)
    finally:
        f.close()
    try:
        steps, close = shmcache_rows.package_steps(args.serializer, segment + "-pkgsteps", keys,
                                                   value)
    except Exception as e:  # internals renamed, or the package missing: say so
        return rows + [(f"package layers: not run ({type(e).__name__}: {e})", 0, 0)]
    try:
        rows += _time_steps(steps, keys, rng, args, cumulative=False)
    finally:
        close()
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer ops per phase (about 6 s)")
    ap.add_argument("--json", metavar="OUT", help="also write every figure to OUT as JSON")
    ap.add_argument("--serializer", default="json", choices=["json", "pickle", "msgpack"])
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--value-size", type=int, default=200)
    ap.add_argument("--value", choices=["dict", "str"], default="dict",
                    help="dict (default): a profile, serialized; str: text, which every peer and "
                         "the package store as UTF-8 with no serializer (the cache path alone)")
    args = ap.parse_args()
    args.ops, args.budget = (20_000, 0.2) if args.quick else (200_000, 1.0)

    started = time.monotonic()
    # The codec the peers and the floor use: the serializer for dicts, UTF-8 for text (the
    # package itself stores a str as text whatever its serializer).
    args.codec = "str" if args.value == "str" else args.serializer
    dumps, loads = peers.codec(args.codec)
    value = make_value(args.value, dumps, args.value_size)
    keys = [f"user_profile:{i}" for i in range(args.keys)]
    rng = random.Random(20240101)
    segment = f"shmcache-bench-py-{os.getpid()}"
    timer_ns = timer_cost_ns()

    results = {}
    for name, factory in build_peers(args, dumps, loads, segment):
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        try:
            peer = factory()
        except Exception as e:  # a peer that cannot start is reported, never silently dropped
            results[name] = {"error": f"{type(e).__name__}: {e}"}
            continue
        try:
            results[name] = dict(run_peer(peer, keys, value, args, rng), kind=peer.kind,
                                 note=peer.note)
        except Exception as e:
            results[name] = {"error": f"{type(e).__name__}: {e}"}
        finally:
            peer.close()
    steps = breakdown(args, dumps, loads, keys, value, rng, segment)

    text, verdicts = report(results, shmcache_rows.REFERENCE, timer_ns, args,
                            len(dumps(value)), time.monotonic() - started)
    print(text)
    print(f"\nWhere one shmcache get goes ({args.codec}; p50; each floor row adds to the one "
          "above; the package's rows stand alone):\n")
    print("| step | p50 us | added us |\n|---|---|---|")
    for label, p50, added in steps:
        print(f"| {label} | {us(p50)} | {'-' if added is None else us(added)} |")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"results": results, "targets": verdicts, "timer_ns": timer_ns,
                       "breakdown": [{"step": s, "p50_ns": p, "added_ns": a}
                                     for s, p, a in steps],
                       "serializer": args.serializer, "value": args.value, "keys": args.keys,
                       "value_bytes": len(dumps(value)), "quick": args.quick}, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
