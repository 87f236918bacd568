// multiproc_test.cpp - several processes on one segment, no crashes: the engine's locking is
// exercised by real processes, not threads, because processes are what share the segment.
//
// Cases (first argument; none runs all):
//   stress        N processes (default 6) each open the segment themselves and run a seeded
//                 random verified mix over 2000 colliding keys (plus keys each owns, checked for
//                 freshness); a 2 MiB / 16-stripe segment keeps eviction constant. Then one short
//                 run per eviction strategy with an entry limit. Ends with shmc_check clean, sane
//                 stats and a sweep verifying every key left.
//   open-race     8 processes open the same fresh name at the same instant: all succeed, exactly
//                 one initialization is seen (same creator, same geometry, every key visible).
//   fork-inherit  the parent opens, then forks 2 children that use the inherited handle
//                 (gunicorn --preload); concurrent incr on one counter must add up exactly.
// Options: procs=N seconds=S (stress), rounds=R (open-race). Seed from SHMC_TEST_SEED.
#include "support.h"
#include "workload.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace tsupport;

namespace {

struct Args {
    int procs = 6;
    double seconds = 4;
    int rounds = 50;
};

const char *strategy_name(uint32_t s) {
    static const char *names[] = {"default", "lru", "lfu", "fifo", "ttl", "sieve", "s3fifo", "wtinylfu"};
    return s < sizeof names / sizeof *names ? names[s] : "?";
}

// Wait (bounded) until *count reaches n: a barrier in shared memory.
bool barrier(std::atomic<int> *count, int n, int timeout_ms) {
    count->fetch_add(1);
    uint64_t deadline = now_ns() + uint64_t(timeout_ms) * 1000000u;
    while (count->load() < n) {
        if (now_ns() > deadline) return false;
        sleep_ms(0.2);
    }
    return true;
}

// Check the segment after a storm, single process: clean check, sane stats, every value valid.
void check_after(const char *label, const std::string &name, const shmc_options &created_with,
                 OwnedKeys *owned, int procs, bool expect_evictions, std::string *summary) {
    shmc_options o;
    shmc_options_default(&o);
    o.flags = SHMC_OPEN_NO_CREATE;  // the storm created it; it must still be there
    shmc_cache *c = open_or_die(name.c_str(), o);
    shmc_check_report rep{};
    T_EXPECT_RC(shmc_check(c, &rep), 0);
    T_EXPECT(rep.stripes_damaged == 0);
    T_EXPECT(rep.stripes_skipped == 0);
    shmc_stats st{};
    T_EXPECT_RC(shmc_get_stats(c, &st), 0);
    shmc_info info{};
    T_EXPECT_RC(shmc_get_info(c, &info), 0);
    T_EXPECT(st.bytes_used <= st.bytes_capacity);
    T_EXPECT(st.bytes_data <= st.bytes_used);
    T_EXPECT(st.bytes_capacity <= info.size_bytes);
    if (info.block_size) T_EXPECT(st.entries <= st.bytes_capacity / info.block_size);
    if (created_with.max_entries) T_EXPECT(st.entries <= created_with.max_entries);  // host-wide
    if (expect_evictions) T_EXPECT(st.evictions > 0);
    T_EXPECT(st.lock_recoveries == 0);  // nobody died

    // Final sweep: whatever survived must verify.
    OpCounters *sweep = shared_new<OpCounters>();
    WorkloadConfig cfg;
    Workload w(c, cfg, 1, sweep);
    w.verify_all();
    resolve_all_owned(c, owned, procs, sweep);  // and every owned key holds its last write
    T_EXPECT(sweep->corrupt.load() == 0);
    T_EXPECT(sweep->errors.load() == 0);
    if (sweep->problem_set.load())
        std::fprintf(stderr, "%s final sweep: %s\n", label, sweep->first_problem);

    char b[400];
    std::snprintf(b, sizeof b,
                  "[%s strategy=%s entries=%" PRIu64 " bytes_used=%" PRIu64 "/%" PRIu64
                  " evictions=%" PRIu64 " expirations=%" PRIu64 " check_damaged=%u] ",
                  label, strategy_name(info.strategy), st.entries, st.bytes_used, st.bytes_capacity,
                  st.evictions, st.expirations, rep.stripes_damaged);
    *summary += b;
    shmc_close(c);
}

// N processes, each opening the segment itself, running the verified mix for `seconds`.
void storm(const char *label, const shmc_options &opts, int procs, double seconds, uint64_t seed,
           bool expect_evictions, std::string *summary) {
    std::string name = unique_name(label);
    SegmentGuard guard(name);
    OpCounters *slots = new_counters(procs);
    OwnedKeys *owned = new_owned(procs);
    StartGun gun;
    std::vector<pid_t> kids;
    for (int i = 0; i < procs; ++i) {
        kids.push_back(spawn([&, i] {
            gun.wait_in_child();
            shmc_cache *c = open_or_die(name.c_str(), opts);
            WorkloadConfig cfg;
            Workload w(c, cfg, seed + uint64_t(i), &slots[i], &owned[i], i);
            w.resolve_owned();
            uint64_t end = now_ns() + uint64_t(seconds * 1e9);
            while (now_ns() < end)
                for (int k = 0; k < 64; ++k) w.step();
            shmc_close(c);
            return 0;
        }));
    }
    gun.release();
    for (int i = 0; i < procs; ++i) {
        int st = wait_child(kids[size_t(i)], int(seconds * 1000) + 30000);
        if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            std::fprintf(stderr, "%s: worker %d (seed %" PRIu64 "): %s\n", label, i,
                         seed + uint64_t(i), describe_status(st).c_str());
            ++g_failures;
        }
    }
    OpCounters *total = shared_new<OpCounters>();
    for (int i = 0; i < procs; ++i) slots[i].add_to(*total);
    T_EXPECT(total->corrupt.load() == 0);
    T_EXPECT(total->errors.load() == 0);
    if (total->problem_set.load())
        std::fprintf(stderr, "%s: first problem: %s\n", label, total->first_problem);
    char b[300];
    std::snprintf(b, sizeof b,
                  "[%s procs=%d ops=%" PRIu64 " hits=%" PRIu64 "/%" PRIu64 " purged=%" PRIu64
                  " timeouts=%" PRIu64 " corrupt=%" PRIu64 " errors=%" PRIu64 " max_op=%.1fms] ",
                  label, procs, total->ops.load(), total->hits.load(), total->gets.load(),
                  total->purged.load(), total->timeouts.load(), total->corrupt.load(),
                  total->errors.load(), ns_to_ms(total->max_ns.load()));
    *summary += b;
    check_after(label, name, opts, owned, procs, expect_evictions, summary);
}

