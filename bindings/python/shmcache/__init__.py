"""shmcache - a host-wide shared-memory cache for multi-process Python services.

Every worker process of a host (gunicorn, uvicorn) maps the same shared-memory segment, so a
value one worker computed is a hit for all the others; Redis can sit behind it as a second tier
shared between hosts. This package is a ctypes binding over libshmcache's C ABI with the API of
the "Comprehensive Caching System" guide:

    from shmcache import CacheConfig, create_cache_manager, cached

    cache = create_cache_manager(CacheConfig(redis_url="redis://localhost:6379/0"))
    await cache.start()

    @cached(ttl=300, key_prefix="user_profile")
    async def get_user_profile(user_id): ...

Reference: docs/python.md. Importing the package loads libshmcache ($SHMCACHE_LIB, the installed
copy, a build tree, or the linker's path) and raises ShmcacheLoadError, an ImportError listing
what was tried, if none loads.
"""
from ._ffi import LIB_PATH as library_path
from ._ffi import E_NO_SEGMENT as _E_NO_SEGMENT
from ._ffi import library_version
from ._segment import unlink as _unlink
from .config import CacheConfig, CacheStrategy, CacheTier
from .errors import (BadEnvelopeError, BadPatternError, CorruptSegmentError, InitTimeoutError,
                     InvalidArgumentError, KeyTooLongError, L2NotConfiguredError,
                     L2ReplyError, L2UnavailableError, LockTimeoutError, NoSegmentError,
                     NoSpaceError, SegmentBusyError, SegmentPermissionError, ShmcacheError,
                     ShmcacheLoadError, ValueTooLargeError, VersionMismatchError)
from .manager import (CacheManager, SyncCacheManager, cache_invalidate, cached,
                      create_cache_manager, get_cache_manager, set_cache_manager)

from ._version import __version__  # one version: see _version.py


def destroy_segment(name, force=False):
    """Remove the segment called name (shmc_unlink). False if there was none; raises
    SegmentBusyError while other processes are attached unless force, which removes it anyway
    (they keep working on the old memory until they exit)."""
    from ._ffi import raise_for

    rc = _unlink(name, force)
    if rc == 0:
        return True
    if rc == _E_NO_SEGMENT:
        return False
    raise_for(rc)


__all__ = [
    "CacheConfig", "CacheStrategy", "CacheTier", "CacheManager", "SyncCacheManager",
    "create_cache_manager", "get_cache_manager", "set_cache_manager", "cached",
    "cache_invalidate", "destroy_segment", "library_version", "library_path", "__version__",
    "ShmcacheError", "ShmcacheLoadError", "KeyTooLongError", "ValueTooLargeError",
    "BadPatternError", "VersionMismatchError", "SegmentPermissionError", "NoSpaceError",
    "LockTimeoutError", "L2UnavailableError", "L2NotConfiguredError", "L2ReplyError",
    "BadEnvelopeError", "CorruptSegmentError", "InitTimeoutError", "InvalidArgumentError",
    "NoSegmentError", "SegmentBusyError",
]
