"""stats' single-flight figures (shmc_flight_get_stats) in the table, JSON, Prometheus and --watch.

The activity comes from the library itself, through ctypes (shmc_ctypes.py): fetches in this
process, and helper processes that hold a lease while this one waits for it, or die holding one.
Every figure is checked against what the library reports and against what the steps must have
counted (docs/stampede.md#statistics). The Redis lock figures are in test_cli_l2.py.
"""
import ctypes
import json
import os
import shutil
import subprocess
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

import shmc_ctypes as sc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

COUNTERS = ["leases_granted", "waits", "stampedes_avoided", "lease_timeouts", "takeovers",
            "stale_served", "early_refreshes", "unleased", "abandoned", "l2_locks",
            "l2_lock_busy", "l2_served"]
GAUGES = ["leases_held", "leases_reclaimable", "lease_slots"]
LABELS = {"leases_granted": "leases granted", "waits": "waits",
          "stampedes_avoided": "stampedes avoided", "lease_timeouts": "lease timeouts",
          "takeovers": "takeovers", "stale_served": "stale served",
          "early_refreshes": "early refreshes", "unleased": "unleased", "abandoned": "abandoned",
          "l2_locks": "redis locks taken", "l2_lock_busy": "redis lock busy",
          "l2_served": "served by other host", "leases_held": "leases held now",
          "leases_reclaimable": "leases reclaimable now", "lease_slots": "lease slots"}
HEADER = "single flight (shmc_fetch), host-wide"


@pytest.fixture
def cache(cli):
    """The test's segment (created by the CLI), and a handle on it in this process."""
    assert cli("set", "seed", "x").returncode == 0
    c = sc.Cache(cli.name)
    yield c
    c.close()


def flight_json(cli):
    p = cli("stats", "--json")
    assert p.returncode == 0, p.err
    return json.loads(p.out)["flight"]


def flight_rows(out):
    """{json key: the table's total column} of the single-flight section."""
    lines = out.splitlines()
    start = lines.index(HEADER) + 1
    rows = {}
    for key, label in LABELS.items():
        line = next(l for l in lines[start:] if l.startswith(label + "  "))
        rows[key] = int(line[len(label):].split()[0].replace(",", ""))
    return rows


def flight_prometheus(cli):
    """{json key: value}, after checking each family's type, help, sample name and labels."""
    p = cli("stats", "--prometheus")
    assert p.returncode == 0, p.err
    fams = {f.name: f for f in text_string_to_metric_families(p.out)}
    names = [l.split()[2] for l in p.out.splitlines() if l.startswith("# TYPE")]
    assert len(names) == len(set(names)) == len(fams)
    got = {}
    for key in COUNTERS + GAUGES:
        f = fams[f"shmcache_flight_{key}"]  # the parser strips a counter's _total
        assert f.type == ("counter" if key in COUNTERS else "gauge") and f.documentation, key
        (s,) = f.samples
        assert s.name == f"shmcache_flight_{key}" + ("_total" if key in COUNTERS else ""), key
        assert s.labels == {"segment": cli.name}
        got[key] = int(s.value)
    return got


def expect(**nonzero):
    """Every figure, zero unless given; 1024 lease slots (64 stripes x 16)."""
    return {k: nonzero.get(k, 0) for k in COUNTERS + GAUGES} | {"lease_slots": 1024}


