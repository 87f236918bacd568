// eviction_test.cpp - each strategy picks the victim it promises, on a single-stripe cache.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "support.h"

using unit::TestCache;

static shmc_options one_stripe(uint32_t strategy, uint64_t max_entries) {
    shmc_options o = TestCache::defaults();
    o.n_stripes = 1;
    o.strategy = strategy;
    o.max_entries = max_entries;
    return o;
}

TEST_CASE("LRU evicts the least recently used") {
    TestCache t("lru", one_stripe(SHMC_STRATEGY_LRU, 3));
    t.set("a", "1"), t.set("b", "2"), t.set("c", "3");
    CHECK(t.has("a"));
    t.set("d", "4");
    CHECK_FALSE(t.has("b"));
    CHECK(t.has("a"));
}

TEST_CASE("FIFO evicts the oldest, hits or not") {
    TestCache t("fifo", one_stripe(SHMC_STRATEGY_FIFO, 3));
    t.set("a", "1"), t.set("b", "2"), t.set("c", "3");
    CHECK(t.has("a"));
    t.set("d", "4");
    CHECK_FALSE(t.has("a"));
}

TEST_CASE("SIEVE spares visited entries") {
    TestCache t("sieve", one_stripe(SHMC_STRATEGY_SIEVE, 3));
    t.set("a", "1"), t.set("b", "2"), t.set("c", "3");
    CHECK(t.has("a"));
    t.set("d", "4");
    CHECK_FALSE(t.has("b"));
    CHECK(t.has("a"));
}

TEST_CASE("LFU keeps the frequently used") {
    TestCache t("lfu", one_stripe(SHMC_STRATEGY_LFU, 8));
    t.set("hot", "h");
    for (int i = 0; i < 200; ++i) CHECK(t.has("hot"));
    for (int i = 0; i < 40; ++i) t.set("cold" + std::to_string(i), "c");
    CHECK(t.has("hot"));
}

TEST_CASE("LFU ages by the cache's turnover, not by the clock") {
    // "old" is hit 200 times, then never again; "hot" is hit 20 times per new key, and each new
    // key 3 times. Counters lose a point per turnover of the stripe (as many inserts as it holds
    // entries, at least 16), so within a few hundred inserts, well inside a second, "old" has
    // cooled below the new keys and is evicted, while "hot" (some 320 hits per turnover) stays
    // far above them. Aged by wall-clock minutes, "old" would outlive them all here.
    TestCache t("lfuage", one_stripe(SHMC_STRATEGY_LFU, 8));
    t.set("old", "o");
    t.set("hot", "h");
    for (int i = 0; i < 200; ++i) REQUIRE(t.has("old"));
    for (int i = 0; i < 2000; ++i) {
        const std::string k = "new" + std::to_string(i);
        t.set(k, "n");
        for (int j = 0; j < 3; ++j) t.has(k);
        int hot_hits = 0;
        for (int j = 0; j < 20; ++j) hot_hits += t.has("hot");
        REQUIRE(hot_hits == 20);
    }
    CHECK_FALSE(t.has("old"));
    CHECK(t.has("hot"));
}

TEST_CASE("TTL evicts the soonest to expire") {
    TestCache t("ttlpol", one_stripe(SHMC_STRATEGY_TTL, 3));
    t.set("long", "1", 600000), t.set("soon", "2", 30000), t.set("none", "3");
    t.set("d", "4", 500000);
    CHECK_FALSE(t.has("soon"));
    CHECK(t.has("long"));
    CHECK(t.has("none"));
}

// 50 keys used 3 times each, then 1000 keys stored once (one-hit wonders) in a cache of 100:
// how many of the 50 are still there.
static int hot_kept_after_scan(TestCache& t) {
    for (int i = 0; i < 50; ++i) t.set("hot" + std::to_string(i), "h");
    for (int r = 0; r < 2; ++r)
        for (int i = 0; i < 50; ++i) CHECK(t.has("hot" + std::to_string(i)));
    for (int i = 0; i < 1000; ++i) t.set("scan" + std::to_string(i), "s");
    int kept = 0;
    for (int i = 0; i < 50; ++i) kept += t.has("hot" + std::to_string(i));
    return kept;
}

