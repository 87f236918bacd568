// capi_flight.cpp - the C ABI of single flight (shmc_fetch and friends in shmcache.h).
//
// Validates and resolves the options once, then hands the call to the engine (L1 only) or to
// the Redis tier (SHMC_TIER_BOTH, or a lease that holds a Redis lock). docs/stampede.md.
#include <shmcache/shmcache.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "handle.h"

namespace shm = shmcache::shm;
namespace l2 = shmcache::l2;
using shmcache::capi::guarded;
using shmcache::capi::no_handle;

namespace {

constexpr uint32_t kDefaultLeaseMs = 5000;

// Copies opts (NULL: defaults) into *o and checks it; fills the engine's parameters.
int resolve(const shmc_fetch_options* opts, shmc_fetch_options* o, shm::FetchParams* p) {
    if (opts)
        *o = *opts;
    else
        shmc_fetch_options_default(o);
    if (o->tiers != SHMC_TIER_L1 && o->tiers != SHMC_TIER_BOTH)
        return shm::fail(SHMC_E_INVAL,
                         "fetch options: tiers must be SHMC_TIER_L1 or "
                         "SHMC_TIER_BOTH (leases live in L1)");
    if (o->flags & ~uint32_t(SHMC_FETCH_L2_LOCK | SHMC_FETCH_NO_WAIT))
        return shm::fail(SHMC_E_INVAL, "fetch options: unknown flags 0x%x", o->flags);
    if ((o->flags & SHMC_FETCH_L2_LOCK) && o->tiers != SHMC_TIER_BOTH)
        return shm::fail(SHMC_E_INVAL, "fetch options: SHMC_FETCH_L2_LOCK needs SHMC_TIER_BOTH");
    if (o->lease_ms == 0 || o->lease_ms > shm::kMaxLeaseMs)
        return shm::fail(SHMC_E_INVAL, "fetch options: lease_ms must be 1 to %u", shm::kMaxLeaseMs);
    if (o->stale_ttl_ms > UINT32_MAX)
        return shm::fail(SHMC_E_INVAL, "fetch options: stale_ttl_ms must be below 2^32 ms");
    if (!std::isfinite(o->xfetch_beta) || o->xfetch_beta < 0)
        return shm::fail(SHMC_E_INVAL, "fetch options: xfetch_beta must be a finite number >= 0");
    p->lease_ms = o->lease_ms;
    // Twice the lease by default: a waiter outlasts one dead or hung owner (taken over at the
    // latest at lease_ms) plus its successor's computation, instead of computing alongside it.
    p->wait_ms =
        o->wait_ms ? o->wait_ms : uint32_t(std::min<uint64_t>(2ull * o->lease_ms, UINT32_MAX));
    p->beta = o->xfetch_beta;
    p->no_wait = (o->flags & SHMC_FETCH_NO_WAIT) != 0;
    p->defer_absent = p->no_wait && (o->tiers & SHMC_TIER_L2);
    p->defer_refresh = p->no_wait && (o->flags & SHMC_FETCH_L2_LOCK);
    return 0;
}

int no_l2() {
    return shm::fail(SHMC_E_L2_NOT_CONFIGURED,
                     "SHMC_TIER_BOTH asked of a handle without a Redis L2 (shmc_l2_attach first)");
}

bool has_value(uint32_t outcome) {
    return outcome >= SHMC_FETCH_HIT && outcome <= SHMC_FETCH_EARLY_REFRESH;
}

}  // namespace

extern "C" {

SHMC_API void shmc_fetch_options_default(shmc_fetch_options* o) {
    if (!o) return;
    std::memset(o, 0, sizeof *o);
    o->tiers = SHMC_TIER_L1;
    o->lease_ms = kDefaultLeaseMs;
}

SHMC_API int shmc_fetch(shmc_cache* c, const void* key, size_t klen, void* buf, size_t cap,
                        const shmc_fetch_options* opts, shmc_fetch_result* out) {
    return guarded([&] {
        if (!c) return no_handle();
        if (!out) return shm::fail(SHMC_E_INVAL, "out is NULL");
        std::memset(out, 0, sizeof *out);
        shmc_fetch_options o;
        shm::FetchParams p;
        if (int rc = resolve(opts, &o, &p)) return rc;
        shm::FetchResult r;
        uint32_t served_by = 0;
        int rc;
        if (o.tiers & SHMC_TIER_L2) {
            if (!c->l2) return no_l2();
            c->l2->ensure_process();
            rc = c->l2->fetch(key, klen, buf, cap, o, p, &r, &served_by);
        } else {
            rc = c->engine->fetch(key, klen, buf, cap, p, &r);
            if (rc == 0 && has_value(r.outcome)) served_by = SHMC_TIER_L1;
        }
        if (rc != 0 && rc != SHMC_E_BUFFER_TOO_SMALL) return rc;
        out->value_len = r.value_len;
        if (rc) return rc;
        out->outcome = r.outcome;
        out->flags = r.flags;
        out->lease = r.lease;
        out->ttl_left_ms = r.ttl_left_ms;
        out->served_by = served_by;
        out->waited_ms = r.waited_ms;
        return 0;
    });
}

SHMC_API int shmc_fetch_complete(shmc_cache* c, const void* key, size_t klen, const void* value,
                                 size_t vlen, uint32_t flags, uint32_t compute_ms,
                                 const shmc_fetch_options* opts, uint64_t lease) {
    return guarded([&] {
        if (!c) return no_handle();
        shmc_fetch_options o;
        shm::FetchParams p;
        if (int rc = resolve(opts, &o, &p)) {
            // The value cannot be stored, but the lease must still end: waiters wait for it.
            c->engine->lease_release(key, klen, lease, true);
            return rc;
        }
        if ((o.tiers & SHMC_TIER_L2) && !c->l2) {
            c->engine->lease_release(key, klen, lease, true);
            return no_l2();
        }
        if (c->l2 && ((o.tiers & SHMC_TIER_L2) || (lease & l2::kLeaseL2Lock))) {
            c->l2->ensure_process();
            return c->l2->fetch_complete(key, klen, value, vlen, flags, compute_ms, o, lease);
        }
        shm::FetchStore st;
        st.flags = flags;
        st.ttl_ms = o.ttl_ms;
        st.stale_ms = uint32_t(o.stale_ttl_ms);
        st.compute_ms = compute_ms;
        return c->engine->fetch_complete(key, klen, value, vlen, st, lease);
    });
}

SHMC_API int shmc_fetch_abandon(shmc_cache* c, const void* key, size_t klen, uint64_t lease) {
    return guarded([&] {
        if (!c) return no_handle();
        if (c->l2 && (lease & l2::kLeaseL2Lock)) {
            c->l2->ensure_process();
            return c->l2->fetch_abandon(key, klen, lease);
        }
        return c->engine->lease_release(key, klen, lease, true);
    });
}

SHMC_API int shmc_flight_get_stats(shmc_cache* c, shmc_flight_stats* out) {
    return guarded([&] { return c ? c->engine->flight_stats(out) : no_handle(); });
}

}  // extern "C"
