// flight.cpp - single flight in L1: the Engine::fetch family (flight.h, docs/stampede.md).
//
// A fetch is a series of locked looks at one key. Each look reads the key's entry (fresh, stale
// or absent) and its lease slot in the same critical section, and decides:
//   fresh          -> HIT; with XFetch firing and no lease on the key, EARLY_REFRESH (lease given)
//   stale          -> the lease if free (STALE_REFRESH), else STALE: a stale value never waits
//   absent         -> the lease if free or takeable (COMPUTE); no slot left: COMPUTE_UNLEASED;
//                     held by another caller: not decided, wait and look again
// With SHMC_FETCH_NO_WAIT, whatever would wait (or, with Redis, go on to Redis) is BUSY instead.
// Between looks the waiter sleeps (50 us doubling to 2 ms) with no lock held. When the lease
// slot says so (once per ms per lease), the waiter checks outside the lock whether the owner
// still lives and, if not, claims the lease with the owner's token at its next look. A waiter
// gives up after wait_ms and computes unleased.
//
// Completion stores the value and releases the lease under one lock hold, so a waiter's look
// sees either "lease held, no value" or "value": never "released, no value" unless the owner
// abandoned, in which case the first waiter to look takes the lease.
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <mutex>
#include <thread>

#include "shm/engine.h"
#include "shm/engine_locked.h"
#include "shm/lease.h"

