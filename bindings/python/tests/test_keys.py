"""test_keys.py - the key scheme: readable decorator keys that the guide's patterns match, the
namespace, digests stable across processes, and escaped invalidation patterns."""
import dataclasses
import datetime
import enum
import os
import subprocess
import sys
import uuid

import pytest

from shmcache import _ffi
from shmcache.keys import FunctionKeys, KeySpace, digest, escape_glob, key_part


def get_user_profile(user_id):
    return user_id


def report(year, month, fmt="pdf", *, region=None, **extra):
    return year


class Color(enum.Enum):
    RED = "red"
    BLUE = 2


@dataclasses.dataclass
class Point:
    x: int
    y: int


@dataclasses.dataclass
class Point2:
    x: int
    y: int


def glob(pattern, key):
    return _ffi.lib.shmc_glob_match(pattern.encode(), len(pattern.encode()), key.encode(),
                                    len(key.encode())) == 1


def test_the_guides_example_key_and_patterns():
    key = FunctionKeys(get_user_profile, "user_profile").key((123,), {})
    assert key == "user_profile:123"
    assert glob("user_profile:*", key) and glob("user_profile:123*", key)
    assert not glob("user_profile:124*", key)


def test_args_join_in_order_and_kwargs_sort_as_k_eq_v():
    k = FunctionKeys(report, "report")
    assert k.key((2024, 10), {}) == "report:2024:10"
    assert k.key((2024, 10, "csv"), {}) == "report:2024:10:csv"
    assert k.key((2024, 10), {"region": "eu", "zeta": 1, "alpha": 2}) == \
        "report:2024:10:alpha=2:region=eu:zeta=1"
    assert k.key((2024, 10), {}, separator="/") == "report/2024/10"


def test_binding_makes_positional_and_keyword_calls_the_same_key():
    k = FunctionKeys(report, "report")
    assert k.key((2024,), {"month": 10}) == k.key((2024, 10), {}) == \
        k.key((), {"month": 10, "year": 2024})
    # Defaults not passed are not in the key; a later argument after a skipped one is named.
    def page(section, number=1, size=20):
        return section

    p = FunctionKeys(page, "page")
    assert p.key(("news",), {}) == "page:news"
    assert p.key(("news",), {"size": 50}) == "page:news:size=50"
    assert p.key(("news", 2), {"size": 50}) == "page:news:2:50"


def test_without_prefix_the_function_is_named_module_qualname():
    assert FunctionKeys(get_user_profile).key((1,), {}) == \
        f"{__name__}.get_user_profile:1"


def test_simple_values_are_text():
    assert [key_part(v) for v in ("a b", 7, -1.5, True, None, Color.RED, Color.BLUE)] == \
        ["a b", "7", "-1.5", "True", "None", "red", "2"]
    assert [key_part(v) for v in (1.0, 1e100, float("inf"), "café", "2024-10-01", "acme")] == \
        ["1.0", "1e+100", "inf", "café", "2024-10-01", "acme"]


def test_ambiguous_strings_are_tagged_and_special_characters_escaped():
    assert [key_part(v) for v in ("1", "-1.5", "1e3", "nan", "None", "True", "False", "")] == \
        ["'1", "'-1.5", "'1e3", "'nan", "'None", "'True", "'False", "'"]
    assert [key_part(v) for v in ("'x", "#0123456789abcdef", "<a.B>")] == \
        ["''x", "'#0123456789abcdef", "'<a.B>"]
    assert [key_part(v) for v in ("a:b", "k=v", "50%", "a/b")] == \
        ["a%3Ab", "k%3Dv", "50%25", "a/b"]
    assert key_part("a/b", "/") == "a%2Fb" and key_part("a:b", "/") == "a:b"
    assert key_part(-1.5, "-") == "%2D1.5" and key_part("x→y", "→") == "x%E2%86%92y"


def test_complex_values_are_stable_short_digests():
    a = key_part({"b": [1, 2], "a": {3, 1, 2}})
    assert a == key_part({"a": {1, 2, 3}, "b": [1, 2]})  # order of dict keys and sets ignored
    assert a.startswith("#") and len(a) == 17
    assert key_part([1, 2]) != key_part([2, 1])
    assert key_part(Point(1, 2)) == digest(Point(1, 2)) != digest({"x": 1, "y": 2})
    long_text = "x" * 200
    assert key_part(long_text) == digest(long_text) and len(key_part(long_text)) == 17
    # Typed: values that JSON would confuse stay apart.
    confusable = [[1, 2], (1, 2), {1: "a"}, {"1": "a"}, [1], [1.0], [True], ["1"], [None],
                  [b"ab"], ["6162"], [uuid.UUID(int=1)], [str(uuid.UUID(int=1))],
                  [datetime.date(2024, 1, 2)], ["2024-01-02"], "y" * 200, ["y" * 200],
                  {"x": 1, "y": 2}, Point(1, 2), Point2(1, 2), [Point(1, 2)]]
    assert len({key_part(v) for v in confusable}) == len(confusable)


