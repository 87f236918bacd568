// test_hooks.h - crash points for the crash tests; compiled in only with SHMC_TEST_HOOKS.
//
// The crash tests link shmcache_testing_dep (libshmcache built with SHMC_TEST_HOOKS). Inside
// every section where a stripe is marked dirty the engine passes "crash points"; arming a
// countdown makes the process SIGKILL itself at exactly the n-th point it reaches, so a test can
// kill a worker in the middle of a set, delete, purge or eviction deterministically, hundreds of
// times, instead of hoping a random external kill lands there.
#ifndef SHMCACHE_SHM_TEST_HOOKS_H
#define SHMCACHE_SHM_TEST_HOOKS_H

#include <shmcache/shmcache.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// SIGKILL this process at the n-th crash point reached from now (0 disarms).
void shmc_test_crash_after(uint64_t n);

// How many crash points this process has passed since it started (to size countdowns).
uint64_t shmc_test_crash_points_passed(void);

// Take the stripe lock that guards key and never return (sleeps until killed). If dirty is
// nonzero, first mark the stripe dirty and overwrite the entry header of key (if present) with
// garbage, as a writer killed half-way would leave it. For "killed while holding a lock" tests.
void shmc_test_hold_lock_forever(shmc_cache *cache, const void *key, size_t key_len, int dirty);

#ifdef __cplusplus
}
#endif

#endif
