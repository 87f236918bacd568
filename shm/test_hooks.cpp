// test_hooks.cpp - the crash points of test_hooks.h; empty in the shipped library.
#ifdef SHMC_TEST_HOOKS
#include <signal.h>

#include <atomic>
#include <cstdint>

#include "shm/crash_point.h"

namespace shmcache::shm {

std::atomic<uint64_t> g_crash_countdown{0};
std::atomic<uint64_t> g_crash_points_passed{0};

void crash_point() {
    g_crash_points_passed.fetch_add(1, std::memory_order_relaxed);
    if (g_crash_countdown.load(std::memory_order_relaxed) &&
        g_crash_countdown.fetch_sub(1, std::memory_order_relaxed) == 1)
        raise(SIGKILL);
}

}  // namespace shmcache::shm
#endif