def wait_for(fn, timeout=10):
    deadline = time.monotonic() + timeout
    while not fn():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_structures_match_the_header(tmp_path):
    """The ctypes mirrors have the header's sizes and offsets (a C compiler says what they are)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.fail("no C compiler: this test needs one to read the header's layout")
    mirrors = {"shmc_fetch_options": sc.FetchOptions, "shmc_fetch_result": sc.FetchResult,
               "shmc_flight_stats": sc.FlightStats, "shmc_l2_options": sc.L2Options}
    src = ["#include <stddef.h>", "#include <stdio.h>", "#include <shmcache/shmcache.h>",
           "int main(void) {"]
    for ctype, mirror in mirrors.items():
        src.append(f'printf("{ctype} sizeof %zu\\n", sizeof({ctype}));')
        for field, _ in mirror._fields_:
            src.append(f'printf("{ctype} {field} %zu\\n", offsetof({ctype}, {field}));')
    src.append("return 0; }")
    (tmp_path / "layout.c").write_text("\n".join(src) + "\n")
    exe = tmp_path / "layout"
    # Under the sanitizer run this interpreter has the ASan runtime preloaded; the compiler and
    # the probe are not instrumented and must not inherit it.
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS")}
    subprocess.run([cc, "-std=c11", "-I", os.path.join(ROOT, "lib", "include"),
                    str(tmp_path / "layout.c"), "-o", str(exe)], check=True, env=env)
    for line in subprocess.run([exe], capture_output=True, text=True, check=True,
                               env=env).stdout.split("\n")[:-1]:
        ctype, field, value = line.split()
        mirror = mirrors[ctype]
        got = ctypes.sizeof(mirror) if field == "sizeof" else getattr(mirror, field).offset
        assert got == int(value), (ctype, field)


def test_stats_flight_figures(cli, cache):
    # Before any fetch: one line in the table, zeros (and the slots) in JSON and Prometheus.
    out = cli("stats").out
    assert "single flight (shmc_fetch): not used on this host yet; 1,024 lease slots" in out
    assert HEADER not in out
    assert flight_json(cli) == expect()
    assert flight_prometheus(cli) == expect()

    # A miss computed and completed, then a hit.
    o = cache.fetch_options(ttl_ms=60000)
    r, _ = cache.fetch(b"k1", o)
    assert r.outcome == sc.FETCH_COMPUTE and r.lease
    assert cache.complete(b"k1", b"v1", o, r.lease, compute_ms=5) == 0
    r, v = cache.fetch(b"k1", o)
    assert (r.outcome, v, r.lease) == (sc.FETCH_HIT, b"v1", 0)

    # Stale-while-revalidate: fresh for 50 ms, then stale for 10 minutes. The first fetch after
    # the TTL gets the stale value and the lease, the next one the stale value alone.
    swr = cache.fetch_options(ttl_ms=50, stale_ttl_ms=600000)
    r, _ = cache.fetch(b"s", swr)
    assert r.outcome == sc.FETCH_COMPUTE
    assert cache.complete(b"s", b"s1", swr, r.lease) == 0
    time.sleep(0.15)
    refresh, v = cache.fetch(b"s", swr)
    assert (refresh.outcome, v) == (sc.FETCH_STALE_REFRESH, b"s1") and refresh.lease
    r, v = cache.fetch(b"s", swr)
    assert (r.outcome, v, r.lease) == (sc.FETCH_STALE, b"s1", 0)
    # The refresh's lease is held now: a gauge in every format.
    held = expect(leases_granted=3, stale_served=2, leases_held=1)
    assert cache.flight_stats() == held
    assert flight_json(cli) == held
    assert flight_prometheus(cli) == held
    assert flight_rows(cli("stats").out) == held
    fresh = cache.fetch_options(ttl_ms=60000, stale_ttl_ms=600000)
    assert cache.complete(b"s", b"s2", fresh, refresh.lease) == 0
    r, v = cache.fetch(b"s", fresh)
    assert (r.outcome, v) == (sc.FETCH_HIT, b"s2")

    # A computation that failed gives its lease back.
    r, _ = cache.fetch(b"a", o)
    assert r.outcome == sc.FETCH_COMPUTE
    assert cache.abandon(b"a", r.lease) == 0

    # XFetch: a value that took "100 s" to compute, 60 s from expiry, with beta 100, is refreshed
    # early by a hit with probability exp(-60 / 10000): all but certain within a few fetches.
    r, _ = cache.fetch(b"x", o)
    assert cache.complete(b"x", b"x1", o, r.lease, compute_ms=100000) == 0
    eager = cache.fetch_options(ttl_ms=60000, xfetch_beta=100.0)
    for _ in range(200):
        r, v = cache.fetch(b"x", eager)
        assert v == b"x1"
        if r.outcome == sc.FETCH_EARLY_REFRESH:
            break
        assert r.outcome == sc.FETCH_HIT
    assert r.outcome == sc.FETCH_EARLY_REFRESH and r.lease
    assert cache.complete(b"x", b"x2", eager, r.lease, compute_ms=100000) == 0

    # k1, s (miss, stale refresh), a, x (miss, early refresh): 6 leases, all ended.
    want = expect(leases_granted=6, stale_served=2, early_refreshes=1, abandoned=1)
    assert cache.flight_stats() == want
    assert flight_json(cli) == want
    assert flight_prometheus(cli) == want
    out = cli("stats").out
    assert HEADER in out and "not used on this host yet; 512" not in out
    assert flight_rows(out) == want
    # The section sits between the L1 rows and the L2 section.
    lines = out.splitlines()
    assert (lines.index(next(l for l in lines if l.startswith("lock timeouts ")))
            < lines.index(HEADER)
            < lines.index(next(l for l in lines if l.startswith("L2 (Redis)"))))


def test_stats_flight_waits_takeover_and_timeout(cli, cache):
    # Another process computes; this one waits for its value (a stampede avoided).
    owner = cli.helper("lease", "w")
    assert json.loads(owner.stdout.readline())["outcome"] == "compute"
    got = {}
    waiter = threading.Thread(target=lambda: got.update(zip("rv", cache.fetch(b"w"))))
    waiter.start()
    wait_for(lambda: cache.flight_stats()["waits"] == 1)
    assert flight_json(cli)["leases_held"] == 1
    owner.stdin.write("complete from-owner\n")
    owner.stdin.flush()
    assert json.loads(owner.stdout.readline()) == {"rc": 0}
    owner.communicate(timeout=30)
    waiter.join(30)
    assert (got["r"].outcome, got["v"], got["r"].lease) == (sc.FETCH_HIT, b"from-owner", 0)
    want = expect(leases_granted=1, waits=1, stampedes_avoided=1)
    assert flight_json(cli) == want
    out = cli("stats").out
    assert flight_rows(out) == want
    row = next(l for l in out.splitlines() if l.startswith("stampedes avoided "))
    assert row.endswith("100.0% of waits")

    # An owner that dies holding its lease: reclaimable now, then taken over by the next fetch.
    dead = cli.helper("lease", "d")
    assert json.loads(dead.stdout.readline())["outcome"] == "compute"
    dead.stdin.close()  # EOF: it exits without completing or closing
    assert dead.wait(timeout=30) == 0
    dead.stdout.close()
    j = flight_json(cli)
    assert (j["leases_held"], j["leases_reclaimable"], j["leases_granted"]) == (0, 1, 2)
    assert flight_prometheus(cli)["leases_reclaimable"] == 1
    r, _ = cache.fetch(b"d")
    assert r.outcome == sc.FETCH_COMPUTE and r.lease
    assert cache.complete(b"d", b"mine", None, r.lease) == 0
    j = flight_json(cli)
    assert (j["takeovers"], j["leases_granted"], j["stampedes_avoided"]) == (1, 3, 1)
    assert j["leases_held"] == j["leases_reclaimable"] == 0

    # A waiter that waits longer than wait_ms computes without a lease (a lease timeout).
    slow = cli.helper("lease", "t")
    assert json.loads(slow.stdout.readline())["outcome"] == "compute"
    r, _ = cache.fetch(b"t", cache.fetch_options(wait_ms=100))
    assert (r.outcome, r.lease) == (sc.FETCH_COMPUTE_UNLEASED, 0) and r.waited_ms >= 100
    slow.stdin.write("abandon\n")
    slow.stdin.flush()
    assert json.loads(slow.stdout.readline()) == {"rc": 0}
    slow.communicate(timeout=30)
    j = flight_json(cli)
    assert (j["lease_timeouts"], j["abandoned"], j["leases_granted"]) == (1, 1, 4)
    assert j["leases_held"] == j["leases_reclaimable"] == 0
    assert flight_prometheus(cli) == j
    assert flight_rows(cli("stats").out) == j


def test_stats_watch_has_flight_rates(cli, cache):
    o = cache.fetch_options(ttl_ms=60000)
    r, _ = cache.fetch(b"k", o)
    cache.complete(b"k", b"v", o, r.lease)
    p = cli("stats", "--watch", "0.2", "--count", "2")
    assert p.returncode == 0, p.err
    frames = p.out.split("\n\n")
    assert len(frames) == 2 and HEADER in frames[0] and HEADER in frames[1]
    row = lambda frame, label: next(l for l in frame.splitlines() if l.startswith(label + "  "))
    assert row(frames[0], "leases granted").split()[2:] == ["1"]
    # Counters get a per-second column; the "now" gauges do not.
    assert row(frames[1], "leases granted").split()[2:] == ["1", "0.0"]
    assert row(frames[1], "leases held now").split()[3:] == ["0"]
    assert row(frames[1], "lease slots").split()[2:] == ["1,024"]
