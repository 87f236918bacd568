// crash_point.h - marks instructions inside dirty sections where the crash tests may kill the
// process (see test_hooks.h). Compiles to nothing in the shipped library.
#ifndef SHMCACHE_SHM_CRASH_POINT_H
#define SHMCACHE_SHM_CRASH_POINT_H

#ifdef SHMC_TEST_HOOKS
namespace shmcache::shm {
void crash_point();
}
#define SHMC_CRASH_POINT() ::shmcache::shm::crash_point()
#else
#define SHMC_CRASH_POINT() ((void)0)
#endif

#endif
