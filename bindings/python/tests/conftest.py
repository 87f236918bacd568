"""conftest.py - fixtures for the Python package's tests.

* The package is imported from the source tree (bindings/python), and child processes
  (multiprocessing, subprocess, gunicorn) get the same PYTHONPATH.
* `shm_name`: a segment name of the test's own, removed afterwards (asserted gone from /dev/shm).
* `redis_server`: a real redis-server on a free loopback port, for this test only
  (RedisServer below: .url, .port, .stop()/.cont() = SIGSTOP/SIGCONT, .kill(), .restart()).
* `mode` / `config_for`: parametrize a test over L1 only and L1 + Redis; config_for(**kw) makes
  the CacheConfig for the current mode and segment.

scripts/test.sh runs these with SHMCACHE_LIB pointing into its build directory; by hand the
package finds build/lib/libshmcache.so itself.
"""
import itertools
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from shmc_test_support import HERE, PKG_ROOT, wait_subscribed_sync

if PKG_ROOT not in sys.path:
    sys.path.insert(0, PKG_ROOT)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [PKG_ROOT, HERE] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])

# Child processes may run in another directory (the warm script's tests do): a relative
# SHMCACHE_LIB, as scripts/test.sh may pass, must not change meaning there.
if os.environ.get("SHMCACHE_LIB"):
    os.environ["SHMCACHE_LIB"] = os.path.abspath(os.environ["SHMCACHE_LIB"])

SEGMENT_PREFIX = f"shmc-t-py-{os.getpid()}-"
_names = itertools.count()


@pytest.fixture(scope="session", autouse=True)
def _no_segment_left_behind():
    yield
    left = [n for n in os.listdir("/dev/shm") if n.startswith(SEGMENT_PREFIX)]
    for n in left:  # clean up anyway, then fail loudly
        os.unlink(os.path.join("/dev/shm", n))
    assert not left, f"segments left in /dev/shm: {left}"


@pytest.fixture
def shm_name():
    import shmcache

    name = f"{SEGMENT_PREFIX}{next(_names)}"
    yield name
    shmcache.destroy_segment(name, force=True)
    assert not os.path.exists(f"/dev/shm/{name}")


# ---- Redis ---------------------------------------------------------------------------------------
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ping(port, timeout=0.2):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A redis-server process of a test's own, without persistence."""

    def __init__(self, workdir):
        self.workdir = str(workdir)
        self.proc = None
        self.port = None
        for _ in range(5):  # another process may take the port between probe and bind
            self.port = _free_port()
            if self._start():
                return
        raise RuntimeError("redis-server did not start on any of 5 ports")

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def _start(self, wait=5.0):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.workdir, "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False  # exited: most likely the port was taken
            if _ping(self.port):
                return True
            time.sleep(0.01)
        self.proc.kill()
        self.proc.wait()
        return False

    def stop(self):
        """SIGSTOP: the server hangs (connections open, no answers), as a stuck Redis does."""
        self.proc.send_signal(signal.SIGSTOP)

    def cont(self):
        self.proc.send_signal(signal.SIGCONT)

    def kill(self):
        """SIGKILL and reap: connections are reset, new ones refused."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        if self.proc:
            self.proc.wait()

    def restart(self):
        """Kill, then start again on the same port (empty: no persistence)."""
        self.kill()
        if not self._start():
            raise RuntimeError(f"redis-server did not restart on port {self.port}")

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def close(self):
        self.kill()


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    yield server
    server.close()


# ---- both modes ----------------------------------------------------------------------------------
@pytest.fixture(params=["l1", "l1+l2"])
def mode(request):
    return request.param


@pytest.fixture
def config_for(request, mode, shm_name):
    """config_for(**overrides) -> CacheConfig for this test's segment and mode.

    With Redis, the first call also opens a handle that becomes the host's invalidation
    subscriber and waits until it is subscribed. Establishing a subscription drops every L1
    entry copied from or written through to Redis (entries that may have missed invalidations,
    see shmcache.h); without this, a test's own early writes could vanish from L1 whenever the
    subscription happened to come up after them.
    """
    from shmcache import CacheConfig, SyncCacheManager

    redis_url = request.getfixturevalue("redis_server").url if mode == "l1+l2" else None
    holder = []

    def make(**overrides):
        kwargs = dict(shm_name=shm_name, shm_size=8 << 20, redis_url=redis_url,
                      enable_monitoring=False)
        kwargs.update(overrides)
        config = CacheConfig(**kwargs)
        if config.l2_enabled and not holder:
            holder.append(SyncCacheManager(config).start())
            wait_subscribed_sync(holder[0])
        return config

    yield make
    for h in holder:
        h.stop()
