// crash_test.cpp - processes die or stop at the worst moments; everyone else must carry on.
//
// Built against libshmcache with SHMC_TEST_HOOKS (test_hooks.h), which can hold a stripe lock
// forever or SIGKILL the caller at the n-th crash point inside a dirty section. Cases (first
// argument, one per meson test so each has its own time budget):
//   lock-holder   a child holds a stripe lock (clean or dirty) and is SIGKILLed; the parent and a
//                 second process then use that stripe at once: every op < 250 ms, a bystander key
//                 of the stripe reads back intact (or, after a dirty death, is a clean miss), and
//                 lock_recoveries moves.
//   rebuild-kill  as lock-holder (dirty), then the process that inherits the dead lock is itself
//                 SIGKILLed at a random instant, often in the middle of its rebuild.
//   init-kill     the process creating a fresh segment is SIGKILLed during shmc_open; the next
//                 opener must get a fully initialized segment within the 2 s init bound.
//   crash-points  workers SIGKILL themselves at a random crash point (1..200) in a write-heavy
//                 mix, ~170 times per eviction strategy, while 3 survivors run verified ops.
//   random-kill   8 processes under mixed load, the parent SIGKILLs a random one every 0-8 ms and
//                 respawns it (500 kills): kills land anywhere, including outside any lock.
//   sigstop       a lock holder is stopped: others get SHMC_E_LOCK_TIMEOUT after about
//                 lock_timeout_ms, never hang; after SIGCONT or SIGKILL, ops succeed again.
//   lease-kill    8 processes run single-flight fetches (150 ms leases) over 24 keys; the parent
//                 SIGKILLs one every 0-6 ms (300 kills) and a third of them also die at crash
//                 points: no fetch waits past its bound, and once every owner is dead each key
//                 gives its value or its lease at once (no lease stuck), stats show no lease held.
//   hot-key-race  per eviction strategy (~4 s each): 3 readers get and fetch 4 hot keys nonstop
//                 while 3 writers overwrite them (29 B to 24 KiB, some TTLs), delete and touch
//                 them and flood the 2 MiB / 4-stripe segment with filler keys (constant
//                 eviction); the parent SIGKILLs a writer every 0-6 ms and half the writers
//                 die at crash points inside writes; a checker runs shmc_check every few ms.
//                 Every byte a reader gets must be a value a writer stored for that key, with
//                 its own flags and a TTL it could have, and not one already replaced before
//                 the read began; each reader must get hits. For optimistic (seqlock) reads.
// Common bounds: no op slower than 250 ms, a hang detector (SHMC_TEST_LATENCY_MS raises it, in
// sanitizer runs only), no corrupt value, shmc_check clean at the end, and (refill_check) no
// memory lost for good. Options: iters=N, kills=N (random-kill), seconds=N (hot-key-race). Seed from
// SHMC_TEST_SEED.
#include "support.h"
#include "shm/test_hooks.h"
#include "workload.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace tsupport;

