// entry_limit_test.cpp - max_entries is an exact host-wide bound (docs/architecture.md, "Entry
// limit"): no eviction below it, never an entry above it, from threads and from processes, and a
// count left wrong by a process killed mid-insert is repaired by the recovery path.
//
// The segments ask for 64 stripes and get as many as the limit leaves 256 entries each
// (stripes_for_entry_limit): 2 for N = 1000, 64 for N = 100000, so a per-stripe limit (what
// max_entries used to be: ceil of N / stripes per stripe) fails the tests here: it evicts early.
// Besides shmc_get_stats, the tests read the segment itself (unit::RawSegment): the host-wide
// count in the header, and the exact entries of every stripe once nothing runs.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "shm/hash.h"
#include "shm/layout.h"
#include "shm/test_hooks.h"
#include "support.h"

using unit::TestCache;

namespace {

shmc_options limited(uint64_t n) {
    shmc_options o = TestCache::defaults();
    o.n_stripes = 64;
    o.max_entries = n;
    o.size_bytes = n > 10000 ? 32u << 20 : 8u << 20;  // memory never binds: only the count
    return o;
}

struct Counts {
    uint64_t header = 0;   // the host-wide count
    uint64_t stripes = 0;  // the sum of the stripes' own entry counts
    bool recount = false;  // the header's recount flag
};

// Exact only while nothing runs on the segment.
Counts raw_counts(const std::string& name) {
    unit::RawSegment raw(name);
    Counts c;
    c.header = raw.header()->entry_limit.count.load();
    c.recount = raw.header()->entry_limit.recount.load() != 0;
    for (uint32_t i = 0; i < raw.g.n_stripes; ++i) c.stripes += raw.stripe(i).ctl->entries;
    return c;
}

uint64_t scanned_keys(shmc_cache* c) {
    uint64_t n = 0;
    auto count = [](const void*, size_t, size_t, int64_t, void* ctx) {
        ++*static_cast<uint64_t*>(ctx);
        return 0;
    };
    REQUIRE(shmc_scan(c, "*", 1, count, &n) == 0);
    return n;
}

// The stripes the segment was made with.
uint32_t stripes_of(shmc_cache* c) {
    shmc_info info{};
    REQUIRE(shmc_get_info(c, &info) == 0);
    return info.n_stripes;
}

int set_key(shmc_cache* c, const std::string& k) {
    return shmc_set(c, k.data(), k.size(), "v", 1, 0, 0);
}

}  // namespace

TEST_CASE("max_entries N: N keys evict nothing, more keep exactly N") {
    for (uint64_t n : {1ull, 10ull, 1000ull, 100000ull}) {
        CAPTURE(n);
        TestCache t("limit-fill", limited(n));
        for (uint64_t i = 0; i < n; ++i) REQUIRE(set_key(t.c, "a" + std::to_string(i)) == 0);
        shmc_stats st = t.stats();
        CHECK(st.evictions == 0);
        CHECK(st.entries == n);
        // Overwrites of a full cache take the old entry's slot: nothing is evicted.
        for (uint64_t i = 0; i < std::min<uint64_t>(n, 100); ++i)
            REQUIRE(set_key(t.c, "a" + std::to_string(i)) == 0);
        CHECK(t.stats().evictions == 0);
        const uint64_t more = n < 100 ? 100 : n / 2;
        for (uint64_t i = 0; i < more; ++i) {
            REQUIRE(set_key(t.c, "b" + std::to_string(i)) == 0);
            if (i % 97 == 0 || n < 100) REQUIRE(t.stats().entries == n);
        }
        st = t.stats();
        CHECK(st.entries == n);
        CHECK(st.evictions == more);
        CHECK(t.has("b" + std::to_string(more - 1)));  // the last store always stays
        const Counts c = raw_counts(t.name);
        CHECK(c.header == n);
        CHECK(c.stripes == n);
        CHECK(scanned_keys(t.c) == n);
    }
}

namespace {

// n keys whose stripe, in a segment of mask + 1 stripes, is `stripe` (engine: hash & mask).
std::vector<std::string> keys_of_stripe(const char* prefix, uint64_t stripe, uint64_t mask, int n) {
    std::vector<std::string> out;
    for (int i = 0; int(out.size()) < n; ++i) {
        std::string k = prefix + std::to_string(i);
        if ((shmcache::shm::hash_key(k.data(), k.size()) & mask) == stripe) out.push_back(k);
    }
    return out;
}

}  // namespace

