// table_test.cpp - the single-key operations, TTLs, limits and capacity, through the C ABI.
#include <doctest/doctest.h>
#include <unistd.h>

#include <random>
#include <string>

#include "support.h"

using unit::TestCache;

TEST_CASE("set, get, overwrite, add, delete, flags and TTL") {
    TestCache t("basic");
    t.set("k", "v1");
    CHECK(t.get("k") == "v1");
    t.set("k", std::string(5000, 'z'));
    CHECK(t.get("k") == std::string(5000, 'z'));
    CHECK(shmc_add(t.c, "k", 1, "x", 1, 0, 0) == SHMC_E_EXISTS);
    CHECK(shmc_add(t.c, "new", 3, "x", 1, 9, 0) == 0);
    uint32_t flags = 0;
    int64_t ttl = 0;
    char buf[8];
    size_t n;
    CHECK(shmc_get(t.c, "new", 3, buf, sizeof buf, &n, &flags, &ttl) == 0);
    CHECK(flags == 9);
    CHECK(ttl == -1);
    CHECK(shmc_touch(t.c, "new", 3, 60000) == 0);
    CHECK(shmc_get(t.c, "new", 3, buf, sizeof buf, &n, &flags, &ttl) == 0);
    CHECK((ttl > 59000 && ttl <= 60000));
    CHECK(shmc_del(t.c, "k", 1) == 0);
    CHECK(shmc_del(t.c, "k", 1) == SHMC_E_NOTFOUND);
    CHECK_FALSE(t.has("k"));
}

TEST_CASE("expired entries are misses and are counted") {
    TestCache t("ttl");
    t.set("short", "v", 30);
    CHECK(t.has("short"));
    usleep(60 * 1000);
    CHECK_FALSE(t.has("short"));
    CHECK(t.stats().expirations == 1);
    t.set("short", "v", 30);
    usleep(60 * 1000);
    CHECK(shmc_add(t.c, "short", 5, "w", 1, 0, 0) == 0);  // add over an expired key succeeds
}

TEST_CASE("a too-small buffer reports the size needed") {
    TestCache t("buf");
    t.set("k", "0123456789");
    char buf[4];
    size_t n = 0;
    CHECK(shmc_get(t.c, "k", 1, buf, sizeof buf, &n, nullptr, nullptr) == SHMC_E_BUFFER_TOO_SMALL);
    CHECK(n == 10);
}

TEST_CASE("incr and decr on decimal values") {
    TestCache t("incr");
    int64_t r = 0;
    CHECK(shmc_incr(t.c, "n", 1, 1, &r) == SHMC_E_NOTFOUND);
    t.set("n", "41", 60000);
    CHECK(shmc_incr(t.c, "n", 1, 1, &r) == 0);
    CHECK(r == 42);
    CHECK(shmc_incr(t.c, "n", 1, -50, &r) == 0);
    CHECK(r == -8);
    CHECK(t.get("n") == "-8");
    t.set("big", "9223372036854775807");
    CHECK(shmc_incr(t.c, "big", 3, 1, &r) == SHMC_E_RANGE);
    CHECK(t.get("big") == "9223372036854775807");
    t.set("s", "12a");
    CHECK(shmc_incr(t.c, "s", 1, 1, &r) == SHMC_E_NOT_NUMBER);
    t.set("e", "");
    CHECK(shmc_incr(t.c, "e", 1, 1, &r) == SHMC_E_NOT_NUMBER);
}

TEST_CASE("over-limit keys and values are refused and nothing else is lost") {
    TestCache t("limits");
    t.set("keep", "me");
    std::string long_key(SHMC_MAX_KEY_LEN + 1, 'k');
    CHECK(shmc_set(t.c, long_key.data(), long_key.size(), "v", 1, 0, 0) == SHMC_E_KEY_TOO_LONG);
    long_key.pop_back();
    t.set(long_key, "max key is fine");
    CHECK(t.get(long_key) == "max key is fine");
    shmc_info info;
    REQUIRE(shmc_get_info(t.c, &info) == 0);
    std::string big(info.max_value_len + 1, 'v');
    CHECK(shmc_set(t.c, "keep", 4, big.data(), big.size(), 0, 0) == SHMC_E_VALUE_TOO_LARGE);
    CHECK(std::string(shmc_errmsg()).find("limit") != std::string::npos);
    CHECK(t.get("keep") == "me");
    CHECK(shmc_set(t.c, "", 0, "v", 1, 0, 0) == SHMC_E_INVAL);
    CHECK(shmc_set(t.c, nullptr, 3, "v", 1, 0, 0) == SHMC_E_INVAL);
    CHECK(shmc_set(nullptr, "k", 1, "v", 1, 0, 0) == SHMC_E_INVAL);
}

