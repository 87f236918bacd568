"""_returns.py - a cache hit returns what the miss returned: values rebuilt by return annotation.

JSON (and msgpack) lose Python types: a tuple comes back as a list, a datetime as its ISO
string, a dataclass or pydantic model as a dict, the int keys of a dict as strings (JSON). A
cached function's return annotation says what the value was, so Returns.of(func) reads it once,
at decoration, and builds `revive`: a tree of small closures turning the decoded value back into
the annotated type. When nothing needs converting (no annotation, Any, or JSON-native types such
as dict[str, int], list[str], Optional[int]) revive is None and a hit costs nothing more.

check(result, decoded), run on a miss with what the codec gives back for result, makes sure a
hit would return the same value, compared type-exactly (a tuple is not a list, 1.0 is not 1,
True is not 1, an IntEnum member is not its int, dict keys keep their types): if not, it raises
TypeError saying where the values differ and how to fix it (annotate the return type, or use
serializer='pickle' for a type JSON cannot carry).

Supported annotations: str, int, float, bool, None, bytes (bytearray), Any; datetime, date,
time (ISO 8601 strings; an aware value comes back with a fixed-offset timezone), timedelta
(an ISO 8601 duration, see serialization._to_jsonable), UUID, Decimal; Enum, IntEnum, StrEnum,
Flag; Literal; list/dict/set/frozenset/tuple (tuple[int, ...] and tuple[int, str]) and their
typing / collections.abc forms (Sequence, Mapping, AbstractSet, ...); Optional / Union / X | Y;
Annotated and NewType (of a supported type); dataclasses (nested, frozen, generic), NamedTuple,
TypedDict; pydantic models (v1: parse_obj, v2: model_validate). Anything else raises TypeError
from of(), unless the serializer is pickle, which keeps types (revive is then None).

A Union of several types is decided by the JSON type of the decoded value (string, number,
bool, array, object, null): Union[datetime, list[int]] works, but a Union whose members come
back as the same JSON type while at least one of them needs converting (Union[date, str],
Union[ModelA, ModelB], Union[int, IntEnum]) is ambiguous and rejected by of().

A revive that raises (any exception) means the stored value does not fit the annotation, e.g.
it was stored by an older version of the function: treat it as a miss.
"""
import collections.abc
import dataclasses
import datetime
import decimal
import enum
import json
import re
import reprlib
import sys
import types
import typing
import uuid

from .serialization import _json_dumps, _to_jsonable

__all__ = ["Returns"]

_NONE_T = type(None)
_NO_ANNOTATION = object()
_MISSING = object()
_ALL = None  # "any JSON kind", in a node's kinds

# The Python types a decoded JSON/msgpack value can have ("kinds").
_STR, _INT, _FLOAT, _BOOL, _NULL, _BYTES = str, int, float, bool, _NONE_T, bytes
_LIST, _DICT = list, dict

# ---- timedelta: an ISO 8601 duration ("P1DT2H3M4.5S", "-PT1S"), as serialization writes it ----
_DURATION = re.compile(r"(-)?P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:\.(\d{1,6}))?S)?)?")


def _timedelta_from_iso(text):
    m = _DURATION.fullmatch(text)
    if m is None or text.endswith(("P", "T")):
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    sign, d, h, mi, s, frac = m.groups()
    td = datetime.timedelta(days=int(d or 0), hours=int(h or 0), minutes=int(mi or 0),
                            seconds=int(s or 0), microseconds=int((frac or "0").ljust(6, "0")))
    return -td if sign else td


# ---- nodes: a reviver (None: the decoded value is already right) and the kinds it accepts --------
class _Node:
    __slots__ = ("revive", "kinds")

    def __init__(self, revive, kinds):
        self.revive = revive  # callable or None
        self.kinds = kinds    # frozenset of decoded types, or _ALL


_SCALAR_KINDS = {
    str: frozenset({_STR}), int: frozenset({_INT}), float: frozenset({_FLOAT, _INT}),
    bool: frozenset({_BOOL}), _NONE_T: frozenset({_NULL}), bytes: frozenset({_BYTES}),
}
_FROM_STR = {
    datetime.datetime: datetime.datetime.fromisoformat,
    datetime.date: datetime.date.fromisoformat,
    datetime.time: datetime.time.fromisoformat,
    datetime.timedelta: _timedelta_from_iso,
    uuid.UUID: uuid.UUID,
    decimal.Decimal: decimal.Decimal,
}
_ABC_LIST = {collections.abc.Sequence, collections.abc.MutableSequence, collections.abc.Collection,
             collections.abc.Iterable, collections.abc.Reversible, collections.abc.Container}
