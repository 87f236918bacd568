"""get, set, del, ttl: values through the envelope, exit codes, and what other processes see."""
import base64
import json
import time

import shmc_ctypes as shmc


def test_set_get_text_and_json(cli):
    p = cli("set", "user:1", "Ada Lovelace")
    assert p.returncode == 0, p.err
    assert "created segment" in p.err
    assert "stored user:1 (str" in p.out
    p = cli("get", "user:1")
    assert p.returncode == 0 and p.out == "Ada Lovelace\n"

    p = cli("set", "user:2", '{"name": "Bob", "tags": [1, 2]}', "--json")
    assert p.returncode == 0, p.err
    assert cli("get", "user:2").out == '{"name": "Bob", "tags": [1, 2]}\n'

    # Another process decodes exactly what was stored, with the serializer ids of shmcache.h.
    d = cli.dump("user:1", "user:2")
    assert d["user:1"]["serializer"] == shmc.SER_STR
    assert base64.b64decode(d["user:1"]["payload_b64"]) == b"Ada Lovelace"
    assert d["user:2"]["serializer"] == shmc.SER_JSON
    assert json.loads(base64.b64decode(d["user:2"]["payload_b64"])) == {"name": "Bob",
                                                                         "tags": [1, 2]}


def test_set_rejects_bad_input(cli):
    cli("set", "k", "v")
    p = cli("set", "k", "{not json", "--json")
    assert p.returncode == 2 and "not valid JSON" in p.err
    p = cli("set", "k", b"\xff\xfe")
    assert p.returncode == 2 and "UTF-8" in p.err
    p = cli("set", "x" * 4097, "v")
    assert p.returncode == 2 and "4096" in p.err
    p = cli("set", "k", "v", "--ttl", "-1")
    assert p.returncode == 2
    p = cli("set", "k")
    assert p.returncode == 2
    assert cli("get", "k").out == "v\n"  # nothing above replaced it


def test_value_over_max_value_len(cli):
    # 1 MiB in 16 stripes: values up to a few tens of KiB (an argument can hold 128 KiB).
    p = cli("set", "small", "x", "--size-mb", "1", "--stripes", "16")
    assert p.returncode == 0, p.err
    info = json.loads(cli("info", "--json").out)
    assert info["size_bytes"] == 1 << 20 and info["n_stripes"] == 16
    assert info["max_value_len"] < 100000
    big = "y" * (info["max_value_len"] + 1)
    p = cli("set", "big", big, "--compress-threshold", "0")
    assert p.returncode == 2 and "max_value_len" in p.err
    # Compressed, the same value fits.
    p = cli("set", "big", big)
    assert p.returncode == 0, p.err
    assert cli("get", "big").out == big + "\n"
    # Geometry options on an existing segment are ignored, with a note.
    p = cli("set", "small", "x", "--size-mb", "8")
    assert p.returncode == 0 and "apply only when creating" in p.err


def test_compression_threshold(cli):
    value = "abc" * 1000
    cli("set", "z", value)
    cli("set", "plain", value, "--compress-threshold", "0")
    d = cli.dump("z", "plain")
    assert d["z"]["compressed"] and not d["plain"]["compressed"]
    assert cli("get", "z").out == value + "\n"
    raw = cli("get", "z", "--raw").stdout
    assert raw[0] == 0xC5 and raw[1] == (0x10 | shmc.SER_STR) and len(raw) < len(value)


def test_get_missing_and_raw(cli):
    cli("set", "k", "hello")
    p = cli("get", "nope")
    assert p.returncode == 1 and "not found: nope" in p.err and p.stdout == b""
    p = cli("get", "k", "--raw")
    assert p.returncode == 0 and p.stdout == bytes([0xC5, shmc.SER_STR]) + b"hello"


def test_get_other_serializers_and_foreign_values(cli):
    cli("set", "k", "v")
    c = shmc.Cache(cli.name)
    try:
        raw = bytes(range(256))
        c.set(b"bin", c.encode(shmc.SER_RAW, raw))
        c.set(b"pk", c.encode(shmc.SER_PICKLE, b"\x80\x04K\x01."))
        c.set(b"mp", c.encode(shmc.SER_MSGPACK, b"\x93\x01\x02\x03"))
        c.set(b"foreign", b"not an envelope\x00")
    finally:
        c.close()
    # Raw bytes go to a pipe exactly as stored (stdout is not a terminal here).
    p = cli("get", "bin")
    assert p.returncode == 0 and p.stdout == raw
    assert cli("get", "pk").out == "<pickle, 5 bytes>\n"
    assert cli("get", "mp").out == "<msgpack, 4 bytes>\n"
    assert cli("get", "pk", "--raw").stdout[:2] == bytes([0xC5, shmc.SER_PICKLE])
    p = cli("get", "foreign")
    assert p.returncode == 0 and p.stdout == b"not an envelope\x00"
    assert "not in the shmcache value envelope" in p.err


def test_del(cli):
    cli("set", "k", "v")
    p = cli("del", "k")
    assert p.returncode == 0 and "deleted k" in p.out
    p = cli("del", "k")
    assert p.returncode == 1 and "not found" in p.err
    assert cli("get", "k").returncode == 1


def test_ttl(cli):
    cli("set", "forever", "v")
    cli("set", "minute", "v", "--ttl", "60")
    cli("set", "short", "v", "--ttl", "0.3")
    p = cli("ttl", "forever")
    assert p.returncode == 0 and p.out == "no expiry\n"
    p = cli("ttl", "minute")
    assert p.returncode == 0 and 58 <= int(p.out) <= 60
    p = cli("ttl", "minute", "--ms")
    assert 55000 < int(p.out) <= 60000
    p = cli("ttl", "absent")
    assert p.returncode == 1 and "not found" in p.err
    time.sleep(0.4)
    assert cli("ttl", "short").returncode == 1
    assert cli("get", "short").returncode == 1
    # ttl reads the TTL without counting a lookup.
    stats = json.loads(cli("stats", "--json").out)
    cli("ttl", "minute")
    assert json.loads(cli("stats", "--json").out)["hits"] == stats["hits"]


def test_keys_starting_with_dash_and_binary_keys(cli):
    assert cli("set", "--", "-k", "-v").returncode == 0
    assert cli("get", "--", "-k").out == "-v\n"
    assert cli("set", "line\nbreak", "v").returncode == 0
    # keys are listed one per line, escaped
    assert cli("keys", "line*").out == "line\\nbreak\n"
