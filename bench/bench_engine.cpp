// bench_engine.cpp - get/set latency and throughput of shmcache next to two yardsticks.
//
// One run measures, on the same keys, values and request sequences:
//   shmcache  the real library through the C ABI (one segment, sized so nothing is evicted);
//   map       std::unordered_map<std::string, std::string> under a std::mutex, in process memory
//             (a get copies the value into a caller buffer, as shmc_get does). It is private: with
//             two processes each has its own map, so its "2 processes" row is the ideal of no
//             sharing at all, not a shared cache;
//   lmdb      LMDB in an environment on /dev/shm, a get in a read transaction (reset/renew of one
//             handle per process), each set in its own write transaction.
// Each for 1 and for 2 processes. Every process is forked, opens its own handle or environment,
// is pinned to its own CPU, and starts on a pipe signal so that all run at once.
//
// Gets: 90% hits, keys uniform at random over the prefilled keys, misses over as many absent
// keys. Sets: overwrite a uniformly random prefilled key with a value of the same size.
// Latency: every Nth operation is timed with rdtsc (lfence on both sides; the cost of the two
// reads, printed, is included); percentiles over all sampled operations of all processes.
// Throughput: operations of all processes per second, sampled ones included.
// Before measuring, each process gets every prefilled key once, untimed (page-table warm-up).
// Noise: the phases run in R interleaved rounds and each figure is the round with the median
// throughput, so one burst of noise from a neighbour spoils one round, not the result; a round
// during which other work used more than kMaxOtherLoad CPUs (from /proc/stat) is run again.
// --keys 1000 gives a hot set that fits in the CPU caches, where sharing costs show most.
//
// "shmcache, locked gets" is the same library with every get taking its stripe lock
// (SHMCACHE_OPTIMISTIC_READS=0), for the lock-free read's gain side by side.
// Output: a markdown table and the headline ratios, or JSON with --json.
#include <shmcache/shmcache.h>
#ifdef SHMC_BENCH_HAVE_LMDB
#include <lmdb.h>
#endif

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <random>
#include <sched.h>
#include <string>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <unordered_map>
#include <vector>

#include "strategy.h"
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define BENCH_HAVE_TSC 1
#define BENCH_TIMER "rdtsc"
#else
#define BENCH_TIMER "clock_gettime"
#endif