_ABC_SET = {collections.abc.Set, collections.abc.MutableSet}
_ABC_DICT = {collections.abc.Mapping, collections.abc.MutableMapping}
_K_STR, _K_LIST, _K_DICT = frozenset({_STR}), frozenset({_LIST}), frozenset({_DICT})
_BOOL_KEYS = {"true": True, "false": False}
_WRAPPERS = {typing.Final, typing.ClassVar, getattr(typing, "Required", typing.Final),
             getattr(typing, "NotRequired", typing.Final)}
_SUPPORTED = ("str, int, float, bool, None, bytes, datetime, date, time, timedelta, UUID, "
              "Decimal, Enum, Literal, list/tuple/set/frozenset/dict (typed or not), "
              "Optional/Union, dataclasses, NamedTuple, TypedDict, pydantic models")


class _Unsupported(TypeError):
    """An annotation (or part of one) that cannot be rebuilt; of() adds the function's name
    (and the list of supported types when `unknown`: a type this module knows nothing of)."""

    def __init__(self, message, unknown=False):
        super().__init__(message)
        self.unknown = unknown


def _a(word):
    return f"an {word}" if word[:1].lower() in "aeiou" else f"a {word}"


def _pydantic_version(tp):
    """2 or 1 for a pydantic model class (the same tests as serialization._to_jsonable), else 0."""
    if not isinstance(tp, type):
        return 0
    if callable(getattr(tp, "model_validate", None)) and callable(getattr(tp, "model_dump", None)):
        return 2
    if callable(getattr(tp, "parse_obj", None)) and hasattr(tp, "__fields__") \
            and callable(getattr(tp, "dict", None)):
        return 1
    return 0


def _is_namedtuple(tp):
    return isinstance(tp, type) and issubclass(tp, tuple) and hasattr(tp, "_fields")


def _freeze(v):
    """A hashable stand-in for a decoded value (lists and dicts inside), for lookups."""
    if isinstance(v, list):
        return ("\0list", tuple(_freeze(x) for x in v))
    if isinstance(v, dict):
        return ("\0dict", tuple((k, _freeze(x)) for k, x in v.items()))
    return v


