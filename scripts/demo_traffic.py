#!/usr/bin/python3
"""demo_traffic.py - drive the example FastAPI app (examples/fastapi_app) and report what the
shared cache did; scripts/demo.sh runs it against real gunicorn workers.

Sends --requests GET /users/{id} over --users ids (a few popular users asked for far more often
than the rest: Zipf), from --concurrency threads, each request on a fresh connection so that the
kernel spreads them over the workers as it would the connections of many clients. Every
response says which worker served it (served_by) and which worker computed the profile and
when (computed_by, computation); from those alone the report counts, per worker:

  computed       profiles this worker computed (a miss): distinct (computed_by, computation)
  served-own     hits on profiles this worker had computed itself
  served-others  hits on profiles another worker computed: the work the shared cache saved

then the host-wide L1 figures from GET /metrics/cache (the segment's counters: every worker's
hits and misses), the Redis L2's when it is on, and one invalidation: PUT /users/{id} through
one worker, then GETs through every worker, which must all carry the new name. It also checks
the cached HTTP route GET /users/{id}/card: one card and one ETag from every worker, and 304 Not
Modified when the ETag is sent back.

Exit status 0 when every request succeeded, the invalidation was seen by every worker and the
cached card was the same everywhere, 1 otherwise (the reason is printed).
Usage: demo_traffic.py --url http://127.0.0.1:PORT [--workers N] [--requests N] [--users N]
                       [--concurrency N] [--zipf S] [--json OUT]
"""
import argparse
import collections
import concurrent.futures
import http.client
import json
import random
import sys
import time
import urllib.parse


class Client:
    """One request per connection (see the module docstring); JSON in and out."""

    def __init__(self, url, timeout=10.0):
        u = urllib.parse.urlsplit(url)
        self.host, self.port, self.timeout = u.hostname, u.port, timeout

    def request(self, method, path, body=None):
        con = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            headers = {"Connection": "close"}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            con.request(method, path, body=data, headers=headers)
            resp = con.getresponse()
            payload = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{method} {path}: HTTP {resp.status}: {payload[:200]!r}")
            return json.loads(payload)
        finally:
            con.close()


def alive(pid):
    """True if pid runs (a zombie does not: the server exited and its parent has not reaped
    it yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_ready(client, workers, timeout, server_pid=None):
    """Wait until /health/cache answers, then until `workers` distinct pids have answered
    /whoami (a worker still booting would leave its share of the traffic to the others).
    Returns the pids seen. Gives up at once if server_pid has exited."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            client.request("GET", "/health/cache")
            break
        except (OSError, RuntimeError, http.client.HTTPException) as e:
            last = e
        if server_pid and not alive(server_pid):
            raise RuntimeError(f"the server (pid {server_pid}) exited before answering")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the app did not answer GET /health/cache in {timeout:.0f} s "
                               f"(last error: {last})")
        time.sleep(0.1)
    pids = set()
    while len(pids) < workers and time.monotonic() < deadline:
        pids.add(client.request("GET", "/whoami")["pid"])
    return pids


def zipf_ids(users, n, s, seed):
    weights = [1.0 / (rank ** s) for rank in range(1, users + 1)]
    return random.Random(seed).choices(range(1, users + 1), weights=weights, k=n)


def drive(client, ids, concurrency):
    """GET /users/{id} for every id, concurrency at a time: (responses, errors, seconds)."""
    def one(user_id):
        return client.request("GET", f"/users/{user_id}")

    t0 = time.monotonic()
    responses, errors = [], []
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        for fut in concurrent.futures.as_completed([pool.submit(one, i) for i in ids]):
            try:
                responses.append(fut.result())
            except Exception as e:  # counted and shown: the demo fails if any request did
                errors.append(str(e))
    return responses, errors, time.monotonic() - t0