namespace {

const uint64_t kSlowNs = slow_bound_ns();  // the bound every op must meet (250 ms by default)
constexpr uint32_t kStripes = 16;

struct Args {
    int iters = 0;  // 0: the case's default
    int kills = 0;
    double seconds = 0;  // hot-key-race: total run time (0: the case's default)
};

// Times one call and folds its latency into max/slow counters.
struct Latency {
    uint64_t max_ns = 0, slow = 0, n = 0;
    template <class F>
    int operator()(F &&f) {
        uint64_t t0 = now_ns();
        int rc = f();
        uint64_t d = now_ns() - t0;
        ++n;
        if (d > max_ns) max_ns = d;
        if (d > kSlowNs) ++slow;
        return rc;
    }
};

uint64_t recoveries(shmc_cache *c) {
    shmc_stats st{};
    shmc_get_stats(c, &st);
    return st.lock_recoveries;
}

// End-of-test check: no damage left, all found damage repaired. Appends to summary.
void final_check(shmc_cache *c, std::string *summary) {
    shmc_check_report rep{};
    T_EXPECT_RC(shmc_check(c, &rep), 0);
    T_EXPECT(rep.stripes_skipped == 0);
    T_EXPECT(rep.stripes_repaired == rep.stripes_damaged);
    shmc_stats st{};
    T_EXPECT_RC(shmc_get_stats(c, &st), 0);
    T_EXPECT(st.bytes_used <= st.bytes_capacity);
    char b[200];
    std::snprintf(b, sizeof b,
                  "check: damaged=%u repaired=%u dropped=%" PRIu64 " entries=%" PRIu64
                  " recoveries=%" PRIu64 " timeouts=%" PRIu64,
                  rep.stripes_damaged, rep.stripes_repaired, rep.entries_dropped, st.entries,
                  st.lock_recoveries, st.lock_timeouts);
    *summary += b;
}

// After the storm: empty the cache and fill it again with equal-sized values. Blocks leaked by a
// dead writer (neither free nor owned by an entry) would leave the refilled cache short of
// entries, so the fill ratio is the leak check; `removed` and the counters must also agree.
void refill_check(shmc_cache *c, std::string *summary) {
    uint64_t removed = 0;
    shmc_stats st{};
    T_EXPECT_RC(shmc_get_stats(c, &st), 0);
    uint64_t before = st.entries;
    T_EXPECT_RC(shmc_clear(c, &removed), 0);
    T_EXPECT(removed == before);
    T_EXPECT_RC(shmc_get_stats(c, &st), 0);
    T_EXPECT(st.entries == 0 && st.bytes_used == 0 && st.bytes_data == 0);
    const size_t vlen = 1000;  // with header and key: 17 blocks of 64 bytes per entry
    const uint64_t per_entry = 17 * 64;
    std::string v(vlen, 'f');
    uint64_t n = 3 * st.bytes_capacity / per_entry;
    for (uint64_t i = 0; i < n; ++i) {
        char k[32];
        int kl = std::snprintf(k, sizeof k, "fill:%llu", (unsigned long long)i);
        T_EXPECT_RC(shmc_set(c, k, size_t(kl), v.data(), v.size(), 0, 0), 0);
    }
    T_EXPECT_RC(shmc_get_stats(c, &st), 0);
    // What fits: by memory, or by the entry limit if that is lower.
    shmc_info info{};
    T_EXPECT_RC(shmc_get_info(c, &info), 0);
    double fits = double(st.bytes_capacity / per_entry);
    if (info.max_entries && double(info.max_entries) < fits) fits = double(info.max_entries);
    double ratio = double(st.entries) / fits;
    T_EXPECT(ratio > 0.85);
    char b[120];
    std::snprintf(b, sizeof b, " refill: cleared=%llu fill_ratio=%.3f", (unsigned long long)removed,
                  ratio);
    *summary += b;
}

// Read key and classify: 1 = intact and equal to want (if want given) or valid, 0 = miss,
// -1 = corrupt or unexpected.
int read_verified(shmc_cache *c, const std::string &key, const std::string *want, Latency &lat,
                  const char *who) {
    static thread_local std::string buf(1 << 17, '\0');
    size_t len = 0;
    uint32_t flags = 0;
    int rc = lat([&] {
        return shmc_get(c, key.data(), key.size(), buf.data(), buf.size(), &len, &flags, nullptr);
    });
    if (rc == SHMC_E_NOTFOUND) return 0;
    if (rc != 0) {
        std::string m = shmc_errmsg();
        std::fprintf(stderr, "%s: get(%s) returned %d (%s: %s)\n", who, key.c_str(), rc,
                     shmc_strerror(rc), m.c_str());
        return -1;
    }
    std::string why;
    if (!verify_value(key.data(), key.size(), buf.data(), len, flags, &why)) {
        std::fprintf(stderr, "%s: get(%s): %s\n", who, key.c_str(), why.c_str());
        return -1;
    }
    if (want && (len != want->size() || std::memcmp(buf.data(), want->data(), len) != 0)) {
        std::fprintf(stderr, "%s: get(%s): valid but not the value written last\n", who,
                     key.c_str());
        return -1;
    }
    return 1;
}

// Fork a child that opens its own handle, signals on a pipe and then holds key's stripe lock
// until killed. Returns its pid once it has (almost) taken the lock; *sig_fd is closed.
pid_t spawn_holder(const std::string &name, const shmc_options &opts, const std::string &key,
                   int dirty) {
    int fds[2];
    if (pipe(fds) != 0) {
        std::perror("pipe");
        std::exit(2);
    }
    pid_t pid = spawn([&] {
        close(fds[0]);
        shmc_cache *c = open_or_die(name.c_str(), opts);
        if (write(fds[1], "h", 1) != 1) return 4;
        shmc_test_hold_lock_forever(c, key.data(), key.size(), dirty);
        return 3;  // never reached: the hook sleeps until killed
    });
    close(fds[1]);
    pollfd p{fds[0], POLLIN, 0};
    char ch;
    if (poll(&p, 1, 5000) != 1 || read(fds[0], &ch, 1) != 1) {
        std::fprintf(stderr, "lock holder %d never got ready\n", int(pid));
        ++g_failures;
    }
    close(fds[0]);
    return pid;
}

// Wait until the stripe of probe_key is observed locked by someone else: a delete that returns
// SHMC_E_LOCK_TIMEOUT. The hook takes the lock just after the child's signal, so this is a few
// ms at most; bounded at 3 s.
// The probe is a delete of probe_key (a key of the stripe that the caller may lose): a get would
// not do, since a get reads a stripe whose holder is not mid-write without its lock.
bool wait_until_locked(shmc_cache *c, const std::string &probe_key) {
    uint64_t deadline = now_ns() + 3000 * 1000000ull;
    while (now_ns() < deadline) {
        int rc = shmc_del(c, probe_key.data(), probe_key.size());
        if (rc == SHMC_E_LOCK_TIMEOUT) return true;
        sleep_ms(0.5);
    }
    return false;
}

// ---- (a) killed while holding a lock -------------------------------------------------------

// What the second process saw after the kill.
struct RacerResult {
    std::atomic<int> ready;  // opened, about to wait for the gun
    int bad;
    uint64_t max_ns;
    uint64_t slow;
    uint64_t first_done_ns;  // when its first op (maybe blocked on the dead lock) returned
};

int run_lock_holder(const Args &a, uint64_t seed) {
    const int iters = a.iters ? a.iters : 120;
    std::string name = unique_name("lockholder");
    SegmentGuard guard(name);
    shmc_options opts = small_options(4u << 20, kStripes);
    shmc_cache *c = open_or_die(name.c_str(), opts);
    Rng rng(seed);
    // Per stripe: [0] the key whose lock is held (and, when dirty, garbled), [1] a bystander
    // with a known value, [2] [3] keys written right after the kill.
    auto by_stripe = keys_by_stripe(c, kStripes, "s:", 4, rng);
    for (uint32_t s = 0; s < kStripes; ++s)
        if (by_stripe[s].size() < 4) {
            std::fprintf(stderr, "stripe %u: only %zu keys found\n", s, by_stripe[s].size());
            return finish("crash/lock-holder", seed, "could not map keys to stripes");
        }
    auto *rr = shared_new<RacerResult>();
    Latency lat;
    int dirty_n = 0, dirty_misses = 0, not_locked = 0, no_recovery = 0, bystander_lost = 0, bad = 0;
    uint64_t waiter_max_ns = 0;
    uint64_t rec0 = recoveries(c);
    std::string v, w;
    for (int it = 0; it < iters; ++it) {
        uint32_t s = uint32_t(rng.below(kStripes));
        const std::string &held = by_stripe[s][0], &bystander = by_stripe[s][1];
        const std::string &k2 = by_stripe[s][2], &k3 = by_stripe[s][3];
        int dirty = int(rng.below(2));
        dirty_n += dirty;
        // Odd iterations: the racer is already blocked on the lock when the holder dies, so the
        // kernel hands EOWNERDEAD to a waiter. Even: it arrives just after the death.
        const bool waiter = it % 2;
        uint32_t fl = encode_value(v, held.data(), held.size(), 1 + rng.below(2000), rng);
        T_EXPECT_RC(shmc_set(c, held.data(), held.size(), v.data(), v.size(), fl, 0), 0);
        fl = encode_value(v, bystander.data(), bystander.size(), 1 + rng.below(3000), rng);
        T_EXPECT_RC(shmc_set(c, bystander.data(), bystander.size(), v.data(), v.size(), fl, 0), 0);

        pid_t holder = spawn_holder(name, opts, held, dirty);
        if (!wait_until_locked(c, k3)) {
            ++not_locked;
            std::fprintf(stderr, "iteration %d: stripe %u never observed locked\n", it, s);
        }

        // Created after the holder, which must not inherit the gun's write end.
        StartGun gun;
        rr->ready = 0, rr->bad = 0, rr->max_ns = 0, rr->slow = 0, rr->first_done_ns = 0;
        pid_t racer = spawn([&] {
            // A waiter gets its own handle with a lock timeout far beyond the test's bound, so
            // only the death of the holder can end its wait in time. Otherwise: the inherited one.
            shmc_cache *rc = c;
            if (waiter) {
                shmc_options o = opts;
                o.lock_timeout_ms = 2000;
                rc = open_or_die(name.c_str(), o);
            }
            rr->ready = 1;
            gun.wait_in_child();
            Latency l;
            std::string val;
            Rng r(seed ^ uint64_t(it));
            int b = read_verified(rc, bystander, nullptr, l, "racer") < 0;
            rr->first_done_ns = now_ns();
            for (int k = 0; k < 4; ++k) {
                b |= read_verified(rc, bystander, nullptr, l, "racer") < 0;
                b |= read_verified(rc, held, nullptr, l, "racer") < 0;
                uint32_t f = encode_value(val, k3.data(), k3.size(), 1 + r.below(4000), r);
                int src = l([&] {
                    return shmc_set(rc, k3.data(), k3.size(), val.data(), val.size(), f, 0);
                });
                if (src != 0 && src != SHMC_E_LOCK_TIMEOUT) {
                    std::fprintf(stderr, "racer: set(%s) returned %d (%s)\n", k3.c_str(), src,
                                 shmc_strerror(src));
                    b = 1;
                }
            }
            rr->bad = b;
            rr->max_ns = l.max_ns;
            rr->slow = waiter ? 0 : l.slow;  // a waiter's first op includes the wait before death
            return 0;
        });
        for (uint64_t t_end = now_ns() + 5000 * 1000000ull; !rr->ready && now_ns() < t_end;)
            sleep_ms(0.1);
        if (waiter) {
            gun.release();
            sleep_ms(3);  // long enough for the racer to be blocked in the lock
        }
        uint64_t rec_before = recoveries(c);
        uint64_t t_kill = now_ns();
        kill(holder, SIGKILL);
        int st = wait_child(holder, 5000);
        T_EXPECT(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

        // Parent and racer hit the stripe at once: one of them inherits the dead lock.
        if (!waiter) gun.release();
        int got = read_verified(c, bystander, &v, lat, "parent");
        if (got < 0)
            ++bad;
        else if (got == 0 && !dirty)
            ++bystander_lost;  // nothing was changed by a clean holder: nothing may be lost
        else if (got == 0)
            ++dirty_misses;  // allowed (a clean miss), but rebuild should keep a valid entry
        if (read_verified(c, held, nullptr, lat, "parent") < 0)
            ++bad;  // the garbled entry must be dropped, never returned
        fl = encode_value(w, k2.data(), k2.size(), 1 + rng.below(4000), rng);
        int rc = lat([&] { return shmc_set(c, k2.data(), k2.size(), w.data(), w.size(), fl, 0); });
        if (rc != 0 && rc != SHMC_E_LOCK_TIMEOUT) {
            report_rc(__FILE__, __LINE__, "set after kill", rc, 0);
            ++bad;
        } else if (rc == 0 && read_verified(c, k2, &w, lat, "parent") != 1) {
            ++bad;
        }
        st = wait_child(racer, 5000);
        if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || rr->bad) {
            std::fprintf(stderr, "iteration %d: racer %s bad=%d\n", it, describe_status(st).c_str(),
                         rr->bad);
            ++bad;
        }
        if (!waiter && rr->max_ns > lat.max_ns) lat.max_ns = rr->max_ns;
        lat.slow += rr->slow;
        if (waiter) {
            // The blocked waiter must be released by the death, promptly.
            uint64_t d = rr->first_done_ns > t_kill ? rr->first_done_ns - t_kill : 0;
            if (d > waiter_max_ns) waiter_max_ns = d;
            if (d > kSlowNs || rr->first_done_ns == 0) {
                std::fprintf(stderr, "iteration %d: waiter released %.2f ms after the kill\n", it,
                             ns_to_ms(d));
                ++lat.slow;
            }
        }
        if (recoveries(c) <= rec_before) {
            ++no_recovery;
            std::fprintf(stderr,
                         "iteration %d (stripe %u, dirty %d): lock_recoveries did not move\n", it,
                         s, dirty);
        }
    }
    T_EXPECT(not_locked == 0);
    T_EXPECT(no_recovery == 0);
    T_EXPECT(bystander_lost == 0);
    T_EXPECT(bad == 0);
    T_EXPECT(lat.slow == 0);
    char b[300];
    std::snprintf(b, sizeof b,
                  "kills=%d dirty=%d recoveries=%" PRIu64 " slow_ops=%" PRIu64
                  " max_op=%.2fms waiter_release=%.2fms bystander_lost=%d dirty_misses=%d"
                  " bad=%d not_locked=%d no_recovery=%d ",
                  iters, dirty_n, recoveries(c) - rec0, lat.slow, ns_to_ms(lat.max_ns),
                  ns_to_ms(waiter_max_ns), bystander_lost, dirty_misses, bad, not_locked,
                  no_recovery);
    std::string summary = b;
    final_check(c, &summary);
    refill_check(c, &summary);
    shmc_close(c);
    return finish("crash/lock-holder", seed, summary);
}

// ---- (a2) the repairer killed while repairing ------------------------------------------------

// A dirty holder dies; the next locker inherits EOWNERDEAD and rebuilds the stripe; that process
// is itself SIGKILLed at a random instant (often mid-rebuild, never having marked the mutex
// consistent). The one after must repair again: ops stay fast, nothing torn, check clean.
int run_rebuild_kill(const Args &a, uint64_t seed) {
    const int iters = a.iters ? a.iters : 150;
    std::string name = unique_name("rebuildkill");
    SegmentGuard guard(name);
    shmc_options opts = small_options(16u << 20, kStripes);
    shmc_cache *c = open_or_die(name.c_str(), opts);
    Rng rng(seed);
    auto by_stripe = keys_by_stripe(c, kStripes, "s:", 3, rng);
    for (uint32_t s = 0; s < kStripes; ++s)
        if (by_stripe[s].size() < 3)
            return finish("crash/rebuild-kill", seed, "could not map keys to stripes");
    // Many small entries, so that a rebuild has a long chain walk to be killed in.
    std::string v;
    for (int i = 0; i < 40000; ++i) {
        std::string k = "fill:" + std::to_string(i);
        uint32_t fl = encode_value(v, k.data(), k.size(), 1 + rng.below(200), rng);
        shmc_set(c, k.data(), k.size(), v.data(), v.size(), fl, 0);
    }
    Latency lat;
    int bad = 0, bystander_missing = 0, repairer_killed = 0, repairer_done = 0;
    uint64_t rec0 = recoveries(c);
    for (int it = 0; it < iters; ++it) {
        uint32_t s = uint32_t(rng.below(kStripes));
        const std::string &held = by_stripe[s][0], &bystander = by_stripe[s][1];
        const std::string &k2 = by_stripe[s][2];
        uint32_t fl = encode_value(v, bystander.data(), bystander.size(), 1 + rng.below(3000), rng);
        T_EXPECT_RC(shmc_set(c, bystander.data(), bystander.size(), v.data(), v.size(), fl, 0), 0);
        std::string hv;
        fl = encode_value(hv, held.data(), held.size(), 1 + rng.below(3000), rng);
        T_EXPECT_RC(shmc_set(c, held.data(), held.size(), hv.data(), hv.size(), fl, 0), 0);

        pid_t holder = spawn_holder(name, opts, held, 1);
        if (!wait_until_locked(c, k2)) ++bad;
        kill(holder, SIGKILL);
        wait_child(holder, 5000);

        StartGun gun;
        pid_t repairer = spawn([&] {
            gun.wait_in_child();
            char b[8];
            size_t len;
            shmc_get(c, bystander.data(), bystander.size(), b, 0, &len, nullptr, nullptr);
            return 0;
        });
        gun.release();
        uint64_t until = now_ns() + rng.below(6000) * 1000;  // 0-6 ms: spans wake-up and rebuild
        while (now_ns() < until) {
        }
        kill(repairer, SIGKILL);
        int st = wait_child(repairer, 5000);
        if (st != -1 && WIFSIGNALED(st))
            ++repairer_killed;
        else
            ++repairer_done;

        int got = read_verified(c, bystander, &v, lat, "after repairer death");
        if (got < 0)
            ++bad;
        else if (got == 0)
            ++bystander_missing;
        if (read_verified(c, held, nullptr, lat, "after repairer death") < 0) ++bad;
        std::string w;
        fl = encode_value(w, k2.data(), k2.size(), 1 + rng.below(4000), rng);
        int rc = lat([&] { return shmc_set(c, k2.data(), k2.size(), w.data(), w.size(), fl, 0); });
        if (rc != 0 || read_verified(c, k2, &w, lat, "after repairer death") != 1) {
            report_rc(__FILE__, __LINE__, "set after repairer death", rc, 0);
            ++bad;
        }
    }
    T_EXPECT(bad == 0);
    T_EXPECT(lat.slow == 0);
    char b[300];
    std::snprintf(b, sizeof b,
                  "iterations=%d repairer_killed=%d repairer_finished=%d recoveries=%" PRIu64
                  " bystander_missing=%d slow_ops=%" PRIu64 " max_op=%.2fms bad=%d ",
                  iters, repairer_killed, repairer_done, recoveries(c) - rec0, bystander_missing,
                  lat.slow, ns_to_ms(lat.max_ns), bad);
    std::string summary = b;
    final_check(c, &summary);
    refill_check(c, &summary);
    shmc_close(c);
    return finish("crash/rebuild-kill", seed, summary);
}

// ---- (a3) the initializer killed half-way -----------------------------------------------------

// A process creating a fresh segment is SIGKILLed at a random instant of shmc_open (during
// create, reserve, header or stripe initialization, or just after). The next opener must get a
// working, fully initialized segment within the 2 s init bound, never a half-made one.
int run_init_kill(const Args &a, uint64_t seed) {
    const int iters = a.iters ? a.iters : 60;
    Rng rng(seed);
    shmc_options opts = small_options(64u << 20, 64);  // big enough that init takes a while
    // How long an undisturbed open takes here, to spread the kills over it.
    uint64_t t_open;
    {
        std::string name = unique_name("initkill-probe");
        SegmentGuard guard(name);
        uint64_t t0 = now_ns();
        shmc_close(open_or_die(name.c_str(), opts));
        t_open = now_ns() - t0;
    }
    int bad = 0, killed_during = 0, finished_before = 0;
    uint64_t max_reopen = 0;
    for (int it = 0; it < iters; ++it) {
        std::string name = unique_name("initkill", it);
        SegmentGuard guard(name);
        StartGun gun;
        pid_t opener = spawn([&] {
            gun.wait_in_child();
            shmc_cache *oc = nullptr;
            int rc = shmc_open(name.c_str(), &opts, &oc);
            return rc == 0 ? 0 : 1;
        });
        gun.release();
        uint64_t until = now_ns() + rng.below(t_open + t_open / 4 + 1);
        while (now_ns() < until) {
        }
        kill(opener, SIGKILL);
        int st = wait_child(opener, 5000);
        if (st != -1 && WIFSIGNALED(st))
            ++killed_during;
        else
            ++finished_before;

        uint64_t t0 = now_ns();
        shmc_cache *c = nullptr;
        int rc = shmc_open(name.c_str(), &opts, &c);
        uint64_t d = now_ns() - t0;
        if (d > max_reopen) max_reopen = d;
        if (rc != 0 || d > 2500 * 1000000ull) {
            report_rc(__FILE__, __LINE__, "reopen after initializer death", rc, 0);
            std::fprintf(stderr, "  iteration %d: reopen took %.1f ms\n", it, ns_to_ms(d));
            ++bad;
            shmc_close(c);
            continue;
        }
        shmc_info info{};
        shmc_check_report rep{};
        int64_t r = 0;
        if (shmc_get_info(c, &info) != 0 || info.n_stripes != 64 ||
            shmc_set(c, "k", 1, "41", 2, 0, 0) != 0 || shmc_incr(c, "k", 1, 1, &r) != 0 ||
            r != 42 || shmc_check(c, &rep) != 0 || rep.stripes_damaged != 0) {
            std::fprintf(stderr, "iteration %d: segment not usable after initializer death\n", it);
            ++bad;
        }
        shmc_close(c);
    }
    T_EXPECT(bad == 0);
    char b[200];
    std::snprintf(b, sizeof b,
                  "iterations=%d killed_during_open=%d finished_before_kill=%d open_ms=%.2f "
                  "max_reopen_ms=%.2f bad=%d",
                  iters, killed_during, finished_before, ns_to_ms(t_open), ns_to_ms(max_reopen),
                  bad);
    return finish("crash/init-kill", seed, b);
}

// ---- shared by (b) and (c): processes running the verified mix until stopped ----------------

struct Fleet {
    std::string name;
    shmc_options opts;
    OpCounters *slots;
    OwnedKeys *owned;  // one record per slot: each slot's process owns its "o<slot>:" keys
    std::atomic<int> *stop;
    uint64_t seed;
    uint32_t hot_keys = 0;  // if set, odd slots use only this many object keys (more contention)
};

WorkloadConfig crash_config() {
    WorkloadConfig cfg;
    cfg.slow_ns = kSlowNs;
    return cfg;
}

// A process that runs the verified mix until *stop; exits 0 (its findings are in its slot).
pid_t spawn_runner(const Fleet &f, int slot, uint64_t seed) {
    return spawn([&f, slot, seed] {
        shmc_cache *c = open_or_die(f.name.c_str(), f.opts);
        WorkloadConfig cfg = crash_config();
        if (f.hot_keys && slot % 2) cfg.n_keys = f.hot_keys;
        Workload w(c, cfg, seed, &f.slots[slot], &f.owned[slot], slot);
        w.resolve_owned();  // take over from a killed predecessor in this slot
        while (!f.stop->load(std::memory_order_relaxed))
            for (int k = 0; k < 16; ++k) w.step();
        shmc_close(c);
        return 0;
    });
}

// Sum the slots, assert the common bounds, describe the totals.
// The parent first takes over every slot's owned keys (the last writers are gone), so a key
// left stale by the final deaths is caught too.
std::string fleet_totals(const Fleet &f, int n, shmc_cache *c) {
    OpCounters *t = shared_new<OpCounters>();
    OpCounters *sweep = shared_new<OpCounters>();
    resolve_all_owned(c, f.owned, n, sweep);
    sweep->add_to(*t);
    for (int i = 0; i < n; ++i) f.slots[i].add_to(*t);
    T_EXPECT(t->corrupt.load() == 0);
    T_EXPECT(t->errors.load() == 0);
    T_EXPECT(t->slow_ops.load() == 0);
    if (t->problem_set.load()) std::fprintf(stderr, "first problem: %s\n", t->first_problem);
    char b[300];
    std::snprintf(b, sizeof b,
                  "ops=%" PRIu64 " hits=%" PRIu64 "/%" PRIu64 " slow_ops=%" PRIu64
                  " corrupt=%" PRIu64 " errors=%" PRIu64 " timeouts=%" PRIu64 " max_op=%.2fms ",
                  t->ops.load(), t->hits.load(), t->gets.load(), t->slow_ops.load(),
                  t->corrupt.load(), t->errors.load(), t->timeouts.load(),
                  ns_to_ms(t->max_ns.load()));
    return b;
}

// Stop the runners and reap them; each must exit 0 on its own.
void stop_fleet(const Fleet &f, const std::vector<pid_t> &pids) {
    f.stop->store(1);
    for (size_t i = 0; i < pids.size(); ++i) {
        int st = wait_child(pids[i], 10000);
        if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            std::fprintf(stderr, "runner %zu: %s\n", i, describe_status(st).c_str());
            ++g_failures;
        }
    }
}