TEST_CASE("S3-FIFO resists a one-time scan") {
    TestCache t("s3", one_stripe(SHMC_STRATEGY_S3FIFO, 100));
    CHECK(hot_kept_after_scan(t) >= 45);
}

// The hit ratio of `rounds` passes over `keys` distinct keys, in order, through a get and a set
// on each miss: the first pass (cold misses) not counted.
static double loop_hit_ratio(TestCache& t, int keys, int rounds) {
    int hits = 0, requests = 0;
    for (int r = 0; r < rounds; ++r)
        for (int i = 0; i < keys; ++i) {
            const std::string k = "loop" + std::to_string(i);
            const bool hit = t.has(k);
            if (!hit) t.set(k, "v");
            if (r > 0) hits += hit, ++requests;
        }
    return double(hits) / requests;
}

TEST_CASE("W-TinyLFU (the default) keeps part of a loop larger than the cache") {
    // 100 entries, a loop over 150 keys: every recency policy evicts each key just before it
    // comes back (S3-FIFO's small queue never sees a hit, so nothing reaches main), while
    // TinyLFU's admission keeps main's keys against candidates that are not used more often.
    TestCache t("tlfu-loop", one_stripe(SHMC_STRATEGY_DEFAULT, 100));
    shmc_info info;
    REQUIRE(shmc_get_info(t.c, &info) == 0);
    CHECK(info.strategy == SHMC_STRATEGY_WTINYLFU);
    const double tlfu = loop_hit_ratio(t, 150, 20);
    TestCache s3("s3-loop", one_stripe(SHMC_STRATEGY_S3FIFO, 100));
    const double s3fifo = loop_hit_ratio(s3, 150, 20);
    CAPTURE(tlfu);
    CAPTURE(s3fifo);
    CHECK(s3fifo < 0.05);
    CHECK(tlfu > 0.4);  // main holds about 90 of the 150 keys: at most 0.6
}

TEST_CASE("W-TinyLFU resists a one-time scan, and keeps each new key while it is new") {
    TestCache t("tlfu-scan", one_stripe(SHMC_STRATEGY_WTINYLFU, 100));
    CHECK(hot_kept_after_scan(t) >= 45);
    // The window holds the newest key whatever its frequency: a store is never refused.
    CHECK(t.has("scan999"));
}

// One get (and a set on a miss) of `key` through the cache; true on a hit.
static bool request(TestCache& t, const std::string& key) {
    if (t.has(key)) return true;
    t.set(key, "v");
    return false;
}

// The window's share of stripe 0, in percent.
static double window_pct(const TestCache& t) {
    unit::RawSegment raw(t.name);
    return 100.0 * raw.stripe(0).ctl->window_share / 65536;
}

// Recency-biased traffic: key j is requested twice, at step j and again 1 to 300 steps later
// (one new key a step), then never again. Returns the hit ratio of the second half.
static double reuse_once(TestCache& t, int keys) {
    std::vector<std::pair<int, int>> schedule;  // (when, key)
    for (int j = 0; j < keys; ++j) {
        schedule.push_back({2 * j, j});
        schedule.push_back({2 * (j + 1 + (j * 7919) % 300) + 1, j});
    }
    std::sort(schedule.begin(), schedule.end());
    int hits = 0, counted = 0;
    for (size_t i = 0; i < schedule.size(); ++i) {
        const bool hit = request(t, "r" + std::to_string(schedule[i].second));
        if (i >= schedule.size() / 2) hits += hit, ++counted;
    }
    return double(hits) / counted;
}

// Frequency-biased traffic: each step one of `hot` keys (a fixed pseudo-random order) and one
// key never seen before. Returns the hot keys' hit ratio over the last quarter.
static double hot_and_once(TestCache& t, int hot, int steps) {
    int hits = 0, counted = 0;
    uint64_t x = 12345;
    for (int i = 0; i < steps; ++i) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        const bool hit = request(t, "h" + std::to_string((x >> 33) % uint64_t(hot)));
        if (i >= steps * 3 / 4) hits += hit, ++counted;
        request(t, "once" + std::to_string(i));
    }
    return double(hits) / counted;
}

