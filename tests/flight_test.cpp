// flight_test.cpp - single flight across real processes (docs/stampede.md): the guarantees of
// issue 6, measured on the shared library as workers use it.
//
// Cases (first argument; none runs all):
//   herd          16 callers (4 processes x 4 threads) fetch one cold key at the same instant:
//                 exactly one computes, every other one gets its value. rounds=N (default 50).
//   owner-killed  the lease owner is SIGKILLed mid-computation while 6 callers in 3 processes
//                 wait: one of them takes the lease over within a few ms of the death (asserted
//                 < 1 s; lease_ms is 5 s, so the deadline plays no part), computes once, and the
//                 others get its value. rounds=N (default 10).
//   owner-hung    the owner is SIGSTOPped (alive, stuck): a waiter takes over at lease_ms
//                 (asserted within [lease_ms, lease_ms + 250 ms]).
//   swr           a stale value and 16 callers (4 x 4) fetching it for 600 ms while one of them
//                 refreshes it for 300 ms: exactly one refresh, and no fetch waits for it (each
//                 returns in under 50 ms).
// Timings are printed in the summary line.
#include "support.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

using namespace tsupport;

namespace {

constexpr int kProcs = 4;
constexpr int kThreads = 4;

struct Args {
    int rounds = 0;  // 0: the case's default
};

shmc_fetch_options fetch_options(uint32_t lease_ms, uint64_t ttl_ms = 0, uint64_t stale_ms = 0) {
    shmc_fetch_options o;
    shmc_fetch_options_default(&o);
    o.lease_ms = lease_ms;
    o.ttl_ms = ttl_ms;
    o.stale_ttl_ms = stale_ms;
    return o;
}

shmc_flight_stats flight(shmc_cache *c) {
    shmc_flight_stats s{};
    T_EXPECT_RC(shmc_flight_get_stats(c, &s), 0);
    return s;
}

void check_clean(shmc_cache *c) {
    shmc_check_report rep{};
    T_EXPECT_RC(shmc_check(c, &rep), 0);
    T_EXPECT(rep.stripes_damaged == 0);
}

// What the callers of one round report, in shared memory.
struct Round {
    std::atomic<int> computations{0};
    std::atomic<int> served{0};  // got the computed value without computing
    std::atomic<int> wrong{0};   // an error, or a value other than the one computed
    std::atomic<uint64_t> max_wait_ns{0};
    std::atomic<uint64_t> grant_ns{0};  // owner-killed/hung: when a waiter got the lease
    std::atomic<int> owner_ready{0};
};

void note_max(std::atomic<uint64_t> &m, uint64_t v) {
    uint64_t cur = m.load();
    while (v > cur && !m.compare_exchange_weak(cur, v)) {
    }
}

// One caller: fetch; compute (sleep compute_ms) if told to; check the value otherwise.
void caller(shmc_cache *c, const std::string &key, const shmc_fetch_options &o, int compute_ms,
            Round *r) {
    char buf[64];
    shmc_fetch_result res{};
    const uint64_t t0 = now_ns();
    const int rc = shmc_fetch(c, key.data(), key.size(), buf, sizeof buf, &o, &res);
    const uint64_t t1 = now_ns();
    note_max(r->max_wait_ns, t1 - t0);
    if (rc != 0) {
        std::fprintf(stderr, "fetch %s: %d %s\n", key.c_str(), rc, shmc_errmsg());
        ++r->wrong;
        return;
    }
    if (res.outcome == SHMC_FETCH_COMPUTE || res.outcome == SHMC_FETCH_COMPUTE_UNLEASED) {
        if (res.outcome == SHMC_FETCH_COMPUTE) r->grant_ns.store(t1);
        ++r->computations;
        sleep_ms(compute_ms);
        const std::string v = "value-of-" + key;
        T_EXPECT_RC(shmc_fetch_complete(c, key.data(), key.size(), v.data(), v.size(), 0,
                                        uint32_t(compute_ms), &o, res.lease),
                    0);
        return;
    }
    const std::string got(buf, res.value_len);
    if (res.outcome != SHMC_FETCH_HIT || got != "value-of-" + key) {
        std::fprintf(stderr, "fetch %s: outcome %u value '%s'\n", key.c_str(), res.outcome,
                     got.c_str());
        ++r->wrong;
        return;
    }
    ++r->served;
}

// procs processes of threads callers each, released at once by a start gun.
std::vector<pid_t> spawn_callers(const std::string &name, const std::string &key,
                                 const shmc_fetch_options &o, int procs, int threads,
                                 int compute_ms, Round *r, StartGun *gun) {
    std::vector<pid_t> kids;
    for (int p = 0; p < procs; ++p)
        kids.push_back(spawn([&] {
            shmc_options so;
            shmc_options_default(&so);
            shmc_cache *c = open_or_die(name.c_str(), so);
            if (gun) gun->wait_in_child();
            std::vector<std::thread> ts;
            for (int t = 0; t < threads; ++t)
                ts.emplace_back([&] { caller(c, key, o, compute_ms, r); });
            for (auto &t : ts) t.join();
            shmc_close(c);
            return g_failures ? 1 : 0;
        }));
    return kids;
}

int wait_all(const std::vector<pid_t> &kids, int timeout_ms) {
    int bad = 0;
    for (pid_t k : kids) {
        const int st = wait_child(k, timeout_ms);
        if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            std::fprintf(stderr, "caller process: %s\n", describe_status(st).c_str());
            ++bad;
        }
    }
    return bad;
}

