"""test_returns.py - a cache hit returns what the miss returned: Returns rebuilds values from
their JSON (or msgpack) form by the function's return annotation, and check() refuses results
that would not come back the same (type-exactly, recursively)."""
import collections
import dataclasses
import datetime as dt
import decimal
import enum
import typing
import uuid
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, NamedTuple, NewType, Optional, TypedDict, Union

import pydantic
import pytest

from shmcache._returns import Returns
from shmcache.serialization import Codec

SECRET = b"0123456789abcdef-test-secret"
UTC = dt.timezone.utc
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))


# ---- types used below ---------------------------------------------------------------------------
class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Prio(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Mode(enum.StrEnum):
    READ = "r"
    WRITE = "w"


class Perm(enum.Flag):
    R = 1
    W = 2
    X = 4


class Pair(enum.Enum):  # values that are not scalars
    A = (1, 2)
    B = (3, 4)


@dataclasses.dataclass
class Address:
    city: str
    since: dt.date


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


@dataclasses.dataclass
class User:
    id: uuid.UUID
    name: str
    address: Address
    tags: set[str]
    location: tuple[float, float]
    points: list[Point]
    prio: Prio = Prio.LOW
    seen: Optional[dt.datetime] = None
    extra: dict[int, str] = dataclasses.field(default_factory=dict)
    label: str = dataclasses.field(init=False, default="")

    def __post_init__(self):
        self.label = f"{self.name}@{self.address.city}"


T = typing.TypeVar("T")


@dataclasses.dataclass
class Box(typing.Generic[T]):
    item: T
    items: list[T]


@dataclasses.dataclass
class Tree:
    value: int
    children: list["Tree"]


class Span(NamedTuple):
    start: dt.datetime
    length: dt.timedelta
    note: str = ""


PlainPair = collections.namedtuple("PlainPair", "a b")


class Event(TypedDict):
    when: dt.datetime
    what: str
    tags: frozenset[str]


class Counts(TypedDict):
    a: int
    b: list[str]


class Item(pydantic.BaseModel):
    sku: str
    price: decimal.Decimal
    added: dt.datetime


class Order(pydantic.BaseModel):
    id: uuid.UUID
    items: list[Item]
    shape: tuple[int, int]
    color: Color
    prio: Prio
    note: Optional[str] = None
    paid: Optional[dt.date] = None


class Loose(pydantic.BaseModel):
    data: Any


class Aliased(pydantic.BaseModel):
    user_name: str = pydantic.Field(alias="userName")


class AliasedShort(pydantic.BaseModel):
    user_name: pydantic.constr(max_length=5) = pydantic.Field(alias="userName")


class Shouty(pydantic.BaseModel):
    """A validator that is not idempotent: validating the stored value again would change it."""
    word: str
    when: Optional[dt.datetime] = None
    _secret: str = pydantic.PrivateAttr(default="s")

    @pydantic.validator("word")
    def exclaim(cls, v):
        return v + "!"


class Extra(pydantic.BaseModel, extra=pydantic.Extra.allow):
    a: int = 0


class Root(pydantic.BaseModel):
    __root__: list[dt.date]


class HasRoot(pydantic.BaseModel):
    days: Root
    short: pydantic.constr(max_length=3)


class EnumValues(pydantic.BaseModel):
    color: Color

    class Config:
        use_enum_values = True


class Node1(pydantic.BaseModel):
    value: dt.date
    children: list["Node1"] = []


Node1.update_forward_refs()


class Plain:
    def __init__(self, x):
        self.x = x


UserId = NewType("UserId", int)
OrderId = NewType("OrderId", uuid.UUID)


# ---- helpers -------------------------------------------------------------------------------------
def annotated(ann, name="f"):
    """A function whose return annotation is ann."""
    def f():
        pass
    f.__annotations__ = {"return": ann}
    f.__qualname__ = name
    return f


def unannotated():
    pass


def codec_for(serializer):
    return Codec(serializer, SECRET if serializer == "pickle" else None)


def assert_same(a, b, path="value"):
    """Equal and of the same types, recursively (independent of the code under test)."""
    assert type(a) is type(b), f"{path}: {type(a)} vs {type(b)}"
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, dict):
        assert len(a) == len(b), path
        lookup = {k: k for k in b}
        for k, v in a.items():
            assert k in lookup, f"{path}: key {k!r} missing"
            assert_same(k, lookup[k], f"{path} key {k!r}")
            assert_same(v, b[k], f"{path}[{k!r}]")
    elif isinstance(a, (set, frozenset)):
        assert a == b, path
        lookup = {x: x for x in b}
        for x in a:
            assert_same(x, lookup[x], f"{path} element")
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif isinstance(a, pydantic.BaseModel):
        assert_same(a.__dict__, b.__dict__, path)
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"
        if isinstance(a, (dt.datetime, dt.time)):
            assert a.utcoffset() == b.utcoffset(), path