namespace {

using shmcache::bench::strategy_name;

// ---------------------------------------------------------------------------------------------
// Clocks

double now_s() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

double cpu_now_s() {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// rdtsc fenced on both sides, so the timed operation neither starts early nor retires late.
// Elsewhere: CLOCK_MONOTONIC in nanoseconds (calibrate_tsc then finds 1 ns per tick).
inline uint64_t ticks() {
#ifdef BENCH_HAVE_TSC
    _mm_lfence();
    uint64_t t = __rdtsc();
    _mm_lfence();
    return t;
#else
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
#endif
}

// Nanoseconds per TSC tick, against CLOCK_MONOTONIC over ~100 ms.
double calibrate_tsc() {
    double t0 = now_s();
    uint64_t c0 = ticks();
    while (now_s() - t0 < 0.1) {
    }
    double t1 = now_s();
    uint64_t c1 = ticks();
    return (t1 - t0) * 1e9 / double(c1 - c0);
}

// Median cost of the two timer reads around an empty operation, in ticks.
double timer_overhead_ticks() {
    std::vector<uint64_t> v(100000);
    for (auto &x : v) {
        uint64_t a = ticks();
        uint64_t b = ticks();
        x = b - a;
    }
    std::nth_element(v.begin(), v.begin() + long(v.size() / 2), v.end());
    return double(v[v.size() / 2]);
}

// ---------------------------------------------------------------------------------------------
// Workload shared by every backend (built before fork, so all processes see the same data)

struct Workload {
    size_t n_keys = 100000;
    size_t value_size = 200;
    std::vector<std::string> keys;  // [0, n_keys) prefilled, [n_keys, 2 n_keys) never set
    std::vector<std::vector<uint32_t>> get_seq, set_seq;  // per process, indexes into keys
    std::string value;  // the prefill value; sets stamp a counter into it
    static constexpr size_t kSeqLen = 1u << 20;
};

void build_workload(Workload &w, unsigned max_procs, double hit_ratio) {
    w.keys.clear();
    for (size_t i = 0; i < 2 * w.n_keys; ++i)
        w.keys.push_back("user:" + std::to_string(100000 + i));
    w.value.assign(w.value_size, 'v');
    for (size_t i = 0; i < w.value_size; ++i) w.value[i] = char('a' + i % 26);
    w.get_seq.assign(max_procs, {});
    w.set_seq.assign(max_procs, {});
    for (unsigned p = 0; p < max_procs; ++p) {
        std::mt19937_64 rng(42 + p);
        std::uniform_int_distribution<uint32_t> pick(0, uint32_t(w.n_keys - 1));
        std::bernoulli_distribution hit(hit_ratio);
        w.get_seq[p].resize(Workload::kSeqLen);
        w.set_seq[p].resize(Workload::kSeqLen);
        for (size_t i = 0; i < Workload::kSeqLen; ++i) {
            uint32_t k = pick(rng);
            w.get_seq[p][i] = hit(rng) ? k : uint32_t(w.n_keys) + k;
            w.set_seq[p][i] = pick(rng);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Backends. Each is constructed in the measuring process after fork (its own handle / env /
// map) and offers get(k) -> 1 hit, 0 miss, -1 error, and set(k, stamp) -> 0 or -1.

// kShmcacheLocked: the same library with SHMCACHE_OPTIMISTIC_READS=0 in its processes, so that
// every get takes its stripe lock (as before layout 6): the lock-free read's gain, side by side.
enum class Kind { kShmcache, kShmcacheLocked, kMap, kLmdb };
const char *kind_name(Kind k) {
    return k == Kind::kShmcache         ? "shmcache"
           : k == Kind::kShmcacheLocked ? "shmcache, locked gets"
           : k == Kind::kMap            ? "unordered_map+mutex"
                                        : "lmdb";
}

struct ShmBackend {
    const Workload &w;
    shmc_cache *cache = nullptr;
    std::vector<char> buf, val;
    int open_rc = 0;
    ShmBackend(const Workload &wl, const char *name)
        : w(wl), buf(wl.value_size + 64), val(wl.value.begin(), wl.value.end()) {
        shmc_options o;
        shmc_options_default(&o);
        o.flags = SHMC_OPEN_NO_CREATE;
        open_rc = shmc_open(name, &o, &cache);
        if (open_rc != 0)
            fprintf(stderr, "bench_engine: shmc_open(%s) in child: %s (%s)\n", name,
                    shmc_strerror(open_rc), shmc_errmsg());
    }
    ~ShmBackend() { shmc_close(cache); }
    bool ok() const { return open_rc == 0; }
    int get(uint32_t k) {
        const std::string &key = w.keys[k];
        size_t len;
        int rc =
            shmc_get(cache, key.data(), key.size(), buf.data(), buf.size(), &len, nullptr, nullptr);
        return rc == 0 ? 1 : rc == SHMC_E_NOTFOUND ? 0 : -1;
    }
    int set(uint32_t k, uint64_t stamp) {
        memcpy(val.data(), &stamp, std::min(sizeof stamp, val.size()));
        const std::string &key = w.keys[k];
        return shmc_set(cache, key.data(), key.size(), val.data(), val.size(), 0, 0) == 0 ? 0 : -1;
    }
};

struct MapBackend {
    const Workload &w;
    std::unordered_map<std::string, std::string> map;
    std::mutex mu;
    std::vector<char> buf, val;
    explicit MapBackend(const Workload &wl)
        : w(wl), buf(wl.value_size + 64), val(wl.value.begin(), wl.value.end()) {
        map.reserve(w.n_keys);
        for (size_t i = 0; i < w.n_keys; ++i) map.emplace(w.keys[i], w.value);
    }
    bool ok() const { return true; }
    int get(uint32_t k) {
        std::lock_guard<std::mutex> g(mu);
        auto it = map.find(w.keys[k]);
        if (it == map.end()) return 0;
        if (it->second.size() > buf.size()) return -1;
        memcpy(buf.data(), it->second.data(), it->second.size());
        return 1;
    }
    int set(uint32_t k, uint64_t stamp) {
        memcpy(val.data(), &stamp, std::min(sizeof stamp, val.size()));
        std::lock_guard<std::mutex> g(mu);
        auto it = map.find(w.keys[k]);
        if (it != map.end())
            it->second.assign(val.data(), val.size());
        else
            map.emplace(w.keys[k], std::string(val.data(), val.size()));
        return 0;
    }
};

#ifdef SHMC_BENCH_HAVE_LMDB
// MDB_NOSYNC: no fsync/msync at commit (the data is on tmpfs anyway, and a cache does not need
// durability). MDB_WRITEMAP: write through the shared map instead of write(2) of dirty pages.
const unsigned kLmdbFlags = MDB_NOSYNC | MDB_WRITEMAP;
const char *kLmdbFlagsText = "MDB_NOSYNC|MDB_WRITEMAP";

struct LmdbBackend {
    const Workload &w;
    MDB_env *env = nullptr;
    MDB_dbi dbi = 0;
    MDB_txn *rtxn = nullptr;
    std::vector<char> buf, val;
    int rc = 0;
    LmdbBackend(const Workload &wl, const std::string &dir, size_t map_size)
        : w(wl), buf(wl.value_size + 64), val(wl.value.begin(), wl.value.end()) {
        MDB_txn *t = nullptr;
        if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_mapsize(env, map_size)) ||
            (rc = mdb_env_open(env, dir.c_str(), kLmdbFlags, 0600)) ||
            (rc = mdb_txn_begin(env, nullptr, MDB_RDONLY, &t)) ||
            (rc = mdb_dbi_open(t, nullptr, 0, &dbi))) {
            fprintf(stderr, "bench_engine: lmdb open %s: %s\n", dir.c_str(), mdb_strerror(rc));
            return;
        }
        mdb_txn_abort(t);
        if ((rc = mdb_txn_begin(env, nullptr, MDB_RDONLY, &rtxn)) != 0) {
            fprintf(stderr, "bench_engine: lmdb read txn: %s\n", mdb_strerror(rc));
            return;
        }
        mdb_txn_reset(rtxn);
    }
    ~LmdbBackend() {
        if (rtxn) mdb_txn_abort(rtxn);
        if (env) mdb_env_close(env);
    }
    bool ok() const { return rc == 0; }
    int get(uint32_t k) {
        const std::string &key = w.keys[k];
        MDB_val mk{key.size(), const_cast<char *>(key.data())}, mv;
        if (mdb_txn_renew(rtxn) != 0) return -1;
        int r = mdb_get(rtxn, dbi, &mk, &mv);
        int out = -1;
        if (r == 0 && mv.mv_size <= buf.size()) {
            memcpy(buf.data(), mv.mv_data, mv.mv_size);
            out = 1;
        } else if (r == MDB_NOTFOUND) {
            out = 0;
        }
        mdb_txn_reset(rtxn);
        return out;
    }
    int set(uint32_t k, uint64_t stamp) {
        memcpy(val.data(), &stamp, std::min(sizeof stamp, val.size()));
        const std::string &key = w.keys[k];
        MDB_val mk{key.size(), const_cast<char *>(key.data())}, mv{val.size(), val.data()};
        MDB_txn *t;
        if (mdb_txn_begin(env, nullptr, 0, &t) != 0) return -1;
        if (mdb_put(t, dbi, &mk, &mv, 0) != 0) {
            mdb_txn_abort(t);
            return -1;
        }
        return mdb_txn_commit(t) == 0 ? 0 : -1;
    }
};

int lmdb_prefill(const Workload &w, const std::string &dir, size_t map_size) {
    MDB_env *env;
    MDB_txn *t;
    MDB_dbi dbi;
    int rc;
    if ((rc = mdb_env_create(&env))) return rc;
    if ((rc = mdb_env_set_mapsize(env, map_size)) ||
        (rc = mdb_env_open(env, dir.c_str(), kLmdbFlags, 0600)) ||
        (rc = mdb_txn_begin(env, nullptr, 0, &t))) {
        mdb_env_close(env);
        return rc;
    }
    if ((rc = mdb_dbi_open(t, nullptr, 0, &dbi)) == 0) {
        for (size_t i = 0; i < w.n_keys && rc == 0; ++i) {
            MDB_val mk{w.keys[i].size(), const_cast<char *>(w.keys[i].data())};
            MDB_val mv{w.value.size(), const_cast<char *>(w.value.data())};
            rc = mdb_put(t, dbi, &mk, &mv, 0);
        }
    }
    rc = rc ? (mdb_txn_abort(t), rc) : mdb_txn_commit(t);
    mdb_env_sync(env, 1);
    mdb_env_close(env);
    return rc;
}
#endif

// ---------------------------------------------------------------------------------------------
// One phase: n processes run one operation for a fixed time

struct ProcResult {
    uint64_t ops, hits, misses, errors, n_samples;
    double seconds;
    double cpu_seconds;  // CPU time the process got while measuring
    uint64_t sleeps;     // voluntary context switches while measuring (lock waits that slept)
    int ok;
};

constexpr unsigned kMaxProcs = 8;
constexpr size_t kMaxSamples = 1u << 21;  // per process

struct SharedArea {
    ProcResult proc[kMaxProcs];
    uint32_t samples[kMaxProcs][kMaxSamples];  // ticks
};

struct Options {
    double seconds = 0.5;
    unsigned repeats = 3;
    unsigned sample_every = 16;  // a power of two
    bool pin = true;
    bool warmup = true;
};

enum class Op { kGet, kSet };

template <class B>
void measure(B &b, Op op, const std::vector<uint32_t> &seq, const Options &opt, ProcResult &res,
             uint32_t *samples) {
    const size_t mask = seq.size() - 1;
    const uint64_t every_mask = opt.sample_every - 1;
    uint64_t ops = 0, hits = 0, misses = 0, errors = 0, ns = 0;
    size_t i = 0;
    const double cpu_start = cpu_now_s();
    struct rusage ru0;
    getrusage(RUSAGE_SELF, &ru0);
    double start = now_s(), end = start + opt.seconds, t = start;
    while (t < end) {
        for (unsigned n = 0; n < 512; ++n) {
            uint32_t k = seq[i];
            i = (i + 1) & mask;
            int r;
            if ((ops & every_mask) == 0 && ns < kMaxSamples) {
                uint64_t t0 = ticks();
                r = op == Op::kGet ? b.get(k) : b.set(k, ops);
                uint64_t t1 = ticks();
                samples[ns++] = uint32_t(std::min<uint64_t>(t1 - t0, UINT32_MAX));
            } else {
                r = op == Op::kGet ? b.get(k) : b.set(k, ops);
            }
            ++ops;
            if (op == Op::kGet)
                r > 0 ? ++hits : r == 0 ? ++misses : ++errors;
            else if (r < 0)
                ++errors;
        }
        t = now_s();
    }
    res.seconds = t - start;
    res.cpu_seconds = cpu_now_s() - cpu_start;
    struct rusage ru1;
    getrusage(RUSAGE_SELF, &ru1);
    res.sleeps = uint64_t(ru1.ru_nvcsw - ru0.ru_nvcsw);
    res.ops = ops;
    res.hits = hits;
    res.misses = misses;
    res.errors = errors;
    res.n_samples = ns;
    res.ok = 1;
}

struct PhaseResult {
    Kind kind;
    unsigned procs;
    Op op;
    double ops_per_s = 0;
    double ops_per_cpu_s = 0;  // operations per CPU-second, summed over processes
    double cpu_share = 0;  // mean over processes of CPU time / wall time (1 = had a CPU throughout)
    double other_load =
        0;  // CPUs used by everything else on the machine meanwhile (steal included)
    double sleeps_per_mop = 0;  // voluntary context switches per million operations
    bool disturbed = false;     // other_load above kMaxOtherLoad: the machine was busy
    double p50_ns = 0, p99_ns = 0, p999_ns = 0;
    double hit_pct = 0;
    // One cache-line transfer between the phase's CPUs, before and after the round (2+ processes).
    double transfer_ns = 0, transfer_after_ns = 0;
    uint64_t errors = 0;
    bool ok = false;
};

struct Context {
    const Workload *w;
    Options opt;
    std::string shm_name;
    std::string lmdb_dir;
    size_t lmdb_map_size = 0;
    double ns_per_tick = 1;
    std::vector<int> cpus;
    SharedArea *area = nullptr;
};

// Busy time of the whole machine (all CPUs, steal included) in seconds, from /proc/stat.
double machine_busy_s() {
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return 0;
    unsigned long long v[8] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 8) return 0;
    // user nice system idle iowait irq softirq steal: everything but idle and iowait
    return double(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / double(sysconf(_SC_CLK_TCK));
}

// A cache-line transfer below this took place within one L3 (about 15-40 ns on these machines);
// across dies it takes about 110-210 ns.
constexpr double kNearTransferNs = 70;

// A round during which other work used more than this many CPUs is retried (see main).
constexpr double kMaxOtherLoad = 0.15;

void pin_to(const Context &ctx, unsigned p) {
    if (!ctx.opt.pin || ctx.cpus.empty()) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(ctx.cpus[p % ctx.cpus.size()], &set);
    sched_setaffinity(0, sizeof set, &set);
}

template <class B>
[[noreturn]] void child_run(const Context &ctx, B &b, unsigned p, Op op, int ready_fd, int go_fd) {
    ProcResult &res = ctx.area->proc[p];
    // Warm up: one get of every prefilled key, untimed. A process that has just mapped the
    // segment (or the LMDB map) takes a minor page fault on the first touch of every page, a few
    // microseconds each; a long-lived worker pays that once, so it is left out of the figures
    // (--no-warmup shows it). The private map was just built, so its pages are already mapped.
    if (ctx.opt.warmup && b.ok()) {
        for (uint32_t k = 0; k < ctx.w->n_keys; ++k) b.get(k);
    }
    char c = b.ok() ? 1 : 0;
    if (write(ready_fd, &c, 1) != 1 || !b.ok()) _exit(1);
    if (read(go_fd, &c, 1) != 1) _exit(1);
    const auto &seq = op == Op::kGet ? ctx.w->get_seq[p] : ctx.w->set_seq[p];
    measure(b, op, seq, ctx.opt, res, ctx.area->samples[p]);
    _exit(0);
}

// How long one cache line takes to move between the first two CPUs the phases pin to, measured
// just before a round: two pinned processes pass a counter back and forth through one line.
// A shared cache pays this for each line another process wrote last, so contended sets scale
// with it. On a virtual machine it is not fixed: the host may place the two vCPUs on cores that
// share an L3 (tens of ns) or on different dies (several times that), and may move them.
double line_transfer_ns(const Context &ctx) {
    if (ctx.cpus.size() < 2) return 0;
    void *mem = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return 0;
    auto *line = static_cast<std::atomic<uint64_t> *>(mem);
    auto *result_ns = reinterpret_cast<double *>(static_cast<char *>(mem) + 128);
    line->store(0);
    *result_ns = 0;
    constexpr uint64_t kRoundTrips = 20000;
    // Each side waits for its turn (a parity) and passes the counter on; bounded by a deadline
    // so that a descheduled partner cannot hang the benchmark.
    auto play = [&](unsigned side) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(ctx.cpus[side], &set);
        sched_setaffinity(0, sizeof set, &set);
        const double t0 = now_s();
        for (uint64_t v = side; v < 2 * kRoundTrips; v += 2) {
            while (line->load(std::memory_order_acquire) != v) {
                if (now_s() - t0 > 2.0) _exit(1);
            }
            line->store(v + 1, std::memory_order_release);
        }
        if (side == 0) *result_ns = (now_s() - t0) * 1e9 / double(2 * kRoundTrips);
        _exit(0);
    };
    fflush(nullptr);
    pid_t pids[2];
    for (unsigned side = 0; side < 2; ++side) {
        pids[side] = fork();
        if (pids[side] == 0) play(side);
    }
    bool ok = true;
    for (pid_t pid : pids) {
        int status = 0;
        if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0)
            ok = false;
    }
    const double ns = ok ? *result_ns : 0;
    munmap(mem, 4096);
    return ns;
}

PhaseResult run_phase(const Context &ctx, Kind kind, unsigned procs, Op op) {
    PhaseResult pr;
    pr.kind = kind;
    pr.procs = procs;
    pr.op = op;
    if (procs >= 2 && ctx.opt.pin) pr.transfer_ns = line_transfer_ns(ctx);
    memset(ctx.area->proc, 0, sizeof ctx.area->proc);
    int ready[2], go[2];
    if (pipe(ready) != 0 || pipe(go) != 0) {
        perror("pipe");
        return pr;
    }
    std::vector<pid_t> pids;
    fflush(nullptr);
    for (unsigned p = 0; p < procs; ++p) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            break;
        }
        if (pid == 0) {
            close(ready[0]);
            close(go[1]);
            pin_to(ctx, p);
            if (kind == Kind::kShmcache || kind == Kind::kShmcacheLocked) {
                if (kind == Kind::kShmcacheLocked) setenv("SHMCACHE_OPTIMISTIC_READS", "0", 1);
                ShmBackend b(*ctx.w, ctx.shm_name.c_str());
                child_run(ctx, b, p, op, ready[1], go[0]);
            } else if (kind == Kind::kMap) {
                MapBackend b(*ctx.w);
                child_run(ctx, b, p, op, ready[1], go[0]);
            } else {
#ifdef SHMC_BENCH_HAVE_LMDB
                LmdbBackend b(*ctx.w, ctx.lmdb_dir, ctx.lmdb_map_size);
                child_run(ctx, b, p, op, ready[1], go[0]);
#endif
                _exit(1);
            }
        }
        pids.push_back(pid);
    }
    close(ready[1]);
    close(go[0]);
    // Start everyone at once, after every process has opened its handle (and built its map).
    unsigned n_ready = 0;
    char c;
    while (n_ready < pids.size() && read(ready[0], &c, 1) == 1 && c == 1) ++n_ready;
    const double busy0 = machine_busy_s(), wall0 = now_s();
    if (n_ready == pids.size()) {
        std::string go_bytes(pids.size(), 'g');
        if (write(go[1], go_bytes.data(), go_bytes.size()) != ssize_t(go_bytes.size()))
            perror("write");
    }
    close(go[1]);
    close(ready[0]);
    bool all_ok = n_ready == procs;
    for (pid_t pid : pids) {
        int status = 0;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            all_ok = false;
            if (WIFSIGNALED(status))
                fprintf(stderr, "bench_engine: %s child %d killed by signal %d\n", kind_name(kind),
                        int(pid), WTERMSIG(status));
        }
    }
    const double busy1 = machine_busy_s(), wall1 = now_s();
    if (!all_ok) return pr;
    if (procs >= 2 && ctx.opt.pin) pr.transfer_after_ns = line_transfer_ns(ctx);

    std::vector<uint32_t> all;
    uint64_t hits = 0, gets = 0;
    for (unsigned p = 0; p < procs; ++p) {
        const ProcResult &r = ctx.area->proc[p];
        if (!r.ok) return pr;
        pr.ops_per_s += double(r.ops) / r.seconds;
        pr.ops_per_cpu_s += r.cpu_seconds > 0 ? double(r.ops) / r.cpu_seconds : 0;
        pr.cpu_share += r.seconds > 0 ? r.cpu_seconds / r.seconds / procs : 0;
        pr.errors += r.errors;
        hits += r.hits;
        gets += r.hits + r.misses;
        all.insert(all.end(), ctx.area->samples[p], ctx.area->samples[p] + r.n_samples);
    }
    std::sort(all.begin(), all.end());
    auto pct = [&](double q) {
        if (all.empty()) return 0.0;
        size_t i = std::min(all.size() - 1, size_t(q * double(all.size())));
        return double(all[i]) * ctx.ns_per_tick;
    };
    pr.p50_ns = pct(0.50);
    pr.p99_ns = pct(0.99);
    pr.p999_ns = pct(0.999);
    pr.hit_pct = gets ? 100.0 * double(hits) / double(gets) : 0;
    double ours = 0;
    uint64_t ops = 0, sleeps = 0;
    for (unsigned p = 0; p < procs; ++p) {
        ours += ctx.area->proc[p].cpu_seconds;
        ops += ctx.area->proc[p].ops;
        sleeps += ctx.area->proc[p].sleeps;
    }
    pr.sleeps_per_mop = ops ? double(sleeps) * 1e6 / double(ops) : 0;
    pr.other_load = wall1 > wall0 ? std::max(0.0, (busy1 - busy0 - ours) / (wall1 - wall0)) : 0;
    pr.disturbed = pr.other_load > kMaxOtherLoad;
    pr.ok = true;
    return pr;
}