int run_herd(const Args &a, uint64_t seed) {
    const int rounds = a.rounds ? a.rounds : 50;
    const std::string name = unique_name("flight-herd");
    SegmentGuard guard(name);
    shmc_cache *c = open_or_die(name.c_str(), small_options(8u << 20, 16));
    const shmc_fetch_options o = fetch_options(5000);
    int exactly_one = 0, bad_rounds = 0;
    uint64_t worst_wait = 0;
    for (int i = 0; i < rounds; ++i) {
        const std::string key = "cold:" + std::to_string(i);
        Round *r = shared_new<Round>();
        StartGun gun;
        auto kids = spawn_callers(name, key, o, kProcs, kThreads, 20, r, &gun);
        sleep_ms(20);  // every child opened and is blocked on the gun
        gun.release();
        bad_rounds += wait_all(kids, 20000);
        if (r->computations.load() == 1) ++exactly_one;
        T_EXPECT(r->computations.load() == 1);
        T_EXPECT(r->served.load() == kProcs * kThreads - 1);
        T_EXPECT(r->wrong.load() == 0);
        worst_wait = std::max(worst_wait, r->max_wait_ns.load());
    }
    T_EXPECT(bad_rounds == 0);
    const shmc_flight_stats s = flight(c);
    T_EXPECT(s.leases_granted == uint64_t(rounds));
    T_EXPECT(s.lease_timeouts == 0);
    T_EXPECT(s.unleased == 0);
    T_EXPECT(s.leases_held == 0);
    check_clean(c);
    char b[300];
    std::snprintf(b, sizeof b,
                  "rounds=%d callers=%dx%d one_computation=%d/%d waits=%" PRIu64
                  " stampedes_avoided=%" PRIu64 " worst_fetch=%.1fms (compute 20ms)",
                  rounds, kProcs, kThreads, exactly_one, rounds, s.waits, s.stampedes_avoided,
                  ns_to_ms(worst_wait));
    shmc_close(c);
    return finish("flight/herd", seed, b);
}

// The owner: takes the lease, says so, and computes forever (until killed or stopped).
pid_t spawn_owner(const std::string &name, const std::string &key, const shmc_fetch_options &o,
                  Round *r) {
    return spawn([&] {
        shmc_options so;
        shmc_options_default(&so);
        shmc_cache *c = open_or_die(name.c_str(), so);
        char buf[64];
        shmc_fetch_result res{};
        if (shmc_fetch(c, key.data(), key.size(), buf, sizeof buf, &o, &res) != 0 ||
            res.outcome != SHMC_FETCH_COMPUTE)
            return 3;
        r->owner_ready.store(1);
        for (;;) pause();
    });
}

bool wait_flag(std::atomic<int> &f, int timeout_ms) {
    const uint64_t end = now_ns() + uint64_t(timeout_ms) * 1000000u;
    while (!f.load()) {
        if (now_ns() > end) return false;
        sleep_ms(0.2);
    }
    return true;
}

