"""test_decorators.py - @cached and @cache_invalidate on async and sync functions, the
manager-bound and module-level forms, in both modes."""
import asyncio
import os
import logging

import pytest

import shmcache
from shmcache import CacheManager, SyncCacheManager, create_cache_manager, set_cache_manager


@pytest.fixture(autouse=True)
def _no_default_manager():
    previous = set_cache_manager(None)
    yield
    set_cache_manager(previous)


class Calls:
    def __init__(self):
        self.n = 0

    def __call__(self, value):
        self.n += 1
        return value


@pytest.mark.asyncio
async def test_async_function_is_computed_once(config_for):
    calls = Calls()
    async with CacheManager(config_for()) as cache:
        @cache.cached(ttl=60, key_prefix="user_profile")
        async def get_user_profile(user_id):
            await asyncio.sleep(0)
            return calls({"id": user_id})

        assert await get_user_profile(123) == {"id": 123}
        assert await get_user_profile(123) == {"id": 123}
        assert await get_user_profile(user_id=123) == {"id": 123}
        assert calls.n == 1
        assert await cache.get("user_profile:123") == {"id": 123}
        assert get_user_profile.cache_key(123) == "user_profile:123"
        await get_user_profile(124)
        assert calls.n == 2


@pytest.mark.asyncio
async def test_sync_function_stays_sync_and_shares_the_cache(config_for):
    calls = Calls()
    async with CacheManager(config_for()) as cache:
        @cache.cached(key_prefix="report")
        def build_report(year, month):
            return calls({"y": year, "m": month})

        assert not asyncio.iscoroutinefunction(build_report)
        assert build_report(2024, 10) == {"y": 2024, "m": 10}
        assert build_report(2024, 10) == {"y": 2024, "m": 10}
        assert calls.n == 1
        assert await cache.get("report:2024:10") == {"y": 2024, "m": 10}  # same entry, async


def test_sync_manager_decorator(config_for):
    calls = Calls()
    with SyncCacheManager(config_for()) as cache:
        @cache.cached
        def square(x):
            return calls(x * x)

        assert square(4) == 16 and square(4) == 16 and calls.n == 1
        assert cache.get(f"{__name__}.test_sync_manager_decorator.<locals>.square:4") == 16
        with pytest.raises(TypeError, match="standalone SyncCacheManager"):
            @cache.cached()
            async def nope():
                return 1
            asyncio.run(nope())


@pytest.mark.asyncio
async def test_module_level_decorators_resolve_the_default_manager_at_call_time(config_for):
    calls = Calls()

    @shmcache.cached(ttl=30, key_prefix="late")  # applied before any manager exists
    async def compute(x):
        return calls(x + 1)

    @shmcache.cache_invalidate("late:{x}")
    async def update(x):
        return "updated"

    with pytest.raises(RuntimeError, match="create_cache_manager"):
        await compute(1)
    cache = create_cache_manager(config_for())
    try:
        assert shmcache.get_cache_manager() is cache
        await cache.start()
        assert await compute(1) == 2 and await compute(1) == 2 and calls.n == 1
        assert await update(1) == "updated"
        assert await compute(1) == 2 and calls.n == 2
    finally:
        await cache.stop()


@pytest.mark.asyncio
async def test_none_is_not_cached_unless_asked(config_for):
    calls = Calls()
    async with CacheManager(config_for()) as cache:
        @cache.cached(key_prefix="maybe")
        async def find(x):
            return calls(None)

        @cache.cached(key_prefix="maybe_cached", cache_none=True)
        async def find_cached(x):
            return calls(None)

        await find(1), await find(1)
        assert calls.n == 2
        await find_cached(1), await find_cached(1)
        assert calls.n == 3


@pytest.mark.asyncio
async def test_key_builder_and_complex_arguments(config_for):
    calls = Calls()
    async with CacheManager(config_for()) as cache:
        @cache.cached(key_builder=lambda q, page=1: f"search:{q}:{page}")
        async def search(q, page=1):
            return calls([q, page])

        await search("cats", page=2)
        assert await cache.get("search:cats:2") == ["cats", 2]

        @cache.cached(key_prefix="filter")
        async def filtered(criteria):
            return calls(sorted(criteria))

        await filtered({"b": 1, "a": 2})
        await filtered({"a": 2, "b": 1})  # same content, same key
        assert calls.n == 2


