// handle.h - what a shmc_cache handle owns, and the wrapper every C entry point runs in.
// Internal to lib/: shared by capi.cpp (L1 calls) and capi_l2.cpp (tier calls).
#ifndef SHMCACHE_LIB_HANDLE_H
#define SHMCACHE_LIB_HANDLE_H

#include <shmcache/shmcache.h>

#include <memory>
#include <new>

#include "shm/engine.h"
#include "shm/errors.h"
#include "l2/tiers.h"

struct shmc_cache {
    std::unique_ptr<shmcache::shm::Engine> engine;
    std::unique_ptr<shmcache::l2::Tiers> l2;  // declared after engine: destroyed before it
};

namespace shmcache::capi {

// Runs body with the thread's message cleared; a failure without a specific message gets the
// generic one, so shmc_errmsg() always describes the last failure.
template <class Fn>
int guarded(Fn&& body) noexcept {
    shm::clear_errmsg();
    int rc;
    try {
        rc = body();
    } catch (const std::bad_alloc&) {
        rc = shm::fail(SHMC_E_NOMEM, "out of process memory");
    } catch (const std::exception& e) {
        rc = shm::fail(SHMC_E_INTERNAL, "internal error: %s", e.what());
    } catch (...) {
        rc = shm::fail(SHMC_E_INTERNAL, "internal error");
    }
    if (rc && !shm::errmsg_set()) shm::fail(rc, "%s", shmc_strerror(rc));
    return rc;
}

inline int no_handle() { return shm::fail(SHMC_E_INVAL, "cache handle is NULL"); }

}  // namespace shmcache::capi

#endif
