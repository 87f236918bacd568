"""test_serialization.py - values: what each serializer writes, the conversions, and pickle
safety (a JSON reader never unpickles; a signed pickle is verified before it is loaded), both
in the codec and through a real segment shared by two managers."""
import datetime
import decimal
import enum
import hashlib
import hmac
import os
import pickle
import uuid

import pytest

from shmcache import CacheConfig, SyncCacheManager, _ffi, _segment
from shmcache.serialization import Codec, UndecodableValue
from shmc_test_support import RawSegment

SECRET = b"0123456789abcdef-test-secret"


class Level(enum.Enum):
    LOW = 1


def test_text_and_bytes_keep_their_own_serializer_ids_with_every_codec():
    for codec in (Codec("json"), Codec("msgpack"), Codec("pickle", SECRET)):
        assert codec.dumps("héllo") == (_ffi.SER_STR, "héllo".encode())
        assert codec.dumps(b"\x00\xff") == (_ffi.SER_RAW, b"\x00\xff")
        assert codec.dumps(bytearray(b"ab")) == (_ffi.SER_RAW, b"ab")
        assert codec.loads(*codec.dumps("héllo")) == "héllo"


def test_json_is_compact_utf8_and_converts_the_usual_types():
    c = Codec("json")
    ser, payload = c.dumps({"b": [1, 2.5, None, True], "name": "zoë"})
    assert ser == _ffi.SER_JSON and payload == '{"b":[1,2.5,null,true],"name":"zoë"}'.encode()
    when = datetime.datetime(2024, 10, 1, 12, 30, tzinfo=datetime.timezone.utc)
    uid = uuid.UUID(int=5)
    got = c.loads(*c.dumps({"when": when, "day": when.date(), "id": uid,
                            "price": decimal.Decimal("1.10"), "tags": {"b", "a"},
                            "level": Level.LOW}))
    assert got == {"when": "2024-10-01T12:30:00+00:00", "day": "2024-10-01",
                   "id": str(uid), "price": "1.10", "tags": ["a", "b"], "level": 1}


def test_json_refuses_what_it_cannot_represent():
    c = Codec("json")
    with pytest.raises(TypeError, match="cannot be stored as JSON"):
        c.dumps({"x": object()})
    with pytest.raises(TypeError, match="bytes inside a JSON value"):
        c.dumps({"x": b"raw"})
    with pytest.raises(ValueError):
        c.dumps({"x": float("nan")})  # not JSON; other readers would refuse it


def test_pydantic_models_are_stored_as_their_fields():
    pydantic = pytest.importorskip("pydantic")

    class User(pydantic.BaseModel):
        id: int
        name: str

    c = Codec("json")
    assert c.loads(*c.dumps(User(id=1, name="a"))) == {"id": 1, "name": "a"}


def test_msgpack_round_trip():
    c = Codec("msgpack")
    value = {"a": [1, 2, {"b": None}], "c": 1.5, 3: "int key"}
    ser, payload = c.dumps(value)
    assert ser == _ffi.SER_MSGPACK
    assert c.loads(ser, payload) == value
    # A JSON reader decodes msgpack too: it is safe to parse.
    assert Codec("json").loads(ser, payload) == value


def test_pickle_round_trips_exact_types_and_is_signed():
    c = Codec("pickle", SECRET)
    value = {"when": datetime.date(2024, 1, 2), "s": {1, 2}, "t": (1, "x")}
    ser, payload = c.dumps(value)
    assert ser == _ffi.SER_PICKLE
    sig, data = payload[:32], payload[32:]
    assert sig == hmac.new(SECRET, data, hashlib.sha256).digest()
    assert c.loads(ser, payload) == value


class Boom:
    """Unpickling this runs a command: what an attacker with write access would store."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_a_json_reader_never_unpickles(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Boom(marker))
    signed = hmac.new(SECRET, payload, hashlib.sha256).digest() + payload
    for codec in (Codec("json"), Codec("msgpack")):
        for data in (payload, signed):
            with pytest.raises(UndecodableValue) as e:
                codec.loads(_ffi.SER_PICKLE, data)
            assert e.value.reason == "unsigned-pickle"
    assert not marker.exists()


def test_a_tampered_or_foreign_pickle_is_rejected_before_loading(tmp_path):
    marker = tmp_path / "pwned"
    c = Codec("pickle", SECRET)
    _, good = c.dumps({"balance": 10})
    tampered = good[:-3] + b"X" + good[-2:]
    evil = pickle.dumps(Boom(marker))
    wrong_key = hmac.new(b"another-secret-entirely", evil, hashlib.sha256).digest() + evil
    for data in (tampered, wrong_key, evil, b"short"):
        with pytest.raises(UndecodableValue) as e:
            c.loads(_ffi.SER_PICKLE, data)
        assert e.value.reason == "bad-signature"
    assert not marker.exists()


def test_damaged_payloads_are_reported_as_damaged():
    c = Codec("json")
    for ser, data in ((_ffi.SER_JSON, b"{not json"), (_ffi.SER_STR, b"\xff\xfe"),
                      (_ffi.SER_JSON, b"\xff")):
        with pytest.raises(UndecodableValue) as e:
            c.loads(ser, data)
        assert e.value.reason == "damaged"
    with pytest.raises(UndecodableValue) as e:
        c.loads(9, b"x")
    assert e.value.reason == "unsupported"


def test_through_the_segment_a_json_reader_misses_a_pickle_and_counts_it(shm_name, tmp_path):
    marker = tmp_path / "pwned"
    base = dict(shm_name=shm_name, shm_size=4 << 20, enable_monitoring=False)
    with SyncCacheManager(CacheConfig(serializer="pickle", pickle_secret=SECRET, **base)) as w, \
            SyncCacheManager(CacheConfig(**base)) as r:
        assert w.set("obj", Boom(marker)) is True  # pickling Boom is harmless; loading is not
        assert w.set("ok", {"n": 1}) is True
        assert r.get("obj", "default") == "default"
        assert r.get("ok") is None  # also a pickle: this reader does not trust pickle at all
        assert not marker.exists()
        assert r.get_stats()["process"]["rejected_pickles"] == 2
        assert r.exists("obj")  # refused, not deleted: a pickle-enabled reader may want it
        # The writer (same secret) reads its own values back.
        assert w.get("ok") == {"n": 1}


def test_through_the_segment_a_tampered_pickle_is_a_miss(shm_name, tmp_path):
    marker = tmp_path / "pwned"
    cfg = CacheConfig(shm_name=shm_name, shm_size=4 << 20, enable_monitoring=False,
                      serializer="pickle", pickle_secret=SECRET)
    with SyncCacheManager(cfg) as cache:
        evil = pickle.dumps(Boom(marker))
        forged = hmac.new(b"guessed-secret--", evil, hashlib.sha256).digest() + evil
        with RawSegment(shm_name) as raw:
            assert raw.set(b"acct", _segment.encode(_ffi.SER_PICKLE, forged)) == 0
        assert cache.get("acct", "miss") == "miss"
        assert not marker.exists()
        assert cache.get_stats()["process"]["bad_signatures"] == 1