def round_trip(ann, value, serializer="json"):
    """value through the real Codec and back via Returns (check() first, as on a miss)."""
    returns = Returns.of(annotated(ann), serializer)
    codec = codec_for(serializer)
    decoded = codec.loads(*codec.dumps(value))
    returns.check(value, decoded)
    got = decoded if returns.revive is None else returns.revive(decoded)
    assert_same(value, got)
    return returns


def check_error(ann, value, serializer="json"):
    """The TypeError check() raises for value (the function named 'f' or 'unannotated')."""
    func = unannotated if ann is None else annotated(ann)
    returns = Returns.of(func, serializer)
    codec = codec_for(serializer)
    decoded = codec.loads(*codec.dumps(value))
    with pytest.raises(TypeError) as info:
        returns.check(value, decoded)
    return str(info.value)


def make_user():
    return User(id=uuid.UUID(int=7), name="ann", address=Address("Oslo", dt.date(2020, 1, 2)),
                tags={"a", "b"}, location=(59.9, 10.7), points=[Point(1, 2), Point(3, 4)],
                prio=Prio.HIGH, seen=dt.datetime(2024, 5, 6, 7, 8, 9, 10, tzinfo=UTC),
                extra={1: "one", 20: "twenty"})


def make_order():
    return Order(id=uuid.UUID(int=9),
                 items=[Item(sku="a", price=decimal.Decimal("1.10"),
                             added=dt.datetime(2024, 1, 1, 12, 0, tzinfo=UTC)),
                        Item(sku="b", price=decimal.Decimal("20"),
                             added=dt.datetime(2024, 1, 2, 8, 30))],
                 shape=(3, 4), color=Color.GREEN, prio=Prio.HIGH, paid=dt.date(2024, 2, 1))


# ---- round trips ---------------------------------------------------------------------------------
SCALARS = [
    (dt.datetime, dt.datetime(2024, 10, 1, 12, 30, 15, 123456)),
    (dt.datetime, dt.datetime(2024, 10, 1, 12, 30, tzinfo=UTC)),
    (dt.datetime, dt.datetime(2024, 10, 1, 12, 30, tzinfo=IST)),
    (dt.date, dt.date(1999, 12, 31)),
    (dt.time, dt.time(23, 59, 58, 1)),
    (dt.time, dt.time(8, 0, tzinfo=IST)),
    (dt.timedelta, dt.timedelta(0)),
    (dt.timedelta, dt.timedelta(days=3, hours=2, minutes=1, seconds=5, microseconds=250)),
    (dt.timedelta, dt.timedelta(seconds=-1)),
    (dt.timedelta, dt.timedelta(days=-2, microseconds=1)),
    (dt.timedelta, dt.timedelta.max),
    (dt.timedelta, dt.timedelta.min),
    (uuid.UUID, uuid.UUID("12345678-1234-5678-1234-567812345678")),
    (decimal.Decimal, decimal.Decimal("1.10")),
    (decimal.Decimal, decimal.Decimal("-1E+3")),
    (Color, Color.GREEN),
    (Prio, Prio.HIGH),
    (Mode, Mode.WRITE),
    (Perm, Perm.R | Perm.X),
    (Perm, Perm.W),
    (Pair, Pair.B),
    (Literal[Color.RED, Color.GREEN], Color.RED),
    (Literal["a", 1, True], 1),
    (bytes, b"\x00\xffraw"),
    (bytearray, bytearray(b"ab")),
    (None, None),
    (str, "text"),
    (float, 1.0),
    (int, 2 ** 62),
    (bool, True),
    (UserId, UserId(5)),
    (OrderId, OrderId(uuid.UUID(int=3))),
    (Annotated[dt.date, "meta"], dt.date(2000, 2, 29)),
]

