// errors.cpp - see errors.h.
#include "shm/errors.h"

#include <cstdarg>
#include <cstdio>

namespace shmcache::shm {

__thread bool t_errmsg_set __attribute__((tls_model("initial-exec"))) = false;

namespace {
thread_local char t_msg[512];
}  // namespace

int fail(int code, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t_msg, sizeof t_msg, fmt, ap);
    va_end(ap);
    t_errmsg_set = true;
    return code;
}

const char* last_errmsg() { return t_msg; }

void corrupt(const char* what) { throw StripeCorrupt(what); }

}  // namespace shmcache::shm
