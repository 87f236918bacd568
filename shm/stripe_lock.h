// stripe_lock.h - the robust, process-shared mutex that guards one stripe.
//
// glibc robust mutexes are the one lock that survives its holder being SIGKILLed: the kernel
// walks the dead thread's robust list and the next locker gets EOWNERDEAD (FIELD-NOTES). Every
// wait has a deadline on CLOCK_MONOTONIC, so a holder that is alive but stopped (SIGSTOP) makes
// waiters time out instead of hang.
#ifndef SHMCACHE_SHM_STRIPE_LOCK_H
#define SHMCACHE_SHM_STRIPE_LOCK_H

#include <pthread.h>

#include <cstdint>

namespace shmcache::shm {

enum class LockResult {
    kAcquired,       // normal
    kOwnerDied,      // acquired; the previous holder died: repair, then mark_consistent()
    kTimeout,        // not acquired before the deadline
    kUnrecoverable,  // the mutex was left unusable (only after a bug): not acquired
};

// Initializes a robust, process-shared mutex in shared memory. Returns 0 or an errno.
int stripe_lock_init(pthread_mutex_t* m);

// Takes m, waiting at most timeout_ms. An uncontended lock costs one trylock (no clock read).
LockResult stripe_lock(pthread_mutex_t* m, uint32_t timeout_ms);

// Takes m only if nobody holds it: kAcquired, kOwnerDied (acquired, as for stripe_lock), or
// kTimeout when it is held (nothing waited for). For a thread that already holds another stripe
// lock: waiting there could deadlock, trying cannot.
LockResult stripe_trylock(pthread_mutex_t* m);

// After kOwnerDied and the repair: makes the mutex usable again. Must precede unlock.
void stripe_lock_mark_consistent(pthread_mutex_t* m);

void stripe_unlock(pthread_mutex_t* m);

}  // namespace shmcache::shm

#endif
