"""keys and purge: patterns, limits, dry runs."""
import json


def fill(cli, n=30):
    lines = "".join(json.dumps({"key": f"user:{i}", "value": i}) + "\n" for i in range(n))
    lines += "".join(json.dumps({"key": f"item:{i}", "text": "x"}) + "\n" for i in range(5))
    assert cli("warm", input=lines).returncode == 0


def test_keys(cli):
    fill(cli)
    p = cli("keys", "user:*")
    assert p.returncode == 0
    assert sorted(p.out.split()) == sorted(f"user:{i}" for i in range(30))
    assert sorted(cli("keys", "user:1?").out.split()) == [f"user:1{i}" for i in range(10)]
    assert sorted(cli("keys", "user:[12]").out.split()) == ["user:1", "user:2"]
    assert cli("keys", "nothing*").out == ""
    p = cli("keys", "*", "--limit", "7")
    assert p.returncode == 0 and len(p.out.split()) == 7 and "limit of 7" in p.err
    p = cli("keys", "*", "--limit", "35")
    assert len(p.out.split()) == 35 and p.err == ""
    p = cli("keys", "*", "--limit", "0")
    assert len(p.out.split()) == 35 and p.err == ""
    p = cli("keys", "item:*", "--long")
    lines = p.out.splitlines()
    assert lines[0].split() == ["bytes", "ttl", "key"] and len(lines) == 6
    assert lines[1].split()[:2] == ["3", "-"]


def test_keys_default_limit(cli):
    lines = "".join(json.dumps({"key": f"k{i}", "value": i}) + "\n" for i in range(1100))
    assert cli("warm", input=lines).returncode == 0
    p = cli("keys", "*")
    assert len(p.out.split()) == 1000 and "limit of 1000" in p.err


def test_purge(cli):
    fill(cli)
    p = cli("purge", "user:1*", "--dry-run")
    assert p.returncode == 0
    listed = p.out.splitlines()[:-1]
    assert sorted(listed) == sorted(["user:1"] + [f"user:1{i}" for i in range(10)])
    assert p.out.splitlines()[-1].startswith("dry run: 11 keys match")
    assert len(cli("keys", "user:*").out.split()) == 30  # nothing removed
    p = cli("purge", "user:1*")
    assert p.returncode == 0 and p.out == "removed 11 keys matching 'user:1*'\n"
    assert len(cli("keys", "user:*").out.split()) == 19
    assert cli("purge", "user:1*").out.startswith("removed 0 keys")
    j = json.loads(cli("stats", "--json").out)
    assert j["deletes"] == 11 and j["entries"] == 24
    p = cli("purge", "*")
    assert p.out.startswith("removed 24 keys")