int run_stress(const Args &a, uint64_t seed) {
    std::string summary;
    // Small segment: 16 stripes of ~128 KiB, values up to 20 KiB: every few sets evict.
    storm("stress", small_options(2u << 20, 16), a.procs, a.seconds, seed, true, &summary);
    // Every strategy once, with an entry limit below the key space (so count-driven eviction).
    for (uint32_t s = SHMC_STRATEGY_LRU; s <= SHMC_STRATEGY_WTINYLFU; ++s) {
        shmc_options o = small_options(8u << 20, 8);
        o.strategy = s;
        o.max_entries = 512;
        char label[32];
        std::snprintf(label, sizeof label, "stress-%s", strategy_name(s));
        storm(label, o, a.procs < 4 ? a.procs : 4, 1.0, seed + 100 * s, true, &summary);
    }
    return finish("multiproc/stress", seed, summary);
}

// What each racing opener saw.
struct OpenResult {
    int rc;
    int attached_ok;
    int keys_seen;
    uint32_t n_stripes;
    uint32_t creator_pid;
    uint64_t created_ms;
    uint32_t attached;
};

int run_open_race(const Args &a, uint64_t seed) {
    const int n = 8;
    int bad_rounds = 0;
    for (int round = 0; round < a.rounds; ++round) {
        std::string name = unique_name("openrace", round);
        SegmentGuard guard(name);
        OpenResult *res = static_cast<OpenResult *>(shared_alloc(sizeof(OpenResult) * n));
        auto *opened = shared_new<std::atomic<int>>();
        auto *checked = shared_new<std::atomic<int>>();
        StartGun gun;
        std::vector<pid_t> kids;
        for (int i = 0; i < n; ++i) {
            kids.push_back(spawn([&, i] {
                OpenResult &r = res[i];
                gun.wait_in_child();
                // Different geometry per opener: only the one that initializes may decide it.
                shmc_options o = small_options(4u << 20, 4u << (i % 4));
                shmc_cache *c = nullptr;
                r.rc = shmc_open(name.c_str(), &o, &c);
                if (r.rc != 0) {
                    std::fprintf(stderr, "open-race opener %d: shmc_open: %d (%s: %s)\n", i, r.rc,
                                 shmc_strerror(r.rc), shmc_errmsg());
                    barrier(opened, n, 5000);
                    barrier(checked, n, 5000);
                    return 1;
                }
                std::string key = "from-" + std::to_string(i);
                std::string val = "value of " + std::to_string(getpid());
                int src = shmc_set(c, key.data(), key.size(), val.data(), val.size(), 0, 0);
                if (src != 0) std::fprintf(stderr, "open-race opener %d: set: %d\n", i, src);
                bool all = barrier(opened, n, 5000);
                shmc_info info{};
                shmc_get_info(c, &info);
                r.n_stripes = info.n_stripes;
                r.creator_pid = info.creator_pid;
                r.created_ms = info.created_unix_ms;
                r.attached = info.attached;
                r.attached_ok = all && info.attached == uint32_t(n);
                for (int j = 0; j < n; ++j) {
                    std::string k = "from-" + std::to_string(j);
                    char b[64];
                    size_t len = 0;
                    int grc = shmc_get(c, k.data(), k.size(), b, sizeof b, &len, nullptr, nullptr);
                    // A lock timeout (a holder descheduled on a loaded machine) is a documented
                    // miss, not a lost key: count it apart so the check stays exact.
                    if (grc == 0 || grc == SHMC_E_LOCK_TIMEOUT)
                        ++r.keys_seen;
                    if (grc != 0)
                        std::fprintf(stderr, "open-race opener %d: get %s: %d (%s)\n", i,
                                     k.c_str(), grc, shmc_strerror(grc));
                }
                barrier(checked, n, 5000);  // nobody detaches before all counted `attached`
                shmc_close(c);
                return 0;
            }));
        }
        gun.release();
        std::vector<uint32_t> pids;
        for (int i = 0; i < n; ++i) {
            int st = wait_child(kids[size_t(i)], 20000);
            pids.push_back(uint32_t(kids[size_t(i)]));
            if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                std::fprintf(stderr, "open-race round %d opener %d: %s\n", round, i,
                             describe_status(st).c_str());
                ++g_failures;
            }
        }
        int before = g_failures;
        bool creator_is_child = false;
        for (uint32_t p : pids) creator_is_child |= p == res[0].creator_pid;
        T_EXPECT(creator_is_child);
        for (int i = 0; i < n; ++i) {
            T_EXPECT(res[i].rc == 0);
            T_EXPECT(res[i].keys_seen == n);  // one segment: every opener's key visible to all
            T_EXPECT(res[i].attached_ok);
            T_EXPECT(res[i].n_stripes == res[0].n_stripes);
            T_EXPECT(res[i].creator_pid == res[0].creator_pid);
            T_EXPECT(res[i].created_ms == res[0].created_ms);
        }
        if (g_failures != before) {
            ++bad_rounds;
            for (int i = 0; i < n; ++i)
                std::fprintf(stderr,
                             "  round %d opener %d: rc=%d keys_seen=%d attached=%u stripes=%u "
                             "creator=%u created_ms=%" PRIu64 "\n",
                             round, i, res[i].rc, res[i].keys_seen, res[i].attached,
                             res[i].n_stripes, res[i].creator_pid, res[i].created_ms);
        }
    }
    char b[120];
    std::snprintf(b, sizeof b, "rounds=%d openers=%d bad_rounds=%d", a.rounds, n, bad_rounds);
    return finish("multiproc/open-race", seed, b);
}

