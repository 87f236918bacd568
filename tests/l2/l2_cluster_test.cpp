// l2_cluster_test.cpp - the Redis tier on a real 3-master Redis Cluster (redis_cluster.cpp):
// routing by slot, invalidation between hosts, purge over every master, a slot migrated under
// load (ASK, then MOVED), a master killed, single flight with the lock on another node than the
// value. Each "host" is a segment of its own (l2_host.h).
#include <doctest/doctest.h>
#include <shmcache/shmcache.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "l2_host.h"
#include "redis_cluster.h"
#include "redis_server.h"

using l2test::Clock;
using l2test::eventually;
using l2test::Host;
using l2test::ms_since;
using l2test::RedisCluster;
using l2test::RedisServer;

namespace {

// A key of this test's namespace ("t:" + k) whose slot is on node `node`.
std::string key_on(const RedisCluster& rc, size_t node, const std::string& stem, int* n) {
    for (;; ++*n) {
        const std::string k = stem + std::to_string(*n);
        if (rc.owner_of("t:" + k) == int(node)) {
            ++*n;
            return k;
        }
    }
}

// "errorstat_MOVED:count=N" of INFO errorstats: how many MOVED (or ASK) node i answered.
long long errorstat(const RedisCluster& rc, size_t i, const std::string& what) {
    const std::string info = rc.cli(i, {"INFO", "errorstats"});
    const std::string tag = "errorstat_" + what + ":count=";
    const size_t at = info.find(tag);
    return at == std::string::npos ? 0 : atoll(info.c_str() + at + tag.size());
}

// A loaded 2-core test machine stalls now and then: the migration case is about errors that
// redirections could cause, not about timeouts.
void patient(shmc_l2_options& o) { o.command_timeout_ms = 1000; }

shmc_fetch_options fetch_both() {
    shmc_fetch_options o;
    shmc_fetch_options_default(&o);
    o.tiers = SHMC_TIER_BOTH;
    o.flags = SHMC_FETCH_L2_LOCK;
    o.lease_ms = 5000;
    return o;
}

// `threads` callers on each host fetch key at once; whoever is told to compute takes
// compute_ms and completes. Returns the number of computations (l2_flight_test.cpp's herd).
int herd(std::vector<Host*> hosts, const std::string& key, int threads, int compute_ms,
         std::atomic<int>* wrong) {
    const shmc_fetch_options o = fetch_both();
    std::atomic<int> computations{0}, ready{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> ts;
    const std::string value = "computed:" + key;
    for (Host* h : hosts)
        for (int i = 0; i < threads; ++i)
            ts.emplace_back([&, h] {
                ++ready;
                while (!go.load()) std::this_thread::yield();
                char buf[256];
                shmc_fetch_result r{};
                if (shmc_fetch(h->c, key.data(), key.size(), buf, sizeof buf, &o, &r) != 0) {
                    ++*wrong;
                } else if (r.outcome == SHMC_FETCH_COMPUTE ||
                           r.outcome == SHMC_FETCH_COMPUTE_UNLEASED) {
                    ++computations;
                    std::this_thread::sleep_for(std::chrono::milliseconds(compute_ms));
                    if (shmc_fetch_complete(h->c, key.data(), key.size(), value.data(),
                                            value.size(), 0, 10, &o, r.lease) != 0)
                        ++*wrong;
                } else if (r.outcome != SHMC_FETCH_HIT || std::string(buf, r.value_len) != value) {
                    ++*wrong;
                }
            });
    while (ready.load() < int(ts.size())) std::this_thread::yield();
    go = true;
    for (auto& t : ts) t.join();
    return computations.load();
}

double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, size_t(p * double(v.size())))];
}

// p50 and p99 (ms) of shmc_tget served by L2 (L2 only: every call a round trip).
std::pair<double, double> l2_hit_latency(Host& h, int n) {
    for (int i = 0; i < 64; ++i)
        REQUIRE(h.set("lat" + std::to_string(i), "value", SHMC_TIER_L2) == 0);
    std::vector<double> ms;
    ms.reserve(size_t(n));
    char buf[64];
    for (int i = 0; i < n; ++i) {
        const std::string k = "lat" + std::to_string(i % 64);
        size_t len = 0;
        const auto t0 = Clock::now();
        const int r = shmc_tget(h.c, k.data(), k.size(), buf, sizeof buf, &len, nullptr, nullptr,
                                SHMC_TIER_L2, 0, nullptr);
        ms.push_back(ms_since(t0));
        REQUIRE(r == 0);
    }
    return {percentile(ms, 0.5), percentile(ms, 0.99)};
}

}  // namespace