// Owner killed (SIGKILL) or hung (SIGSTOP) while 3 processes x 2 threads wait.
int run_owner_fails(const Args &a, uint64_t seed, bool hung) {
    const int rounds = a.rounds ? a.rounds : (hung ? 2 : 10);
    const uint32_t lease_ms = hung ? 400 : 5000;
    const std::string name = unique_name(hung ? "flight-hung" : "flight-killed");
    SegmentGuard guard(name);
    shmc_cache *c = open_or_die(name.c_str(), small_options(8u << 20, 16));
    const shmc_fetch_options o = fetch_options(lease_ms);
    std::vector<double> takeover_ms;
    int bad = 0;
    for (int i = 0; i < rounds; ++i) {
        const std::string key = "owned:" + std::to_string(i);
        Round *r = shared_new<Round>();
        const pid_t owner = spawn_owner(name, key, o, r);
        if (!wait_flag(r->owner_ready, 5000)) {
            std::fprintf(stderr, "round %d: the owner never got the lease\n", i);
            ++bad;
            kill(owner, SIGKILL);
            wait_child(owner, 5000);
            continue;
        }
        const uint64_t granted_ns = now_ns();
        auto kids = spawn_callers(name, key, o, 3, 2, 20, r, nullptr);
        sleep_ms(60);  // the callers are waiting now
        uint64_t failed_ns;
        if (hung) {
            kill(owner, SIGSTOP);
            failed_ns = granted_ns;  // a hung owner is taken over at its deadline
        } else {
            failed_ns = now_ns();
            kill(owner, SIGKILL);
            wait_child(owner, 5000);  // reaped, as a worker's master does
        }
        bad += wait_all(kids, 20000);
        if (hung) {
            kill(owner, SIGKILL);
            kill(owner, SIGCONT);
            wait_child(owner, 5000);
        }
        const uint64_t g = r->grant_ns.load();
        const double ms = g > failed_ns ? ns_to_ms(g - failed_ns) : -1;
        takeover_ms.push_back(ms);
        T_EXPECT(r->computations.load() == 1);  // the dead owner's, then exactly one more
        T_EXPECT(r->served.load() == 5);
        T_EXPECT(r->wrong.load() == 0);
        if (hung) {
            T_EXPECT(ms >= lease_ms - 70);  // granted_ns is taken a little after the grant
            T_EXPECT(ms <= lease_ms + 250);
        } else {
            T_EXPECT(ms >= 0);
            T_EXPECT(ms < 1000);
        }
    }
    T_EXPECT(bad == 0);
    const shmc_flight_stats s = flight(c);
    T_EXPECT(s.takeovers == uint64_t(rounds));
    T_EXPECT(s.lease_timeouts == 0);
    T_EXPECT(s.leases_held == 0);
    check_clean(c);
    std::sort(takeover_ms.begin(), takeover_ms.end());
    char b[300];
    std::snprintf(b, sizeof b,
                  "rounds=%d lease_ms=%u takeover after %s: min=%.2fms median=%.2fms max=%.2fms "
                  "takeovers=%" PRIu64 " stampedes_avoided=%" PRIu64,
                  rounds, lease_ms, hung ? "grant" : "kill", takeover_ms.front(),
                  takeover_ms[takeover_ms.size() / 2], takeover_ms.back(), s.takeovers,
                  s.stampedes_avoided);
    shmc_close(c);
    return finish(hung ? "flight/owner-hung" : "flight/owner-killed", seed, b);
}

// Stale-while-revalidate under load.
struct SwrShared {
    std::atomic<int> refreshes{0};
    std::atomic<int> stale{0};
    std::atomic<int> hits{0};
    std::atomic<int> other{0};
    std::atomic<int> slow{0};
    std::atomic<uint64_t> max_ns{0};
};

