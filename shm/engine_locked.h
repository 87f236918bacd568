// engine_locked.h - what engine.cpp and flight.cpp share: Engine::locked(), the wrapper in
// which every stripe operation runs, and where the recovery protocol lives (engine.h).
// Private to the engine's implementation files.
#ifndef SHMCACHE_SHM_ENGINE_LOCKED_H
#define SHMCACHE_SHM_ENGINE_LOCKED_H

#include <new>

#include "shm/clock.h"
#include "shm/engine.h"
#include "shm/errors.h"
#include "shm/rebuild.h"
#include "shm/stripe_lock.h"

namespace shmcache::shm {

// Absolute monotonic expiry for a TTL (0: never), saturating instead of wrapping.
inline uint64_t expiry_from_ttl(uint64_t ttl_ms) {
    if (!ttl_ms) return 0;
    const uint64_t now = monotonic_ms();
    return ttl_ms > UINT64_MAX - now ? UINT64_MAX : now + ttl_ms;
}

// Set by whatever rebuilt a stripe of an entry-limited segment in this thread (a rebuild may
// leave the host-wide count above the live entries): locked() recounts once it holds no lock.
// Initial-exec, like errors.h's flag: locked() reads it on every call, and the default model
// costs a __tls_get_addr call per read (13 instructions of a hot set's ~950, callgrind).
__attribute__((tls_model("initial-exec"))) inline thread_local bool t_recount_due = false;

inline RebuildResult repair(const StripeRef& s) {
    mark_dirty(s);
    if (s.max_entries) t_recount_due = true;
    return rebuild_stripe(s);
}

template <class Fn>
int Engine::locked(uint32_t stripe, Fn&& fn) {
    note_fork();
    const StripeRef& s = stripes_[stripe];
    StripeCtl* c = s.ctl;
    bool recovered = false;
    switch (stripe_lock(&c->mutex, lock_timeout_ms_)) {
        case LockResult::kAcquired: break;
        case LockResult::kOwnerDied:
            recovered = true;
            bump(c->stats.lock_recoveries);
            break;
        case LockResult::kTimeout:
            c->stats.lock_timeouts.fetch_add(1, std::memory_order_relaxed);
            return fail(
                SHMC_E_LOCK_TIMEOUT,
                "stripe %u of '%s' stayed locked for %u ms (holder stopped?); treat as a miss",
                stripe, seg_->name().c_str(), lock_timeout_ms_);
        case LockResult::kUnrecoverable:
            return fail(SHMC_E_CORRUPT, "stripe %u lock of '%s' is unusable; destroy the segment",
                        stripe, seg_->name().c_str());
    }
    int rc;
    try {
        // A dead holder, or one that failed mid-update, left the mark: rebuild before use.
        if (c->dirty.load(std::memory_order_acquire)) {
            if (s.max_entries) t_recount_due = true;
            mark_dirty(s);  // seq odd too: the holder may have died before it made it so
            rebuild_stripe(s);
        }
        try {
            rc = fn(s);
        } catch (const StripeCorrupt& e) {
            repair(s);
            try {
                rc = fn(s);
            } catch (const StripeCorrupt& e2) {
                repair(s);
                rc = fail(SHMC_E_CORRUPT, "stripe %u of '%s' is damaged (%s); rebuilt it", stripe,
                          seg_->name().c_str(), e2.what());
            }
        }
        // Clears the mark only if set: most operations (every hit) never set it, and an
        // unconditional store would write the stripe's lock line once more per call.
        end_write(c);
    } catch (const std::bad_alloc&) {
        rc = fail(SHMC_E_NOMEM, "out of process memory");  // the stripe stays marked dirty
    }
    if (recovered) stripe_lock_mark_consistent(&c->mutex);
    stripe_unlock(&c->mutex);
    // A thread-local flag, not the shared one: reading the segment's flag on every call would
    // cost a shared cache line on the common path.
    if (t_recount_due) {
        t_recount_due = false;
        recount_entries(false);
    }
    return rc;
}

}  // namespace shmcache::shm

#endif
