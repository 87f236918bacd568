"""test_ffi_layout.py - the ctypes mirror of shmcache.h matches the C ABI exactly.

A wrong offset in a ctypes Structure is silent: the library writes a field where Python reads
another (a pid read as a hit count). So this compiles a small C program against the real header
that prints sizeof and offsetof of every field of every structure, and the value of every
constant the package copies, and compares them with _ffi.
"""
import ctypes
import os
import shutil
import subprocess

import pytest

from shmc_test_support import REPO
from shmcache import _ffi

HEADER_DIR = os.path.join(REPO, "lib", "include")

STRUCTS = {
    "shmc_options": _ffi.Options,
    "shmc_stats": _ffi.Stats,
    "shmc_info": _ffi.Info,
    "shmc_check_report": _ffi.CheckReport,
    "shmc_l2_options": _ffi.L2Options,
    "shmc_l2_stats": _ffi.L2Stats,
    "shmc_fetch_options": _ffi.FetchOptions,
    "shmc_fetch_result": _ffi.FetchResult,
    "shmc_flight_stats": _ffi.FlightStats,
    "shmc_read": _ffi.Read,
}

CONSTANTS = {
    "SHMC_MAX_KEY_LEN": _ffi.MAX_KEY_LEN, "SHMC_MAX_VALUE_LEN": _ffi.MAX_VALUE_LEN,
    "SHMC_E_NOTFOUND": _ffi.E_NOTFOUND, "SHMC_E_EXISTS": _ffi.E_EXISTS,
    "SHMC_E_INVAL": _ffi.E_INVAL, "SHMC_E_KEY_TOO_LONG": _ffi.E_KEY_TOO_LONG,
    "SHMC_E_VALUE_TOO_LARGE": _ffi.E_VALUE_TOO_LARGE,
    "SHMC_E_BUFFER_TOO_SMALL": _ffi.E_BUFFER_TOO_SMALL,
    "SHMC_E_LOCK_TIMEOUT": _ffi.E_LOCK_TIMEOUT, "SHMC_E_NOSPC": _ffi.E_NOSPC,
    "SHMC_E_VERSION": _ffi.E_VERSION, "SHMC_E_CORRUPT": _ffi.E_CORRUPT,
    "SHMC_E_BAD_PATTERN": _ffi.E_BAD_PATTERN, "SHMC_E_PERM": _ffi.E_PERM,
    "SHMC_E_NO_SEGMENT": _ffi.E_NO_SEGMENT, "SHMC_E_BUSY": _ffi.E_BUSY,
    "SHMC_E_BAD_ENVELOPE": _ffi.E_BAD_ENVELOPE, "SHMC_E_L2_UNAVAILABLE": _ffi.E_L2_UNAVAILABLE,
    "SHMC_E_L2_NOT_CONFIGURED": _ffi.E_L2_NOT_CONFIGURED, "SHMC_E_L2_REPLY": _ffi.E_L2_REPLY,
    "SHMC_ENVELOPE_MAGIC": _ffi.ENVELOPE_MAGIC, "SHMC_ENVELOPE_HEADER": _ffi.ENVELOPE_HEADER,
    "SHMC_SER_RAW": _ffi.SER_RAW, "SHMC_SER_JSON": _ffi.SER_JSON,
    "SHMC_SER_PICKLE": _ffi.SER_PICKLE, "SHMC_SER_MSGPACK": _ffi.SER_MSGPACK,
    "SHMC_SER_STR": _ffi.SER_STR, "SHMC_TIER_L1": _ffi.TIER_L1, "SHMC_TIER_L2": _ffi.TIER_L2,
    "SHMC_TIER_BOTH": _ffi.TIER_BOTH, "SHMC_FLAG_FROM_L2": _ffi.FLAG_FROM_L2,
    "SHMC_L2_NO_SUBSCRIBE": _ffi.L2_NO_SUBSCRIBE, "SHMC_L2_NO_PUBLISH": _ffi.L2_NO_PUBLISH,
    "SHMC_OPEN_NO_CREATE": _ffi.OPEN_NO_CREATE,
    "SHMC_OPEN_ALLOW_FOREIGN_OWNER": _ffi.OPEN_ALLOW_FOREIGN_OWNER,
    "SHMC_OPEN_REPLACE_INCOMPATIBLE": _ffi.OPEN_REPLACE_INCOMPATIBLE,
    "SHMC_STRATEGY_DEFAULT": 0, "SHMC_STRATEGY_LRU": 1, "SHMC_STRATEGY_LFU": 2,
    "SHMC_STRATEGY_FIFO": 3, "SHMC_STRATEGY_TTL": 4, "SHMC_STRATEGY_SIEVE": 5,
    "SHMC_STRATEGY_S3FIFO": 6,
    "SHMC_STRATEGY_WTINYLFU": 7,
    "SHMC_FETCH_HIT": _ffi.FETCH_HIT, "SHMC_FETCH_STALE": _ffi.FETCH_STALE,
    "SHMC_FETCH_STALE_REFRESH": _ffi.FETCH_STALE_REFRESH,
    "SHMC_FETCH_EARLY_REFRESH": _ffi.FETCH_EARLY_REFRESH,
    "SHMC_FETCH_COMPUTE": _ffi.FETCH_COMPUTE,
    "SHMC_FETCH_COMPUTE_UNLEASED": _ffi.FETCH_COMPUTE_UNLEASED,
    "SHMC_FETCH_L2_LOCK": _ffi.FETCH_L2_LOCK,
    "SHMC_FETCH_BUSY": _ffi.FETCH_BUSY, "SHMC_FETCH_NO_WAIT": _ffi.FETCH_NO_WAIT,
}


