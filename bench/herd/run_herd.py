#!/usr/bin/python3
"""run_herd.py - a thundering herd on one expiring key, through FastAPI under gunicorn.

    bench/herd/run_herd.py [--build build] [--workers 4] [--seconds 10] [--connections 64]
                           [--ttl 1.0] [--origin-ms 50] [--json OUT]
                           [--variants plain,single_flight,swr,xfetch]

What it measures, and why: when a hot key expires, every request that arrives while it is being
recomputed misses, in every worker process, and each of them calls the origin (the database
behind the cache). With a key that expires every --ttl seconds under steady load that happens
at every expiry. The stampede options of @cached are meant to cut those calls to about one per
expiry per host, and (stale-while-revalidate) to keep clients from waiting for the origin at
all. This runs the same app (bench/herd/herd_app.py: GET /hot, one cached async function that
sleeps --origin-ms and counts its calls in a file) once per variant:

  plain          @cached(ttl, single_flight=False)  the baseline: no protection
  single_flight  @cached(ttl, single_flight=True)  one computation per host, the others wait
  swr            @cached(ttl, stale_ttl=30)        the old value is served while one refreshes
  xfetch         @cached(ttl, early_refresh=True)  refreshed a little before it expires
  cross_host     single_flight + cross_host_lock   with a Redis L2 (started here); not in the
                                                   default list: on one host it is
                                                   single_flight plus a Redis round trip
  hits           @cached that never expires        the reference: a hit's latency under the
                                                   same load with no herd

Each variant gets its own segment and count file and a fresh gunicorn (uvicorn workers, free
loopback port). After every worker answers, one request to /hot computes the value; then wrk
(2 threads, --connections, --latency) loads GET /hot for --seconds. Origin calls are counted
during the wrk run only (the warm-up call is excluded). Reports origin calls, calls per expiry
(the run has seconds/ttl expiries), requests/s and client latency (p50, p99, max), and the
ratios against plain. Exits 1 if any variant failed: the server did not start, wrk failed, or
any response was not 2xx or any socket error happened. gunicorn, Redis and every segment are
stopped and removed however the run ends.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "bench", "e2e"))
from run_e2e import Redis, free_port, stop_gunicorn  # noqa: E402  (the e2e bench's helpers)

DEFAULT_VARIANTS = "plain,single_flight,swr,xfetch,hits"
ALL_VARIANTS = ("plain", "single_flight", "swr", "xfetch", "cross_host", "hits")
WRK_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


# --- the server -------------------------------------------------------------------------------

def start_gunicorn(env, workers, log):
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "herd_app:app", "-k", "uvicorn.workers.UvicornWorker",
           "-w", str(workers), "-b", f"127.0.0.1:{port}", "--log-level", "warning",
           "--graceful-timeout", "5"]
    # Its own session, so the whole process group (master and workers) can be signalled.
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, start_new_session=True)
    return proc, port


def wait_all_workers(proc, port, workers, seconds=30):
    """Until every worker has answered: the first answer only says one of them is up, and a
    worker still booting under load would skew the first second of the run. Each request is
    on a fresh connection, so the kernel hands them to different workers. Fails at once if
    gunicorn exits (an app that does not import makes the master give up)."""
    pids = set()
    deadline = time.monotonic() + seconds
    while len(pids) < workers:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(pids)} of {workers} workers answered in {seconds} s")
        try:
            pids.add(get_json(port, "/origin-calls")["pid"])
        except OSError:
            time.sleep(0.1)  # not listening yet
    return pids


def get_json(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.load(r)


def destroy_segment(cli, name):
    """Remove /dev/shm/<name> (force: a killed worker may still be listed as attached)."""
    if os.path.exists(cli):
        subprocess.run([cli, "-n", name, "destroy", "--force"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:  # the CLI may be unbuilt or may have refused: never leave the segment behind
        os.unlink(f"/dev/shm/{name}")
    except FileNotFoundError:
        pass


# --- the load -----------------------------------------------------------------------------------

def to_ms(value, unit):
    return float(value) * WRK_UNITS_MS[unit]


def run_wrk(port, seconds, connections):
    """wrk's report as numbers; raises if wrk failed."""
    proc = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s",
         f"http://127.0.0.1:{port}/hot"],
        capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited {proc.returncode}: {proc.stderr.strip()}")
    return parse_wrk(proc.stdout)