// ---------------------------------------------------------------------------------------------
// Setup, teardown, report

std::string g_shm_name, g_lmdb_dir;

void cleanup() {
    if (!g_shm_name.empty()) shmc_unlink(g_shm_name.c_str(), 1);
    if (!g_lmdb_dir.empty()) {
        unlink((g_lmdb_dir + "/data.mdb").c_str());
        unlink((g_lmdb_dir + "/lock.mdb").c_str());
        rmdir(g_lmdb_dir.c_str());
    }
}

void on_signal(int sig) {
    cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

std::string cpu_model() {
    FILE *f = fopen("/proc/cpuinfo", "r");
    std::string model = "unknown";
    if (!f) return model;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            const char *p = strchr(line, ':');
            if (p) {
                model = p + 1;
                while (!model.empty() && (model.back() == '\n' || model.back() == ' '))
                    model.pop_back();
                while (!model.empty() && model.front() == ' ') model.erase(0, 1);
            }
            break;
        }
    }
    fclose(f);
    return model;
}

// The 1-minute load average: how busy the machine was (figures from a busy machine scale worse).
std::string loadavg() {
    FILE *f = fopen("/proc/loadavg", "r");
    char buf[64] = "?";
    if (f) {
        if (fscanf(f, "%63s", buf) != 1) strcpy(buf, "?");
        fclose(f);
    }
    return buf;
}

