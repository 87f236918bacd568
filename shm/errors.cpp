// errors.cpp - see errors.h.
#include "shm/errors.h"

#include <cstdarg>
#include <cstdio>

namespace shmcache::shm {

namespace {
thread_local char t_msg[512];
// Read and cleared by every public call (lib/handle.h, guarded), so in the static TLS block: a
// global-dynamic variable of a shared library costs a __tls_get_addr call per access, a few ns
// on a ~70 ns hit. One byte of the surplus glibc keeps for libraries loaded later (dlopen, as
// Python's ctypes does).
__attribute__((tls_model("initial-exec"))) thread_local bool t_set = false;
}  // namespace

int fail(int code, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t_msg, sizeof t_msg, fmt, ap);
    va_end(ap);
    t_set = true;
    return code;
}

const char* last_errmsg() { return t_msg; }
void clear_errmsg() { t_set = false; }
bool errmsg_set() { return t_set; }

void corrupt(const char* what) { throw StripeCorrupt(what); }

}  // namespace shmcache::shm