TEST_CASE("W-TinyLFU's window grows for recency-biased traffic and shrinks for frequency") {
    // 1000 entries, so LRU would hit every second request of reuse_once (at most 300 keys come
    // between): a window that stays at its 1% start refuses most keys before they come back.
    TestCache t("tlfu-adapt", one_stripe(SHMC_STRATEGY_WTINYLFU, 1000));
    CHECK(window_pct(t) == 0);  // not moved yet: the start share (1%) applies
    const double recency = reuse_once(t, 20000);
    const double grown = window_pct(t);
    CAPTURE(recency);
    CAPTURE(grown);
    CHECK(grown > 20);
    CHECK(recency > 0.45);  // at most 0.5: each key's first request misses
    // Now 900 hot keys, which main holds only if the window gives its room back.
    const double frequency = hot_and_once(t, 900, 60000);
    const double shrunk = window_pct(t);
    CAPTURE(frequency);
    CAPTURE(shrunk);
    CHECK(shrunk < 10);
    CHECK(frequency > 0.9);
    shmc_check_report r;
    CHECK(shmc_check(t.c, &r) == 0);
    CHECK(r.stripes_damaged == 0);
}

// Writes garbage into stripe 0's steering state: the share, both clocks and every ghost.
static void scramble_steering(const TestCache& t, uint32_t share) {
    unit::RawSegment raw(t.name);
    shmcache::shm::StripeRef s = raw.stripe(0);
    REQUIRE(s.steer_mask > 0);
    s.ctl->window_share = share;
    s.ctl->steer_clock[0] = 0xfffffff0u;
    s.ctl->steer_clock[1] = 7;
    for (uint32_t i = 0; i <= s.steer_mask; ++i) s.steer[i] = ~uint64_t(i) * 0x9e3779b97f4a7c15ull;
}

TEST_CASE("W-TinyLFU's steering state may hold anything") {
    // A process killed mid-update, or damage, may leave any value in the share, the clocks and
    // the steering table: none is trusted (the share is clamped where it is read), so the stripe
    // goes on evicting normally.
    for (uint32_t share : {0u, 1u, 0x7fffu, 0xffffffffu}) {
        CAPTURE(share);
        TestCache t("tlfu-steer-garbage", one_stripe(SHMC_STRATEGY_WTINYLFU, 200));
        scramble_steering(t, share);
        for (int i = 0; i < 5000; ++i) request(t, "g" + std::to_string((i * 7919) % 700));
        // The newest key is there whatever the share said.
        CHECK(t.has("g" + std::to_string((4999 * 7919) % 700)));
        CHECK(t.stats().evictions > 0);
        shmc_check_report r;
        CHECK(shmc_check(t.c, &r) == 0);
        CHECK(r.stripes_damaged == 0);
    }
}

TEST_CASE("rebuild clears W-TinyLFU's steering ghosts and keeps the share") {
    TestCache t("tlfu-steer-rebuild", one_stripe(SHMC_STRATEGY_WTINYLFU, 200));
    t.set("k", "v");
    scramble_steering(t, 0x4000);
    {
        unit::RawSegment raw(t.name);
        raw.stripe(0).ctl->dirty.store(1);  // as a holder killed mid-update leaves it
    }
    t.set("k2", "v2");  // the next locker rebuilds the stripe; no eviction, so no new ghost
    unit::RawSegment raw(t.name);
    shmcache::shm::StripeRef s = raw.stripe(0);
    CHECK(s.ctl->dirty.load() == 0);
    uint32_t ghosts = 0;
    for (uint32_t i = 0; i <= s.steer_mask; ++i) ghosts += s.steer[i] != 0;
    CHECK(ghosts == 0);
    CHECK(s.ctl->window_share == 0x4000);  // any share is valid: adaptation goes on from it
    CHECK(t.get("k") == "v");
}

