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

// Whether fail() ran in this thread since the last clear_errmsg(). Cleared and read by every
// public call (lib/handle.h, guarded), so both are inline and the flag lives in the static TLS
// block: a global-dynamic variable of a shared library costs a __tls_get_addr call per access,
// and an out-of-line clear made shmc_get save and restore six registers around it (22
// instructions of a hot get's ~600, and of a set's, callgrind). One byte of the surplus glibc
// keeps for libraries loaded later (dlopen, as Python's ctypes does). __thread, not
// thread_local: an extern thread_local is reached through a wrapper function, in case it has a
// constructor.
extern __thread bool t_errmsg_set __attribute__((tls_model("initial-exec")));
inline void clear_errmsg() { t_errmsg_set = false; }
inline bool errmsg_set() { return t_errmsg_set; }

// Thrown inside a locked stripe operation when a structure read from the segment fails a bounds
// or consistency check. The operation wrapper catches it, rebuilds the stripe, and retries once;
// it never leaves the engine.
struct StripeCorrupt : std::runtime_error {
    using std::runtime_error::runtime_error;
};

[[noreturn]] void corrupt(const char* what);

}  // namespace shmcache::shm

#endif