def _c_program():
    lines = ["#include <stddef.h>", "#include <stdio.h>", "#include <shmcache/shmcache.h>",
             "int main(void) {"]
    for cname, cls in STRUCTS.items():
        lines.append(f'  printf("sizeof {cname} %zu\\n", sizeof({cname}));')
        for field, _ in cls._fields_:
            lines.append(f'  printf("offsetof {cname}.{field} %zu\\n", '
                         f'offsetof({cname}, {field}));')
    for name in CONSTANTS:
        lines.append(f'  printf("const {name} %lld\\n", (long long)({name}));')
    lines += ["  return 0;", "}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler: this test needs one to read the header's layout")
    d = tmp_path_factory.mktemp("layout")
    src, exe = d / "layout.c", d / "layout"
    src.write_text(_c_program())
    # Under the sanitizer run this interpreter has the ASan runtime preloaded; the compiler and
    # the probe are not instrumented and must not inherit it.
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS")}
    subprocess.run([cc, "-std=c11", "-I", HEADER_DIR, str(src), "-o", str(exe)], check=True,
                   env=env)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True, env=env).stdout
    return dict(line.rsplit(" ", 1) for line in out.splitlines())


@pytest.mark.parametrize("cname", sorted(STRUCTS))
def test_struct_size_and_every_offset_match_the_header(c_layout, cname):
    cls = STRUCTS[cname]
    assert ctypes.sizeof(cls) == int(c_layout[f"sizeof {cname}"]), cname
    for field, _ in cls._fields_:
        assert getattr(cls, field).offset == int(c_layout[f"offsetof {cname}.{field}"]), \
            f"{cname}.{field}"


def test_every_field_of_the_header_is_mirrored(c_layout):
    # The C program only knows the fields ctypes declares; a field added to the header in the
    # middle would shift offsets (caught above), one added at the end changes sizeof (also
    # caught). This checks the reserved tails are still there, which keeps sizes honest.
    for cls in STRUCTS.values():
        assert cls._fields_[-1][0] == "reserved"


def test_constants_match_the_header(c_layout):
    for name, value in CONSTANTS.items():
        assert int(c_layout[f"const {name}"]) == value, name


def test_every_exported_function_is_declared():
    exported = subprocess.run(["nm", "-D", "--defined-only", _ffi.LIB_PATH],
                              capture_output=True, text=True, check=True).stdout
    names = {line.split()[-1] for line in exported.splitlines() if " T " in line}
    declared = set(_ffi._CORE) | set(_ffi._L2) | set(_ffi._FLIGHT)
    assert names <= declared, f"exported but not declared in _ffi: {sorted(names - declared)}"
    for name in declared & names:
        assert getattr(_ffi.lib, name).argtypes is not None or name in (
            "shmc_version", "shmc_errmsg"), name
