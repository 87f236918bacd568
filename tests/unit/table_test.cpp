// table_test.cpp - the single-key operations, TTLs, limits and capacity, through the C ABI.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include <random>
#include <string>
#include <vector>

#include "shm/clock.h"
#include "shm/test_hooks.h"
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

namespace {

struct Stored {
    std::string k, v;
    uint32_t flags;
};

// Every entry's value and flags, through shmc_get (lock-free when the entry is one extent).
void check_stored(TestCache& t, const std::vector<Stored>& all) {
    std::string buf(8192, '\0');
    for (const Stored& w : all) {
        CAPTURE(w.k);
        size_t n = 0;
        uint32_t flags = 1234;
        REQUIRE(shmc_get(t.c, w.k.data(), w.k.size(), buf.data(), buf.size(), &n, &flags,
                         nullptr) == 0);
        CHECK(std::string(buf.data(), n) == w.v);
        CHECK(flags == w.flags);
    }
}

}  // namespace

TEST_CASE(
    "the optional fields (flags, a gathered entry's extent) read back, and survive a rebuild") {
    using namespace shmcache::shm;
    shmc_options o = TestCache::defaults();
    o.n_stripes = 1;
    o.size_bytes = 2 << 20;
    TestCache t("optional", o);
    // Fill the stripe until it evicts, then free every other entry: the free space is short runs,
    // so a large value must be gathered from several.
    int filled = 0;
    for (; t.stats().evictions == 0; ++filled)
        t.set("small" + std::to_string(filled), std::string(100, 's'));
    for (int i = 0; i < filled; i += 2) {
        const std::string k = "small" + std::to_string(i);
        shmc_del(t.c, k.data(), k.size());
    }
    std::vector<Stored> all;
    for (int i = 0; i < 8; ++i) {
        const uint32_t flags = i % 2 ? 0xC0FFEE00u + uint32_t(i) : 0;
        const size_t len = i < 4 ? 3000 + 17 * size_t(i) : 100 + size_t(i);
        all.push_back({"opt" + std::to_string(i), std::string(len, char('a' + i)), flags});
        REQUIRE(shmc_set(t.c, all.back().k.data(), all.back().k.size(), all.back().v.data(), len,
                         flags, 0) == 0);
    }
    check_stored(t, all);
    // Overwrites in place that add and drop the flags of a value of the same size.
    for (uint32_t flags : {7u, 0u, 0xFFFFFFFFu}) {
        all[4].flags = flags;
        REQUIRE(shmc_set(t.c, all[4].k.data(), all[4].k.size(), all[4].v.data(), all[4].v.size(),
                         flags, 0) == 0);
        check_stored(t, all);
    }
    const uint64_t entries = t.stats().entries;
    {
        unit::RawSegment raw(t.name);
        StripeRef s = raw.stripe(0);
        int chained = 0, chained_flagged = 0, flagged = 0;
        for (uint32_t b = 0; b <= s.bucket_mask; ++b)
            for (uint32_t i = s.buckets[b]; i != kNil; i = s.entry(i)->bucket_next) {
                const EntryHeader* e = s.entry(i);
                chained += e->chained;
                chained_flagged += e->chained && e->has_flags;
                flagged += e->has_flags;
            }
        // Not vacuous: some entries were gathered, with and without flags.
        CHECK(chained >= 2);
        CHECK(chained_flagged >= 1);
        CHECK(flagged == 5);  // opt1, 3, 5, 7 and opt4 (its last flags)
        // Make the next locker rebuild the stripe, with a count it must recompute.
        s.ctl->entries = 12345;
        s.ctl->dirty.store(1);
        if (!(s.ctl->seq.load() & 1)) s.ctl->seq.fetch_add(1);
    }
    t.set("after-rebuild", "x");
    CHECK(t.stats().entries == entries + 1);
    check_stored(t, all);
}

TEST_CASE("expiry instants past 2^32 ms and past the 40 bits kept") {
    TestCache t("far-expiry");
    int64_t ttl = 0;
    char buf[8];
    size_t n = 0;
    // 60 days: the expiry (monotonic ms) needs more than 32 bits.
    const uint64_t days60 = 60ull * 24 * 3600 * 1000;
    REQUIRE(days60 > (1ull << 32));
    t.set("far", "v", days60);
    REQUIRE(shmc_get(t.c, "far", 3, buf, sizeof buf, &n, nullptr, &ttl) == 0);
    CHECK((ttl > int64_t(days60) - 5000 && ttl <= int64_t(days60)));
    CHECK(shmc_touch(t.c, "far", 3, days60 + 1000) == 0);
    REQUIRE(shmc_get(t.c, "far", 3, buf, sizeof buf, &n, nullptr, &ttl) == 0);
    CHECK((ttl > int64_t(days60) - 4000 && ttl <= int64_t(days60) + 1000));
    // Back under 2^32 ms (both halves change: the stripe is marked around the two stores).
    CHECK(shmc_touch(t.c, "far", 3, 60000) == 0);
    REQUIRE(shmc_get(t.c, "far", 3, buf, sizeof buf, &n, nullptr, &ttl) == 0);
    CHECK((ttl > 55000 && ttl <= 60000));
    // A TTL beyond what 40 bits of monotonic ms hold (34 years after boot) is clamped there:
    // the entry lives, with a TTL of decades, never a wrapped one.
    t.set("forever-ish", "v", UINT64_MAX / 2);
    REQUIRE(shmc_get(t.c, "forever-ish", 11, buf, sizeof buf, &n, nullptr, &ttl) == 0);
    CHECK(ttl > int64_t(30ull * 365 * 24 * 3600 * 1000));
    CHECK(ttl <= int64_t(shmcache::shm::kMaxExpiresMs));
    CHECK(shmc_touch(t.c, "forever-ish", 11, UINT64_MAX) == 0);
    REQUIRE(shmc_get(t.c, "forever-ish", 11, buf, sizeof buf, &n, nullptr, &ttl) == 0);
    CHECK(ttl > int64_t(30ull * 365 * 24 * 3600 * 1000));
}