int run_fork_inherit(const Args &, uint64_t seed) {
    std::string name = unique_name("forkinherit");
    SegmentGuard guard(name);
    shmc_cache *c = open_or_die(name.c_str(), small_options(32u << 20, 16));
    const char *pk = "parent-key";
    T_EXPECT_RC(shmc_set(c, pk, std::strlen(pk), "from parent", 11, 42, 0), 0);
    T_EXPECT_RC(shmc_set(c, "ctr", 3, "0", 1, 0, 0), 0);
    const int kids_n = 2, incrs = 2000;
    auto *ready = shared_new<std::atomic<int>>();
    auto *done = shared_new<std::atomic<int>>();
    auto *attached_seen = static_cast<uint32_t *>(shared_alloc(sizeof(uint32_t) * kids_n));
    OpCounters *slots = new_counters(kids_n);
    std::vector<pid_t> kids;
    for (int i = 0; i < kids_n; ++i) {
        kids.push_back(spawn([&, i] {
            int bad = 0;
            char b[64];
            size_t len = 0;
            uint32_t fl = 0;
            int rc = shmc_get(c, pk, std::strlen(pk), b, sizeof b, &len, &fl, nullptr);
            if (rc != 0 || len != 11 || std::memcmp(b, "from parent", 11) != 0 || fl != 42) {
                std::fprintf(stderr, "fork child %d: inherited handle get: rc=%d\n", i, rc);
                bad = 1;
            }
            // Mixed verified traffic on the inherited handle first; the segment is big enough
            // (32 MiB for ~5 MiB of data, values capped at 32 KiB) that it never evicts "ctr" or
            // the child keys.
            WorkloadConfig cfg;
            cfg.max_value_len = 32 * 1024;
            Workload w(c, cfg, seed + uint64_t(i), &slots[i]);
            for (int k = 0; k < 5000; ++k) w.step();
            std::string key = "child-" + std::to_string(i);
            if (shmc_set(c, key.data(), key.size(), "x", 1, 0, 0) != 0) bad = 1;
            barrier(ready, kids_n + 1, 10000);  // all three processes have made calls
            shmc_info info{};
            shmc_get_info(c, &info);
            attached_seen[i] = info.attached;
            for (int k = 0; k < incrs; ++k) {
                int64_t r;
                int irc = shmc_incr(c, "ctr", 3, 1, &r);
                if (irc != 0) {
                    std::fprintf(stderr, "fork child %d: incr: %d (%s)\n", i, irc,
                                 shmc_strerror(irc));
                    bad = 1;
                    break;
                }
            }
            barrier(done, kids_n + 1, 10000);
            return bad;
        }));
    }
    barrier(ready, kids_n + 1, 10000);
    for (int k = 0, rc = 0; k < incrs && rc == 0; ++k) {
        rc = shmc_incr(c, "ctr", 3, 1, nullptr);
        if (rc != 0) report_rc(__FILE__, __LINE__, "parent incr(ctr)", rc, 0), ++g_failures;
    }
    barrier(done, kids_n + 1, 10000);
    for (int i = 0; i < kids_n; ++i) {
        int st = wait_child(kids[size_t(i)], 30000);
        if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            std::fprintf(stderr, "fork child %d: %s\n", i, describe_status(st).c_str());
            ++g_failures;
        }
        // The child registered itself on its first call after fork, so all three were counted.
        T_EXPECT(attached_seen[i] == uint32_t(kids_n + 1));
        T_EXPECT(slots[i].corrupt.load() == 0 && slots[i].errors.load() == 0);
        if (slots[i].problem_set.load())
            std::fprintf(stderr, "fork child %d: %s\n", i, slots[i].first_problem);
    }
    char b[64];
    size_t len = 0;
    T_EXPECT_RC(shmc_get(c, "ctr", 3, b, sizeof b - 1, &len, nullptr, nullptr), 0);
    b[len] = 0;
    long long ctr = std::atoll(b);
    T_EXPECT(ctr == (kids_n + 1) * incrs);  // no increment lost between processes
    for (int i = 0; i < kids_n; ++i) {
        std::string key = "child-" + std::to_string(i);
        T_EXPECT_RC(shmc_get(c, key.data(), key.size(), b, sizeof b, &len, nullptr, nullptr), 0);
    }
    shmc_info info{};
    T_EXPECT_RC(shmc_get_info(c, &info), 0);
    T_EXPECT(info.attached == 1);  // the children are gone; only live processes count
    shmc_check_report rep{};
    T_EXPECT_RC(shmc_check(c, &rep), 0);
    T_EXPECT(rep.stripes_damaged == 0);
    shmc_close(c);
    char s[160];
    std::snprintf(s, sizeof s, "children=%d ctr=%lld/%d attached_in_children=%u,%u after=%u",
                  kids_n, ctr, (kids_n + 1) * incrs, attached_seen[0], attached_seen[1],
                  info.attached);
    return finish("multiproc/fork-inherit", seed, s);
}

}  // namespace

