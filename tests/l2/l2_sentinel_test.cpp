// l2_sentinel_test.cpp - the Redis tier behind Redis Sentinel (redis+sentinel://): a master, a
// replica and a sentinel, all real servers started by the test on loopback ports; failovers
// forced with SENTINEL FAILOVER and by SIGKILL of the master, both under load.
//
// What must hold during a failover: every call returns within the command timeout (plus
// slack for a busy machine) with 0, a miss or SHMC_E_L2_UNAVAILABLE (the Python layer turns
// the latter into a miss: no error reaches the application); afterwards writes go to the new
// master, every host has resynced (a failover may lose the old master's last writes, so no L1
// copy made before it is served), and cross-host invalidation works again.
#include <doctest/doctest.h>
#include <shmcache/shmcache.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "l2_host.h"
#include "redis_server.h"

using l2test::Clock;
using l2test::eventually;
using l2test::Host;
using l2test::ms_since;
using l2test::RedisServer;

namespace {

RedisServer::Options replica_of(const RedisServer& master) {
    RedisServer::Options o;
    o.extra_args = {"--replicaof", "127.0.0.1", std::to_string(master.port())};
    return o;
}

RedisServer::Options sentinel_for(const RedisServer& master) {
    RedisServer::Options o;
    o.sentinel = true;
    o.config = "sentinel monitor mymaster 127.0.0.1 " + std::to_string(master.port()) +
               " 1\n"
               "sentinel down-after-milliseconds mymaster 500\n"
               "sentinel failover-timeout mymaster 5000\n"
               "sentinel parallel-syncs mymaster 1\n";
    return o;
}

// A port nothing listens on (a sentinel that is down): taken from a server started and killed.
int dead_port() {
    RedisServer gone;
    const int port = gone.port();
    gone.kill();
    return port;
}

struct Deployment {
    RedisServer master;
    RedisServer replica{replica_of(master)};
    RedisServer sentinel{sentinel_for(master)};
    std::string url;

    Deployment() {
        // The URL lists a dead sentinel first: the resolver must move on to the live one.
        url = "redis+sentinel://127.0.0.1:" + std::to_string(dead_port()) + ",127.0.0.1:" +
              std::to_string(sentinel.port()) + "/mymaster/0";
        // The replica is in sync and the sentinel knows it (or a failover has no candidate).
        REQUIRE(eventually(
            [&] { return master.command_argv({"INFO", "replication"}).find("state=online") !=
                         std::string::npos; },
            10000));
        REQUIRE(eventually(
            [&] {
                return sentinel.cli({"SENTINEL", "REPLICAS", "mymaster"}).find(
                           std::to_string(replica.port())) != std::string::npos;
            },
            15000));
    }
    // The port of the master the sentinel reports now.
    int reported_master() const {
        const std::string out = sentinel.cli({"SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster"});
        const size_t nl = out.find('\n');
        return nl == std::string::npos ? 0 : std::atoi(out.c_str() + nl + 1);
    }
};

// Sets and gets in a loop from two hosts while a failover happens; records the slowest call and
// any result other than success, a miss or L2 unavailable.
struct Load {
    Host& a;
    Host& b;
    std::atomic<bool> stop{false};
    std::atomic<int> calls{0}, unavailable{0}, bad{0};
    std::atomic<double> slowest{0};
    std::string bad_what;
    std::thread t;

    Load(Host& a_, Host& b_) : a(a_), b(b_) {
        t = std::thread([this] {
            for (int i = 0; !stop; ++i) {
                const std::string k = "load" + std::to_string(i % 50);
                const std::string v = "v" + std::to_string(i);
                const auto t0 = Clock::now();
                const int rs = a.set(k, v);
                int rg = 0;
                const std::string got = b.get(k, SHMC_TIER_BOTH, &rg);
                const double took = ms_since(t0);
                if (took > slowest) slowest = took;
                ++calls;
                for (int rc : {rs, rg}) {
                    if (rc == SHMC_E_L2_UNAVAILABLE) {
                        ++unavailable;
                    } else if (rc != 0 && rc != SHMC_E_NOTFOUND) {
                        ++bad;
                        bad_what = shmc_errmsg();
                    }
                }
                // A value read is always one this loop wrote for that key (never another key's):
                // "v<n>" with n % 50 == the key's number.
                if (rg == 0 && (got.size() < 2 || got[0] != 'v' ||
                                std::atoi(got.c_str() + 1) % 50 != i % 50)) {
                    ++bad;
                    bad_what = "read '" + got + "' for " + k;
                }
            }
        });
    }
    void finish() {
        stop = true;
        t.join();
    }
};

}  // namespace

