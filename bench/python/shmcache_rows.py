"""shmcache_rows.py - the shmcache rows of bench_peers.py.

Four ways in, from what an application calls down to the floor:
  - the package's sync facade with the default configuration (the reference row: the ratios
    are computed on it). The default keeps decoded objects per process (local_cache_size=1024):
    gets of unchanged values return the object decoded last time (the same object: see
    docs/python.md), so a hit costs the foreign call and a comparison of the stored bytes;
  - the same with local_cache_size=0: every hit decodes a fresh copy;
  - the package's async CacheManager, default configuration, awaited inside a running event
    loop (what a FastAPI handler does);
  - the ctypes floor (floor.py): no package code at all, the cheapest ctypes call, with the
    value copied out and decoded as code written by hand would (see floor.py for why the
    package can now be below it).
CONFIGURABLE names the rows a user can have by configuring the package (the floor is not one);
JUDGED the default configuration's rows, sync and async, on which the targets are judged. Each row gets a segment of its own, unlinked by its
close().
"""
import os

import floor
import peers

REFERENCE = "shmcache (sync facade)"
LOCAL = "shmcache (sync facade, local_cache_size=0)"
ASYNC = "shmcache (async manager)"
FLOOR = "shmcache (ctypes floor)"
CONFIGURABLE = (REFERENCE, LOCAL, ASYNC)
JUDGED = (REFERENCE, ASYNC)  # the default configuration, sync and async: the targets' rows


def factories(serializer, codec, dumps, loads, segment, len_keys):
    """serializer: the package's; codec: the floor's (the serializer, or "str" for text)."""
    return [(REFERENCE, lambda: _facade(serializer, segment + "-facade", len_keys)),
            (LOCAL, lambda: _facade(serializer, segment + "-fresh", len_keys, local=0)),
            (ASYNC, lambda: _manager(serializer, segment + "-async", len_keys)),
            (FLOOR, lambda: _floor(codec, dumps, loads, segment + "-floor"))]


def _floor(serializer, dumps, loads, segment):
    f = floor.Floor(segment)
    get, set = f.codec_path(serializer, dumps, loads)
    return peers.Peer(FLOOR, get, set, f.close,
                      "floor.py: shmc_get/shmc_set through ctypes without argtypes, reused "
                      "buffer, same envelope, the value copied out and decoded with the standard "
                      "codec; not the package", "shared by the host")


def _config(serializer, segment, len_keys, local=1024):
    from shmcache import CacheConfig
    return CacheConfig(shm_name=segment, serializer=serializer,
                       # Signed pickle is the package's only pickle; a throwaway secret.
                       pickle_secret=os.urandom(32) if serializer == "pickle" else None,
                       memory_cache_size=2 * len_keys,  # every key fits: no eviction
                       local_cache_size=local,
                       enable_monitoring=False)  # no statistics thread beside the loop


def _facade(serializer, segment, len_keys, local=1024):
    from shmcache import SyncCacheManager
    m = SyncCacheManager(_config(serializer, segment, len_keys, local)).start()

    def close():
        m.stop()
        floor.unlink(segment)

    codec = (f"{serializer}" + (" (HMAC-signed)" if serializer == "pickle" else "")
             + " for objects, UTF-8 for a str")
    if not local:
        return peers.Peer(LOCAL, m.get, m.set, close,
                          "as the row above, with local_cache_size=0: every hit decodes a "
                          "fresh copy of the value", "shared by the host")
    return peers.Peer(REFERENCE, m.get, m.set, close,
                      "SyncCacheManager.get/set, default configuration: L1 only (no REDIS_URL), "
                      f"local_cache_size={local} (a get of unchanged stored bytes returns the "
                      "object decoded last time, after comparing the bytes); the package's "
                      "codec: " + codec, "shared by the host")


def _manager(serializer, segment, len_keys):
    import asyncio
    from shmcache import create_cache_manager
    m = create_cache_manager(_config(serializer, segment, len_keys))
    asyncio.run(m.start())

    def close():
        asyncio.run(m.stop())
        floor.unlink(segment)

    return peers.Peer(ASYNC, m.get, m.set, close,
                      "CacheManager.get/set awaited in a running event loop (a FastAPI "
                      "handler's call)", "shared by the host", is_async=True)


def package_steps(serializer, segment, keys, value):
    """The package's own get, cut where it can be: (steps, close). The get is one function on
    the hot path (see bindings/python/shmcache/_core.py), so the cuts are the configurations:
    a local-cache hit (the foreign call and a comparison of the stored bytes, no decode), then a
    default get (the foreign call and a decode from the receive buffer); Codec.loads alone shows
    what the decode is. Reaches into internals (_core, codec); if those names change, the
    caller reports the breakdown as not run instead of guessing."""
    from shmcache import SyncCacheManager
    from shmcache._segment import unwrap
    local = SyncCacheManager(_config(serializer, segment + "-l", len(keys), 1024)).start()
    plain = SyncCacheManager(_config(serializer, segment, len(keys), 0)).start()
    for k in keys:
        plain.set(k, value)
        local.set(k, value)
        local.get(k)  # remembered
    codec, core = plain.core.codec, plain.core
    stored = {}
    for k in keys:
        _, _, got = core.segment().receive(core.stored_key(k))
        stored[k] = unwrap(bytes(got))[1:]

    def loads_only(k):
        return codec.loads(*stored[k])

    def close():
        local.stop()
        plain.stop()
        floor.unlink(segment + "-l")
        floor.unlink(segment)

    return [("package: get, default configuration (call, compare the stored bytes, same object)",
             local.get),
            ("package: get, local_cache_size=0 (call, decode from the buffer)", plain.get),
            ("package: Codec.loads alone (the decode in the row above)", loads_only)], close
