// stripe_lock.cpp - see stripe_lock.h.
#include "shm/stripe_lock.h"

#include <cerrno>

#include "shm/clock.h"

namespace shmcache::shm {

int stripe_lock_init(pthread_mutex_t* m) {
    pthread_mutexattr_t a;
    int rc = pthread_mutexattr_init(&a);
    if (rc) return rc;
    if (!rc) rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (!rc) rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (!rc) rc = pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
    return rc;
}

static inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

static LockResult classify(int rc) {
    switch (rc) {
        case 0: return LockResult::kAcquired;
        case EOWNERDEAD: return LockResult::kOwnerDied;
        case ETIMEDOUT: return LockResult::kTimeout;
        default: return LockResult::kUnrecoverable;  // ENOTRECOVERABLE, EINVAL
    }
}

LockResult stripe_lock(pthread_mutex_t* m, uint32_t timeout_ms) {
    // glibc's robust mutexes do not spin: a failed attempt goes straight to a futex sleep, and
    // the wake-up costs microseconds where the holder's critical section costs ~100 ns. So spin
    // on trylock a little first (bounded: ~kSpins pauses, well under a microsecond).
    constexpr int kSpins = 64;
    int rc = pthread_mutex_trylock(m);
    for (int i = 0; rc == EBUSY && i < kSpins; ++i) {
        cpu_relax();
        rc = pthread_mutex_trylock(m);
    }
    if (rc != EBUSY) return classify(rc);
    timespec deadline = deadline_after_ms(timeout_ms);
    do {
        rc = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &deadline);
    } while (rc == EINTR);
    return classify(rc);
}

LockResult stripe_trylock(pthread_mutex_t* m) {
    const int rc = pthread_mutex_trylock(m);
    return rc == EBUSY ? LockResult::kTimeout : classify(rc);
}

void stripe_lock_mark_consistent(pthread_mutex_t* m) { pthread_mutex_consistent(m); }

void stripe_unlock(pthread_mutex_t* m) { pthread_mutex_unlock(m); }

}  // namespace shmcache::shm
