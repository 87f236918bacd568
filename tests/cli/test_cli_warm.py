"""warm: JSON Lines records into the cache, then read back by another process."""
import base64
import json
import os
import re

import shmc_ctypes as shmc


def jl(*records):
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


def summary(out):
    m = re.search(r"warm: ([\d,]+) written, ([\d,]+) skipped, ([\d,]+) lines read", out)
    assert m, out
    return tuple(int(g.replace(",", "")) for g in m.groups())


def payload(rec):
    return base64.b64decode(rec["payload_b64"])


def test_warm_file_good_and_bad_lines(cli, tmp_path):
    blob = os.urandom(300)
    big_key = "k" * 4097
    text = jl(
        {"key": "j1", "value": {"name": "Ada", "tags": [1, 2.5, "x"], "z": None}, "ttl": 60},
        {"key": "b1", "value_b64": base64.b64encode(blob).decode()},
        {"key": "t1", "text": "héllo\nworld"},
        "",
        "   ",
        "not json",                                               # line 6
        {"key": "", "value": 1},                                  # 7
        {"key": 5, "value": 1},                                   # 8
        {"value": 1},                                             # 9
        {"key": big_key, "value": 1},                             # 10
        {"key": "both", "value": 1, "text": "x"},                 # 11
        {"key": "neither", "ttl": 5},                             # 12
        {"key": "badb64", "value_b64": "AAE*"},                   # 13
        {"key": "negttl", "value": 1, "ttl": -3},                 # 14
        {"key": "strttl", "value": 1, "ttl": "60"},               # 15
        [1, 2],                                                   # 16
        {"key": "j2", "value": [1, 2, 3], "ttl": 0},              # 17
        {"key": "j3", "value": "plain string"},                   # 18
        {"key": "ordered", "value": {"b": 1, "a": 2}},            # 19
    )
    f = tmp_path / "warm.jsonl"
    f.write_text(text)
    p = cli("warm", str(f), "--ttl", "120")
    assert p.returncode == 1, p.err
    assert summary(p.out) == (6, 11, 19)
    bad = {int(m.group(1)): m.group(2) for m in re.finditer(r"^line (\d+): (.*)$", p.err, re.M)}
    assert sorted(bad) == list(range(6, 17))
    assert "invalid JSON" in bad[6]
    assert "empty" in bad[7]
    assert "not a string" in bad[8]
    assert "no \"key\"" in bad[9]
    assert "4097 bytes" in bad[10]
    assert "exactly one" in bad[11]
    assert "no value" in bad[12]
    assert "base64" in bad[13]
    assert "negative" in bad[14]
    assert "number" in bad[15]
    assert "not a JSON object" in bad[16]

    # Another process reads exactly what was warmed.
    d = cli.dump("j1", "b1", "t1", "j2", "j3", "ordered", "both", "negttl")
    assert d["j1"]["serializer"] == shmc.SER_JSON
    assert json.loads(payload(d["j1"])) == {"name": "Ada", "tags": [1, 2.5, "x"], "z": None}
    assert payload(d["j1"]) == b'{"name":"Ada","tags":[1,2.5,"x"],"z":null}'  # compact
    assert 0 < d["j1"]["ttl_left_ms"] <= 60000
    assert d["b1"]["serializer"] == shmc.SER_RAW and payload(d["b1"]) == blob
    assert 60000 < d["b1"]["ttl_left_ms"] <= 120000  # --ttl default for records without one
    assert d["t1"]["serializer"] == shmc.SER_STR
    assert payload(d["t1"]).decode() == "héllo\nworld"
    assert d["j2"]["ttl_left_ms"] == -1  # "ttl": 0 is never expires, not the default
    assert payload(d["j2"]) == b"[1,2,3]"
    assert payload(d["j3"]) == b'"plain string"'
    assert payload(d["ordered"]) == b'{"b":1,"a":2}'  # member order kept
    assert d["both"].get("missing") and d["negttl"].get("missing")

    # And the CLI shows the same values.
    assert cli("get", "j3").out == '"plain string"\n'
    assert cli("get", "b1").stdout == blob


def test_warm_strict_and_batches(cli, tmp_path):
    records = [{"key": f"k{i}", "value": i} for i in range(1, 11)]
    records[6] = "{broken"  # line 7
    f = tmp_path / "w.jsonl"
    f.write_text(jl(*records))
    # Batches of 3: lines 1-3 and 4-6 are written; line 7 stops the run, and nothing of its
    # batch (lines 7-9) nor anything after it is written.
    p = cli("warm", str(f), "--strict", "--batch-size", "3")
    assert p.returncode == 1
    assert summary(p.out) == (6, 1, 7)
    assert "stopped at line 7 (--strict)" in p.out and "line 7: invalid JSON" in p.err
    present = set(cli("keys", "*").out.split())
    assert present == {f"k{i}" for i in range(1, 7)}


