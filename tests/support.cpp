// support.cpp - see support.h.
#include "support.h"

#include <xxhash.h>

#include <sys/mman.h>
#include <sys/wait.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace tsupport {

int g_failures = 0;

void report_rc(const char *file, int line, const char *what, int rc, int expected) {
    // shmc_errmsg is only valid until the next shmcache call, and shmc_strerror is one: copy first.
    std::string msg = shmc_errmsg();
    std::fprintf(stderr, "%s:%d: %s returned %d (%s; errmsg: \"%s\"), expected %d (%s)\n", file,
                 line, what, rc, shmc_strerror(rc), msg.c_str(), expected, shmc_strerror(expected));
}

std::string unique_name(const char *test, int n) {
    char buf[200];
    if (n < 0)
        std::snprintf(buf, sizeof buf, "shmc-t-%s-%d", test, int(getpid()));
    else
        std::snprintf(buf, sizeof buf, "shmc-t-%s-%d-%d", test, int(getpid()), n);
    return buf;
}

uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

void sleep_ms(double ms) {
    timespec ts;
    ts.tv_sec = time_t(ms / 1000);
    ts.tv_nsec = long((ms - double(ts.tv_sec) * 1000) * 1e6);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

uint64_t slow_bound_ns() {
    uint64_t ms = 250;
    if (const char *e = std::getenv("SHMC_TEST_LATENCY_MS"); e && *e) {
        uint64_t v = std::strtoull(e, nullptr, 10);
        if (v > 0) ms = v;
    }
    return ms * 1000000u;
}

uint64_t Rng::next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t pick_seed() {
    if (const char *e = std::getenv("SHMC_TEST_SEED"); e && *e) return std::strtoull(e, nullptr, 0);
    return now_ns() ^ (uint64_t(getpid()) << 32);
}

uint32_t encode_value(std::string &out, const void *key, size_t klen, size_t payload_len, Rng &rng,
                      const uint64_t *first8) {
    if (payload_len == 0)
        payload_len = 1;  // a value is never only its header, so "empty" cannot pass as valid
    if (first8 && payload_len < 8) payload_len = 8;
    out.resize(encoded_len(klen, payload_len));
    char *p = out.data();
    uint64_t k64 = klen;
    std::memcpy(p, &k64, 8);
    std::memcpy(p + 8, key, klen);
    char *pay = p + 8 + klen;
    for (size_t i = 0; i < payload_len; i += 8) {
        uint64_t r = rng.next();
        std::memcpy(pay + i, &r, payload_len - i < 8 ? payload_len - i : 8);
    }
    if (first8) std::memcpy(pay, first8, 8);
    uint64_t sum = XXH64(p, out.size() - 8, 0);
    std::memcpy(p + out.size() - 8, &sum, 8);
    return uint32_t(sum);
}

bool verify_value(const void *key, size_t klen, const void *val, size_t vlen, uint32_t flags,
                  std::string *why) {
    char buf[160];
    auto fail = [&](const char *what) {
        if (why) {
            std::snprintf(buf, sizeof buf, "%s (value_len %zu, key_len %zu)", what, vlen, klen);
            *why = buf;
        }
        return false;
    };
    if (vlen < encoded_len(klen, 1)) return fail("value shorter than header + key + 1 + checksum");
    const char *p = static_cast<const char *>(val);
    uint64_t k64;
    std::memcpy(&k64, p, 8);
    if (k64 != klen) return fail("embedded key length differs");
    if (std::memcmp(p + 8, key, klen) != 0)
        return fail("embedded key differs: value filed under the wrong key");
    uint64_t sum;
    std::memcpy(&sum, p + vlen - 8, 8);
    if (XXH64(p, vlen - 8, 0) != sum) return fail("checksum mismatch: torn or damaged value");
    if (uint32_t(sum) != flags) return fail("flags do not belong to this value");
    return true;
}

void *shared_alloc(size_t bytes) {
    void *p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        std::perror("mmap");
        std::exit(2);
    }
    return p;
}

pid_t spawn(const std::function<int()> &body) {
    std::fflush(nullptr);  // or buffered output would be printed by parent and child
    pid_t pid = fork();
    if (pid < 0) {
        std::perror("fork");
        std::exit(2);
    }
    if (pid == 0) {
        int rc = body();
        std::fflush(nullptr);
        _exit(rc);
    }
    return pid;
}

int wait_child(pid_t pid, int timeout_ms) {
    uint64_t deadline = now_ns() + uint64_t(timeout_ms) * 1000000u;
    for (;;) {
        int status = 0;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) return status;
        if (r < 0) {
            std::perror("waitpid");
            return -1;
        }
        if (now_ns() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        sleep_ms(1);
    }
}

