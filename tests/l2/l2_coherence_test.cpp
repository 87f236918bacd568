// l2_coherence_test.cpp - coherence v2 against a real redis-server (docs/l2.md, "Coherence"):
// every change to the namespace in Redis, whoever makes it, reaches every host's L1 within the
// stated bound, and a broken link stops L1 copies of L2 values from being served within
// link_lease_ms, without wiping what L1 wrote itself.
//
// Two hosts (two segments), each with three worker processes that keep reading the test keys
// through both tiers (so L1 holds copies, and one of them is the host's subscriber). The test
// process itself reads each host's L1 with plain shmc_get and never subscribes. Bounds are
// asserted with a wide margin (1 s where docs/l2.md states 100 ms for a live link); the measured
// figures are printed (bench/bench_l2 reports them too).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "l2_host.h"
#include "redis_server.h"

using namespace l2test;

namespace {

constexpr int kWorkers = 3;
constexpr double kLiveBoundMs = 1000;   // asserted; stated: 100 ms on loopback
constexpr double kLeaseBoundMs = 2000;  // asserted; stated: link_lease_ms (1000) after a failure

shmc_options seg_options() {
    shmc_options o;
    shmc_options_default(&o);
    o.size_bytes = 4u << 20;
    o.n_stripes = 8;
    return o;
}

// A worker: its own handle on the host's segment, with an L2 (so it may be elected the host's
// subscriber), reading keys through both tiers until the test process goes away.
[[noreturn]] void worker(const std::string& seg, const std::string& url,
                         const std::vector<std::string>& keys) {
    const pid_t parent = getppid();
    shmc_cache* c = nullptr;
    const shmc_options o = seg_options();
    if (shmc_open(seg.c_str(), &o, &c) != 0) _exit(2);
    shmc_l2_options l;
    shmc_l2_options_default(&l);
    l.url = url.c_str();
    l.key_prefix = "t";
    l.command_timeout_ms = 100;
    l.breaker_cooldown_ms = 200;
    if (shmc_l2_attach(c, &l) != 0) _exit(3);
    char buf[256];
    while (getppid() == parent) {
        for (const std::string& k : keys) {
            size_t len = 0;
            shmc_tget(c, k.data(), k.size(), buf, sizeof buf, &len, nullptr, nullptr,
                      SHMC_TIER_BOTH, 0, nullptr);
        }
        usleep(1000);
    }
    _exit(0);
}

struct Fleet {
    explicit Fleet(RedisServer& r, std::vector<std::string> k)
        : redis(r),
          keys(std::move(k)),
          a("coh-a", r.url(), "t", [](shmc_l2_options& l) { l.flags = SHMC_L2_NO_SUBSCRIBE; }),
          b("coh-b", r.url(), "t", [](shmc_l2_options& l) { l.flags = SHMC_L2_NO_SUBSCRIBE; }) {
        for (Host* h : {&a, &b})
            for (int i = 0; i < kWorkers; ++i) {
                const pid_t pid = fork();
                REQUIRE(pid >= 0);
                if (pid == 0) worker(h->name, redis.url(), keys);
                (h == &a ? a_pids : b_pids).push_back(pid);
            }
        REQUIRE(a.wait_subscribed());
        REQUIRE(b.wait_subscribed());
        CHECK(a.stats().invalidation_mode == SHMC_INVAL_TRACKING);
        CHECK(b.stats().invalidation_mode == SHMC_INVAL_TRACKING);
    }
    ~Fleet() {
        for (const std::vector<pid_t>* v : {&a_pids, &b_pids})
            for (pid_t p : *v) {
                kill(p, SIGKILL);
                waitpid(p, nullptr, 0);
            }
    }
    // The value host h's L1 serves for key ("" on a miss).
    static std::string l1(Host& h, const std::string& k) {
        char buf[256];
        size_t len = 0;
        const int rc = shmc_get(h.c, k.data(), k.size(), buf, sizeof buf, &len, nullptr, nullptr);
        return rc == 0 ? std::string(buf, len) : std::string();
    }
    // Both hosts' L1 serve v for k (the workers copy it from Redis).
    bool both_serve(const std::string& k, const std::string& v, int limit_ms = 3000) {
        return eventually([&] { return l1(a, k) == v && l1(b, k) == v; }, limit_ms);
    }
    // Milliseconds from t0 until neither host's L1 serves old for k (polled every 50 us);
    // -1 if that did not happen within limit_ms.
    double until_gone(const std::string& k, const std::string& old, Clock::time_point t0,
                      double limit_ms) {
        while (ms_since(t0) < limit_ms) {
            if (l1(a, k) != old && l1(b, k) != old) return ms_since(t0);
            usleep(50);
        }
        return -1;
    }
    // True if, for ms milliseconds, neither host's L1 ever serves old for k.
    bool never_serves(const std::string& k, const std::string& old, double ms) {
        const auto t0 = Clock::now();
        while (ms_since(t0) < ms) {
            if (l1(a, k) == old || l1(b, k) == old) return false;
            usleep(200);
        }
        return true;
    }
    pid_t subscriber_of(Host& h) { return pid_t(h.stats().subscriber_pid); }