TEST_CASE("a store into an empty stripe of a full cache evicts from another stripe") {
    // 512 entries: 2 stripes, fair share 256. All 512 in stripe 0, then stores into stripe 1:
    // the first finds its stripe empty (evicts elsewhere), the next ones below the fair share
    // (level from stripe 0); from 256 on, stripe 1 evicts its own.
    TestCache t("limit-other", limited(512));
    REQUIRE(stripes_of(t.c) == 2);
    for (const std::string& k : keys_of_stripe("a", 0, 1, 512)) t.set(k, "1");
    REQUIRE(t.stats().entries == 512);
    int n = 0;
    for (const std::string& k : keys_of_stripe("b", 1, 1, 400)) {
        t.set(k, "v");
        CHECK(t.has(k));
        REQUIRE(t.stats().entries == 512);
        shmc_stats s1{};
        REQUIRE(shmc_stripe_stats(t.c, 1, &s1) == 0);
        CHECK(s1.entries == std::min(++n, 256));
    }
    CHECK(t.stats().evictions == 400);
    CHECK(raw_counts(t.name).stripes == 512);
}

TEST_CASE("deletes, expiry and clear give slots back") {
    TestCache t("limit-free", limited(10));
    for (int i = 0; i < 5; ++i) t.set("k" + std::to_string(i), "v");
    for (int i = 0; i < 5; ++i) t.set("ttl" + std::to_string(i), "v", 20);
    CHECK(shmc_del(t.c, "k0", 2) == 0);
    t.set("new", "v");
    CHECK(t.stats().evictions == 0);  // the deleted key's slot was free
    usleep(40 * 1000);
    // A lookup of an expired entry removes it and gives its slot back. (A store reclaims the
    // expired entries of its own stripe before it evicts; it does not look for them in others.)
    for (int i = 0; i < 5; ++i) CHECK_FALSE(t.has("ttl" + std::to_string(i)));
    CHECK(t.stats().entries == 5);
    CHECK(raw_counts(t.name).header == 5);
    for (int i = 0; i < 5; ++i) t.set("after" + std::to_string(i), "v");
    CHECK(t.stats().evictions == 0);
    CHECK(t.stats().entries == 10);
    t.set("one-more", "v");
    CHECK(t.stats().evictions == 1);
    uint64_t removed = 0;
    CHECK(shmc_clear(t.c, &removed) == 0);
    CHECK(removed == 10);
    CHECK(raw_counts(t.name).header == 0);
    for (int i = 0; i < 10; ++i) t.set("again" + std::to_string(i), "v");
    CHECK(t.stats().evictions == 1);
    CHECK(t.stats().entries == 10);
}

