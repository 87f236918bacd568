"""info, check, destroy, and the segment-level failures: missing segment, version mismatch,
usage errors, --help."""
import re
import json
import os
import signal
import struct
import time

import pytest

READ_VERBS = [["stats"], ["get", "k"], ["del", "k"], ["ttl", "k"], ["keys", "*"],
              ["purge", "*"], ["check"], ["info"]]
ALL_VERBS = ["stats", "get", "set", "del", "ttl", "keys", "purge", "check", "info", "destroy",
             "warm"]


def test_info(cli):
    cli("set", "k", "v", "--size-mb", "8", "--stripes", "16")
    p = cli("info")
    assert p.returncode == 0, p.err
    for label in ["layout version", "library version", "stripes", "capacity", "max value",
                  "strategy", "owner", "attached", "creator pid", "created"]:
        assert label in p.out
    assert "mode 0600" in p.out and "W-TinyLFU" in p.out
    j = json.loads(cli("info", "--json").out)
    # The layout version changes with the segment format; text and JSON must agree on it.
    assert j["name"] == cli.name and j["layout_version"] >= 1
    assert f"layout version   {j['layout_version']}\n" in p.out
    assert j["size_bytes"] == 8 << 20 and j["n_stripes"] == 16
    assert j["owner_uid"] == os.getuid() and j["mode"] == "0600"
    assert j["attached_others"] == 0 and j["strategy"] == "W-TinyLFU"
    assert 0 < j["max_value_len"] <= 8 << 20
    holder = cli.helper("hold")
    try:
        assert holder.stdout.readline() == "attached\n"
        assert json.loads(cli("info", "--json").out)["attached_others"] == 1
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_check(cli):
    cli("set", "k", "v")
    p = cli("check")
    assert p.returncode == 0 and "result: clean" in p.out
    j = json.loads(cli("check", "--json").out)
    assert j["result"] == "clean" and j["stripes_checked"] == 64 and j["entries_checked"] == 1


def test_check_repairs_damage(cli):
    # Fill a small single-stripe segment, then scribble over its data blocks: check must report
    # the damage and rebuild the stripe (exit 0: nothing is left damaged).
    cli("set", "seed", "x", "--size-mb", "1", "--stripes", "1")
    lines = "".join(json.dumps({"key": f"k{i}", "text": "v" * 100}) + "\n" for i in range(500))
    assert cli("warm", input=lines).returncode == 0
    path = f"/dev/shm/{cli.name}"
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        f.seek(size // 2)
        f.write(b"\xa5" * 8192)
    p = cli("check")
    assert p.returncode == 0, p.out + p.err
    assert "result: repaired" in p.out or "result: clean" in p.out
    j = json.loads(cli("check", "--json").out)
    assert j["result"] == "clean"


def test_destroy(cli):
    cli("set", "k", "v")
    holder = cli.helper("hold")
    try:
        assert holder.stdout.readline() == "attached\n"
        p = cli("destroy")
        assert p.returncode == 7 and "in use by 1 other process" in p.err and "--force" in p.err
        assert os.path.exists(f"/dev/shm/{cli.name}")
        p = cli("destroy", "--force")
        assert p.returncode == 0 and "destroyed" in p.out
        assert "1 handle(s) were still attached" in p.out
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert not os.path.exists(f"/dev/shm/{cli.name}")
    p = cli("destroy")
    assert p.returncode == 3 and "no segment named" in p.err
    cli("set", "k", "v")
    p = cli("destroy")
    assert p.returncode == 0


@pytest.mark.parametrize("argv", READ_VERBS)
def test_missing_segment(cli, argv):
    p = cli(*argv)
    assert p.returncode == 3, p.err
    assert f"no segment named '{cli.name}'" in p.err and f"/dev/shm/{cli.name}" in p.err
    assert not os.path.exists(f"/dev/shm/{cli.name}")  # reading never creates it


def test_name_from_environment(cli):
    cli("set", "k", "from-env-test")
    p = cli("get", "k", name=False, env={"SHMCACHE_NAME": cli.name})
    assert p.returncode == 0 and p.out == "from-env-test\n"
    # --name may also follow the verb
    p = cli("get", "k", "--name", cli.name, name=False)
    assert p.out == "from-env-test\n"


def corrupt_layout_version(name, version=999):
    # SegmentHeader (shm/layout.h): u64 magic, then u32 layout_version at offset 8.
    with open(f"/dev/shm/{name}", "r+b") as f:
        f.seek(8)
        f.write(struct.pack("<I", version))


@pytest.mark.parametrize("argv", READ_VERBS + [["set", "k", "v"], ["warm"]])
def test_version_mismatch(cli, argv):
    cli("set", "k", "v")
    corrupt_layout_version(cli.name)
    p = cli(*argv, input="")
    assert p.returncode == 4, p.err
    assert "layout version 999" in p.err and re.search(r"uses layout version \d+", p.err)
    assert "destroy --force" in p.err


def test_version_mismatch_destroy(cli):
    cli("set", "k", "v")
    corrupt_layout_version(cli.name)
    p = cli("destroy")
    assert p.returncode == 4 and "--force" in p.err
    p = cli("destroy", "--force")
    assert p.returncode == 0
    assert cli("stats").returncode == 3


def test_usage_errors(cli):
    assert cli(name=False).returncode == 2
    assert cli("frobnicate").returncode == 2
    assert cli("stats", "--bogus").returncode == 2
    assert cli("stats", "--json", "--prometheus").returncode == 2
    assert cli("keys").returncode == 2
    assert cli("get", "k", "--name", "").returncode == 2
    cli("set", "k", "v")
    p = cli("keys", "[abc")
    assert p.returncode == 2 and "bad pattern" in p.err
    p = cli("purge", "abc\\")
    assert p.returncode == 2 and "bad pattern" in p.err


def test_help_everywhere(cli):
    p = cli("--help", name=False)
    assert p.returncode == 0 and "Exit codes:" in p.out
    for code in range(8):
        assert f"\n  {code}  " in p.out
    for verb in ALL_VERBS:
        p = cli(verb, "--help", name=False)
        assert p.returncode == 0 and "Exit codes:" in p.out, verb
    p = cli("--version", name=False)
    assert p.returncode == 0 and "libshmcache" in p.out


def test_lock_timeout(cli):
    # One stripe, and a writer that spends most of its time inside shmc_set copying a large
    # value: stopped (SIGSTOP) at a random instant, it usually holds the only stripe lock, and
    # the CLI must give up after the lock timeout with status 6 instead of hanging.
    cli("set", "k", "v", "--size-mb", "4", "--stripes", "1")
    writer = cli.helper("hammer", "big", str(512 * 1024))
    try:
        assert writer.stdout.readline() == "ready\n"
        for _ in range(100):
            time.sleep(0.01)
            writer.send_signal(signal.SIGSTOP)
            p = cli("get", "k", timeout=10)
            writer.send_signal(signal.SIGCONT)
            if p.returncode == 6:
                assert "lock was not granted in time" in p.err
                break
            assert p.returncode == 0 and p.out == "v\n"
        else:
            raise AssertionError("the stopped writer never held the lock in 100 tries")
    finally:
        writer.kill()
        writer.wait(timeout=30)
    assert cli("get", "k").out == "v\n"
    assert json.loads(cli("stats", "--json").out)["lock_timeouts"] >= 1