TEST_CASE("W-TinyLFU admits a key used more often than main's victim") {
    // Fill main with 90 keys used once, then make "wanted" popular before it is stored again:
    // each earlier store counts in the sketch, so its estimate beats the idle keys' and it
    // takes a place in main that a key seen once (a candidate tied with its victim) would not.
    TestCache t("tlfu-admit", one_stripe(SHMC_STRATEGY_WTINYLFU, 100));
    for (int i = 0; i < 100; ++i) t.set("idle" + std::to_string(i), "i");
    for (int round = 0; round < 4; ++round) {
        t.set("wanted", "w");
        CHECK(shmc_del(t.c, "wanted", 6) == 0);
    }
    t.set("wanted", "w");
    // 30 keys used once push it out of the window.
    for (int i = 0; i < 30; ++i) t.set("once" + std::to_string(i), "o");
    CHECK(t.has("wanted"));
    int once_kept = 0;
    for (int i = 0; i < 20; ++i) once_kept += t.has("once" + std::to_string(i));
    CHECK(once_kept == 0);  // the first 20 were candidates tied with idle victims: refused
}

// Whether `key`, stored and then hit `hits` times while it is the newest, is still there after
// 50 new keys follow it into a one-stripe W-TinyLFU cache of 200 whose main holds keys used
// several times (8 rounds over 250 keys), its window's share set to `share` (in 1/65536ths of
// the stripe) before the key is stored. New keys leave no steering ghosts, so the share stays.
static bool kept_after_window_hits(int hits, uint32_t share) {
    TestCache t("tlfu-window-hits", one_stripe(SHMC_STRATEGY_WTINYLFU, 200));
    for (int round = 0; round < 8; ++round)
        for (int i = 0; i < 250; ++i) request(t, "hot" + std::to_string(i));
    unit::RawSegment(t.name).stripe(0).ctl->window_share = share;
    t.set("key", "v");
    for (int i = 0; i < hits; ++i) CHECK(t.has("key"));
    for (int i = 0; i < 50; ++i) t.set("burst" + std::to_string(i), "b");
    return t.has("key");
}

TEST_CASE("W-TinyLFU: in a small window no number of hits admits a key unopposed") {
    // One hit is a loop's or a pair's second request as often as a sign of reuse: the key still
    // competes with main's victim (and loses to keys used more). Two hits or more send it round
    // the window again (kWindowRepassHits; the next test), after which it competes too, its
    // hits counted, and still loses to main's keys used 8 times. Before, two hits admitted it
    // unopposed (the last two checks failed).
    const uint32_t small = 65536 / 100;  // 1%: the start, where frequency-biased traffic keeps it
    CHECK_FALSE(kept_after_window_hits(0, small));
    CHECK_FALSE(kept_after_window_hits(1, small));
    CHECK_FALSE(kept_after_window_hits(2, small));
    CHECK_FALSE(kept_after_window_hits(3, small));
}

TEST_CASE("W-TinyLFU: in a window grown past 5% of the stripe, one hit sends a key to main") {
    // The steering grows the window where the traffic is recency-biased; there a key hit once
    // soon after its store is admitted unopposed, as in S3-FIFO (eviction.cpp,
    // window_hits_to_main). 10% of 200 entries: the key leaves the window after 20 of the 50.
    const uint32_t large = 65536 / 10;
    CHECK_FALSE(kept_after_window_hits(0, large));
    CHECK(kept_after_window_hits(1, large));
    // Two send it round the window instead (kWindowRepassHits), and then it must win its
    // contest, which it loses to main's keys used 8 times.
    CHECK_FALSE(kept_after_window_hits(2, large));
    // Just under 5% one hit is not enough.
    const uint32_t edge = 65536 * 5 / 100;
    CHECK_FALSE(kept_after_window_hits(1, edge));
}