class _Builder:
    """Builds the node of one annotation, for one serializer ("json" or "msgpack")."""

    def __init__(self, serializer):
        self.serializer = serializer
        self.building = {}  # class -> [node or None]: recursive dataclasses/NamedTuples/TypedDicts
        if serializer == "msgpack":
            import msgpack
            self._pack = lambda v: msgpack.packb(v, default=_to_jsonable, use_bin_type=True)
            self._unpack = lambda b: msgpack.unpackb(b, raw=False, strict_map_key=False)

    def decoded_form(self, value):
        """What the codec gives back for value, stored inside a container."""
        if self.serializer == "msgpack":
            return self._unpack(self._pack([value]))[0]
        return json.loads(_json_dumps([value]))[0]

    # ---- the dispatcher -------------------------------------------------------------------------
    def node(self, tp):
        if tp is typing.Any or tp is object or isinstance(tp, typing.TypeVar):
            return _Node(None, _ALL)
        if tp is None or tp is _NONE_T:
            return _Node(None, _SCALAR_KINDS[_NONE_T])
        if isinstance(tp, typing.NewType):
            return self.node(tp.__supertype__)
        if isinstance(tp, (str, typing.ForwardRef)):
            raise _Unsupported(f"the forward reference {tp!r} is not resolved")
        origin = typing.get_origin(tp)
        if origin is not None:
            return self.generic(tp, origin, typing.get_args(tp))
        if not isinstance(tp, type):
            raise _Unsupported(f"{tp!r} is not a type")
        return self.cls(tp)

    def generic(self, tp, origin, args):
        if origin is typing.Annotated:
            return self.node(args[0])
        if origin in _WRAPPERS:
            return self.node(args[0])
        if origin is typing.Union or origin is types.UnionType:
            return self.union(tp, args)
        if origin is typing.Literal:
            return self.literal(args)
        if origin is list or origin in _ABC_LIST:
            return self.sequence(list, args[0] if args else typing.Any)
        if origin is tuple:
            return self.tuple_(args)
        if origin in (set, frozenset) or origin in _ABC_SET:
            return self.set_(frozenset if origin is frozenset else set,
                             args[0] if args else typing.Any)
        if origin is dict or origin in _ABC_DICT:
            return self.mapping(args[0] if args else typing.Any, args[1] if args else typing.Any)
        if isinstance(origin, type) and dataclasses.is_dataclass(origin):
            params = getattr(origin, "__parameters__", ())
            return self.dataclass(origin, dict(zip(params, args)), tp)
        if _pydantic_version(origin):
            return self.model(tp, _pydantic_version(origin))
        raise _Unsupported(f"{_name(tp)} cannot be rebuilt from {self.serializer.upper()}",
                           unknown=True)

    def cls(self, tp):
        kinds = _SCALAR_KINDS.get(tp)
        if kinds is not None:
            return _Node(None, kinds)
        if tp is list:
            return _Node(None, _K_LIST)
        if tp is dict:
            return _Node(None, _K_DICT)
        if tp is tuple or tp is set or tp is frozenset:
            return _Node(tp, _K_LIST)
        if tp is bytearray:
            return _Node(bytearray, _SCALAR_KINDS[bytes])
        reviver = _FROM_STR.get(tp)
        if reviver is not None:
            return _Node(reviver, _K_STR)
        if tp in _ABC_LIST:
            return _Node(None, _K_LIST)
        if tp in _ABC_SET:
            return _Node(set, _K_LIST)
        if tp in _ABC_DICT:
            return _Node(None, _K_DICT)
        if issubclass(tp, enum.Enum):
            return self.enum(tp)
        version = _pydantic_version(tp)
        if version:
            return self.model(tp, version)
        if dataclasses.is_dataclass(tp):
            return self.dataclass(tp, {}, tp)
        if _is_namedtuple(tp):
            return self.namedtuple(tp)
        if typing.is_typeddict(tp):
            return self.typeddict(tp)
        raise _Unsupported(f"{_a(_name(tp))} cannot be rebuilt from "
                           f"{self.serializer.upper()}", unknown=True)

    # ---- leaves with a finite set of values ------------------------------------------------------
    def lookup(self, values, what):
        """A reviver mapping each value's decoded form back to the value (None when every value
        comes back as itself), and the kinds of the decoded forms."""
        table, kinds, same = {}, set(), True
        for v in values:
            try:
                form = self.decoded_form(v)
            except (TypeError, ValueError, OverflowError) as e:
                raise _Unsupported(f"{what} has a value that cannot be stored as "
                                   f"{self.serializer.upper()} ({v!r}: {e})") from None
            kinds.add(type(form))
            same = same and _diff(v, form) is None
            table[_freeze(form)] = v
        if same:
            return _Node(None, frozenset(kinds))
        if kinds & {_LIST, _DICT}:
            get = table.__getitem__
            return _Node(lambda v: get(_freeze(v)), frozenset(kinds))
        return _Node(table.__getitem__, frozenset(kinds))

    def enum(self, tp):
        if issubclass(tp, enum.Flag):  # combinations are not members: the class does the lookup
            return _Node(tp, frozenset({_INT}))
        node = self.lookup(list(tp), f"the enum {_name(tp)}")
        if node.revive is None:  # an enum with no members: nothing can come back
            node.revive = tp
        return node

    def literal(self, args):
        return self.lookup(args, f"Literal{list(args)!r}")

    # ---- containers ----------------------------------------------------------------------------
    def sequence(self, container, item):
        r = self.node(item).revive
        if r is None:
            return _Node(None, _K_LIST)
        return _Node(lambda v: [r(x) for x in v], _K_LIST)

    def set_(self, container, item):
        r = self.node(item).revive
        if r is None:
            return _Node(container, _K_LIST)
        if container is set:
            return _Node(lambda v: {r(x) for x in v}, _K_LIST)
        return _Node(lambda v: frozenset([r(x) for x in v]), _K_LIST)

    def tuple_(self, args):
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            r = self.node(args[0]).revive if args else None
            if r is None:
                return _Node(tuple, _K_LIST)
            return _Node(lambda v: tuple([r(x) for x in v]), _K_LIST)
        if args == ((),):  # tuple[()]
            args = ()
        rs = tuple(self.node(a).revive for a in args)
        n = len(rs)
        if all(r is None for r in rs):
            def revive(v):
                if len(v) != n:
                    raise ValueError(f"{len(v)} items for a tuple of {n}")
                return tuple(v)
            return _Node(revive, _K_LIST)

        def revive(v):
            if len(v) != n:
                raise ValueError(f"{len(v)} items for a tuple of {n}")
            return tuple([x if r is None else r(x) for r, x in zip(rs, v)])
        return _Node(revive, _K_LIST)

    def mapping(self, key, value):
        kr = self.key(key)
        vr = self.node(value).revive
        if kr is None and vr is None:
            return _Node(None, _K_DICT)
        if kr is None:
            return _Node(lambda d: {k: vr(v) for k, v in d.items()}, _K_DICT)
        if vr is None:
            return _Node(lambda d: {kr(k): v for k, v in d.items()}, _K_DICT)
        return _Node(lambda d: {kr(k): vr(v) for k, v in d.items()}, _K_DICT)

    def key(self, tp):
        """The reviver of a dict key. JSON object keys are strings: an int, float, bool or None
        key is written as its JSON text, an IntEnum/StrEnum key as its value; other keys cannot
        be stored. msgpack keeps int/float/bool/None keys and converts the others like values."""
        tp = _unwrap(tp)
        if self.serializer == "msgpack":
            node = self.node(tp)
            if node.kinds is not _ALL and node.kinds & {_LIST, _DICT}:
                raise _Unsupported(f"dict keys of type {_name(tp)} come back from msgpack as "
                                   "lists or dicts, which cannot be dict keys")
            return node.revive
        if tp is str or tp is typing.Any or tp is object or isinstance(tp, typing.TypeVar):
            return None
        if tp is int:
            return int
        if tp is float:
            return float
        if tp is bool:
            return _BOOL_KEYS.__getitem__
        if tp is _NONE_T or tp is None:
            return {"null": None}.__getitem__
        if typing.get_origin(tp) is typing.Literal:
            values = typing.get_args(tp)
        elif isinstance(tp, type) and issubclass(tp, enum.Enum) and issubclass(tp, (int, str)) \
                and not issubclass(tp, enum.Flag):
            values = list(tp)
        else:
            raise _Unsupported(f"dict keys of type {_name(tp)} cannot be stored as JSON object "
                               "keys (only str, int, float, bool, None, IntEnum, StrEnum and "
                               "Literal keys can)")
        table = {}
        for v in values:
            if isinstance(v, bool) or v is None:
                form = json.dumps(v)
            elif isinstance(v, (int, float, str)):
                form = str.__str__(v) if isinstance(v, str) else \
                    (int.__repr__(v) if isinstance(v, int) else float.__repr__(v))
            else:
                raise _Unsupported(f"the dict key {v!r} cannot be stored as a JSON object key")
            table[form] = v
        if all(type(v) is str for v in values):
            return None
        return table.__getitem__

    def union(self, tp, members):
        nodes = [(m, self.node(m)) for m in members]
        if all(n.revive is None for _, n in nodes):
            return _Node(None, _union_kinds(n for _, n in nodes))
        others = [(m, n) for m, n in nodes if m is not _NONE_T]
        if len(others) == 1 and len(nodes) == 2:  # Optional[X]
            r = others[0][1].revive
            return _Node(lambda v: None if v is None else r(v),
                         _union_kinds(n for _, n in nodes))
        # Several types: decided by the decoded value's JSON kind, which must name one of them.
        claims = {}
        for m, n in nodes:
            for kind in (n.kinds if n.kinds is not _ALL else (_STR, _INT, _FLOAT, _BOOL, _LIST,
                                                              _DICT, _NULL, _BYTES)):
                claims.setdefault(kind, []).append((m, n))
        table = {}
        for kind, claimants in claims.items():
            if len(claimants) > 1 and any(n.revive is not None for _, n in claimants):
                names = [_name(m) for m, _ in claimants]
                names = ", ".join(names[:-1]) + " and " + names[-1]
                raise _Unsupported(
                    f"it is ambiguous in {self.serializer.upper()}: {names} "
                    f"{'both' if len(claimants) == 2 else 'all'} come back as "
                    f"{_a(_KIND_NAMES[kind])}, so a cached value could not tell which it was; "
                    "use one type (e.g. a model or dataclass with a field per case)")
            if claimants[0][1].revive is not None:
                table[kind] = claimants[0][1].revive
        get = table.get

        def revive(v):
            r = get(v.__class__)
            return v if r is None else r(v)
        return _Node(revive, _union_kinds(n for _, n in nodes))

    # ---- classes built from their fields -------------------------------------------------------
    def _recursive(self, tp, build):
        """build() once per class, with recursive references going through a cell."""
        cell = self.building.get(tp)
        if cell is not None:
            if cell[0] is not None:
                return cell[0]
            cell[2] = True
            return _Node(lambda v: cell[0].revive(v), cell[1])
        cell = self.building[tp] = [None, _K_LIST if _is_namedtuple(tp) else _K_DICT, False]
        try:
            node = build()
        except BaseException:
            del self.building[tp]  # no placeholder of a failed build survives it
            raise
        if node.revive is None and cell[2]:  # a recursive reference was handed out
            node.revive = _identity
        cell[0] = node
        return node

    def _hints(self, tp, typevars=None):
        try:
            hints = typing.get_type_hints(tp, include_extras=True)
        except Exception as e:
            raise _Unsupported(f"the annotations of {_name(tp)} cannot be resolved "
                               f"({type(e).__name__}: {e})") from None
        if typevars:
            hints = {k: _substitute(t, typevars) for k, t in hints.items()}
        return hints

    def dataclass(self, cls, typevars, key):
        def build():
            hints = self._hints(cls, typevars)
            fields = dataclasses.fields(cls)
            conv = tuple((f.name, r) for f in fields if f.init
                         for r in [self.node(hints.get(f.name, typing.Any)).revive]
                         if r is not None)
            drop = tuple(f.name for f in fields if not f.init)
            if not conv and not drop:
                return _Node(lambda d: cls(**d), _K_DICT)

            def revive(d):
                kw = dict(d)
                for name in drop:
                    kw.pop(name, None)
                for name, r in conv:
                    if name in kw:  # absent: the field's default applies
                        kw[name] = r(kw[name])
                return cls(**kw)
            return _Node(revive, _K_DICT)
        return self._recursive(key, build)

    def namedtuple(self, cls):
        def build():
            hints = self._hints(cls)
            rs = tuple(self.node(hints.get(f, typing.Any)).revive for f in cls._fields)
            n = len(rs)
            if all(r is None for r in rs):
                def revive(v):
                    if len(v) > n:
                        raise ValueError(f"{len(v)} items for {cls.__name__} of {n}")
                    return cls(*v)
                return _Node(revive, _K_LIST)

            def revive(v):
                if len(v) > n:
                    raise ValueError(f"{len(v)} items for {cls.__name__} of {n}")
                return cls(*[x if r is None else r(x) for r, x in zip(rs, v)])
            return _Node(revive, _K_LIST)
        return self._recursive(cls, build)

    def typeddict(self, cls):
        def build():
            hints = self._hints(cls)
            conv = tuple((k, r) for k, t in hints.items() for r in [self.node(t).revive]
                         if r is not None)
            if not conv:
                return _Node(None, _K_DICT)

            def revive(d):
                d = dict(d)
                for name, r in conv:
                    if name in d:
                        d[name] = r(d[name])
                return d
            return _Node(revive, _K_DICT)
        return self._recursive(cls, build)

    def model(self, cls, version):
        if version == 2:
            validate = cls.model_validate
            kinds = _ALL if getattr(cls, "__pydantic_root_model__", False) else _K_DICT
            # strict=False: the decoded value has strings for datetimes, lists for tuples.
            return _Node(lambda v: validate(v, strict=False), kinds)
        if getattr(cls, "__custom_root_type__", False):
            # .dict() gives {"__root__": value} at the top, the bare value inside another
            # model; parse_obj takes both.
            return _Node(cls.parse_obj, _ALL)
        if getattr(cls.__config__, "use_enum_values", False):
            return _Node(cls.parse_obj, _K_DICT)
        try:
            return self._recursive(cls, lambda: self.model_v1(cls))
        except _Unsupported:  # a field type of pydantic's own (constr, HttpUrl, ...): validate
            return _Node(cls.parse_obj, _K_DICT)

    def model_v1(self, cls):
        """A pydantic 1 model rebuilt by construct() from its fields, each revived by its
        annotation: the stored values were validated when the model was made, and validating
        them again (parse_obj) costs several times more, and would run non-idempotent
        validators twice. Field types this module does not know make model() use parse_obj."""
        hints = self._hints(cls)
        conv = []
        for name in cls.__fields__:
            if name not in hints:
                raise _Unsupported(f"field {name} of {_name(cls)} has no annotation")
            r = self.node(hints[name]).revive
            if r is not None:
                conv.append((name, r))
        construct = cls.construct
        conv = tuple(conv)
        fields = cls.__fields__.keys()
        new, init_private = cls.__new__, getattr(cls, "_init_private_attributes", None)
        if init_private is None:
            def revive(d):
                kw = dict(d)
                for name, r in conv:
                    if name in kw:
                        kw[name] = r(kw[name])
                return construct(**kw)
            return _Node(revive, _K_DICT)

        def revive(d):
            kw = dict(d)
            for name, r in conv:
                if name in kw:
                    kw[name] = r(kw[name])
            if kw.keys() != fields:  # defaults to fill in, extra fields: construct() does it
                return construct(**kw)
            # What construct(**kw) does when kw has every field and no other (as .dict()
            # gives them, in the same order), at a third of the cost.
            m = new(cls)
            _setattr(m, "__dict__", kw)
            _setattr(m, "__fields_set__", set(kw))
            init_private(m)
            return m
        return _Node(revive, _K_DICT)