def tally(responses):
    """Per worker pid: requests served, computed, served-own, served-others, distinct ids."""
    per = collections.defaultdict(lambda: {"requests": 0, "computed": 0, "served_own": 0,
                                           "served_others": 0, "ids": set()})
    computations = collections.defaultdict(set)  # computed_by -> {computation numbers}
    same = collections.Counter()  # served_by == computed_by: computations and own hits
    for r in responses:
        served, p = r["served_by"], r["profile"]
        w = per[served]
        w["requests"] += 1
        w["ids"].add(p["id"])
        computations[p["computed_by"]].add(p["computation"])
        if p["computed_by"] == served:
            same[served] += 1
        else:
            w["served_others"] += 1
    # Each computation's own response came back from the worker that computed it; every other
    # response with the same (computed_by, computation) was a hit.
    for pid, nums in computations.items():
        per[pid]["computed"] = len(nums)
    for pid, w in per.items():
        w["served_own"] = same[pid] - w["computed"]
    return per


def check_invalidation(client, workers, user_id):
    """PUT a new name through one worker, then GET through every worker: all must carry it.
    Returns (ok, text)."""
    name = f"renamed at {time.strftime('%H:%M:%S')}"
    put = client.request("PUT", f"/users/{user_id}", {"name": name})
    seen, computations = {}, set()
    deadline = time.monotonic() + 10
    while (len(seen) < workers or len(seen) < 2) and time.monotonic() < deadline:
        r = client.request("GET", f"/users/{user_id}")
        seen.setdefault(r["served_by"], r["profile"]["name"])
        computations.add((r["profile"]["computed_by"], r["profile"]["computation"]))
    stale = {pid: n for pid, n in seen.items() if n != name}
    text = (f"invalidation: PUT /users/{user_id} (served by pid {put['served_by']}) renamed the "
            f"user and invalidated user_profile:{user_id}; GETs served by "
            f"{len(seen)} worker(s) ({', '.join(map(str, sorted(seen)))}): "
            + (f"{len(stale)} still served the old profile: {stale}" if stale else
               f"all served the new name, computed {len(computations)} time(s)"))
    return not stale and len(seen) >= min(workers, 2), text


def raw_get(client, path, headers=None):
    """(status, lowercase headers, body) of one GET on a fresh connection."""
    con = http.client.HTTPConnection(client.host, client.port, timeout=client.timeout)
    try:
        con.request("GET", path, headers={"Connection": "close", **(headers or {})})
        resp = con.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        con.close()


def check_http_cache(client, workers, user_id):
    """The cached route GET /users/{id}/card (a whole HTTP response in the shared cache): every
    worker must send the same card with the same ETag, and answer 304 to If-None-Match.
    Returns (ok, text)."""
    path = f"/users/{user_id}/card"
    cards, not_modified = {}, {}
    deadline = time.monotonic() + 10
    while len(cards) < workers and time.monotonic() < deadline:
        status, h, body = raw_get(client, path)
        if status == 200:
            cards.setdefault(h.get("x-served-by"), (h.get("etag"), body, h.get("x-cache")))
    etags = {etag for etag, _, _ in cards.values()}
    bodies = {body for _, body, _ in cards.values()}
    etag = next(iter(etags)) if etags else None
    while etag and len(not_modified) < workers and time.monotonic() < deadline:
        status, h, _ = raw_get(client, path, {"If-None-Match": etag})
        not_modified.setdefault(h.get("x-served-by"), status)
    ok = (len(cards) >= min(workers, 2) and len(etags) == 1 and len(bodies) == 1
          and set(not_modified.values()) == {304})
    text = (f"HTTP response cache: GET {path} sent by {len(cards)} worker(s) as "
            f"{len(bodies)} distinct card(s) with {len(etags)} ETag ({etag}); "
            f"with If-None-Match, {sum(1 for s in not_modified.values() if s == 304)} of "
            f"{len(not_modified)} worker(s) answered 304 Not Modified"
            + ("" if ok else "  <-- FAILED"))
    return ok, text