namespace shmcache::shm {

namespace {

uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t monotonic_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

int64_t clamp_ttl(uint64_t until, uint64_t now) {
    const uint64_t left = until > now ? until - now : 0;
    return left > uint64_t(INT64_MAX) ? INT64_MAX : int64_t(left);
}

// What one fetch carries from look to look.
struct Walk {
    uint64_t now = 0;            // the clock of the last look (ms)
    bool first = true;           // the first look counts a hit or a miss in the stripe's stats
    bool waiting = false;        // some look found the lease held by another caller
    bool stale_counted = false;  // stale_served counted (a second look must not count again)
    bool rechecked = false;      // a stale look was repeated once to claim a dead owner's lease
    uint64_t gone_token = 0;     // an owner found gone outside the lock: claim its lease
    bool decided = false;        // the last look settled the outcome
    int32_t owner_pid = 0;       // undecided: the owner to wait for
    uint64_t owner_token = 0;    // and its grant
    bool check_owner = false;    // this waiter is the one to check the owner now
};

}  // namespace

bool xfetch_fires(uint64_t now_ms, uint64_t fresh_until_ms, uint32_t compute_ms, double beta,
                  double u) {
    if (beta <= 0 || compute_ms == 0 || fresh_until_ms == 0) return false;
    if (now_ms >= fresh_until_ms) return true;
    if (u <= 0) u = 0x1p-53;
    const double gap = -double(compute_ms) * beta * std::log(u);
    return gap >= double(fresh_until_ms - now_ms);
}

namespace {

// Bumped in every fork child: a thread's generator reseeds after a fork, or a parent and its
// workers (gunicorn --preload) would draw the same sequence.
std::atomic<uint64_t> g_rng_fork_gen{1};
std::once_flag g_rng_atfork_once;

}  // namespace

double xfetch_uniform() {
    // Per thread, so a hit draws without a clock read or a shared write; seeded from the clock,
    // the pid and the thread's own address.
    thread_local uint64_t state = 0, seeded_gen = 0;
    const uint64_t gen = g_rng_fork_gen.load(std::memory_order_relaxed);
    if (seeded_gen != gen) {
        std::call_once(g_rng_atfork_once, [] {
            pthread_atfork(nullptr, nullptr,
                           [] { g_rng_fork_gen.fetch_add(1, std::memory_order_relaxed); });
        });
        state = splitmix64(monotonic_ns() ^ uint64_t(getpid()) << 32 ^
                           uint64_t(reinterpret_cast<uintptr_t>(&state)));
        seeded_gen = g_rng_fork_gen.load(std::memory_order_relaxed);
    }
    const uint64_t x = splitmix64(state += 0x9E3779B97F4A7C15ull);
    return double((x >> 11) + 1) * 0x1p-53;  // (0, 1]
}

namespace {

// One look. REQUIRES: the stripe lock held (runs inside Engine::locked).
int look_locked(const StripeRef& s, const Key& k, void* buf, size_t cap, const FetchParams& p,
                FlightShared& fl, Walk* w, FetchResult* out) {
    auto count = [&](FlightCounter c) { fl.counters[c].fetch_add(1, std::memory_order_relaxed); };
    auto granted = [&](const AcquireResult& a, uint32_t outcome) {
        out->outcome = outcome;
        out->lease = a.token;
        count(kFlLeasesGranted);
        if (a.took_over) count(kFlTakeovers);
    };
    bool counted = false;  // this look counted a hit or a miss in the stripe's stats
    Freshness found = Freshness::kAbsent;
    auto busy = [&] {  // SHMC_FETCH_NO_WAIT: nothing taken, nothing in buf for the caller
        // Nothing counted either: the call made next, without the flag, counts this lookup.
        if (counted) {
            ProcessCounters& pc = s.lookup_counters();
            (found == Freshness::kAbsent ? pc.misses : pc.hits)
                .fetch_sub(1, std::memory_order_relaxed);
        }
        out->outcome = SHMC_FETCH_BUSY;
        out->value_len = 0;
        out->flags = 0;
        out->ttl_left_ms = 0;
        w->decided = true;
        return 0;
    };
    w->decided = false;
    w->check_owner = false;
    const uint64_t now = w->now = monotonic_ms();
    PeekResult v;
    const int rc = table_peek(s, k, now, buf, cap, w->first, &v);
    counted = w->first && rc == 0;
    found = v.state;
    w->first = false;
    if (v.state != Freshness::kAbsent) {
        w->decided = true;
        out->value_len = v.value_len;
        out->flags = v.flags;
        if (rc) return rc;  // the buffer is too small: nothing taken, the caller calls again
        if (w->waiting) count(kFlStampedesAvoided);
        if (v.state == Freshness::kFresh) {
            out->outcome = SHMC_FETCH_HIT;
            out->ttl_left_ms = v.fresh_until ? clamp_ttl(v.fresh_until, now) : -1;
            if (!w->waiting && xfetch_possible(now, v.fresh_until, v.compute_ms, p.beta) &&
                xfetch_fires(now, v.fresh_until, v.compute_ms, p.beta, xfetch_uniform())) {
                // The refresh would take the Redis lock: BUSY, unless another caller refreshes.
                if (p.defer_refresh) {
                    if (lease_held_locked(s, k.hash, now)) return 0;  // HIT, as without NO_WAIT
                    return busy();
                }
                const AcquireResult a = lease_acquire_locked(s, k.hash, now, p.lease_ms, 0);
                if (a.kind == Acquire::kGranted) {
                    granted(a, SHMC_FETCH_EARLY_REFRESH);
                    count(kFlEarlyRefreshes);
                }
            }
            return 0;
        }
        // Stale: served at once. One caller gets the lease to refresh; nobody waits.
        // A refresh lease would take the Redis lock: BUSY, unless another caller refreshes
        // already (then STALE, as without NO_WAIT).
        if (p.defer_refresh && !lease_held_locked(s, k.hash, now)) return busy();
        out->outcome = SHMC_FETCH_STALE;
        out->ttl_left_ms = 0;
        if (!w->stale_counted) count(kFlStaleServed);
        w->stale_counted = true;
        const AcquireResult a = lease_acquire_locked(s, k.hash, now, p.lease_ms, w->gone_token);
        if (a.kind == Acquire::kGranted) granted(a, SHMC_FETCH_STALE_REFRESH);
        if (a.kind == Acquire::kNoSlot) count(kFlUnleased);
        if (a.kind == Acquire::kHeld) {  // Engine::fetch may check the refresher lives
            w->owner_pid = a.owner_pid;
            w->owner_token = a.token;
            w->check_owner = a.check_owner;
        }
        return 0;
    }
    if (p.defer_absent) return busy();  // the caller would ask Redis next
    const AcquireResult a = lease_acquire_locked(s, k.hash, now, p.lease_ms, w->gone_token);
    w->gone_token = 0;
    switch (a.kind) {
        case Acquire::kGranted:
            granted(a, SHMC_FETCH_COMPUTE);
            w->decided = true;
            break;
        case Acquire::kNoSlot:
            out->outcome = SHMC_FETCH_COMPUTE_UNLEASED;
            count(kFlUnleased);
            w->decided = true;
            break;
        case Acquire::kHeld:
            if (p.no_wait) return busy();
            w->owner_pid = a.owner_pid;
            w->owner_token = a.token;
            w->check_owner = a.check_owner;
            break;
    }
    return 0;
}

}  // namespace

int Engine::fetch(const void* key, size_t klen, void* buf, size_t cap, const FetchParams& p,
                  FetchResult* out) {
    if (int rc = check_key(key, klen)) return rc;
    if (!buf && cap) return fail(SHMC_E_INVAL, "buf is NULL but cap is %zu", cap);
    *out = FetchResult{};
    const Key k = make_key(key, klen);
    const uint32_t stripe = stripe_of(k);
    FlightShared& fl = seg_->header()->flight;
    uint64_t start = 0, give_up = 0;  // set when the first look says wait: a hit reads no clock
    uint32_t sleep_us = kFirstPollUs;
    Walk w;
    for (;;) {
        const int rc = locked(stripe, [&](const StripeRef& s) {
            return look_locked(s, k, buf, cap, p, fl, &w, out);
        });
        if (rc == SHMC_E_LOCK_TIMEOUT) {
            // A stopped process holds the stripe: the cache cannot help this time. Counted in
            // shmc_stats.lock_timeouts; the caller computes and its complete may time out too.
            clear_errmsg();
            *out = FetchResult{};
            out->outcome = SHMC_FETCH_COMPUTE_UNLEASED;
            break;
        }
        if (rc) return rc;
        if (w.decided) {
            // A stale value whose refresher may be dead: if so, look once more to take the
            // lease over, or nobody would refresh until its deadline.
            // Not with defer_refresh: the lease taken over would need the Redis lock at once.
            if (out->outcome == SHMC_FETCH_STALE && w.check_owner && !w.rechecked &&
                !p.defer_refresh && process_gone(w.owner_pid)) {
                w.rechecked = true;
                w.gone_token = w.owner_token;
                continue;
            }
            break;
        }
        if (!w.waiting) {
            w.waiting = true;
            start = w.now;
            give_up = start + p.wait_ms;
            flight_count(kFlWaits);
        }
        if (w.check_owner && process_gone(w.owner_pid)) {
            w.gone_token = w.owner_token;  // claimed at the next look, if still current
            continue;
        }
        const uint64_t now = monotonic_ms();
        if (now >= give_up) {
            flight_count(kFlLeaseTimeouts);
            out->outcome = SHMC_FETCH_COMPUTE_UNLEASED;
            break;
        }
        const uint64_t left_us = (give_up - now) * 1000;
        std::this_thread::sleep_for(
            std::chrono::microseconds(std::min<uint64_t>(sleep_us, left_us)));
        sleep_us = std::min(sleep_us * 2, kMaxPollUs);
    }
    if (w.waiting)
        out->waited_ms = uint32_t(std::min<uint64_t>(monotonic_ms() - start, UINT32_MAX));
    return 0;
}

int Engine::fetch_complete(const void* key, size_t klen, const void* value, size_t vlen,
                           const FetchStore& st, uint64_t lease) {
    if (int rc = check_key(key, klen)) return rc;
    // A value that cannot be stored still ends the lease: the waiters must not wait for it.
    const int refused = check_value(value, vlen);
    const Key k = make_key(key, klen);
    EntryMeta meta;
    meta.flags = st.flags;
    meta.compute_ms = st.compute_ms;
    if (st.ttl_ms) {
        const uint64_t fresh_until = expiry_from_ttl(st.ttl_ms);
        meta.stale_ms = st.stale_ms;
        meta.expires_ms =
            fresh_until > UINT64_MAX - st.stale_ms ? UINT64_MAX : fresh_until + st.stale_ms;
    }
    const SegmentHeader& h = *seg_->header();
    return locked(stripe_of(k), [&](const StripeRef& s) {
        int rc = refused;
        if (!rc && st.guard && !fill_guard_holds(h, *st.guard))
            rc = fail(SHMC_E_EXISTS, "an invalidation arrived while the value was read");
        if (st.l2_copy)
            meta.l2_epoch = epoch8(st.guard ? st.guard->epoch
                                            : h.coherence.epoch.load(std::memory_order_acquire));
        if (!rc)
            rc = table_store(s, k, value, vlen, meta,
                             st.guard && !st.overwrite ? StoreMode::kAdd : StoreMode::kSet,
                             this);
        // A stored value is kept while its waiters may still be looking for it: for the grace
        // from now, not from before a wait for the lock.
        if (!lease) return rc;
        if (rc == 0)
            lease_complete_locked(s, k.hash, lease, monotonic_ms());
        else
            lease_release_locked(s, k.hash, lease);
        return rc;
    });
}

int Engine::lease_release(const void* key, size_t klen, uint64_t lease, bool abandoned) {
    if (int rc = check_key(key, klen)) return rc;
    if (!lease) return 0;
    const Key k = make_key(key, klen);
    bool released = false;
    const int rc = locked(stripe_of(k), [&](const StripeRef& s) {
        released = lease_release_locked(s, k.hash, lease);
        return 0;
    });
    if (released && abandoned) flight_count(kFlAbandoned);
    return rc;
}

int Engine::lease_renew(const void* key, size_t klen, uint64_t lease, uint32_t lease_ms) {
    if (int rc = check_key(key, klen)) return rc;
    const Key k = make_key(key, klen);
    return locked(stripe_of(k), [&](const StripeRef& s) {
        return lease_renew_locked(s, k.hash, lease, monotonic_ms(), lease_ms)
                   ? 0
                   : fail(SHMC_E_NOTFOUND, "the lease was taken over");
    });
}

int Engine::flight_stats(shmc_flight_stats* out) const {
    if (!out) return fail(SHMC_E_INVAL, "out is NULL");
    std::memset(out, 0, sizeof *out);
    const FlightShared& fl = seg_->header()->flight;
    auto c = [&](FlightCounter i) { return fl.counters[i].load(std::memory_order_relaxed); };
    out->leases_granted = c(kFlLeasesGranted);
    out->waits = c(kFlWaits);
    out->stampedes_avoided = c(kFlStampedesAvoided);
    out->lease_timeouts = c(kFlLeaseTimeouts);
    out->takeovers = c(kFlTakeovers);
    out->stale_served = c(kFlStaleServed);
    out->early_refreshes = c(kFlEarlyRefreshes);
    out->unleased = c(kFlUnleased);
    out->abandoned = c(kFlAbandoned);
    out->l2_locks = c(kFlL2Locks);
    out->l2_lock_busy = c(kFlL2LockBusy);
    out->l2_served = c(kFlL2Served);
    LeaseCensus census;
    const uint64_t now = monotonic_ms();
    for (const StripeRef& s : stripes_) lease_census(s, now, &census);
    out->leases_held = census.held;
    out->leases_reclaimable = census.reclaimable;
    out->lease_slots = uint64_t(g_.n_stripes) * kLeaseSlots;
    return 0;
}

}  // namespace shmcache::shm
