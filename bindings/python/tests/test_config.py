"""test_config.py - CacheConfig: defaults, validation naming the field, from_env naming the
variable, enums, and secrets kept out of reprs."""
import pytest

from shmcache import CacheConfig, CacheStrategy, CacheTier
from shmcache.config import ConfigError, redact_url


def test_defaults_are_the_guides_and_valid():
    c = CacheConfig()
    assert c.redis_url is None and not c.l2_enabled
    assert c.memory_cache_size == 1000 and c.memory_cache_ttl == 300 and c.redis_ttl == 3600
    assert c.memory_cache_strategy is CacheStrategy.DEFAULT
    assert c.cache_tier is CacheTier.BOTH
    assert c.serializer == "json" and c.shm_name == "shmcache" and c.shm_size == 64 << 20
    assert c.key_separator == ":" and c.key_prefix == ""


def test_enum_values_are_the_librarys():
    assert [(m.name, m.value) for m in CacheStrategy] == [
        ("DEFAULT", 0), ("LRU", 1), ("LFU", 2), ("FIFO", 3), ("TTL", 4), ("SIEVE", 5),
        ("S3FIFO", 6), ("WTINYLFU", 7)]
    assert (CacheTier.L1, CacheTier.L2, CacheTier.BOTH) == (1, 2, 3)


@pytest.mark.parametrize("text,expected", [
    ("lru", CacheStrategy.LRU), ("LFU", CacheStrategy.LFU), ("s3-fifo", CacheStrategy.S3FIFO),
    ("S3FIFO", CacheStrategy.S3FIFO), ("sieve", CacheStrategy.SIEVE), ("ttl", CacheStrategy.TTL),
    ("w-tinylfu", CacheStrategy.WTINYLFU), ("W_TinyLFU", CacheStrategy.WTINYLFU),
    (3, CacheStrategy.FIFO), (CacheStrategy.DEFAULT, CacheStrategy.DEFAULT)])
def test_strategy_accepts_names_and_values(text, expected):
    assert CacheConfig(memory_cache_strategy=text).memory_cache_strategy is expected


def test_tier_accepts_names():
    assert CacheConfig(cache_tier="l1").cache_tier is CacheTier.L1
    assert CacheConfig(cache_tier=2, redis_url="redis://h:1").cache_tier is CacheTier.L2
    assert CacheConfig(cache_tier="both").cache_tier is CacheTier.BOTH


def test_an_l2_only_tier_needs_redis():
    with pytest.raises(ValueError, match="cache_tier: L2 .Redis only. needs redis_url"):
        CacheConfig(cache_tier=CacheTier.L2)


def test_the_guides_enum_calls_take_names_in_any_case():
    # The guide: CacheStrategy(os.getenv("CACHE_STRATEGY", "TTL")), its enums being string-valued.
    assert CacheStrategy("TTL") is CacheStrategy.TTL
    assert CacheStrategy("lru") is CacheStrategy.LRU and CacheStrategy("s3-fifo") is CacheStrategy.S3FIFO
    assert CacheStrategy(1) is CacheStrategy.LRU
    assert CacheTier("l2") is CacheTier.L2 and CacheTier("Both") is CacheTier.BOTH
    with pytest.raises(ValueError):
        CacheStrategy("arc")
    with pytest.raises(ValueError):
        CacheTier("l3")