TEST_CASE("W-TinyLFU: a window hit counts in the key's next contest, not in this one") {
    // Main holds 100 keys each stored twice (an estimate of 2). A key stored once and hit once in
    // the window is refused when it leaves (estimate 1: its hit is not counted yet), but the hit
    // reaches the sketch then, so the same key stored again is admitted (1 + 1 + 1 = 3 > 2),
    // where a key stored twice without a hit ties with the victim and is refused again. Before,
    // the hit counted at once (a tie here, but a win against victims stored once, below) and was
    // lost with the refused entry (the second contest a tie too).
    TestCache t("tlfu-window-hit-later", one_stripe(SHMC_STRATEGY_WTINYLFU, 100));
    auto store_twice = [&](const std::string& k) {
        t.set(k, "v");
        REQUIRE(shmc_del(t.c, k.data(), k.size()) == 0);
        t.set(k, "v");
    };
    for (int i = 0; i < 100; ++i) store_twice("idle" + std::to_string(i));
    // Keys stored once: each loses its own contest, so main stays as it is. Ten of them push a
    // key out of the window, which starts at 1% of 100 (one entry) but grows by 2 entries each
    // time a refused key ("hit", "plain") comes back within the steering's reach.
    constexpr int kPush = 10;
    int pushed = 0;
    auto push_out_of_window = [&] {
        for (int i = 0; i < kPush; ++i) t.set("once" + std::to_string(pushed++), "o");
    };
    // Each in turn.
    auto store_and_push_out = [&](const std::string& k, bool hit_it) {
        t.set(k, "v");
        if (hit_it) REQUIRE(t.has(k));
        push_out_of_window();
    };
    store_and_push_out("hit", true);
    store_and_push_out("plain", false);
    CHECK_FALSE(t.has("hit"));
    CHECK_FALSE(t.has("plain"));
    store_and_push_out("hit", false);
    store_and_push_out("plain", false);
    CHECK(t.has("hit"));
    CHECK_FALSE(t.has("plain"));
    int once_kept = 0;  // all but the last kPush, which may still be in the (steered) window
    for (int i = 0; i < pushed - kPush; ++i) once_kept += t.has("once" + std::to_string(i));
    CHECK(once_kept == 0);

    // Against victims stored once, a key stored once and hit once in the window ties: refused.
    // (Counted in the contest, its hit won: 1 + 1 > 1.)
    TestCache u("tlfu-window-hit-tie", one_stripe(SHMC_STRATEGY_WTINYLFU, 100));
    for (int i = 0; i < 100; ++i) u.set("idle" + std::to_string(i), "i");
    u.set("hit", "v");
    REQUIRE(u.has("hit"));
    for (int i = 0; i < 5; ++i) u.set("once" + std::to_string(i), "o");
    CHECK_FALSE(u.has("hit"));
}

// Whether a key is stored, without a get: a scan counts no hit and moves nothing.
static bool stored(TestCache& t, const std::string& k) {
    bool seen = false;
    auto found = [](const void*, size_t, size_t, int64_t, void* ctx) -> int {
        *static_cast<bool*>(ctx) = true;
        return 1;
    };
    REQUIRE(shmc_scan(t.c, k.data(), k.size(), found, &seen) == 0);
    return seen;
}

// Fills a one-stripe W-TinyLFU cache of 1000 with keys stored twice each (a sketch estimate of
// 2: stored, deleted, stored), then stores 20 more once, so that its window (1%) holds about 10
// entries stored once and main the rest.
static void fill_main_stored_twice(TestCache& t) {
    for (int i = 0; i < 1000; ++i) {
        const std::string k = "main" + std::to_string(i);
        t.set(k, "m");
        REQUIRE(shmc_del(t.c, k.data(), k.size()) == 0);
        t.set(k, "m");
    }
    for (int i = 0; i < 20; ++i) t.set("settle" + std::to_string(i), "s");
}

// Which of stripe 0's queues links the entry of key k (kMainQueue, kSmallQueue or
// kProtectedQueue), or -1 if none does: a walk of each queue from its head. For short keys:
// one of up to 8 bytes lies whole in the entry's first extent (kGatherMinBlocks).
static int queue_of(const TestCache& t, const std::string& k) {
    namespace shm = shmcache::shm;
    unit::RawSegment raw(t.name);
    const shm::StripeRef s = raw.stripe(0);
    for (uint32_t q = 0; q < shm::kQueues; ++q) {
        for (uint32_t idx = s.ctl->q_head[q]; idx != shm::kNil; idx = s.entry(idx)->q_next) {
            const shm::EntryHeader* e = s.entry(idx);
            const auto* key = reinterpret_cast<const char*>(e) + shm::entry_data_offset(e);
            if (e->key_len == k.size() && std::memcmp(key, k.data(), k.size()) == 0) return int(q);
        }
    }
    return -1;
}

