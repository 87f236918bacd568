"""conftest.py - fixtures for the shmcache-cli tests: where the binary and library are, a
segment name of its own for every test (destroyed afterwards), and helpers to run the CLI and
the ctypes helper processes (shmc_ctypes.py).

scripts/test.sh exports SHMCACHE_CLI and SHMCACHE_LIB from its build directory; by hand they
default to build/tools/cli/shmcache-cli and build/lib/libshmcache.so under the repository root.
"""
import itertools
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
HELPER = os.path.join(HERE, "shmc_ctypes.py")
_counter = itertools.count()


def cli_path():
    return os.environ.get("SHMCACHE_CLI") or os.path.join(ROOT, "build", "tools", "cli",
                                                          "shmcache-cli")


def lib_path():
    return os.environ.get("SHMCACHE_LIB") or os.path.join(ROOT, "build", "lib", "libshmcache.so")


@pytest.fixture(scope="session", autouse=True)
def _binaries():
    for p in (cli_path(), lib_path()):
        if not os.path.exists(p):
            pytest.exit(f"{p} does not exist: build first, or set SHMCACHE_CLI/SHMCACHE_LIB",
                        returncode=1)
    os.environ["SHMCACHE_LIB"] = lib_path()  # for the helper processes


class Cli:
    """Runs shmcache-cli against one segment."""

    def __init__(self, name):
        self.name = name
        self.env = dict(os.environ)
        self.env.pop("SHMCACHE_NAME", None)

    def __call__(self, *args, input=None, name=True, env=None, timeout=60):
        argv = [cli_path()] + (["--name", self.name] if name else []) + [
            a if isinstance(a, bytes) else str(a) for a in args]
        data = input.encode() if isinstance(input, str) else input
        e = dict(self.env, **(env or {}))
        p = subprocess.run(argv, input=data, capture_output=True, env=e, timeout=timeout)
        p.out = p.stdout.decode(errors="replace")
        p.err = p.stderr.decode(errors="replace")
        return p

    def helper(self, *args, **kw):
        """Start shmc_ctypes.py as a separate process on this segment."""
        return subprocess.Popen([sys.executable, HELPER, args[0], self.name] + list(args[1:]),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, **kw)

    def dump(self, *keys):
        """Read keys from another process (ctypes + shmc_decode); {key: record}."""
        import json
        p = subprocess.run([sys.executable, HELPER, "dump", self.name] + list(keys),
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return {r["key"]: r for r in map(json.loads, p.stdout.splitlines())}


@pytest.fixture
def cli():
    name = f"shmc-t-cli-{os.getpid()}-{next(_counter)}"
    c = Cli(name)
    yield c
    subprocess.run([cli_path(), "--name", name, "destroy", "--force"], capture_output=True)
    assert not os.path.exists(f"/dev/shm/{name}")