CONTAINERS = [
    (tuple[int, ...], (1, 2, 3)),
    (tuple[int, ...], ()),
    (tuple[int, str], (1, "a")),
    (tuple, (1, "a", None)),
    (typing.Tuple[dt.date, Prio], (dt.date(2024, 1, 1), Prio.LOW)),
    (tuple[tuple[int, int], list[tuple[str, bool]]], ((1, 2), [("a", True)])),
    (set[int], {3, 1, 2}),
    (set, {"x", "y"}),
    (frozenset[str], frozenset({"b", "a"})),
    (set[tuple[int, int]], {(1, 2), (0, 5)}),
    (frozenset[Color], frozenset({Color.RED, Color.GREEN})),
    (list[dt.datetime], [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2, tzinfo=UTC)]),
    (list[set[int]], [{1}, set()]),
    (dict[str, dt.datetime], {"a": dt.datetime(2024, 3, 3, 3, 3)}),
    (dict[int, str], {1: "one", -2: "minus two"}),
    (dict[float, int], {1.5: 1, -0.25: 2}),
    (dict[bool, int], {True: 1, False: 0}),
    (dict[Prio, list[int]], {Prio.LOW: [1], Prio.HIGH: []}),
    (dict[Mode, int], {Mode.READ: 1}),
    (dict[Literal[1, "a"], int], {1: 1, "a": 2}),
    (dict[int, dict[int, tuple[int, int]]], {1: {2: (3, 4)}}),
    (Mapping[str, set[int]], {"a": {1, 2}}),
    (Sequence[dt.date], [dt.date(2024, 1, 1)]),
    (typing.Dict[str, typing.List[typing.Tuple[int, int]]], {"k": [(1, 2)]}),
    (Optional[dt.datetime], None),
    (Optional[dt.datetime], dt.datetime(2024, 1, 1, tzinfo=UTC)),
    (dt.date | None, dt.date(2024, 1, 1)),
    (Union[dt.datetime, list[int], None], dt.datetime(2024, 1, 1)),
    (Union[dt.datetime, list[int], None], [1, 2]),
    (Union[dt.datetime, list[int], None], None),
    (Union[tuple[int, int], dict[int, str]], (1, 2)),
    (Union[tuple[int, int], dict[int, str]], {1: "x"}),
    (Union[float, str, None], 2),
]

CLASSES = [
    (Address, Address("Bergen", dt.date(2001, 1, 1))),
    (Point, Point(1, -1)),
    (User, make_user()),
    (list[User], [make_user(), make_user()]),
    (Optional[User], None),
    (Box[dt.datetime], Box(dt.datetime(2024, 1, 1), [dt.datetime(2025, 1, 1)])),
    (Box[Point], Box(Point(0, 0), [])),
    (Tree, Tree(1, [Tree(2, []), Tree(3, [Tree(4, [])])])),
    (Span, Span(dt.datetime(2024, 1, 1), dt.timedelta(minutes=5), "x")),
    (list[Span], [Span(dt.datetime(2024, 1, 1), dt.timedelta(0))]),
    (PlainPair, PlainPair(1, "b")),
    (Event, {"when": dt.datetime(2024, 1, 1), "what": "x", "tags": frozenset({"t"})}),
    (Item, Item(sku="a", price=decimal.Decimal("1.5"), added=dt.datetime(2024, 1, 1))),
    (Order, make_order()),
    (list[Order], [make_order()]),
    (dict[int, Order], {5: make_order()}),
    (Optional[Order], None),
    (Optional[Order], make_order()),
    (Aliased, Aliased(userName="x")),
    (Shouty, Shouty(word="hi", when=dt.datetime(2024, 1, 1))),
    (Extra, Extra(a=1, c="x")),
    (Root, Root(__root__=[dt.date(2024, 1, 1)])),
    (HasRoot, HasRoot(days=Root(__root__=[dt.date(2024, 1, 1)]), short="abc")),
    (EnumValues, EnumValues(color=Color.RED)),
    (Node1, Node1(value=dt.date(2024, 1, 1), children=[Node1(value=dt.date(2024, 1, 2))])),
]


@pytest.mark.parametrize("ann,value", SCALARS + CONTAINERS + CLASSES,
                         ids=lambda v: repr(v)[:40] if not isinstance(v, type) else v.__name__)
def test_round_trip_json(ann, value):
    round_trip(ann, value)


@pytest.mark.parametrize("ann,value", SCALARS + CONTAINERS + CLASSES,
                         ids=lambda v: repr(v)[:40] if not isinstance(v, type) else v.__name__)
