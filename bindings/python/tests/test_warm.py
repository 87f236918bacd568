"""test_warm.py - warm_cache() with every kind of data source and batching, and the host-level
script `python3 -m shmcache.warm MODULE:FUNCTION`, whose values the CLI and the application
read back."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from shmc_test_support import cli_path
from shmcache import CacheConfig, CacheManager, SyncCacheManager


def records(n, prefix="w"):
    return [(f"{prefix}:{i}", {"i": i}) for i in range(n)]


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["list", "sync_fn", "generator_fn", "async_fn", "async_gen_fn",
                                  "mapping", "dict_records"])
async def test_every_kind_of_data_source(config_for, kind):
    data = records(25)

    def sync_fn():
        return data

    def generator_fn():
        yield from data

    async def async_fn():
        return data

    async def async_gen_fn():
        for item in data:
            yield item

    source = {
        "list": data, "sync_fn": sync_fn, "generator_fn": generator_fn, "async_fn": async_fn,
        "async_gen_fn": async_gen_fn, "mapping": dict(data),
        "dict_records": [{"key": k, "value": v} for k, v in data],
    }[kind]
    async with CacheManager(config_for(warming_batch_size=10)) as cache:
        report = await cache.warm(source)
        assert (report.written, report.skipped, report.batches) == (25, 0, 3)
        assert await cache.get("w:24") == {"i": 24}


@pytest.mark.asyncio
async def test_warm_cache_returns_the_count_and_honours_ttls(config_for):
    async with CacheManager(config_for()) as cache:
        n = await cache.warm_cache([("a", 1, 0.2), ("b", 2), {"key": "c", "value": 3,
                                                             "ttl": None}], ttl=60)
        assert n == 3
        import asyncio
        await asyncio.sleep(0.3)
        assert await cache.get("a") is None and await cache.get("b") == 2
        assert (await cache.get_stats())["process"]["warmed"] == 3


@pytest.mark.asyncio
async def test_unstorable_records_are_skipped_and_malformed_ones_stop_the_run(config_for):
    async with CacheManager(config_for()) as cache:
        limit = (await cache.get_stats())["segment"]["max_value_len"]
        data = [("ok", 1), ("big", os.urandom(limit + 1)), ("k" * 5000, 1), ("obj", object()),
                ("ok2", 2)]
        report = await cache.warm(data)
        # Too large for L1: stored in Redis alone when there is one.
        big_written = 1 if cache.core.has_l2 else 0
        assert (report.written, report.skipped) == (2 + big_written, 3 - big_written)
        with pytest.raises(TypeError, match="warm record 1"):
            await cache.warm_cache([("a", 1), "not a record"])
        with pytest.raises(TypeError, match="must be a callable, an iterable"):
            await cache.warm_cache(42)


@pytest.mark.asyncio
async def test_warming_disabled_loads_nothing(config_for):
    async with CacheManager(config_for(enable_cache_warming=False)) as cache:
        assert await cache.warm_cache(records(5)) == 0
        assert await cache.get("w:0") is None


def test_sync_warm_refuses_async_sources(config_for):
    async def source():
        return records(1)

    with SyncCacheManager(config_for()) as cache:
        assert cache.warm_cache(records(3)) == 3
        with pytest.raises(TypeError, match="async CacheManager.warm_cache"):
            cache.warm_cache(source)


# ---- python3 -m shmcache.warm ----------------------------------------------------------------
SOURCE_MODULE = textwrap.dedent('''
    import asyncio

    def profiles():
        return [("user_profile:%d" % i, {"id": i, "name": "user-%d" % i}) for i in range(250)]

    async def async_profiles():
        for i in range(40):
            await asyncio.sleep(0)
            yield ("async:%d" % i, i, 60)

    CONSTANTS = {"flag:a": True, "flag:b": False}

    def partly_bad():
        return [("fine", 1), ("too-long-" + "k" * 5000, 2)]

    def broken():
        raise RuntimeError("database is down")
''')


@pytest.fixture
def warm_env(tmp_path, shm_name):
    (tmp_path / "warm_sources.py").write_text(SOURCE_MODULE)
    env = dict(os.environ, SHMCACHE_NAME=shm_name, SHMCACHE_SIZE="8M")
    env.pop("REDIS_URL", None)

    def run(*args, extra_env=None):
        return subprocess.run([sys.executable, "-m", "shmcache.warm", *args], cwd=tmp_path,
                              env=dict(env, **(extra_env or {})), capture_output=True, text=True,
                              timeout=60)
    return run


def test_warm_script_loads_a_python_source_the_cli_and_the_app_read(warm_env, shm_name):
    r = warm_env("warm_sources:profiles", "--config-from-env", "--batch-size", "100")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("warm: 250 written, 0 skipped, 250 records in 3 batches;")
    assert f"segment '{shm_name}' (L1)" in r.stdout
    cli = subprocess.run([cli_path(), "--name", shm_name, "get", "user_profile:7"],
                         capture_output=True, text=True, timeout=30)
    assert cli.returncode == 0 and json.loads(cli.stdout) == {"id": 7, "name": "user-7"}
    with SyncCacheManager(CacheConfig(shm_name=shm_name, shm_size=8 << 20,
                                      enable_monitoring=False)) as cache:
        assert cache.get("user_profile:249") == {"id": 249, "name": "user-249"}


def test_warm_script_async_sources_constants_and_options(warm_env, shm_name):
    r = warm_env("warm_sources:async_profiles", "--name", shm_name, "--size", "8M",
                 "--key-prefix", "app")
    assert r.returncode == 0, r.stderr
    assert "40 written" in r.stdout
    r = warm_env("warm_sources:CONSTANTS", "--name", shm_name, "--ttl", "30")
    assert r.returncode == 0 and "2 written" in r.stdout
    with SyncCacheManager(CacheConfig(shm_name=shm_name, shm_size=8 << 20, key_prefix="app",
                                      enable_monitoring=False)) as cache:
        assert cache.get("async:39") == 39
    with SyncCacheManager(CacheConfig(shm_name=shm_name, shm_size=8 << 20,
                                      enable_monitoring=False)) as cache:
        assert cache.get("flag:b") is False


def test_warm_script_with_redis(warm_env, shm_name, redis_server):
    r = warm_env("warm_sources:profiles", "--config-from-env",
                 extra_env={"REDIS_URL": redis_server.url})
    assert r.returncode == 0, r.stderr
    assert "(L1+L2)" in r.stdout
    assert redis_server.client().get("user_profile:3") is not None


@pytest.mark.parametrize("args,status,words", [
    (["warm_sources:partly_bad"], 1, "1 written, 1 skipped"),
    (["no_such_module:fn"], 2, "cannot load no_such_module:fn"),
    (["warm_sources:missing"], 2, "AttributeError"),
    (["warm_sources"], 2, "expected MODULE:FUNCTION"),
    (["warm_sources:profiles", "--config-from-env"], 3, "MEMORY_CACHE_SIZE"),
    (["warm_sources:broken"], 4, "database is down"),
    (["warm_sources:profiles", "--ttl", "-1"], 2, "expected seconds"),
])
def test_warm_script_exit_statuses(warm_env, args, status, words):
    r = warm_env(*args, extra_env={"MEMORY_CACHE_SIZE": "many"})
    assert r.returncode == status, (r.stdout, r.stderr)
    assert words in r.stdout + r.stderr