def _identity(v):
    return v


_setattr = object.__setattr__


_KIND_NAMES = {_STR: "string", _INT: "number", _FLOAT: "number", _BOOL: "boolean",
               _LIST: "array", _DICT: "object", _NULL: "null", _BYTES: "bytes value"}


def _union_kinds(nodes):
    kinds = set()
    for n in nodes:
        if n.kinds is _ALL:
            return _ALL
        kinds |= n.kinds
    return frozenset(kinds)


def _unwrap(tp):
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif isinstance(tp, typing.NewType):
            tp = tp.__supertype__
        else:
            return tp


def _substitute(tp, typevars):
    """tp with the type variables of a generic dataclass replaced by its arguments."""
    if isinstance(tp, typing.TypeVar):
        return typevars.get(tp, typing.Any)
    params = getattr(tp, "__parameters__", ())
    if params and typing.get_origin(tp) is not None:
        try:
            return tp[tuple(typevars.get(p, typing.Any) for p in params)]
        except TypeError:
            return tp
    return tp


def _name(tp):
    if isinstance(tp, type):
        return tp.__qualname__ if tp.__module__ in ("builtins", "datetime", "uuid", "decimal") \
            else f"{tp.__module__}.{tp.__qualname__}"
    return repr(tp).replace("typing.", "")