std::string describe_status(int status) {
    char buf[64];
    if (status == -1) return "timed out (killed by the test)";
    if (WIFEXITED(status))
        std::snprintf(buf, sizeof buf, "exit %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        std::snprintf(buf, sizeof buf, "signal %d (%s)", WTERMSIG(status),
                      strsignal(WTERMSIG(status)));
    else
        std::snprintf(buf, sizeof buf, "status 0x%x", status);
    return buf;
}

StartGun::StartGun() {
    if (pipe(fds) != 0) {
        std::perror("pipe");
        std::exit(2);
    }
}

void StartGun::wait_in_child() {
    close(fds[1]);  // or our own copy of the write end would keep the pipe open forever
    char c;
    while (read(fds[0], &c, 1) < 0 && errno == EINTR) {
    }
    close(fds[0]);
}

void StartGun::release() {
    close(fds[1]);
    close(fds[0]);
}

// Segments of this test process, so that a fatal error can still remove them (exit paths that
// skip destructors). Only the process that created a guard may unlink: a forked child shares the
// parent's memory image but must never remove the parent's segment.
namespace {
struct Owned {
    pid_t owner = 0;
    std::vector<std::string> names;
};
Owned g_owned;

void unlink_owned() {
    if (g_owned.owner != getpid()) return;
    for (const auto &n : g_owned.names) shmc_unlink(n.c_str(), 1);
}
}  // namespace

SegmentGuard::SegmentGuard(std::string n) : name(std::move(n)) {
    shmc_unlink(name.c_str(), 1);  // a leftover of a crashed earlier run with a recycled pid
    g_owned.owner = getpid();
    g_owned.names.push_back(name);
}

SegmentGuard::~SegmentGuard() {
    shmc_unlink(name.c_str(), 1);
    for (size_t i = 0; i < g_owned.names.size(); ++i)
        if (g_owned.names[i] == name) {
            g_owned.names.erase(g_owned.names.begin() + long(i));
            break;
        }
}

shmc_cache *open_or_die(const char *name, const shmc_options &opts) {
    shmc_cache *c = nullptr;
    int rc = shmc_open(name, &opts, &c);
    if (rc != 0 || !c) {
        report_rc(__FILE__, __LINE__, "shmc_open", rc, 0);
        std::fprintf(stderr, "cannot open segment %s (pid %d)\n", name, int(getpid()));
        std::fflush(nullptr);
        unlink_owned();
        _exit(2);
    }
    return c;
}

shmc_options small_options(uint64_t size_bytes, uint32_t n_stripes) {
    shmc_options o;
    shmc_options_default(&o);
    o.size_bytes = size_bytes;
    o.n_stripes = n_stripes;
    return o;
}

std::vector<std::vector<std::string>> keys_by_stripe(shmc_cache *c, uint32_t n_stripes,
                                                     const char *prefix, size_t per_stripe,
                                                     Rng &rng) {
    std::vector<std::vector<std::string>> out(n_stripes);
    std::vector<uint64_t> before(n_stripes);
    auto sets_of = [&](uint32_t s) {
        shmc_stats st{};
        shmc_stripe_stats(c, s, &st);
        return st.sets;
    };
    for (uint32_t s = 0; s < n_stripes; ++s) before[s] = sets_of(s);
    size_t full = 0;
    std::string v;
    // Enough candidates that every stripe fills with overwhelming probability; bounded anyway.
    for (size_t i = 0; full < n_stripes && i < n_stripes * per_stripe * 20; ++i) {
        std::string key = std::string(prefix) + std::to_string(i);
        uint32_t fl = encode_value(v, key.data(), key.size(), 8 + rng.below(64), rng);
        if (shmc_set(c, key.data(), key.size(), v.data(), v.size(), fl, 0) != 0) continue;
        for (uint32_t s = 0; s < n_stripes; ++s) {
            uint64_t now = sets_of(s);
            if (now != before[s]) {
                before[s] = now;
                if (out[s].size() < per_stripe) {
                    out[s].push_back(key);
                    if (out[s].size() == per_stripe) ++full;
                }
                break;
            }
        }
    }
    return out;
}

int finish(const char *test, uint64_t seed, const std::string &details) {
    std::printf("%s %s: seed=%llu %s\n", g_failures ? "FAIL" : "PASS", test,
                (unsigned long long)seed, details.c_str());
    std::fflush(nullptr);
    return g_failures ? 1 : 0;
}

}  // namespace tsupport
