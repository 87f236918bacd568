"""test_cluster.py - a CacheManager on a real 3-master Redis Cluster (redis+cluster://): values
land on every master, clear_pattern removes the matches on each of them, and a second "host"
(segment) sees the first one's writes. The cluster is started here with subprocess (RedisCluster
below), the same way tests/l2/redis_cluster.cpp does for the C tests."""
import subprocess
import time

import pytest

import shmcache
from shmcache import CacheConfig, CacheManager
from shmc_test_support import await_until, wait_subscribed

def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(port, *args):
    return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
                          capture_output=True, text=True, timeout=10, check=True).stdout


class RedisCluster:
    """Three cluster-enabled redis-servers without persistence, joined by redis-cli --cluster
    create; up once every node reports cluster_state:ok."""

    def __init__(self, workdir, masters=3):
        self.procs, self.ports = [], []
        try:
            for _ in range(masters):
                self._start(workdir)
            _cli(self.ports[0], "--cluster", "create",
                 *[f"127.0.0.1:{p}" for p in self.ports], "--cluster-yes")
            deadline = time.monotonic() + 20
            while not all("cluster_state:ok" in _cli(p, "CLUSTER", "INFO") for p in self.ports):
                if time.monotonic() > deadline:
                    raise RuntimeError("the cluster did not reach cluster_state:ok")
                time.sleep(0.02)
        except BaseException:
            self.close()
            raise

    def _start(self, workdir):
        for _ in range(5):  # a port may be taken between the probe and the bind
            port, bus = _free_port(), _free_port()
            proc = subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(workdir), "--cluster-enabled", "yes",
                 "--cluster-config-file", f"nodes-{port}.conf", "--cluster-port", str(bus),
                 "--loglevel", "warning"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 5
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    if len(_cli(port, "CLUSTER", "MYID").strip()) == 40:
                        self.procs.append(proc)
                        self.ports.append(port)
                        return
                except subprocess.CalledProcessError:
                    pass
                time.sleep(0.01)
            proc.kill()
            proc.wait()
        raise RuntimeError("redis-server --cluster-enabled did not start on any of 5 ports")

    @property
    def url(self):
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports[:2])

    def keys(self, port, pattern):
        return _cli(port, "--scan", "--pattern", pattern).split()

    def close(self):
        for p in self.procs:
            p.kill()
            p.wait()


@pytest.fixture
def redis_cluster(tmp_path):
    cluster = RedisCluster(tmp_path)
    yield cluster
    cluster.close()


@pytest.fixture
def second_segment(shm_name):
    name = shm_name + "-host-b"
    yield name
    shmcache.destroy_segment(name, force=True)


def cfg(name, url, **kw):
    return CacheConfig(shm_name=name, shm_size=4 << 20, redis_url=url, key_prefix="pc",
                       enable_monitoring=False, **kw)


def test_the_config_takes_cluster_urls():
    assert CacheConfig(redis_url="redis+cluster://h1:7000,h2:7001").redis_url.startswith("redis+")
    assert CacheConfig(redis_url="rediss+cluster://u:p@h1:7000").redis_url.startswith("rediss+")


@pytest.mark.asyncio
async def test_set_get_and_clear_pattern_over_every_master(shm_name, second_segment, redis_cluster):
    async with CacheManager(cfg(shm_name, redis_cluster.url)) as a, \
            CacheManager(cfg(second_segment, redis_cluster.url)) as b:
        await wait_subscribed(a)
        await wait_subscribed(b)
        for i in range(60):
            assert await a.set(f"user:{i}", {"id": i}, ttl=60)
            assert await a.set(f"other:{i}", i, ttl=60)
        per_node = [len(redis_cluster.keys(p, "pc:user:*")) for p in redis_cluster.ports]
        assert sum(per_node) == 60 and all(n > 0 for n in per_node), per_node
        assert await b.get("user:7") == {"id": 7}  # host B reads through the cluster
        assert await a.set("user:7", {"id": "seven"}, ttl=60)
        async def b_sees_it():  # host B's L1 copy is invalidated (publish mode in a cluster)
            return await b.get("user:7") == {"id": "seven"}
        await await_until(b_sees_it, 2.0, what="host B to see host A's write")

        assert await a.clear_pattern("user:*") == 60
        assert all(redis_cluster.keys(p, "pc:user:*") == [] for p in redis_cluster.ports)
        assert sum(len(redis_cluster.keys(p, "pc:other:*")) for p in redis_cluster.ports) == 60
        assert await a.get("user:3") is None and await b.get("user:3") is None
        assert await b.get("other:3") == 3
        stats = await a.get_stats()
        assert stats["l2_detail"]["connected"] and stats["l2_detail"]["errors"] == 0