# ---- comparing a result with what a hit would return ------------------------------------------
_PLAIN = frozenset({str, int, float, bool, _NONE_T, bytes, bytearray, decimal.Decimal, uuid.UUID,
                    datetime.date, datetime.timedelta})


def _diff(a, b):
    """None when b is the same value as a, type-exactly and recursively; else (path steps,
    innermost first; the differing a part; the differing b part)."""
    ta = a.__class__
    if ta is not b.__class__:
        return [], a, b
    if ta in _PLAIN:
        return None if a == b else ([], a, b)
    if ta is list or ta is tuple:
        if len(a) != len(b):
            return [], a, b
        for i, (x, y) in enumerate(zip(a, b)):
            d = _diff(x, y)
            if d is not None:
                d[0].append(f"[{i}]")
                return d
        return None
    if ta is dict:
        return _diff_dict(a, b, "[{!r}]")
    if ta is datetime.datetime or ta is datetime.time:
        # the same instant, and the same offset (a zone comes back as a fixed offset)
        return None if a == b and a.utcoffset() == b.utcoffset() else ([], a, b)
    if ta is set or ta is frozenset:
        if len(a) != len(b):
            return [], a, b
        same = {y: y for y in b}
        for x in a:
            y = same.get(x, _MISSING)
            d = ([], x, _MISSING) if y is _MISSING else _diff(x, y)
            if d is not None:
                d[0].append(" (an element)")
                return d
        return None
    how, names = _HOW.get(ta) or _learn(ta)
    if how is _H_ENUM:
        return None if a is b else ([], a, b)
    if how is _H_FIELDS:  # NamedTuple, dataclass
        for name in names:
            d = _diff(getattr(a, name, _MISSING), getattr(b, name, _MISSING))
            if d is not None:
                d[0].append(f".{name}")
                return d
        return None
    if how is _H_MODEL:
        d = _diff_dict(a.__dict__, b.__dict__, ".{}")
        if d is None and getattr(a, "__pydantic_extra__", None) is not None:
            d = _diff_dict(a.__pydantic_extra__ or {}, b.__pydantic_extra__ or {}, ".{}")
        return d
    if a is _MISSING or a == b:
        return None
    return [], a, b


