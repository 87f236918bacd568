"""The Redis L2 from shmcache-cli: --redis, --redis-prefix, --tier on the key verbs, purge across
tiers and namespaces, stats' L2 section, and what an operator sees when Redis is down or hung.

Every test runs against a real redis-server (redis_server.py): one for the module, emptied before
each test, plus servers of their own for the tests that stop one. Redis contents are checked
with redis-py, L1 contents with the CLI's --tier l1 and the ctypes helper.
"""
import json
import os
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

import shmc_ctypes as sc
from redis_server import RedisServer, free_port

EXIT_NOT_FOUND, EXIT_USAGE, EXIT_L2 = 1, 2, 8
CHANNEL = b"__shmcache__:invalidate"  # the library's invalidation channel (no namespace)


@pytest.fixture(scope="module")
def redis_server():
    server = RedisServer()
    yield server
    server.close()


@pytest.fixture
def redis(redis_server):
    """A client of the module's server, emptied for this test."""
    r = redis_server.client()
    r.flushall()
    yield r
    r.close()


@pytest.fixture
def l2(cli, redis_server, redis):
    """Runs the CLI with --redis URL of the module's server."""
    def run(*args, **kw):
        return cli("--redis", redis_server.url, *args, **kw)
    return run


@pytest.fixture
def subscriber(cli, redis_server):
    """start(mode): a process of this host that holds its invalidation subscription, as an
    application's would. The CLI never subscribes, and an L1 copy of a Redis value is served
    only while the host has a live subscription made before the copy (docs/l2.md,
    "Coherence"). Creates the segment with default geometry if it does not exist yet."""
    procs = []

    def start(mode="tracking"):
        p = cli.helper("subscribe", redis_server.url, mode)
        assert p.stdout.readline().strip() == "attached"
        procs.append(p)
        deadline = time.monotonic() + 5
        while not stats_json(cli)["l2"]["subscribed"]:
            assert time.monotonic() < deadline, "no subscription"
            time.sleep(0.01)
    yield start
    for p in procs:
        p.stdin.close()
        p.wait(timeout=10)


def l1_keys(cli, pattern="*"):
    return sorted(cli("keys", pattern).out.split())


def test_set_writes_both_tiers_and_purge_removes_both(cli, l2, redis, subscriber):
    subscriber("publish")  # the purge below is published in publish mode only
    for k in ["user:1", "user:2", "other:1"]:
        p = l2("set", k, f"v-{k}", "--ttl", "60")
        assert p.returncode == 0, p.err
        assert "in L1 and L2" in p.out
    assert sorted(redis.keys("*")) == [b"other:1", b"user:1", b"user:2"]
    assert 55000 < redis.pttl("user:1") <= 60000
    # Redis holds the same envelope L1 does.
    assert redis.get("user:1") == cli("get", "user:1", "--raw").stdout
    assert l1_keys(cli) == ["other:1", "user:1", "user:2"]

    sub = redis.pubsub()
    sub.subscribe(CHANNEL)
    assert sub.get_message(timeout=2)["type"] == "subscribe"
    p = l2("purge", "user:*")
    assert p.returncode == 0, p.err
    lines = p.out.splitlines()
    assert lines[0].startswith("removed 2 keys matching 'user:*' from L2 (redis://127.0.0.1:")
    assert "other hosts told to drop them" in lines[0]
    assert lines[1] == "removed 2 keys matching 'user:*' from L1"
    # Gone from Redis and from L1; the key outside the pattern is in both still.
    assert redis.keys("*") == [b"other:1"]
    assert l1_keys(cli) == ["other:1"]
    # The invalidation other hosts act on was published: "shmc1 <origin> P <pattern>".
    msg = sub.get_message(timeout=2)
    assert msg and msg["type"] == "message" and msg["data"].endswith(b" P user:*"), msg
    sub.close()


