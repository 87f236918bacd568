// flight.h - the engine's side of single-flight fetches: the parameters and results of
// Engine::fetch and Engine::fetch_complete (implemented in flight.cpp).
//
// The engine knows L1 only: whether a key is fresh, stale or absent, its lease slot, and how to
// wait for another caller's value. The Redis tier (lib/l2/flight_l2.cpp) builds on these calls;
// the C ABI (lib/capi_flight.cpp) validates the options. docs/stampede.md has the design.
#ifndef SHMCACHE_SHM_FLIGHT_H
#define SHMCACHE_SHM_FLIGHT_H

#include <cstdint>

#include "shm/table.h"

namespace shmcache::shm {

// Waiters poll: the first poll after kFirstPollUs, each later one twice as late, up to
// kMaxPollUs. The cap is the bound on how late a waiter sees a value or a dead owner; the short
// start serves the common case (a computation of a few ms) without a long first sleep.
constexpr uint32_t kFirstPollUs = 50;
constexpr uint32_t kMaxPollUs = 2000;

struct FetchParams {
    uint32_t lease_ms = 5000;  // 1..kMaxLeaseMs
    uint32_t wait_ms = 10000;  // resolved: never 0
    double beta = 0;           // XFetch; 0: off
    // SHMC_FETCH_NO_WAIT: a look that would wait for another caller settles as BUSY instead.
    bool no_wait = false;
    // With no_wait, also BUSY (nothing taken) where the caller would go on to Redis: an absent
    // key when the Redis tier is asked (defer_absent), a refresh lease that would need the
    // Redis lock (defer_refresh).
    bool defer_absent = false;
    bool defer_refresh = false;
};

struct FetchResult {
    uint32_t outcome = 0;  // SHMC_FETCH_*
    uint32_t flags = 0;
    uint64_t value_len = 0;
    uint64_t lease = 0;
    int64_t ttl_left_ms = 0;
    uint32_t waited_ms = 0;
};

// How Engine::fetch_complete stores a value.
struct FetchStore {
    uint32_t flags = 0;
    uint64_t ttl_ms = 0;    // fresh for this long; 0: never expires
    uint32_t stale_ms = 0;  // then stale (servable by fetch only) for this long
    uint32_t compute_ms = 0;
    // Non-null: a copy of an L2 hit. Stored as an add, and only if nothing in the guard moved
    // (as Engine::fill); the entry belongs to the guard's coherence epoch.
    const FillGuard* guard = nullptr;
    // An L2 copy (layout.h, L2Coherence) of the guard's epoch, or of the current one without a
    // guard. False: an entry like any other, whatever its flags.
    bool l2_copy = false;
    // With a guard: replace a fresh entry too (this caller's own value, written to Redis just
    // before), instead of storing as an add.
    bool overwrite = false;
};

// XFetch's decision (Vattani, Chierichetti, Lowenstein, VLDB 2015): refresh now if
// now - delta * beta * ln(u) >= expiry, u uniform in (0, 1], delta the compute time. The chance
// grows as expiry nears, the faster the longer the computation, and is negligible while the
// remaining TTL is many compute times long. u is passed in so that tests can pin it.
bool xfetch_fires(uint64_t now_ms, uint64_t fresh_until_ms, uint32_t compute_ms, double beta,
                  double u);

// A uniform draw in (0, 1] for xfetch_fires, from a per-thread generator. Its smallest value is
// 2^-53, so -ln(u) never exceeds 53 ln 2.
double xfetch_uniform();

// False when xfetch_fires cannot fire whatever u is drawn: the remaining TTL is more than
// 53 ln 2 (36.8) compute times x beta away. Most hits on a hot key are, and skip the draw.
inline bool xfetch_possible(uint64_t now_ms, uint64_t fresh_until_ms, uint32_t compute_ms,
                            double beta) {
    if (beta <= 0 || compute_ms == 0 || fresh_until_ms == 0) return false;
    return fresh_until_ms <= now_ms || double(fresh_until_ms - now_ms) <= 36.8 * compute_ms * beta;
}

}  // namespace shmcache::shm

#endif