def test_digests_are_the_same_in_another_process():
    value = {"user": 1, "tags": ["a", "b"], "when": None}
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from shmcache.keys import key_part; "
            "print(key_part({'tags': ['a', 'b'], 'when': None, 'user': 1}))")
    out = subprocess.run([sys.executable, "-c", code, sys.path[0]], capture_output=True,
                         text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin",
                              "PYTHONPATH": ":".join(sys.path),
                              # the package loads the library on import: the one under test
                              **{k: v for k, v in os.environ.items()
                                 if k in ("SHMCACHE_LIB", "LD_PRELOAD", "ASAN_OPTIONS",
                                          "LSAN_OPTIONS", "UBSAN_OPTIONS")}})
    assert out.stdout.strip() == key_part(value)


def test_an_object_without_a_stable_repr_is_refused_with_advice():
    class Session:
        pass

    with pytest.raises(TypeError, match="memory address.*__cache_key__.*key_builder"):
        key_part(Session())

    class Keyed:
        def __cache_key__(self):
            return "tenant-7"

    assert key_part(Keyed()) == "tenant-7"


class Repo:
    """A tenant's repository: the tenant is part of every key of its methods."""

    def __init__(self, tenant):
        self.tenant = tenant

    def __cache_key__(self):
        return self.tenant

    def get(self, item_id):
        return (self.tenant, item_id)

    @classmethod
    def build(cls, n):
        return n


class SubRepo(Repo):
    pass


def test_methods_key_the_instance_and_the_class():
    k = FunctionKeys(Repo.get, "repo")
    assert k.key((Repo("acme"), 1), {}) == "repo:acme:1"
    assert k.key((Repo("globex"), 1), {}) == "repo:globex:1"
    assert k.key((), {"self": Repo("acme"), "item_id": 1}) == "repo:acme:1"
    b = FunctionKeys(Repo.build.__func__, "b")
    assert b.key((Repo, 3), {}) == f"b:<{__name__}.Repo>:3"
    assert b.key((SubRepo, 3), {}) == f"b:<{__name__}.SubRepo>:3"
    # Without a prefix: the function's module.qualname, then the instance.
    assert FunctionKeys(Repo.get).key((Repo("acme"), 1), {}) == f"{__name__}.Repo.get:acme:1"


def test_an_instance_without_a_stable_key_is_refused_at_the_call():
    class Service:
        def profile(self, user_id):
            return user_id

    k = FunctionKeys(Service.profile, "svc")  # decorating is fine
    with pytest.raises(TypeError, match="Service.profile.*memory address.*__cache_key__.*"
                                        "ignore_self=True"):
        k.key((Service(), 5), {})
    with pytest.raises(TypeError, match="ignore_self=True"):
        k.key((), {"self": Service(), "user_id": 5})


def test_instances_keyed_by_content_dataclass_pydantic_and_repr():
    @dataclasses.dataclass
    class Client:
        region: str

        def fetch(self, n):
            return n

    k = FunctionKeys(Client.fetch, "c")
    assert k.key((Client("eu"), 1), {}) == f"c:{digest(Client('eu'))}:1"
    assert k.key((Client("eu"), 1), {}) != k.key((Client("us"), 1), {})

    import pydantic

    class Settings(pydantic.BaseModel):
        tenant: str

        def load(self, n):
            return n

    m = FunctionKeys(Settings.load, "s")
    assert m.key((Settings(tenant="acme"), 1), {}) == m.key((Settings(tenant="acme"), 1), {})
    assert m.key((Settings(tenant="acme"), 1), {}) != m.key((Settings(tenant="globex"), 1), {})
    assert key_part(Settings(tenant="acme")) != key_part({"tenant": "acme"})

    class Named:
        def __init__(self, name):
            self.name = name

        def __repr__(self):
            return f"Named({self.name!r})"

        def get(self, n):
            return n

    n = FunctionKeys(Named.get, "n")
    assert n.key((Named("a"), 1), {}) != n.key((Named("b"), 1), {})