TEST_CASE("optional_index reads the three optional-field bits where the compiler put them") {
    using namespace shmcache::shm;
    for (uint32_t bits = 0; bits < 8; ++bits) {
        for (uint32_t queue = 0; queue < kQueues; ++queue) {
            EntryHeader e{};
            e.tag = 0xff;  // neighbours of the byte set, to catch a read of the wrong one
            e.freq = 0xff;
            e.queue = queue;
            e.unused_bits = 7;
            e.has_timing = bits & 1;
            e.chained = (bits >> 1) & 1;
            e.has_flags = (bits >> 2) & 1;
            CAPTURE(bits);
            CHECK(optional_index(&e) == bits);
            const OptionalOffsets& o = kOptionalOffsets[bits];
            CHECK(o.timing == kEntryHeader + (e.chained ? kExtentHeader : 0));
            CHECK(o.flags == o.timing + (e.has_timing ? kTimingBytes : 0));
            CHECK(o.data == o.flags + (e.has_flags ? kFlagsBytes : 0));
            CHECK(o.payload == o.data - o.timing);
        }
    }
}

namespace {

// The expiry the segment holds for key (0 if the key is not found), read without the engine.
uint64_t raw_expiry(const std::string& name, const std::string& key) {
    using namespace shmcache::shm;
    unit::RawSegment raw(name);
    for (uint32_t i = 0; i < raw.g.n_stripes; ++i) {
        StripeRef s = raw.stripe(i);
        for (uint32_t b = 0; b <= s.bucket_mask; ++b)
            for (uint32_t x = s.buckets[b]; x != kNil; x = s.entry(x)->bucket_next) {
                const EntryHeader* e = s.entry(x);
                const char* k = reinterpret_cast<const char*>(e) + entry_data_offset(e);
                if (e->key_len == key.size() && std::memcmp(k, key.data(), key.size()) == 0)
                    return entry_expires(e);
            }
    }
    return 0;
}

// A child process touches key with ttl_ms and is killed at the first crash point it reaches.
// Returns whether it was killed (it must be, for the test to mean anything).
bool touch_killed(const std::string& name, const std::string& key, uint64_t ttl_ms) {
    const pid_t pid = fork();
    if (pid == 0) {
        shmc_cache* c = nullptr;
        if (shmc_open(name.c_str(), nullptr, &c) != 0) _exit(2);
        shmc_test_crash_after(1);
        shmc_touch(c, key.data(), key.size(), ttl_ms);
        _exit(3);  // no crash point reached
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
}

}  // namespace

TEST_CASE("a touch killed between the expiry's two halves never leaves it later than both") {
    // Expiries on either side of a multiple of 2^32 ms differ in both halves, so the touch writes
    // two words. Killed between them, the entry must never be kept past the later of its old and
    // new expiries (an earlier expiry only costs a miss): a high half written first on the way up
    // would keep it 49 days too long.
    const uint64_t now = shmcache::shm::monotonic_ms();
    const uint64_t boundary = ((now >> 32) + 1) << 32;
    const uint64_t below = boundary - now - 600'000, above = boundary - now + 600'000;
    for (const bool up : {true, false}) {
        CAPTURE(up);
        TestCache t(up ? "touch-up" : "touch-down");
        const uint64_t from = up ? below : above, to = up ? above : below;
        t.set("k", "v", from);
        const uint64_t old_expiry = raw_expiry(t.name, "k");
        REQUIRE(old_expiry != 0);
        REQUIRE(touch_killed(t.name, "k", to));
        // The kill landed between the two stores: the segment holds neither expiry, and nothing
        // later than both.
        const uint64_t left = raw_expiry(t.name, "k");
        const uint64_t latest = std::max(old_expiry, now + std::max(from, to) + 60'000);
        CHECK(left != old_expiry);
        CHECK(left <= latest);
        // And the engine, which rebuilds the stripe on its next lock, never serves it longer.
        char buf[8];
        size_t n = 0;
        int64_t ttl = 0;
        const int rc = shmc_get(t.c, "k", 1, buf, sizeof buf, &n, nullptr, &ttl);
        if (rc == 0) CHECK(uint64_t(ttl) <= std::max(from, to));
        else CHECK(rc == SHMC_E_NOTFOUND);
        CHECK(t.stats().lock_recoveries >= 1);
    }
}