TEST_CASE("W-TinyLFU: a key hit twice in the window goes round it again, then contests") {
    // kWindowRepassHits: at the window's tail a candidate hit twice there goes back to the
    // window's head (its hits to the sketch) instead of into main unopposed, so the window keeps
    // the keys used again while they are new, as an LRU window does. Main holds about 1000 keys
    // stored twice (an estimate of 2), the window (1%) about 10. "a" is hit twice after "b" and "c"
    // came in behind it; they are not hit, so they reach the tail first and lose their
    // contests, and the store after "c" is gone examines "a". Before, "a" went to main's
    // probation there (the second check failed).
    TestCache t("tlfu-window-repass", one_stripe(SHMC_STRATEGY_WTINYLFU, 1000));
    fill_main_stored_twice(t);
    t.set("a", "v");
    t.set("b", "v");
    REQUIRE(t.has("a"));  // counted hits, each moving "a" to the window's head
    t.set("c", "v");
    REQUIRE(t.has("a"));
    int pushed = 0;
    const auto push = [&] { t.set("push" + std::to_string(pushed++), "p"); };
    while (stored(t, "c") && pushed < 100) push();
    REQUIRE_FALSE(stored(t, "c"));
    REQUIRE(queue_of(t, "a") == shmcache::shm::kSmallQueue);  // the window's oldest now
    push();
    CHECK(queue_of(t, "a") == shmcache::shm::kSmallQueue);  // round again, not in main
    // Not hit since, it contests the next time, and its two hits count: 1 + 2 > 2.
    while (queue_of(t, "a") == shmcache::shm::kSmallQueue && pushed < 200) push();
    CHECK(queue_of(t, "a") == shmcache::shm::kMainQueue);
    CHECK(pushed < 40);  // the window held about 10 entries
}

TEST_CASE("W-TinyLFU: one eviction sends at most 64 candidates round the window") {
    // kWindowRepassesPerEviction: a window full of keys hit twice must not all go round in one
    // store (a window of 80% of a large stripe could hold thousands). A window of 10% holds 100
    // keys, w0 (the oldest) to w99, each hit twice; the next store sends w0 to w63 round the
    // window and, the bound reached, w64 to main (two hits, as before the second round).
    // Without the bound all 100 went round and w0, back at the tail without hits, won its
    // contest and went to main instead (the checks on w0 and w64 failed).
    TestCache t("tlfu-repass-bound", one_stripe(SHMC_STRATEGY_WTINYLFU, 1000));
    unit::RawSegment(t.name).stripe(0).ctl->window_share = 65536 / 10;
    for (int i = 0; i < 1000; ++i) {
        const std::string k = "main" + std::to_string(i);
        t.set(k, "m");
        REQUIRE(shmc_del(t.c, k.data(), k.size()) == 0);
        t.set(k, "m");
    }
    const auto w = [](int i) { return "w" + std::to_string(i); };
    for (int i = 0; i < 100; ++i) t.set(w(i), "v");
    for (int i = 0; i < 100; ++i) {
        REQUIRE(queue_of(t, w(i)) == shmcache::shm::kSmallQueue);
        REQUIRE(t.has(w(i)));
        REQUIRE(t.has(w(i)));
    }
    t.set("x", "v");
    for (int i = 0; i < 64; ++i) CHECK(queue_of(t, w(i)) == shmcache::shm::kSmallQueue);
    CHECK(queue_of(t, w(64)) == shmcache::shm::kMainQueue);
    CHECK(queue_of(t, w(65)) == shmcache::shm::kSmallQueue);
}

