// clock.cpp - see clock.h.
#include "shm/clock.h"

namespace shmcache::shm {

static uint64_t read_ms(clockid_t id) {
    timespec ts;
    clock_gettime(id, &ts);
    return uint64_t(ts.tv_sec) * 1000u + uint64_t(ts.tv_nsec) / 1000000u;
}

uint64_t monotonic_ms() { return read_ms(CLOCK_MONOTONIC); }
uint64_t monotonic_coarse_ms() { return read_ms(CLOCK_MONOTONIC_COARSE); }
uint64_t unix_ms() { return read_ms(CLOCK_REALTIME); }

timespec deadline_after_ms(uint32_t ms) {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += long(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec += 1;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

}  // namespace shmcache::shm
