"""test_production_redis.py - the Python package against production-shaped Redis: TLS with a
client certificate (the redis_ssl_* fields and the URL's query), an ACL user, and Sentinel with
failovers (SENTINEL FAILOVER, and SIGKILL of the master) under load, where no error may reach
the application and every call stays bounded. The servers are real, started by the tests on
127.0.0.1 (redis_deployments.py)."""
import os
import subprocess
import threading
import time

import pytest

from shmcache import CacheConfig, SyncCacheManager
from redis_deployments import SentinelDeployment, TlsRedis
from shmc_test_support import cli_path, wait_subscribed_sync, wait_until, write_kept

BOUND = 0.5  # one call: the 0.1 s command timeout (once more with retry) + a busy CI machine


@pytest.fixture
def tls_redis(tmp_path):
    server = TlsRedis(tmp_path / "tls")
    yield server
    server.kill()


@pytest.fixture
def sentinel(tmp_path):
    d = SentinelDeployment(tmp_path / "sentinel")
    yield d
    d.close()


def tls_config(shm_name, server, **kw):
    return CacheConfig(shm_name=shm_name, shm_size=4 << 20, enable_monitoring=False,
                       redis_url=f"rediss://127.0.0.1:{server.tls_port}/0",
                       redis_ssl_ca_certs=server.file("ca.crt"),
                       redis_ssl_certfile=server.file("client.crt"),
                       redis_ssl_keyfile=server.file("client.key"), **kw)


def test_tls_with_a_client_certificate_from_the_config_fields(shm_name, tls_redis):
    with SyncCacheManager(tls_config(shm_name, tls_redis)) as cache:
        wait_subscribed_sync(cache)
        assert cache.set("user:1", {"name": "Ada"}) is True
        assert cache.get("user:1") == {"name": "Ada"}
        plain = tls_redis.client()
        assert plain.exists("user:1") == 1  # stored in Redis, over TLS
        stats = cache.get_stats()
        assert stats["l2_cache"]["connected"] is True
        assert stats["l2_detail"]["invalidation_mode"] == 2  # tracking, over the TLS link
        # Another service writes through the plain port: the TLS subscriber drops the copy.
        cache.set("k", "mine")
        plain.delete("k")
        wait_until(lambda: cache.get("k") is None, what="the external delete to reach L1")


def test_tls_settings_in_the_url_query_work_too(shm_name, tls_redis):
    url = (f"rediss://127.0.0.1:{tls_redis.tls_port}/0?ssl_ca_certs={tls_redis.file('ca.crt')}"
           f"&ssl_certfile={tls_redis.file('client.crt')}"
           f"&ssl_keyfile={tls_redis.file('client.key')}&ssl_server_name=localhost")
    with SyncCacheManager(CacheConfig(shm_name=shm_name, shm_size=4 << 20, redis_url=url,
                                      enable_monitoring=False)) as cache:
        assert cache.set("q", 1) is True
        assert tls_redis.client().get("q") is not None


def test_tls_a_server_not_trusted_is_a_bounded_miss_never_an_error(shm_name, tls_redis):
    # The client trusts its own certificate's CA... as the server's: wrong CA for the server.
    cfg = CacheConfig(shm_name=shm_name, shm_size=4 << 20, enable_monitoring=False,
                      redis_url=f"rediss://127.0.0.1:{tls_redis.tls_port}/0",
                      redis_ssl_ca_certs=tls_redis.file("client.crt"),
                      redis_ssl_certfile=tls_redis.file("client.crt"),
                      redis_ssl_keyfile=tls_redis.file("client.key"))
    with SyncCacheManager(cfg) as cache:
        for i in range(5):
            t = time.monotonic()
            assert cache.get(f"absent:{i}", "default") == "default"
            assert time.monotonic() - t < BOUND
        assert cache.get_stats()["l2_cache"]["connected"] is False


def test_tls_files_that_cannot_be_loaded_fail_at_start_naming_them(shm_name, tls_redis):
    cfg = tls_config(shm_name, tls_redis)
    cfg.redis_ssl_ca_certs = "/nonexistent/ca.pem"
    with pytest.raises(Exception, match="ssl_ca_certs"):
        SyncCacheManager(cfg).start()


def test_acl_user_and_password_over_tls(shm_name, tls_redis):
    plain = tls_redis.client()
    plain.execute_command("ACL", "SETUSER", "app", "on", ">app-secret", "~*", "&*", "+@all")
    cfg = tls_config(shm_name, tls_redis)
    cfg.redis_url = f"rediss://app:app-secret@127.0.0.1:{tls_redis.tls_port}/0"
    with SyncCacheManager(cfg) as cache:
        wait_subscribed_sync(cache)
        assert cache.set("acl", "ok") is True
        users = [c["user"] for c in plain.client_list()]
        assert users.count("app") >= 2  # the pool's connection and the subscriber's
        assert "app-secret" not in repr(cfg)