TEST_CASE("threads and processes inserting at once never take the cache above N") {
    constexpr int kProcs = 3, kThreads = 3;
    for (uint64_t n : {1ull, 10ull, 1000ull}) {
        CAPTURE(n);
        // Lock deadlines far above any wait the race can cause: this case is about the count,
        // and with the default 50 ms a loaded 2-core machine (ASan, nine writers fighting for
        // one slot) makes a few stores time out, which is the documented answer to a wait, not
        // a fault. A real deadlock would still fail here, at the suite's timeout.
        shmc_options o = limited(n);
        o.lock_timeout_ms = 20000;
        TestCache t("limit-race", o);
        // The children are forked before any thread of this process exists, and wait on a
        // pipe for the start: a fork while the watcher runs could copy a lock it holds (the
        // sanitizer's allocator, say) into a child, which then hangs on it forever.
        int go[2];
        REQUIRE(pipe(go) == 0);
        std::vector<pid_t> kids;
        for (int p = 0; p < kProcs; ++p) {
            const pid_t pid = fork();
            REQUIRE(pid >= 0);
            if (pid == 0) {
                close(go[1]);
                char byte;
                if (read(go[0], &byte, 1) != 1) _exit(4);
                shmc_cache* c = nullptr;
                if (shmc_open(t.name.c_str(), &o, &c) != 0) _exit(2);
                int bad = 0;
                for (int i = 0; i < 20000; ++i)
                    if (set_key(c, "p" + std::to_string(p) + ":" + std::to_string(i)) != 0) ++bad;
                shmc_close(c);
                _exit(bad ? 1 : 0);
            }
            kids.push_back(pid);
        }
        close(go[0]);
        std::atomic<bool> stop{false};
        std::atomic<uint64_t> looks{0}, over{0}, worst{0};
        std::thread watcher([&] {
            unit::RawSegment raw(t.name);
            while (!stop.load()) {
                shmc_stats st{};
                if (shmc_get_stats(t.c, &st) == 0) {
                    const uint64_t header = raw.header()->entry_limit.count.load();
                    if (st.entries > n || header > n) over.fetch_add(1);
                    if (st.entries > worst.load()) worst.store(st.entries);
                    looks.fetch_add(1);
                }
            }
        });
        const char start[kProcs] = {};
        REQUIRE(write(go[1], start, kProcs) == kProcs);
        close(go[1]);
        std::atomic<int> failed{0};
        std::vector<std::thread> threads;
        for (int th = 0; th < kThreads; ++th)
            threads.emplace_back([&, th] {
                for (int i = 0; i < 20000; ++i)
                    if (set_key(t.c, "t" + std::to_string(th) + ":" + std::to_string(i)) != 0)
                        failed.fetch_add(1);
            });
        for (auto& th : threads) th.join();
        for (pid_t pid : kids) {
            int status = 0;
            REQUIRE(waitpid(pid, &status, 0) == pid);
            CHECK(WIFEXITED(status));
            CHECK(WEXITSTATUS(status) == 0);
        }
        stop.store(true);
        watcher.join();
        CHECK(failed.load() == 0);
        CHECK(looks.load() > 0);
        CHECK(over.load() == 0);
        CHECK(worst.load() <= n);
        // Quiet now: the stripes' own counts are exact, and the cache is exactly full.
        const Counts c = raw_counts(t.name);
        CHECK(c.stripes == n);
        CHECK(c.header == n);
        CHECK(scanned_keys(t.c) == n);
        const shmc_stats st = t.stats();
        CHECK(st.entries == n);
        CHECK(st.evictions == uint64_t(kProcs + kThreads) * 20000 - n);
        shmc_check_report r{};
        CHECK(shmc_check(t.c, &r) == 0);
        CHECK(r.stripes_damaged == 0);
    }
}

TEST_CASE("a process killed while inserting leaves a count that recovery repairs") {
    // The child dies at a random crash point inside its stores (between a slot's reservation
    // and the entry's link, in the middle of an eviction, ...); the parent then touches every
    // stripe as any later caller would, and the count must equal the live entries again.
    std::mt19937_64 rng(std::random_device{}());
    const uint64_t seed = rng();
    INFO("seed ", seed);
    rng.seed(seed);
    int seen_high = 0;
    for (uint64_t n : {1ull, 10ull, 1000ull}) {
        CAPTURE(n);
        TestCache t("limit-kill", limited(n));
        for (int round = 0; round < 30; ++round) {
            CAPTURE(round);
            const uint64_t after = 1 + rng() % 400;
            const pid_t pid = fork();
            REQUIRE(pid >= 0);
            if (pid == 0) {
                shmc_cache* c = nullptr;
                if (shmc_open(t.name.c_str(), nullptr, &c) != 0) _exit(2);
                shmc_test_crash_after(after);
                // Bounded: a child that stops passing crash points (its stores all failing)
                // exits, and the parent's REQUIRE on SIGKILL reports it instead of hanging.
                for (int i = 0; i < 200000; ++i)
                    set_key(c, "r" + std::to_string(round) + ":" + std::to_string(i));
                _exit(3);
            }
            int status = 0;
            REQUIRE(waitpid(pid, &status, 0) == pid);
            REQUIRE(WIFSIGNALED(status));
            REQUIRE(WTERMSIG(status) == SIGKILL);
            const Counts dead = raw_counts(t.name);
            CHECK(dead.header <= n);
            if (dead.header > dead.stripes) ++seen_high;  // a slot held by the dead process
            // Recovery: the next locker of the dead process's stripe rebuilds it and recounts.
            // Reading many keys touches every stripe.
            for (int i = 0; i < 2000; ++i) t.has("probe" + std::to_string(i));
            const Counts c = raw_counts(t.name);
            CHECK_FALSE(c.recount);
            CHECK(c.header == c.stripes);
            CHECK(c.stripes <= n);
            CHECK(scanned_keys(t.c) == c.stripes);
            CHECK(t.stats().entries == c.stripes);
        }
        shmc_check_report r{};
        CHECK(shmc_check(t.c, &r) == 0);
        CHECK(r.stripes_damaged == 0);
    }
    // The kills must have hit the window the repair is for, or this test proves nothing.
    CHECK(seen_high > 0);
}

