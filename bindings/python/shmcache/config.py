"""config.py - CacheConfig, CacheStrategy and CacheTier: what a cache manager is told to do.

CacheConfig mirrors the "Comprehensive Caching System" guide's configuration (field names kept,
so code written for the guide keeps working) plus what a shared-memory L1 needs: the segment's
name and size, the serializer, and the Redis timeouts. Every field is checked when the object is
made (__post_init__), so a bad setting fails at start-up with a ValueError naming the field, not
later inside a request. CacheConfig.from_env() reads the guide's environment variables; a bad
value there names the variable.

Geometry (shm_size, memory_cache_size, memory_cache_strategy) is applied only by the process
that creates the segment; later openers get the segment's own geometry (see docs/python.md).
"""
import dataclasses
import enum
import importlib.util
import os
import re
import urllib.parse
from typing import Optional, Union

MIB = 1024 * 1024
MAX_TTL_SECONDS = 100 * 365 * 24 * 3600  # the CLI's bound too: a TTL above this is a typo
MAX_LOCAL_CACHE_SIZE = 10_000_000  # decoded objects per process: more is a typo


class CacheStrategy(enum.IntEnum):
    """L1 eviction strategy; values are the library's SHMC_STRATEGY_* (pinned).

    Made from a member, its int value, or its name in any case, as the guide's code does:
    CacheStrategy("TTL"), CacheStrategy("lru"), CacheStrategy(os.getenv("CACHE_STRATEGY",
    "TTL"))."""

    DEFAULT = 0  # the engine's default: W-TinyLFU
    LRU = 1
    LFU = 2
    FIFO = 3
    TTL = 4  # soonest to expire first
    SIEVE = 5
    S3FIFO = 6
    WTINYLFU = 7  # a FIFO window, then admission by a frequency sketch ("w-tinylfu")

    @classmethod
    def parse(cls, value):
        """A CacheStrategy from itself, its int value, or its name in any case ("s3-fifo" too)."""
        if isinstance(value, cls):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(value)
        if isinstance(value, str):
            name = value.strip().upper().replace("-", "").replace("_", "")
            if name in cls.__members__:
                return cls[name]
        raise ValueError(f"unknown strategy {value!r}; one of: " +
                         ", ".join(m.name.lower() for m in cls))

    @classmethod
    def _missing_(cls, value):
        # CacheStrategy("lru"): a name, as the guide's string-valued enum takes it.
        if isinstance(value, str):
            name = value.strip().upper().replace("-", "").replace("_", "")
            if name in cls.__members__:
                return cls[name]
        return None

    @property
    def label(self):
        """The lower-case name, as the guide's string values read ("lru", "ttl")."""
        return self.name.lower()


class CacheTier(enum.IntEnum):
    """Which tiers a call acts on; values are the library's SHMC_TIER_* masks. Made from a
    member, its int value, or its name in any case: CacheTier("l2")."""

    L1 = 1  # this host's shared memory
    L2 = 2  # Redis
    BOTH = 3

    @classmethod
    def parse(cls, value):
        if isinstance(value, cls):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(value)
        if isinstance(value, str) and value.strip().upper() in cls.__members__:
            return cls[value.strip().upper()]
        raise ValueError(f"unknown tier {value!r}; one of: l1, l2, both")

    @classmethod
    def _missing_(cls, value):
        if isinstance(value, str) and value.strip().upper() in cls.__members__:
            return cls[value.strip().upper()]
        return None


SERIALIZERS = ("json", "msgpack", "pickle")


