"""keys.py - how keys are made: the namespace, decorator keys, invalidation patterns.

Namespace. With CacheConfig.key_prefix set, every key and pattern given to a manager is stored
as `<key_prefix><key_separator><key>` in both tiers (the Redis tier gets no prefix of its own, so
L1 and L2 keys are identical and shmcache-cli shows them as Redis does). Patterns get the same
head with its glob metacharacters escaped, so a namespace like "app[1]" cannot widen a purge.

Decorator keys are readable, so that the patterns a service uses to invalidate match what the
decorator stored: `@cached(key_prefix="user_profile")` on `get_user_profile(123)` stores
`user_profile:123`. They are also injective: two calls whose arguments differ (by type or by
value) never share a key. The grammar, SEP being CacheConfig.key_separator (":" by default):

    key   := prefix { SEP part }            prefix: key_prefix, else module.qualname of the function
    part  := esc(text)                      positional parameters, in order
           | esc(name) "=" esc(text)        the others, sorted by name
    text  := int                            123  -7          (decimal)
           | float                          1.0  -0.5  1e+100  inf  nan   (repr(): it always
                                            has a "." or an "e", or is inf or nan)
           | "None" | "True" | "False"
           | str                            acme  a b  café  2024-10-01   (a plain string as is)
           | "'" str                        '123  '1.5  'None  '  ''x  '#x  '<x
           | "#" 16 hex digits              a digest (below)
           | "<" module "." qualname ">"    a class (the cls of a classmethod)
    esc   := the text with "%", "=" and every character of SEP percent-encoded
             (%25, %3D, ":" -> %3A; a non-ASCII character as the %XX of its UTF-8 bytes)

  * A str is written with a leading "'" when it is empty, could be read as a number
    (`_NUMBER`: 12, -1.5, 1e3, 1_000, inf, nan...) or is None/True/False, or starts with one
    of ' # <. Otherwise it is written as is; a plain word like `acme` stays `acme`.
  * A str over 128 characters, an int over 127 digits, bytes, lists, tuples, dicts, sets,
    dates, UUIDs, Decimals, dataclasses, pydantic models (model_dump(), or dict() in pydantic
    1) and other objects with a repr() free of memory addresses are written as "#" + 16 hex
    digits of a BLAKE2b digest of a typed canonical encoding (`_encode`: 1, 1.0, True and "1"
    encode differently; dict keys and sets are sorted; a dataclass or model carries its class
    name), the same in every process and on every host.
  * An Enum member is written as its value; an object with a __cache_key__() method as what it
    returns (the class decides which instances are the same); a subclass of int, float or str
    as its base value; an object with __index__ (numpy integers) as that int.
  * An object whose repr() carries a memory address (the default object repr) would give a new
    key in every process and never hit: it raises TypeError (give it __cache_key__(), or pass
    key_builder=).

Every text is non-empty, and no two values of different kinds share a text; esc is one-to-one
and leaves no SEP character and no "=" in a value, so the parts split back apart: the key
determines the bound arguments. (Digested parts are as distinct as their 64-bit digests.)
The separator must be non-empty, without "%", "=", digits or A-F: the characters of the
escapes (ValueError at the call otherwise).

Binding. The arguments are bound to the function's signature first, so f(123) and
f(user_id=123) are the same key: leading positional parameters give positional parts as long
as none is skipped; the others (keyword-only, **kwargs, and any after a skipped default) give
named parts; defaults that were not passed are not part of the key. A call with positional
arguments only, within the function's positional arity, skips inspect's binding (the result is
the same, faster).

Methods. A first positional parameter named `self` or `cls` is a method's instance or class and
is part of the key like any argument: an instance by its __cache_key__(), or its content if it
is a dataclass or a pydantic model, else TypeError (the default object repr carries a memory
address); a class by `<module.qualname>`. FunctionKeys(..., ignore_self=True) leaves it out, for
methods whose result does not depend on the instance (all instances then share entries).

Patterns. In cache_invalidate templates, a {field} is rendered exactly as its value is in a key
(the same text and escaping), then glob-escaped, so "user:{user_id}*" matches what @cached
stored for that user_id.
"""
import dataclasses
import datetime
import decimal
import enum
import hashlib
import inspect
import json
import operator
import re
import string
import sys
import uuid

_GLOB_SPECIAL = frozenset("*?[]\\")
MAX_TEXT_PART = 128  # longer strings are digested: keys stay short and under the 4096-byte limit