    RedisServer& redis;
    std::vector<std::string> keys;
    Host a, b;
    std::vector<pid_t> a_pids, b_pids;
};

}  // namespace

TEST_CASE("coherence: SET, DEL and EXPIRE from outside (redis-cli, raw RESP) reach every host's L1 within the bound") {
    RedisServer redis;
    REQUIRE(redis.command("SET", "t:k", "v0") == "+OK\r\n");
    Fleet f(redis, {"k"});
    REQUIRE(f.both_serve("k", "v0"));

    // A plain RESP client that is not shmcache: the delay is measured from before its write.
    auto t0 = Clock::now();
    REQUIRE(redis.command("SET", "t:k", "v1") == "+OK\r\n");
    double ms = f.until_gone("k", "v0", t0, kLiveBoundMs);
    MESSAGE("external SET: old value gone from both hosts' L1 in " << ms << " ms");
    CHECK(ms >= 0);
    REQUIRE(f.both_serve("k", "v1"));

    t0 = Clock::now();
    REQUIRE(redis.command("DEL", "t:k") == ":1\r\n");
    ms = f.until_gone("k", "v1", t0, kLiveBoundMs);
    MESSAGE("external DEL: gone in " << ms << " ms");
    CHECK(ms >= 0);
    CHECK(f.never_serves("k", "v1", 100));

    // EXPIRE changes no value, but the copies were made when the key had no TTL: they must not
    // outlive it. The command drops them; the copies made next carry the new TTL.
    REQUIRE(redis.command("SET", "t:k", "v2") == "+OK\r\n");
    REQUIRE(f.both_serve("k", "v2"));
    auto capped = [&](Host& h) {  // no copy, or one that ends with the key
        int rc = 0;
        int64_t ttl = 0;
        h.get("k", SHMC_TIER_L1, &rc, nullptr, &ttl);
        return rc != 0 || (ttl >= 0 && ttl <= 400);
    };
    REQUIRE_FALSE(capped(f.a));
    t0 = Clock::now();
    REQUIRE(redis.command("PEXPIRE", "t:k", "400") == ":1\r\n");
    ms = -1;
    while (ms_since(t0) < kLiveBoundMs)
        if (capped(f.a) && capped(f.b)) {
            ms = ms_since(t0);
            break;
        }
    MESSAGE("external EXPIRE: copies without the TTL gone in " << ms << " ms");
    CHECK(ms >= 0);
    CHECK(f.until_gone("k", "v2", t0, 400 + kLiveBoundMs) >= 0);  // and gone with the key

    // The redis-cli program, as an operator would use it.
    REQUIRE(redis.command("SET", "t:cli", "c0") == "+OK\r\n");
    REQUIRE(redis.command("SET", "t:k", "v3") == "+OK\r\n");
    // (the workers read "k" only: copy "cli" into both hosts' L1 by hand)
    CHECK(f.a.get("cli") == "c0");
    CHECK(f.b.get("cli") == "c0");
    REQUIRE(f.both_serve("cli", "c0"));
    t0 = Clock::now();
    CHECK(redis.cli({"SET", "t:cli", "c1"}) == "OK\n");
    ms = f.until_gone("cli", "c0", t0, kLiveBoundMs);
    MESSAGE("redis-cli SET (including the program's start): gone in " << ms << " ms");
    CHECK(ms >= 0);
    CHECK(f.a.get("cli") == "c1");
    t0 = Clock::now();
    CHECK(redis.cli({"DEL", "t:cli"}) == "1\n");
    ms = f.until_gone("cli", "c1", t0, kLiveBoundMs);
    MESSAGE("redis-cli DEL: gone in " << ms << " ms");
    CHECK(ms >= 0);
    CHECK(f.a.get("cli") == "");

    // Tracking mode: shmcache's writes publish nothing (Redis reports them).
    CHECK(f.a.stats().invalidations_sent == 0);
}