class ConfigError(ValueError):
    """A CacheConfig field is invalid. `.field` names it; `.reason` is the message without it."""

    def __init__(self, field, reason):
        super().__init__(f"CacheConfig.{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclasses.dataclass(repr=False)
class CacheConfig:
    """Configuration of a CacheManager. See docs/python.md for each field."""

    # Redis (L2). redis_url None: L1 only.
    redis_url: Optional[str] = None
    redis_ttl: float = 3600.0  # seconds: default TTL of L2 entries (0: never expire)
    redis_max_connections: int = 16  # per process; also the size of the L2 thread pool
    redis_retry_on_timeout: bool = True
    redis_connect_timeout: float = 0.25  # seconds
    redis_command_timeout: float = 0.1  # seconds: the bound on any one Redis call
    # TLS (rediss:// URLs only; the same names as redis-py's). None: not set (the URL's query may
    # set them too; a field set here wins).
    redis_ssl_ca_certs: Optional[str] = None  # PEM file of CAs; default: the system's
    redis_ssl_certfile: Optional[str] = None  # client certificate (PEM)
    redis_ssl_keyfile: Optional[str] = None   # its key (default: in the certificate file)
    redis_ssl_server_name: Optional[str] = None  # name the certificate must carry (default: host)
    redis_ssl_cert_reqs: Optional[str] = None  # "required" (default) or "none" (tests only)
    # Shared memory (L1).
    memory_cache_size: int = 1000  # max entries in the segment (0: limited by memory only)
    memory_cache_ttl: float = 300.0  # seconds: default TTL of L1 entries (0: never expire)
    memory_cache_strategy: CacheStrategy = CacheStrategy.DEFAULT
    shm_name: str = "shmcache"
    shm_size: int = 64 * MIB  # bytes; Docker's default /dev/shm is only 64 MiB in all
    # Tiers and keys.
    # False: one tier, the one cache_tier names (L2: Redis only; L1 or BOTH: shared memory only,
    # redis_url ignored), as the guide's single-tier configuration reads.
    enable_multi_tier: bool = True
    cache_tier: CacheTier = CacheTier.BOTH  # tier of calls that do not name one
    key_prefix: str = ""  # namespace put before every key and pattern
    key_separator: str = ":"
    # Values.
    serializer: str = "json"  # "json", "msgpack" or "pickle" (signed; needs pickle_secret)
    pickle_secret: Optional[Union[bytes, str]] = None
    enable_compression: bool = True
    compression_threshold: int = 1024  # bytes: values at least this long are zstd-compressed
    # Monitoring and warming.
    enable_monitoring: bool = True
    monitor_interval: float = 60.0  # seconds between statistics log lines
    enable_cache_warming: bool = True
    warming_batch_size: int = 100
    # Decoded-object reuse, per process (0: off, every hit decodes a fresh copy). While a value is
    # unchanged, gets return the SAME object each time, as functools.lru_cache does: callers must
    # not mutate what they get (docs/python.md).
    local_cache_size: int = 1024

    def __post_init__(self):
        if self.redis_url is not None:
            _require(isinstance(self.redis_url, str), "redis_url", "must be a string or None")
            self.redis_url = self.redis_url.strip() or None
        if self.redis_url is not None:
            _check_redis_url(self.redis_url)
        for name in _TLS_FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            _require(isinstance(value, str) and value, name, "must be a non-empty string or None")
            _require(self.redis_url is not None and
                     self.redis_url.startswith("rediss"), name,
                     "needs a TLS URL: redis_url='rediss://...'")
        if self.redis_ssl_cert_reqs is not None:
            _require(self.redis_ssl_cert_reqs in ("required", "none"), "redis_ssl_cert_reqs",
                     f"must be 'required' or 'none', got {self.redis_ssl_cert_reqs!r}")
        _number("redis_ttl", self.redis_ttl, 0, MAX_TTL_SECONDS)
        _integer("redis_max_connections", self.redis_max_connections, 1, 1024)
        _boolean("redis_retry_on_timeout", self.redis_retry_on_timeout)
        _number("redis_connect_timeout", self.redis_connect_timeout, 0.001, 60, low_open=False)
        _number("redis_command_timeout", self.redis_command_timeout, 0.001, 60, low_open=False)
        _integer("memory_cache_size", self.memory_cache_size, 0, 2**63 - 1)
        _number("memory_cache_ttl", self.memory_cache_ttl, 0, MAX_TTL_SECONDS)
        _integer("local_cache_size", self.local_cache_size, 0, MAX_LOCAL_CACHE_SIZE)
        self.memory_cache_strategy = _parsed("memory_cache_strategy", CacheStrategy,
                                             self.memory_cache_strategy)
        _check_shm_name(self.shm_name)
        _integer("shm_size", self.shm_size, MIB, 2**63 - 1)
        _boolean("enable_multi_tier", self.enable_multi_tier)
        self.cache_tier = _parsed("cache_tier", CacheTier, self.cache_tier)
        _require(self.cache_tier != CacheTier.L2 or self.redis_url is not None, "cache_tier",
                 "L2 (Redis only) needs redis_url")
        _require(isinstance(self.key_prefix, str), "key_prefix", "must be a string")
        _require(isinstance(self.key_separator, str), "key_separator", "must be a string")
        _require(len(self.key_prefix.encode()) <= 1024, "key_prefix",
                 "must be at most 1024 bytes (keys are at most 4096 bytes, namespace included)")
        self._check_serializer()
        _boolean("enable_compression", self.enable_compression)
        _integer("compression_threshold", self.compression_threshold, 1, 2**63 - 1)
        _boolean("enable_monitoring", self.enable_monitoring)
        _number("monitor_interval", self.monitor_interval, 0, 86400, low_open=True)
        _boolean("enable_cache_warming", self.enable_cache_warming)
        _integer("warming_batch_size", self.warming_batch_size, 1, 1_000_000)

    def _check_serializer(self):
        _require(isinstance(self.serializer, str) and self.serializer.lower() in SERIALIZERS,
                 "serializer", f"must be one of {', '.join(SERIALIZERS)}, got {self.serializer!r}")
        self.serializer = self.serializer.lower()
        if isinstance(self.pickle_secret, str):
            self.pickle_secret = self.pickle_secret.encode()
        _require(self.pickle_secret is None or isinstance(self.pickle_secret, bytes),
                 "pickle_secret", "must be bytes, str or None")
        if self.serializer == "pickle":
            _require(bool(self.pickle_secret), "pickle_secret",
                     "is required with serializer='pickle': pickled values are signed with it "
                     "(HMAC-SHA256) and only values carrying a valid signature are unpickled")
            _require(len(self.pickle_secret) >= 16, "pickle_secret",
                     "must be at least 16 bytes")
        if self.serializer == "msgpack" and importlib.util.find_spec("msgpack") is None:
            raise ConfigError("serializer", "'msgpack' needs the msgpack module "
                              "(Debian: python3-msgpack)")

    @property
    def l2_url(self):
        """redis_url with the redis_ssl_* fields added to its query (what the library gets)."""
        if self.redis_url is None:
            return None
        extra = [(name[len("redis_"):], getattr(self, name)) for name in _TLS_FIELDS
                 if getattr(self, name) is not None]
        if not extra:
            return self.redis_url
        base, _, query = self.redis_url.partition("?")
        # Fields win over the same names in the URL.
        names = {n for n, _ in extra}
        kept = [item for item in query.split("&") if item and item.split("=", 1)[0] not in names]
        items = kept + [f"{n}={urllib.parse.quote(v, safe='/')}" for n, v in extra]
        return base + "?" + "&".join(items)

    @property
    def l2_enabled(self):
        """True if this configuration asks for a Redis tier."""
        return bool(self.redis_url) and (self.enable_multi_tier or
                                         self.cache_tier == CacheTier.L2)

    def __repr__(self):
        # Hand-written so that secrets never reach a log: the URL's password is masked and the
        # pickle secret is not shown at all.
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "redis_url" and value:
                value = redact_url(value)
            elif f.name == "pickle_secret" and value is not None:
                value = "<hidden>"
                parts.append(f"{f.name}={value}")
                continue
            parts.append(f"{f.name}={value!r}")
        return "CacheConfig(" + ", ".join(parts) + ")"

    @classmethod
    def from_env(cls, environ=None, **overrides):
        """A CacheConfig from environment variables (see ENV_VARS); keyword arguments win.

        A value that cannot be parsed or is out of range raises ValueError naming the variable.
        """
        env = os.environ if environ is None else environ
        kwargs = config_kwargs_from_env(env)
        kwargs.update(overrides)
        try:
            return cls(**kwargs)
        except ConfigError as e:
            # Name the variable that sets the field (even when unset: CACHE_SERIALIZER=pickle
            # without CACHE_PICKLE_SECRET is fixed by setting the latter), unless the field came
            # from an argument, whose name is then the right one.
            var = env_var_for_field(e.field)
            if e.field not in overrides and var != e.field:
                raise ValueError(f"{var}: {e.reason}") from e
            raise


# ---- field checks --------------------------------------------------------------------------------
def _require(ok, field, reason):
    if not ok:
        raise ConfigError(field, reason)


def _boolean(field, value):
    _require(isinstance(value, bool), field, f"must be True or False, got {value!r}")


def _integer(field, value, low, high):
    _require(isinstance(value, int) and not isinstance(value, bool), field,
             f"must be an integer, got {value!r}")
    _require(low <= value <= high, field, f"must be between {low} and {high}, got {value}")


def _number(field, value, low, high, low_open=False):
    _require(isinstance(value, (int, float)) and not isinstance(value, bool), field,
             f"must be a number of seconds, got {value!r}")
    _require(value == value, field, "must not be NaN")
    if low_open:
        _require(low < value <= high, field, f"must be above {low} and at most {high}, got {value}")
    else:
        _require(low <= value <= high, field, f"must be between {low} and {high}, got {value}")


def _parsed(field, enum_cls, value):
    try:
        return enum_cls.parse(value)
    except ValueError as e:
        raise ConfigError(field, str(e)) from None


def _check_shm_name(name):
    _require(isinstance(name, str) and name, "shm_name", "must be a non-empty string")
    _require("/" not in name and "\0" not in name, "shm_name",
             f"must not contain '/' or NUL (it names /dev/shm/<shm_name>), got {name!r}")
    _require(name not in (".", ".."), "shm_name", f"{name!r} is not a file name")
    _require(len(name.encode()) <= 250, "shm_name", "must be at most 250 bytes")


_TLS_FIELDS = ("redis_ssl_ca_certs", "redis_ssl_certfile", "redis_ssl_keyfile",
               "redis_ssl_server_name", "redis_ssl_cert_reqs")
_URL_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel", "redis+cluster",
                "rediss+cluster")