// ---- (b) killed at a crash point -------------------------------------------------------------

// One segment of the given strategy: `iters` workers die at crash points while 3 survivors run.
void crash_points_on(uint32_t strategy, uint64_t max_entries, int iters, uint64_t seed,
                     std::string *summary) {
    const int survivors = 3;
    char label[32];
    std::snprintf(label, sizeof label, "crashpoints-%u%s", strategy, max_entries ? "-limit" : "");
    // Slots 0..2: survivors; slot 3: the dying workers, one after another.
    Fleet f{
        unique_name(label),       small_options(2u << 20, kStripes), new_counters(survivors + 1),
        new_owned(survivors + 1), shared_new<std::atomic<int>>(),    seed};
    f.opts.strategy = strategy;
    f.opts.max_entries = max_entries;
    SegmentGuard guard(f.name);
    shmc_cache *c = open_or_die(f.name.c_str(), f.opts);
    uint64_t rec0 = recoveries(c);
    std::vector<pid_t> pids;
    for (int i = 0; i < survivors; ++i) pids.push_back(spawn_runner(f, i, seed + uint64_t(i)));

    Rng rng(seed ^ 0xc0ffee);
    int kills = 0, survived = 0, odd = 0;
    uint64_t t_start = now_ns();
    for (int it = 0; it < iters; ++it) {
        uint64_t n = rng.range(1, 200);
        uint64_t wseed = seed + 1000 + uint64_t(it);
        pid_t worker = spawn([&] {
            shmc_cache *wc = open_or_die(f.name.c_str(), f.opts);
            WorkloadConfig cfg = crash_config();
            cfg.mix = Mix{10, 30, 15, 10, 15, 5, 10, 5};  // write-heavy: reach crash points
            Workload w(wc, cfg, wseed, &f.slots[survivors], &f.owned[survivors], survivors);
            w.resolve_owned();  // what the previous worker left, in flight included
            shmc_test_crash_after(n);
            for (int k = 0; k < 1000000; ++k) w.step();
            return 3;  // ran out of ops without reaching crash point n
        });
        int st = wait_child(worker, 10000);
        if (st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) {
            ++kills;
        } else if (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 3) {
            ++survived;
        } else {
            ++odd;
            std::fprintf(stderr, "strategy %u worker %d (n=%" PRIu64 ", seed %" PRIu64 "): %s\n",
                         strategy, it, n, wseed, describe_status(st).c_str());
        }
    }
    double secs = double(now_ns() - t_start) / 1e9;
    stop_fleet(f, pids);
    T_EXPECT(odd == 0);
    T_EXPECT(survived == 0);
    for (int i = 0; i < survivors; ++i)
        T_EXPECT(f.slots[i].ops.load() > 0);  // each survivor kept working through the deaths
    *summary += std::string("[") + label + " " + fleet_totals(f, survivors + 1, c);
    uint64_t rec_before_check = recoveries(c) - rec0;
    final_check(c, summary);
    refill_check(c, summary);
    // Every crash point lies inside a locked dirty section, so each kill left one dead lock
    // owner; shmc_check takes every lock, so by now each must have been recovered.
    uint64_t rec = recoveries(c) - rec0;
    T_EXPECT(rec >= uint64_t(kills));
    char b[200];
    std::snprintf(b, sizeof b,
                  " kills=%d recoveries=%" PRIu64 " (before check %" PRIu64
                  ") survived=%d odd=%d in %.1fs] ",
                  kills, rec, rec_before_check, survived, odd, secs);
    *summary += b;
    shmc_close(c);
}

// Every strategy has its own eviction code inside the dirty sections: kill each of them. Half
// also get an entry limit, so count-driven eviction is killed too (400 leaves 2 stripes of 200,
// stripes_for_entry_limit: stores also level across them). W-TinyLFU, the default, runs both
// ways (half its share each).
int run_crash_points(const Args &a, uint64_t seed) {
    const int iters = a.iters ? a.iters : 1020;
    const int share = (iters + 6) / 7;
    std::string summary;
    for (uint32_t s = SHMC_STRATEGY_LRU; s < SHMC_STRATEGY_WTINYLFU; ++s)
        crash_points_on(s, s % 2 ? 0 : 400, share, seed + s, &summary);
    crash_points_on(SHMC_STRATEGY_WTINYLFU, 0, (share + 1) / 2, seed + 7, &summary);
    crash_points_on(SHMC_STRATEGY_WTINYLFU, 400, (share + 1) / 2, seed + 8, &summary);
    return finish("crash/crash-points", seed, summary);
}