TEST_CASE("coherence: a key expiring in Redis and a key evicted by maxmemory leave every host's L1 within the bound") {
    RedisServer redis;
    Fleet f(redis, {"exp", "victim"});

    // Expiry: the copies are capped at the key's TTL, and Redis's expiry is reported as well.
    const auto t_set = Clock::now();
    REQUIRE(redis.command_argv({"SET", "t:exp", "e0", "PX", "500"}) == "+OK\r\n");
    REQUIRE(f.both_serve("exp", "e0", 400));
    const auto t_expire = t_set + std::chrono::milliseconds(500);
    while (Clock::now() < t_expire) usleep(100);
    const double late = f.until_gone("exp", "e0", t_expire, kLiveBoundMs);
    MESSAGE("expiry in Redis: gone from both hosts' L1 " << late << " ms after the key's TTL");
    CHECK(late >= 0);

    // Eviction: the victim is the only key with a TTL, so volatile-lru evicts it first.
    REQUIRE(redis.command_argv({"SET", "t:victim", "x0", "EX", "3600"}) == "+OK\r\n");
    REQUIRE(f.both_serve("victim", "x0"));
    REQUIRE(redis.command_argv({"CONFIG", "SET", "maxmemory-policy", "volatile-lru"}) == "+OK\r\n");
    const std::string info = redis.command("MEMORY", "STATS");
    REQUIRE(redis.command_argv({"CONFIG", "SET", "maxmemory", "3mb"}) == "+OK\r\n");
    const std::string filler(4096, 'f');
    double ms = -1;
    for (int i = 0; i < 2000; ++i) {
        const auto t0 = Clock::now();
        const std::string r = redis.command_argv({"SET", "junk:" + std::to_string(i), filler});
        if (redis.command("EXISTS", "t:victim") == ":0\r\n") {
            ms = f.until_gone("victim", "x0", t0, kLiveBoundMs);
            break;
        }
        REQUIRE(r == "+OK\r\n");
    }
    MESSAGE("maxmemory eviction: gone from both hosts' L1 in " << ms << " ms");
    CHECK(ms >= 0);
    CHECK(f.never_serves("victim", "x0", 100));
}

TEST_CASE("coherence: FLUSHALL drops every L1 copy of L2 data on every host, and nothing L1 wrote itself") {
    RedisServer redis;
    for (int i = 0; i < 5; ++i)
        REQUIRE(redis.command("SET", "t:f" + std::to_string(i), "v") == "+OK\r\n");
    Fleet f(redis, {"f0", "f1", "f2", "f3", "f4"});
    for (int i = 0; i < 5; ++i) REQUIRE(f.both_serve("f" + std::to_string(i), "v"));
    REQUIRE(f.a.set("own", "mine", SHMC_TIER_L1) == 0);
    const uint64_t resyncs = f.a.stats().resyncs;
    const auto t0 = Clock::now();
    REQUIRE(redis.command("FLUSHALL") == "+OK\r\n");
    double worst = 0;
    for (int i = 0; i < 5; ++i) worst = std::max(worst, f.until_gone("f" + std::to_string(i), "v", t0, kLiveBoundMs));
    MESSAGE("FLUSHALL: every copy gone from both hosts' L1 in " << worst << " ms");
    CHECK(worst >= 0);
    CHECK(f.a.stats().resyncs > resyncs);
    CHECK(Fleet::l1(f.a, "own") == "mine");
}