@pytest.mark.parametrize("field,value,words", [
    ("memory_cache_strategy", "arc", "unknown strategy 'arc'"),
    ("memory_cache_size", -1, "between 0"),
    ("memory_cache_size", 1.5, "integer"),
    ("memory_cache_ttl", -5, "between 0"),
    ("memory_cache_ttl", float("nan"), "NaN"),
    ("redis_ttl", "60", "number of seconds"),
    ("shm_size", 1000, "between 1048576"),
    ("shm_size", -(64 << 20), "between"),
    ("shm_name", "", "non-empty"),
    ("shm_name", "a/b", "must not contain '/'"),
    ("redis_max_connections", 0, "between 1"),
    ("redis_command_timeout", 0, "between"),
    ("redis_url", "http://localhost", "must start with one of redis://, rediss://, unix://"),
    ("redis_url", "redis+cluster://", "no hosts"),
    ("redis_ssl_ca_certs", "/etc/ca.pem", "needs a TLS URL"),
    ("redis_ssl_cert_reqs", "optional", "needs a TLS URL"),
    ("redis_url", "redis://h:notaport/0", "bad port"),
    ("redis_url", "redis:///0", "no host"),
    ("cache_tier", "l3", "unknown tier"),
    ("serializer", "yaml", "one of json, msgpack, pickle"),
    ("pickle_secret", 12, "bytes, str or None"),
    ("warming_batch_size", 0, "between 1"),
    ("monitor_interval", 0, "above 0"),
    ("compression_threshold", 0, "between 1"),
    ("enable_compression", "yes", "True or False"),
    ("key_prefix", None, "string"),
])
def test_a_bad_field_raises_valueerror_naming_it(field, value, words):
    with pytest.raises(ValueError) as e:
        CacheConfig(**{field: value})
    assert isinstance(e.value, ConfigError) and e.value.field == field
    assert f"CacheConfig.{field}" in str(e.value) and words in str(e.value)


def test_pickle_needs_a_secret_of_some_length():
    with pytest.raises(ValueError, match="pickle_secret.*required with serializer='pickle'"):
        CacheConfig(serializer="pickle")
    with pytest.raises(ValueError, match="at least 16 bytes"):
        CacheConfig(serializer="pickle", pickle_secret="short")
    c = CacheConfig(serializer="PICKLE", pickle_secret="s" * 16)
    assert c.serializer == "pickle" and c.pickle_secret == b"s" * 16


def test_repr_hides_the_pickle_secret_and_the_redis_password():
    c = CacheConfig(serializer="pickle", pickle_secret="top-secret-value-123",
                    redis_url="redis://user:hunter2@localhost:6379/1")
    text = repr(c)
    assert "top-secret" not in text and "hunter2" not in text
    assert "redis://user:***@localhost:6379/1" in text and "pickle_secret=<hidden>" in text


def test_multi_tier_off_means_no_l2():
    assert CacheConfig(redis_url="redis://localhost").l2_enabled
    assert not CacheConfig(redis_url="redis://localhost", enable_multi_tier=False).l2_enabled
    assert not CacheConfig(redis_url="  ").l2_enabled  # blank: no Redis


def test_from_env_reads_the_guides_variables():
    env = {"REDIS_URL": "redis://cache:6379/2", "MEMORY_CACHE_SIZE": "5000",
           "MEMORY_CACHE_TTL": "120.5", "CACHE_STRATEGY": "lfu", "ENABLE_MULTI_TIER": "false",
           "ENABLE_COMPRESSION": "0", "ENABLE_CACHE_MONITORING": "no",
           "ENABLE_CACHE_WARMING": "off", "SHMCACHE_NAME": "svc", "SHMCACHE_SIZE": "256M",
           "CACHE_KEY_PREFIX": "app", "REDIS_TTL": "60", "CACHE_TIER": "l1"}
    c = CacheConfig.from_env(env)
    assert c.redis_url == "redis://cache:6379/2" and not c.enable_multi_tier
    assert c.memory_cache_size == 5000 and c.memory_cache_ttl == 120.5
    assert c.memory_cache_strategy is CacheStrategy.LFU
    assert not (c.enable_compression or c.enable_monitoring or c.enable_cache_warming)
    assert c.shm_name == "svc" and c.shm_size == 256 << 20 and c.key_prefix == "app"
    assert c.redis_ttl == 60 and c.cache_tier is CacheTier.L1


def test_from_env_unset_or_empty_keeps_defaults_and_overrides_win():
    c = CacheConfig.from_env({"REDIS_URL": "", "MEMORY_CACHE_SIZE": "  "}, shm_name="x")
    assert c.redis_url is None and c.memory_cache_size == 1000 and c.shm_name == "x"
    c = CacheConfig.from_env({"MEMORY_CACHE_SIZE": "-3"}, memory_cache_size=10)
    assert c.memory_cache_size == 10  # the override replaced the bad value