// ---- (c) external random SIGKILLs ------------------------------------------------------------

int run_random_kill(const Args &a, uint64_t seed) {
    const int n = 8;
    const int target = a.kills ? a.kills : 500;
    Fleet f{unique_name("randomkill"),
            small_options(2u << 20, kStripes),
            new_counters(n),
            new_owned(n),
            shared_new<std::atomic<int>>(),
            seed};
    f.hot_keys = 64;  // half the fleet fights over few keys: more kills land inside a lock
    SegmentGuard guard(f.name);
    shmc_cache *c = open_or_die(f.name.c_str(), f.opts);
    uint64_t rec0 = recoveries(c);
    std::vector<pid_t> pids;
    uint64_t spawned = 0;
    for (int i = 0; i < n; ++i) pids.push_back(spawn_runner(f, i, seed + spawned++));
    Rng rng(seed ^ 0xdead);
    int kills = 0, odd = 0;
    uint64_t t_start = now_ns();
    sleep_ms(50);  // let the first generation get going
    while (kills < target) {
        sleep_ms(double(rng.below(8000)) / 1000);  // 0-8 ms: some kills land inside open
        size_t victim = size_t(rng.below(n));
        kill(pids[victim], SIGKILL);
        int st = wait_child(pids[victim], 5000);
        if (st == -1 || !(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)) {
            // It exited by itself before the signal landed: open failed or similar.
            ++odd;
            std::fprintf(stderr, "runner in slot %zu: %s\n", victim, describe_status(st).c_str());
        }
        ++kills;
        pids[victim] = spawn_runner(f, int(victim), seed + spawned++);
    }
    double secs = double(now_ns() - t_start) / 1e9;
    stop_fleet(f, pids);
    T_EXPECT(odd == 0);
    std::string summary = fleet_totals(f, n, c);
    final_check(c, &summary);
    refill_check(c, &summary);
    shmc_info info{};
    T_EXPECT_RC(shmc_get_info(c, &info), 0);
    T_EXPECT(info.attached == 1);  // the attach slots of the 200+ dead pids were reclaimed
    char b[200];
    std::snprintf(b, sizeof b, " kills=%d recoveries=%" PRIu64 " attached=%u odd=%d in %.1fs",
                  kills, recoveries(c) - rec0, info.attached, odd, secs);
    summary += b;
    shmc_close(c);
    return finish("crash/random-kill", seed, summary);
}

// ---- (d) a stopped lock holder ---------------------------------------------------------------

// Ops on a locked stripe must each return LOCK_TIMEOUT after about the lock timeout. A get is
// the exception when the holder is not mid-write (clean_holder): it reads without the lock
// (shm/optimistic.h), so it must be answered at once instead (a hit, a miss, or the length).
struct TimeoutProbe {
    int wrong_rc = 0, too_fast = 0, too_slow = 0, n = 0;
    int reads_served = 0, reads_blocked = 0;
    uint64_t max_ns = 0;
};

void expect_timeouts(shmc_cache *c, const std::vector<std::string> &keys, uint32_t timeout_ms,
                     TimeoutProbe &p, const char *who, bool clean_holder = false) {
    char b[64];
    size_t len;
    int64_t r;
    std::vector<std::function<int(const std::string &)>> ops = {
        [&](const std::string &k) {
            return shmc_get(c, k.data(), k.size(), b, sizeof b, &len, nullptr, nullptr);
        },
        [&](const std::string &k) { return shmc_set(c, k.data(), k.size(), "1", 1, 0, 0); },
        [&](const std::string &k) { return shmc_del(c, k.data(), k.size()); },
        [&](const std::string &k) { return shmc_touch(c, k.data(), k.size(), 0); },
        [&](const std::string &k) { return shmc_incr(c, k.data(), k.size(), 1, &r); },
        [&](const std::string &k) { return shmc_add(c, k.data(), k.size(), "1", 1, 0, 0); },
    };
    for (const auto &k : keys)
        for (size_t i = 0; i < ops.size(); ++i) {
            uint64_t t0 = now_ns();
            int rc = ops[i](k);
            uint64_t d = now_ns() - t0;
            if (clean_holder && i == 0) {  // the get
                if ((rc == 0 || rc == SHMC_E_NOTFOUND || rc == SHMC_E_BUFFER_TOO_SMALL) &&
                    d < kSlowNs) {
                    ++p.reads_served;
                } else {
                    ++p.reads_blocked;
                    std::fprintf(stderr, "%s: get of %s under a clean stopped holder: %d in %.2f ms\n",
                                 who, k.c_str(), rc, ns_to_ms(d));
                }
                continue;
            }
            ++p.n;
            if (d > p.max_ns) p.max_ns = d;
            if (rc != SHMC_E_LOCK_TIMEOUT) {
                ++p.wrong_rc;
                std::fprintf(stderr, "%s: op %zu on %s returned %d (%s), not LOCK_TIMEOUT\n", who,
                             i, k.c_str(), rc, shmc_strerror(rc));
            } else if (d + 2000000 < uint64_t(timeout_ms) * 1000000u) {
                ++p.too_fast;
                std::fprintf(stderr, "%s: timed out after %.2f ms, timeout is %u ms\n", who,
                             ns_to_ms(d), timeout_ms);
            } else if (d > (uint64_t(timeout_ms) + 50) * 1000000u) {
                ++p.too_slow;
                std::fprintf(stderr, "%s: timed out after %.2f ms, timeout is %u ms\n", who,
                             ns_to_ms(d), timeout_ms);
            }
        }
}

// Ops on the stripe succeed again (no timeout), each well under the bound.
int expect_ok_again(shmc_cache *c, const std::vector<std::string> &keys, const char *who) {
    int bad = 0;
    for (const auto &k : keys) {
        uint64_t t0 = now_ns();
        int rc = shmc_set(c, k.data(), k.size(), "42", 2, 0, 0);
        int64_t r = 0;
        int rc2 = shmc_incr(c, k.data(), k.size(), 1, &r);
        uint64_t d = now_ns() - t0;
        if (rc != 0 || rc2 != 0 || r != 43 || d > 2 * kSlowNs) {
            std::fprintf(stderr, "%s: after release: set=%d incr=%d (%lld) in %.2f ms\n", who, rc,
                         rc2, (long long)r, ns_to_ms(d));
            ++bad;
        }
    }
    return bad;
}

int run_sigstop(const Args &, uint64_t seed) {
    std::string name = unique_name("sigstop");
    SegmentGuard guard(name);
    shmc_options opts = small_options(4u << 20, kStripes);
    opts.lock_timeout_ms = 50;
    shmc_cache *c = open_or_die(name.c_str(), opts);
    Rng rng(seed);
    auto by_stripe = keys_by_stripe(c, kStripes, "s:", 3, rng);
    shmc_stats st0{};
    shmc_get_stats(c, &st0);
    TimeoutProbe probe;
    int bad = 0;
    std::string summary;

    // Variant 1: the hook holds the lock, the holder is stopped as well.
    {
        uint32_t s = uint32_t(rng.below(kStripes));
        const auto &keys = by_stripe[s];
        pid_t holder = spawn_holder(name, opts, keys[0], 0);
        if (!wait_until_locked(c, keys[1])) {
            std::fprintf(stderr, "hold: stripe %u never observed locked\n", s);
            ++bad;
        }
        kill(holder, SIGSTOP);
        // A second process (inherited handle) times out alongside us.
        auto *child_probe = shared_new<TimeoutProbe>();
        pid_t other = spawn([&] {
            expect_timeouts(c, {keys[1], keys[2]}, opts.lock_timeout_ms, *child_probe, "other",
                            true);
            return 0;
        });
        expect_timeouts(c, {keys[1], keys[2]}, opts.lock_timeout_ms, probe, "parent", true);
        // A purge skips the locked stripe, finishes the others, and says so.
        uint64_t t0 = now_ns();
        uint64_t removed = 0;
        int prc = shmc_purge(c, "zz*", 3, &removed);
        uint64_t d = now_ns() - t0;
        if (prc != SHMC_E_LOCK_TIMEOUT || d > (opts.lock_timeout_ms + 50) * 1000000ull) {
            std::fprintf(stderr, "purge with a stopped holder: rc %d in %.2f ms\n", prc,
                         ns_to_ms(d));
            ++bad;
        }
        // Another stripe is unaffected.
        uint32_t s2 = (s + 1) % kStripes;
        bad += expect_ok_again(c, {by_stripe[s2][2]}, "other stripe");
        int ost = wait_child(other, 10000);
        if (ost == -1 || !WIFEXITED(ost) || WEXITSTATUS(ost) != 0) ++bad;
        probe.wrong_rc += child_probe->wrong_rc, probe.too_fast += child_probe->too_fast;
        probe.too_slow += child_probe->too_slow, probe.n += child_probe->n;
        probe.reads_served += child_probe->reads_served;
        probe.reads_blocked += child_probe->reads_blocked;
        if (child_probe->max_ns > probe.max_ns) probe.max_ns = child_probe->max_ns;
        kill(holder, SIGCONT);
        kill(holder, SIGKILL);  // the hook never lets go: only its death frees the stripe
        wait_child(holder, 5000);
        bad += expect_ok_again(c, {keys[1], keys[2]}, "after kill");
    }

    // Variant 2: a real set loop, stopped at a moment it holds the lock; SIGCONT frees it.
    int attempts = 0;
    {
        uint32_t s = uint32_t(rng.below(kStripes));
        const auto &keys = by_stripe[s];
        pid_t looper = spawn([&] {
            shmc_cache *lc = open_or_die(name.c_str(), opts);
            Rng r(seed);
            std::string val;
            for (;;) {
                uint32_t f =
                    encode_value(val, keys[0].data(), keys[0].size(), 1 + r.below(8000), r);
                shmc_set(lc, keys[0].data(), keys[0].size(), val.data(), val.size(), f, 0);
            }
            return 0;
        });
        bool caught = false;
        char b[8];
        size_t len;
        for (attempts = 1; attempts <= 2000 && !caught; ++attempts) {
            sleep_ms(double(rng.below(3)));
            kill(looper, SIGSTOP);
            int wst;
            waitpid(looper, &wst, WUNTRACED);  // it is really stopped now
            int rc = shmc_get(c, keys[1].data(), keys[1].size(), b, 0, &len, nullptr, nullptr);
            if (rc == SHMC_E_LOCK_TIMEOUT)
                caught = true;
            else
                kill(looper, SIGCONT);
        }
        if (!caught) {
            std::fprintf(stderr, "set loop never caught holding the lock in %d stops\n",
                         attempts - 1);
            ++bad;
        } else {
            expect_timeouts(c, {keys[1], keys[2]}, opts.lock_timeout_ms, probe, "stopped loop");
            kill(looper, SIGCONT);
            sleep_ms(1);
            bad += expect_ok_again(c, {keys[1], keys[2]}, "after SIGCONT");
        }
        kill(looper, SIGKILL);
        wait_child(looper, 5000);
        Latency l;  // the looper may have died mid-set: its key is valid or a miss
        if (read_verified(c, keys[0], nullptr, l, "after loop") < 0) ++bad;
    }

    shmc_stats st1{};
    shmc_get_stats(c, &st1);
    // Every timeout we saw was counted (the one counter bumped without the lock).
    T_EXPECT(st1.lock_timeouts - st0.lock_timeouts >= uint64_t(probe.n - probe.wrong_rc));
    T_EXPECT(probe.wrong_rc == 0);
    T_EXPECT(probe.too_fast == 0);
    T_EXPECT(probe.reads_blocked == 0);
    T_EXPECT(probe.reads_served == 4);  // 2 keys, by the parent and by the other process
    T_EXPECT(probe.too_slow == 0);
    T_EXPECT(bad == 0);
    char b[300];
    std::snprintf(b, sizeof b,
                  "timeout_ops=%d wrong_rc=%d too_fast=%d too_slow=%d max_timeout_op=%.2fms "
                  "stop_attempts=%d lock_timeouts=%" PRIu64 " bad=%d ",
                  probe.n, probe.wrong_rc, probe.too_fast, probe.too_slow, ns_to_ms(probe.max_ns),
                  attempts - 1, st1.lock_timeouts - st0.lock_timeouts, bad);
    summary += b;
    final_check(c, &summary);
    shmc_close(c);
    return finish("crash/sigstop", seed, summary);
}

