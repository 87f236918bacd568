// errors.h - the engine's error reporting: every failing function returns a SHMC_E_* code (or a
// positive errno) and may record a specific message for shmc_errmsg() in a thread-local buffer.
#ifndef SHMCACHE_SHM_ERRORS_H
#define SHMCACHE_SHM_ERRORS_H

#include <shmcache/shmcache.h>

#include <stdexcept>

namespace shmcache::shm {

// Records a printf-style message for this thread and returns code.
int fail(int code, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// The message recorded by the last fail() in this thread; "" if none since clear_errmsg().
const char* last_errmsg();
void clear_errmsg();
bool errmsg_set();

// Thrown inside a locked stripe operation when a structure read from the segment fails a bounds
// or consistency check. The operation wrapper catches it, rebuilds the stripe, and retries once;
// it never leaves the engine.
struct StripeCorrupt : std::runtime_error {
    using std::runtime_error::runtime_error;
};

[[noreturn]] void corrupt(const char* what);

}  // namespace shmcache::shm

#endif
