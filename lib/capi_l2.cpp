// capi_l2.cpp - the C ABI of the Redis tier (the shmc_l2_* and shmc_t* calls of shmcache.h).
//
// A tier call whose mask is L1 only works on any handle (it is the plain L1 call); one that asks
// for L2 needs shmc_l2_attach first.
#include <shmcache/shmcache.h>

#include <cstring>

#include "handle.h"

namespace shm = shmcache::shm;
using shmcache::capi::guarded;
using shmcache::capi::no_handle;

namespace {

int no_l2() {
    return shm::fail(SHMC_E_L2_NOT_CONFIGURED,
                     "this handle has no Redis L2 (call shmc_l2_attach first)");
}

// Runs with_l2(tiers) if the handle has an L2, l1_only() if the mask needs none.
template <class WithL2, class L1Only>
int dispatch(shmc_cache* c, uint32_t tiers, WithL2&& with_l2, L1Only&& l1_only) {
    if (!c) return no_handle();
    if (c->l2) {
        c->l2->ensure_process();
        return with_l2(*c->l2);
    }
    if (tiers == SHMC_TIER_L1) return l1_only(*c->engine);
    if (tiers & ~uint32_t(SHMC_TIER_BOTH) || !tiers)
        return shm::fail(SHMC_E_INVAL,
                         "tiers must be SHMC_TIER_L1, SHMC_TIER_L2 or SHMC_TIER_BOTH");
    return no_l2();
}

}  // namespace

extern "C" {

SHMC_API void shmc_l2_options_default(shmc_l2_options* o) {
    if (!o) return;
    std::memset(o, 0, sizeof *o);
    o->connect_timeout_ms = 250;
    o->command_timeout_ms = 100;
    o->max_connections = 16;
    o->breaker_threshold = 3;
    o->breaker_cooldown_ms = 1000;
    o->outage_write_ttl_ms = 1000;
    o->link_lease_ms = 1000;
}

SHMC_API int shmc_l2_attach(shmc_cache* c, const shmc_l2_options* opts) {
    return guarded([&] {
        if (!c) return no_handle();
        if (!opts) return shm::fail(SHMC_E_INVAL, "L2 options are NULL");
        if (c->l2) return shm::fail(SHMC_E_EXISTS, "this handle already has a Redis L2");
        return shmcache::l2::Tiers::create(*c->engine, *opts, &c->l2);
    });
}

SHMC_API int shmc_tget(shmc_cache* c, const void* key, size_t klen, void* buf, size_t cap,
                       size_t* value_len, uint32_t* flags, int64_t* ttl_left_ms, uint32_t tiers,
                       uint64_t fill_ttl_ms, uint32_t* served_by) {
    return guarded([&] {
        return dispatch(
            c, tiers & ~SHMC_TGET_AFTER_L1_MISS,
            [&](shmcache::l2::Tiers& t) {
                return t.get(key, klen, buf, cap, value_len, flags, ttl_left_ms, tiers,
                             fill_ttl_ms, served_by);
            },
            [&](shm::Engine& e) {
                if (!value_len) return shm::fail(SHMC_E_INVAL, "value_len is NULL");
                const int rc = e.get(key, klen, buf, cap, value_len, flags, ttl_left_ms);
                if (rc == 0 && served_by) *served_by = SHMC_TIER_L1;
                return rc;
            });
    });
}

SHMC_API int shmc_read_into(shmc_cache* c, const void* key, size_t klen, shmc_read* r) {
    return guarded([&] {
        if (!r) return shm::fail(SHMC_E_INVAL, "r is NULL");
        const uint32_t tiers = r->tiers ? r->tiers : uint32_t(SHMC_TIER_L1);
        if (tiers == SHMC_TIER_L1) {  // the common read: the engine's, as shmc_get
            if (!c) return no_handle();
            const int rc = c->engine->get(key, klen, r->buf, r->cap, &r->value_len, &r->flags,
                                          &r->ttl_left_ms);
            if (rc == 0) r->served_by = SHMC_TIER_L1;
            return rc;
        }
        return dispatch(
            c, tiers & ~SHMC_TGET_AFTER_L1_MISS,
            [&](shmcache::l2::Tiers& t) {
                return t.get(key, klen, r->buf, r->cap, &r->value_len, &r->flags,
                             &r->ttl_left_ms, tiers, r->fill_ttl_ms, &r->served_by);
            },
            [&](shm::Engine& e) {
                const int rc = e.get(key, klen, r->buf, r->cap, &r->value_len, &r->flags,
                                     &r->ttl_left_ms);
                if (rc == 0) r->served_by = SHMC_TIER_L1;
                return rc;
            });
    });
}

SHMC_API int shmc_tset(shmc_cache* c, const void* key, size_t klen, const void* value,
                       size_t vlen, uint32_t flags, uint64_t l1_ttl_ms, uint64_t l2_ttl_ms,
                       uint32_t tiers) {
    return guarded([&] {
        return dispatch(
            c, tiers,
            [&](shmcache::l2::Tiers& t) {
                return t.set(key, klen, value, vlen, flags, l1_ttl_ms, l2_ttl_ms, tiers);
            },
            [&](shm::Engine& e) {
                return e.store(key, klen, value, vlen, flags, l1_ttl_ms, shm::StoreMode::kSet);
            });
    });
}

SHMC_API int shmc_tdel(shmc_cache* c, const void* key, size_t klen, uint32_t tiers) {
    return guarded([&] {
        return dispatch(
            c, tiers, [&](shmcache::l2::Tiers& t) { return t.del(key, klen, tiers); },
            [&](shm::Engine& e) { return e.del(key, klen); });
    });
}

SHMC_API int shmc_tpurge(shmc_cache* c, const void* pat, size_t plen, uint32_t tiers,
                         uint64_t* removed_l1, uint64_t* removed_l2) {
    return guarded([&] {
        if (removed_l2) *removed_l2 = 0;
        return dispatch(
            c, tiers,
            [&](shmcache::l2::Tiers& t) {
                return t.purge(pat, plen, tiers, removed_l1, removed_l2);
            },
            [&](shm::Engine& e) { return e.purge(pat, plen, removed_l1); });
    });
}

SHMC_API int shmc_l2_ping(shmc_cache* c) {
    return guarded([&] {
        if (!c) return no_handle();
        if (!c->l2) return shm::fail(SHMC_E_L2_NOT_CONFIGURED, "this handle has no L2 attached");
        c->l2->ensure_process();
        return c->l2->ping();
    });
}

SHMC_API int shmc_l2_get_stats(shmc_cache* c, shmc_l2_stats* out) {
    return guarded([&] {
        if (!c) return no_handle();
        if (!out) return shm::fail(SHMC_E_INVAL, "out is NULL");
        if (!c->l2) {  // the host's figures still live in the segment
            shmcache::l2::shared_stats(c->engine->l2_shared(), c->engine->coherence(), out);
            return 0;
        }
        c->l2->ensure_process();
        c->l2->stats(out);
        return 0;
    });
}

}  // extern "C"