// ---- (e) lease owners killed ------------------------------------------------------------------

// What the lease-kill workers report, summed over all of them (shared memory).
struct LeaseTotals {
    std::atomic<uint64_t> fetches{0}, computes{0}, stale{0}, abandons{0}, errors{0}, slow{0};
    std::atomic<uint64_t> max_fetch_ns{0}, max_complete_ns{0};
};

void note_max_ns(std::atomic<uint64_t> &m, uint64_t v) {
    uint64_t cur = m.load();
    while (v > cur && !m.compare_exchange_weak(cur, v)) {
    }
}

// One worker: single-flight fetches over few keys with short leases, computing for 0-8 ms and
// sometimes abandoning; every third worker also dies at a crash point (inside the store of a
// complete, often, with a lease held). Runs until killed.
int lease_worker(const std::string &name, const shmc_options &so, uint32_t lease_ms, int nkeys,
                 uint64_t seed, bool crash, LeaseTotals *t) {
    shmc_cache *c = open_or_die(name.c_str(), so);
    Rng rng(seed);
    if (crash) shmc_test_crash_after(rng.range(1, 60));
    shmc_fetch_options o;
    shmc_fetch_options_default(&o);
    o.lease_ms = lease_ms;
    o.xfetch_beta = 1.0;
    // A fetch waits at most wait_ms (2 x lease_ms) and then one lock wait; complete is one lock
    // hold. Anything slower means a lease or a lock got stuck.
    const uint64_t fetch_bound = (2ull * lease_ms + 100) * 1000000u;
    char buf[256];
    for (;;) {
        const std::string key = "lk:" + std::to_string(rng.below(uint64_t(nkeys)));
        o.ttl_ms = rng.range(5, 60);
        o.stale_ttl_ms = rng.chance(50) ? rng.range(5, 60) : 0;
        shmc_fetch_result r{};
        uint64_t t0 = now_ns();
        const int rc = shmc_fetch(c, key.data(), key.size(), buf, sizeof buf, &o, &r);
        uint64_t d = now_ns() - t0;
        ++t->fetches;
        note_max_ns(t->max_fetch_ns, d);
        if (d > fetch_bound) ++t->slow;
        if (rc != 0) {
            ++t->errors;
            continue;
        }
        if (r.outcome == SHMC_FETCH_STALE || r.outcome == SHMC_FETCH_STALE_REFRESH) ++t->stale;
        if (r.outcome == SHMC_FETCH_HIT || r.outcome == SHMC_FETCH_STALE) continue;
        ++t->computes;
        sleep_ms(double(rng.below(8000)) / 1000);
        t0 = now_ns();
        int crc;
        if (rng.chance(10)) {
            ++t->abandons;
            crc = shmc_fetch_abandon(c, key.data(), key.size(), r.lease);
        } else {
            std::string v(size_t(rng.range(1, 200)), char('a' + rng.below(26)));
            crc = shmc_fetch_complete(c, key.data(), key.size(), v.data(), v.size(), 0,
                                      uint32_t(rng.range(1, 8)), &o, r.lease);
        }
        d = now_ns() - t0;
        note_max_ns(t->max_complete_ns, d);
        if (d > kSlowNs) ++t->slow;
        if (crc != 0) ++t->errors;
    }
}

int run_lease_kill(const Args &a, uint64_t seed) {
    const int n = 8, nkeys = 24;
    const int target = a.kills ? a.kills : 300;
    const uint32_t lease_ms = 150;
    const std::string name = unique_name("leasekill");
    SegmentGuard guard(name);
    const shmc_options so = small_options(2u << 20, kStripes);
    shmc_cache *c = open_or_die(name.c_str(), so);
    LeaseTotals *t = shared_new<LeaseTotals>();
    uint64_t spawned = 0;
    auto start = [&](int slot) {
        const uint64_t ws = seed + spawned++;
        const bool crash = slot % 3 == 0;
        return spawn(
            [&, ws, crash] { return lease_worker(name, so, lease_ms, nkeys, ws, crash, t); });
    };
    std::vector<pid_t> pids;
    for (int i = 0; i < n; ++i) pids.push_back(start(i));
    Rng rng(seed ^ 0x1ea5e);
    int kills = 0, self_kills = 0, odd = 0;
    const uint64_t t_start = now_ns();
    sleep_ms(30);
    while (kills + self_kills < target) {
        sleep_ms(double(rng.below(6000)) / 1000);
        // A worker that reached its crash point is already dead: replace it.
        for (int i = 0; i < n; ++i) {
            int st = 0;
            if (waitpid(pids[size_t(i)], &st, WNOHANG) == pids[size_t(i)]) {
                if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) {
                    ++self_kills;
                } else {
                    ++odd;
                    std::fprintf(stderr, "lease worker %d: %s\n", i, describe_status(st).c_str());
                }
                pids[size_t(i)] = start(i);
            }
        }
        const size_t victim = size_t(rng.below(n));
        kill(pids[victim], SIGKILL);
        const int st = wait_child(pids[victim], 5000);
        if (st == -1 || !(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)) {
            ++odd;
            std::fprintf(stderr, "lease worker %zu: %s\n", victim, describe_status(st).c_str());
        }
        ++kills;
        pids[victim] = start(int(victim));
    }
    const double secs = double(now_ns() - t_start) / 1e9;
    for (pid_t p : pids) {
        kill(p, SIGKILL);
        wait_child(p, 5000);
    }
    // Every owner is dead and reaped: no lease may hold anyone back now. Each key must give
    // this process a value or the lease at once (a takeover), never a wait or an unleased
    // computation. Then, once every value and deadline has run out, each key must give the
    // lease; after those leases are released, no slot may be left held.
    shmc_fetch_options o;
    shmc_fetch_options_default(&o);
    o.lease_ms = lease_ms;
    int stuck = 0;
    uint64_t worst = 0;
    char buf[256];
    for (int pass = 0; pass < 2; ++pass) {
        if (pass == 1) sleep_ms(double(lease_ms) + 130);  // values live at most 60 + 60 ms
        for (int i = 0; i < nkeys; ++i) {
            const std::string key = "lk:" + std::to_string(i);
            shmc_fetch_result r{};
            const uint64_t t0 = now_ns();
            const int rc = shmc_fetch(c, key.data(), key.size(), buf, sizeof buf, &o, &r);
            const uint64_t d = now_ns() - t0;
            worst = std::max(worst, d);
            const bool bad = rc != 0 || r.waited_ms > 20 || d > 50000000u ||
                             (pass == 0 ? r.outcome == SHMC_FETCH_COMPUTE_UNLEASED
                                        : r.outcome != SHMC_FETCH_COMPUTE);
            if (bad) {
                std::fprintf(stderr,
                             "after the kills (pass %d), %s: rc %d outcome %u waited %u ms\n", pass,
                             key.c_str(), rc, r.outcome, r.waited_ms);
                ++stuck;
            }
            if (r.lease) T_EXPECT_RC(shmc_fetch_abandon(c, key.data(), key.size(), r.lease), 0);
        }
    }
    shmc_flight_stats fs{};
    T_EXPECT_RC(shmc_flight_get_stats(c, &fs), 0);
    T_EXPECT(stuck == 0);
    T_EXPECT(fs.leases_held == 0);
    T_EXPECT(fs.leases_reclaimable == 0);
    T_EXPECT(fs.takeovers > 0);
    T_EXPECT(odd == 0);
    T_EXPECT(t->errors.load() == 0);
    T_EXPECT(t->slow.load() == 0);
    std::string summary;
    char b[400];
    std::snprintf(
        b, sizeof b,
        "kills=%d crash_point_deaths=%d fetches=%" PRIu64 " computes=%" PRIu64 " stale=%" PRIu64
        " abandons=%" PRIu64 " takeovers=%" PRIu64 " lease_timeouts=%" PRIu64
        " max_fetch=%.1fms (bound %ums) max_complete=%.2fms"
        " post_kill_fetch_max=%.2fms in %.1fs ",
        kills, self_kills, t->fetches.load(), t->computes.load(), t->stale.load(),
        t->abandons.load(), fs.takeovers, fs.lease_timeouts, ns_to_ms(t->max_fetch_ns.load()),
        2 * lease_ms + 100, ns_to_ms(t->max_complete_ns.load()), ns_to_ms(worst), secs);
    summary += b;
    final_check(c, &summary);
    refill_check(c, &summary);
    shmc_close(c);
    return finish("crash/lease-kill", seed, summary);
}

// ---- (f) readers of a hot key racing writers, evictions and deaths ----------------------------

// For optimistic (seqlock) gets: whatever a get or fetch returns for a hot key must be, byte for
// byte, a value some writer stored under that key, with that value's own flags and a TTL it
// could have. Every hot value follows from its tag (writer incarnation << 40 | sequence): the
// tag is the first 8 payload bytes, and length, TTL and the rest of the payload are derived
// from (tag, key), so the reader regenerates the whole expected value and compares every byte.
// A tag no writer has issued yet is a foreign value even if it is internally consistent.
//
// Stale values (whole, but already replaced: what an optimistic read of freed blocks returns)
// are caught too. Hot keys 0..2 each have one writer slot, whose processes never overlap (the
// parent reaps one before starting its successor), so the writes to such a key are totally
// ordered: the sequence in the tag is the key's own write counter, carried across incarnations.
// Once a write to it has returned, every value with a lower sequence is gone for good; a reader
// notes that floor before each read, and must never get below it, nor go backwards. Hot key 3
// is written by every slot: there only each writer's own values must not go backwards.