def test_purge_tier_choice_and_dry_run(cli, l2, redis):
    for k in ["a:1", "a:2"]:
        assert l2("set", k, "v").returncode == 0
    # L1 only: Redis keeps both.
    p = l2("purge", "a:*", "--tier", "l1")
    assert p.returncode == 0 and p.out == "removed 2 keys matching 'a:*' from L1\n", p.out
    assert sorted(redis.keys("*")) == [b"a:1", b"a:2"]
    # --dry-run works on L1, and is refused (with the way out named) when L2 is included.
    cli("set", "a:3", "v")
    p = l2("purge", "a:*", "--tier", "l1", "--dry-run")
    assert p.returncode == 0 and p.out == "a:3\ndry run: 1 keys match 'a:*'; nothing removed\n"
    for argv in [[], ["--tier", "both"], ["--tier", "l2"]]:
        p = l2("purge", "a:*", "--dry-run", *argv)
        assert p.returncode == EXIT_USAGE, argv
        assert "--dry-run" in p.err and "--tier l1" in p.err and "redis-cli --scan" in p.err
    assert sorted(redis.keys("*")) == [b"a:1", b"a:2"] and l1_keys(cli) == ["a:3"]
    # L2 only: L1 keeps a:3.
    p = l2("purge", "a:*", "--tier", "l2")
    assert p.returncode == 0 and p.out.startswith("removed 2 keys matching 'a:*' from L2")
    assert "from L1" not in p.out
    assert redis.keys("*") == [] and l1_keys(cli) == ["a:3"]


def test_namespace_is_respected(cli, l2, redis):
    assert l2("--redis-prefix", "app", "set", "user:1", "mine").returncode == 0
    assert redis.keys("*") == [b"app:user:1"]
    # Keys of other namespaces, of none, and of a namespace that only a glob would match.
    for k in [b"other:user:1", b"user:1", b"app1:user:1", b"appx:user:2"]:
        redis.set(k, b"theirs")
    p = l2("--redis-prefix", "app", "purge", "user:*")
    assert p.returncode == 0, p.err
    assert "removed 1 keys matching 'user:*' from L2" in p.out and "namespace 'app:'" in p.out
    assert sorted(redis.keys("*")) == [b"app1:user:1", b"appx:user:2", b"other:user:1",
                                       b"user:1"]
    # A namespace holding glob metacharacters matches only itself.
    redis.set(b"app[1]:user:9", b"x")
    p = l2("--redis-prefix", "app[1]", "purge", "user:*", "--tier", "l2")
    assert p.returncode == 0 and "removed 1 keys" in p.out
    assert sorted(redis.keys("*")) == [b"app1:user:1", b"appx:user:2", b"other:user:1",
                                       b"user:1"]
    # get and del go through the namespace too.
    redis.set(b"app:k", redis.get(b"user:1"))  # not an envelope: shown as stored
    p = l2("--redis-prefix", "app", "get", "k", "--tier", "l2")
    assert p.returncode == 0 and p.stdout == b"theirs"
    assert l2("--redis-prefix", "app", "del", "k", "--tier", "l2").returncode == 0
    assert redis.get(b"app:k") is None and redis.get(b"user:1") == b"theirs"