def test_ignore_self_leaves_the_instance_out():
    class Service:
        def profile(self, user_id, *, full=False):
            return user_id

        @classmethod
        def build(cls, n):
            return n

    k = FunctionKeys(Service.profile, "svc", ignore_self=True)
    assert k.key((Service(), 5), {}) == k.key((Service(), 5), {}) == "svc:5"
    assert k.key((Service(), 5), {"full": True}) == "svc:5:full=True"
    assert k.key((), {"self": Service(), "user_id": 5}) == "svc:5"
    assert FunctionKeys(Service.build.__func__, "b", ignore_self=True).key((Service, 3), {}) == \
        "b:3"
    with pytest.raises(TypeError, match="ignore_self=True.*not a method"):
        FunctionKeys(get_user_profile, "u", ignore_self=True)


# ---- injectivity ---------------------------------------------------------------------------------
TRICKY = [0, 1, -1, 2, 12, 1.0, -1.0, 0.0, -0.0, 1.5, 1e100, float("inf"), float("-inf"), True,
          False, None, "", " ", "0", "1", "-1", "1.0", "1e+100", "inf", "-inf", "nan", "None",
          "True", "False", "true", "a", "acme", "a:b", ":", "::", "a::b", "1:2", "a=1", "=",
          "x=", "%", "%3A", "%25", "a%3Ab", "'", "''", "'1", "#", "#0123456789abcdef", "<",
          "<a.B>", "\\", "a\\:b", '"', "a/b", "/", "|", ".", "-", "→", "é", "日本", "\x00",
          "\n", "a b", "*", "?", "[a]", "a[!b]*", "x" * 128, "x" * 129, "x" * 200, Color.RED,
          Color.BLUE, (1, 2), [1, 2], {"a": 1}, Point(1, 2), b"ab", "\ud800"]


def typed(value):
    """An identity for values that the keys must tell apart (1 and 1.0 and True are three)."""
    if isinstance(value, enum.Enum):  # a member is keyed as its value, by design
        value = value.value
    return (type(value).__name__, repr(value))


def many(*args, **kwargs):
    return args


def mixed(a, b=0, *rest, k=None, **more):
    return a


def call_shapes():
    """(args, kwargs) pairs over the tricky values: positional tuples of up to 3, and keyword
    arguments whose names or values are tricky too."""
    for a in TRICKY:
        yield (a,), {}
        for b in TRICKY:
            yield (a, b), {}
    sample = TRICKY[::5]
    for a in sample:
        for b in sample:
            for c in sample:
                yield (a, b, c), {}
            yield (a,), {"k": b}
            yield (a,), {"b": b}
            yield (), {"a": a, "b": b}
            yield (a,), {"x=y": b}
            yield (a,), {"k:x": b}
            yield (a,), {"": b}
    yield (), {}


def bound_identity(keys, args, kwargs):
    """What the call binds to: calls with the same identity may share a key, others not."""
    positional, named = keys._split(keys.signature.bind(*args, **kwargs))
    return (tuple(typed(v) for v in positional), tuple((k, typed(v)) for k, v in named))


@pytest.mark.parametrize("separator", [":", "/", "::", "|", ".", "-", "→", "a", "_:"])
@pytest.mark.parametrize("func", [many, mixed])
def test_distinct_arguments_never_share_a_key(func, separator):
    keys = FunctionKeys(func, "p")
    seen = {}
    for args, kwargs in call_shapes():
        if func is mixed and not args and "a" not in kwargs:
            continue  # does not bind
        identity = bound_identity(keys, args, kwargs)
        key = keys.key(args, kwargs, separator)
        other = seen.setdefault(key, identity)
        assert other == identity, f"{key!r} for {other} and {identity}"
        # The parts split back apart: one per bound argument.
        assert len(key.split(separator)) - 1 == len(identity[0]) + len(identity[1])
    assert len(seen) > 5000


def test_the_reported_collisions():
    k = FunctionKeys(many, "p")
    pairs = [(("1:2",), (1, 2)), ((1,), ("1",)), ((None,), ("None",)), ((True,), ("True",)),
             ((1,), (1.0,)), ((1,), (True,)), (("",), ()), (("x" * 200,), (digest("x" * 200),)),
             ((("a", 1),), (digest(("a", 1)),))]
    for a, b in pairs:
        assert k.key(a, {}) != k.key(b, {}), (a, b)
    # A str containing "=" cannot pass for a named part.
    kw = FunctionKeys(mixed, "p")
    assert kw.key(("a", 0, "k=1"), {}) != kw.key(("a", 0), {"k": 1})
    assert kw.key(("a",), {"b": 2}) == kw.key(("a", 2), {})


def test_separators_that_cannot_work_are_refused():
    k = FunctionKeys(many, "p")
    for bad in ("", "=", "%", "a=b", "1", "D", "-E-"):
        with pytest.raises(ValueError, match="key_separator"):
            k.key((1,), {}, bad)
    assert k.key((1, "a/b"), {}, "/") == "p/1/a%2Fb"
    assert k.key((1, "a/b"), {}, ":") == "p:1:a/b"  # and back