@pytest.mark.asyncio
async def test_methods_key_on_the_instance(config_for):
    calls = Calls()
    async with CacheManager(config_for()) as cache:
        class Repo:
            def __init__(self, tenant):
                self.tenant = tenant

            def __cache_key__(self):
                return self.tenant

            @cache.cached(key_prefix="repo_user")
            async def user(self, user_id):
                return calls(f"{self.tenant}:{user_id}")

        # One tenant's value is never served to another.
        assert await Repo("acme").user(7) == "acme:7"
        assert await Repo("globex").user(7) == "globex:7"
        assert await Repo("acme").user(7) == "acme:7" and calls.n == 2

        class Anonymous:
            @cache.cached(key_prefix="anon")
            async def user(self, user_id):
                return calls(user_id)

        with pytest.raises(TypeError, match="__cache_key__"):
            await Anonymous().user(1)  # no stable key for the instance: refused, not shared

        class Shared:
            @cache.cached(key_prefix="shared", ignore_self=True)
            async def user(self, user_id):
                return calls(user_id)

        assert await Shared().user(7) == 7 and await Shared().user(7) == 7
        assert calls.n == 3 and await cache.exists("shared:7")
        assert await cache.exists("repo_user:acme:7")


@pytest.mark.asyncio
async def test_cache_invalidate_after_an_update(config_for):
    calls = Calls()
    db = {1: "ada"}
    async with CacheManager(config_for()) as cache:
        @cache.cached(key_prefix="user_profile")
        async def profile(user_id):
            return calls({"id": user_id, "name": db[user_id]})

        @cache.cache_invalidate("user_profile:{user_id}", "user_list:*")
        async def rename(user_id, name):
            db[user_id] = name
            return True

        await cache.set("user_list:page1", [1])
        assert (await profile(1))["name"] == "ada"
        assert await rename(1, "grace") is True
        assert (await profile(1))["name"] == "grace" and calls.n == 2
        assert await cache.get("user_list:page1") is None


def test_cache_invalidate_sync_and_even_when_the_function_raises(config_for):
    with SyncCacheManager(config_for()) as cache:
        @cache.cache_invalidate("item:{item_id}")
        def update(item_id):
            raise RuntimeError("half-committed update")

        cache.set("item:5", "old")
        with pytest.raises(RuntimeError):
            update(5)
        assert cache.get("item:5") is None


@pytest.mark.asyncio
async def test_a_bad_pattern_fails_before_the_function_runs(config_for):
    ran = []
    async with CacheManager(config_for()) as cache:
        @cache.cache_invalidate("broken[")
        async def update():
            ran.append(1)

        with pytest.raises(shmcache.BadPatternError):
            await update()
        assert ran == []

        @cache.cache_invalidate("x:{missing}")
        async def update2(item):
            ran.append(1)

        with pytest.raises(KeyError):
            await update2(1)
        assert ran == []


@pytest.mark.asyncio
async def test_a_result_too_large_is_returned_uncached_with_a_warning(config_for, caplog):
    async with CacheManager(config_for()) as cache:
        limit = (await cache.get_stats())["segment"]["max_value_len"]

        @cache.cached(key_prefix="big")
        async def big():
            return os.urandom(limit + 10)  # incompressible

        with caplog.at_level(logging.WARNING, logger="shmcache"):
            assert len(await big()) == limit + 10
        if cache.core.has_l2:  # too large for L1 alone: kept in Redis
            assert "stored in Redis only" in caplog.text
            assert not await cache.exists("big", tier="l1") and await cache.exists("big")
        else:
            assert "not cached" in caplog.text
            assert not await cache.exists("big")


@pytest.mark.asyncio
async def test_a_result_the_serializer_refuses_raises(config_for):
    async with CacheManager(config_for()) as cache:
        @cache.cached(key_prefix="obj")
        async def obj():
            return object()

        with pytest.raises(TypeError, match="cannot be stored as JSON"):
            await obj()


def test_decorating_a_generator_is_refused():
    with pytest.raises(TypeError, match="generator function"):
        @shmcache.cached()
        def gen():
            yield 1