def escape_glob(text):
    """text with the glob metacharacters backslash-escaped: it then matches only itself."""
    if not _GLOB_SPECIAL.intersection(text):
        return text
    return "".join("\\" + ch if ch in _GLOB_SPECIAL else ch for ch in text)


def _to_bytes(value, what):
    if isinstance(value, str):
        data = value.encode("utf-8")
    elif isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    else:
        raise TypeError(f"a cache {what} must be str or bytes, not {type(value).__name__}")
    if not data:
        raise ValueError(f"a cache {what} must not be empty")
    return data


class KeySpace:
    """Applies the configured namespace to keys and patterns."""

    def __init__(self, prefix="", separator=":"):
        self.prefix = prefix
        self.separator = separator
        self.head = (prefix + separator).encode("utf-8") if prefix else b""  # before every key
        self._pattern_head = escape_glob(prefix + separator).encode("utf-8") if prefix else b""

    def key(self, key):
        """The stored key (bytes) for a user key (str or bytes)."""
        return self.head + _to_bytes(key, "key")

    def pattern(self, pattern):
        """The stored-key glob (bytes) for a user pattern."""
        return self._pattern_head + _to_bytes(pattern, "pattern")

    def strip(self, stored):
        """The user key (str) of a stored key."""
        if self.head and stored.startswith(self.head):
            stored = stored[len(self.head):]
        return stored.decode("utf-8", "replace")


# ---- decorator keys: the text of one value -------------------------------------------------------
STR_TAG = "'"      # before a str that would otherwise read as something else
DIGEST_TAG = "#"   # before the digest of a long or structured value
_TAG_STARTS = "'#<"  # a plain str never starts with one of these
# Every text an int or a float gets matches this (it is wider: 1_000, 1E5, +3, .5, Infinity),
# and a str matching it is tagged. A str that cannot start such a match skips the regex.
_NUMBER = re.compile(r"[-+]?(?:\d[\d_]*(?:\.[\d_]*)?(?:e[-+]?\d+)?|\.\d[\d_]*(?:e[-+]?\d+)?"
                     r"|inf(?:inity)?|nan)", re.IGNORECASE).fullmatch
_NUMBER_STARTS = frozenset("0123456789+-.iInN")
_WORDS = frozenset(("None", "True", "False"))
_MAX_INT_BITS = 420  # 2**420 has 127 digits: larger ints are digested


class UnstableKeyError(TypeError):
    """A value has no stable key text (its repr() carries a memory address)."""


