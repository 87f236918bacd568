"""test_faithful_values.py - a hit returns what the miss returned: the same value, of the same type.

Each case is a function annotated with its return type, decorated with @cached, called twice (a
miss that computes, then a hit that decodes what was stored) through the async manager and the
sync one, with and without Redis (where the second call may be served from Redis: the value is
then dropped from L1 first). The hit must equal the miss's value with every type identical, all
the way down (a tuple is not a list, a datetime not a str, an IntEnum member not an int). Then
the cases that cannot round-trip: an unannotated tuple, int dict keys, a value that no longer fits
its annotation after a deploy changed it; and the wire format, which stays JSON for the CLI and
other languages.
"""
import dataclasses
import datetime
import decimal
import enum
import json
import subprocess
import typing
import uuid

import pydantic
import pytest

from shmc_test_support import cli_path, write_kept
from shmcache import CacheManager, SyncCacheManager


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass(frozen=True)
class Address:
    city: str
    since: datetime.date


@dataclasses.dataclass
class Profile:
    user_id: int
    name: str
    created: datetime.datetime
    address: Address
    tags: typing.Tuple[str, ...]
    level: Level


class Point(typing.NamedTuple):
    x: int
    y: float


class Order(pydantic.BaseModel):
    id: uuid.UUID
    total: decimal.Decimal
    placed: datetime.datetime
    color: Color
    items: typing.List[typing.Tuple[str, int]]


NOW = datetime.datetime(2026, 12, 4, 5, 30, 15, 123456, tzinfo=datetime.timezone.utc)
CASES = {
    "datetime": (datetime.datetime, NOW),
    "naive datetime": (datetime.datetime, datetime.datetime(2024, 2, 29, 23, 59, 59)),
    "date": (datetime.date, datetime.date(2024, 2, 29)),
    "time": (datetime.time, datetime.time(7, 8, 9, 10)),
    "timedelta": (datetime.timedelta, datetime.timedelta(days=-1, seconds=3, microseconds=7)),
    "uuid": (uuid.UUID, uuid.UUID("12345678-1234-5678-1234-567812345678")),
    "decimal": (decimal.Decimal, decimal.Decimal("12.3400")),
    "tuple": (typing.Tuple[int, str], (1, "a")),
    "variadic tuple": (typing.Tuple[float, ...], (1.5, 2.0, -0.25)),
    "set": (typing.Set[int], {3, 1, 2}),
    "frozenset": (typing.FrozenSet[str], frozenset({"a", "b"})),
    "enum": (Color, Color.BLUE),
    "int enum": (Level, Level.HIGH),
    "list of datetimes": (typing.List[datetime.datetime], [NOW, NOW.replace(year=2000)]),
    "dict with int keys": (typing.Dict[int, str], {1: "one", 2: "two"}),
    "optional date (None)": (typing.Optional[datetime.date], None),
    "optional date": (typing.Optional[datetime.date], datetime.date(1999, 12, 31)),
    "named tuple": (Point, Point(1, 2.5)),
    "dataclass": (Profile, Profile(7, "ada", NOW, Address("Paris", datetime.date(2020, 1, 1)),
                                   ("a", "b"), Level.LOW)),
    "pydantic model": (Order, Order(id=uuid.UUID(int=5), total=decimal.Decimal("9.99"),
                                    placed=NOW, color=Color.RED, items=[("pen", 2)])),
    "bytes": (bytes, b"\x00\xffraw"),
    "str": (str, "text é"),
    "json dict": (dict, {"a": [1, 2.5, None, True], "b": {"c": "d"}}),
}


def same(a, b):
    """Equal, with the same type at every level."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(
            same(k, next(k2 for k2 in b if k2 == k)) and same(v, b[k]) for k, v in a.items())
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if dataclasses.is_dataclass(a):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, pydantic.BaseModel):
        return all(same(getattr(a, f), getattr(b, f)) for f in a.__fields__)
    return a == b


def _annotated(fn, annotation):
    fn.__annotations__ = {"i": int, "return": annotation}
    return fn


def _drop_l1(cache_sync, key):
    """With Redis, serve the next call from Redis: drop this host's L1 copy."""
    if cache_sync.core.has_l2:
        cache_sync.delete(key, tier="l1")


@pytest.mark.parametrize("case", list(CASES))
def test_a_sync_hit_returns_what_the_miss_returned(config_for, case):
    annotation, value = CASES[case]
    calls = []
    with SyncCacheManager(config_for()) as cache:
        def compute(i):
            calls.append(i)
            return value

        f = cache.cached(ttl=60, key_prefix="v", cache_none=True)(_annotated(compute, annotation))
        first = f(1)
        _drop_l1(cache, f.cache_key(1))
        second = f(1)
        third = f(1)
        assert calls == [1], "the second and third calls must be hits"
        assert same(first, value)
        assert same(second, value), f"{case}: hit {second!r} is not the miss's {value!r}"
        assert same(third, value)


@pytest.mark.asyncio
@pytest.mark.parametrize("case", list(CASES))
async def test_an_async_hit_returns_what_the_miss_returned(config_for, case):
    annotation, value = CASES[case]
    calls = []
    async with CacheManager(config_for()) as cache:
        async def compute(i):
            calls.append(i)
            return value

        f = cache.cached(ttl=60, key_prefix="v", cache_none=True)(_annotated(compute, annotation))
        assert same(await f(1), value)
        _drop_l1(cache.sync, f.cache_key(1))
        second = await f(1)
        assert calls == [1]
        assert same(second, value), f"{case}: hit {second!r} is not the miss's {value!r}"