def test_warm_strict_bad_line_mid_batch(cli, tmp_path):
    records = [{"key": f"k{i}", "value": i} for i in range(1, 9)]
    records[4] = {"key": "k5"}  # line 5: no value
    f = tmp_path / "w.jsonl"
    f.write_text(jl(*records))
    # Batch of 4: lines 1-4 written; lines 5.. are in the batch with the bad line: none written.
    p = cli("warm", str(f), "--strict", "--batch-size", "4")
    assert p.returncode == 1 and summary(p.out) == (4, 1, 5)
    assert set(cli("keys", "*").out.split()) == {"k1", "k2", "k3", "k4"}
    # Without --strict the same file writes every good line.
    p = cli("warm", str(f), "--batch-size", "4")
    assert p.returncode == 1 and summary(p.out) == (7, 1, 8)
    assert len(cli("keys", "*").out.split()) == 7


def test_warm_stdin_and_empty(cli):
    p = cli("warm", input=jl({"key": "a", "text": "A"}, {"key": "b", "text": "B"}))
    assert p.returncode == 0 and summary(p.out) == (2, 0, 2)
    assert "created segment" in p.err
    p = cli("warm", "-", input=jl({"key": "c", "text": "C"}))
    assert p.returncode == 0 and summary(p.out) == (1, 0, 1)
    p = cli("warm", input="")
    assert p.returncode == 0 and summary(p.out) == (0, 0, 0)
    p = cli("warm", input="\n\n  \n")
    assert p.returncode == 0 and summary(p.out) == (0, 0, 3)
    p = cli("warm", input='{"key": "crlf", "text": "x"}\r\n')
    assert p.returncode == 0 and cli("get", "crlf").out == "x\n"
    assert cli("get", "b").out == "B\n"


def test_warm_missing_file(cli, tmp_path):
    p = cli("warm", str(tmp_path / "nope.jsonl"))
    assert p.returncode == 2 and "cannot open" in p.err


def test_warm_value_over_max_value_len(cli):
    p = cli("warm", "--size-mb", "1", "--stripes", "1", input="")
    assert p.returncode == 0
    limit = json.loads(cli("info", "--json").out)["max_value_len"]
    blob = os.urandom(limit)  # random: does not compress, and the envelope adds 2 bytes
    p = cli("warm", input=jl({"key": "big", "value_b64": base64.b64encode(blob).decode()},
                             {"key": "ok", "value_b64": base64.b64encode(blob[:100]).decode()},
                             {"key": "zip", "text": "a" * limit}))
    assert p.returncode == 1 and summary(p.out) == (2, 1, 3)
    assert re.search(r"line 1: value is \d+ bytes once encoded .* max_value_len", p.err)
    d = cli.dump("big", "ok", "zip")
    assert d["big"].get("missing")
    assert payload(d["ok"]) == blob[:100]
    assert d["zip"]["compressed"] and payload(d["zip"]) == b"a" * limit


def test_warm_compression_threshold(cli):
    recs = jl({"key": "long", "text": "abc" * 2000}, {"key": "short", "text": "abc" * 10})
    assert cli("warm", input=recs).returncode == 0
    d = cli.dump("long", "short")
    assert d["long"]["compressed"] and not d["short"]["compressed"]
    assert payload(d["long"]) == b"abc" * 2000
    assert cli("warm", "--compress-threshold", "0", input=recs).returncode == 0
    assert not cli.dump("long")["long"]["compressed"]


def test_warm_many_records_read_back(cli, tmp_path):
    n = 20000
    f = tmp_path / "many.jsonl"
    f.write_text(jl(*({"key": f"user:{i}", "value": {"id": i, "name": f"user {i}"}}
                      for i in range(n))))
    p = cli("warm", str(f), "--batch-size", "500")
    assert p.returncode == 0 and summary(p.out) == (n, 0, n)
    assert "\r" not in p.err  # no progress bar when stderr is not a terminal
    keys = [f"user:{i}" for i in range(0, n, 997)]
    d = cli.dump(*keys)
    for k in keys:
        i = int(k.split(":")[1])
        assert json.loads(payload(d[k])) == {"id": i, "name": f"user {i}"}
    assert json.loads(cli("stats", "--json").out)["entries"] == n
