// l2_race_test.cpp - the fill race of the Redis tier, made reproducible.
//
// Linked with the test build of the library (SHMC_TEST_HOOKS), where SHMC_TEST_FILL_DELAY_US
// holds a reader between its L2 read and its L1 fill. Without the invalidation sequence check in
// Engine::fill this test fails within a few hundred writes.
#include <doctest/doctest.h>
#include <shmcache/shmcache.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "l2_host.h"
#include "redis_server.h"

using l2test::Host;
using l2test::RedisServer;

TEST_CASE("two hosts under concurrent writes: no host's L1 keeps a value L2 has replaced") {
    // The race this checks: a reader on B misses L1, reads v(n) from L2, and is descheduled; A
    // writes v(n+1) and the invalidation is applied on B; the reader then copies v(n) into B's
    // L1. The invalidation sequence makes that copy give up. After the writes stop and the
    // messages drain, B's L1 must hold either nothing or what L2 holds, for every key.
    setenv("SHMC_TEST_FILL_DELAY_US", "3000", 1);
    RedisServer redis;
    Host a("race-a", redis.url());
    Host b("race-b", redis.url());
    REQUIRE(a.wait_subscribed());
    REQUIRE(b.wait_subscribed());
    constexpr int kKeys = 8;
    std::atomic<bool> done{false};
    std::atomic<int> reads{0};
    std::vector<std::thread> readers;
    for (int t = 0; t < 2; ++t) {
        readers.emplace_back([&, t] {
            std::mt19937 rng{uint32_t(t + 7)};
            while (!done) {
                b.get("race" + std::to_string(rng() % kKeys));
                ++reads;
            }
        });
    }
    std::mt19937 rng{1};
    for (int i = 0; i < 3000; ++i) {
        // Quiet spells, so that some fills find the sequence unchanged and do land.
        if (i % 100 == 99) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        const std::string k = "race" + std::to_string(rng() % kKeys);
        if (rng() % 5 == 0)
            shmc_tdel(a.c, k.data(), k.size(), SHMC_TIER_BOTH);
        else
            REQUIRE(a.set(k, "v" + std::to_string(i)) == 0);
    }
    done = true;
    for (auto& t : readers) t.join();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // let the messages drain
    int stale = 0;
    for (int i = 0; i < kKeys; ++i) {
        const std::string k = "race" + std::to_string(i);
        int rc_l1 = 0, rc_l2 = 0;
        const std::string in_b = b.get(k, SHMC_TIER_L1, &rc_l1);
        const std::string in_redis = a.get(k, SHMC_TIER_L2, &rc_l2);
        if (rc_l1 == 0 && (rc_l2 != 0 || in_b != in_redis)) {
            ++stale;
            MESSAGE(k << ": B's L1 holds " << in_b << ", L2 holds "
                      << (rc_l2 ? std::string("nothing") : in_redis));
        }
    }
    CHECK(stale == 0);
    CHECK(reads > 100);
    CHECK(b.stats().fills > 0);
    MESSAGE(reads.load() << " reads on B, " << b.stats().fills << " fills, "
                         << b.stats().invalidations_applied << " invalidations applied");
}