int run_swr(const Args &, uint64_t seed) {
    const std::string name = unique_name("flight-swr");
    SegmentGuard guard(name);
    shmc_cache *c = open_or_die(name.c_str(), small_options(8u << 20, 16));
    const std::string key = "swr";
    const shmc_fetch_options first = fetch_options(5000, 100, 60000);
    // Refreshed values stay fresh for the rest of the test: one refresh is expected, not one
    // per TTL.
    const shmc_fetch_options later = fetch_options(5000, 60000, 60000);
    T_EXPECT_RC(shmc_fetch_complete(c, key.data(), key.size(), "v0", 2, 0, 300, &first, 0), 0);
    sleep_ms(150);  // stale now
    const int compute_ms = 300;
    const double run_ms = 600;
    SwrShared *sh = shared_new<SwrShared>();
    StartGun gun;
    std::vector<pid_t> kids;
    for (int p = 0; p < kProcs; ++p)
        kids.push_back(spawn([&] {
            shmc_options so;
            shmc_options_default(&so);
            shmc_cache *cc = open_or_die(name.c_str(), so);
            gun.wait_in_child();
            std::vector<std::thread> ts;
            for (int t = 0; t < kThreads; ++t)
                ts.emplace_back([&] {
                    const uint64_t end = now_ns() + uint64_t(run_ms * 1e6);
                    char buf[64];
                    while (now_ns() < end) {
                        shmc_fetch_result res{};
                        const uint64_t t0 = now_ns();
                        const int rc =
                            shmc_fetch(cc, key.data(), key.size(), buf, sizeof buf, &later, &res);
                        const uint64_t d = now_ns() - t0;
                        note_max(sh->max_ns, d);
                        if (d > 50000000u) ++sh->slow;
                        if (rc != 0) {
                            ++sh->other;
                        } else if (res.outcome == SHMC_FETCH_STALE_REFRESH) {
                            ++sh->refreshes;
                            sleep_ms(compute_ms);  // serve the stale value, then refresh
                            T_EXPECT_RC(
                                shmc_fetch_complete(cc, key.data(), key.size(), "v1", 2, 0,
                                                    uint32_t(compute_ms), &later, res.lease),
                                0);
                        } else if (res.outcome == SHMC_FETCH_STALE) {
                            ++sh->stale;
                        } else if (res.outcome == SHMC_FETCH_HIT) {
                            ++sh->hits;
                        } else {
                            ++sh->other;  // a stale value must never turn into a wait
                        }
                        sleep_ms(1);
                    }
                });
            for (auto &t : ts) t.join();
            shmc_close(cc);
            return g_failures ? 1 : 0;
        }));
    sleep_ms(20);
    gun.release();
    const int bad = wait_all(kids, 20000);
    T_EXPECT(bad == 0);
    T_EXPECT(sh->refreshes.load() == 1);
    T_EXPECT(sh->other.load() == 0);
    T_EXPECT(sh->slow.load() == 0);
    T_EXPECT(sh->stale.load() > 0);
    T_EXPECT(sh->hits.load() > 0);
    const shmc_flight_stats s = flight(c);
    T_EXPECT(s.waits == 0);
    T_EXPECT(s.leases_held == 0);
    check_clean(c);
    char b[300];
    std::snprintf(b, sizeof b,
                  "callers=%dx%d refreshes=%d stale_served=%d fresh_hits=%d slowest_fetch=%.2fms "
                  "(refresh takes %dms)",
                  kProcs, kThreads, sh->refreshes.load(), sh->stale.load(), sh->hits.load(),
                  ns_to_ms(sh->max_ns.load()), compute_ms);
    shmc_close(c);
    return finish("flight/swr", seed, b);
}

}  // namespace

int main(int argc, char **argv) {
    Args a;
    std::string which;
    for (int i = 1; i < argc; ++i) {
        if (!std::strncmp(argv[i], "rounds=", 7))
            a.rounds = std::atoi(argv[i] + 7);
        else
            which = argv[i];
    }
    const uint64_t seed = pick_seed();
    int rc = 0;
    bool known = false;
    if (which.empty() || which == "herd") known = true, g_failures = 0, rc |= run_herd(a, seed);
    if (which.empty() || which == "owner-killed")
        known = true, g_failures = 0, rc |= run_owner_fails(a, seed, false);
    if (which.empty() || which == "owner-hung")
        known = true, g_failures = 0, rc |= run_owner_fails(a, seed, true);
    if (which.empty() || which == "swr") known = true, g_failures = 0, rc |= run_swr(a, seed);
    if (!known) {
        std::fprintf(stderr, "unknown case %s\n", which.c_str());
        return 2;
    }
    return rc;
}