TEST_CASE("W-TinyLFU: a hit that takes the lock moves a window entry to the window's head") {
    // policy_hit: the window gives up its least recently used entry, not its oldest. "a" and "b"
    // enter the window in that order and "a" is hit once; each key stored after them pushes the
    // window's last entry into a contest it loses (stored once, against main's keys stored
    // twice), so "b" must go first. Without the move "a", the older, went first (this failed).
    TestCache t("tlfu-window-lru", one_stripe(SHMC_STRATEGY_WTINYLFU, 1000));
    fill_main_stored_twice(t);  // window: 1%, 10
    t.set("a", "v");
    t.set("b", "v");
    REQUIRE(t.has("a"));  // its first hit since its store: counted, under the lock
    int pushed = 0;
    while (stored(t, "b") && pushed < 100) t.set("push" + std::to_string(pushed++), "p");
    REQUIRE_FALSE(stored(t, "b"));
    CHECK(stored(t, "a"));
    CHECK(pushed < 20);  // the window held about 10 entries
}

// SHMCACHE_OPTIMISTIC_READS=0 for one test: every get of a cache opened meanwhile takes the lock.
struct LockedGets {
    LockedGets() { setenv("SHMCACHE_OPTIMISTIC_READS", "0", 1); }
    ~LockedGets() { unsetenv("SHMCACHE_OPTIMISTIC_READS"); }
};

TEST_CASE("W-TinyLFU: a get under the lock moves an entry only while its hits count") {
    // policy_hit_relinks: the locked get moves an entry when the lock-free one would have asked
    // for the lock (a counted hit, the first kTinyFreqMax = 3), and not on later hits. A move
    // opens a write section (the stripe's seq turns odd, then even again), which makes the
    // stripe's lock-free readers retry; so an uncounted hit of a hot entry read under the lock
    // must leave seq alone. Before ed8628b every locked hit of an entry not at its queue's head
    // moved it (this failed).
    LockedGets locked;
    TestCache t("tlfu-locked-hit", one_stripe(SHMC_STRATEGY_WTINYLFU, 1000));
    unit::RawSegment raw(t.name);
    const auto seq = [&] { return raw.stripe(0).ctl->seq.load(); };
    t.set("hot", "v");
    for (int hit = 1; hit <= 3; ++hit) {
        t.set("newer" + std::to_string(hit), "n");  // "hot" is no longer the window's head
        const uint32_t before = seq();
        REQUIRE(t.has("hot"));
        CHECK(seq() != before);  // counted: moved to the head, in a write section
    }
    for (int hit = 4; hit <= 6; ++hit) {
        t.set("newer" + std::to_string(hit), "n");
        const uint32_t before = seq();
        REQUIRE(t.has("hot"));
        CHECK(seq() == before);  // not counted: nothing written
    }
}