def report(args, pids, per, errors, seconds, stats, inval_text):
    n = sum(w["requests"] for w in per.values())
    computed = sum(w["computed"] for w in per.values())
    own = sum(w["served_own"] for w in per.values())
    others = sum(w["served_others"] for w in per.values())
    distinct = len(set().union(*(w["ids"] for w in per.values()))) if per else 0
    private = sum(len(w["ids"]) for w in per.values())
    l1, l2 = stats.get("l1_cache", {}), stats.get("l2_cache", {})
    out = [f"{n} requests for {args.users} user profiles (Zipf s={args.zipf}) from "
           f"{args.concurrency} threads, a new connection per request; {len(pids)} workers "
           f"answered",
           "",
           "computed: profiles the worker computed on a miss; served-own / served-others: hits "
           "on profiles",
           "computed by this worker / by another worker (the response carries both pids).",
           "",
           f"{'worker pid':<12}{'requests':>10}{'computed':>10}{'served-own':>12}"
           f"{'served-others':>15}"]
    for pid in sorted(per):
        w = per[pid]
        out.append(f"{pid:<12}{w['requests']:>10}{w['computed']:>10}{w['served_own']:>12}"
                   f"{w['served_others']:>15}")
    out.append(f"{'total':<12}{n:>10}{computed:>10}{own:>12}{others:>15}")
    out.append("")
    if n:
        out.append(f"{others} of {n} responses ({100 * others / n:.1f}%) were served by one worker "
                   f"from a profile another worker computed.")
    out.append(f"profiles computed: {computed} for {distinct} distinct users"
               + (f" ({computed - distinct} more: workers that missed the same profile at the "
                  f"same moment)" if computed > distinct else "")
               + f"; {n} requests.")
    out.append(f"a private cache in each worker would have computed at least {private} (once per "
               f"worker for every profile that worker served).")
    if n:
        out.append(f"requests answered from the cache: {own + others} of {n} "
                   f"({100 * (own + others) / n:.1f}%).")
    if l1:
        out.append(f"host-wide L1 (GET /metrics/cache, the segment's counters, every worker): "
                   f"hits {l1.get('hits')}, misses {l1.get('misses')}, hit rate "
                   f"{100 * float(l1.get('hit_rate', 0)):.1f}%, entries {l1.get('size')}"
                   f" of {l1.get('max_size')}.")
        sf = stats.get("single_flight", {})
        waited = sf.get("stampedes_avoided", 0)
        if waited or sf.get("waits"):
            out.append(f"single flight (host-wide): {waited} requests missed a profile another "
                       f"worker was computing and waited for its value instead of computing it "
                       f"too; {sf.get('lease_timeouts', 0)} gave up waiting.")
        # A request that waited counts as a miss in the segment, then is served another's value.
        if l1.get("hits") == own + others - waited and l1.get("misses") == computed + waited:
            out.append("  the segment counted what the responses show: hits + waited = "
                       "served-own + served-others, misses = computed + waited.")
    if args.l2:
        out.append(f"Redis L2 ({'connected' if l2.get('connected') else 'NOT connected'}): "
                   f"hits {l2.get('hits')}, misses {l2.get('misses')}, errors {l2.get('errors')}"
                   f"; on one host the shared L1 answers first, so L2 sees only its misses.")
    out.append(inval_text)
    out.append(f"wall time {seconds:.2f} s, {n / seconds:.0f} requests/s.")
    if errors:
        out.append(f"{len(errors)} requests FAILED; first: {errors[0]}")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--workers", type=int, default=4, help="how many workers to wait for")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--zipf", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--wait", type=float, default=30, help="seconds to wait for the app")
    ap.add_argument("--server-pid", type=int, help="stop waiting if this process exits")
    ap.add_argument("--l2", action="store_true", help="report the Redis L2 figures")
    ap.add_argument("--json", metavar="OUT", help="also write the figures to OUT")
    args = ap.parse_args()

    client = Client(args.url)
    try:
        pids = wait_ready(client, args.workers, args.wait, args.server_pid)
    except RuntimeError as e:
        print(f"demo_traffic: {e}", file=sys.stderr)
        return 1
    ids = zipf_ids(args.users, args.requests, args.zipf, args.seed)
    responses, errors, seconds = drive(client, ids, args.concurrency)
    per = tally(responses)
    stats = client.request("GET", "/metrics/cache")  # before the PUT: the traffic's figures only
    http_ok, http_text = check_http_cache(client, args.workers, ids[0])
    ok, inval_text = check_invalidation(client, args.workers, ids[0])
    print(report(args, pids, per, errors, seconds, stats, inval_text))
    print(http_text)
    ok = ok and http_ok
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"workers": {str(p): {k: v for k, v in w.items() if k != "ids"}
                                   for p, w in per.items()},
                       "errors": errors, "seconds": seconds, "stats": stats,
                       "invalidation_ok": ok}, f, indent=1)
    return 0 if ok and not errors and responses else 1


if __name__ == "__main__":
    sys.exit(main())