_H_ENUM, _H_FIELDS, _H_MODEL, _H_OTHER = "enum", "fields", "model", "other"
_HOW = {}  # class -> (how _diff compares its instances, field names)


def _learn(t):
    if issubclass(t, enum.Enum):
        how = _H_ENUM, ()
    elif _is_namedtuple(t):
        how = _H_FIELDS, tuple(t._fields)
    elif dataclasses.is_dataclass(t):
        how = _H_FIELDS, tuple(f.name for f in dataclasses.fields(t))
    elif _pydantic_version(t):
        how = _H_MODEL, ()
    else:
        how = _H_OTHER, ()
    _HOW[t] = how
    return how


def _diff_dict(a, b, step):
    if len(a) != len(b):
        return [], a, b
    for (ka, x), (kb, y) in zip(a.items(), b.items()):
        if ka.__class__ is not kb.__class__ or ka != kb:
            break
        d = _diff(x, y)
        if d is not None:
            d[0].append(step.format(ka))
            return d
    else:
        return None
    # The keys differ, or come in another order.
    keys = {k: k for k in b}
    for i, (ka, x) in enumerate(a.items()):
        kb = keys.get(ka, _MISSING)
        if kb is _MISSING or ka.__class__ is not kb.__class__:
            if kb is _MISSING:
                kb = list(b)[i]
            return [" (a key)", step.format(ka)], ka, kb
        d = _diff(x, b[kb])
        if d is not None:
            d[0].append(step.format(ka))
            return d
    return None