def test_get_served_from_l2_after_l1_delete(cli, l2, redis, subscriber):
    subscriber()
    # The L1 copy of a write to both tiers may be dropped by its own tracking echo applied late
    # (see test_set_tier_l2_and_l2_ttl): the write is then made again.
    for _ in range(5):
        assert l2("set", "profile:7", '{"name": "Ada", "n": [1, 2]}', "--json",
                  "--ttl", "120").returncode == 0
        p = l2("get", "profile:7", "--json")
        assert p.returncode == 0, p.err
        j = json.loads(p.out)
        if j["tier"] == "l1":
            break
    assert j["tier"] == "l1" and j["value"] == {"name": "Ada", "n": [1, 2]}
    assert j["key"] == "profile:7" and j["serializer"] == "json" and 110 < j["ttl"] <= 120

    p = l2("del", "profile:7", "--tier", "l1")
    assert p.returncode == 0 and p.out == "deleted profile:7 (L1: removed)\n"
    assert l2("get", "profile:7", "--tier", "l1").returncode == EXIT_NOT_FOUND
    p = l2("get", "profile:7", "--json")
    assert p.returncode == 0, p.err
    j = json.loads(p.out)
    assert j["tier"] == "l2" and j["value"] == {"name": "Ada", "n": [1, 2]}
    assert 110 < j["ttl"] <= 120
    # Plain output: the value on stdout, the tier in a note on stderr.
    p = l2("get", "profile:7")
    assert p.returncode == 0 and p.out == '{"name": "Ada", "n": [1, 2]}\n'
    assert "served by L2" in p.err
    p = l2("ttl", "profile:7")
    assert p.returncode == 0 and 110 < int(p.out) <= 120 and "served by L2" in p.err
    # The CLI never copies an L2 value into L1 (it holds no invalidation subscription).
    assert l2("get", "profile:7", "--tier", "l1").returncode == EXIT_NOT_FOUND
    assert cli.dump("profile:7")["profile:7"] == {"key": "profile:7", "missing": True}

    # del with both tiers reports each; a second one finds nothing anywhere.
    p = l2("del", "profile:7")
    assert p.returncode == 0 and p.out == "deleted profile:7 (L2: removed, L1: not there)\n"
    p = l2("del", "profile:7")
    assert p.returncode == EXIT_NOT_FOUND and "not found: profile:7 (in L1 or L2)" in p.err
    p = l2("get", "profile:7")
    assert p.returncode == EXIT_NOT_FOUND and "(in L1 or L2)" in p.err


def test_get_json_is_a_warm_record(cli, l2, tmp_path):
    l2("set", "t", "hello")
    l2("set", "j", '{"b": 2, "a": 1}', "--json", "--ttl", "30")
    cli("warm", input='{"key": "bin", "value_b64": "AAEC/w=="}\n')
    records = [l2("get", k, "--json").out for k in ["t", "j", "bin"]]
    t, j, b = map(json.loads, records)
    assert (t["text"], t["ttl"], t["serializer"]) == ("hello", 0, "str")
    assert list(j["value"]) == ["b", "a"]  # members in the stored order
    assert (b["value_b64"], b["serializer"], b["tier"]) == ("AAEC/w==", "raw", "l1")
    # Fed to warm (another segment), they store the same values.
    other = cli.name + "-copy"
    try:
        p = cli("--name", other, "warm", input="".join(records), name=False)
        assert p.returncode == 0, p.err
        assert cli("--name", other, "get", "j", name=False).out == '{"b":2,"a":1}\n'
        assert cli("--name", other, "get", "bin", "--raw", name=False).stdout[2:] == \
            b"\x00\x01\x02\xff"
    finally:
        cli("--name", other, "destroy", "--force", name=False)
    assert l2("get", "t", "--json", "--raw").returncode == EXIT_USAGE


