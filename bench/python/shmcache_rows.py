"""shmcache_rows.py - the shmcache rows of bench_peers.py.

Three ways in, from what an application calls down to the floor:
  - the package's sync facade (the reference row: the ratios and targets are computed on it);
  - the package's async CacheManager, awaited inside a running event loop (what a FastAPI
    handler does);
  - the ctypes floor (floor.py): no package code at all, the cheapest ctypes path; the gap
    between it and the facade is the package's own Python.
Each row gets a segment of its own, unlinked by its close().
"""
import os

import floor
import peers

REFERENCE = "shmcache (sync facade)"


def factories(serializer, codec, dumps, loads, segment, len_keys):
    """serializer: the package's; codec: the floor's (the serializer, or "str" for text)."""
    return [(REFERENCE, lambda: _facade(serializer, segment + "-facade", len_keys)),
            ("shmcache (async manager)", lambda: _manager(serializer, segment + "-async",
                                                          len_keys)),
            ("shmcache (ctypes floor)", lambda: _floor(codec, dumps, loads,
                                                       segment + "-floor"))]


def _floor(serializer, dumps, loads, segment):
    f = floor.Floor(segment)
    get, set = f.codec_path(serializer, dumps, loads)
    return peers.Peer("shmcache (ctypes floor)", get, set, f.close,
                      "floor.py: shmc_get/shmc_set through ctypes without argtypes, reused "
                      "buffer, same envelope and codec; not the package", "shared by the host")


def _config(serializer, segment, len_keys):
    from shmcache import CacheConfig
    return CacheConfig(shm_name=segment, serializer=serializer,
                       # Signed pickle is the package's only pickle; a throwaway secret.
                       pickle_secret=os.urandom(32) if serializer == "pickle" else None,
                       memory_cache_size=2 * len_keys,  # every key fits: no eviction
                       enable_monitoring=False)  # no statistics thread beside the loop


def _facade(serializer, segment, len_keys):
    from shmcache import SyncCacheManager
    m = SyncCacheManager(_config(serializer, segment, len_keys)).start()

    def close():
        m.stop()
        floor.unlink(segment)

    return peers.Peer(REFERENCE, m.get, m.set, close,
                      "SyncCacheManager.get/set: L1 only (no REDIS_URL); the package's codec: "
                      f"{serializer}" + (" (HMAC-signed)" if serializer == "pickle" else "")
                      + " for objects, UTF-8 for a str",
                      "shared by the host")


def _manager(serializer, segment, len_keys):
    import asyncio
    from shmcache import create_cache_manager
    m = create_cache_manager(_config(serializer, segment, len_keys))
    asyncio.run(m.start())

    def close():
        asyncio.run(m.stop())
        floor.unlink(segment)

    return peers.Peer("shmcache (async manager)", m.get, m.set, close,
                      "CacheManager.get/set awaited in a running event loop (a FastAPI "
                      "handler's call)", "shared by the host", is_async=True)


def package_steps(serializer, segment, keys, value):
    """The package's own get, cut at its layers: (steps, close). Reaches into internals
    (_core, Segment.read, Codec.loads) to time each layer alone; if those names change, the
    caller reports the breakdown as not run instead of guessing."""
    from shmcache import SyncCacheManager
    from shmcache._ffi import TIER_L1
    m = SyncCacheManager(_config(serializer, segment, len(keys))).start()
    for k in keys:
        m.set(k, value)
    core = m._core
    seg, codec, key_bytes = core.segment(), core.codec, {k: core.keys.key(k) for k in keys}

    def read(k):  # shmc_get and the envelope, with the handle's in-flight accounting
        return seg.read(key_bytes[k], TIER_L1)

    def read_loads(k):
        rc, _, ser, payload = seg.read(key_bytes[k], TIER_L1)
        return codec.loads(ser, payload)

    def close():
        m.stop()
        floor.unlink(segment)

    return [("package: Segment.read (key prebuilt: shmc_get, envelope)", read),
            ("package: + Codec.loads", read_loads),
            ("package: SyncCacheManager.get (+ key namespace, tiers, counters)", m.get)], close