def test_round_trip_msgpack(ann, value):
    round_trip(ann, value, "msgpack")


def test_msgpack_keeps_int_keys_and_nested_bytes():
    assert round_trip(dict[int, str], {1: "a"}, "msgpack").revive is None
    assert round_trip(list[bytes], [b"\x00", b"x"], "msgpack").revive is None
    assert round_trip(dict[dt.date, int], {dt.date(2024, 1, 1): 1}, "msgpack").revive is not None
    assert round_trip(tuple[bytes, int], (b"a", 1), "msgpack").revive is not None


def test_pickle_needs_no_revive_and_checks_nothing():
    r = Returns.of(annotated(Plain), "pickle")
    assert r.revive is None
    value = Plain(1)
    codec = codec_for("pickle")
    r.check(value, codec.loads(*codec.dumps(value)))  # pickle keeps types
    assert Returns.of(unannotated, "pickle").revive is None


@pytest.mark.parametrize("ann", [
    None, Any, object, dict, list, str, int, float, bool, type(None), bytes, Optional[int],
    list[int], dict[str, int], dict[str, list[Optional[float]]], Mapping[str, int],
    Sequence[str], Union[int, str], Union[int, float, None], Literal["a", "b"], Literal[1, 2],
    Counts, Annotated[int, "x"], UserId, dict[str, Any], list[dict[str, Union[int, str]]],
])
def test_json_native_annotations_need_no_revive(ann):
    func = unannotated if ann is None else annotated(ann)
    assert Returns.of(func).revive is None
    assert Returns.of(func, "msgpack").revive is None


def test_no_annotation_or_any_is_fine_for_json_values():
    for func in (unannotated, annotated(Any)):
        r = Returns.of(func)
        value = {"a": [1, 2.0, None, True, {"b": "c"}]}
        r.check(value, Codec().loads(*Codec().dumps(value)))


# ---- check(): results that would not come back the same --------------------------------------------
def test_unannotated_tuple():
    msg = check_error(None, (1, 2))
    assert "unannotated" in msg and "(1, 2) (tuple) comes back as [1, 2] (list)" in msg
    assert "annotate the return type (-> tuple[int, int])" in msg


def test_unannotated_nested_tuple_names_where():
    msg = check_error(None, {"a": [1, (2, 3)]})
    assert "result['a'][1]" in msg and "-> dict[str, list[int | tuple[int, int]]]" in msg


def test_unannotated_dict_with_int_keys():
    msg = check_error(None, {1: "one", 2: "two"})
    assert "1 (int) comes back as '1' (str)" in msg and "(a key)" in msg
    assert "annotate the return type (-> dict[int, str])" in msg


def test_int_keys_under_a_str_key_annotation():
    msg = check_error(dict[str, str], {1: "one"})
    assert "does not describe it" in msg and "-> dict[int, str]" in msg


@pytest.mark.parametrize("value,suggestion", [
    (Prio.HIGH, "Prio"), (Mode.READ, "Mode"), ({1, 2}, "set[int]"),
    (dt.datetime(2024, 1, 1), "datetime"), (uuid.UUID(int=1), "UUID"),
    (decimal.Decimal("1"), "Decimal"), (Point(1, 2), "Point"), (make_order(), "Order"),
    ([Prio.LOW], "list[Prio]"), (Span(dt.datetime(2024, 1, 1), dt.timedelta(1)), "Span"),
])
def test_unannotated_types_json_changes(value, suggestion):
    msg = check_error(None, value)
    assert f"annotate the return type (-> {suggestion})" in msg


def test_intenum_as_int_is_not_the_same():
    msg = check_error(list[int], [Prio.LOW])
    assert "1 (int)" in msg and "Prio" in msg


def test_list_annotation_but_tuple_returned():
    msg = check_error(list[int], (1, 2))
    assert "the return annotation list[int] does not describe it" in msg
    assert "-> tuple[int, int]" in msg


def test_annotation_date_but_datetime_returned():
    msg = check_error(dt.date, dt.datetime(2024, 1, 1, 10))
    assert "cannot be rebuilt" in msg and "-> datetime" in msg


def test_a_dict_subclass_cannot_round_trip():
    msg = check_error(None, collections.OrderedDict(a=1))
    assert "an OrderedDict cannot round-trip through JSON" in msg and "pickle" in msg