TEST_CASE("W-TinyLFU's sketch: two words an entry under an entry limit, one when memory binds") {
    // shm/layout.cpp: 32 counters (8 a row) for each entry a limit says a stripe will hold, as
    // the reference W-TinyLFU of bench/replay has; 16 for each 256 bytes of stripe when memory
    // binds, or when two words an entry would cost more than 1/16 of the stripe.
    using shmcache::shm::compute_geometry;
    using shmcache::shm::Geometry;
    constexpr uint64_t MiB = 1ull << 20;
    const char* why = "";
    Geometry g{};
    REQUIRE(compute_geometry(8 * MiB, 1000, 4, SHMC_STRATEGY_WTINYLFU, 0, &g, &why));
    CHECK(g.buckets_per_stripe == 256);
    CHECK(g.ghost_per_stripe == 512);
    // The steering ghosts follow the buckets, not the sketch: a sixteenth of them, but at least
    // 64 words (layout 13), so that this stripe of 250 entries can reach 15% of them.
    CHECK(g.steer_per_stripe == 64);
    // S3-FIFO's ghosts stay one a bucket.
    REQUIRE(compute_geometry(8 * MiB, 1000, 4, SHMC_STRATEGY_S3FIFO, 0, &g, &why));
    CHECK(g.ghost_per_stripe == 256);
    // No limit: one word per 256 bytes of stripe, as before.
    REQUIRE(compute_geometry(64 * MiB, 0, 64, SHMC_STRATEGY_WTINYLFU, 0, &g, &why));
    CHECK(g.buckets_per_stripe == 4096);
    CHECK(g.ghost_per_stripe == 4096);
    // A limit of 100,000 entries in one 8 MiB stripe: two words each would take 2 MiB of it.
    REQUIRE(compute_geometry(8 * MiB, 100000, 1, SHMC_STRATEGY_WTINYLFU, 0, &g, &why));
    CHECK(g.buckets_per_stripe == 131072);
    CHECK(g.ghost_per_stripe == 131072);
    // A segment made with a limit has the wide sketch, and a second open (which recomputes the
    // geometry and checks it against the header) attaches to it.
    const shmc_options o = one_stripe(SHMC_STRATEGY_DEFAULT, 1000);
    TestCache t("tiny-sketch", o);
    unit::RawSegment raw(t.name);
    CHECK(raw.header()->ghost_per_stripe == 2048);
    shmc_cache* c2 = nullptr;
    REQUIRE(shmc_open(t.name.c_str(), &o, &c2) == 0);
    shmc_close(c2);
    for (int i = 0; i < 3000; ++i) t.set("k" + std::to_string(i), "v");
    CHECK(t.has("k2999"));
}

TEST_CASE("W-TinyLFU protects a key hit in main from a stream of admitted newcomers") {
    // Main is segmented: a key hit in main moves to protected, and the victims come from
    // probation, among the keys admitted on a guess and those never used again. So a key that
    // proved itself outlives newcomers that each win admission (made popular before their store),
    // for as long as protected is within its share of main. With one CLOCK queue for main (layout
    // 9) its hit bought it one more pass only: once the sketch was halved, the newcomers beat it
    // and it was evicted (this test failed).
    TestCache t("tlfu-protected", one_stripe(SHMC_STRATEGY_WTINYLFU, 100));
    // A key stored n times (each store counts in the sketch) wins admission over a key seen less.
    auto store_popular = [&](const std::string& k, int n) {
        for (int round = 1; round < n; ++round) {
            t.set(k, "v");
            REQUIRE(shmc_del(t.c, k.data(), k.size()) == 0);
        }
        t.set(k, "v");
    };
    for (int i = 0; i < 100; ++i) t.set("old" + std::to_string(i), "o");
    store_popular("keeper", 5);
    store_popular("plain", 5);  // the control: stored as keeper is, never hit
    for (int i = 0; i < 5; ++i) store_popular("filler" + std::to_string(i), 5);  // window's next
    REQUIRE(t.has("keeper"));  // its one hit, in main
    // Newcomers counted more often than keeper (5 stores and a hit): were keeper their victim,
    // each would win.
    for (int i = 0; i < 600; ++i) store_popular("new" + std::to_string(i), 8);
    CHECK(t.has("keeper"));
    CHECK_FALSE(t.has("plain"));
    int old_kept = 0;
    for (int i = 0; i < 100; ++i) old_kept += t.has("old" + std::to_string(i));
    CHECK(old_kept == 0);  // the newcomers did win admission
}

TEST_CASE("every strategy stays consistent under churn") {
    for (uint32_t strat = SHMC_STRATEGY_LRU; strat <= SHMC_STRATEGY_WTINYLFU; ++strat) {
        CAPTURE(strat);
        shmc_options o = TestCache::defaults();
        o.strategy = strat;
        o.size_bytes = 2 << 20;
        TestCache t("churn", o);
        for (int i = 0; i < 5000; ++i) {
            std::string k = "k" + std::to_string((i * 7919) % 1500);
            if (i % 3)
                t.set(k, std::string(size_t(i % 4000), 'x'), i % 5 ? 0 : 50);
            else
                t.has(k);
        }
        shmc_check_report r;
        CHECK(shmc_check(t.c, &r) == 0);
        CHECK(r.stripes_damaged == 0);
        CHECK(t.stats().evictions > 0);
    }
}
