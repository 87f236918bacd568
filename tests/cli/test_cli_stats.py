"""stats in every format, and stats and purge while 4 writer processes are writing."""
import json
import os
import time

from prometheus_client.parser import text_string_to_metric_families

COUNTERS = ["hits", "misses", "sets", "deletes", "evictions", "expirations", "lock_recoveries",
            "lock_timeouts"]
GAUGES = {"entries": "entries", "used_bytes": "bytes_used", "capacity_bytes": "bytes_capacity",
          "data_bytes": "bytes_data"}


def populate(cli):
    cli("set", "a", "1")
    cli("set", "b", "2")
    cli("set", "c", "3", "--ttl", "60")
    cli("get", "a")
    cli("get", "a")
    cli("get", "zz")
    cli("del", "b")


def test_stats_table(cli):
    populate(cli)
    p = cli("stats")
    assert p.returncode == 0, p.err
    out = p.out
    assert f"segment '{cli.name}'" in out
    for label in ["hit rate", "hits", "misses", "sets", "deletes", "evictions", "expirations",
                  "entries", "bytes used", "bytes capacity", "bytes data", "lock recoveries",
                  "lock timeouts"]:
        assert any(line.startswith(label + " ") for line in out.splitlines()), label
    assert "66.67%" in out  # 2 hits, 1 miss
    line = lambda label: next(l for l in out.splitlines() if l.startswith(label + " "))
    assert line("sets").split()[-1] == "3"
    assert line("deletes").split()[-1] == "1"
    assert line("entries").split()[-1] == "2"


def test_stats_json(cli):
    populate(cli)
    j = json.loads(cli("stats", "--json").out)
    assert j["segment"] == cli.name
    assert (j["hits"], j["misses"], j["sets"], j["deletes"], j["entries"]) == (2, 1, 3, 1, 2)
    assert abs(j["hit_rate"] - 2 / 3) < 1e-9
    assert 0 < j["bytes_data"] <= j["bytes_used"] < j["bytes_capacity"]
    assert "stripes" not in j


def test_stats_per_stripe(cli):
    populate(cli)
    j = json.loads(cli("stats", "--json", "--per-stripe").out)
    assert len(j["stripes"]) == 64
    for field in ["sets", "deletes", "entries", "bytes_used"]:
        assert sum(s[field] for s in j["stripes"]) == j[field], field
    # Lookups are counted per process, so no stripe claims a share of them.
    assert all("hits" not in s and "misses" not in s for s in j["stripes"])
    p = cli("stats", "--per-stripe")
    assert p.returncode == 0
    table = p.out.split("\n\n")[1].splitlines()
    assert table[0].split()[0] == "stripe" and len(table) == 65


def test_stats_prometheus(cli):
    populate(cli)
    p = cli("stats", "--prometheus")
    assert p.returncode == 0, p.err
    families = {f.name: f for f in text_string_to_metric_families(p.out)}
    j = json.loads(cli("stats", "--json").out)
    for c in COUNTERS:
        f = families[f"shmcache_{c}"]  # the parser strips _total from a counter's family name
        assert f.type == "counter" and f.documentation
        (s,) = f.samples
        assert s.name == f"shmcache_{c}_total" and s.labels == {"segment": cli.name}
        expected = j[c] if c not in ("hits", "misses") else {"hits": 2, "misses": 1}[c]
        assert s.value == expected, c
    for name, field in GAUGES.items():
        f = families[f"shmcache_{name}"]
        assert f.type == "gauge" and f.documentation
        assert f.samples[0].value == j[field] and f.samples[0].labels == {"segment": cli.name}
    for name in ["shmcache_segment_size_bytes", "shmcache_max_value_bytes",
                 "shmcache_attached_handles", "shmcache_info"]:
        assert families[name].type == "gauge"
    assert families["shmcache_segment_size_bytes"].samples[0].value == 64 << 20
    info = families["shmcache_info"].samples[0]
    layout = json.loads(cli("info", "--json").out)["layout_version"]
    assert info.value == 1 and info.labels["layout_version"] == str(layout)
    assert info.labels["strategy"] == "W-TinyLFU"
    # every sample has HELP and TYPE lines
    names = [l.split()[2] for l in p.out.splitlines() if l.startswith("# TYPE")]
    assert len(names) == len(set(names)) == len(families)


def test_stats_watch(cli):
    populate(cli)
    p = cli("stats", "--watch", "0.2", "--count", "3")
    assert p.returncode == 0, p.err
    frames = p.out.split("\n\n")
    assert len(frames) == 3
    assert "per second" not in frames[0] and "per second" in frames[1]
    assert "\x1b" not in p.out  # no terminal codes into a pipe
    assert cli("stats", "--watch", "0", "--count", "1").returncode == 2
    assert cli("stats", "--count", "1").returncode == 2
    assert cli("stats", "--watch", "1", "--json").returncode == 2


def start_writers(cli, tmp_path, n=4):
    stop = tmp_path / "stop"
    writers = [cli.helper("write", f"w{i}", str(stop)) for i in range(n)]
    for w in writers:
        assert w.stdout.readline() == "ready\n"
    return stop, writers


def stop_writers(stop, writers):
    stop.touch()
    counts = []
    for w in writers:
        out, _ = w.communicate(timeout=60)
        assert w.returncode == 0
        counts.append(int(out.split()[-1]))
    return counts


def test_stats_and_purge_while_four_processes_write(cli, tmp_path):
    cli("set", "keep:1", "stays")
    cli("set", "keep:2", "stays")
    stop, writers = start_writers(cli, tmp_path)
    try:
        before = json.loads(cli("stats", "--json").out)
        time.sleep(0.3)
        # Prometheus output stays parseable while the counters move under it.
        prom = cli("stats", "--prometheus")
        assert prom.returncode == 0
        fams = {f.name: f for f in text_string_to_metric_families(prom.out)}
        assert fams["shmcache_sets"].samples[0].value > before["sets"]
        assert fams["shmcache_attached_handles"].samples[0].value == 4
        removed = []
        for _ in range(3):
            p = cli("purge", "w*")
            assert p.returncode == 0, p.err
            removed.append(int(p.out.split()[1]))
            time.sleep(0.1)
        after = json.loads(cli("stats", "--json").out)
        # The writers really were writing during the purges.
        assert after["sets"] > before["sets"]
        assert all(r > 0 for r in removed), removed
        assert after["attached_others"] == 4
        for w in writers:
            assert w.poll() is None, "a writer exited early"
    finally:
        counts = stop_writers(stop, writers)
    assert all(c > 0 for c in counts)
    final = json.loads(cli("stats", "--json").out)
    assert final["sets"] >= sum(counts) + 2 - final["lock_timeouts"]
    # After the writers stop, a purge leaves no match and nothing else is touched.
    p = cli("purge", "w*")
    assert p.returncode == 0
    assert cli("keys", "w*").out == ""
    assert sorted(cli("keys", "*").out.split()) == ["keep:1", "keep:2"]
    assert json.loads(cli("stats", "--json").out)["entries"] == 2