def _class_name(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def _str_text(s):
    if len(s) > MAX_TEXT_PART:
        return digest(s)
    if not s:
        return STR_TAG
    if not s.isascii():
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: not storable as UTF-8 text
            return digest(s)
    c = s[0]
    if c in _TAG_STARTS or (c in _NUMBER_STARTS and _NUMBER(s)) or s in _WORDS:
        return STR_TAG + s
    return s


def _int_text(i):
    return int.__repr__(i) if i.bit_length() <= _MAX_INT_BITS else digest(i)


def _text(value):
    """The text of one value, before escaping (see the grammar in the module docstring)."""
    t = type(value)
    if t is str:
        return _str_text(value)
    if t is int:
        return _int_text(value)
    if t is bool:
        return "True" if value else "False"
    if value is None:
        return "None"
    if t is float:
        return float.__repr__(value)
    return _other_text(value)


def _other_text(value):
    if isinstance(value, enum.Enum):
        return _text(value.value)
    if getattr(type(value), "__cache_key__", None) is not None:
        return _text(value.__cache_key__())
    if isinstance(value, int):  # bool is handled above: its type is exactly bool
        return _int_text(value)
    if isinstance(value, float):
        return float.__repr__(value)
    if isinstance(value, str):
        return _str_text(str.__str__(value))
    if isinstance(value, type):
        return f"<{_class_name(value)}>"
    if hasattr(type(value), "__index__"):
        try:
            return _int_text(value.__index__())
        except TypeError:
            pass
    return digest(value)


# ---- decorator keys: digests ---------------------------------------------------------------------
# _encode writes a typed, canonical, self-delimiting text of a value: distinct values of distinct
# kinds never share it (1 -> i1, 1.0 -> f1.0, True -> T, "1" -> s"1"), containers are bracketed,
# dict items and set members are sorted by their encoding. Its digest is the "#" part of a key.
_dumps = json.JSONEncoder(ensure_ascii=True).encode  # a quoted, escaped str


def _is_pydantic(value):
    cls = type(value)
    return (hasattr(cls, "model_fields") and callable(getattr(value, "model_dump", None))) or \
        (hasattr(cls, "__fields__") and hasattr(cls, "__config__") and
         callable(getattr(value, "dict", None)))


def _encode(value, out):
    t = type(value)
    if t is str:
        out.append("s" + _dumps(value))
    elif t is int:
        out.append(f"i{value}" if value.bit_length() <= 8000 else f"x{value:x}")
    elif t is bool:
        out.append("T" if value else "F")
    elif value is None:
        out.append("N")
    elif t is float:
        out.append("f" + float.__repr__(value))
    elif t is list or t is tuple:
        _encode_items("[" if t is list else "(", value, out)
    elif t is dict:
        _encode_dict(value, out)
    elif t is set or t is frozenset:
        _encode_set(value, out)
    else:
        _encode_other(value, out)


def _encode_items(opening, items, out):
    out.append(opening)
    for i, item in enumerate(items):
        if i:
            out.append(",")
        _encode(item, out)
    out.append("]" if opening == "[" else ")")


def _encoded(value):
    out = []
    _encode(value, out)
    return "".join(out)


def _encode_dict(mapping, out):
    out.append("{" + ",".join(sorted(_encoded(k) + ":" + _encoded(v)
                                     for k, v in mapping.items())) + "}")


def _encode_set(members, out):
    out.append("<" + ",".join(sorted(_encoded(m) for m in members)) + ">")


def _encode_other(value, out):
    cls = type(value)
    if isinstance(value, enum.Enum):
        _encode(value.value, out)
    elif getattr(cls, "__cache_key__", None) is not None:
        _encode(value.__cache_key__(), out)
    elif isinstance(value, int):
        _encode(int.__int__(value), out)
    elif isinstance(value, float):
        _encode(float.__float__(value), out)
    elif isinstance(value, str):
        _encode(str.__str__(value), out)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        out.append("b" + bytes(value).hex() + ";")
    elif isinstance(value, type):
        out.append("c" + _dumps(_class_name(value)))
    elif isinstance(value, (list, tuple)):  # namedtuples, list subclasses
        _encode_items("[" if isinstance(value, list) else "(", value, out)
    elif isinstance(value, dict):
        _encode_dict(value, out)
    elif isinstance(value, (set, frozenset)):
        _encode_set(value, out)
    elif isinstance(value, (datetime.date, datetime.time, datetime.timedelta, uuid.UUID,
                            decimal.Decimal)):
        out.append("v" + _dumps(_class_name(cls)) + _dumps(str(value)))
    elif dataclasses.is_dataclass(value):
        out.append("D" + _dumps(_class_name(cls)) + "{")
        for i, field in enumerate(dataclasses.fields(value)):
            out.append(("," if i else "") + _dumps(field.name) + ":")
            _encode(getattr(value, field.name), out)
        out.append("}")
    elif _is_pydantic(value):
        out.append("P" + _dumps(_class_name(cls)))
        dump = value.model_dump if hasattr(cls, "model_fields") else value.dict
        _encode_dict(dump(), out)
    elif hasattr(cls, "__index__"):
        _encode(int(value.__index__()), out)
    else:
        text = repr(value)
        if " at 0x" in text:
            raise UnstableKeyError(
                f"cannot build a stable cache key from a {cls.__name__} argument: its repr() "
                f"includes a memory address ({text}). Give the class a __cache_key__() method "
                "returning a str, or pass key_builder=")
        out.append("r" + _dumps(_class_name(cls)) + _dumps(text))


def digest(value):
    """`#` + 16 hex digits identifying value by type and content (stable across processes and
    hosts): the text of a long str, a container, a dataclass..."""
    data = _encoded(value).encode("utf-8", "surrogatepass")
    return DIGEST_TAG + hashlib.blake2b(data, digest_size=8).hexdigest()


# ---- decorator keys: escaping --------------------------------------------------------------------
_ESCAPERS = {}
_FORBIDDEN_IN_SEPARATOR = frozenset("%=0123456789ABCDEF")  # the escapes' characters


def _escaper(separator):
    """The esc() of the grammar for this separator (cached)."""
    esc = _ESCAPERS.get(separator)
    if esc is not None:
        return esc
    if not isinstance(separator, str) or not separator or \
            not _FORBIDDEN_IN_SEPARATOR.isdisjoint(separator):
        raise ValueError("decorator keys need a key_separator that is a non-empty str without "
                         f"'%', '=', digits or A-F (used by escapes), not {separator!r}")
    chars = "".join(sorted(set("%=" + separator)))
    table = {ord(c): "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass"))
             for c in chars}
    if len(separator) == 1:
        def esc(text, _sep=separator, _table=table):
            if _sep in text or "%" in text or "=" in text:
                return text.translate(_table)
            return text
    else:
        search = re.compile("[" + re.escape(chars) + "]").search

        def esc(text, _search=search, _table=table):
            return text.translate(_table) if _search(text) else text
    _ESCAPERS[separator] = esc
    return esc