TEST_CASE("coherence: killing a host's subscriber serves no stale value beyond the lease, and wipes nothing L1 wrote itself") {
    RedisServer redis;
    REQUIRE(redis.command("SET", "t:k", "v0") == "+OK\r\n");
    Fleet f(redis, {"k"});
    REQUIRE(f.both_serve("k", "v0"));
    REQUIRE(f.a.set("own", "mine", SHMC_TIER_L1) == 0);
    const pid_t sub = f.subscriber_of(f.a);
    REQUIRE(sub > 0);
    REQUIRE(std::find(f.a_pids.begin(), f.a_pids.end(), sub) != f.a_pids.end());
    kill(sub, SIGKILL);
    // A write nobody on host a hears about until a new subscriber is elected.
    const auto t0 = Clock::now();
    REQUIRE(redis.command("SET", "t:k", "v1") == "+OK\r\n");
    const double ms = f.until_gone("k", "v0", t0, kLeaseBoundMs);
    MESSAGE("subscriber SIGKILLed, then an external SET: old value gone from host a's L1 in "
            << ms << " ms (bound: takeover or link_lease_ms)");
    CHECK(ms >= 0);
    CHECK(eventually([&] { return f.a.stats().subscribed == 1 && f.subscriber_of(f.a) != sub; }));
    CHECK(f.never_serves("k", "v0", 200));
    CHECK(Fleet::l1(f.a, "own") == "mine");
    REQUIRE(f.both_serve("k", "v1"));
}

TEST_CASE("coherence: a stopped subscriber (SIGSTOP) serves no stale value beyond the lease") {
    RedisServer redis;
    REQUIRE(redis.command("SET", "t:k", "v0") == "+OK\r\n");
    Fleet f(redis, {"k"});
    REQUIRE(f.both_serve("k", "v0"));
    REQUIRE(f.a.set("own", "mine", SHMC_TIER_L1) == 0);
    const pid_t sub = f.subscriber_of(f.a);
    REQUIRE(sub > 0);
    kill(sub, SIGSTOP);  // alive, holding the election lock: nobody takes over
    const auto t0 = Clock::now();
    REQUIRE(redis.command("SET", "t:k", "v1") == "+OK\r\n");
    const double ms = f.until_gone("k", "v0", t0, kLeaseBoundMs);
    MESSAGE("subscriber SIGSTOPped, then an external SET: old value gone from host a's L1 in "
            << ms << " ms (bound: link_lease_ms = 1000)");
    CHECK(ms >= 0);
    CHECK(Fleet::l1(f.a, "own") == "mine");
    CHECK(f.never_serves("k", "v0", 200));
    kill(sub, SIGCONT);
    CHECK(f.never_serves("k", "v0", 300));
    CHECK(f.both_serve("k", "v1", 5000));
    CHECK(Fleet::l1(f.a, "own") == "mine");
}

TEST_CASE("coherence: a Redis restart serves no stale value, and the values written meanwhile win") {
    RedisServer redis;
    REQUIRE(redis.command("SET", "t:k", "v0") == "+OK\r\n");
    Fleet f(redis, {"k"});
    REQUIRE(f.both_serve("k", "v0"));
    REQUIRE(f.a.set("own", "mine", SHMC_TIER_L1) == 0);
    const auto t0 = Clock::now();
    redis.restart();  // empty: the old value is gone from Redis
    const double ms = f.until_gone("k", "v0", t0, kLeaseBoundMs);
    MESSAGE("Redis restarted (empty): old value gone from both hosts' L1 " << ms
            << " ms after the kill");
    CHECK(ms >= 0);
    REQUIRE(redis.command("SET", "t:k", "v1") == "+OK\r\n");
    CHECK(f.never_serves("k", "v0", 300));
    CHECK(f.both_serve("k", "v1", 5000));  // resubscribed in tracking mode, copies again
    CHECK(f.a.stats().invalidation_mode == SHMC_INVAL_TRACKING);
    CHECK(Fleet::l1(f.a, "own") == "mine");
}

TEST_CASE("coherence: a hung Redis (SIGSTOP): L1 copies of L2 values stop being served within the lease") {
    RedisServer redis;
    REQUIRE(redis.command("SET", "t:k", "v0") == "+OK\r\n");
    Fleet f(redis, {"k"});
    REQUIRE(f.both_serve("k", "v0"));
    REQUIRE(f.a.set("own", "mine", SHMC_TIER_L1) == 0);
    const auto t0 = Clock::now();
    redis.stop();
    // Nobody can vouch for the copies any more: another host could be writing through another
    // path. They stop being served once the heartbeat goes unanswered (the lease runs out or the
    // subscriber gives the link up, whichever comes first).
    const double ms = f.until_gone("k", "v0", t0, kLeaseBoundMs);
    MESSAGE("Redis SIGSTOPped: copies no longer served after " << ms << " ms");
    CHECK(ms >= 0);
    CHECK(Fleet::l1(f.a, "own") == "mine");  // L1's own entries keep being served
    redis.cont();
    REQUIRE(redis.command("SET", "t:k", "v1") == "+OK\r\n");
    CHECK(f.never_serves("k", "v0", 300));
    CHECK(f.both_serve("k", "v1", 5000));
    CHECK(Fleet::l1(f.a, "own") == "mine");
}