TEST_CASE("sentinel: the master is found through the sentinels, a dead one skipped") {
    Deployment d;
    Host a("sent", d.url);
    CHECK(a.set("k", "v") == 0);
    CHECK(d.master.command("GET", "t:k") == "$1\r\nv\r\n");
    CHECK(eventually([&] { return d.replica.command("GET", "t:k") == "$1\r\nv\r\n"; }));
    CHECK(a.stats().invalidation_mode == SHMC_INVAL_TRACKING);

    // A user limited as production users are (no @dangerous commands, so no ROLE): the master
    // is still recognized (HELLO's role) and written to. ACLs are per server: both get it.
    for (RedisServer* s : {&d.master, &d.replica})
        REQUIRE(s->command_argv({"ACL", "SETUSER", "app", "on", ">pw", "~*", "&*", "+@all",
                                 "-@dangerous"}) == "+OK\r\n");
    const std::string app_url = "redis+sentinel://app:pw@127.0.0.1:" +
                                std::to_string(d.sentinel.port()) + "/mymaster/0";
    Host limited("sent-acl", app_url);
    CHECK(limited.set("acl", "ok") == 0);
    CHECK(d.master.command("GET", "t:acl") == "$2\r\nok\r\n");
    // A master name the sentinels do not know: a clear error, bounded.
    Host wrong("sent-wrong",
               "redis+sentinel://127.0.0.1:" + std::to_string(d.sentinel.port()) + "/nosuch/0", "t",
               [](shmc_l2_options& l) { l.flags |= SHMC_L2_NO_SUBSCRIBE; });
    int rc = 0;
    const auto t0 = Clock::now();
    wrong.get("k", SHMC_TIER_BOTH, &rc);
    CHECK(ms_since(t0) < 1000);
    CHECK(rc == SHMC_E_L2_UNAVAILABLE);
    CHECK_MESSAGE(std::string(shmc_errmsg()).find("nosuch") != std::string::npos, shmc_errmsg());
}

TEST_CASE("sentinel: SENTINEL FAILOVER under load") {
    Deployment d;
    Host a("sent-fa", d.url);
    Host b("sent-fb", d.url);
    REQUIRE(a.set("x", "before") == 0);
    REQUIRE(b.get_filled("x", "before"));
    const uint64_t resyncs_b = b.stats().resyncs;

    Load load(a, b);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const auto t0 = Clock::now();
    REQUIRE(d.sentinel.command_argv({"SENTINEL", "FAILOVER", "mymaster"}) == "+OK\r\n");
    REQUIRE(eventually([&] { return d.reported_master() == d.replica.port(); }, 15000));
    // Writes reach the new master.
    REQUIRE(eventually(
        [&] {
            return a.set("after", "new-master") == 0 &&
                   d.replica.command("GET", "t:after") == "$10\r\nnew-master\r\n";
        },
        10000));
    const double recovered_ms = ms_since(t0);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    load.finish();
    MESSAGE("SENTINEL FAILOVER: writes on the new master after " << recovered_ms << " ms; "
            << load.calls.load() << " set+get pairs, " << load.unavailable.load()
            << " L2-unavailable results, slowest pair " << load.slowest.load() << " ms");
    CHECK_MESSAGE(load.bad.load() == 0, load.bad_what);
    CHECK(load.calls.load() > 10);
    CHECK(load.slowest.load() < 1500);  // two calls, each bounded by the 100 ms timeout (+ busy machine)

    // The switch was a coherence event on both hosts: copies made before it are gone, and
    // invalidations flow on the new master.
    CHECK(eventually([&] { return b.stats().resyncs > resyncs_b; }, 5000));
    CHECK(eventually([&] { return a.set("x", "after-failover") == 0; }, 5000));
    CHECK(eventually([&] { return b.get("x") == "after-failover"; }, 5000));
    REQUIRE(b.get_filled("x", "after-failover"));
    CHECK(d.replica.command("SET", "t:x", "external") == "+OK\r\n");
    CHECK(eventually([&] { return b.get("x") == "external"; }, 3000));
}

TEST_CASE("sentinel: the master SIGKILLed under load") {
    Deployment d;
    Host a("sent-ka", d.url);
    Host b("sent-kb", d.url);
    REQUIRE(a.set("x", "before") == 0);
    REQUIRE(b.get_filled("x", "before"));
    const uint64_t resyncs_b = b.stats().resyncs;

    Load load(a, b);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const auto t0 = Clock::now();
    d.master.kill();
    // The old master's copies stop being served at once (the link is lost), not at the switch.
    CHECK(eventually([&] {
        int rc = 0;
        b.get("x", SHMC_TIER_L1, &rc);
        return rc == SHMC_E_NOTFOUND;
    }, 2000));
    REQUIRE(eventually([&] { return d.reported_master() == d.replica.port(); }, 20000));
    REQUIRE(eventually(
        [&] {
            return a.set("after", "new-master") == 0 &&
                   d.replica.command("GET", "t:after") == "$10\r\nnew-master\r\n";
        },
        10000));
    const double recovered_ms = ms_since(t0);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    load.finish();
    MESSAGE("master SIGKILLed: writes on the new master after " << recovered_ms << " ms "
            "(down-after-milliseconds 500); " << load.calls.load() << " set+get pairs, "
            << load.unavailable.load() << " L2-unavailable results, slowest pair "
            << load.slowest.load() << " ms");
    CHECK_MESSAGE(load.bad.load() == 0, load.bad_what);
    CHECK(load.slowest.load() < 1500);
    CHECK(eventually([&] { return b.stats().resyncs > resyncs_b; }, 5000));
    CHECK(eventually([&] { return a.set("x", "after-failover") == 0; }, 5000));
    CHECK(eventually([&] { return b.get("x") == "after-failover"; }, 5000));
}