def key_part(value, separator=":"):
    """The text of one argument in a decorator key, escaped for this separator."""
    return _escaper(separator)(_text(value))


# ---- decorator keys: functions -------------------------------------------------------------------
_first = operator.itemgetter(0)
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class FunctionKeys:
    """Builds the keys (and invalidation patterns) of one decorated function.

    ignore_self=True leaves the first parameter (a method's self or cls) out of the key: it
    needs a first positional parameter named self or cls (TypeError otherwise)."""

    def __init__(self, func, key_prefix=None, ignore_self=False):
        self.func = func
        self.prefix = key_prefix if key_prefix else f"{func.__module__}.{func.__qualname__}"
        try:
            self.signature = inspect.signature(func)
        except (TypeError, ValueError):  # some builtins and C functions have none
            self.signature = None
        params = list(self.signature.parameters.values()) if self.signature else []
        self.method = bool(params) and params[0].name in ("self", "cls") and \
            params[0].kind in _POSITIONAL
        if ignore_self and not self.method:
            raise TypeError(f"ignore_self=True: the first parameter of {func.__qualname__} is "
                            "not a method's self or cls")
        self.ignore_self = bool(ignore_self)
        self.skip_first = self.ignore_self
        # The fast path: positional arguments only, as many as the function takes positionally
        # (any number with *args), and no keyword-only parameter without a default: binding
        # them to the signature then just keeps them in order, and cannot fail.
        leading = [p for p in params if p.kind in _POSITIONAL]
        self._leading = [(p.name, p.kind is p.POSITIONAL_ONLY, p.default is p.empty)
                         for p in leading]
        self._kwonly = [(p.name, p.default is p.empty) for p in params
                        if p.kind is p.KEYWORD_ONLY]
        self._varargs = any(p.kind is p.VAR_POSITIONAL for p in params)
        self._varkw = any(p.kind is p.VAR_KEYWORD for p in params)
        if self.signature is None:
            self._fast_min, self._fast_max = 0, sys.maxsize
        else:
            self._fast_min = sum(1 for p in leading if p.default is p.empty)
            self._fast_max = sys.maxsize if self._varargs else len(leading)
            if any(required for _, required in self._kwonly):
                self._fast_max = -1
        self._set_separator(":")

    def _set_separator(self, separator):
        esc = _escaper(separator)
        int_safe = not set(separator).intersection("-0123456789")  # ints need no escaping
        self._escaping = (separator, esc, int_safe)
        return esc, int_safe

    def key(self, args, kwargs, separator=":"):
        """The user-level key (before the namespace) for one call."""
        current, esc, int_safe = self._escaping  # one attribute: threads see a consistent set
        if separator != current:
            esc, int_safe = self._set_separator(separator)
        if not kwargs and self._fast_min <= len(args) <= self._fast_max:
            positional, named = args, ()
        elif self.signature is None:
            positional, named = args, sorted(kwargs.items())
        else:
            positional, named = self._bind(args, kwargs) or \
                self._split(self.signature.bind(*args, **kwargs))
        parts = [self.prefix]
        if positional and self.method:
            if not self.ignore_self:
                parts.append(esc(self._self_text(positional[0])))
            positional = positional[1:]
        for v in positional:
            t = type(v)
            if t is int and -(1 << 62) < v < 1 << 62:
                parts.append(int.__repr__(v) if int_safe else esc(int.__repr__(v)))
            elif t is str and 0 < len(v) <= MAX_TEXT_PART and v.isascii() and \
                    v[0] not in _SLOW_STARTS and v not in _WORDS:
                parts.append(esc(v))
            else:
                parts.append(esc(_text(v)))
        for k, v in named:
            parts.append(f"{esc(k)}={esc(_text(v))}")
        return separator.join(parts)

    def _self_text(self, value):
        if getattr(type(value), "__cache_key__", None) is not None:
            return _text(value.__cache_key__())
        try:
            return _text(value)
        except UnstableKeyError:
            what = "class" if self.signature and \
                next(iter(self.signature.parameters)) == "cls" else "instance"
            raise TypeError(
                f"cannot build a stable cache key for {self.func.__qualname__}: its {what} "
                f"({type(value).__qualname__}) has no stable key text (its repr() includes a "
                "memory address), and the instance is part of the key. Give the class a "
                "__cache_key__() method returning what tells its instances apart (a tenant, an "
                "id), or pass ignore_self=True if the result does not depend on the instance, "
                "or key_builder=") from None

    def _bind(self, args, kwargs):
        """(positional, named) as _split(signature.bind(...)) gives them, without inspect; None
        when the call does not bind (signature.bind then raises the usual TypeError)."""
        leading = self._leading
        n = len(args)
        if n > len(leading) and not self._varargs:
            return None
        positional = list(args)
        named = []
        rest = dict(kwargs)
        contiguous = True
        for i, (name, positional_only, required) in enumerate(leading):
            if i < n:
                if not positional_only and name in rest:
                    return None  # multiple values for one argument
            elif not positional_only and name in rest:
                if contiguous:
                    positional.append(rest.pop(name))
                else:
                    named.append((name, rest.pop(name)))
            elif required:
                return None
            else:
                contiguous = False
        for name, required in self._kwonly:
            if name in rest:
                named.append((name, rest.pop(name)))
            elif required:
                return None
        if rest:
            if not self._varkw:
                return None
            named.extend(rest.items())
        named.sort(key=_first)
        return positional, named

    def _split(self, bound):
        positional, named = [], []
        contiguous = True
        for name, param in self.signature.parameters.items():
            kind = param.kind
            if kind in _POSITIONAL:
                if name not in bound.arguments:
                    contiguous = False
                elif contiguous:
                    positional.append(bound.arguments[name])
                else:
                    named.append((name, bound.arguments[name]))
            elif kind is param.VAR_POSITIONAL:
                positional.extend(bound.arguments.get(name, ()))
            elif kind is param.KEYWORD_ONLY:
                if name in bound.arguments:
                    named.append((name, bound.arguments[name]))
            else:  # VAR_KEYWORD
                named.extend(bound.arguments.get(name, {}).items())
        named.sort(key=_first)
        return positional, named

    def patterns(self, templates, args, kwargs, separator=":"):
        """Invalidation patterns for one call: each template is a str, where {name} fields are
        replaced by that argument's key text (escaped for separator, as in keys) with glob
        characters escaped, or a callable taking the call's arguments and returning a pattern
        or a list of them."""
        out = []
        fields = None
        formatter = None
        for t in templates:
            if callable(t):
                got = t(*args, **kwargs)
                out.extend([got] if isinstance(got, (str, bytes)) else list(got))
            elif "{" in t:
                if fields is None:
                    if self.signature is None:
                        fields = dict(kwargs)
                    else:
                        bound = self.signature.bind(*args, **kwargs)
                        bound.apply_defaults()
                        fields = dict(bound.arguments)
                    formatter = _PatternFormatter(separator)
                out.append(formatter.vformat(t, args, fields))
            else:
                out.append(t)
        return out


# First characters after which a str needs _str_text's checks (tags, numbers).
_SLOW_STARTS = frozenset(_TAG_STARTS) | _NUMBER_STARTS


class _Converted(str):
    """A field given a conversion ({x!s}, {x!r}): written as that text, not as a key part."""


class _PatternFormatter(string.Formatter):
    """str.format for invalidation patterns: a field is rendered exactly like the key part of
    its value, then escaped so that an argument value containing '*' or '[' matches only
    itself. A format spec ({n:05d}) or a conversion ({x!r}) gives that text instead."""

    def __init__(self, separator=":"):
        super().__init__()
        self.separator = separator

    def convert_field(self, value, conversion):
        if conversion is None:
            return value
        return _Converted(super().convert_field(value, conversion))

    def format_field(self, value, format_spec):
        if format_spec or isinstance(value, _Converted):
            text = format(str(value) if isinstance(value, _Converted) else value, format_spec)
        else:
            text = key_part(value, self.separator)
        return escape_glob(text)