constexpr int kHotOwned = 3;                   // hot:0..2, one writer slot each
constexpr int kHotKeys = kHotOwned + 1;        // hot:3, every writer
constexpr uint32_t kHotMaxWriters = 1u << 15;  // writer incarnations per phase
constexpr uint64_t kHotSeqBits = 40;
constexpr uint64_t kHotMaxTtlMs = 40;
constexpr size_t kHotMaxPayload = 24 * 1024;
constexpr size_t kHotSmallCap = 48;  // a get with a buffer this small sees BUFFER_TOO_SMALL too

struct HotShared {
    std::atomic<int> stop;
    // hot:3: highest sequence each writer incarnation has begun to store (before its set).
    std::atomic<uint64_t> issued[kHotMaxWriters];
    std::atomic<uint8_t> slot_of[kHotMaxWriters];  // the slot each incarnation ran in
    // hot:0..2: the last write begun (before the call) and the last known to have returned.
    std::atomic<uint64_t> key_issued[kHotOwned], key_done[kHotOwned];
    std::atomic<uint64_t> sets, adds, dels, touches, fillers, timeouts, errors;
    std::atomic<uint64_t> checks, check_timeouts, check_bad, damaged, repaired, check_max_ns;
    std::atomic<int> problem_set;
    char first_problem[256];
};

// One per reader (shared memory, so the parent reads them even from a reader that hung).
struct HotReader {
    std::atomic<uint64_t> ops, gets, fetches, hits, fetch_hits, misses, timeouts, busy, too_small;
    std::atomic<uint64_t> filler_reads, corrupt, foreign, stale, errors, slow, max_ns;
};

