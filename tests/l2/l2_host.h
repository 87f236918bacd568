// l2_host.h - a test "host" for the Redis tier tests: a segment of its own with an L2 attached,
// and small helpers (bounded polling, test values).
#ifndef SHMCACHE_TESTS_L2_HOST_H
#define SHMCACHE_TESTS_L2_HOST_H

#include <doctest/doctest.h>
#include <shmcache/shmcache.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <random>
#include <string>
#include <thread>

namespace l2test {

using Clock = std::chrono::steady_clock;

inline double ms_since(Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// Polls cond every 5 ms for up to limit_ms; true if it became true.
inline bool eventually(const std::function<bool()>& cond, int limit_ms = 3000) {
    const auto t0 = Clock::now();
    while (ms_since(t0) < limit_ms) {
        if (cond()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return cond();
}

struct Host {
    Host(const char* tag, const std::string& url, const char* prefix = "t",
         std::function<void(shmc_l2_options&)> tweak = nullptr) {
        static std::atomic<int> seq{0};
        name = "shmc-t-l2-" + std::string(tag) + "-" + std::to_string(getpid()) + "-" +
               std::to_string(seq++);
        shmc_options o;
        shmc_options_default(&o);
        o.size_bytes = 4u << 20;
        o.n_stripes = 8;
        REQUIRE(shmc_open(name.c_str(), &o, &c) == 0);
        shmc_l2_options l;
        shmc_l2_options_default(&l);
        l.url = url.c_str();
        l.key_prefix = prefix;
        l.command_timeout_ms = 100;
        l.breaker_threshold = 3;
        l.breaker_cooldown_ms = 400;
        if (tweak) tweak(l);
        REQUIRE(shmc_l2_attach(c, &l) == 0);
        // Subscribing drops the L1 copies of L2 data made before it (they may have missed
        // invalidations): wait for it, so that what a test writes next stays.
        if (!(l.flags & SHMC_L2_NO_SUBSCRIBE)) REQUIRE(wait_subscribed());
    }
    ~Host() {
        shmc_close(c);
        shmc_unlink(name.c_str(), 1);
    }
    int set(const std::string& k, const std::string& v, uint32_t tiers = SHMC_TIER_BOTH,
            uint64_t l1_ttl = 0, uint64_t l2_ttl = 0) {
        return shmc_tset(c, k.data(), k.size(), v.data(), v.size(), 0, l1_ttl, l2_ttl, tiers);
    }
    // set(), for a test that then counts on this host's L1: a write to both tiers keeps its L1
    // copy, and an L2 value read next is kept, only once this host's own tracking echo of the
    // write is applied. The write waits 5 ms for it (docs/l2.md, "Own writes"); an echo applied
    // later drops the copy by design (the next get reads Redis, never a stale value), as when the
    // subscriber is descheduled that long (a sanitizer build on 2 busy CPUs). So in tracking mode
    // this waits for the echo (await_echo), and a write to both tiers whose copy did not stay is
    // made again, up to 5 times. For a host that hears of no other write meanwhile.
    int set_settled(const std::string& k, const std::string& v, uint32_t tiers = SHMC_TIER_BOTH,
                    uint64_t l1_ttl = 0, uint64_t l2_ttl = 0) {
        int rc = 0;
        for (int i = 0; i < 5; ++i) {
            const shmc_l2_stats s = stats();
            rc = set(k, v, tiers, l1_ttl, l2_ttl);
            if (rc || s.invalidation_mode != SHMC_INVAL_TRACKING) return rc;
            await_echo(s.invalidations_applied);
            if (tiers != SHMC_TIER_BOTH || in_l1(k)) break;
        }
        return rc;
    }
    // Waits (at most 1 s) until this host has applied more invalidations than `applied`, then
    // none for 5 ms: the echoes of the writes made since (applied in order, after any of earlier
    // writes that were still on their way).
    void await_echo(uint64_t applied) {
        uint64_t last = applied;
        eventually(
            [&] {
                const uint64_t now = stats().invalidations_applied;
                const bool settled = now > applied && now == last;
                last = now;
                return settled;
            },
            1000);
    }
    // The value ("" with *rc set on a miss); served_by and ttl via out-params.
    std::string get(const std::string& k, uint32_t tiers = SHMC_TIER_BOTH, int* rc = nullptr,
                    uint32_t* served = nullptr, int64_t* ttl = nullptr, uint64_t fill_ttl = 0,
                    uint32_t* flags = nullptr) {
        std::string buf(1 << 16, '\0');
        size_t len = 0;
        uint32_t sb = 0;
        int r = shmc_tget(c, k.data(), k.size(), buf.data(), buf.size(), &len, flags, ttl, tiers,
                          fill_ttl, &sb);
        if (rc) *rc = r;
        if (served) *served = sb;
        return r == 0 ? buf.substr(0, len) : std::string();
    }
    bool in_l1(const std::string& k) {
        size_t len = 0;
        const int rc = shmc_get(c, k.data(), k.size(), nullptr, 0, &len, nullptr, nullptr);
        return rc == 0 || rc == SHMC_E_BUFFER_TOO_SMALL;
    }
    // Get through both tiers until the value is in L1 too: a fill is cancelled when any
    // invalidation lands while it is in flight, such as the writer's own for this key.
    bool get_filled(const std::string& k, const std::string& expect) {
        return eventually([&] { return get(k) == expect && in_l1(k); });
    }
    shmc_l2_stats stats() {
        shmc_l2_stats s;
        REQUIRE(shmc_l2_get_stats(c, &s) == 0);
        return s;
    }
    bool wait_subscribed() {
        return eventually([&] { return stats().subscribed == 1; });
    }
    std::string name;
    shmc_cache* c = nullptr;
};

inline std::string big_value(size_t n, bool compressible, uint32_t seed) {
    std::string v(n, 'a');
    std::mt19937 rng(seed);
    for (size_t i = 0; i < n; ++i)
        v[i] = compressible ? char('a' + (i / 64) % 7) : char(rng());
    return v;
}

}  // namespace l2test

#endif