def test_set_tier_l2_and_l2_ttl(cli, l2, redis, subscriber):
    # A value L1 refuses is refused before Redis sees it (1 MiB in 16 stripes: small values).
    p = l2("set", "tiny", "x", "--size-mb", "1", "--stripes", "16")
    info = json.loads(cli("info", "--json").out)
    assert info["size_bytes"] == 1 << 20 and info["max_value_len"] < 100000
    p = l2("set", "big", "y" * (info["max_value_len"] + 1), "--compress-threshold", "0")
    assert p.returncode == EXIT_USAGE and "max_value_len" in p.err
    assert redis.get("big") is None

    subscriber()  # on the 1 MiB segment just made
    # A write to both tiers keeps its L1 copy if this host's own tracking echo is applied within
    # 5 ms (docs/l2.md, "Own writes"); an echo applied later drops the copy (a Redis read on the
    # next get, never a stale value). A subscriber descheduled that long (a sanitizer build on 2
    # busy CPUs) is why the write may be made again.
    for _ in range(5):
        p = l2("set", "k", "v", "--ttl", "60", "--l2-ttl", "600")
        assert p.returncode == 0 and "L1 expires in 1:00, L2 expires in 10:00" in p.out, p.out
        assert 590000 < redis.pttl("k") <= 600000
        l1_ttl = l2("ttl", "k", "--tier", "l1").out
        if l1_ttl:
            break
    assert 55 <= int(l1_ttl) <= 60
    assert 590 <= int(l2("ttl", "k", "--tier", "l2").out) <= 600
    # L2 only: Redis gets the value and this host's L1 copy, now stale, is dropped.
    p = l2("set", "k", "new", "--tier", "l2")
    assert p.returncode == 0 and p.out.endswith(" in L2\n")
    assert l2("get", "k", "--tier", "l1").returncode == EXIT_NOT_FOUND
    assert l2("get", "k").out == "new\n" and redis.ttl("k") == -1
    p = l2("set", "x", "v", "--tier", "l1", "--l2-ttl", "5")
    assert p.returncode == EXIT_USAGE and "--l2-ttl" in p.err


def test_warm_writes_both_tiers(cli, l2, redis, subscriber):
    subscriber()
    records = "".join(json.dumps(r) + "\n" for r in [
        {"key": "w:1", "value": {"a": 1}, "ttl": 30},
        {"key": "w:2", "text": "two"},
        {"key": "w:3", "value_b64": "AAE="},
    ])
    # Each record is a write to both tiers, whose L1 copy may be dropped by its own tracking echo
    # applied late (see test_set_tier_l2_and_l2_ttl): the warm is then run again.
    for _ in range(5):
        p = l2("warm", input=records)
        assert p.returncode == 0, p.err
        assert p.out.startswith("warm: 3 written to L1 and L2, 0 skipped")
        assert sorted(redis.keys("*")) == [b"w:1", b"w:2", b"w:3"]
        assert 25000 < redis.pttl("w:1") <= 30000 and redis.ttl("w:2") == -1
        in_l1 = l1_keys(cli)
        if in_l1 == ["w:1", "w:2", "w:3"]:
            break
    assert in_l1 == ["w:1", "w:2", "w:3"]
    redis.flushall()
    p = l2("warm", "--tier", "l1", input=records)
    assert p.returncode == 0 and redis.keys("*") == []


def stats_json(run):
    p = run("stats", "--json")
    assert p.returncode == 0, p.err
    return json.loads(p.out)