def parse_wrk(out):
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    latency = re.search(r"^\s+Latency\s+([\d.]+)(\w+)\s+([\d.]+)(\w+)\s+([\d.]+)(\w+)", out, re.M)
    requests = re.search(r"(\d+) requests in", out)
    if not (rps and latency and requests):
        raise RuntimeError(f"could not parse wrk's output:\n{out}")
    pct = {int(p): to_ms(v, u)
           for p, v, u in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)}
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"requests": int(requests.group(1)), "rps": float(rps.group(1)),
            "p50_ms": pct.get(50), "p90_ms": pct.get(90), "p99_ms": pct.get(99),
            "max_ms": to_ms(latency.group(5), latency.group(6)),
            "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
            "socket_errors": socket_errors.group(1).strip() if socket_errors else ""}


def origin_calls(count_file):
    try:
        return os.path.getsize(count_file)
    except FileNotFoundError:
        return 0


# --- one variant --------------------------------------------------------------------------------

def run_variant(variant, args, base_env, tmp, cli, redis_url):
    """Start the app for this variant, warm it, load it, count; always stop and clean up."""
    seg = f"shmc-herd-{os.getpid()}-{variant}"
    count_file = os.path.join(tmp, f"{variant}.calls")
    env = dict(base_env, SHMCACHE_NAME=seg, HERD_VARIANT=variant, HERD_COUNT_FILE=count_file)
    if variant == "cross_host":
        env["REDIS_URL"] = redis_url
    log_path = os.path.join(tmp, f"{variant}.log")
    with open(log_path, "w+") as log:
        proc = None
        try:
            proc, port = start_gunicorn(env, args.workers, log)
            wait_all_workers(proc, port, args.workers)
            get_json(port, "/hot")  # warm-up: computes the value once, not counted below
            before = origin_calls(count_file)
            r = run_wrk(port, args.seconds, args.connections)
            r["origin_calls"] = origin_calls(count_file) - before
            # The host's single-flight counters (leases, waits, stale served): the evidence
            # of which mechanism acted, printed in the second table.
            r["single_flight_stats"] = get_json(port, "/metrics/cache").get("single_flight", {})
        except Exception as e:
            log.seek(0)
            tail = log.read()[-2000:]
            raise RuntimeError(f"{variant}: {e}" + (f"\ngunicorn log:\n{tail}" if tail else ""))
        finally:
            if proc is not None:
                stop_gunicorn(proc)
            destroy_segment(cli, seg)
    r["variant"] = variant
    return r


# --- the report ---------------------------------------------------------------------------------

def ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else "-"


def fmt_ms(v):
    return f"{v:.1f}" if v is not None else "-"