void hot_note(HotShared *sh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hot_note(HotShared *sh, const char *fmt, ...) {
    static int printed = 0;  // per process: a broken engine must not flood the log
    char msg[224];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (printed++ < 8) std::fprintf(stderr, "[pid %d] %s\n", int(getpid()), msg);
    if (sh->problem_set.exchange(1) == 0)
        std::snprintf(sh->first_problem, sizeof sh->first_problem, "[pid %d] %s", int(getpid()),
                      msg);
}

std::string hot_key(int i) { return "hot:" + std::to_string(i); }

uint64_t hot_seed(uint64_t tag, int ki) {
    return tag * 0x9e3779b97f4a7c15ull ^ (uint64_t(ki) + 1) * 0xc2b2ae3d27d4eb4full;
}

struct HotSpec {
    size_t payload;
    uint64_t ttl_ms;
};

// Lengths from a few bytes to 24 KiB: an entry of 2 blocks, sizes around the 64-byte block,
// tens of blocks, and hundreds (several extents once the stripe is fragmented), so consecutive
// overwrites of a key almost always reallocate. A quarter have a short TTL.
HotSpec hot_spec(uint64_t tag, int ki) {
    Rng r(hot_seed(tag, ki));
    HotSpec s{};
    const uint64_t band = r.below(100);
    if (band < 25)
        s.payload = r.range(8, 40);
    else if (band < 50)
        s.payload = r.range(41, 700);
    else if (band < 80)
        s.payload = r.range(701, 6000);
    else
        s.payload = r.range(6001, kHotMaxPayload);
    s.ttl_ms = r.chance(25) ? r.range(1, kHotMaxTtlMs) : 0;
    return s;
}

uint32_t hot_encode(std::string &out, const std::string &key, int ki, uint64_t tag, HotSpec *s) {
    *s = hot_spec(tag, ki);
    Rng r(hot_seed(tag, ki) ^ 0x5eedull);
    return encode_value(out, key.data(), key.size(), s->payload, r, &tag);
}

enum HotVerdict { kHotOk, kHotCorrupt, kHotForeign, kHotStale };

// What one reader has seen: per owned key the highest sequence, for hot:3 per writer.
struct HotSeen {
    uint64_t owned[kHotOwned] = {};
    std::vector<uint64_t> shared = std::vector<uint64_t>(kHotMaxWriters, 0);
};

// Check one value read for hot key ki. ttl_left: as the call reported it (-1 never expires), or
// INT64_MIN if not asked. floor (owned keys): key_done as loaded before the call.
HotVerdict hot_verify(const HotShared *sh, int ki, const std::string &key, const char *val,
                      size_t len, uint32_t flags, int64_t ttl_left, uint64_t floor, HotSeen &seen,
                      std::string &scratch, std::string *why) {
    if (!verify_value(key.data(), key.size(), val, len, flags, why)) return kHotCorrupt;
    char b[200];
    if (len < encoded_len(key.size(), 8)) {
        *why = "valid but too short to carry a tag";
        return kHotForeign;
    }
    uint64_t tag;
    std::memcpy(&tag, val + 8 + key.size(), 8);
    const uint64_t w = tag >> kHotSeqBits, seq = tag & ((1ull << kHotSeqBits) - 1);
    const bool owned = ki < kHotOwned;
    uint64_t issued = 0;
    if (w < kHotMaxWriters)
        issued = owned ? sh->key_issued[ki].load(std::memory_order_acquire)
                       : sh->issued[w].load(std::memory_order_acquire);
    if (seq == 0 || seq > issued ||
        (owned && sh->slot_of[w].load(std::memory_order_relaxed) != uint8_t(ki))) {
        std::snprintf(b, sizeof b,
                      "tag writer %" PRIu64 " seq %" PRIu64
                      " was never issued for this key (issued %" PRIu64 ")",
                      w, seq, issued);
        *why = b;
        return kHotForeign;
    }
    HotSpec s;
    hot_encode(scratch, key, ki, tag, &s);
    if (scratch.size() != len || std::memcmp(scratch.data(), val, len) != 0) {
        std::snprintf(b, sizeof b,
                      "not the value writer %" PRIu64 " stored as seq %" PRIu64
                      " (len %zu, expected %zu)",
                      w, seq, len, scratch.size());
        *why = b;
        return kHotForeign;
    }
    // Writers touch only with a nonzero TTL <= kHotMaxTtlMs: "never expires" belongs to a value
    // stored without TTL, and no TTL left may exceed the largest given.
    if (ttl_left != INT64_MIN &&
        ((ttl_left == -1 && s.ttl_ms != 0) || ttl_left < -1 || ttl_left > int64_t(kHotMaxTtlMs))) {
        std::snprintf(b, sizeof b, "ttl_left %lld for a value stored with ttl %llu",
                      (long long)ttl_left, (unsigned long long)s.ttl_ms);
        *why = b;
        return kHotForeign;
    }
    if (owned && seq < floor) {
        std::snprintf(b, sizeof b,
                      "stale: seq %" PRIu64 " (writer %" PRIu64
                      ") was replaced before the read began (write %" PRIu64 " had returned)",
                      seq, w, floor);
        *why = b;
        return kHotStale;
    }
    uint64_t &last = owned ? seen.owned[ki] : seen.shared[w];
    if (seq < last) {
        std::snprintf(b, sizeof b,
                      "stale: seq %" PRIu64 " (writer %" PRIu64
                      ") after this reader saw seq %" PRIu64,
                      seq, w, last);
        *why = b;
        return kHotStale;
    }
    last = seq;
    return kHotOk;
}

// A reader: gets (a tenth with a buffer too small for most values) and non-blocking fetches of
// the hot keys, and some filler reads, every result checked. Runs until stop.
int hot_reader(const std::string &name, const shmc_options &so, HotShared *sh, HotReader *r,
               uint64_t seed) {
    shmc_cache *c = open_or_die(name.c_str(), so);
    Rng rng(seed);
    HotSeen seen;
    std::string buf(64 * 1024, '\0'), scratch, why;
    std::string keys[kHotKeys];
    for (int i = 0; i < kHotKeys; ++i) keys[i] = hot_key(i);
    shmc_fetch_options fo;
    shmc_fetch_options_default(&fo);
    fo.flags = SHMC_FETCH_NO_WAIT;  // a fetch never waits for a lease: its latency is bounded
    auto bad_rc = [&](const char *op, const std::string &k, int rc) {
        const std::string m = shmc_errmsg();
        ++r->errors;
        hot_note(sh, "reader: %s(%s) returned %d (%s; errmsg \"%s\")", op, k.c_str(), rc,
                 shmc_strerror(rc), m.c_str());
    };
    auto timed = [&](const char *op, const std::string &k, auto &&f) {
        const uint64_t t0 = now_ns();
        const int rc = f();
        const uint64_t d = now_ns() - t0;
        note_max_ns(r->max_ns, d);
        if (d > kSlowNs) {
            ++r->slow;
            hot_note(sh, "reader: %s(%s) took %.1f ms (bound %.0f ms)", op, k.c_str(), ns_to_ms(d),
                     ns_to_ms(kSlowNs));
        }
        return rc;
    };
    // A lock timeout is a documented miss, provided the library says why.
    auto timeout_ok = [&](const char *op, const std::string &k, int rc) {
        if (rc != SHMC_E_LOCK_TIMEOUT) return false;
        if (!*shmc_errmsg()) bad_rc(op, k, rc);
        ++r->timeouts;
        return true;
    };
    auto judge = [&](int ki, const char *val, size_t len, uint32_t flags, int64_t ttl_left,
                     uint64_t floor, const char *op, size_t cap) {
        if (len > cap) {  // success with more bytes than the buffer holds: never read them
            ++r->foreign;
            hot_note(sh, "reader: %s(%s) succeeded with length %zu > capacity %zu", op,
                     keys[ki].c_str(), len, cap);
            return;
        }
        const HotVerdict v =
            hot_verify(sh, ki, keys[ki], val, len, flags, ttl_left, floor, seen, scratch, &why);
        if (v == kHotOk) return;
        (v == kHotCorrupt ? r->corrupt : v == kHotForeign ? r->foreign : r->stale)++;
        hot_note(sh, "reader: %s(%s): %s", op, keys[ki].c_str(), why.c_str());
    };
    while (!sh->stop.load(std::memory_order_relaxed)) {
        ++r->ops;
        const uint64_t pick = rng.below(100);
        const int ki = int(rng.below(kHotKeys));
        const std::string &k = keys[size_t(ki)];
        // Loaded before the call: every write up to it has returned, so nothing older may come.
        const uint64_t floor =
            ki < kHotOwned ? sh->key_done[ki].load(std::memory_order_acquire) : 0;
        if (pick < 60) {  // get, full buffer
            ++r->gets;
            size_t len = 0;
            uint32_t flags = 0;
            int64_t ttl = 0;
            const int rc = timed("get", k, [&] {
                return shmc_get(c, k.data(), k.size(), buf.data(), buf.size(), &len, &flags, &ttl);
            });
            if (rc == 0) {
                ++r->hits;
                judge(ki, buf.data(), len, flags, ttl, floor, "get", buf.size());
            } else if (rc == SHMC_E_NOTFOUND) {
                ++r->misses;
            } else if (!timeout_ok("get", k, rc)) {
                bad_rc("get", k, rc);
            }
        } else if (pick < 68) {  // get into a small buffer: a whole small value, or its length
            ++r->gets;
            size_t len = 0;
            uint32_t flags = 0;
            const int rc = timed("get/small", k, [&] {
                return shmc_get(c, k.data(), k.size(), buf.data(), kHotSmallCap, &len, &flags,
                                nullptr);
            });
            if (rc == 0) {
                ++r->hits;
                judge(ki, buf.data(), len, flags, INT64_MIN, floor, "get/small", kHotSmallCap);
            } else if (rc == SHMC_E_BUFFER_TOO_SMALL) {
                ++r->too_small;
                if (len <= kHotSmallCap || len > encoded_len(k.size(), kHotMaxPayload)) {
                    ++r->foreign;
                    hot_note(sh,
                             "reader: get/small(%s): BUFFER_TOO_SMALL with length %zu, no "
                             "writer stores that",
                             k.c_str(), len);
                }
            } else if (rc == SHMC_E_NOTFOUND) {
                ++r->misses;
            } else if (!timeout_ok("get/small", k, rc)) {
                bad_rc("get/small", k, rc);
            }
        } else if (pick < 92) {  // fetch without waiting
            ++r->fetches;
            shmc_fetch_result fr{};
            const int rc = timed("fetch", k, [&] {
                return shmc_fetch(c, k.data(), k.size(), buf.data(), buf.size(), &fo, &fr);
            });
            if (rc != 0) {
                bad_rc("fetch", k, rc);
            } else if (fr.outcome == SHMC_FETCH_HIT) {
                ++r->hits, ++r->fetch_hits;
                judge(ki, buf.data(), size_t(fr.value_len), fr.flags, fr.ttl_left_ms, floor,
                      "fetch", buf.size());
            } else if (fr.outcome == SHMC_FETCH_COMPUTE ||
                       fr.outcome == SHMC_FETCH_COMPUTE_UNLEASED) {
                ++r->misses;
                if (fr.lease) {  // a reader computes nothing: hand the lease straight back
                    const int arc = timed("abandon", k, [&] {
                        return shmc_fetch_abandon(c, k.data(), k.size(), fr.lease);
                    });
                    if (arc != 0 && !timeout_ok("abandon", k, arc)) bad_rc("abandon", k, arc);
                }
            } else if (fr.outcome == SHMC_FETCH_BUSY) {
                ++r->busy;  // another reader holds the lease for a moment
            } else {
                // No value is stored with a stale window and XFetch is off: nothing else fits.
                ++r->foreign;
                hot_note(sh, "reader: fetch(%s): outcome %u", k.c_str(), fr.outcome);
            }
        } else {  // a filler key: any intact value or a miss
            ++r->filler_reads;
            const std::string fk = "f:" + std::to_string(rng.below(6000));
            size_t len = 0;
            uint32_t flags = 0;
            const int rc = timed("get", fk, [&] {
                return shmc_get(c, fk.data(), fk.size(), buf.data(), buf.size(), &len, &flags,
                                nullptr);
            });
            if (rc == 0) {
                if (len > buf.size()) why = "length beyond the buffer's capacity";
                if (len > buf.size() ||
                    !verify_value(fk.data(), fk.size(), buf.data(), len, flags, &why)) {
                    ++r->corrupt;
                    hot_note(sh, "reader: get(%s): %s", fk.c_str(), why.c_str());
                }
            } else if (rc != SHMC_E_NOTFOUND && !timeout_ok("get", fk, rc)) {
                bad_rc("get", fk, rc);
            }
        }
    }
    shmc_close(c);
    return 0;
}

// A writer incarnation w in slot (= its own hot key): overwrites, adds, deletes and touches its
// own key and the shared one, and sets bursts of filler keys (up to 30 KiB, some with a TTL) so
// that every stripe evicts all the time. Runs until killed, its crash point, or stop.
int hot_writer(const std::string &name, const shmc_options &so, HotShared *sh, int slot, uint64_t w,
               uint64_t seed, uint64_t crash_after) {
    shmc_cache *c = open_or_die(name.c_str(), so);
    Rng rng(seed);
    if (crash_after) shmc_test_crash_after(crash_after);
    uint64_t seq = 0;
    std::string v;
    auto check_rc = [&](const char *op, const std::string &k, int rc, int also_ok) {
        if (rc == 0 || rc == also_ok) return;
        if (rc == SHMC_E_LOCK_TIMEOUT) {
            ++sh->timeouts;
            return;
        }
        const std::string m = shmc_errmsg();
        ++sh->errors;
        hot_note(sh, "writer: %s(%s) returned %d (%s; errmsg \"%s\")", op, k.c_str(), rc,
                 shmc_strerror(rc), m.c_str());
    };
    while (!sh->stop.load(std::memory_order_relaxed)) {
        const uint64_t op = rng.below(100);
        const int ki = rng.chance(60) ? slot : kHotOwned;
        const bool owned = ki < kHotOwned;
        const std::string k = hot_key(ki);
        // The next sequence: the key's own counter (this process is its only writer, and its
        // predecessors are dead), else this writer's. Noted as issued before the call.
        auto issue = [&] {
            if (!owned) {
                sh->issued[w].store(++seq, std::memory_order_release);
                return seq;
            }
            const uint64_t n = sh->key_issued[ki].load(std::memory_order_relaxed) + 1;
            sh->key_issued[ki].store(n, std::memory_order_release);
            return n;
        };
        // Once a write to an owned key has returned, nothing older can be read any more.
        auto done = [&](uint64_t n) {
            if (owned) sh->key_done[ki].store(n, std::memory_order_release);
        };
        if (op < 50) {
            const bool add = op < 4;
            const uint64_t n = issue();
            const uint64_t tag = (w << kHotSeqBits) | n;
            HotSpec s;
            const uint32_t fl = hot_encode(v, k, ki, tag, &s);
            if (add) {
                ++sh->adds;
                const int rc = shmc_add(c, k.data(), k.size(), v.data(), v.size(), fl, s.ttl_ms);
                if (rc == 0) done(n);  // EXISTS: the older value stays, so no new floor
                check_rc("add", k, rc, SHMC_E_EXISTS);
            } else {
                ++sh->sets;
                const int rc = shmc_set(c, k.data(), k.size(), v.data(), v.size(), fl, s.ttl_ms);
                if (rc == 0) done(n);
                check_rc("set", k, rc, 0);
            }
        } else if (op < 57) {
            ++sh->dels;
            const uint64_t n = issue();
            const int rc = shmc_del(c, k.data(), k.size());
            if (rc == 0 || rc == SHMC_E_NOTFOUND) done(n);
            check_rc("del", k, rc, SHMC_E_NOTFOUND);
        } else if (op < 62) {
            ++sh->touches;
            check_rc("touch", k, shmc_touch(c, k.data(), k.size(), rng.range(1, kHotMaxTtlMs)),
                     SHMC_E_NOTFOUND);
        } else {
            for (uint64_t n = rng.range(1, 6); n > 0; --n) {
                const std::string fk = "f:" + std::to_string(rng.below(6000));
                const size_t payload = rng.chance(10) ? rng.range(8000, 30000) : rng.range(1, 4000);
                const uint32_t fl = encode_value(v, fk.data(), fk.size(), payload, rng);
                ++sh->fillers;
                check_rc("set", fk,
                         shmc_set(c, fk.data(), fk.size(), v.data(), v.size(), fl,
                                  rng.chance(15) ? rng.range(1, 200) : 0),
                         0);
            }
        }
    }
    shmc_close(c);
    return 0;
}

// Forces a check (and the rebuild of any stripe a dead writer left dirty) every few ms.
int hot_checker(const std::string &name, const shmc_options &so, HotShared *sh, uint64_t seed) {
    shmc_cache *c = open_or_die(name.c_str(), so);
    Rng rng(seed);
    while (!sh->stop.load(std::memory_order_relaxed)) {
        sleep_ms(double(rng.range(2, 30)));
        shmc_check_report rep{};
        const uint64_t t0 = now_ns();
        const int rc = shmc_check(c, &rep);
        note_max_ns(sh->check_max_ns, now_ns() - t0);
        ++sh->checks;
        sh->damaged += rep.stripes_damaged;
        sh->repaired += rep.stripes_repaired;
        if (rc == SHMC_E_LOCK_TIMEOUT) {
            ++sh->check_timeouts;
        } else if (rc != 0 || rep.stripes_repaired != rep.stripes_damaged) {
            const std::string m = shmc_errmsg();
            ++sh->check_bad;
            hot_note(sh, "checker: check returned %d (%s; errmsg \"%s\"), damaged %u repaired %u",
                     rc, shmc_strerror(rc), m.c_str(), rep.stripes_damaged, rep.stripes_repaired);
        }
    }
    shmc_close(c);
    return 0;
}

const char *strategy_name(uint32_t s) {
    static const char *names[] = {"default", "lru", "lfu", "fifo", "ttl", "sieve", "s3fifo", "wtinylfu"};
    return s < sizeof names / sizeof *names ? names[s] : "?";
}

// One segment of the given strategy, for `seconds`: 3 readers, 3 writer slots whose processes
// the parent SIGKILLs every 0-6 ms (half of them also die at a crash point inside a write),
// one checker.
void hot_key_race_on(uint32_t strategy, uint64_t max_entries, double seconds, uint64_t seed,
                     std::string *summary) {
    const int n_readers = 3, n_writers = kHotOwned;  // one writer slot per owned hot key
    char label[32];
    std::snprintf(label, sizeof label, "hotkey-%u", strategy);
    const std::string name = unique_name(label);
    SegmentGuard guard(name);
    shmc_options so = small_options(2u << 20, 4);  // 512 KiB stripes (1 MiB under the limit)
    so.strategy = strategy;
    so.max_entries = max_entries;
    shmc_cache *c = open_or_die(name.c_str(), so);
    auto *sh = shared_new<HotShared>();
    auto *rd = static_cast<HotReader *>(shared_alloc(sizeof(HotReader) * n_readers));
    const uint64_t rec0 = recoveries(c);
    shmc_stats st0{};
    shmc_get_stats(c, &st0);

    std::vector<pid_t> readers;
    for (int i = 0; i < n_readers; ++i)
        readers.push_back(spawn(
            [&, i] { return hot_reader(name, so, sh, &rd[i], seed ^ (0x7eadull + uint64_t(i))); }));
    const pid_t checker = spawn([&] { return hot_checker(name, so, sh, seed ^ 0xc4ec); });

    Rng rng(seed ^ 0x41117);
    uint64_t next_writer = 0;
    int armed = 0;
    // Only after the slot's previous process has been reaped: an owned key's writes stay
    // totally ordered.
    auto start = [&](int slot) -> pid_t {
        const uint64_t w = next_writer++;
        sh->slot_of[w].store(uint8_t(slot));
        const uint64_t crash_after = rng.chance(50) ? rng.range(1, 300) : 0;
        armed += crash_after != 0;
        const uint64_t ws = seed + 0x1000 + w;
        return spawn([&, slot, w, ws, crash_after] {
            return hot_writer(name, so, sh, slot, w, ws, crash_after);
        });
    };
    std::vector<pid_t> writers;
    for (int i = 0; i < n_writers; ++i) writers.push_back(start(i));

    int kills = 0, crash_deaths = 0, odd = 0;
    const uint64_t t_start = now_ns();
    const uint64_t t_end = t_start + uint64_t(seconds * 1e9);
    while (now_ns() < t_end && next_writer + 2 * n_writers < kHotMaxWriters) {
        sleep_ms(double(rng.below(6000)) / 1000);
        for (size_t i = 0; i < writers.size(); ++i) {  // deaths at crash points: replace them
            pid_t &p = writers[i];
            int st = 0;
            if (waitpid(p, &st, WNOHANG) != p) continue;
            if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) {
                ++crash_deaths;
            } else {
                ++odd;
                std::fprintf(stderr, "hot writer: %s\n", describe_status(st).c_str());
            }
            p = start(int(i));
        }
        const int vslot = int(rng.below(n_writers));
        pid_t &victim = writers[size_t(vslot)];
        kill(victim, SIGKILL);
        const int st = wait_child(victim, 5000);
        if (st == -1 || !(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)) {
            ++odd;
            std::fprintf(stderr, "hot writer: %s\n", describe_status(st).c_str());
        }
        ++kills;
        victim = start(vslot);
    }
    const double secs = double(now_ns() - t_start) / 1e9;
    for (pid_t p : writers) {
        kill(p, SIGKILL);
        wait_child(p, 5000);
    }
    sh->stop.store(1);
    for (pid_t p : readers) {
        const int st = wait_child(p, 10000);
        if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            ++odd;
            std::fprintf(stderr, "hot reader: %s\n", describe_status(st).c_str());
        }
    }
    {
        const int st = wait_child(checker, 10000);
        if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            ++odd;
            std::fprintf(stderr, "hot checker: %s\n", describe_status(st).c_str());
        }
    }
    // Every writer is dead: what the hot keys hold now must pass the same check.
    int final_bad = 0;
    {
        HotSeen seen;
        std::string buf(64 * 1024, '\0'), scratch, why;
        for (int ki = 0; ki < kHotKeys; ++ki) {
            const std::string k = hot_key(ki);
            size_t len = 0;
            uint32_t flags = 0;
            int64_t ttl = 0;
            const uint64_t floor = ki < kHotOwned ? sh->key_done[ki].load() : 0;
            const int rc =
                shmc_get(c, k.data(), k.size(), buf.data(), buf.size(), &len, &flags, &ttl);
            if (rc == SHMC_E_NOTFOUND) continue;
            if (rc != 0 || len > buf.size() ||
                hot_verify(sh, ki, k, buf.data(), len, flags, ttl, floor, seen, scratch, &why) !=
                    kHotOk) {
                std::fprintf(stderr, "after the storm, get(%s): rc %d %s\n", k.c_str(), rc,
                             why.c_str());
                ++final_bad;
            }
        }
    }

    uint64_t t_ops = 0, t_gets = 0, t_fetches = 0, t_hits = 0, t_fetch_hits = 0, t_misses = 0,
             t_timeouts = 0, t_busy = 0, t_small = 0, t_fill = 0, t_corrupt = 0, t_foreign = 0,
             t_back = 0, t_errors = 0, t_slow = 0, t_max = 0;
    for (int i = 0; i < n_readers; ++i) {
        const HotReader &r = rd[i];
        // A reader that never got a hit checked nothing: the run proves nothing.
        if (r.hits.load() == 0) {
            std::fprintf(stderr, "%s: reader %d got no hit in %" PRIu64 " ops\n", label, i,
                         r.ops.load());
            ++g_failures;
        }
        t_ops += r.ops, t_gets += r.gets, t_fetches += r.fetches, t_hits += r.hits;
        t_fetch_hits += r.fetch_hits, t_misses += r.misses, t_timeouts += r.timeouts;
        t_busy += r.busy, t_small += r.too_small, t_fill += r.filler_reads;
        t_corrupt += r.corrupt, t_foreign += r.foreign, t_back += r.stale;
        t_errors += r.errors, t_slow += r.slow, t_max = std::max(t_max, r.max_ns.load());
    }
    const uint64_t rec = recoveries(c) - rec0;
    shmc_stats st1{};
    T_EXPECT_RC(shmc_get_stats(c, &st1), 0);
    T_EXPECT(t_corrupt == 0);
    T_EXPECT(t_foreign == 0);
    T_EXPECT(t_back == 0);
    T_EXPECT(t_errors == 0);
    T_EXPECT(t_slow == 0);
    T_EXPECT(t_fetch_hits > 0);
    T_EXPECT(final_bad == 0);
    T_EXPECT(sh->errors.load() == 0);
    T_EXPECT(sh->sets.load() > 0);
    T_EXPECT(sh->check_bad.load() == 0);
    T_EXPECT(sh->checks.load() > 0);
    T_EXPECT(odd == 0);
    T_EXPECT(kills > 0);
    T_EXPECT(crash_deaths > 0);  // some writers died inside a dirty section...
    T_EXPECT(rec > 0);           // ...and their stripes were rebuilt under the readers
    T_EXPECT(st1.evictions > st0.evictions);
    if (sh->problem_set.load()) std::fprintf(stderr, "first problem: %s\n", sh->first_problem);
    char b[900];
    std::snprintf(b, sizeof b,
                  "[%s%s reads=%" PRIu64 " (gets=%" PRIu64 " fetches=%" PRIu64 " filler=%" PRIu64
                  ") hits=%" PRIu64 " (fetch %" PRIu64 ") misses=%" PRIu64 " too_small=%" PRIu64
                  " busy=%" PRIu64 " timeouts=%" PRIu64 " corrupt=%" PRIu64 " foreign=%" PRIu64
                  " stale=%" PRIu64 " errors=%" PRIu64 " slow=%" PRIu64
                  " max_read=%.2fms"
                  " | hot_sets=%" PRIu64 " adds=%" PRIu64 " dels=%" PRIu64 " touches=%" PRIu64
                  " filler_sets=%" PRIu64 " write_timeouts=%" PRIu64 " write_errors=%" PRIu64
                  " | kills=%d crash_point_deaths=%d (armed %d) recoveries=%" PRIu64
                  " evictions=%" PRIu64 " expirations=%" PRIu64 " checks=%" PRIu64
                  " (timeouts %" PRIu64 ", damaged %" PRIu64 ", max %.1fms) odd=%d in %.1fs ",
                  strategy_name(strategy), max_entries ? "+limit" : "", t_ops, t_gets, t_fetches,
                  t_fill, t_hits, t_fetch_hits, t_misses, t_small, t_busy, t_timeouts, t_corrupt,
                  t_foreign, t_back, t_errors, t_slow, ns_to_ms(t_max), sh->sets.load(),
                  sh->adds.load(), sh->dels.load(), sh->touches.load(), sh->fillers.load(),
                  sh->timeouts.load(), sh->errors.load(), kills, crash_deaths, armed, rec,
                  st1.evictions - st0.evictions, st1.expirations - st0.expirations,
                  sh->checks.load(), sh->check_timeouts.load(), sh->damaged.load(),
                  ns_to_ms(sh->check_max_ns.load()), odd, secs);
    *summary += b;
    final_check(c, summary);
    refill_check(c, summary);
    *summary += "] ";
    shmc_close(c);
}