const PhaseResult *find(const std::vector<PhaseResult> &v, Kind k, unsigned procs, Op op) {
    for (const auto &r : v) {
        if (r.kind == k && r.procs == procs && r.op == op && r.ok) return &r;
    }
    return nullptr;
}

void usage() {
    fprintf(stderr,
            "usage: bench_engine [--keys N] [--value-size B] [--seconds S] [--repeats R] [--procs "
            "1,2]\n"
            "                    [--sample-every N] [--stripes N] [--strategy S] [--backends "
            "shmcache,shmcache-locked,map,lmdb]\n"
            "                    [--no-pin] [--no-warmup] [--json] [--json-file PATH]\n");
}

}  // namespace

int main(int argc, char **argv) {
    Workload w;
    Options opt;
    std::vector<unsigned> proc_counts{1, 2};
    std::vector<Kind> kinds{Kind::kShmcache, Kind::kShmcacheLocked, Kind::kMap};
#ifdef SHMC_BENCH_HAVE_LMDB
    kinds.push_back(Kind::kLmdb);
#endif
    uint32_t stripes = 64;
    uint32_t strategy = SHMC_STRATEGY_DEFAULT;
    bool json = false;
    std::string json_file;
    const double hit_ratio = 0.9;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc) {
                usage();
                exit(2);
            }
            return argv[++i];
        };
        if (a == "--keys")
            w.n_keys = strtoull(val().c_str(), nullptr, 10);
        else if (a == "--value-size")
            w.value_size = strtoull(val().c_str(), nullptr, 10);
        else if (a == "--seconds")
            opt.seconds = strtod(val().c_str(), nullptr);
        else if (a == "--repeats")
            opt.repeats = unsigned(strtoul(val().c_str(), nullptr, 10));
        else if (a == "--sample-every")
            opt.sample_every = unsigned(strtoul(val().c_str(), nullptr, 10));
        else if (a == "--stripes")
            stripes = uint32_t(strtoul(val().c_str(), nullptr, 10));
        else if (a == "--strategy") {
            std::string v = val();
            uint32_t i = 0;
            while (i < 8 && v != strategy_name(i)) ++i;
            if (i == 8) {
                usage();
                return 2;
            }
            strategy = i;
        } else if (a == "--no-pin")
            opt.pin = false;
        else if (a == "--no-warmup")
            opt.warmup = false;
        else if (a == "--json")
            json = true;
        else if (a == "--json-file")
            json_file = val();
        else if (a == "--procs" || a == "--backends") {
            std::string list = val();
            if (a == "--procs")
                proc_counts.clear();
            else
                kinds.clear();
            size_t pos = 0;
            while (pos < list.size()) {
                size_t comma = list.find(',', pos);
                std::string item =
                    list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
                if (a == "--procs") {
                    unsigned n = unsigned(strtoul(item.c_str(), nullptr, 10));
                    if (n < 1 || n > kMaxProcs) {
                        fprintf(stderr, "bench_engine: process counts are 1..%u\n", kMaxProcs);
                        return 2;
                    }
                    proc_counts.push_back(n);
                } else if (item == "shmcache") {
                    kinds.push_back(Kind::kShmcache);
                } else if (item == "shmcache-locked") {
                    kinds.push_back(Kind::kShmcacheLocked);
                } else if (item == "map") {
                    kinds.push_back(Kind::kMap);
                } else if (item == "lmdb") {
#ifdef SHMC_BENCH_HAVE_LMDB
                    kinds.push_back(Kind::kLmdb);
#else
                    fprintf(stderr, "bench_engine: built without LMDB\n");
                    return 2;
#endif
                } else {
                    usage();
                    return 2;
                }
                if (comma == std::string::npos) break;
                pos = comma + 1;
            }
        } else {
            usage();
            return 2;
        }
    }
    if (w.n_keys < 1 || w.value_size < 1 || opt.repeats < 1 || opt.sample_every < 1 ||
        (opt.sample_every & (opt.sample_every - 1)) != 0 || proc_counts.empty() || kinds.empty()) {
        usage();
        return 2;
    }
    const unsigned max_procs = *std::max_element(proc_counts.begin(), proc_counts.end());
    double t_start = now_s();
    const std::string load_before = loadavg();

    Context ctx;
    ctx.w = &w;
    ctx.opt = opt;
    ctx.ns_per_tick = calibrate_tsc();
    const double overhead_ns = timer_overhead_ticks() * ctx.ns_per_tick;
    {
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof set, &set) == 0) {
            for (int c = 0; c < CPU_SETSIZE; ++c) {
                if (CPU_ISSET(c, &set)) ctx.cpus.push_back(c);
            }
        }
        if (ctx.cpus.size() < max_procs)
            ctx.opt.pin = opt.pin =
                false;  // fewer CPUs than processes: let the scheduler place them
    }
    build_workload(w, max_procs, hit_ratio);
    void *mem = mmap(nullptr, sizeof(SharedArea), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    ctx.area = static_cast<SharedArea *>(mem);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    // shmcache: create and prefill a segment sized so that nothing is evicted: each entry takes
    // its header, key and value rounded up to 64 bytes (more than the 16-byte blocks it takes);
    // allow twice that per entry (hash imbalance between stripes) and 16 MiB for buckets and
    // control blocks.
    std::vector<std::string> notes;
    uint64_t shm_size = 0;
    shmc_info info;
    memset(&info, 0, sizeof info);
    shmc_cache *owner = nullptr;
    bool have_shm = std::find(kinds.begin(), kinds.end(), Kind::kShmcache) != kinds.end() ||
                    std::find(kinds.begin(), kinds.end(), Kind::kShmcacheLocked) != kinds.end();
    if (have_shm) {
        char name[96];
        snprintf(name, sizeof name, "shmc-bench-%d-%ld", int(getpid()), long(time(nullptr)));
        ctx.shm_name = g_shm_name = name;
        size_t entry = (48 + 16 + w.keys[0].size() + w.value_size + 63) / 64 * 64;
        shm_size = uint64_t(entry) * w.n_keys * 2 + (16ull << 20);
        shmc_options o;
        shmc_options_default(&o);
        o.size_bytes = shm_size;
        o.n_stripes = stripes;
        o.strategy = strategy;
        o.max_entries = 0;
        int rc = shmc_open(name, &o, &owner);
        if (rc != 0) {
            fprintf(stderr, "bench_engine: shmc_open(%s, %" PRIu64 " bytes): %s (%s)\n", name,
                    shm_size, shmc_strerror(rc), shmc_errmsg());
            return 1;
        }
        for (size_t i = 0; i < w.n_keys; ++i) {
            rc = shmc_set(owner, w.keys[i].data(), w.keys[i].size(), w.value.data(), w.value.size(),
                          0, 0);
            if (rc != 0) {
                fprintf(stderr, "bench_engine: prefill shmc_set(%s): %s (%s)\n", w.keys[i].c_str(),
                        shmc_strerror(rc), shmc_errmsg());
                cleanup();
                return 1;
            }
        }
        shmc_get_info(owner, &info);
    }
#ifdef SHMC_BENCH_HAVE_LMDB
    if (std::find(kinds.begin(), kinds.end(), Kind::kLmdb) != kinds.end()) {
        char tmpl[] = "/dev/shm/shmc-bench-lmdb-XXXXXX";
        if (!mkdtemp(tmpl)) {
            perror("mkdtemp /dev/shm");
            cleanup();
            return 1;
        }
        ctx.lmdb_dir = g_lmdb_dir = tmpl;
        ctx.lmdb_map_size = std::max<size_t>(1ull << 30, w.n_keys * (w.value_size + 64) * 8);
        int rc = lmdb_prefill(w, ctx.lmdb_dir, ctx.lmdb_map_size);
        if (rc != 0) {
            fprintf(stderr, "bench_engine: lmdb prefill: %s\n", mdb_strerror(rc));
            cleanup();
            return 1;
        }
    }
#endif

    // Interleaved rounds; the median-throughput round of each phase is kept. A round during which
    // other work on the machine used more than kMaxOtherLoad CPUs is set aside, and the phase is
    // run again (up to 2R extra times, within the retry deadline) until it has min(2, R)
    // undisturbed rounds.
    struct Phase {
        Kind kind;
        unsigned procs;
        Op op;
        std::vector<PhaseResult> rounds;
        uint64_t errors = 0;  // over every round
    };
    std::vector<Phase> phases;
    for (Kind k : kinds) {
        for (Op op : {Op::kGet, Op::kSet}) {
            for (unsigned n : proc_counts) phases.push_back({k, n, op, {}});
        }
    }
    for (unsigned r = 0; r < opt.repeats; ++r) {
        for (auto &ph : phases) {
            PhaseResult pr = run_phase(ctx, ph.kind, ph.procs, ph.op);
            if (!pr.ok)
                fprintf(stderr, "bench_engine: %s %u process(es) %s failed\n", kind_name(ph.kind),
                        ph.procs, ph.op == Op::kGet ? "get" : "set");
            ph.errors += pr.errors;
            ph.rounds.push_back(pr);
        }
    }
    // Retries stop 45 s after the start, so a busy machine cannot stretch the run much past a
    // minute.
    const double retry_deadline = t_start + 45.0;
    unsigned retried = 0, still_disturbed = 0;
    for (auto &ph : phases) {
        auto clean = [&] {
            return std::count_if(ph.rounds.begin(), ph.rounds.end(),
                                 [](const PhaseResult &r) { return r.ok && !r.disturbed; });
        };
        for (unsigned extra = 0; clean() < long(std::min(2u, opt.repeats)) &&
                                 extra < 2 * opt.repeats && now_s() < retry_deadline;
             ++extra) {
            PhaseResult pr = run_phase(ctx, ph.kind, ph.procs, ph.op);
            ph.errors += pr.errors;
            ph.rounds.push_back(pr);
            ++retried;
        }
        if (clean() == 0) ++still_disturbed;
    }
    std::vector<PhaseResult> results;
    for (auto &ph : phases) {
        std::vector<PhaseResult> ok;
        for (auto &r : ph.rounds) {
            if (r.ok && !r.disturbed) ok.push_back(r);
        }
        if (ok.empty()) {
            for (auto &r : ph.rounds) {
                if (r.ok) ok.push_back(r);
            }
        }
        if (ok.empty()) {
            results.push_back(ph.rounds.back());
            continue;
        }
        std::sort(ok.begin(), ok.end(), [](const PhaseResult &a, const PhaseResult &b) {
            return a.ops_per_s < b.ops_per_s;
        });
        results.push_back(ok[ok.size() / 2]);
        results.back().errors = ph.errors;
    }

    shmc_stats st;
    memset(&st, 0, sizeof st);
    if (owner) {
        shmc_get_stats(owner, &st);
        shmc_close(owner);
    }
    cleanup();
    munmap(mem, sizeof(SharedArea));
    double elapsed = now_s() - t_start;

    // Headline ratios.
    const PhaseResult *sg1 = find(results, Kind::kShmcache, 1, Op::kGet);
    const PhaseResult *sg2 = find(results, Kind::kShmcache, 2, Op::kGet);
    const PhaseResult *ss1 = find(results, Kind::kShmcache, 1, Op::kSet);
    const PhaseResult *ss2 = find(results, Kind::kShmcache, 2, Op::kSet);
    const PhaseResult *mg1 = find(results, Kind::kMap, 1, Op::kGet);
    double lat_ratio = sg1 && mg1 && mg1->p50_ns > 0 ? sg1->p50_ns / mg1->p50_ns : NAN;
    double lat_ratio_net = sg1 && mg1 && mg1->p50_ns - overhead_ns > 0
                               ? (sg1->p50_ns - overhead_ns) / (mg1->p50_ns - overhead_ns)
                               : NAN;
    double scale_get = sg1 && sg2 && sg1->ops_per_s > 0 ? sg2->ops_per_s / sg1->ops_per_s : NAN;
    double scale_get_cpu =
        sg1 && sg2 && sg1->ops_per_cpu_s > 0 ? sg2->ops_per_cpu_s / sg1->ops_per_cpu_s : NAN;
    double scale_set = ss1 && ss2 && ss1->ops_per_s > 0 ? ss2->ops_per_s / ss1->ops_per_s : NAN;

    notes.push_back("Keys \"user:100000\"..; " + std::to_string(w.n_keys) + " prefilled, " +
                    std::to_string(w.value_size) +
                    "-byte values; gets hit 90% (uniform over the prefilled "
                    "keys, misses uniform over as many absent keys); sets overwrite uniform random "
                    "prefilled keys.");
    notes.push_back(
        "Every process is forked and opens its own handle/environment; processes pinned to "
        "separate "
        "CPUs: " +
        std::string(opt.pin ? "yes" : "no") + ".");
    notes.push_back(
        "unordered_map+mutex is private to each process: with 2 processes each has its own map "
        "(no sharing), so its 2-process row is the no-sharing ideal, not a shared cache.");
#ifdef SHMC_BENCH_HAVE_LMDB
    notes.push_back(
        std::string("LMDB on /dev/shm, env flags ") + kLmdbFlagsText +
        "; a get is mdb_txn_renew + mdb_get + copy + mdb_txn_reset of one read txn per process; "
        "each set is its own write txn (begin, put, commit).");
#endif
    if (have_shm) {
        char buf[512];
        snprintf(buf, sizeof buf,
                 "shmcache segment %.0f MiB, %u stripes, strategy %s, %" PRIu64
                 " entries at end, %" PRIu64 " evictions (must be 0), %" PRIu64 " lock timeouts.",
                 double(shm_size) / 1048576.0, info.n_stripes, strategy_name(info.strategy),
                 st.entries, st.evictions, st.lock_timeouts);
        notes.push_back(buf);
        if (st.evictions != 0)
            fprintf(stderr,
                    "bench_engine: WARNING: %" PRIu64
                    " evictions; the segment was meant to hold every key\n",
                    st.evictions);
    }
    {
        char buf[512];
        snprintf(buf, sizeof buf,
                 "Latency: 1 op in %u timed with " BENCH_TIMER
                 " (%.3f ns/tick); the timer pair costs %.1f ns, included in "
                 "every figure. Each figure is the median-throughput round of %u rounds of %.2f s. "
                 "\"CPU had\": CPU "
                 "time / wall time of the measuring processes (below 100%%: the machine was busy, "
                 "or the processes waited "
                 "for a lock). \"Others' load\": CPUs used meanwhile by everything else (steal "
                 "included); rounds above "
                 "%.2f were retried.",
                 opt.sample_every, ctx.ns_per_tick, overhead_ns, opt.repeats, opt.seconds,
                 kMaxOtherLoad);
        notes.push_back(buf);
    }

    char date[64];
    time_t now = time(nullptr);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %Z", localtime(&now));
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    std::string model = cpu_model();

    auto write_json = [&](FILE *f) {
        fprintf(f,
                "{\n  \"benchmark\": \"bench_engine\",\n  \"date\": \"%s\",\n  \"nproc\": %ld,\n"
                "  \"cpu\": \"%s\",\n  \"shmcache_version\": \"%s\",\n",
                date, ncpu, model.c_str(), shmc_version());
        fprintf(f,
                "  \"config\": {\"keys\": %zu, \"value_size\": %zu, \"hit_ratio\": %.2f, "
                "\"seconds\": %.3f, "
                "\"repeats\": %u, \"sample_every\": %u, \"stripes\": %u, \"strategy\": \"%s\", "
                "\"pinned\": %s, "
                "\"timer_overhead_ns\": %.2f, \"warmup\": %s, \"loadavg_before\": \"%s\", "
                "\"lmdb_flags\": \"%s\"},\n",
                w.n_keys, w.value_size, hit_ratio, opt.seconds, opt.repeats, opt.sample_every,
                stripes, have_shm ? strategy_name(info.strategy) : strategy_name(strategy),
                opt.pin ? "true" : "false", overhead_ns, opt.warmup ? "true" : "false",
                load_before.c_str(),
#ifdef SHMC_BENCH_HAVE_LMDB
                kLmdbFlagsText
#else
                ""
#endif
        );
        fprintf(f, "  \"results\": [\n");
        for (size_t i = 0; i < results.size(); ++i) {
            const auto &r = results[i];
            fprintf(f,
                    "    {\"backend\": \"%s\", \"processes\": %u, \"op\": \"%s\", \"ok\": %s, "
                    "\"ops_per_s\": %.0f, \"ops_per_cpu_s\": %.0f, \"cpu_share\": %.3f, "
                    "\"other_load\": %.3f, \"disturbed\": %s, \"sleeps_per_mop\": %.1f, "
                    "\"p50_ns\": %.1f, \"p99_ns\": %.1f, \"p999_ns\": %.1f, \"hit_pct\": %.2f, "
                    "\"line_transfer_ns\": [%.1f, %.1f], \"errors\": %" PRIu64 "}%s\n",
                    kind_name(r.kind), r.procs, r.op == Op::kGet ? "get" : "set",
                    r.ok ? "true" : "false", r.ops_per_s, r.ops_per_cpu_s, r.cpu_share,
                    r.other_load, r.disturbed ? "true" : "false", r.sleeps_per_mop, r.p50_ns,
                    r.p99_ns, r.p999_ns, r.op == Op::kGet ? r.hit_pct : 0.0, r.transfer_ns, r.transfer_after_ns, r.errors,
                    i + 1 < results.size() ? "," : "");
        }
        auto num = [](double x) { return std::isnan(x) ? std::string("null") : std::to_string(x); };
        fprintf(f,
                "  ],\n  \"ratios\": {\"shmcache_get_p50_over_map_get_p50\": %s, "
                "\"shmcache_get_p50_over_map_get_p50_timer_subtracted\": %s, "
                "\"shmcache_get_throughput_2p_over_1p\": %s, "
                "\"shmcache_get_throughput_per_cpu_s_2p_over_1p\": %s, "
                "\"shmcache_set_throughput_2p_over_1p\": %s},\n",
                num(lat_ratio).c_str(), num(lat_ratio_net).c_str(), num(scale_get).c_str(),
                num(scale_get_cpu).c_str(), num(scale_set).c_str());
        fprintf(f, "  \"targets\": {\"get_p50_ratio_max\": 1.2, \"get_scaling_min\": 1.9, "
                   "\"set_scaling_min\": 1.2},\n");
        fprintf(f, "  \"extra_rounds\": %u,\n  \"phases_without_quiet_round\": %u,\n", retried,
                still_disturbed);
        fprintf(f, "  \"shmcache_evictions\": %" PRIu64 ",\n  \"elapsed_s\": %.1f\n}\n",
                st.evictions, elapsed);
    };
    if (!json_file.empty()) {
        FILE *f = fopen(json_file.c_str(), "w");
        if (f) {
            write_json(f);
            fclose(f);
        } else {
            fprintf(stderr, "bench_engine: %s: %s\n", json_file.c_str(), strerror(errno));
        }
    }
    if (json) {
        write_json(stdout);
        return 0;
    }

    printf("shmcache %s, %s, %ld CPUs (%s)\n\n", shmc_version(), date, ncpu, model.c_str());
    printf(
        "| backend | processes | get Mops/s | get p50 ns | get p99 ns | get p99.9 ns | get hit %% |"
        " set Mops/s | set p50 ns | set p99 ns | set p99.9 ns | CPU had, get/set | others' load, "
        "get/set |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (Kind k : kinds) {
        for (unsigned n : proc_counts) {
            const PhaseResult *g = find(results, k, n, Op::kGet);
            const PhaseResult *s = find(results, k, n, Op::kSet);
            printf("| %s | %u |", kind_name(k), n);
            if (g)
                printf(" %.2f | %.0f | %.0f | %.0f | %.1f |", g->ops_per_s / 1e6, g->p50_ns,
                       g->p99_ns, g->p999_ns, g->hit_pct);
            else
                printf(" failed | | | | |");
            if (s)
                printf(" %.2f | %.0f | %.0f | %.0f |", s->ops_per_s / 1e6, s->p50_ns, s->p99_ns,
                       s->p999_ns);
            else
                printf(" failed | | | |");
            printf(" %.0f%% / %.0f%% |", g ? 100 * g->cpu_share : 0.0,
                   s ? 100 * s->cpu_share : 0.0);
            printf(" %.2f%s / %.2f%s |\n", g ? g->other_load : 0.0,
                   g && g->disturbed ? " (busy)" : "", s ? s->other_load : 0.0,
                   s && s->disturbed ? " (busy)" : "");
        }
    }
    printf("\n");
    auto verdict = [](bool ok) { return ok ? "met" : "NOT met"; };
    if (!std::isnan(lat_ratio))
        printf(
            "- shmcache get p50 / unordered_map get p50 (1 process): **%.2fx** (target <= 1.2x: %s; "
            "%.2fx with the %.0f ns timer cost subtracted from both)\n",
            lat_ratio, verdict(lat_ratio <= 1.2), lat_ratio_net, overhead_ns);
    if (!std::isnan(scale_get))
        printf(
            "- shmcache get throughput, 2 processes / 1 process: **%.2fx** (target >= 1.9x: %s; "
            "per CPU-second "
            "actually received: %.2fx)\n",
            scale_get, verdict(scale_get >= 1.9), scale_get_cpu);
    if (!std::isnan(scale_set))
        printf("- shmcache set throughput, 2 processes / 1 process: **%.2fx** (target >= 1.2x: %s; "
               "one cache-line transfer between the two CPUs took %.0f ns before that round, %.0f ns "
               "after)\n",
               scale_set, verdict(scale_set >= 1.2), ss2 ? ss2->transfer_ns : 0.0,
               ss2 ? ss2->transfer_after_ns : 0.0);
    // Every quiet 2-process set round of shmcache, by where the host had put the two CPUs
    // (both transfer probes of the round near, or both far): the same ratio split by placement,
    // so that a run is readable whichever placement its median round happened to get.
    if (ss1 && ss1->ops_per_s > 0) {
        std::vector<double> near, far;
        unsigned mixed = 0;
        for (const auto &ph : phases) {
            if (ph.kind != Kind::kShmcache || ph.procs != 2 || ph.op != Op::kSet) continue;
            for (const auto &r : ph.rounds) {
                if (!r.ok || r.disturbed || r.transfer_ns <= 0) continue;
                const double lo = std::min(r.transfer_ns, r.transfer_after_ns);
                const double hi = std::max(r.transfer_ns, r.transfer_after_ns);
                if (hi < kNearTransferNs)
                    near.push_back(r.ops_per_s / ss1->ops_per_s);
                else if (lo >= kNearTransferNs)
                    far.push_back(r.ops_per_s / ss1->ops_per_s);
                else
                    ++mixed;
            }
        }
        auto median = [](std::vector<double> v) {
            std::sort(v.begin(), v.end());
            return v.empty() ? NAN : v[v.size() / 2];
        };
        auto fmt = [&](const std::vector<double> &v) {
            char buf[64];
            if (v.empty()) return std::string("no round");
            snprintf(buf, sizeof buf, "%.2fx over %zu round(s)", median(v), v.size());
            return std::string(buf);
        };
        printf("- shmcache set throughput, 2 processes / 1 process, by placement: %s with "
               "transfers under %.0f ns, %s with transfers above it, %u round(s) that moved\n",
               fmt(near).c_str(), kNearTransferNs, fmt(far).c_str(), mixed);
    }
    {
        const PhaseResult *l1 = find(results, Kind::kShmcacheLocked, 1, Op::kGet);
        const PhaseResult *l2 = find(results, Kind::kShmcacheLocked, 2, Op::kGet);
        if (sg1 && sg2 && l1 && l2)
            printf("- lock-free gets / locked gets, throughput: %.2fx with 1 process, %.2fx with 2 "
                   "(get p50 %.0f against %.0f ns)\n",
                   sg1->ops_per_s / l1->ops_per_s, sg2->ops_per_s / l2->ops_per_s, sg1->p50_ns,
                   l1->p50_ns);
    }
    for (unsigned n : proc_counts) {
        const PhaseResult *g = find(results, Kind::kShmcache, n, Op::kGet);
        const PhaseResult *s = find(results, Kind::kShmcache, n, Op::kSet);
        if (g && s)
            printf(
                "- shmcache, %u process(es): %.0f get and %.0f set sleeps per million operations "
                "(voluntary context "
                "switches: a lock wait that went to sleep in the kernel)\n",
                n, g->sleeps_per_mop, s->sleeps_per_mop);
    }
    for (Kind k : kinds) {
        if (k == Kind::kShmcache) continue;
        const PhaseResult *a = find(results, k, 1, Op::kGet), *b = find(results, k, 2, Op::kGet);
        if (a && b)
            printf("- %s get throughput, 2 processes / 1 process: %.2fx\n", kind_name(k),
                   b->ops_per_s / a->ops_per_s);
    }
    {
        std::string line;
        for (Kind k : kinds) {
            const PhaseResult *g = find(results, k, 2, Op::kGet), *s = find(results, k, 2, Op::kSet);
            if (!g || !s || g->transfer_ns <= 0) continue;
            char buf[160];
            snprintf(buf, sizeof buf, "%s%s %.0f-%.0f / %.0f-%.0f", line.empty() ? "" : "; ",
                     kind_name(k), g->transfer_ns, g->transfer_after_ns, s->transfer_ns,
                     s->transfer_after_ns);
            line += buf;
        }
        if (!line.empty())
            printf("- one cache-line transfer between the two CPUs, ns, measured before-after the "
                   "2-process get / set round shown: %s. Under 70 ns: the CPUs share an L3; "
                   "above it they do not, and contended sets (not gets) lose most of their "
                   "scaling (docs/benchmarks.md)\n",
                   line.c_str());
    }
    printf("\nNotes:\n");
    for (const auto &n : notes) printf("- %s\n", n.c_str());
    printf("- %u extra rounds run because the machine was busy; %u phases had no quiet round%s.\n",
           retried, still_disturbed,
           still_disturbed ? " (marked busy: their figures understate the engine)" : "");
    printf(
        "- Total run time %.1f s; 1-minute load average %s before, %s after (other work on the "
        "machine "
        "lowers the 2-process figures).\n",
        elapsed, load_before.c_str(), loadavg().c_str());
    for (const auto &r : results) {
        if (r.errors)
            printf("- WARNING: %s %u process(es) %s: %" PRIu64
                   " errors over all rounds (lock timeouts or failures)\n",
                   kind_name(r.kind), r.procs, r.op == Op::kGet ? "get" : "set", r.errors);
    }
    return 0;
}