TEST_CASE("cluster: set, get and delete reach the master of each key's slot") {
    RedisCluster rc;
    Host a("cl-crud", rc.url());
    std::set<int> nodes;
    for (int i = 0; i < 30; ++i) {
        const std::string k = "k" + std::to_string(i), v = "v" + std::to_string(i);
        REQUIRE(a.set(k, v) == 0);
        const int owner = rc.owner_of("t:" + k);
        REQUIRE(owner >= 0);
        nodes.insert(owner);
        // On its master, as redis-cli sees it there (no redirection).
        CHECK(rc.cli(size_t(owner), {"GET", "t:" + k}) == v + "\n");
        int r = -1;
        uint32_t served = 0;
        CHECK(a.get(k, SHMC_TIER_L2, &r, &served) == v);
        CHECK(served == SHMC_TIER_L2);
    }
    CHECK(nodes.size() == 3);  // 30 keys over 3 masters: each got some
    for (int i = 0; i < 30; ++i) {
        const std::string k = "k" + std::to_string(i);
        REQUIRE(shmc_tdel(a.c, k.data(), k.size(), SHMC_TIER_BOTH) == 0);
        CHECK(rc.integer(size_t(rc.owner_of("t:" + k)), {"EXISTS", "t:" + k}) == 0);
        int r = 0;
        a.get(k, SHMC_TIER_BOTH, &r);
        CHECK(r == SHMC_E_NOTFOUND);
    }
    CHECK(shmc_l2_ping(a.c) == 0);
    const shmc_l2_stats s = a.stats();
    CHECK(s.connected == 1);
    CHECK(s.errors == 0);
    CHECK(s.invalidation_mode == SHMC_INVAL_PUBLISH);  // a cluster runs in publish mode
}

TEST_CASE("cluster: a write through one host invalidates another host's L1 copy") {
    RedisCluster rc;
    Host a("cl-inv-a", rc.url()), b("cl-inv-b", rc.url());
    int n = 0;
    for (size_t node = 0; node < rc.size(); ++node) {
        const std::string k = key_on(rc, node, "inv", &n);
        REQUIRE(a.set(k, "one") == 0);
        REQUIRE(b.get_filled(k, "one"));
        const auto t0 = Clock::now();
        REQUIRE(a.set(k, "two") == 0);
        // Bound: the subscriber's link (lease 1 s by default); on loopback it takes a few ms.
        CHECK(eventually([&] { return !b.in_l1(k) || b.get(k, SHMC_TIER_L1) == "two"; }, 1000));
        MESSAGE("node " << node << ": host B's copy dropped after " << ms_since(t0) << " ms");
        CHECK(b.get(k) == "two");
        REQUIRE(shmc_tdel(a.c, k.data(), k.size(), SHMC_TIER_BOTH) == 0);
        CHECK(eventually([&] { return !b.in_l1(k); }, 1000));
    }
    CHECK(b.stats().invalidations_applied >= 6);
}

TEST_CASE("cluster: a pattern purge removes every match on every master") {
    RedisCluster rc;
    Host a("cl-purge", rc.url());
    const int n = 300;
    for (int i = 0; i < n; ++i) {
        REQUIRE(a.set("p:" + std::to_string(i), "x") == 0);
        REQUIRE(a.set("q:" + std::to_string(i), "y", SHMC_TIER_L2) == 0);
    }
    for (size_t i = 0; i < rc.size(); ++i) CHECK(rc.integer(i, {"DBSIZE"}) > 2 * n / 6);
    uint64_t l1 = 0, l2 = 0;
    REQUIRE(shmc_tpurge(a.c, "p:*", 3, SHMC_TIER_BOTH, &l1, &l2) == 0);
    CHECK(l2 == uint64_t(n));  // the sum over the masters
    CHECK(l1 == uint64_t(n));
    long long left = 0;
    for (size_t i = 0; i < rc.size(); ++i) {
        CHECK(rc.cli(i, {"--scan", "--pattern", "t:p:*"}) == "");
        left += rc.integer(i, {"DBSIZE"});
    }
    CHECK(left == n);  // the q: keys stay
    int r = 0;
    a.get("p:7", SHMC_TIER_BOTH, &r);
    CHECK(r == SHMC_E_NOTFOUND);
    CHECK(a.get("q:7") == "y");
}