def print_report(results, args, machine):
    expiries = args.seconds / args.ttl
    print(f"machine: {machine['nproc']} CPUs (nproc), {machine['system']}")
    print(f"gunicorn with {args.workers} uvicorn workers; wrk 2 threads, {args.connections} "
          f"connections, {args.seconds} s per variant, all on GET /hot (one key); ttl "
          f"{args.ttl:g} s, origin {args.origin_ms:g} ms. Origin calls counted during the wrk "
          "run only (the warm-up call excluded); expiries = seconds / ttl.\n")
    plain = next((r for r in results if r["variant"] == "plain"), None)
    print("| variant | origin calls | expiries | calls per expiry | requests/s | p50 ms | "
          "p99 ms | max ms | calls vs plain | p99 vs plain |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        n = 0 if r["variant"] == "hits" else expiries  # the reference never expires
        per = f"{r['origin_calls'] / n:.1f}" if n else "-"
        print(f"| {r['variant']} | {r['origin_calls']} | {n:g} | {per} | {r['rps']:.0f} | "
              f"{fmt_ms(r['p50_ms'])} | {fmt_ms(r['p99_ms'])} | {fmt_ms(r['max_ms'])} | "
              f"{ratio(r['origin_calls'], plain and plain['origin_calls'])} | "
              f"{ratio(r['p99_ms'], plain and plain['p99_ms'])} |")
    # A value's ttl starts when its computation ends, so the key expires every ttl + origin
    # time: fewer times than the nominal seconds / ttl that the table divides by.
    actual = int(args.seconds / (args.ttl + args.origin_ms / 1000))
    print(f"\nThe ttl starts when a computation ends, so the key really expires every ttl + "
          f"origin time: about {actual} times in {args.seconds} s.")
    print("\nHost single-flight counters (GET /metrics/cache after the run):\n")
    print("| variant | leases granted | waits | stale served | early refreshes | unleased |")
    print("|---|---|---|---|---|---|")
    for r in results:
        sf = r["single_flight_stats"]
        print(f"| {r['variant']} | " + " | ".join(
            str(sf.get(k, "-")) for k in ("leases_granted", "waits", "stale_served",
                                          "early_refreshes", "unleased")) + " |")


def machine_info():
    u = os.uname()
    return {"nproc": len(os.sched_getaffinity(0)), "system": f"{u.sysname} {u.release} {u.machine}"}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("SHMC_BUILD_DIR", "build"))
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--ttl", type=float, default=1.0)
    ap.add_argument("--origin-ms", type=float, default=50)
    ap.add_argument("--json")
    ap.add_argument("--variants", default=DEFAULT_VARIANTS,
                    help=f"comma-separated, of {', '.join(ALL_VARIANTS)}")
    args = ap.parse_args()
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in args.variants if v not in ALL_VARIANTS]
    if bad or not args.variants:
        ap.error(f"unknown variant(s) {', '.join(bad)}; choose from {', '.join(ALL_VARIANTS)}")
    if args.ttl <= 0 or args.seconds <= 0 or args.workers <= 0 or args.connections <= 0:
        ap.error("--ttl, --seconds, --workers and --connections must be positive")
    return args


def main():
    args = parse_args()
    need = ["wrk"] + (["redis-server"] if "cross_host" in args.variants else [])
    for tool in need:
        if not shutil.which(tool):
            sys.exit(f"run_herd.py: {tool} not found (scripts/deps.sh installs it)")
    build = args.build if os.path.isabs(args.build) else os.path.join(REPO, args.build)
    lib = os.path.join(build, "lib", "libshmcache.so")
    if not os.path.exists(lib):
        sys.exit(f"run_herd.py: {lib} not found (meson compile -C {args.build})")
    cli = os.path.join(build, "tools", "cli", "shmcache-cli")
    base_env = dict(os.environ, SHMCACHE_LIB=lib, SHMCACHE_LOG_LEVEL="warn",
                    HERD_TTL=repr(args.ttl), HERD_ORIGIN_MS=repr(args.origin_ms),
                    PYTHONPATH=os.pathsep.join([os.path.join(REPO, "bindings", "python"), HERE]))
    base_env.pop("REDIS_URL", None)  # only cross_host gets Redis

    tmp = tempfile.mkdtemp(prefix="shmc-herd-")
    redis = None
    results, failures = [], []
    try:
        if "cross_host" in args.variants:
            redis = Redis(tmp)
        for variant in args.variants:
            try:
                r = run_variant(variant, args, base_env, tmp, cli, redis and redis.url)
            except Exception as e:  # report it, go on with the others, fail at the end
                failures.append(str(e))
                print(f"FAILED {e}", file=sys.stderr)
                continue
            results.append(r)
            if r["non_2xx"] or r["socket_errors"]:
                failures.append(f"{variant}: {r['non_2xx']} non-2xx responses; socket errors: "
                                f"{r['socket_errors'] or 'none'}")
            print(f"{variant}: {r['origin_calls']} origin calls, {r['rps']:.0f} req/s, "
                  f"p99 {fmt_ms(r['p99_ms'])} ms", file=sys.stderr)
    finally:
        if redis is not None:
            redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    machine = machine_info()
    if results:
        print_report(results, args, machine)
    for f in failures:
        print(f"\nFAILED {f.splitlines()[0]}")
    if args.json:
        params = {k: getattr(args, k) for k in
                  ("workers", "seconds", "connections", "ttl", "origin_ms", "variants")}
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "params": params, "results": results,
                       "failures": failures}, f, indent=2)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