TEST_CASE("coherence: this host's own writes stay in its L1 (their tracking echo is applied first)") {
    RedisServer redis;
    Host a("echo-a", redis.url());
    Host b("echo-b", redis.url());
    REQUIRE(a.stats().invalidation_mode == SHMC_INVAL_TRACKING);
    // set_settled (l2_host.h): an echo applied after the 5 ms wait drops the copy by design (a
    // subscriber descheduled that long); the write is then made again, up to 5 times, so that a
    // copy checked here is one its echo has already passed.
    for (int i = 0; i < 50; ++i) {
        const std::string k = "k" + std::to_string(i);
        REQUIRE(a.set_settled(k, "v" + std::to_string(i)) == 0);
        CHECK(a.in_l1(k));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    int kept = 0;
    for (int i = 0; i < 50; ++i) kept += a.in_l1("k" + std::to_string(i));
    CHECK(kept == 50);
    // The other host dropped nothing it did not hold, and now reads every value from Redis.
    for (int i = 0; i < 50; ++i) CHECK(b.get("k" + std::to_string(i)) == "v" + std::to_string(i));
    // Overwrites: a's L1 has a's latest value, b's copy of the old one is gone.
    REQUIRE(b.in_l1("k0"));
    REQUIRE(a.set_settled("k0", "new") == 0);
    CHECK(Fleet::l1(a, "k0") == "new");
    CHECK(eventually([&] { return !b.in_l1("k0"); }, 1000));
    CHECK(b.get("k0") == "new");
    CHECK(a.stats().invalidations_sent == 0);
}

TEST_CASE("coherence: publish mode where CLIENT TRACKING is refused (an ACL user without it)") {
    RedisServer redis;
    REQUIRE(redis.command_argv({"ACL", "SETUSER", "app", "on", ">pw", "~*", "&*", "+@all",
                                "-client"}) == "+OK\r\n");
    const std::string url =
        "redis://app:pw@127.0.0.1:" + std::to_string(redis.port()) + "/0";
    Host a("pub-a", url);
    Host b("pub-b", url);
    CHECK(a.stats().invalidation_mode == SHMC_INVAL_PUBLISH);
    CHECK(b.stats().invalidation_mode == SHMC_INVAL_PUBLISH);
    REQUIRE(a.set("k", "v0") == 0);
    REQUIRE(b.get_filled("k", "v0"));
    const auto t0 = Clock::now();
    REQUIRE(a.set("k", "v1") == 0);
    CHECK(eventually([&] { return !b.in_l1("k"); }, 1000));
    MESSAGE("publish mode: a shmcache write reached the other host's L1 in " << ms_since(t0)
            << " ms");
    CHECK(a.stats().invalidations_sent > 0);
    CHECK(b.get("k") == "v1");
}

TEST_CASE("coherence: publish mode where the tracking channel is not granted (Redis 7 resetchannels)") {
    RedisServer redis;
    // acl-pubsub-default resetchannels: a user gets only the channels granted to it. This one
    // may use its namespace's invalidation channel but not __redis__:invalidate.
    REQUIRE(redis.command_argv({"ACL", "SETUSER", "app", "on", ">pw", "~*", "resetchannels",
                                "&t:__shmcache__:invalidate", "+@all"}) == "+OK\r\n");
    const std::string url =
        "redis://app:pw@127.0.0.1:" + std::to_string(redis.port()) + "/0";
    Host a("chan-a", url);
    CHECK(a.stats().invalidation_mode == SHMC_INVAL_PUBLISH);
    // With the channel granted too, tracking is used.
    REQUIRE(redis.command_argv({"ACL", "SETUSER", "app", "&__redis__:invalidate"}) == "+OK\r\n");
    Host b("chan-b", url);
    CHECK(b.stats().invalidation_mode == SHMC_INVAL_TRACKING);
}
