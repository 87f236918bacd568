"""test_keys.py - the key scheme: readable decorator keys that the guide's patterns match, the
namespace, digests stable across processes, and escaped invalidation patterns."""
import dataclasses
import enum
import os
import subprocess
import sys

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


def test_complex_values_are_stable_short_digests():
    a = key_part({"b": [1, 2], "a": {3, 1, 2}})
    assert a == key_part({"a": {1, 2, 3}, "b": [1, 2]})  # order of dict keys and sets ignored
    assert a.startswith("#") and len(a) == 17
    assert key_part([1, 2]) != key_part([2, 1])
    assert key_part(Point(1, 2)) == digest({"x": 1, "y": 2})
    long_text = "x" * 200
    assert key_part(long_text) == digest(long_text) and len(key_part(long_text)) == 17


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


def test_methods_leave_self_and_cls_out():
    class Service:
        def profile(self, user_id):
            return user_id

        @classmethod
        def build(cls, n):
            return n

    k = FunctionKeys(Service.profile, "svc")
    assert k.key((Service(), 5), {}) == "svc:5"
    assert FunctionKeys(Service.build.__func__, "b").key((Service, 3), {}) == "b:3"


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


def test_escape_glob():
    assert escape_glob("plain:key") == "plain:key"
    assert escape_glob("a*b?c[d]e\\f") == "a\\*b\\?c\\[d\\]e\\\\f"