// Every strategy updates its own metadata on a hit, which is what an optimistic read must not
// trip over: each gets an equal share of the time; half also run under an entry limit.
int run_hot_key_race(const Args &a, uint64_t seed) {
    const double seconds = a.seconds > 0 ? a.seconds : 24;
    std::string summary;
    const uint32_t n = SHMC_STRATEGY_WTINYLFU - SHMC_STRATEGY_LRU + 1;
    for (uint32_t s = SHMC_STRATEGY_LRU; s < SHMC_STRATEGY_WTINYLFU; ++s)
        hot_key_race_on(s, s % 2 ? 0 : 400, seconds / n, seed + s, &summary);
    // W-TinyLFU both ways, as in run_crash_points.
    hot_key_race_on(SHMC_STRATEGY_WTINYLFU, 0, seconds / n / 2, seed + 7, &summary);
    hot_key_race_on(SHMC_STRATEGY_WTINYLFU, 400, seconds / n / 2, seed + 8, &summary);
    return finish("crash/hot-key-race", seed, summary);
}

}  // namespace

int main(int argc, char **argv) {
    Args a;
    std::string which;
    for (int i = 1; i < argc; ++i) {
        const char *s = argv[i];
        if (!std::strncmp(s, "iters=", 6))
            a.iters = std::atoi(s + 6);
        else if (!std::strncmp(s, "kills=", 6))
            a.kills = std::atoi(s + 6);
        else if (!std::strncmp(s, "seconds=", 8))
            a.seconds = std::atof(s + 8);
        else
            which = s;
    }
    uint64_t seed = pick_seed();
    std::printf("crash_test %s seed=%" PRIu64 " (rerun with SHMC_TEST_SEED=%" PRIu64 ")\n",
                which.empty() ? "all" : which.c_str(), seed, seed);
    std::fflush(stdout);
    int rc = 0;
    bool known = false;
    // g_failures restarts per case so that each summary line speaks for its own case only.
    if (which.empty() || which == "lock-holder")
        known = true, g_failures = 0, rc |= run_lock_holder(a, seed);
    if (which.empty() || which == "rebuild-kill")
        known = true, g_failures = 0, rc |= run_rebuild_kill(a, seed);
    if (which.empty() || which == "init-kill")
        known = true, g_failures = 0, rc |= run_init_kill(a, seed);
    if (which.empty() || which == "crash-points")
        known = true, g_failures = 0, rc |= run_crash_points(a, seed);
    if (which.empty() || which == "random-kill")
        known = true, g_failures = 0, rc |= run_random_kill(a, seed);
    if (which.empty() || which == "sigstop")
        known = true, g_failures = 0, rc |= run_sigstop(a, seed);
    if (which.empty() || which == "lease-kill")
        known = true, g_failures = 0, rc |= run_lease_kill(a, seed);
    if (which.empty() || which == "hot-key-race")
        known = true, g_failures = 0, rc |= run_hot_key_race(a, seed);
    if (!known) {
        std::fprintf(stderr, "unknown case %s\n", which.c_str());
        return 2;
    }
    return rc;
}
