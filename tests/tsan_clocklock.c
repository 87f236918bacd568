/*
 * tsan_clocklock.c - lets ThreadSanitizer see the stripe locks (thread-sanitized builds only).
 *
 * The engine takes its robust mutexes with pthread_mutex_clocklock(CLOCK_MONOTONIC), which the
 * TSan runtimes on Debian 12 (GCC 12, clang 14) do not intercept: TSan never sees the lock taken,
 * then reports the unlock as "unlock of an unlocked mutex" and every access under it as a race.
 * Defined in the test executable, this pthread_mutex_clocklock takes precedence over glibc's for
 * the statically linked engine, converts the monotonic deadline to a realtime one, and calls
 * pthread_mutex_timedlock, which TSan intercepts. The result codes are the same (0, ETIMEDOUT,
 * EOWNERDEAD, ...). A wall-clock step during the wait would stretch or shorten it: acceptable in a
 * test, which is why this never goes into the library.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <time.h>

int pthread_mutex_clocklock(pthread_mutex_t *m, clockid_t clock, const struct timespec *abstime) {
    struct timespec now, rt;
    clock_gettime(clock, &now);
    long long left =
        (long long)(abstime->tv_sec - now.tv_sec) * 1000000000LL + (abstime->tv_nsec - now.tv_nsec);
    if (left < 0) left = 0;
    clock_gettime(CLOCK_REALTIME, &rt);
    long long ns = rt.tv_nsec + left % 1000000000LL;
    rt.tv_sec += (time_t)(left / 1000000000LL + ns / 1000000000LL);
    rt.tv_nsec = (long)(ns % 1000000000LL);
    return pthread_mutex_timedlock(m, &rt);
}