int main(int argc, char **argv) {
    Args a;
    std::string which;
    for (int i = 1; i < argc; ++i) {
        const char *s = argv[i];
        if (!std::strncmp(s, "procs=", 6))
            a.procs = std::atoi(s + 6);
        else if (!std::strncmp(s, "seconds=", 8))
            a.seconds = std::atof(s + 8);
        else if (!std::strncmp(s, "rounds=", 7))
            a.rounds = std::atoi(s + 7);
        else
            which = s;
    }
    if (a.procs < 4)
        a.procs = 4;  // fewer would not make the stripes collide enough to mean anything
    uint64_t seed = pick_seed();
    std::printf("multiproc_test %s seed=%" PRIu64 " (rerun with SHMC_TEST_SEED=%" PRIu64 ")\n",
                which.empty() ? "all" : which.c_str(), seed, seed);
    int rc = 0;
    // g_failures restarts per case so that each summary line speaks for its own case only.
    if (which.empty() || which == "stress") g_failures = 0, rc |= run_stress(a, seed);
    if (which.empty() || which == "open-race") g_failures = 0, rc |= run_open_race(a, seed);
    if (which.empty() || which == "fork-inherit") g_failures = 0, rc |= run_fork_inherit(a, seed);
    if (!which.empty() && which != "stress" && which != "open-race" && which != "fork-inherit") {
        std::fprintf(stderr, "unknown case %s\n", which.c_str());
        return 2;
    }
    return rc;
}