def test_float_int_and_bool_int_stay_apart():
    r = Returns.of(unannotated)
    with pytest.raises(TypeError, match=r"1.0 \(float\) comes back as 1 \(int\)"):
        r.check([1.0], [1])
    with pytest.raises(TypeError, match=r"True \(bool\) comes back as 1 \(int\)"):
        r.check({"a": True}, {"a": 1})
    with pytest.raises(TypeError, match=r"result\[1\]"):
        r.check([1, 2], [1, 2.0])
    r.check([1, 2.0, True], [1, 2.0, True])


def test_a_set_element_that_does_not_come_back():
    r = Returns.of(annotated(set[int]))
    with pytest.raises(TypeError, match="does not come back"):
        r.check({1, 2}, [1, 3])


def test_model_field_of_type_any_loses_a_tuple():
    msg = check_error(Loose, Loose(data=(1, 2)))
    assert "result.data" in msg and "(tuple) comes back as [1, 2] (list)" in msg


def test_dataclass_field_without_type_detail():
    @dataclasses.dataclass
    class Bag:
        things: Any

    msg = check_error(Bag, Bag(things={1: "x"}))
    assert "result.things" in msg


def test_pydantic_model_validated_again_has_a_hint():
    """A model with a field type of pydantic's own is rebuilt by parse_obj, which wants the
    aliases .dict() does not write."""
    msg = check_error(AliasedShort, AliasedShort(userName="x"))
    assert "allow_population_by_field_name" in msg


# ---- of(): annotations refused at decoration -----------------------------------------------------
@pytest.mark.parametrize("ann,words", [
    (Plain, "Plain cannot be rebuilt from JSON"),
    (list[Plain], "Plain cannot be rebuilt"),
    (typing.Callable[[], int], "cannot be rebuilt"),
    (collections.OrderedDict, "OrderedDict cannot be rebuilt"),
    (Union[dt.date, str], "ambiguous in JSON"),
    (Union[Item, Order], "ambiguous"),
    (Union[int, Prio], "ambiguous"),
    (Union[float, Prio], "ambiguous"),
    (Union[Point, dict], "ambiguous"),
    (Union[dt.datetime, Any], "ambiguous"),
    (dict[dt.date, int], "cannot be stored as JSON object keys"),
    (dict[tuple[int, int], int], "cannot be stored as JSON object keys"),
    (dict[Color, int], "cannot be stored as JSON object keys"),
])
def test_of_refuses_what_cannot_come_back(ann, words):
    with pytest.raises(TypeError) as info:
        Returns.of(annotated(ann, name="get_thing"))
    msg = str(info.value)
    assert "get_thing" in msg and words in msg and "pickle" in msg
    assert Returns.of(annotated(ann), "pickle").revive is None  # pickle keeps types


def test_msgpack_allows_non_string_keys_but_not_container_keys():
    Returns.of(annotated(dict[dt.date, int]), "msgpack")
    with pytest.raises(TypeError, match="cannot be dict keys"):
        Returns.of(annotated(dict[tuple[int, int], int]), "msgpack")


def test_unknown_serializer():
    with pytest.raises(ValueError):
        Returns.of(unannotated, "yaml")


# ---- annotations written as strings --------------------------------------------------------------
def returns_later() -> "Later":
    pass


def returns_optional_later() -> "Optional[list[Later]]":
    pass


@dataclasses.dataclass
class Later:
    when: dt.datetime


def test_forward_references_resolve_in_the_functions_module():
    value = Later(dt.datetime(2024, 1, 1))
    r = Returns.of(returns_later)
    codec = Codec()
    decoded = codec.loads(*codec.dumps(value))
    r.check(value, decoded)
    assert_same(r.revive(decoded), value)
    r = Returns.of(returns_optional_later)
    assert r.revive(None) is None
    assert_same(r.revive(codec.loads(*codec.dumps([value]))), [value])


def test_future_annotations_module():
    namespace = {}
    exec("from __future__ import annotations\n"
         "import datetime\n"
         "async def get_when() -> tuple[datetime.date, int]:\n"
         "    pass\n"
         "def get_missing() -> NotDefinedAnywhere:\n"
         "    pass\n", namespace)
    r = Returns.of(namespace["get_when"])
    assert r.revive(["2024-01-01", 1]) == (dt.date(2024, 1, 1), 1)
    with pytest.raises(TypeError, match="get_missing.*NotDefinedAnywhere.*cannot be resolved"):
        Returns.of(namespace["get_missing"])