def test_a_result_that_would_come_back_different_raises_and_stores_nothing(config_for):
    with SyncCacheManager(config_for()) as cache:
        @cache.cached(ttl=60, key_prefix="pair")
        def pair(i):  # no annotation: a tuple would come back as a list
            return (i, i)

        with pytest.raises(TypeError, match=r"annotate the return type"):
            pair(1)
        assert not cache.exists(pair.cache_key(1))

        @cache.cached(ttl=60, key_prefix="ids")
        def by_id(i) -> dict:  # JSON turns int keys into strings
            return {i: "x"}

        with pytest.raises(TypeError, match="comes back"):
            by_id(1)
        assert not cache.exists(by_id.cache_key(1))

        @cache.cached(ttl=60, key_prefix="lvl")
        def level(i) -> int:  # an IntEnum member is not its int
            return Level.HIGH

        with pytest.raises(TypeError):
            level(1)


def test_an_annotation_that_cannot_be_rebuilt_is_refused_before_the_function_runs(config_for):
    class Opaque:
        pass

    calls = []
    with SyncCacheManager(config_for()) as cache:
        @cache.cached(ttl=60)  # refused at the first call: a pickling cache could take it
        def opaque(i) -> Opaque:
            calls.append(i)
            return Opaque()

        with pytest.raises(TypeError, match="Opaque"):
            opaque(1)
        assert calls == []


def test_a_stored_value_that_no_longer_fits_the_annotation_is_a_miss(config_for):
    with SyncCacheManager(config_for()) as cache:
        cache.set("deploy:1", {"user_id": "not an int at all", "extra": 1})

        @dataclasses.dataclass
        class User:
            user_id: int
            name: str

        calls = []

        @cache.cached(ttl=60, key_builder=lambda i: f"deploy:{i}")
        def user(i) -> User:
            calls.append(i)
            return User(i, "ada")

        assert user(1) == User(1, "ada") and calls == [1]  # the old value was not served
        assert user(1) == User(1, "ada") and calls == [1]  # and the new one replaced it
        assert cache.get_stats()["process"]["undecodable"] >= 1


def test_the_wire_format_stays_json_for_the_cli_and_other_readers(config_for, shm_name):
    with SyncCacheManager(config_for()) as cache:
        f = cache.cached(ttl=60, key_prefix="wire")(_annotated(lambda i: CASES["dataclass"][1],
                                                               Profile))
        # Kept in L1 (shmc_test_support.write_kept), where the CLI reads it below.
        write_kept(lambda: f(1), shm_name, f.cache_key(1).encode(),
                   undo=lambda: cache.delete(f.cache_key(1)))
        raw = cache.get(f.cache_key(1))  # the plain get: JSON, no reviver
        assert raw["created"] == NOW.isoformat() and raw["tags"] == ["a", "b"]
        out = subprocess.run([cli_path(), "--name", shm_name, "get", "--tier", "l1", f.cache_key(1)],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["address"]["city"] == "Paris"


def test_a_plain_get_and_the_decorator_on_one_key_each_get_their_own_type(config_for):
    with SyncCacheManager(config_for()) as cache:
        f = cache.cached(ttl=60, key_prefix="mix")(_annotated(lambda i: (i, "a"),
                                                              typing.Tuple[int, str]))
        assert f(1) == (1, "a")
        key = f.cache_key(1)
        assert cache.get(key) == [1, "a"]  # what JSON holds
        assert f(1) == (1, "a") and type(f(1)) is tuple  # the local copy keeps them apart
        assert cache.get(key) == [1, "a"] and type(cache.get(key)) is list


def test_user_code_that_uses_the_cache_while_a_value_is_rebuilt_changes_nothing(config_for):
    """A reviver runs user code (here a dataclass's __post_init__) that reads and writes other
    keys on the same thread, through the same per-thread buffer: the value being rebuilt, and
    the decoded copy kept for the next hit, are still the key's own."""
    with SyncCacheManager(config_for()) as cache:
        cache.set("other", {"payload": "o" * 300})

        @dataclasses.dataclass
        class Nosy:
            n: int
            text: str

            def __post_init__(self):
                assert cache.get("other") == {"payload": "o" * 300}
                cache.set("other2", {"payload": "p" * 500})

        f = cache.cached(ttl=60, key_prefix="nosy")(_annotated(
            lambda i: Nosy(i, "mine" * 20), Nosy))
        assert f(1) == Nosy(1, "mine" * 20)
        cache.delete(f.cache_key(1), tier="l1") if cache.core.has_l2 else None
        for _ in range(3):
            assert f(1) == Nosy(1, "mine" * 20)


def test_json_nested_too_deep_is_a_miss_not_an_error(config_for):
    with SyncCacheManager(config_for()) as cache:
        # The key exists; now store JSON no decoder can follow. (Through write_kept,
        # shmc_test_support: its own echo, applied late, would drop what is stored below.)
        write_kept(lambda: cache.set("deep", b""), cache.config.shm_name, b"deep")
        from shmcache import _segment
        raw = _segment.encode(1, b"[" * 20_000 + b"]" * 20_000)  # SER_JSON, far too deep
        assert cache.core.segment().store(cache.core.stored_key("deep"), raw, len(raw), 60_000,
                                          60_000, 1) == 0
        assert cache.get("deep", "absent") == "absent"
        assert cache.get_stats()["process"]["bad_envelopes"] >= 1
