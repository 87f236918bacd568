"""keys.py - how keys are made: the namespace, decorator keys, invalidation patterns.

Namespace. With CacheConfig.key_prefix set, every key and pattern given to a manager is stored
as `<key_prefix><key_separator><key>` in both tiers (the Redis tier gets no prefix of its own, so
L1 and L2 keys are identical and shmcache-cli shows them as Redis does). Patterns get the same
head with its glob metacharacters escaped, so a namespace like "app[1]" cannot widen a purge.

Decorator keys are readable, so that the patterns a service uses to invalidate match what the
decorator stored: `@cached(key_prefix="user_profile")` on `get_user_profile(123)` stores
`user_profile:123`. The arguments are bound to the function's signature first, so f(123) and
f(user_id=123) are the same key. Then:
  * leading positional parameters give `prefix:a:b`, in order, as long as none is skipped;
  * the others (keyword-only, **kwargs, and any after a skipped default) give `k=v`, sorted;
  * defaults that were not passed are not part of the key;
  * a first parameter named `self` or `cls` is left out (methods share entries across instances;
    use key_builder when the instance matters);
  * str (up to 128 characters), int, float, bool, None and Enum members are written as text;
    anything else (dicts, lists, tuples, dataclasses, longer strings) as `#` + 16 hex digits of
    a BLAKE2b digest of a canonical JSON form. An object whose repr() carries a memory address
    would give a new key in every process and never hit: it raises TypeError instead (give it
    a __cache_key__() method, or pass key_builder=).
  * without key_prefix, the prefix is `module.qualname` of the function.
"""
import dataclasses
import datetime
import decimal
import enum
import hashlib
import inspect
import json
import string
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


# ---- decorator keys ------------------------------------------------------------------------------
def _is_simple(value):
    return value is None or isinstance(value, (str, int, float, bool))


def _canonical_default(obj):
    if isinstance(obj, (set, frozenset)):
        return sorted(map(_canonical_json, obj))
    if isinstance(obj, (datetime.datetime, datetime.date, datetime.time)):
        return obj.isoformat()
    if isinstance(obj, (uuid.UUID, decimal.Decimal)):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if hasattr(obj, "__cache_key__"):
        return obj.__cache_key__()
    if hasattr(obj, "model_dump") and callable(obj.model_dump):
        return obj.model_dump()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).hex()
    text = repr(obj)
    if " at 0x" in text:
        raise TypeError(f"cannot build a stable cache key from a {type(obj).__name__} argument: "
                        f"its repr() includes a memory address ({text}). Give the class a "
                        "__cache_key__() method returning a str, or pass key_builder=")
    return f"{type(obj).__qualname__}:{text}"


def _canonical_json(value):
    return json.dumps(value, sort_keys=True, default=_canonical_default, separators=(",", ":"),
                      ensure_ascii=False)


def digest(value):
    """`#` + 16 hex digits identifying value by content (stable across processes and hosts)."""
    data = _canonical_json(value).encode("utf-8")
    return "#" + hashlib.blake2b(data, digest_size=8).hexdigest()


def key_part(value):
    """The text of one argument in a decorator key."""
    if isinstance(value, enum.Enum):
        return key_part(value.value) if _is_simple(value.value) else value.name
    if hasattr(value, "__cache_key__") and not isinstance(value, type):
        return key_part(value.__cache_key__())
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT_PART else digest(value)
    if isinstance(value, float):
        return repr(value)
    if _is_simple(value):
        return str(value)
    return digest(value)


class FunctionKeys:
    """Builds the keys (and invalidation patterns) of one decorated function."""

    def __init__(self, func, key_prefix=None):
        self.func = func
        self.prefix = key_prefix if key_prefix else f"{func.__module__}.{func.__qualname__}"
        try:
            self.signature = inspect.signature(func)
        except (TypeError, ValueError):  # some builtins and C functions have none
            self.signature = None
        params = list(self.signature.parameters.values()) if self.signature else []
        self.skip_first = bool(params) and params[0].name in ("self", "cls") and \
            params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD)

    def _bind(self, args, kwargs, defaults=False):
        bound = self.signature.bind(*args, **kwargs)
        if defaults:
            bound.apply_defaults()
        return bound

    def key(self, args, kwargs, separator=":"):
        """The user-level key (before the namespace) for one call."""
        if self.signature is None:
            positional, named = list(args), sorted(kwargs.items())
        else:
            positional, named = self._split(self._bind(args, kwargs))
        parts = [self.prefix] + [key_part(v) for v in positional]
        parts += [f"{k}={key_part(v)}" for k, v in named]
        return separator.join(parts)

    def _split(self, bound):
        positional, named = [], []
        contiguous = True
        for i, (name, param) in enumerate(self.signature.parameters.items()):
            if i == 0 and self.skip_first:
                continue
            kind = param.kind
            if kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
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
        named.sort(key=lambda kv: kv[0])
        return positional, named

    def patterns(self, templates, args, kwargs):
        """Invalidation patterns for one call: each template is a str, where {name} fields are
        replaced by that argument's key text with glob characters escaped, or a callable
        taking the call's arguments and returning a pattern or a list of them."""
        out = []
        fields = None
        for t in templates:
            if callable(t):
                got = t(*args, **kwargs)
                out.extend([got] if isinstance(got, (str, bytes)) else list(got))
            elif "{" in t:
                if fields is None:
                    fields = dict(self._bind(args, kwargs, defaults=True).arguments) \
                        if self.signature else dict(kwargs)
                out.append(_PATTERN_FORMATTER.vformat(t, args, fields))
            else:
                out.append(t)
        return out


class _PatternFormatter(string.Formatter):
    """str.format for invalidation patterns: a field is rendered like a key part, then escaped
    so that an argument value containing '*' or '[' matches only itself."""

    def format_field(self, value, format_spec):
        text = format(value, format_spec) if format_spec else key_part(value)
        return escape_glob(text)


_PATTERN_FORMATTER = _PatternFormatter()
