#!/usr/bin/python3
"""run_http.py - HTTP response caching under gunicorn, loaded with wrk, side by side in one run.

    bench/http/run_http.py [--build build] [--workers 4] [--seconds 5] [--rounds 3]
                           [--connections 32] [--ids 100] [--json OUT]

One gunicorn (uvicorn workers, L1 only) serves bench_app.py, whose product page (5 ms of awaited
I/O and a 50-item response_model) is reachable three ways; wrk (2 threads, --latency, load.lua)
loads each in turn over ids 1..N, in rounds (every row once per round; the median round shown):
  computed               made at every request;
  shmcache               @cache_response: the stored response, sent by any worker;
  shmcache 304           the same with If-None-Match (the tags fetched once, from any worker);
  per-worker dict        fastapi-cache's @cache approach with a dict in each worker;
  per-worker dict 304    the same with If-None-Match (its tag is hash(), which agrees between
                         the forked workers of one master, not across hosts or restarts).
Each path is warmed by a 3 s wrk run first (every worker's dict filled too), so the measured
runs are hits. Reports requests/s, p50 and p99, the share of 304 answers, and ratios against
"computed". Exits 1 if any run failed or answered other than 200/304.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "bench", "e2e"))
from run_e2e import start_gunicorn, stop_gunicorn  # noqa: E402  (same gunicorn handling)


def run_wrk(port, seconds, connections, prefix, ids, etags_file=None):
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s",
           os.path.join(HERE, "load.lua"), f"http://127.0.0.1:{port}", "--", prefix, str(ids)]
    if etags_file:
        cmd.append(etags_file)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    pct = {}
    for p, value, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        pct[int(p)] = float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    statuses = dict((int(c), int(n)) for c, n in
                    re.findall(r"(\d+)=(\d+)", re.search(r"statuses:(.*)", out).group(1)))
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50_ms": pct.get(50), "p99_ms": pct.get(99), "statuses": statuses,
            "socket_errors": socket_errors.group(1) if socket_errors else ""}


def etags(port, prefix, ids, path):
    with open(path, "w") as f:
        for i in range(1, ids + 1):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{prefix}{i}", timeout=5) as r:
                f.write(f"{i} {r.headers['ETag']}\n")
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("SHMC_BUILD_DIR", "build"))
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--ids", type=int, default=100)
    ap.add_argument("--json")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("run_http.py: wrk not found (scripts/deps.sh installs it)")
    build = args.build if os.path.isabs(args.build) else os.path.join(REPO, args.build)
    tmp = tempfile.mkdtemp(prefix="shmc-http-")
    seg = f"shmc-http-{os.getpid()}"
    env = dict(os.environ, SHMCACHE_LIB=os.path.join(build, "lib", "libshmcache.so"),
               SHMCACHE_LOG_LEVEL="warn", SHMCACHE_NAME=seg,
               PYTHONPATH=os.pathsep.join([os.path.join(REPO, "bindings", "python"), HERE]))
    env.pop("REDIS_URL", None)
    log = open(os.path.join(tmp, "gunicorn.log"), "w+")
    results = []
    try:
        proc, port = start_gunicorn("bench_app:app", env, args.workers, log,
                                    ready_path="/computed/1")
        try:
            for prefix in ("/cached/", "/dict/"):
                run_wrk(port, 3, args.connections, prefix, args.ids)  # warm-up, discarded
            cached_tags = etags(port, "/cached/", args.ids, os.path.join(tmp, "cached.tags"))
            dict_tags = etags(port, "/dict/", args.ids, os.path.join(tmp, "dict.tags"))
            rows = [("computed", "/computed/", None), ("shmcache", "/cached/", None),
                    ("shmcache 304", "/cached/", cached_tags),
                    ("per-worker dict", "/dict/", None),
                    ("per-worker dict 304", "/dict/", dict_tags)]
            runs = {name: [] for name, _, _ in rows}
            for _ in range(args.rounds):  # rounds of every row: noise hits all rows alike
                for name, prefix, tags in rows:
                    r = run_wrk(port, args.seconds, args.connections, prefix, args.ids, tags)
                    runs[name].append(r)
                    print(f"{name}: {r['rps']:.0f} req/s, p99 {r['p99_ms']:.2f} ms, "
                          f"{r['statuses']}", file=sys.stderr)
            for name, _, _ in rows:  # the median run by requests/s
                r = sorted(runs[name], key=lambda x: x["rps"])[len(runs[name]) // 2]
                r["variant"] = name
                r["statuses"] = {c: sum(x["statuses"].get(c, 0) for x in runs[name])
                                 for c in {c for x in runs[name] for c in x["statuses"]}}
                r["socket_errors"] = "; ".join(x["socket_errors"] for x in runs[name]
                                               if x["socket_errors"])
                results.append(r)
        finally:
            stop_gunicorn(proc)
    except Exception:
        log.seek(0)
        sys.stderr.write(log.read()[-4000:])
        raise
    finally:
        log.close()
        try:
            os.unlink(f"/dev/shm/{seg}")
        except FileNotFoundError:
            pass
        shutil.rmtree(tmp, ignore_errors=True)

    base = results[0]
    print(f"gunicorn with {args.workers} uvicorn workers (L1 only); wrk 2 threads, "
          f"{args.connections} connections, ids 1..{args.ids}, after a 3 s warm-up of each "
          f"cached path; {args.rounds} rounds of every row, {args.seconds} s each; the median "
          "round by requests/s (its p50 and p99) is shown, the 304 share over all rounds.\n")
    print("| variant | requests/s | p50 ms | p99 ms | 304 share | req/s vs computed | "
          "p99 vs computed |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        total = sum(r["statuses"].values()) or 1
        print(f"| {r['variant']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
              f"{100 * r['statuses'].get(304, 0) / total:.0f}% | "
              f"{r['rps'] / base['rps']:.2f}x | {r['p99_ms'] / base['p99_ms']:.2f}x |")
    bad = [r for r in results if r["socket_errors"] or set(r["statuses"]) - {200, 304}]
    for r in bad:
        print(f"\n{r['variant']}: statuses {r['statuses']}; socket errors: "
              f"{r['socket_errors'] or 'none'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
