// errors.cpp - see errors.h.
#include "shm/errors.h"

#include <cstdarg>
#include <cstdio>

namespace shmcache::shm {

namespace {
thread_local char t_msg[512];
thread_local bool t_set = false;
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