@pytest.mark.parametrize("var,value,words", [
    ("MEMORY_CACHE_SIZE", "lots", "expected an integer"),
    ("MEMORY_CACHE_SIZE", "-10", "between 0"),
    ("MEMORY_CACHE_TTL", "5m", "number of seconds"),
    ("MEMORY_CACHE_TTL", "-1", "between 0"),
    ("CACHE_STRATEGY", "random", "unknown strategy"),
    ("ENABLE_MULTI_TIER", "maybe", "expected a boolean"),
    ("ENABLE_COMPRESSION", "2", "expected a boolean"),
    ("ENABLE_CACHE_MONITORING", "yes please", "expected a boolean"),
    ("ENABLE_CACHE_WARMING", "nope", "expected a boolean"),
    ("REDIS_URL", "localhost:6379", "must start with one of redis://"),
    ("SHMCACHE_SIZE", "64X", "size in bytes"),
    ("SHMCACHE_SIZE", "1K", "between 1048576"),
    ("SHMCACHE_NAME", "a/b", "must not contain"),
    ("CACHE_SERIALIZER", "yaml", "one of json, msgpack, pickle"),
])
def test_from_env_a_bad_variable_is_named(var, value, words):
    with pytest.raises(ValueError) as e:
        CacheConfig.from_env({var: value})
    assert str(e.value).startswith(f"{var}: ") and words in str(e.value)


def test_from_env_names_the_missing_variable_that_would_fix_it():
    with pytest.raises(ValueError, match="^CACHE_PICKLE_SECRET: is required"):
        CacheConfig.from_env({"CACHE_SERIALIZER": "pickle"})
    c = CacheConfig.from_env({"CACHE_SERIALIZER": "pickle", "CACHE_PICKLE_SECRET": "k" * 32})
    assert c.pickle_secret == b"k" * 32


@pytest.mark.parametrize("url,secret", [
    ("redis://app:s3cret@h:6379/0", "s3cret"),
    ("rediss://:pa?ss@h:6380/0", "pa?ss"),               # unescaped '?' in the password
    ("redis+sentinel://:pa/ss@h1,h2/m", "pa/ss"),
    ("redis+sentinel://h1:26379,[::1]:26379/m?sentinel_password=sp", "sp"),
    ("unix:///run/redis.sock?db=1&password=qp", "qp"),
])
def test_passwords_never_shown(url, secret):
    assert secret not in redact_url(url)
    try:
        shown = repr(CacheConfig(redis_url=url))
    except ConfigError as e:
        shown = str(e)
    assert secret not in shown


def test_sentinel_and_cluster_urls_with_ipv6_hosts_are_accepted():
    cfg = CacheConfig(redis_url="rediss+sentinel://h1:26379,[::1]:26379/m/2",
                      redis_ssl_ca_certs="/etc/my ca.pem")
    assert cfg.l2_url == "rediss+sentinel://h1:26379,[::1]:26379/m/2?ssl_ca_certs=/etc/my%20ca.pem"
    CacheConfig(redis_url="redis+cluster://[::1]:7000,[::1]:7001")


def test_the_default_strategy_is_w_tinylfu_and_an_older_default_is_no_mismatch(shm_name, caplog):
    # A segment keeps the strategy it was made with. One made by the default of an older build
    # (S3-FIFO) is what a default config asks for too: no warning. A config that names another
    # strategy is told that the segment's differs.
    from shmcache import SyncCacheManager

    def open_stats(strategy):
        config = CacheConfig(shm_name=shm_name, shm_size=8 << 20, enable_monitoring=False,
                             memory_cache_strategy=strategy)
        with SyncCacheManager(config) as cache:
            return cache.get_stats()["segment"]["strategy"]

    assert open_stats(CacheStrategy.DEFAULT) == "WTINYLFU"
    import shmcache
    shmcache.destroy_segment(shm_name, force=True)
    assert open_stats(CacheStrategy.S3FIFO) == "S3FIFO"
    caplog.clear()
    with caplog.at_level("WARNING", logger="shmcache"):
        assert open_stats(CacheStrategy.DEFAULT) == "S3FIFO"
        assert "strategy" not in caplog.text
        assert open_stats("lru") == "S3FIFO"
        assert "strategy S3FIFO (config: LRU)" in caplog.text