def test_stats_l2_section(cli, l2, redis):
    cli("set", "seed", "x")  # a segment that never saw Redis
    j = stats_json(cli)["l2"]
    assert j["hits"] == j["sets"] == j["errors"] == 0 and j["hit_rate"] is None
    assert j["subscribed"] is False and j["subscriber_pid"] is None
    assert "connected" not in j and "breaker_open" not in j
    assert "L2 (Redis): not used on this host yet" in cli("stats").out

    l2("set", "a", "1")
    l2("set", "b", "2")
    l2("del", "b", "--tier", "l1")
    l2("get", "b")                    # L1 miss, L2 hit
    l2("get", "nope")                 # a miss in both
    l2("purge", "a*")                 # one more L2 delete, one more invalidation
    j = stats_json(l2)["l2"]
    assert (j["hits"], j["misses"], j["sets"], j["deletes"]) == (1, 1, 2, 1)
    assert j["hit_rate"] == 0.5 and j["invalidations_sent"] == 3 and j["fills"] == 0
    assert j["errors"] == j["timeouts"] == j["dropped_writes"] == 0
    assert j["connected"] is True and j["breaker_open"] is False and j["error"] is None
    assert j["redis"].startswith("redis://127.0.0.1:")
    assert j["subscribed"] is False  # the CLI never takes the host's subscription
    # The probe of that stats call (an L2 miss) is counted, in the next reading.
    assert stats_json(cli)["l2"]["misses"] == 2

    out = l2("stats").out
    assert "L2 (Redis) redis://127.0.0.1:" in out and ": connected;" in out
    row = lambda label: next(l for l in out.splitlines() if l.startswith(label + "  "))
    assert row("l2 hits").split()[-1] == "1"
    assert row("l2 hit rate").split()[-1] == "33.33%"  # 1 hit, 2 misses: the probe counted
    assert row("l2 invalidations sent").split()[-1] == "3"
    # Without --redis the section is there, from the segment's counters, without the link state.
    out = cli("stats").out
    assert "L2 (Redis), host-wide counters; invalidation subscriber: none" in out
    assert "connected" not in out

    p = l2("stats", "--prometheus")
    assert p.returncode == 0, p.err
    fams = {f.name: f for f in text_string_to_metric_families(p.out)}
    j = stats_json(cli)["l2"]
    for key in ["hits", "misses", "sets", "deletes", "errors", "timeouts", "dropped_writes",
                "breaker_opens", "fills", "invalidations_sent", "invalidations_applied",
                "resyncs", "resync_dropped"]:
        f = fams[f"shmcache_l2_{key}"]
        assert f.type == "counter" and f.documentation, key
        (s,) = f.samples
        assert s.name == f"shmcache_l2_{key}_total" and s.labels == {"segment": cli.name}
        # the scrape's own probe is counted after it read the figures
        assert s.value == j[key] - (1 if key == "misses" else 0), key
    for name, value in [("subscribed", 0), ("subscriber_pid", 0), ("connected", 1),
                        ("breaker_open", 0)]:
        f = fams[f"shmcache_l2_{name}"]
        assert f.type == "gauge" and f.documentation and f.samples[0].value == value, name
    names = [l.split()[2] for l in p.out.splitlines() if l.startswith("# TYPE")]
    assert len(names) == len(set(names)) == len(fams)
    # Without --redis: the counters, not the link state.
    fams = {f.name for f in text_string_to_metric_families(cli("stats", "--prometheus").out)}
    assert "shmcache_l2_hits" in fams and "shmcache_l2_connected" not in fams