# ---- suggesting an annotation for a result -------------------------------------------------------
_SHORT = {datetime.datetime: "datetime", datetime.date: "date", datetime.time: "time",
          datetime.timedelta: "timedelta", uuid.UUID: "UUID", decimal.Decimal: "Decimal",
          _NONE_T: "None"}


def _suggest(v, depth=0):
    t = v.__class__
    if depth > 3:
        return "Any"
    if t is tuple:
        if 0 < len(v) <= 4:
            return f"tuple[{', '.join(_suggest(x, depth + 1) for x in v)}]"
        return f"tuple[{_common(v, depth)}, ...]"
    if t is list or t is set or t is frozenset:
        return f"{t.__name__}[{_common(v, depth)}]" if v else t.__name__
    if t is dict:
        if not v:
            return "dict"
        return f"dict[{_common(v.keys(), depth)}, {_common(v.values(), depth)}]"
    return _SHORT.get(t) or t.__qualname__


def _common(values, depth):
    names = []
    for i, x in enumerate(values):
        if i == 20:
            break
        s = _suggest(x, depth + 1)
        if s not in names:
            names.append(s)
    if not names:
        return "Any"
    if len(names) > 3:
        return "Any"
    return " | ".join(names)


def _revivable(t):
    """Whether JSON can carry a t given an annotation (so the fix is to annotate)."""
    if t in _PLAIN or t in _SHORT or t in (list, dict, tuple, set, frozenset) \
            or issubclass(t, enum.Enum):
        return True
    return bool(_pydantic_version(t) or dataclasses.is_dataclass(t) or _is_namedtuple(t))


def _fits(value, annotation):
    """Roughly: is value's own class what the annotation (or one of its Union members) names?"""
    tp = _unwrap(annotation)
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return any(_fits(value, m) for m in typing.get_args(tp))
    if origin is not None:
        tp = origin
    return type(value) is tp


_short_repr = reprlib.Repr()
_short_repr.maxstring = _short_repr.maxother = 40
_short_repr.maxlevel, _short_repr.maxdict, _short_repr.maxlist = 2, 3, 4


