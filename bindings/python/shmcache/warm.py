"""python3 -m shmcache.warm MODULE:FUNCTION - warm this host's cache from a Python data source.

The Python counterpart of `shmcache-cli warm` (which reads JSON Lines): run it once per host,
for example before starting the workers or from a deploy hook, and every worker starts on a warm
shared cache. MODULE:FUNCTION names a data source as CacheManager.warm_cache() takes it: a sync
or async function (called with no arguments), or an iterable, async iterable or mapping, that
gives (key, value), (key, value, ttl) or {"key", "value", "ttl"} records. The current directory
is put on sys.path first, as gunicorn does for the application.

The configuration is CacheConfig's defaults, or the environment with --config-from-env (the
same variables as the application: REDIS_URL, CACHE_KEY_PREFIX, ...), with the options below on
top. The segment is --name, else $SHMCACHE_NAME, else "shmcache", as for shmcache-cli. Keys get the configured namespace, values the configured serializer, so
the application reads what this wrote. Warming runs even if ENABLE_CACHE_WARMING is false:
running this command is the request.

Prints one summary line on stdout:
    warm: W written, S skipped, N records in B batches; T s, R records/s; segment 'NAME' (TIERS)
Exit status: 0 every record written; 1 some were skipped (reasons on stderr through logging);
2 bad usage, or MODULE:FUNCTION cannot be imported; 3 bad configuration or the cache cannot be
opened; 4 the data source raised (records before the error stay written).
"""
import argparse
import asyncio
import importlib
import logging
import os
import sys

EXIT_OK, EXIT_SKIPPED, EXIT_USAGE, EXIT_CACHE, EXIT_SOURCE = 0, 1, 2, 3, 4


def _seconds(text):
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


def _parser():
    p = argparse.ArgumentParser(
        prog="python3 -m shmcache.warm",
        description="Warm this host's shmcache segment from a Python data source.")
    p.add_argument("source", metavar="MODULE:FUNCTION",
                   help="data source: a function (sync or async), iterable or mapping")
    p.add_argument("--config-from-env", action="store_true",
                   help="start from CacheConfig.from_env() instead of the defaults")
    p.add_argument("--name", help="segment name (shm_name); default $SHMCACHE_NAME, else "
                   "'shmcache'")
    p.add_argument("--size", help="segment size if it is created: bytes, or 64M, 1G (shm_size)")
    p.add_argument("--redis-url", help="also write Redis (redis_url); '' for L1 only")
    p.add_argument("--key-prefix", help="namespace (key_prefix)")
    p.add_argument("--serializer", choices=("json", "msgpack", "pickle"))
    p.add_argument("--batch-size", type=int, help="records per batch (warming_batch_size)")
    p.add_argument("--ttl", type=_seconds,
                   help="TTL in seconds of records without one (default: each tier's default)")
    p.add_argument("--tier", choices=("l1", "l2", "both"), help="tiers to write")
    p.add_argument("--quiet", action="store_true", help="no log lines, only the summary")
    return p


def load_source(spec):
    """The object named by MODULE:ATTR[.ATTR...]; ValueError/ImportError/AttributeError."""
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path:
        raise ValueError(f"expected MODULE:FUNCTION, got {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    obj = importlib.import_module(module_name)
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    return obj


def _config(args):
    from .config import _size
    from .config import CacheConfig

    overrides = {"enable_monitoring": False, "enable_cache_warming": True}
    # The segment is named as shmcache-cli names it: --name, else $SHMCACHE_NAME, else the
    # default, so that `warm` and `shmcache-cli stats` run side by side agree.
    name = args.name or os.environ.get("SHMCACHE_NAME", "").strip()
    if name:
        overrides["shm_name"] = name
    if args.size is not None:
        overrides["shm_size"] = _size(args.size)
    if args.redis_url is not None:
        overrides["redis_url"] = args.redis_url or None
    if args.key_prefix is not None:
        overrides["key_prefix"] = args.key_prefix
    if args.serializer is not None:
        overrides["serializer"] = args.serializer
    if args.batch_size is not None:
        overrides["warming_batch_size"] = args.batch_size
    if args.config_from_env:
        return CacheConfig.from_env(**overrides)
    return CacheConfig(**overrides)


async def _run(config, source, ttl, tier):
    from .manager import CacheManager

    manager = CacheManager(config)
    await manager.start()
    try:
        return await manager.warm(source, ttl, tier), manager.core.has_l2
    finally:
        await manager.stop()


def main(argv=None):
    from .errors import ShmcacheError

    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.WARNING,
                        format="shmcache.warm: %(message)s", stream=sys.stderr)

    def fail(status, message):
        print(f"shmcache.warm: {message}", file=sys.stderr)
        return status

    try:
        source = load_source(args.source)
    except Exception as e:  # any failure importing user code is a usage error here
        return fail(EXIT_USAGE, f"cannot load {args.source}: {type(e).__name__}: {e}")
    try:
        config = _config(args)
    except ValueError as e:
        return fail(EXIT_CACHE, f"bad configuration: {e}")
    try:
        report, has_l2 = asyncio.run(_run(config, source, args.ttl, args.tier))
    except ShmcacheError as e:
        return fail(EXIT_CACHE, f"cache '{config.shm_name}': {e}")
    except Exception as e:
        return fail(EXIT_SOURCE, f"data source {args.source} failed: {type(e).__name__}: {e}")
    tiers = "L1+L2" if has_l2 else "L1"
    print(f"{report.summary()}; segment '{config.shm_name}' ({tiers})", flush=True)
    return EXIT_SKIPPED if report.skipped else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
