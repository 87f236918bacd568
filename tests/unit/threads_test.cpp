// threads_test.cpp - one handle shared by several threads (the header promises it is safe).
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "support.h"

TEST_CASE("threads sharing one handle never see another key's value or a torn one") {
    shmc_options o = unit::TestCache::defaults();
    o.size_bytes = 2 << 20;  // small, so that eviction runs all the time
    unit::TestCache t("threads", o);
    std::atomic<int> bad{0}, errors{0};
    std::vector<std::thread> threads;
    for (int id = 0; id < 4; ++id) {
        threads.emplace_back([&, id] {
            std::mt19937 rng(id);
            std::string buf(64 * 1024, '\0');
            for (int i = 0; i < 20000; ++i) {
                const std::string k = "k" + std::to_string(rng() % 500);
                const int op = int(rng() % 10);
                if (op < 6) {
                    size_t n = 0;
                    int rc = shmc_get(t.c, k.data(), k.size(), buf.data(), buf.size(), &n,
                                      nullptr, nullptr);
                    // Each value is its key repeated: anything else is another key's or torn.
                    if (rc == 0)
                        for (size_t j = 0; j < n; j += k.size())
                            if (buf.compare(j, k.size(), k) != 0) ++bad;
                    if (rc != 0 && rc != SHMC_E_NOTFOUND && rc != SHMC_E_LOCK_TIMEOUT) ++errors;
                } else if (op < 9) {
                    std::string v;
                    for (size_t reps = rng() % 4000; reps > 0; --reps) v += k;
                    int rc = shmc_set(t.c, k.data(), k.size(), v.data(), v.size(), 0, 0);
                    // A lock timeout (a holder preempted on a loaded machine) is documented
                    // behaviour, not an error: the value is simply not stored.
                    if (rc != 0 && rc != SHMC_E_LOCK_TIMEOUT) ++errors;
                } else {
                    int rc = shmc_del(t.c, k.data(), k.size());
                    if (rc != 0 && rc != SHMC_E_NOTFOUND && rc != SHMC_E_LOCK_TIMEOUT) ++errors;
                }
            }
        });
    }
    for (auto& th : threads) th.join();
    CHECK(bad == 0);
    CHECK(errors == 0);
    shmc_check_report r;
    CHECK(shmc_check(t.c, &r) == 0);
    CHECK(r.stripes_damaged == 0);
    CHECK(t.stats().evictions > 0);
}

namespace {

// A hot value: tag (writer << 40 | sequence), then its length, then bytes that follow from the
// tag alone, so a reader regenerates the whole expected value and compares every byte. Length,
// flags and TTL follow from the tag too. Lengths run from 16 bytes to 20 KiB: a two-block entry,
// sizes around the 64-byte block, and hundreds of blocks (several extents once fragmented).
constexpr uint64_t kSeqBits = 40;
constexpr uint64_t kMaxTtlMs = 30;

uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

struct HotValue {
    std::string bytes;
    uint32_t flags;
    uint64_t ttl_ms;
};

void make_hot(uint64_t tag, HotValue& v) {
    uint64_t s = mix64(tag + 0x9e3779b97f4a7c15ull);
    const uint64_t band = s % 100;
    s = mix64(s);
    size_t len = band < 25   ? 16 + s % 40
                 : band < 50 ? 56 + s % 700
                 : band < 80 ? 756 + s % 5000
                             : 5756 + s % 14000;
    v.ttl_ms = (s >> 20) % 100 < 20 ? 1 + (s >> 32) % kMaxTtlMs : 0;
    v.flags = uint32_t(mix64(s ^ 0xf1a9));
    v.bytes.resize(len);
    std::memcpy(v.bytes.data(), &tag, 8);
    const uint64_t len64 = len;
    std::memcpy(v.bytes.data() + 8, &len64, 8);
    for (size_t i = 16; i < len; i += 8) {
        s = mix64(s + i);
        std::memcpy(v.bytes.data() + i, &s, std::min<size_t>(8, len - i));
    }
}

}  // namespace

