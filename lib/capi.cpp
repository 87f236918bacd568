// capi.cpp - the C ABI (shmcache.h) over the engine.
//
// Each function validates its pointers, calls the engine, and converts anything thrown into an
// error code: no C++ exception crosses this boundary. A handle is a thin owner of the engine.
#include <shmcache/shmcache.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "shm/engine.h"
#include "envelope.h"
#include "shm/errors.h"
#include "shm/glob.h"
#include "handle.h"
#include "shm/layout.h"

#ifdef SHMC_TEST_HOOKS
#include "shm/test_hooks.h"
namespace shmcache::shm {
extern std::atomic<uint64_t> g_crash_countdown;
extern std::atomic<uint64_t> g_crash_points_passed;
}  // namespace shmcache::shm
#endif

using shmcache::shm::Engine;
using shmcache::shm::StoreMode;
namespace shm = shmcache::shm;
using shmcache::capi::guarded;
using shmcache::capi::no_handle;


extern "C" {

SHMC_API const char* shmc_version(void) { return shm::library_version(); }

SHMC_API const char* shmc_strerror(int code) {
    switch (code) {
        case SHMC_OK: return "success";
        case SHMC_E_NOTFOUND: return "key not found";
        case SHMC_E_EXISTS: return "key already exists";
        case SHMC_E_INVAL: return "invalid argument";
        case SHMC_E_KEY_TOO_LONG: return "key too long";
        case SHMC_E_VALUE_TOO_LARGE: return "value too large";
        case SHMC_E_BUFFER_TOO_SMALL: return "buffer too small for the value";
        case SHMC_E_LOCK_TIMEOUT: return "stripe lock wait timed out";
        case SHMC_E_NOSPC: return "no space in /dev/shm for the segment";
        case SHMC_E_VERSION: return "segment made by an incompatible version";
        case SHMC_E_CORRUPT: return "segment damaged beyond repair";
        case SHMC_E_BAD_PATTERN: return "malformed glob pattern";
        case SHMC_E_NOT_NUMBER: return "value is not a decimal integer";
        case SHMC_E_RANGE: return "integer overflow";
        case SHMC_E_PERM: return "permission denied";
        case SHMC_E_NOMEM: return "out of memory";
        case SHMC_E_NO_SEGMENT: return "segment does not exist";
        case SHMC_E_BUSY: return "segment in use by other processes";
        case SHMC_E_INIT_TIMEOUT: return "segment initialization timed out";
        case SHMC_E_INTERNAL: return "internal error";
        case SHMC_E_NO_ROOM: return "no room for the value even after eviction";
        case SHMC_E_BAD_ENVELOPE: return "not a valid shmcache value envelope";
        case SHMC_E_L2_UNAVAILABLE: return "Redis L2 unavailable";
        case SHMC_E_L2_NOT_CONFIGURED: return "no Redis L2 configured on this handle";
        case SHMC_E_L2_REPLY: return "Redis L2 replied with an error";
        default: break;
    }
    if (code > 0) return strerror(code);
    return "unknown error code";
}

SHMC_API const char* shmc_errmsg(void) { return shm::last_errmsg(); }

SHMC_API void shmc_options_default(shmc_options* o) {
    if (!o) return;
    std::memset(o, 0, sizeof *o);
    o->size_bytes = 64ull << 20;
    o->n_stripes = 64;
    o->strategy = SHMC_STRATEGY_DEFAULT;
    o->lock_timeout_ms = 50;
    o->mode = 0600;
}

SHMC_API int shmc_open(const char* name, const shmc_options* opts, shmc_cache** out) {
    return guarded([&] {
        if (!out) return shm::fail(SHMC_E_INVAL, "out is NULL");
        *out = nullptr;
        auto c = std::make_unique<shmc_cache>();
        if (int rc = Engine::open(name, opts, &c->engine)) return rc;
        *out = c.release();
        return 0;
    });
}

SHMC_API void shmc_close(shmc_cache* c) { delete c; }

SHMC_API int shmc_unlink(const char* name, int force) {
    return guarded([&] {
        std::string resolved;
        if (int rc = shm::resolve_name(name, &resolved)) return rc;
        return shm::Segment::unlink(resolved, force != 0);
    });
}

SHMC_API int shmc_get(shmc_cache* c, const void* key, size_t klen, void* buf, size_t cap,
                      size_t* value_len, uint32_t* flags, int64_t* ttl_left_ms) {
    return guarded([&] {
        return c ? c->engine->get(key, klen, buf, cap, value_len, flags, ttl_left_ms) : no_handle();
    });
}

SHMC_API int shmc_set(shmc_cache* c, const void* key, size_t klen, const void* value, size_t vlen,
                      uint32_t flags, uint64_t ttl_ms) {
    return guarded([&] {
        return c ? c->engine->store(key, klen, value, vlen, flags, ttl_ms, StoreMode::kSet)
                 : no_handle();
    });
}

SHMC_API int shmc_add(shmc_cache* c, const void* key, size_t klen, const void* value, size_t vlen,
                      uint32_t flags, uint64_t ttl_ms) {
    return guarded([&] {
        return c ? c->engine->store(key, klen, value, vlen, flags, ttl_ms, StoreMode::kAdd)
                 : no_handle();
    });
}

SHMC_API int shmc_del(shmc_cache* c, const void* key, size_t klen) {
    return guarded([&] { return c ? c->engine->del(key, klen) : no_handle(); });
}

SHMC_API int shmc_touch(shmc_cache* c, const void* key, size_t klen, uint64_t ttl_ms) {
    return guarded([&] { return c ? c->engine->touch(key, klen, ttl_ms) : no_handle(); });
}

SHMC_API int shmc_incr(shmc_cache* c, const void* key, size_t klen, int64_t delta,
                       int64_t* result) {
    return guarded([&] { return c ? c->engine->incr(key, klen, delta, result) : no_handle(); });
}

SHMC_API int shmc_purge(shmc_cache* c, const void* pat, size_t plen, uint64_t* removed) {
    return guarded([&] { return c ? c->engine->purge(pat, plen, removed) : no_handle(); });
}

SHMC_API int shmc_scan(shmc_cache* c, const void* pat, size_t plen, shmc_scan_fn fn, void* ctx) {
    return guarded([&] { return c ? c->engine->scan(pat, plen, fn, ctx) : no_handle(); });
}

SHMC_API int shmc_clear(shmc_cache* c, uint64_t* removed) {
    return guarded([&] { return c ? c->engine->clear(removed) : no_handle(); });
}

SHMC_API int shmc_get_stats(shmc_cache* c, shmc_stats* out) {
    return guarded([&] { return c ? c->engine->stats(out) : no_handle(); });
}

SHMC_API int shmc_stripe_stats(shmc_cache* c, uint32_t stripe, shmc_stats* out) {
    return guarded([&] { return c ? c->engine->stripe_stats(stripe, out) : no_handle(); });
}

SHMC_API int shmc_get_info(shmc_cache* c, shmc_info* out) {
    return guarded([&] { return c ? c->engine->info(out) : no_handle(); });
}

SHMC_API int shmc_check(shmc_cache* c, shmc_check_report* out) {
    return guarded([&] { return c ? c->engine->check(out) : no_handle(); });
}

SHMC_API int shmc_glob_match(const void* pat, size_t plen, const void* str, size_t slen) {
    return guarded([&] {
        if ((!pat && plen) || (!str && slen)) return shm::fail(SHMC_E_INVAL, "NULL argument");
        const char* p = static_cast<const char*>(pat);
        if (!shm::glob_valid(p, plen)) return shm::fail(SHMC_E_BAD_PATTERN, "bad glob pattern");
        return shm::glob_match(p, plen, static_cast<const char*>(str), slen) ? 1 : 0;
    });
}

SHMC_API size_t shmc_encode_bound(size_t len) { return shmcache::envelope_bound(len); }

SHMC_API int shmc_encode(uint32_t serializer, const void* payload, size_t len,
                         size_t compress_threshold, int level, void* out, size_t cap,
                         size_t* out_len) {
    return guarded([&] {
        return shmcache::envelope_encode(serializer, payload, len, compress_threshold, level, out,
                                         cap, out_len);
    });
}

SHMC_API int shmc_decode(const void* env, size_t len, uint32_t* serializer, void* out, size_t cap,
                         size_t* out_len) {
    return guarded(
        [&] { return shmcache::envelope_decode(env, len, serializer, out, cap, out_len); });
}

#ifdef SHMC_TEST_HOOKS
void shmc_test_crash_after(uint64_t n) { shm::g_crash_countdown.store(n); }
uint64_t shmc_test_crash_points_passed(void) { return shm::g_crash_points_passed.load(); }
void shmc_test_hold_lock_forever(shmc_cache* c, const void* key, size_t klen, int dirty) {
    c->engine->hold_lock_forever(key, klen, dirty != 0);
}
#endif

}  // extern "C"