TEST_CASE("check recounts a count damaged from outside") {
    TestCache t("limit-check", limited(100));
    for (int i = 0; i < 50; ++i) t.set("k" + std::to_string(i), "v");
    {
        unit::RawSegment raw(t.name);
        raw.header()->entry_limit.count.store(100);  // as if 50 slots had leaked
    }
    shmc_check_report r{};
    CHECK(shmc_check(t.c, &r) == 0);
    CHECK(raw_counts(t.name).header == 50);
    for (int i = 0; i < 50; ++i) t.set("more" + std::to_string(i), "v");
    CHECK(t.stats().evictions == 0);
    CHECK(t.stats().entries == 100);
}

TEST_CASE("a segment of layout version 3 is refused with the version error") {
    TestCache t("limit-ver", limited(10));
    {
        unit::RawSegment raw(t.name);
        raw.header()->layout_version = 3;  // what a build before the host-wide count made
    }
    shmc_cache* c2 = nullptr;
    CHECK(shmc_open(t.name.c_str(), nullptr, &c2) == SHMC_E_VERSION);
    const std::string msg = shmc_errmsg();
    CHECK(msg.find("layout version 3") != std::string::npos);
    CHECK(msg.find("layout version " + std::to_string(shmcache::shm::kLayoutVersion)) !=
          std::string::npos);
    CHECK(c2 == nullptr);
}

TEST_CASE("a full cache levels its stripes: none stays below its fair share") {
    // 8192 entries over 32 stripes (64 asked; the limit leaves 256 entries a stripe): when the
    // count fills, the stripes hold a binomial share (about 210 to 300 each), and evicting from
    // the own stripe keeps that share for good. A store into a stripe below the fair share
    // (8192 / 32: 256) evicts from a fuller stripe instead, so churn brings every stripe up to it.
    for (uint32_t strategy : {uint32_t(SHMC_STRATEGY_WTINYLFU), uint32_t(SHMC_STRATEGY_S3FIFO),
                              uint32_t(SHMC_STRATEGY_LRU),
                              uint32_t(SHMC_STRATEGY_SIEVE), uint32_t(SHMC_STRATEGY_LFU),
                              uint32_t(SHMC_STRATEGY_FIFO)}) {
        CAPTURE(strategy);
        shmc_options o = limited(8192);
        o.strategy = strategy;
        TestCache t("limit-level", o);
        REQUIRE(stripes_of(t.c) == 32);
        for (int i = 0; i < 60000; ++i) REQUIRE(set_key(t.c, "k" + std::to_string(i)) == 0);
        const shmc_stats st = t.stats();
        CHECK(st.entries == 8192);
        CHECK(st.evictions == 60000 - 8192);
        uint64_t lo = UINT64_MAX, hi = 0;
        for (uint32_t i = 0; i < 32; ++i) {
            shmc_stats ss{};
            REQUIRE(shmc_stripe_stats(t.c, i, &ss) == 0);
            lo = std::min(lo, ss.entries);
            hi = std::max(hi, ss.entries);
        }
        CAPTURE(lo);
        CAPTURE(hi);
        CHECK(lo >= 256);
        CHECK(raw_counts(t.name).stripes == 8192);
        CHECK(scanned_keys(t.c) == 8192);
    }
}

namespace {

// Rounds of: a get of each hot key (a set on a miss), then `cold` keys stored once each and
// never read. Returns the hot keys' hit ratio over the second half of the rounds.
double hot_hit_ratio(TestCache& t, const std::vector<std::string>& hot, int rounds, int cold) {
    int hits = 0, gets = 0, next_cold = 0;
    for (int r = 0; r < rounds; ++r) {
        for (const std::string& k : hot) {
            const bool hit = t.has(k);
            if (!hit) REQUIRE(set_key(t.c, k) == 0);
            if (r >= rounds / 2) hits += hit, ++gets;
        }
        for (int i = 0; i < cold; ++i)
            REQUIRE(set_key(t.c, "cold" + std::to_string(next_cold++)) == 0);
    }
    return double(hits) / gets;
}

}  // namespace

