"""_envconfig.py - CacheConfig.from_env(): the environment variables and their parsers.

One table, ENV_VARS: variable -> (CacheConfig field, parser). The guide's variables come first;
the others are this package's. An unset variable leaves the field's default; a set but empty one
too (so `REDIS_URL=` in a compose file means "no Redis"). A value that does not parse raises
ValueError naming the variable; range checks happen in CacheConfig and are renamed to the
variable by from_env().
"""
import re

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _bool(text):
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise ValueError("expected a boolean (true/false, 1/0, yes/no, on/off)")


def _int(text):
    try:
        return int(text.strip(), 10)
    except ValueError:
        raise ValueError("expected an integer") from None


def _seconds(text):
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError("expected a number of seconds") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("expected a finite number of seconds")
    return value


_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def _size(text):
    """Bytes, with an optional K/M/G suffix (powers of 1024): 67108864, 64M, 64MiB, 1g."""
    m = re.fullmatch(r"\s*(\d+)\s*([kmg]?)(i?b)?\s*", text.lower())
    if not m or (m.group(3) and not m.group(2) and m.group(3) != "b"):
        raise ValueError("expected a size in bytes, optionally with K, M or G (64M, 256MiB)")
    return int(m.group(1)) * _SIZE_UNITS[m.group(2)]


def _text(text):
    return text


def _strategy(text):
    from .config import CacheStrategy
    return CacheStrategy.parse(text)


def _tier(text):
    from .config import CacheTier
    return CacheTier.parse(text)


ENV_VARS = {
    # The guide's variables.
    "REDIS_URL": ("redis_url", _text),
    "MEMORY_CACHE_SIZE": ("memory_cache_size", _int),
    "MEMORY_CACHE_TTL": ("memory_cache_ttl", _seconds),
    "CACHE_STRATEGY": ("memory_cache_strategy", _strategy),
    "ENABLE_MULTI_TIER": ("enable_multi_tier", _bool),
    "ENABLE_COMPRESSION": ("enable_compression", _bool),
    "ENABLE_CACHE_MONITORING": ("enable_monitoring", _bool),
    "ENABLE_CACHE_WARMING": ("enable_cache_warming", _bool),
    # This package's.
    "REDIS_TTL": ("redis_ttl", _seconds),
    "REDIS_MAX_CONNECTIONS": ("redis_max_connections", _int),
    "REDIS_CONNECT_TIMEOUT": ("redis_connect_timeout", _seconds),
    "REDIS_COMMAND_TIMEOUT": ("redis_command_timeout", _seconds),
    "CACHE_TIER": ("cache_tier", _tier),
    "CACHE_KEY_PREFIX": ("key_prefix", _text),
    "CACHE_SERIALIZER": ("serializer", _text),
    "CACHE_PICKLE_SECRET": ("pickle_secret", _text),
    "CACHE_COMPRESSION_THRESHOLD": ("compression_threshold", _int),
    "CACHE_MONITOR_INTERVAL": ("monitor_interval", _seconds),
    "CACHE_WARMING_BATCH_SIZE": ("warming_batch_size", _int),
    "CACHE_LOCAL_CACHE_SIZE": ("local_cache_size", _int),
    "SHMCACHE_NAME": ("shm_name", _text),
    "SHMCACHE_SIZE": ("shm_size", _size),
}


def config_kwargs_from_env(environ):
    """CacheConfig keyword arguments for every variable set (and not empty) in environ."""
    kwargs = {}
    for var, (field, parse) in ENV_VARS.items():
        raw = environ.get(var)
        if raw is None or raw.strip() == "":
            continue
        try:
            kwargs[field] = parse(raw)
        except ValueError as e:
            raise ValueError(f"{var}: {e}, got {raw!r}") from None
    return kwargs


def env_var_for_field(field):
    for var, (f, _) in ENV_VARS.items():
        if f == field:
            return var
    return field