def test_cli_speaks_tls(shm_name, tls_redis):
    base = [cli_path(), "--name", shm_name, "--redis", f"rediss://127.0.0.1:{tls_redis.tls_port}/0",
            "--redis-tls-ca", tls_redis.file("ca.crt"), "--redis-tls-cert",
            tls_redis.file("client.crt"), "--redis-tls-key", tls_redis.file("client.key")]
    env = dict(os.environ)
    subprocess.run(base + ["set", "cli-key", "cli-value"], check=True, env=env, timeout=20)
    assert tls_redis.client().get("cli-key").endswith(b"cli-value")  # in its value envelope
    out = subprocess.run(base + ["get", "--tier", "l2", "cli-key"], check=True, env=env,
                         capture_output=True, text=True, timeout=20).stdout
    assert "cli-value" in out


@pytest.mark.parametrize("how", ["SENTINEL FAILOVER", "SIGKILL of the master"])
def test_sentinel_failover_under_load_no_error_reaches_the_application(shm_name, sentinel, how):
    cfg = CacheConfig(shm_name=shm_name, shm_size=8 << 20, redis_url=sentinel.url,
                      enable_monitoring=False)
    with SyncCacheManager(cfg) as cache:
        wait_subscribed_sync(cache)
        assert cache.set("before", "v0") is True
        assert sentinel.master.client().get("before") is not None

        calls = {"n": 0, "slowest": 0.0}
        errors = []
        stop = threading.Event()

        @cache.cached(ttl=60)
        def square(i):
            return i * i

        def load():
            i = 0
            while not stop.is_set():
                t = time.monotonic()
                try:
                    k = i % 200
                    assert square(k) == k * k  # never another call's value
                    cache.set(f"load:{k}", k)
                    got = cache.get(f"load:{k}")
                    assert got is None or isinstance(got, int)
                except Exception as e:  # noqa: BLE001 - the test is that there are none
                    errors.append(repr(e))
                calls["slowest"] = max(calls["slowest"], time.monotonic() - t)
                calls["n"] += 1
                i += 1

        threads = [threading.Thread(target=load) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        if how == "SENTINEL FAILOVER":
            sentinel.sentinel.client().execute_command("SENTINEL", "FAILOVER", "mymaster")
        else:
            sentinel.master.kill()
        sentinel.wait_failed_over()
        # Writes reach the new master (the replica, promoted).
        wait_until(lambda: cache.set("after", "v1") and
                   sentinel.replica.client().get("after") is not None,
                   timeout=15, what="writes on the new master")
        recovered = time.monotonic() - t0
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join()
        print(f"{how}: writes on the new master after {recovered * 1000:.0f} ms; "
              f"{calls['n']} calls, slowest {calls['slowest'] * 1000:.1f} ms")
        assert errors == []
        assert calls["n"] > 50
        # Three operations per iteration, each bounded.
        assert calls["slowest"] < 3 * BOUND
        # And the cache works on the new master, cross-process invalidation included.
        assert cache.set("x", "new") is True
        wait_until(lambda: cache.get("x") == "new", what="x read back")
        sentinel.replica.client().set("x", '"external"')
        wait_until(lambda: cache.get("x") != "new", timeout=5,
                   what="the external write on the new master to reach L1")


def test_tracking_watches_only_the_key_prefix_namespace(shm_name, redis_server):
    # Several applications share one Redis: with key_prefix set, this host's subscriber hears
    # of writes to its own namespace only (tracking_prefix), not of every write to the database.
    cfg = CacheConfig(shm_name=shm_name, shm_size=4 << 20, redis_url=redis_server.url,
                      key_prefix="app1", enable_monitoring=False)
    with SyncCacheManager(cfg) as cache:
        wait_subscribed_sync(cache)
        # Through write_kept (shmc_test_support): its own echo is counted before `applied`.
        write_kept(lambda: cache.set("k", "v"), shm_name, b"app1:k")
        assert cache.get("k") == "v"
        applied = cache.get_stats()["l2_detail"]["invalidations_applied"]
        other = redis_server.client()
        for i in range(20):
            other.set(f"app2:{i}", "x")
        other.delete("app1:k")
        wait_until(lambda: cache.get("k") is None, what="the namespace's write to reach L1")
        assert cache.get_stats()["l2_detail"]["invalidations_applied"] - applied == 1