def _check_redis_url(url):
    # A first check with a clear message; the library checks the whole grammar at start-up.
    scheme, sep, rest = url.partition("://")
    _require(bool(sep) and scheme in _URL_SCHEMES, "redis_url",
             f"must start with one of {', '.join(s + '://' for s in _URL_SCHEMES)}, got "
             f"{redact_url(url)!r}")
    if "+" in scheme:
        # Several hosts (host:port,[v6]:port): urllib cannot parse these netlocs.
        hosts = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
        _require(bool(hosts), "redis_url", f"has no hosts: {redact_url(url)!r}")
        return
    try:
        parsed = urllib.parse.urlsplit(url)
    except ValueError as e:
        raise ConfigError("redis_url", f"{e}: {redact_url(url)!r}") from None
    if parsed.scheme in ("redis", "rediss"):
        _require(bool(parsed.hostname), "redis_url", f"has no host: {redact_url(url)!r}")
        try:
            parsed.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ConfigError("redis_url", f"has a bad port: {redact_url(url)!r}") from None
        _require(re.fullmatch(r"/?\d*", parsed.path or "") is not None, "redis_url",
                 f"database must be a number (redis://host:port/N): {redact_url(url)!r}")
    elif parsed.scheme == "unix":  # a cluster's seed list is checked by the library
        _require(bool(parsed.path), "redis_url", f"has no socket path: {redact_url(url)!r}")


