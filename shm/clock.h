// clock.h - the two clocks the engine uses.
// Expiry uses CLOCK_MONOTONIC: it is the same for every process on the host and does not jump
// when the wall clock is set. Wall time is only for display (created_unix_ms).
#ifndef SHMCACHE_SHM_CLOCK_H
#define SHMCACHE_SHM_CLOCK_H

#include <cstdint>
#include <ctime>

namespace shmcache::shm {

uint64_t monotonic_ms();
// The same clock at the kernel tick's resolution (CLOCK_MONOTONIC_COARSE: at most one tick, 4 ms
// at HZ=250, behind monotonic_ms, never ahead), for about a third of the cost: for checks on the
// L1 hit path that can take a tick of slack (the coherence lease, layout.h L2Coherence).
uint64_t monotonic_coarse_ms();
uint64_t unix_ms();
// An absolute CLOCK_MONOTONIC deadline `ms` from now, for pthread_mutex_clocklock.
timespec deadline_after_ms(uint32_t ms);

}  // namespace shmcache::shm

#endif