# ---- the public class --------------------------------------------------------------------------
class Returns:
    """How one function's results come back from the cache.

    revive: decoded value -> the annotated type; None when no conversion is needed (and always
    with serializer="pickle"). It may raise (any exception) for a stored value that does not
    fit the annotation: treat that as a miss.
    check(result, decoded): TypeError unless revive(decoded) is result's value, type-exactly.
    """

    __slots__ = ("revive", "name", "annotation", "serializer")

    def __init__(self, revive, name, annotation, serializer):
        self.revive = revive
        self.name = name
        self.annotation = annotation  # _NO_ANNOTATION when the function has none
        self.serializer = serializer

    @classmethod
    def of(cls, func, serializer="json"):
        if serializer not in ("json", "msgpack", "pickle"):
            raise ValueError(f"unknown serializer {serializer!r}")
        name = getattr(func, "__qualname__", None) or repr(func)
        if serializer == "pickle":
            return cls(None, name, _NO_ANNOTATION, serializer)
        annotation = _return_annotation(func, name)
        if annotation is _NO_ANNOTATION:
            return cls(None, name, annotation, serializer)
        try:
            node = _Builder(serializer).node(annotation)
        except _Unsupported as e:
            supported = f" Supported: {_SUPPORTED}." if e.unknown else ""
            raise TypeError(
                f"@cached {name}: its return annotation {_name(annotation)} cannot come back from "
                f"the cache: {e}.{supported} Change the annotation, or use serializer='pickle' "
                "(with a pickle_secret), which keeps Python types") from None
        return cls(node.revive, name, annotation, serializer)

    def check(self, result, decoded):
        if self.serializer == "pickle":
            return  # pickle keeps types
        revive = self.revive
        if revive is None:
            value = decoded
        else:
            try:
                value = revive(decoded)
            except Exception as e:
                raise TypeError(self._rebuild_failed(result, e)) from None
        d = _diff(result, value)
        if d is None:
            return
        steps, x, y = d
        where = "result" + "".join(reversed(steps))
        if y is _MISSING:
            what = f"{_describe(x)} does not come back"
        elif x is _MISSING:
            what = f"{_describe(y)} comes back, which the result does not have"
        else:
            what = f"{_describe(x)} comes back as {_describe(y)}"
        raise TypeError(f"@cached {self.name}: a cache hit would not return what the function "
                        f"returned: at {where}, {what}; {self._fix(result, x, y)}")

    def _fix(self, result, x, y):
        t = x.__class__
        if t is y.__class__:  # the type survives, the value does not
            return (f"{_a(t.__name__)} like this one cannot round-trip through "
                    f"{self.serializer.upper()}; use serializer='pickle' (with a pickle_secret)")
        if _revivable(t):
            if self.annotation is _NO_ANNOTATION or self.annotation is typing.Any:
                return f"annotate the return type (-> {_suggest(result)})"
            return (f"the return annotation {_name(self.annotation)} does not describe it: "
                    f"annotate what the function returns (-> {_suggest(result)})")
        return (f"{_a(t.__name__)} cannot round-trip through {self.serializer.upper()}; "
                "return a supported type, or use serializer='pickle' (with a pickle_secret)")

    def _rebuild_failed(self, result, e):
        what = (f"@cached {self.name}: its result ({type(result).__qualname__}) cannot be "
                f"rebuilt from {self.serializer.upper()} by its return annotation "
                f"{_name(self.annotation)} ({type(e).__name__}: {e}); ")
        if not _fits(result, self.annotation):
            return what + (f"the annotation does not describe it: annotate what the function "
                           f"returns (-> {_suggest(result)})")
        fix = "use serializer='pickle' (with a pickle_secret), which keeps Python types"
        if _pydantic_version(type(result)):
            fix += (", or let the model be built from field names (pydantic 2: populate_by_name"
                    "=True, pydantic 1: allow_population_by_field_name = True) if it has aliases")
        return what + f"this value cannot round-trip through {self.serializer.upper()}; {fix}"

    def __repr__(self):
        ann = "none" if self.annotation is _NO_ANNOTATION else _name(self.annotation)
        return (f"Returns({self.name}, annotation={ann}, serializer={self.serializer}, "
                f"revive={'no' if self.revive is None else 'yes'})")


def _describe(v):
    return f"{_short_repr.repr(v)} ({type(v).__name__})"


def _return_annotation(func, name):
    """The return annotation, evaluated (a string or forward reference in func's module), or
    _NO_ANNOTATION. Only the return annotation is evaluated, not the parameters'."""
    target = func
    while True:
        ann = getattr(target, "__annotations__", None)
        if isinstance(ann, dict) and "return" in ann:
            break
        wrapped = getattr(target, "__wrapped__", None)
        if wrapped is None:
            return _NO_ANNOTATION
        target = wrapped
    raw = ann["return"]
    if raw is None:
        return _NONE_T
    nsobj = target
    while hasattr(nsobj, "__wrapped__"):
        nsobj = nsobj.__wrapped__
    globalns = getattr(nsobj, "__globals__", None)
    if globalns is None:
        module = sys.modules.get(getattr(nsobj, "__module__", None) or "")
        globalns = getattr(module, "__dict__", {})
    shim = types.SimpleNamespace(__annotations__={"return": raw})
    try:
        return typing.get_type_hints(shim, globalns=globalns, include_extras=True)["return"]
    except Exception as e:
        raise TypeError(
            f"@cached {name}: its return annotation {raw!r} cannot be resolved in module "
            f"{getattr(nsobj, '__module__', '?')} ({type(e).__name__}: {e}); the cache needs it "
            "at decoration time to rebuild results: define the type before the function, or "
            "import it at run time (not only under TYPE_CHECKING)") from None