def test_unresolvable_parameter_annotations_do_not_matter():
    def f(x: "Nowhere") -> "dt.date":  # noqa: F821
        pass
    assert Returns.of(f).revive("2024-01-01") == dt.date(2024, 1, 1)


def test_a_wrapped_function_uses_the_inner_annotation():
    import functools

    def inner() -> tuple[int, int]:
        pass

    @functools.wraps(inner)
    def outer():
        pass
    del outer.__annotations__
    outer.__annotations__ = {}
    assert Returns.of(outer).revive([1, 2]) == (1, 2)


# ---- Optional / None -----------------------------------------------------------------------------
def test_optional_returns_with_none():
    for ann in (Optional[dt.datetime], Optional[Order], Optional[tuple[int, int]],
                Union[None, set[int]], Optional[int], None):
        r = Returns.of(annotated(ann))
        r.check(None, Codec().loads(*Codec().dumps(None)))
        assert (r.revive or (lambda v: v))(None) is None


def test_revive_of_a_value_that_does_not_fit_raises():
    """A value stored by another version of the function: revive raises, the caller misses."""
    r = Returns.of(annotated(Address))
    with pytest.raises(Exception):
        r.revive({"town": "x"})
    with pytest.raises(Exception):
        Returns.of(annotated(tuple[int, int])).revive([1, 2, 3])
    with pytest.raises(Exception):
        Returns.of(annotated(Prio)).revive(7)


def test_a_dataclass_field_missing_from_an_old_value_takes_its_default():
    r = Returns.of(annotated(User))
    value = make_user()
    decoded = Codec().loads(*Codec().dumps(value))
    del decoded["extra"]
    assert r.revive(decoded).extra == {}


# ---- pydantic 1 specifics -----------------------------------------------------------------------
def test_pydantic_v1_model_rebuilt_as_parse_obj_would_for_valid_data():
    """construct() from revived fields: the same __dict__, __fields_set__ and private attributes
    as validating the stored dict again, without running validators a second time."""
    value = make_order()
    decoded = Codec().loads(*Codec().dumps(value))
    got = Returns.of(annotated(Order)).revive(decoded)
    again = Order.parse_obj(decoded)
    assert_same(got, again)
    assert got.__fields_set__ == again.__fields_set__
    shouty = Returns.of(annotated(Shouty)).revive({"word": "hi!", "when": None})
    assert shouty.word == "hi!" and shouty._secret == "s"
    assert Shouty.parse_obj({"word": "hi!"}).word == "hi!!"  # what validating again would do


def test_pydantic_v1_missing_fields_take_defaults_and_extras_stay():
    got = Returns.of(annotated(Shouty)).revive({"word": "x"})
    assert got.when is None and got.__fields_set__ == {"word"}
    got = Returns.of(annotated(Extra)).revive({"a": 2, "z": [1]})
    assert got.a == 2 and got.z == [1]


def test_pydantic_v1_tuple_in_an_extra_field_is_caught():
    msg = check_error(Extra, Extra(a=1, b=(1, 2)))
    assert "result.b" in msg and "(tuple) comes back as [1, 2] (list)" in msg


class Summer(dt.tzinfo):
    """A zone (as ZoneInfo would be), not a fixed-offset timezone."""

    def utcoffset(self, when):
        return dt.timedelta(hours=2)

    def dst(self, when):
        return dt.timedelta(hours=1)

    def tzname(self, when):
        return "CEST"


def test_a_zoned_datetime_comes_back_with_its_offset():
    value = dt.datetime(2024, 7, 1, 12, tzinfo=Summer())
    r = Returns.of(annotated(dt.datetime))
    decoded = Codec().loads(*Codec().dumps(value))
    r.check(value, decoded)
    got = r.revive(decoded)
    assert got == value and got.utcoffset() == dt.timedelta(hours=2)
    assert got.tzinfo == dt.timezone(dt.timedelta(hours=2))
    with pytest.raises(TypeError, match="comes back as"):  # the same wall time, another offset
        r.check(value, value.replace(tzinfo=UTC).isoformat())


def test_a_str_subclass_cannot_round_trip():
    class Name(str):
        pass

    msg = check_error(None, Name("x"))
    assert "a Name cannot round-trip through JSON" in msg and "pickle" in msg