def redact_url(url):
    """The URL with any password replaced by '***', for logs and reprs.

    Parsed by hand rather than with urllib, which gives up on several hosts with IPv6 and on
    passwords with an unescaped '?', '#' or '/': everything before the last '@' after the scheme
    is the userinfo, and only its user part is kept (so a doubtful URL loses more, never less)."""
    head, sep, rest = url.partition("://")
    if not sep:
        return "<unparsable url>"
    at = rest.rfind("@")
    if at >= 0 and ":" in rest[:at]:
        rest = rest[:at].split(":", 1)[0] + ":***" + rest[at:]
    # password= and sentinel_password= in the query.
    rest = re.sub(r"(password=)[^&#]*", r"\1***", rest)
    return f"{head}://{rest}"


# ---- the environment ------------------------------------------------------------------------------
# _envconfig.py - CacheConfig.from_env(): the environment variables and their parsers.
#
# One table, ENV_VARS: variable -> (CacheConfig field, parser). The guide's variables come first;
# the others are this package's. An unset variable leaves the field's default; a set but empty one
# too (so `REDIS_URL=` in a compose file means "no Redis"). A value that does not parse raises
# ValueError naming the variable; range checks happen in CacheConfig and are renamed to the
# variable by from_env().


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
    return CacheStrategy.parse(text)


def _tier(text):
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
    "REDIS_SSL_CA_CERTS": ("redis_ssl_ca_certs", _text),
    "REDIS_SSL_CERTFILE": ("redis_ssl_certfile", _text),
    "REDIS_SSL_KEYFILE": ("redis_ssl_keyfile", _text),
    "REDIS_SSL_SERVER_NAME": ("redis_ssl_server_name", _text),
    "REDIS_SSL_CERT_REQS": ("redis_ssl_cert_reqs", _text),
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