TEST_CASE("the largest value always fits after eviction, in any state of the stripe") {
    shmc_options o = TestCache::defaults();
    o.n_stripes = 1;
    o.size_bytes = 2 << 20;
    TestCache t("maxfit", o);
    shmc_info info;
    REQUIRE(shmc_get_info(t.c, &info) == 0);
    std::mt19937 rng(7);
    const std::string big(info.max_value_len, 'B');
    for (int round = 0; round < 30; ++round) {
        for (int i = 0; i < 300; ++i) {  // churn with mixed sizes to fragment the stripe
            std::string v(rng() % 9000, char('a' + i % 26));
            t.set("f" + std::to_string(rng() % 2000), v);
        }
        REQUIRE(shmc_set(t.c, "big", 3, big.data(), big.size(), 0, 0) == 0);
        CHECK(t.get("big").size() == big.size());
    }
    shmc_check_report r;
    CHECK(shmc_check(t.c, &r) == 0);
    CHECK(r.stripes_damaged == 0);
}

TEST_CASE("max_entries is enforced") {
    shmc_options o = TestCache::defaults();
    o.max_entries = 100;
    o.n_stripes = 4;
    TestCache t("maxent", o);
    for (int i = 0; i < 1000; ++i) t.set("k" + std::to_string(i), "v");
    CHECK(t.stats().entries <= 100);
    CHECK(t.stats().evictions >= 900);
}

TEST_CASE("expired entries are reclaimed before live ones are evicted") {
    shmc_options o = TestCache::defaults();
    o.n_stripes = 1;
    o.size_bytes = 2 << 20;
    TestCache t("reclaim", o);
    for (int i = 0; i < 50; ++i) t.set("live" + std::to_string(i), std::string(100, 'L'));
    const uint64_t cap = t.stats().bytes_capacity;
    int shorts = 0;
    while (t.stats().bytes_used + 2000 < cap)
        t.set("tmp" + std::to_string(shorts++), std::string(1000, 'T'), 40);
    usleep(80 * 1000);
    for (int i = 0; i < shorts; ++i) t.set("new" + std::to_string(i), std::string(1000, 'N'));
    for (int i = 0; i < 50; ++i) CHECK(t.has("live" + std::to_string(i)));
    CHECK(t.stats().expirations >= uint64_t(shorts) / 2);
}

TEST_CASE("purge, scan and clear") {
    TestCache t("purge");
    for (int i = 0; i < 200; ++i) t.set("user:" + std::to_string(i), "u");
    for (int i = 0; i < 50; ++i) t.set("item:" + std::to_string(i), "i");
    uint64_t n = 0;
    int seen = 0;
    auto count = [](const void*, size_t, size_t, int64_t, void* ctx) {
        ++*static_cast<int*>(ctx);
        return 0;
    };
    CHECK(shmc_scan(t.c, "user:1*", 7, count, &seen) == 0);
    CHECK(seen == 111);  // 1, 10-19, 100-199
    CHECK(shmc_purge(t.c, "user:1*", 7, &n) == 0);
    CHECK(n == 111);
    CHECK(shmc_purge(t.c, "user:[", 6, &n) == SHMC_E_BAD_PATTERN);
    CHECK(t.stats().entries == 139);
    CHECK(shmc_clear(t.c, &n) == 0);
    CHECK(n == 139);
    CHECK(t.stats().entries == 0);
    shmc_check_report r;
    CHECK(shmc_check(t.c, &r) == 0);
}