TEST_CASE("an entry limit leaves each stripe at least 256 entries") {
    // A stripe's policy chooses only among the stripe's own entries (shm/layout.h,
    // stripes_for_entry_limit): a new segment gets no more stripes than leave 256 entries each,
    // but none larger than 32 MiB for that (a rebuild walks the whole stripe under its lock).
    using shmcache::shm::stripes_for_entry_limit;
    constexpr uint64_t MiB = 1ull << 20;
    CHECK(stripes_for_entry_limit(64, 200, 256 * MiB) == 8);
    CHECK(stripes_for_entry_limit(64, 200, 256 * MiB + 1) == 16);
    CHECK(stripes_for_entry_limit(64, 1000, 32 * MiB) == 2);
    CHECK(stripes_for_entry_limit(64, 1000, 1024 * MiB) == 32);
    CHECK(stripes_for_entry_limit(16, 1000, 1024 * MiB) == 16);  // never more than asked
    CHECK(stripes_for_entry_limit(64, 100, UINT64_MAX) == 64);    // no overflow
    CHECK(stripes_for_entry_limit(64, 0, 8 * MiB) == 64);
    // Counts compute_geometry refuses are left for it to refuse, limit or not.
    CHECK(stripes_for_entry_limit(3, 1000, 8 * MiB) == 3);
    CHECK(stripes_for_entry_limit(1u << 31, 1000, 8 * MiB) == 1u << 31);
    struct Case {
        uint32_t asked;
        uint64_t limit;
        uint32_t got;
    };
    for (const Case k : {Case{64, 0, 64}, Case{64, 1, 1}, Case{64, 511, 1}, Case{64, 512, 2},
                         Case{64, 1000, 2}, Case{64, 16383, 32}, Case{64, 16384, 64},
                         Case{64, 100000, 64}, Case{8, 100000, 8}, Case{16, 4095, 8}}) {
        CAPTURE(k.asked);
        CAPTURE(k.limit);
        shmc_options o = limited(k.limit);
        CHECK(stripes_for_entry_limit(k.asked, k.limit, o.size_bytes) == k.got);
        o.n_stripes = k.asked;
        TestCache t("limit-stripes", o);
        shmc_info info{};
        REQUIRE(shmc_get_info(t.c, &info) == 0);
        CHECK(info.n_stripes == k.got);
        CHECK(info.max_entries == k.limit);
        // A process attaching with other options (which would make 1 stripe) gets the segment
        // as it was made.
        shmc_options other = limited(1);
        other.n_stripes = 64;
        shmc_cache* c2 = nullptr;
        REQUIRE(shmc_open(t.name.c_str(), &other, &c2) == 0);
        shmc_info info2{};
        REQUIRE(shmc_get_info(c2, &info2) == 0);
        CHECK(info2.n_stripes == k.got);
        CHECK(info2.max_entries == k.limit);
        shmc_close(c2);
    }
}

TEST_CASE("a small limit keeps hot keys that 64 stripes would have crowded into one") {
    // 128 entries, 64 stripes asked: 12 hot keys that all hash into one stripe of 64, each read
    // every round among 40 stores of keys used once. Split 64 ways, that stripe would hold 2
    // entries and keep about 2 of the 12 (S3-FIFO 8% hits, W-TinyLFU 5%, before 64 stripes
    // were refused for so small a limit); on the one stripe the limit leaves, every policy
    // that favours reused keys keeps them all.
    const std::vector<std::string> hot = keys_of_stripe("hot", 0, 63, 12);
    for (uint32_t strategy : {uint32_t(SHMC_STRATEGY_WTINYLFU), uint32_t(SHMC_STRATEGY_S3FIFO)}) {
        CAPTURE(strategy);
        shmc_options o = limited(128);
        o.strategy = strategy;
        TestCache t("limit-hot", o);
        CHECK(stripes_of(t.c) == 1);
        const double ratio = hot_hit_ratio(t, hot, 60, 40);
        CAPTURE(ratio);
        CHECK(ratio > 0.95);
        CHECK(t.stats().entries == 128);
        CHECK(raw_counts(t.name).stripes == 128);
        CHECK(scanned_keys(t.c) == 128);
        shmc_check_report rep{};
        CHECK(shmc_check(t.c, &rep) == 0);
        CHECK(rep.stripes_damaged == 0);
    }
}
