// l2_flight_test.cpp - single flight across hosts: shmc_fetch with a Redis L2 and the cross-host
// lock (SHMC_FETCH_L2_LOCK), against a real redis-server. Each "host" is a segment of its own
// (l2_host.h), which is how two machines sharing one Redis look to the library.
#include <doctest/doctest.h>
#include <shmcache/shmcache.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "l2_host.h"
#include "redis_server.h"

using l2test::Clock;
using l2test::Host;
using l2test::ms_since;
using l2test::RedisServer;

namespace {

shmc_fetch_options both(uint32_t lease_ms = 5000, bool lock = true) {
    shmc_fetch_options o;
    shmc_fetch_options_default(&o);
    o.tiers = SHMC_TIER_BOTH;
    o.flags = lock ? SHMC_FETCH_L2_LOCK : 0;
    o.lease_ms = lease_ms;
    return o;
}

struct Fetched {
    int rc = 0;
    shmc_fetch_result r{};
    std::string value;
};

Fetched fetch(Host& h, const std::string& k, const shmc_fetch_options& o) {
    Fetched f;
    char buf[256];
    f.rc = shmc_fetch(h.c, k.data(), k.size(), buf, sizeof buf, &o, &f.r);
    if (f.rc == 0 && f.r.outcome <= SHMC_FETCH_EARLY_REFRESH) f.value.assign(buf, f.r.value_len);
    return f;
}

int complete(Host& h, const std::string& k, const std::string& v, const shmc_fetch_options& o,
             uint64_t lease) {
    return shmc_fetch_complete(h.c, k.data(), k.size(), v.data(), v.size(), 0, 10, &o, lease);
}

shmc_flight_stats flight(Host& h) {
    shmc_flight_stats s;
    REQUIRE(shmc_flight_get_stats(h.c, &s) == 0);
    return s;
}

// Computes k on host h (fetch, then complete with v) for a test that then counts on h's L1 copy.
// The copy is kept only if h's own tracking echo of the write is applied within the 5 ms the
// complete waits for it (docs/l2.md, "Own writes"); an echo applied later drops it by design, as
// when the subscriber is descheduled that long (a sanitizer build on 2 busy CPUs). So the echo
// is waited for (Host::await_echo), and a key whose copy did not stay is deleted and computed
// again, up to 5 times.
void compute_kept(Host& h, const std::string& k, const std::string& v,
                  const shmc_fetch_options& o) {
    for (int i = 0; i < 5; ++i) {
        uint64_t applied = h.stats().invalidations_applied;
        Fetched f = fetch(h, k, o);
        REQUIRE(f.r.outcome == SHMC_FETCH_COMPUTE);
        REQUIRE(complete(h, k, v, o, f.r.lease) == 0);
        h.await_echo(applied);
        if (h.in_l1(k)) return;
        applied = h.stats().invalidations_applied;
        REQUIRE(shmc_tdel(h.c, k.data(), k.size(), SHMC_TIER_BOTH) == 0);
        h.await_echo(applied);
    }
}

std::string lock_exists(RedisServer& redis, const std::string& key) {
    return redis.command("EXISTS", "t:__shmcache_lease__:" + key);
}

// threads callers on each host fetch key at once; a caller that is told to compute takes
// compute_ms and completes. Returns the number of computations.
int herd(std::vector<Host*> hosts, const std::string& key, const shmc_fetch_options& o, int threads,
         int compute_ms, std::atomic<int>* wrong) {
    std::atomic<int> computations{0}, ready{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> ts;
    for (Host* h : hosts)
        for (int i = 0; i < threads; ++i)
            ts.emplace_back([&, h] {
                ++ready;
                while (!go.load()) std::this_thread::yield();
                Fetched f = fetch(*h, key, o);
                if (f.rc != 0) {
                    ++*wrong;
                } else if (f.r.outcome == SHMC_FETCH_COMPUTE ||
                           f.r.outcome == SHMC_FETCH_COMPUTE_UNLEASED) {
                    ++computations;
                    std::this_thread::sleep_for(std::chrono::milliseconds(compute_ms));
                    if (complete(*h, key, "computed:" + key, o, f.r.lease) != 0) ++*wrong;
                } else if (f.r.outcome != SHMC_FETCH_HIT || f.value != "computed:" + key) {
                    ++*wrong;
                }
            });
    while (ready.load() < int(ts.size())) std::this_thread::yield();
    go = true;
    for (auto& t : ts) t.join();
    return computations.load();
}

}  // namespace

TEST_CASE("flight: with the cross-host lock, one computation for two hosts") {
    RedisServer redis;
    Host a("flock-a", redis.url()), b("flock-b", redis.url());
    REQUIRE(a.wait_subscribed());
    REQUIRE(b.wait_subscribed());
    const auto o = both();
    std::atomic<int> wrong{0};
    int one = 0, herds = 0;
    const int rounds = 10;
    for (int i = 0; i < rounds; ++i) {
        // The computing host keeps its L1 copy only if its own tracking echo of the write is
        // applied within the 5 ms its complete waits (docs/l2.md, "Own writes"), and the other
        // host keeps the copy it read only if the write's invalidation reached it first ("No
        // stale refill"). A subscriber descheduled longer (a sanitizer build on 2 busy CPUs)
        // loses a copy by design: the round is then run again on a new key, up to 5 times.
        std::string key;
        for (int attempt = 0; attempt < 5; ++attempt) {
            key = "cold" + std::to_string(i) + "-" + std::to_string(attempt);
            const int n = herd({&a, &b}, key, o, 4, 50, &wrong);
            ++herds;
            CHECK(n == 1);
            one += n == 1;
            CHECK(lock_exists(redis, key) == ":0\r\n");  // released with the value
            if (a.in_l1(key) && b.in_l1(key)) break;
        }
        CHECK(a.in_l1(key));
        CHECK(b.in_l1(key));
    }
    CHECK(wrong == 0);
    CHECK(one == herds);
    const auto sa = flight(a), sb = flight(b);
    CHECK(sa.l2_locks + sb.l2_locks == uint64_t(herds));  // one host per key took the lock
    // The other host found it held (when it missed before the value was written) and was then
    // served the value, never timing out.
    CHECK(sa.l2_lock_busy + sb.l2_lock_busy >= 1);
    CHECK(sa.l2_served + sb.l2_served == sa.l2_lock_busy + sb.l2_lock_busy);
    CHECK(sa.lease_timeouts + sb.lease_timeouts == 0);
    CHECK(sa.leases_held + sb.leases_held == 0);
    MESSAGE("2 hosts x 4 callers, " << herds << " cold keys: " << one
                                    << " rounds with exactly one computation");
}

TEST_CASE("flight: without the lock, at most one computation per host") {
    RedisServer redis;
    Host a("fnolock-a", redis.url()), b("fnolock-b", redis.url());
    REQUIRE(a.wait_subscribed());
    REQUIRE(b.wait_subscribed());
    const auto o = both(5000, false);
    std::atomic<int> wrong{0};
    for (int i = 0; i < 5; ++i) {
        const int n = herd({&a, &b}, "k" + std::to_string(i), o, 4, 50, &wrong);
        CHECK(n >= 1);
        CHECK(n <= 2);
    }
    CHECK(wrong == 0);
    CHECK(flight(a).l2_locks + flight(b).l2_locks == 0);
}

TEST_CASE("flight: an L2 hit is served once per host and copied into L1") {
    RedisServer redis;
    Host a("fhit-a", redis.url()), b("fhit-b", redis.url());
    REQUIRE(a.wait_subscribed());
    REQUIRE(b.wait_subscribed());
    // Host b's copy stays only if a's write reached b's subscriber before b's fill ("No stale
    // refill" in docs/l2.md drops a fill that an invalidation overtakes): wait for it.
    const uint64_t applied = b.stats().invalidations_applied;
    REQUIRE(a.set("k", "from-a", SHMC_TIER_L2, 0, 60000) == 0);
    b.await_echo(applied);
    Fetched f = fetch(b, "k", both());
    CHECK(f.r.outcome == SHMC_FETCH_HIT);
    CHECK(f.r.served_by == SHMC_TIER_L2);
    CHECK(f.value == "from-a");
    CHECK(f.r.lease == 0);
    CHECK((f.r.flags & SHMC_FLAG_FROM_L2) != 0);
    CHECK(b.in_l1("k"));
    CHECK(flight(b).leases_held == 0);
    Fetched again = fetch(b, "k", both());
    CHECK(again.r.served_by == SHMC_TIER_L1);
    CHECK(again.value == "from-a");
}

TEST_CASE(
    "flight: a host that never completes loses the lock at lease_ms; its late complete "
    "does not release its successor's lock") {
    RedisServer redis;
    Host a("fdead-a", redis.url()), b("fdead-b", redis.url());
    const auto o = both(300);
    Fetched owner = fetch(a, "k", o);
    REQUIRE(owner.r.outcome == SHMC_FETCH_COMPUTE);
    CHECK(lock_exists(redis, "k") == ":1\r\n");
    const auto t0 = Clock::now();
    Fetched next = fetch(b, "k", o);  // host a "died": its lock expires at its PX
    const double took = ms_since(t0);
    CHECK(next.r.outcome == SHMC_FETCH_COMPUTE);
    CHECK(took >= 250);
    CHECK(took < 300 + 400);
    CHECK(flight(b).l2_lock_busy == 1);
    CHECK(flight(b).l2_locks == 1);
    CHECK(complete(a, "k", "late", o, owner.r.lease) == 0);
    CHECK(lock_exists(redis, "k") == ":1\r\n");  // b's lock: a's token no longer matches
    CHECK(complete(b, "k", "b", o, next.r.lease) == 0);
    CHECK(lock_exists(redis, "k") == ":0\r\n");
    MESSAGE("cross-host takeover after " << took << " ms (lease_ms 300)");
}

TEST_CASE("flight: abandon releases the Redis lock; the other host takes it at once") {
    RedisServer redis;
    Host a("fab-a", redis.url()), b("fab-b", redis.url());
    const auto o = both(10000);
    Fetched owner = fetch(a, "k", o);
    REQUIRE(owner.r.outcome == SHMC_FETCH_COMPUTE);
    Fetched next;
    double took = 0;
    std::thread waiter([&] {
        const auto t0 = Clock::now();
        next = fetch(b, "k", o);
        took = ms_since(t0);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK(shmc_fetch_abandon(a.c, "k", 1, owner.r.lease) == 0);
    waiter.join();
    CHECK(next.r.outcome == SHMC_FETCH_COMPUTE);
    CHECK(took < 50 + 100);
    CHECK(flight(a).abandoned == 1);
    CHECK(shmc_fetch_abandon(b.c, "k", 1, next.r.lease) == 0);
    CHECK(lock_exists(redis, "k") == ":0\r\n");
}

TEST_CASE("flight: a stale refresh is left to the host holding the lock") {
    RedisServer redis;
    Host a("fswr-a", redis.url()), b("fswr-b", redis.url());
    REQUIRE(a.wait_subscribed());
    REQUIRE(b.wait_subscribed());
    auto o = both();
    o.ttl_ms = 60;
    o.stale_ttl_ms = 60000;
    o.fill_ttl_ms = 60;  // host b's copy from L2 goes stale as soon as host a's
    // Host a's copy is the stale value that a serves, and refreshes, below.
    compute_kept(a, "k", "v1", o);
    Fetched fb = fetch(b, "k", o);
    REQUIRE(fb.r.outcome == SHMC_FETCH_HIT);
    REQUIRE(fb.r.served_by == SHMC_TIER_L2);
    // Host a's own invalidation of "k" reaches b asynchronously and cancels (or, arriving late
    // on a loaded machine, drops) a copy into b's L1 that races with it (docs/l2.md): fetch
    // again until b has kept its copy for 50 ms, long after that invalidation.
    auto copy_settled = [&] {
        if (!b.in_l1("k")) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        return b.in_l1("k");
    };
    for (int i = 0; i < 200 && !copy_settled(); ++i) fetch(b, "k", o);
    REQUIRE(b.in_l1("k"));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    Fetched ra = fetch(a, "k", o);
    CHECK(ra.r.outcome == SHMC_FETCH_STALE_REFRESH);
    Fetched rb = fetch(b, "k", o);
    CHECK(rb.r.outcome == SHMC_FETCH_STALE);  // a refreshes for both
    CHECK(rb.value == "v1");
    CHECK(rb.r.lease == 0);
    CHECK(flight(b).l2_lock_busy == 1);
    CHECK(flight(b).leases_held == 0);
    REQUIRE(complete(a, "k", "v2", o, ra.r.lease) == 0);
    // a's write invalidated b's stale copy; b reads the new value from L2.
    CHECK(l2test::eventually([&] { return fetch(b, "k", o).value == "v2"; }));
}

TEST_CASE("flight: with a Redis TTL, stale-while-revalidate outlives the TTL on every host") {
    // The Redis key is kept for l2_ttl + stale_ttl: its expiry at l2_ttl would otherwise reach
    // every host as an invalidation and drop the copies that may still be served stale.
    RedisServer redis;
    Host a("fswrttl-a", redis.url()), b("fswrttl-b", redis.url());
    auto o = both(5000, false);
    o.ttl_ms = 300;
    o.l2_ttl_ms = 300;
    o.stale_ttl_ms = 5000;
    Fetched f = fetch(a, "k", o);
    REQUIRE(f.r.outcome == SHMC_FETCH_COMPUTE);
    REQUIRE(complete(a, "k", "v1", o, f.r.lease) == 0);
    const long long pttl = std::atoll(redis.command("PTTL", "t:k").c_str() + 1);
    CHECK(pttl > 5000);
    CHECK(pttl <= 5300);
    // A fresh L2 hit on host b: its copy is fresh only for what is left of the freshness.
    Fetched fb = fetch(b, "k", o);
    CHECK(fb.r.outcome == SHMC_FETCH_HIT);
    CHECK(fb.r.ttl_left_ms <= 300);
    std::this_thread::sleep_for(std::chrono::milliseconds(450));
    // Past the TTL: host a serves its copy stale and refreshes (before, the key's expiry in
    // Redis had dropped that copy: a COMPUTE with nothing to serve).
    Fetched ra = fetch(a, "k", o);
    CHECK(ra.r.outcome == SHMC_FETCH_STALE_REFRESH);
    CHECK(ra.value == "v1");
    // A host without a copy finds the value in Redis, knows it is stale, serves it and
    // refreshes it itself (it holds its host's lease); it keeps no copy.
    Host c("fswrttl-c", redis.url());
    Fetched rc = fetch(c, "k", o);
    CHECK(rc.r.outcome == SHMC_FETCH_STALE_REFRESH);
    CHECK(rc.r.served_by == SHMC_TIER_L2);
    CHECK(rc.value == "v1");
    CHECK(rc.r.ttl_left_ms == 0);
    CHECK_FALSE(c.in_l1("k"));
    REQUIRE(complete(c, "k", "v2", o, rc.r.lease) == 0);
    REQUIRE(complete(a, "k", "v2", o, ra.r.lease) == 0);
    CHECK(l2test::eventually([&] { return fetch(b, "k", o).value == "v2"; }));
}

TEST_CASE("flight: Redis hung: fetch computes with its local lease within the command timeout") {
    RedisServer redis;
    Host a("fhung", redis.url());
    redis.stop();
    const auto o = both();
    const auto t0 = Clock::now();
    Fetched f = fetch(a, "k", o);
    CHECK(f.rc == 0);
    CHECK(f.r.outcome == SHMC_FETCH_COMPUTE);
    CHECK(ms_since(t0) < 100 * 4);
    CHECK(complete(a, "k", "v", o, f.r.lease) == SHMC_E_L2_UNAVAILABLE);  // L1 written
    CHECK(a.in_l1("k"));
    CHECK(flight(a).leases_held == 0);
    redis.cont();
}

TEST_CASE("flight: NO_WAIT never reaches Redis: an L1 miss is BUSY, an L1 hit is served") {
    RedisServer redis;
    Host a("fnowait-a", redis.url());
    REQUIRE(a.wait_subscribed());
    auto o = both(5000, true);
    o.flags |= SHMC_FETCH_NO_WAIT;
    // set_settled (l2_host.h): the copy the fetch below makes stays.
    REQUIRE(a.set_settled("k", "from-redis", SHMC_TIER_L2, 0, 60000) == 0);
    const shmc_l2_stats before = a.stats();
    Fetched busy = fetch(a, "k", o);  // in Redis only: settling it needs a round trip
    REQUIRE(busy.rc == 0);
    CHECK(busy.r.outcome == SHMC_FETCH_BUSY);
    CHECK(busy.r.lease == 0);
    CHECK(a.stats().hits + a.stats().misses == before.hits + before.misses);
    CHECK(flight(a).leases_held == 0);
    CHECK(lock_exists(redis, "k") == ":0\r\n");
    // The call without the flag (the one an event loop makes in a thread) reads Redis ...
    auto waiting = o;
    waiting.flags &= ~SHMC_FETCH_NO_WAIT;
    Fetched got = fetch(a, "k", waiting);
    CHECK(got.r.outcome == SHMC_FETCH_HIT);
    CHECK(got.r.served_by == SHMC_TIER_L2);
    CHECK(got.value == "from-redis");
    // ... and its copy in L1 is then settled inline.
    Fetched inline_hit = fetch(a, "k", o);
    CHECK(inline_hit.r.outcome == SHMC_FETCH_HIT);
    CHECK(inline_hit.r.served_by == SHMC_TIER_L1);
    CHECK(inline_hit.value == "from-redis");
    // A stale value whose refresh would take the Redis lock: BUSY as well.
    auto swr = waiting;
    swr.ttl_ms = 20;
    swr.stale_ttl_ms = 60000;
    compute_kept(a, "cold", "old", swr);  // the stale copy served below
    std::this_thread::sleep_for(std::chrono::milliseconds(40));
    auto swr_nw = swr;
    swr_nw.flags |= SHMC_FETCH_NO_WAIT;
    CHECK(fetch(a, "cold", swr_nw).r.outcome == SHMC_FETCH_BUSY);
    Fetched s = fetch(a, "cold", swr);
    CHECK(s.r.outcome == SHMC_FETCH_STALE_REFRESH);
    CHECK(s.value == "old");
    CHECK(complete(a, "cold", "new", swr, s.r.lease) == 0);
}