def test_stats_flight_redis_lock(cli, l2, redis_server, redis):
    """The cross-host figures of single flight: two segments stand for two hosts sharing Redis.
    Host B takes the Redis lock and computes; host A finds the lock held, waits, and is served
    B's value from Redis; then A computes a key of its own under its own lock."""
    other = cli.name + "-b"
    assert cli("set", "seed", "x").returncode == 0
    assert cli("--name", other, "set", "seed", "x", name=False).returncode == 0
    a, b = sc.Cache(cli.name), sc.Cache(other)
    try:
        for host in (a, b):
            host.l2_attach(redis_server.url)
        o = a.fetch_options(tiers=sc.TIER_BOTH, flags=sc.FETCH_L2_LOCK, ttl_ms=60000,
                            wait_ms=10000)
        rb, _ = b.fetch(b"f", o)
        assert rb.outcome == sc.FETCH_COMPUTE and rb.lease
        assert redis.exists("__shmcache_lease__:f")
        got = {}
        waiter = threading.Thread(target=lambda: got.update(zip("rv", a.fetch(b"f", o))))
        waiter.start()
        deadline = time.monotonic() + 10
        while a.flight_stats()["l2_lock_busy"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        assert b.complete(b"f", b"computed-on-b", o, rb.lease) == 0
        waiter.join(30)
        r, v = got["r"], got["v"]
        assert (r.outcome, r.served_by, v) == (sc.FETCH_HIT, sc.TIER_L2, b"computed-on-b")
        ra, _ = a.fetch(b"g", o)
        assert ra.outcome == sc.FETCH_COMPUTE and ra.lease
        assert a.complete(b"g", b"computed-on-a", o, ra.lease) == 0
        assert redis.get("g") == b"computed-on-a" and not redis.exists("__shmcache_lease__:g")
        want = a.flight_stats()
        assert (want["l2_locks"], want["l2_lock_busy"], want["l2_served"]) == (1, 1, 1)
        assert (want["leases_granted"], want["leases_held"], want["lease_timeouts"]) == (2, 0, 0)
        assert b.flight_stats()["l2_locks"] == 1
    finally:
        a.close()
        b.close()
        cli("--name", other, "destroy", "--force", name=False)

    assert stats_json(l2)["flight"] == want
    out = l2("stats").out
    row = lambda label: next(l for l in out.splitlines() if l.startswith(label + "  "))
    assert row("redis locks taken").split()[-1] == "1"
    assert row("redis lock busy").split()[-1] == "1"
    assert row("served by other host").split()[-1] == "1"
    p = l2("stats", "--prometheus")
    assert p.returncode == 0, p.err
    fams = {f.name: f for f in text_string_to_metric_families(p.out)}
    for key in ["l2_locks", "l2_lock_busy", "l2_served", "leases_granted"]:
        f = fams[f"shmcache_flight_{key}"]
        assert f.type == "counter" and f.samples[0].name == f"shmcache_flight_{key}_total"
        assert f.samples[0].value == want[key], key


def test_stats_watch_has_l2_rates(l2):
    l2("set", "a", "1")
    p = l2("stats", "--watch", "0.2", "--count", "2")
    assert p.returncode == 0, p.err
    frames = p.out.split("\n\n")
    assert len(frames) == 2 and "l2 hits" in frames[1]
    row = next(l for l in frames[1].splitlines() if l.startswith("l2 misses "))
    assert len(row.split()) == 4  # label (2 words), total, per second


def test_redis_down(cli, redis_server, tmp_path):
    cli("set", "k", "v")
    port = free_port()  # nothing listens there
    down = lambda *a, **kw: cli("--redis", f"redis://127.0.0.1:{port}/0", *a, **kw)
    for argv in [["get", "k2"], ["get", "k", "--tier", "l2"], ["ttl", "k2"],
                 ["del", "k", "--tier", "l2"], ["purge", "x*"], ["set", "k3", "v"]]:
        start = time.monotonic()
        p = down(*argv)
        elapsed = time.monotonic() - start
        assert p.returncode == EXIT_L2, (argv, p.returncode, p.err)
        assert elapsed < 2, (argv, elapsed)
        assert f"127.0.0.1:{port}" in p.err and "Redis L2" in p.err, p.err
    # An L1 hit needs no Redis; set kept its L1 copy and said so.
    assert down("get", "k").returncode == 0
    assert "stored in L1 only" in down("set", "k4", "v").err
    assert cli("get", "k4").out == "v\n"
    # warm stops at the first record Redis refuses.
    p = down("warm", input='{"key": "w1", "text": "a"}\n{"key": "w2", "text": "b"}\n')
    assert p.returncode == EXIT_L2 and "line 1" in p.err
    assert "stopped at line 1: Redis failed" in p.out and "to L1 only" in p.out
    assert cli("get", "w2").returncode == EXIT_NOT_FOUND
    # stats still reports, with the link state.
    p = down("stats", "--json")
    assert p.returncode == 0
    j = json.loads(p.out)["l2"]
    assert j["connected"] is False and f"127.0.0.1:{port}" in j["error"]
    assert f"127.0.0.1:{port}" in p.err
    assert "NOT connected" in down("stats").out


def test_redis_hung_is_bounded(cli):
    server = RedisServer()
    try:
        hung = lambda *a: cli("--redis", server.url, "--redis-timeout-ms", "300", *a)
        assert hung("set", "k", "v").returncode == 0
        assert hung("get", "k", "--tier", "l2").returncode == 0
        server.stop()
        for argv in [["get", "nope"], ["purge", "k*", "--tier", "l2"], ["set", "k2", "v"]]:
            start = time.monotonic()
            p = hung(*argv)
            elapsed = time.monotonic() - start
            assert p.returncode == EXIT_L2 and "timed out" in p.err, (argv, p.err)
            assert elapsed < 2, (argv, elapsed)
    finally:
        server.close()


def test_usage_errors(cli, redis_server):
    cli("set", "k", "v")
    for argv in [["get", "k", "--tier", "l2"], ["get", "k", "--tier", "both"],
                 ["set", "k", "v", "--tier", "l2"], ["del", "k", "--tier", "both"],
                 ["ttl", "k", "--tier", "l2"], ["purge", "k*", "--tier", "l2"],
                 ["warm", "--tier", "both"]]:
        p = cli(*argv, input="")
        assert p.returncode == EXIT_USAGE, argv
        assert "--redis" in p.err and "SHMCACHE_REDIS_URL" in p.err, p.err
    assert cli("get", "k").out == "v\n"  # nothing was touched
    assert cli("get", "k", "--tier", "l3").returncode == EXIT_USAGE
    p = cli("--redis-prefix", "app", "get", "k")
    assert p.returncode == EXIT_USAGE and "need --redis" in p.err
    p = cli("--redis", "http://example.com", "get", "k", "--tier", "l2")
    assert p.returncode == EXIT_USAGE and "bad Redis URL" in p.err
    p = cli("--redis", redis_server.url, "--redis-timeout-ms", "0", "get", "k")
    assert p.returncode == EXIT_USAGE
    # --help lists the new exit status.
    assert "8  the Redis L2 is unavailable" in cli("--help").out


def test_environment_variables(cli, redis_server, redis):
    env = {"SHMCACHE_REDIS_URL": redis_server.url, "SHMCACHE_REDIS_PREFIX": "envns"}
    p = cli("set", "k", "v", env=env)
    assert p.returncode == 0 and "in L1 and L2" in p.out
    assert redis.keys("*") == [b"envns:k"]
    # The command line wins; --redis "" means no Redis at all.
    assert cli("--redis-prefix", "cli", "set", "k", "v", env=env).returncode == 0
    assert sorted(redis.keys("*")) == [b"cli:k", b"envns:k"]
    p = cli("--redis", "", "set", "k2", "v", env=env)
    assert p.returncode == 0 and "in L1" not in p.out
    # A plain REDIS_URL, meant for some other program, is not ours.
    p = cli("set", "k3", "v", env={"REDIS_URL": redis_server.url})
    assert p.returncode == 0 and "L2" not in p.out
    assert b"k3" not in b" ".join(redis.keys("*"))


def test_password_never_shown(cli, redis_server):
    cli("set", "k", "v")
    url = redis_server.url.replace("redis://", "redis://admin:s3cret-pw@")
    for argv in [["stats"], ["stats", "--json"], ["stats", "--prometheus"], ["get", "x"],
                 ["purge", "x*"]]:
        p = cli("--redis", url, *argv)
        assert "s3cret-pw" not in p.out + p.err, argv
    j = json.loads(cli("--redis", url, "stats", "--json").out)["l2"]
    assert j["redis"] == redis_server.url.replace("redis://", "redis://admin:***@")
    assert j["connected"] is False  # this server has no such user


def test_sentinel_and_query_passwords_never_shown(cli):
    url = ("redis+sentinel://app:s3cret-pw@127.0.0.1:1/mymaster/0"
           "?sentinel_password=sentinel-pw&password=query-pw")
    for argv in [["stats"], ["stats", "--json"], ["get", "x"]]:
        p = cli("--redis", url, "--redis-timeout-ms", "50", *argv)
        for secret in ("s3cret-pw", "sentinel-pw", "query-pw"):
            assert secret not in p.out + p.err, (argv, secret)
