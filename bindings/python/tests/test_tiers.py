"""test_tiers.py - what Redis behind the shared L1 adds: fills, the stored bytes, two "hosts"
(two segments on one Redis) seeing each other's writes and invalidations."""
import pytest

import shmcache
from shmcache import CacheConfig, CacheManager, CacheTier, ShmcacheError, _ffi
from shmc_test_support import RawSegment, await_until, awrite_kept, wait_subscribed

pytestmark = pytest.mark.asyncio


@pytest.fixture
def second_segment(shm_name):
    name = shm_name + "-host-b"
    yield name
    shmcache.destroy_segment(name, force=True)


def cfg(name, redis_server, **kw):
    return CacheConfig(shm_name=name, shm_size=4 << 20, redis_url=redis_server.url,
                       enable_monitoring=False, **kw)


async def test_an_l2_hit_is_copied_into_l1_for_at_most_memory_cache_ttl(shm_name, redis_server):
    async with CacheManager(cfg(shm_name, redis_server, memory_cache_ttl=5)) as cache:
        await wait_subscribed(cache)
        # Through write_kept (shmc_test_support): the set's own echo, applied late, would drop the
        # copy that the get below makes from Redis.
        await awrite_kept(lambda: cache.set("p", {"v": 1}, ttl=60), shm_name, b"p")
        await cache.delete("p", tier=CacheTier.L1)
        with RawSegment(shm_name) as raw:
            assert raw.get(b"p") is None
            assert await cache.get("p") == {"v": 1}
            stored, flags, ttl_left = raw.get(b"p")
        assert flags & _ffi.FLAG_FROM_L2 and 0 < ttl_left <= 5000
        stats = await cache.get_stats()
        assert stats["process"]["hits_l2"] == 1 and stats["l2_detail"]["fills"] == 1
        assert stats["l2_cache"]["hits"] == 1
        assert await cache.get("p") == {"v": 1}
        assert (await cache.get_stats())["process"]["hits_l1"] == 1


async def test_redis_holds_the_same_envelope_bytes_as_l1(shm_name, redis_server):
    async with CacheManager(cfg(shm_name, redis_server, key_prefix="ns")) as cache:
        await wait_subscribed(cache)  # an L1 copy of a Redis value needs the host's live link
        # Kept in L1 (shmc_test_support.write_kept), where it is read below.
        await awrite_kept(lambda: cache.set("doc", "z" * 5000), shm_name, b"ns:doc")
        with RawSegment(shm_name) as raw:
            l1_bytes = raw.get(b"ns:doc")[0]
        l2_bytes = redis_server.client().get("ns:doc")
        assert l1_bytes == l2_bytes and l2_bytes[0] == _ffi.ENVELOPE_MAGIC
        assert l2_bytes[1] & 0x10  # compressed once, by the library, for both tiers


async def test_an_l2_only_get_does_not_fill_l1(shm_name, redis_server):
    async with CacheManager(cfg(shm_name, redis_server)) as cache:
        await wait_subscribed(cache)
        await cache.set("k", 1, tier=CacheTier.L2)
        assert await cache.get("k", tier=CacheTier.L2) == 1
        assert not await cache.exists("k", tier=CacheTier.L1)


async def test_two_hosts_share_values_and_invalidations(shm_name, second_segment, redis_server):
    async with CacheManager(cfg(shm_name, redis_server)) as a, \
            CacheManager(cfg(second_segment, redis_server)) as b:
        await wait_subscribed(a)
        await wait_subscribed(b)
        await a.set("user_profile:1", {"name": "ada"})

        # From Redis, and then in b's L1. a's own invalidation of the key reaches b
        # asynchronously and cancels a copy into L1 that races with it (docs/l2.md, "No stale
        # refill"), so the first get may serve the value without keeping it: ask again.
        async def b_holds_copy():
            return (await b.get("user_profile:1") == {"name": "ada"}
                    and await b.exists("user_profile:1", tier=CacheTier.L1))
        await await_until(b_holds_copy, timeout=5, what="host b to keep a copy in L1")
        # An update on host a: host b's L1 copy is dropped by the invalidation it receives.
        await a.set("user_profile:1", {"name": "grace"})

        async def b_sees_update():
            return await b.get("user_profile:1") == {"name": "grace"}
        await await_until(b_sees_update, timeout=5, what="host b to see host a's update")
        # A purge on host b removes the keys from Redis and from host a's L1.
        await a.set("user_profile:2", 2)
        assert await b.clear_pattern("user_profile:*") >= 1
        assert redis_server.client().keys("user_profile:*") == []

        async def a_purged():
            return not await a.exists("user_profile:2", tier=CacheTier.L1)
        await await_until(a_purged, timeout=5, what="host a to apply host b's purge")
        assert (await a.get_stats())["l2_detail"]["invalidations_applied"] >= 1


async def test_a_library_without_the_redis_tier_is_reported_clearly(shm_name, redis_server,
                                                                    monkeypatch):
    monkeypatch.setattr(_ffi, "HAS_L2", False)
    cache = CacheManager(cfg(shm_name, redis_server))
    with pytest.raises(ShmcacheError, match="has no Redis tier"):
        await cache.start()


async def test_a_url_the_library_refuses_fails_at_start(shm_name):
    # CacheConfig checks the scheme, host and port; the library parses the rest when the tier
    # is attached, and start() reports its message.
    cache = CacheManager(CacheConfig(shm_name=shm_name, shm_size=4 << 20, enable_monitoring=False,
                                     redis_url="unix:///tmp/redis.sock?db=notanumber"))
    with pytest.raises(shmcache.InvalidArgumentError, match="Redis URL"):
        await cache.start()
    assert not cache.core.is_open
