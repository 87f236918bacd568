#!/usr/bin/python3
"""run_e2e.py - end to end: a cached FastAPI endpoint under gunicorn, loaded with wrk.

    bench/e2e/run_e2e.py [--build build] [--workers 2] [--seconds 10] [--connections 16]
                         [--ids 200] [--json OUT]

Three variants of the same endpoint (GET /users/{id}: a profile that costs 20 ms to compute,
cached 300 s, JSON), each under real gunicorn with uvicorn workers on a free loopback port:
  shmcache L1      examples/fastapi_app with no REDIS_URL (the shared segment only);
  shmcache L1+L2   the same app with REDIS_URL (L1 hits; Redis behind it);
  redis-py         bench/e2e/redis_app.py: every request asks Redis (the usual shared cache).
Each variant is warmed (every id requested once through the server, so the run measures hits),
then loaded by wrk (2 threads, --latency) with users.lua spreading requests over the ids.
Reports requests/s and latency percentiles, and the ratios against redis-py. One redis-server,
started here on a random loopback port, serves both Redis variants. Everything is stopped and
removed at the end.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                return r.status
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {seconds} s")


class Redis:
    def __init__(self, tmp):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", tmp, "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def start_gunicorn(app, env, workers, log, ready_path="/users/1"):
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", app, "-k", "uvicorn.workers.UvicornWorker",
           "-w", str(workers), "-b", f"127.0.0.1:{port}", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, start_new_session=True)
    wait_http(f"http://127.0.0.1:{port}{ready_path}")
    return proc, port


def stop_gunicorn(proc):
    """SIGTERM to the group (master and workers), then SIGKILL if it has not exited in 15 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    # Workers can outlive a master that died first. Signal the group again only while it has
    # members: a group id cannot be reused until they are all gone, so this reaches only ours.
    if group_members(proc.pid):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # they exited meanwhile
    proc.wait()


def group_members(pgid):
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # exited meanwhile
        # Fields after the command (which may hold spaces): state, ppid, pgrp, ...
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return members


def run_wrk(port, seconds, connections, ids):
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s",
         os.path.join(HERE, "users.lua"), f"http://127.0.0.1:{port}", "--", str(ids)],
        capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    pct = {}
    for p, value, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
        pct[int(p)] = float(value) * scale
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50_ms": pct.get(50), "p90_ms": pct.get(90), "p99_ms": pct.get(99),
            "non_2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else ""}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("SHMC_BUILD_DIR", "build"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--ids", type=int, default=200)
    ap.add_argument("--json")
    args = ap.parse_args()
    for tool in ("wrk", "redis-server"):
        if not shutil.which(tool):
            sys.exit(f"run_e2e.py: {tool} not found (scripts/deps.sh installs it)")
    build = args.build if os.path.isabs(args.build) else os.path.join(REPO, args.build)
    lib = os.path.join(build, "lib", "libshmcache.so")
    tmp = tempfile.mkdtemp(prefix="shmc-e2e-")
    redis = Redis(tmp)
    log = open(os.path.join(tmp, "gunicorn.log"), "w+")
    seg = f"shmc-e2e-{os.getpid()}"
    base = dict(os.environ, SHMCACHE_LIB=lib, SHMCACHE_LOG_LEVEL="warn",
                PYTHONPATH=os.pathsep.join([os.path.join(REPO, "bindings", "python"),
                                            os.path.join(REPO, "examples"), HERE]),
                EXAMPLE_DB=os.path.join(tmp, "users.sqlite"))
    base.pop("REDIS_URL", None)  # only the variants that ask for Redis get it
    variants = [
        ("shmcache L1", "fastapi_app.app:app", dict(base, SHMCACHE_NAME=seg + "-l1")),
        ("shmcache L1+L2", "fastapi_app.app:app",
         dict(base, SHMCACHE_NAME=seg + "-l2", REDIS_URL=redis.url)),
        ("redis-py", "redis_app:app", dict(base, REDIS_URL=redis.url)),
    ]
    results = []
    try:
        for name, app, env in variants:
            proc, port = start_gunicorn(app, env, args.workers, log)
            try:
                for i in range(1, args.ids + 1):  # warm: every profile computed once
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/users/{i}", timeout=5).read()
                r = run_wrk(port, args.seconds, args.connections, args.ids)
            finally:
                stop_gunicorn(proc)
            r["variant"] = name
            results.append(r)
            print(f"{name}: {r['rps']:.0f} req/s, p99 {r['p99_ms']:.2f} ms", file=sys.stderr)
    except Exception:
        log.seek(0)
        sys.stderr.write(log.read()[-4000:])
        raise
    finally:
        redis.stop()
        log.close()
        for suffix in ("-l1", "-l2"):
            try:
                os.unlink(f"/dev/shm/{seg}{suffix}")
            except FileNotFoundError:
                pass
        shutil.rmtree(tmp, ignore_errors=True)

    base_r = next(r for r in results if r["variant"] == "redis-py")
    print(f"gunicorn with {args.workers} uvicorn workers; wrk 2 threads, {args.connections} "
          f"connections, {args.seconds} s per variant, GET /users/<1..{args.ids}> after a "
          "warm-up (all hits).\n")
    print("| variant | requests/s | p50 ms | p90 ms | p99 ms | req/s vs redis-py | p99 vs redis-py |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['variant']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | "
              f"{r['p99_ms']:.2f} | {r['rps'] / base_r['rps']:.2f}x | "
              f"{r['p99_ms'] / base_r['p99_ms']:.2f}x |")
    bad = [r for r in results if r["non_2xx"] or r["socket_errors"]]
    for r in bad:
        print(f"\n{r['variant']}: {r['non_2xx']} non-2xx responses; socket errors: "
              f"{r['socket_errors'] or 'none'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