@pytest.mark.parametrize("func", [many, mixed, report, Repo.get, len])
def test_the_fast_binding_agrees_with_inspect(func):
    keys = FunctionKeys(func, "p")
    shapes = [((), {}), ((1,), {}), ((1, 2), {}), ((1, 2, 3), {}), ((1, 2, 3, 4), {}),
              ((), {"a": 1}), ((1,), {"b": 2}), ((1,), {"k": 2, "z": 3}), ((1, 2), {"b": 3}),
              ((), {"year": 1, "month": 2}), ((1,), {"month": 2, "region": 3}),
              ((1,), {"fmt": "csv"}), ((1, 2), {"fmt": "csv", "x": 1}), ((1,), {"year": 1}),
              ((Repo("t"), 1), {}), ((Repo("t"),), {"item_id": 2}), ((), {"self": Repo("t")})]
    for args, kwargs in shapes:
        try:
            expected = keys._split(keys.signature.bind(*args, **kwargs)) \
                if keys.signature else None
        except TypeError:
            with pytest.raises(TypeError):
                keys.key(args, kwargs)
            continue
        got = keys._bind(args, kwargs) if kwargs else (list(args), [])
        assert got is None or (list(got[0]), got[1]) == (list(expected[0]), expected[1])
        keys.key(args, kwargs)


def test_namespace_prefixes_keys_and_escapes_itself_in_patterns():
    ks = KeySpace("app[1]", ":")
    assert ks.key("user:1") == b"app[1]:user:1"
    assert ks.pattern("user:*") == b"app\\[1\\]:user:*"
    assert glob(ks.pattern("user:*").decode(), ks.key("user:1").decode())
    assert not glob(ks.pattern("user:*").decode(), "app1:user:1")
    assert ks.strip(b"app[1]:user:1") == "user:1"
    assert KeySpace().key("k") == b"k" and KeySpace().pattern("k*") == b"k*"


def test_keys_must_be_nonempty_text_or_bytes():
    ks = KeySpace()
    with pytest.raises(ValueError, match="must not be empty"):
        ks.key("")
    with pytest.raises(TypeError, match="str or bytes"):
        ks.key(123)
    assert ks.key(b"\x00bin") == b"\x00bin"


def test_invalidation_templates_fill_in_arguments_escaped():
    def update_user(user_id, name=None):
        return None

    k = FunctionKeys(update_user)
    assert k.patterns(["user_profile:{user_id}*", "user_list:*"], (42,), {}) == \
        ["user_profile:42*", "user_list:*"]
    # A value with glob characters matches only itself.
    [p] = k.patterns(["user_profile:{user_id}"], ("a*[b]",), {})
    assert p == "user_profile:a\\*\\[b\\]"
    assert glob(p, "user_profile:a*[b]") and not glob(p, "user_profile:aXb")
    # Callables get the call's arguments.
    assert k.patterns([lambda user_id, name=None: [f"u:{user_id}", f"n:{name}"]], (1,),
                      {"name": "x"}) == ["u:1", "n:x"]
    # A format spec or a conversion gives that text.
    assert k.patterns(["u:{user_id:05d}", "u:{user_id!s}", "u:{name!r}"], (42,), {}) == \
        ["u:00042", "u:42", "u:None"]


@pytest.mark.parametrize("separator", [":", "/", "::"])
def test_templates_match_exactly_what_the_decorator_stored(separator):
    def profile(user_id):
        return user_id

    def update(user_id, data=None):
        return None

    stored = FunctionKeys(profile, "user_profile")
    inval = FunctionKeys(update)
    keys = {typed(v): stored.key((v,), {}, separator) for v in TRICKY}
    for v in TRICKY:
        exact, prefixed = inval.patterns(
            [f"user_profile{separator}{{user_id}}", f"user_profile{separator}{{user_id}}*"],
            (v,), {}, separator)
        for pattern in (exact, prefixed):
            assert glob(pattern, keys[typed(v)]), (pattern, keys[typed(v)])
        # The exact pattern matches that key only.
        assert [t for t, key in keys.items() if glob(exact, key)] == [typed(v)]
    # A method's instance, by its __cache_key__, in a template too.
    get = FunctionKeys(Repo.get, "repo")
    [p] = FunctionKeys(Repo.get).patterns(["repo:{self}:*"], (Repo("a:b"), 1), {})
    assert glob(p, get.key((Repo("a:b"), 7), {})) and not glob(p, get.key((Repo("a"), 7), {}))


def test_escape_glob():
    assert escape_glob("plain:key") == "plain:key"
    assert escape_glob("a*b?c[d]e\\f") == "a\\*b\\?c\\[d\\]e\\\\f"
