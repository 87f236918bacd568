// support.h - helpers shared by the multi-process and crash tests.
//
// Four things every such test needs and none should reimplement: unique segment names (so tests
// run in parallel), a monotonic clock (latency bounds are the point of the crash tests),
// self-verifying values (a torn or misplaced value must be detectable by the reader alone, without
// knowing who wrote it last), and fork/wait/shared-memory plumbing with bounded waits (a test
// must never hang because the engine did).
#ifndef SHMCACHE_TESTS_SUPPORT_H
#define SHMCACHE_TESTS_SUPPORT_H

#include <shmcache/shmcache.h>

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace tsupport {

// ---- failure reporting ---------------------------------------------------------------------

// Print "file:line: message" plus the code, shmc_strerror and shmc_errmsg of rc, to stderr.
void report_rc(const char *file, int line, const char *what, int rc, int expected);

// Number of failed expectations in this process so far.
extern int g_failures;

#define T_EXPECT(cond)                                                                          \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            std::fprintf(stderr, "%s:%d: expectation failed: %s\n", __FILE__, __LINE__, #cond); \
            ++tsupport::g_failures;                                                             \
        }                                                                                       \
    } while (0)

// Evaluate call once; a result other than expected is reported with the library's messages.
#define T_EXPECT_RC(call, expected)                                            \
    do {                                                                       \
        int t_rc_ = (call);                                                    \
        if (t_rc_ != (expected)) {                                             \
            tsupport::report_rc(__FILE__, __LINE__, #call, t_rc_, (expected)); \
            ++tsupport::g_failures;                                            \
        }                                                                      \
    } while (0)

// ---- names and time --------------------------------------------------------------------------

// "shmc-t-<test>-<pid>[-<n>]": unique per test process, so parallel tests never share a segment.
std::string unique_name(const char *test, int n = -1);

// CLOCK_MONOTONIC in nanoseconds.
uint64_t now_ns();
inline double ns_to_ms(uint64_t ns) { return double(ns) / 1e6; }
void sleep_ms(double ms);

// The latency bound the crash tests hold every operation to: 250 ms, or $SHMC_TEST_LATENCY_MS.
// It detects hangs, not slowness: every wait is bounded by lock_timeout_ms (50 ms), so an
// unbounded wait still fails, while a process descheduled on a loaded 2-core machine (a 207 ms
// op was seen with other work running) does not. Latency is measured by bench/, not here.
// Sanitizer builds raise it further (scripts/test.sh --sanitize): instrumented code on a shared
// 2-core machine is several times slower, and that run is about memory errors, not latency.
uint64_t slow_bound_ns();

// ---- random numbers --------------------------------------------------------------------------

// splitmix64: tiny, fast, and a given seed reproduces the same run, which is what the printed
// seeds are for.
struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed) {}
    uint64_t next();
    uint64_t below(uint64_t n) { return n ? next() % n : 0; }
    // Inclusive range [lo, hi].
    uint64_t range(uint64_t lo, uint64_t hi) { return lo + below(hi - lo + 1); }
    bool chance(unsigned percent) { return below(100) < percent; }
};

// A seed from the environment (SHMC_TEST_SEED) or the clock; printed by callers.
uint64_t pick_seed();

// ---- self-verifying values -------------------------------------------------------------------
//
// Layout: u64 key length | key bytes | payload (>= 1 byte) | u64 xxh64 of everything before it.
// A reader checks the embedded key against the key it asked for (catches values filed under the
// wrong key) and the checksum (catches torn and half-written values). The stored 32-bit flags are
// the low half of the checksum, so flags and value must come from the same write.

constexpr size_t kValueOverhead = 16;

// Smallest and largest encoded size for a key of klen and a payload of payload_len.
inline size_t encoded_len(size_t klen, size_t payload_len) {
    return kValueOverhead + klen + payload_len;
}

// Encode into out (resized); returns the flags to store with it. If first8 is given, the payload
// starts with those 8 bytes (payload_len is raised to 8 if need be): a version, say.
uint32_t encode_value(std::string &out, const void *key, size_t klen, size_t payload_len, Rng &rng,
                      const uint64_t *first8 = nullptr);

// True if val is a well-formed value for key with matching flags; otherwise false and *why says
// what is wrong.
bool verify_value(const void *key, size_t klen, const void *val, size_t vlen, uint32_t flags,
                  std::string *why);

// ---- processes and shared memory -------------------------------------------------------------

// Anonymous MAP_SHARED memory (zeroed) that survives fork, for results and barriers. Never freed:
// tests are short-lived processes.
void *shared_alloc(size_t bytes);

template <class T>
T *shared_new() {
    return new (shared_alloc(sizeof(T))) T();
}

// fork(); the child runs body and _exits with its return value (stdio flushed, no destructors or
// atexit handlers of the parent's objects run twice).
pid_t spawn(const std::function<int()> &body);

// Wait for pid up to timeout_ms (SIGKILL and reap it past that). Returns the exit status as
// waitpid gives it, or -1 if it timed out (and was killed).
int wait_child(pid_t pid, int timeout_ms);

// Describe a waitpid status ("exit 0", "signal 9").
std::string describe_status(int status);

// A pipe used as a start gun: children block in wait(); release() closes the write end so every
// waiter wakes at once (EOF), which lines them up better than any sleep.
struct StartGun {
    int fds[2] = {-1, -1};
    StartGun();
    void wait_in_child();  // closes the write end it inherited, blocks until release
    void release();        // parent: close the write end
};

// Remove the segment when the test ends, however it ends (destructor).
struct SegmentGuard {
    std::string name;
    explicit SegmentGuard(std::string n);
    ~SegmentGuard();
};

// Open name with opts, fail loudly (exit 2) if it does not open: nothing after it can run.
shmc_cache *open_or_die(const char *name, const shmc_options &opts);

// Options for a small test segment.
shmc_options small_options(uint64_t size_bytes, uint32_t n_stripes);

// Group keys by the stripe they hash to, found from the outside: set each candidate key and see
// which stripe's `sets` counter moved. Needs a quiet segment (no other writer at the time).
// Returns n_stripes lists of keys, each with at least per_stripe entries (fewer if candidates ran
// out). The keys are left set to a verified value.
std::vector<std::vector<std::string>> keys_by_stripe(shmc_cache *c, uint32_t n_stripes,
                                                     const char *prefix, size_t per_stripe,
                                                     Rng &rng);

// Print the one-line summary every test ends with and return its exit code.
int finish(const char *test, uint64_t seed, const std::string &details);

}  // namespace tsupport

#endif