TEST_CASE("readers of one hot key see only whole values while it is overwritten and evicted") {
    shmc_options o = unit::TestCache::defaults();
    o.size_bytes = 2 << 20;  // 4 stripes of 512 KiB: the filler thread keeps every one evicting
    unit::TestCache t("hotkey", o);
    const std::string key = "hot";
    constexpr int kWriters = 2, kReaders = 2;
    constexpr double kSeconds = 4;
    std::atomic<uint64_t> issued[kWriters];  // highest sequence each writer began to store
    for (auto& i : issued) i = 0;
    std::atomic<uint64_t> hits[kReaders], misses{0}, too_small{0}, timeouts{0}, sets{0}, dels{0},
        fillers{0}, bad{0}, errors{0};
    for (auto& h : hits) h = 0;
    std::mutex problems_mu;  // the first few problems, printed after the join
    std::vector<std::string> problems;
    auto report = [&](const std::string& what) {
        std::lock_guard<std::mutex> g(problems_mu);
        if (problems.size() < 8) problems.push_back(what);
    };
    auto ok_or = [&](int rc, int also) {
        if (rc == 0 || rc == also) return;
        if (rc == SHMC_E_LOCK_TIMEOUT) {  // a documented miss (TSan makes holders slow)
            ++timeouts;
            return;
        }
        ++errors;
        report("rc " + std::to_string(rc) + ": " + shmc_errmsg());
    };
    const auto t_end =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(int64_t(kSeconds * 1000));
    auto running = [&] { return std::chrono::steady_clock::now() < t_end; };
    std::vector<std::thread> threads;
    for (int r = 0; r < kReaders; ++r) {
        threads.emplace_back([&, r] {
            std::mt19937_64 rng(uint64_t(r) + 100);
            std::string buf(64 * 1024, '\0');
            uint64_t last[kWriters] = {};
            HotValue want;
            while (running()) {
                const bool small = rng() % 10 == 0;  // a buffer too small for most values
                const size_t cap = small ? 40 : buf.size();
                size_t n = 0;
                uint32_t flags = 0;
                int64_t ttl = 0;
                const int rc =
                    shmc_get(t.c, key.data(), key.size(), buf.data(), cap, &n, &flags, &ttl);
                if (rc == SHMC_E_NOTFOUND) {
                    ++misses;
                    continue;
                }
                if (rc == SHMC_E_BUFFER_TOO_SMALL && small) {
                    ++too_small;
                    if (n <= cap || n > 20000) {
                        ++bad;
                        report("BUFFER_TOO_SMALL with length " + std::to_string(n));
                    }
                    continue;
                }
                if (rc != 0) {
                    ok_or(rc, SHMC_E_NOTFOUND);
                    continue;
                }
                ++hits[r];
                uint64_t tag = 0;
                if (n >= 16) std::memcpy(&tag, buf.data(), 8);
                const uint64_t w = tag >> kSeqBits, seq = tag & ((1ull << kSeqBits) - 1);
                std::string why;
                if (n < 16 || w >= uint64_t(kWriters) || seq == 0 ||
                    seq > issued[w].load(std::memory_order_acquire)) {
                    why = "no writer issued this value";
                } else {
                    make_hot(tag, want);
                    if (n != want.bytes.size() || std::memcmp(buf.data(), want.bytes.data(), n))
                        why = "torn or foreign bytes (len " + std::to_string(n) + ", expected " +
                              std::to_string(want.bytes.size()) + ")";
                    else if (flags != want.flags)
                        why = "flags of another value";
                    else if ((ttl == -1 && want.ttl_ms != 0) || ttl < -1 ||
                             ttl > int64_t(kMaxTtlMs))
                        why = "ttl_left " + std::to_string(ttl) + " for a value stored with " +
                              std::to_string(want.ttl_ms);
                    else if (seq < last[w])
                        why = "an older value of writer " + std::to_string(w) + " after a newer";
                    else
                        last[w] = seq;
                }
                if (!why.empty()) {
                    ++bad;
                    report(why);
                }
            }
        });
    }
    for (int w = 0; w < kWriters; ++w) {
        threads.emplace_back([&, w] {
            std::mt19937_64 rng(uint64_t(w) + 200);
            HotValue v;
            uint64_t seq = 0;
            while (running()) {
                if (rng() % 100 < 6) {
                    ++dels;
                    ok_or(shmc_del(t.c, key.data(), key.size()), SHMC_E_NOTFOUND);
                    continue;
                }
                const uint64_t tag = (uint64_t(w) << kSeqBits) | ++seq;
                issued[w].store(seq, std::memory_order_release);  // before the value can exist
                make_hot(tag, v);
                ++sets;
                ok_or(shmc_set(t.c, key.data(), key.size(), v.bytes.data(), v.bytes.size(), v.flags,
                               v.ttl_ms),
                      0);
            }
        });
    }
    threads.emplace_back([&] {  // fillers: every stripe evicts all the time
        std::mt19937_64 rng(300);
        std::string v;
        while (running()) {
            const std::string k = "f:" + std::to_string(rng() % 3000);
            v.assign(100 + rng() % 8000, char('a' + rng() % 26));
            ++fillers;
            ok_or(shmc_set(t.c, k.data(), k.size(), v.data(), v.size(), 0,
                           rng() % 10 == 0 ? 1 + rng() % 100 : 0),
                  0);
        }
    });
    for (auto& th : threads) th.join();
    for (const auto& p : problems) MESSAGE(p);
    MESSAGE("hits " << hits[0].load() << "+" << hits[1].load() << " misses " << misses.load()
                    << " too_small " << too_small.load() << " timeouts " << timeouts.load()
                    << " sets " << sets.load() << " dels " << dels.load() << " fillers "
                    << fillers.load() << " evictions " << t.stats().evictions);
    CHECK(bad == 0);
    CHECK(errors == 0);
    for (auto& h : hits) CHECK(h > 0);  // a reader that never hit checked nothing
    CHECK(sets > 0);
    CHECK(t.stats().evictions > 0);
    shmc_check_report rep;
    CHECK(shmc_check(t.c, &rep) == 0);
    CHECK(rep.stripes_damaged == 0);
}