TEST_CASE("cluster: a slot migrated under load: no error reaches the caller, ASK then MOVED") {
    RedisCluster rc;
    Host a("cl-mig-a", rc.url(), "t", patient), b("cl-mig-b", rc.url(), "t", patient);
    // Every "{mig}i" hashes on "mig": one slot, whose keys the load works on.
    const int slot = rc.keyslot("t:{mig}0");
    REQUIRE(slot == rc.keyslot("t:{mig}49"));
    const int from = rc.owner(slot);
    REQUIRE(from >= 0);
    const size_t to = size_t(from + 1) % rc.size();
    const int nkeys = 50;
    auto key = [](int i) { return "{mig}" + std::to_string(i); };
    for (int i = 0; i < nkeys; ++i) REQUIRE(a.set(key(i), key(i) + ":0") == 0);
    const long long moved0 = errorstat(rc, size_t(from), "MOVED");
    const long long ask0 = errorstat(rc, size_t(from), "ASK");

    std::atomic<bool> stop{false};
    std::atomic<int> errors{0}, wrong{0}, ops{0};
    std::string first_error;
    std::mutex em;
    auto error = [&](int r) {
        std::lock_guard lk(em);
        if (++errors == 1) first_error = std::to_string(r) + ": " + shmc_errmsg();
    };
    std::vector<std::string> last(nkeys);
    for (int i = 0; i < nkeys; ++i) last[size_t(i)] = key(i) + ":0";
    // Host A writes and reads back through Redis: it must read exactly what it wrote.
    std::thread writer([&] {
        for (int seq = 1; !stop.load(); ++seq) {
            const int i = seq % nkeys;
            const std::string v = key(i) + ":" + std::to_string(seq);
            if (int r = a.set(key(i), v)) {
                error(r);
                continue;
            }
            last[size_t(i)] = v;
            int r = 0;
            const std::string got = a.get(key(i), SHMC_TIER_L2, &r);
            if (r)
                error(r);
            else if (got != v)
                ++wrong;
            ++ops;
        }
    });
    // Host B reads through both tiers: a value of the key asked for, or a miss.
    std::thread reader([&] {
        for (int n = 0; !stop.load(); ++n) {
            const int i = (n * 7) % nkeys;
            int r = 0;
            const std::string got = b.get(key(i), SHMC_TIER_BOTH, &r);
            if (r == 0 && got.rfind(key(i) + ":", 0) != 0)
                ++wrong;
            else if (r && r != SHMC_E_NOTFOUND)
                error(r);
            ++ops;
        }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const auto t0 = Clock::now();
    // An exception must not leave the threads joinable (std::terminate: an abort that leaves the
    // cluster's servers running, and the test runner waiting for them until its timeout).
    std::string migrate_error;
    try {
        rc.migrate_slot(slot, size_t(from), to, 3);
    } catch (const std::exception& e) {
        migrate_error = e.what();
    }
    const double migrate_ms = ms_since(t0);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    stop = true;
    writer.join();
    reader.join();
    REQUIRE_MESSAGE(migrate_error.empty(), migrate_error);
    CHECK(rc.owner(slot) == int(to));
    CHECK(errors == 0);
    if (errors) MESSAGE("first error: " << first_error);
    CHECK(wrong == 0);
    CHECK(ops > 100);
    const long long moved = errorstat(rc, size_t(from), "MOVED") - moved0;
    const long long ask = errorstat(rc, size_t(from), "ASK") - ask0;
    CHECK(moved >= 1);  // after SETSLOT NODE: the source sends clients to the new owner
    CHECK(ask >= 1);    // during: keys already moved are asked for on the target
    MESSAGE("slot " << slot << " moved in " << migrate_ms << " ms under " << ops.load()
                    << " calls; the source answered " << moved << " MOVED and " << ask << " ASK");
    // Everything ended where the map says, with the last values.
    for (int i = 0; i < nkeys; ++i) {
        CHECK(rc.cli(to, {"GET", "t:" + key(i)}) == last[size_t(i)] + "\n");
        CHECK(a.get(key(i), SHMC_TIER_L2) == last[size_t(i)]);
    }
    CHECK(rc.integer(size_t(from), {"CLUSTER", "COUNTKEYSINSLOT", std::to_string(slot)}) == 0);
}

TEST_CASE(
    "cluster: a hung or killed master fails its slots within the timeout, then its breaker "
    "answers; the other slots keep working") {
    RedisCluster rc;
    Host a("cl-kill", rc.url(), "t", [](shmc_l2_options& o) {
        o.command_timeout_ms = 100;
        o.breaker_threshold = 3;
        o.breaker_cooldown_ms = 1000;
    });
    int n = 0;
    const std::string k0 = key_on(rc, 0, "kk", &n), k1 = key_on(rc, 1, "kk", &n),
                      k2 = key_on(rc, 2, "kk", &n);
    for (const std::string& k : {k0, k1, k2}) REQUIRE(a.set(k, "v" + k, SHMC_TIER_L2) == 0);
    auto l2_get = [&](const std::string& k, int* r) { return a.get(k, SHMC_TIER_L2, r); };

    // A hung master (SIGSTOP): each call for its slots costs the command timeout, no more, until
    // its breaker opens; calls for the other masters' slots keep succeeding meanwhile (a map
    // refresh that asks the hung node first takes a quarter of their budget at most).
    rc.stop(1);
    int timed_out = 0;
    for (int i = 0; i < 6 && !a.stats().breaker_open; ++i) {
        int r = 0;
        auto t0 = Clock::now();
        l2_get(k1, &r);
        const double ms = ms_since(t0);
        CHECK(r == SHMC_E_L2_UNAVAILABLE);
        CHECK(ms < 100 + 150);  // the command timeout plus slack for a busy machine
        timed_out += ms >= 90;
        t0 = Clock::now();
        CHECK(l2_get(k0, &r) == "v" + k0);
        CHECK(r == 0);
        CHECK(ms_since(t0) < 100 + 150);
    }
    CHECK(timed_out >= 1);
    {
        int r = 0;
        const auto t0 = Clock::now();
        l2_get(k1, &r);
        CHECK(r == SHMC_E_L2_UNAVAILABLE);
        CHECK(ms_since(t0) < 20);  // the breaker answers
        CHECK(a.stats().breaker_open == 1);
        CHECK(l2_get(k0, &r) == "v" + k0);  // another master's slots are served meanwhile
        CHECK(r == 0);
    }
    rc.cont(1);
    CHECK(eventually(
        [&] {
            int r = 0;
            return l2_get(k1, &r) == "v" + k1;
        },
        3000));  // after the cooldown, the trial call closes the breaker

    // A killed master (SIGKILL): refused at once, then its breaker.
    rc.kill(2);
    for (int i = 0; i < 3; ++i) {
        int r = 0;
        const auto t0 = Clock::now();
        CHECK(a.set(k2, "x", SHMC_TIER_L2) == SHMC_E_L2_UNAVAILABLE);
        CHECK(ms_since(t0) < 100 + 150);
        l2_get(k2, &r);
        CHECK(r == SHMC_E_L2_UNAVAILABLE);
    }
    int r = 0;
    const auto t0 = Clock::now();
    l2_get(k2, &r);
    CHECK(r == SHMC_E_L2_UNAVAILABLE);
    CHECK(ms_since(t0) < 20);
    for (int i = 0; i < 50; ++i) {
        const std::string v = "w" + std::to_string(i);
        CHECK(a.set(k0, v) == 0);
        CHECK(a.set(k1, v) == 0);
        CHECK(l2_get(k0, &r) == v);
        CHECK(l2_get(k1, &r) == v);
    }
    const shmc_l2_stats s = a.stats();
    CHECK(s.breaker_opens >= 2);
    CHECK(s.timeouts >= 3);
}

TEST_CASE("cluster: single flight across hosts with the lock on another master than the value") {
    RedisCluster rc;
    Host a("cl-fl-a", rc.url()), b("cl-fl-b", rc.url());
    std::atomic<int> wrong{0};
    int rounds = 0;
    for (int i = 0; rounds < 5; ++i) {
        const std::string k = "cold" + std::to_string(i);
        const std::string lock = "t:__shmcache_lease__:" + k;
        if (rc.owner_of("t:" + k) == rc.owner_of(lock)) continue;
        ++rounds;
        CHECK(herd({&a, &b}, k, 4, 50, &wrong) == 1);
        CHECK(rc.integer(size_t(rc.owner_of(lock)), {"EXISTS", lock}) == 0);  // released
        CHECK(rc.cli(size_t(rc.owner_of("t:" + k)), {"GET", "t:" + k}) == "computed:" + k + "\n");
        // Both hosts serve the value. (Whether each still has it in L1 depends on timing: the
        // computing host's invalidation may reach the other one over the cluster bus after that
        // host copied the value, and drop the copy: a later read goes to Redis, no harm.)
        CHECK(a.get(k) == "computed:" + k);
        CHECK(b.get(k) == "computed:" + k);
    }
    CHECK(wrong == 0);
}

TEST_CASE("cluster: figure: an L2 hit through the cluster and through one server") {
    RedisServer single;
    RedisCluster rc;
    Host s("cl-fig-s", single.url()), c("cl-fig-c", rc.url());
    const int n = 4000;
    const auto one = l2_hit_latency(s, n);
    const auto many = l2_hit_latency(c, n);
    MESSAGE("shmc_tget served by L2, " << n << " calls: one server p50 " << one.first << " ms, p99 "
                                       << one.second << " ms; 3-master cluster p50 " << many.first
                                       << " ms, p99 " << many.second << " ms");
    CHECK(many.first < one.first * 3 + 0.5);  // routing adds a CRC16 and a map lookup, no hop
}

TEST_CASE("cluster over TLS (rediss+cluster://): routing, invalidation and purge") {
    RedisCluster rc(3, true);
    REQUIRE(rc.url().rfind("rediss+cluster://", 0) == 0);
    Host a("cl-tls-a", rc.url()), b("cl-tls-b", rc.url());
    std::set<int> nodes;
    for (int i = 0; i < 30; ++i) {
        const std::string k = "s" + std::to_string(i);
        REQUIRE(a.set(k, "v" + k) == 0);
        nodes.insert(rc.owner_of("t:" + k));
        CHECK(rc.cli(size_t(rc.owner_of("t:" + k)), {"GET", "t:" + k}) == "v" + k + "\n");
        CHECK(b.get(k) == "v" + k);
    }
    CHECK(nodes.size() == 3);
    REQUIRE(b.get_filled("s1", "vs1"));
    REQUIRE(a.set("s1", "new") == 0);
    CHECK(eventually([&] { return !b.in_l1("s1") || b.get("s1", SHMC_TIER_L1) == "new"; }, 1000));
    uint64_t l1 = 0, l2 = 0;
    REQUIRE(shmc_tpurge(a.c, "s*", 2, SHMC_TIER_BOTH, &l1, &l2) == 0);
    CHECK(l2 == 30);
    for (size_t i = 0; i < rc.size(); ++i) CHECK(rc.integer(i, {"DBSIZE"}) == 0);
    CHECK(a.stats().errors == 0);
}

TEST_CASE("cluster with replicas: a master killed, its replica promoted, calls follow it") {
    RedisCluster rc(3, false, 1);
    Host a("cl-fo", rc.url(), "t", [](shmc_l2_options& o) {
        o.command_timeout_ms = 100;
        o.breaker_cooldown_ms = 200;
    });
    const std::string k = "fo";
    const int m = rc.owner_of("t:" + k);
    REQUIRE(m >= 0);
    int n = 0;
    const std::string other = key_on(rc, size_t((m + 1) % 3), "fo-other", &n);
    REQUIRE(a.set(k, "before") == 0);
    REQUIRE(a.set(other, "x") == 0);
    // The replica has both writes (replication is asynchronous; WAIT from redis-cli would only
    // wait for that connection's own writes, none).
    auto caught_up = [&] {
        const std::string info = rc.cli(size_t(m), {"INFO", "replication"});
        auto num = [&](const std::string& tag) {
            const size_t at = info.find(tag);
            return at == std::string::npos ? -1LL : atoll(info.c_str() + at + tag.size());
        };
        return num("master_repl_offset:") > 0 && num(",offset=") == num("master_repl_offset:");
    };
    REQUIRE(eventually(caught_up, 5000));
    rc.kill(size_t(m));
    const auto t0 = Clock::now();
    int failed = 0, other_failed = 0;
    bool back = false;
    while (ms_since(t0) < 20000 && !back) {
        int r = 0;
        back = a.get(k, SHMC_TIER_L2, &r) == "before";
        if (r && r != SHMC_E_L2_UNAVAILABLE) FAIL("unexpected rc " << r);  // down or served
        failed += !back;
        if (a.get(other, SHMC_TIER_L2, &r) != "x") ++other_failed;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const double took = ms_since(t0);
    REQUIRE(back);
    const int now_owner = rc.owner_of("t:" + k);
    CHECK(now_owner != m);
    CHECK(now_owner >= 0);
    CHECK(other_failed == 0);  // the other masters' slots were served throughout
    CHECK(a.set(k, "after") == 0);
    CHECK(rc.cli(size_t(now_owner), {"GET", "t:" + k}) == "after\n");
    CHECK(a.get(k) == "after");
    MESSAGE("master killed: its slot served again by the promoted replica after "
            << took << " ms (cluster-node-timeout 1500 ms); " << failed
            << " calls failed meanwhile");
}

TEST_CASE("cluster: the subscriber's master hangs: the host subscribes again on another master") {
    RedisCluster rc;
    Host a("cl-sub-a", rc.url()), b("cl-sub-b", rc.url());
    // Which master holds host A's subscription (its pub/sub connection: sub=1 in CLIENT LIST)?
    auto holder = [&](int skip) {
        for (size_t i = 0; i < rc.size(); ++i) {
            if (int(i) == skip) continue;  // a stopped node would not answer redis-cli
            const std::string list = rc.cli(i, {"CLIENT", "LIST"});
            // Both hosts subscribe; count A's by its connections' number below.
            size_t subs = 0;
            for (size_t at = list.find(" sub=1 "); at != std::string::npos;
                 at = list.find(" sub=1 ", at + 1))
                ++subs;
            if (subs) return int(i);
        }
        return -1;
    };
    // Stop a master that holds a subscription; every host on it must move.
    const int s = holder(-1);
    REQUIRE(s >= 0);
    rc.stop(size_t(s));
    const auto t0 = Clock::now();
    // Both hosts end up subscribed on the two other masters: 2 subscriptions there.
    auto subs_elsewhere = [&] {
        int n = 0;
        for (size_t i = 0; i < rc.size(); ++i) {
            if (int(i) == s) continue;
            const std::string list = rc.cli(i, {"CLIENT", "LIST"});
            for (size_t at = list.find(" sub=1 "); at != std::string::npos;
                 at = list.find(" sub=1 ", at + 1))
                ++n;
        }
        return n;
    };
    CHECK(eventually([&] { return subs_elsewhere() == 2; }, 10000));
    MESSAGE("subscriptions moved off the hung master after " << ms_since(t0) << " ms");
    CHECK(a.wait_subscribed());
    CHECK(b.wait_subscribed());
    // Invalidation works again, for a key on a live master.
    int n = 0;
    const std::string k = key_on(rc, size_t(s + 1) % rc.size(), "sub", &n);
    const int set_rc = a.set(k, "one");
    const std::string why = shmc_errmsg();
    INFO("set: " << why);
    REQUIRE(set_rc == 0);
    REQUIRE(b.get_filled(k, "one"));
    REQUIRE(a.set(k, "two") == 0);
    CHECK(eventually([&] { return !b.in_l1(k) || b.get(k, SHMC_TIER_L1) == "two"; }, 1000));
    rc.cont(size_t(s));
}

TEST_CASE("cluster: a handle attached before fork() works in the child (TLS too)") {
    for (const bool tls : {false, true}) {
        RedisCluster rc(3, tls);
        Host a("cl-fork", rc.url());
        REQUIRE(a.set("before", "parent") == 0);  // the parent's pools and map are in use
        const pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            int ok = 1;
            for (int i = 0; i < 20 && ok; ++i) {
                const std::string k = "child" + std::to_string(i);
                int r = 0;
                ok = a.set(k, "c") == 0 && a.get(k, SHMC_TIER_L2, &r) == "c" &&
                     a.get("before", SHMC_TIER_L2, &r) == "parent";
            }
            _exit(ok ? 0 : 1);
        }
        int status = 0;
        REQUIRE(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);
        CHECK(a.get("child7", SHMC_TIER_L2) == "c");
    }
}
