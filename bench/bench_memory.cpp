// bench_memory.cpp - how much of a segment holds live data, under churn, for several value-size
// distributions; and the per-entry overhead.
//
//   bench_memory [--size-mb N] [--seconds-per-case S]
//
// For each distribution, a segment of N MiB (default 64) is filled and then churned: random sets
// over a key space several times larger than what fits (so eviction runs all the time), with
// each set drawing a fresh value size, and 5% deletes. After a warm-up of 3x the capacity in
// bytes written, the host-wide stats are sampled every 1000 operations:
//   live     = bytes_data / bytes_capacity: key and value bytes of live entries, over the memory
//              the segment has for entries (the issue 7 target: at least 85% with log-normal
//              values of 64 B to 64 KiB);
//   used     = bytes_used / bytes_capacity: blocks held by entries (the rest is free);
//   overhead = (bytes_used - bytes_data) / entries: header, extent headers and block rounding.
// The table reports the mean and the minimum of the samples, and beside them what memcached
// holds in the same memory after the same operations (memcached_peer.h).
#include <shmcache/shmcache.h>
#include <unistd.h>

#include "memcached_peer.h"
#include "strategy.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace {

struct Case {
    const char* name;
    std::function<size_t(std::mt19937_64&)> size;
};

std::string filler_value() {
    std::string value(64 * 1024 + 16, 'x');
    for (size_t i = 0; i < value.size(); ++i) value[i] = char('a' + i % 26);
    return value;
}

struct Result {
    double live_mean = 0, live_min = 1, used_mean = 0, overhead_mean = 0, entries_mean = 0;
    uint64_t ops = 0, evictions = 0;
    uint64_t keyspace = 0;
};

// The operations of one case, the same for every cache given the same keyspace: a random key of
// the keyspace, deleted 1 time in 20, else set to a value of a size the case draws.
struct OpStream {
    const Case& c;
    uint64_t keyspace;
    std::mt19937_64 rng{42};
    char key[32] = {};
    int klen = 0;
    bool is_delete = false;
    size_t vlen = 0;

    void next() {
        klen = std::snprintf(key, sizeof key, "k%llu", (unsigned long long)(rng() % keyspace));
        is_delete = rng() % 20 == 0;
        if (!is_delete) vlen = c.size(rng);
    }
};

// The same operations sent to memcached -m size_mb; its entries at the end.
bool run_memcached(const Case& c, uint64_t size_mb, const Result& shm,
                   shmcache::bench::MemcachedStats* out, std::string* why) {
    shmcache::bench::MemcachedPeer mc(size_mb, 1024 * 1024);
    if (!mc.ok()) {
        *why = mc.error();
        return false;
    }
    const std::string value = filler_value();
    OpStream ops{c, shm.keyspace, std::mt19937_64(42), {}};
    for (uint64_t i = 0; i < shm.ops; ++i) {
        ops.next();
        if (ops.is_delete)
            mc.del(ops.key, size_t(ops.klen));
        else
            mc.set(ops.key, size_t(ops.klen), value.data(), ops.vlen);
    }
    if (!mc.stats(out)) {
        *why = mc.error();
        return false;
    }
    return true;
}

Result run_case(const Case& c, uint64_t size_mb, double seconds) {
    const std::string name = "shmc-bench-mem-" + std::to_string(getpid());
    shmc_unlink(name.c_str(), 1);
    shmc_options o;
    shmc_options_default(&o);
    o.size_bytes = size_mb << 20;
    o.max_value_len = 64 * 1024;
    shmc_cache* cache = nullptr;
    if (shmc_open(name.c_str(), &o, &cache) != 0) {
        std::fprintf(stderr, "open: %s\n", shmc_errmsg());
        std::exit(1);
    }
    shmc_stats st;
    shmc_get_stats(cache, &st);
    const uint64_t capacity = st.bytes_capacity;
    const std::string value = filler_value();
    // A key space of about 4x what fits at the mean size, so the cache churns all the time.
    std::mt19937_64 size_rng(7);
    double mean = 0;
    for (int i = 0; i < 10000; ++i) mean += double(c.size(size_rng));
    mean /= 10000;
    const uint64_t keyspace = std::max<uint64_t>(1000, uint64_t(4.0 * double(capacity) / (mean + 40)));
    OpStream op{c, keyspace, std::mt19937_64(42), {}};
    uint64_t written = 0, ops = 0, samples = 0;
    Result r;
    r.keyspace = keyspace;
    const auto t0 = std::chrono::steady_clock::now();
    auto elapsed = [&] {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    while (elapsed() < seconds || samples < 10) {
        op.next();
        if (op.is_delete) {
            shmc_del(cache, op.key, size_t(op.klen));
        } else {
            if (shmc_set(cache, op.key, size_t(op.klen), value.data(), op.vlen, 0, 0) != 0) {
                std::fprintf(stderr, "set: %s\n", shmc_errmsg());
                // Not left behind in /dev/shm: a bench run that fails must not eat its memory.
                shmc_close(cache);
                shmc_unlink(name.c_str(), 1);
                std::exit(1);
            }
            written += op.vlen + size_t(op.klen);
        }
        ++ops;
        if (written > 3 * capacity && ops % 1000 == 0) {
            shmc_get_stats(cache, &st);
            const double live = double(st.bytes_data) / double(st.bytes_capacity);
            r.live_mean += live;
            r.live_min = std::min(r.live_min, live);
            r.used_mean += double(st.bytes_used) / double(st.bytes_capacity);
            r.overhead_mean += st.entries ? double(st.bytes_used - st.bytes_data) / double(st.entries) : 0;
            r.entries_mean += double(st.entries);
            ++samples;
        }
        if (elapsed() > 4 * seconds + 30) break;  // a distribution too large to warm up in time
    }
    shmc_get_stats(cache, &st);
    if (samples) {
        r.live_mean /= double(samples);
        r.used_mean /= double(samples);
        r.overhead_mean /= double(samples);
        r.entries_mean /= double(samples);
    }
    r.ops = ops;
    r.evictions = st.evictions;
    shmc_close(cache);
    shmc_unlink(name.c_str(), 1);
    return r;
}

size_t clamp_size(double v) { return size_t(std::clamp(v, 64.0, 65536.0)); }

}  // namespace

int main(int argc, char** argv) {
    uint64_t size_mb = 64;
    double seconds = 4;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--size-mb") && i + 1 < argc) {
            size_mb = std::strtoull(argv[++i], nullptr, 10);
        } else if (!std::strcmp(argv[i], "--seconds-per-case") && i + 1 < argc) {
            seconds = std::atof(argv[++i]);
        } else {
            std::fprintf(stderr, "usage: bench_memory [--size-mb N] [--seconds-per-case S]\n");
            return 2;
        }
    }
    // Log-normal with median 1 KiB and sigma 1.5: about 2% of draws below 64 B and 0.3% above
    // 64 KiB, clipped to [64 B, 64 KiB] (the "log-normal 64 B to 64 KiB").
    std::lognormal_distribution<double> lognormal(std::log(1024.0), 1.5);
    std::uniform_int_distribution<size_t> uniform3000(0, 3000);
    const Case cases[] = {
        {"log-normal 64 B - 64 KiB (median 1 KiB)", [&](std::mt19937_64& g) { return clamp_size(lognormal(g)); }},
        {"uniform 0 - 3000 B", [&](std::mt19937_64& g) { return uniform3000(g); }},
        {"fixed 100 B", [](std::mt19937_64&) { return size_t(100); }},
        {"fixed 1000 B", [](std::mt19937_64&) { return size_t(1000); }},
        {"fixed 16 KiB", [](std::mt19937_64&) { return size_t(16384); }},
    };
    std::printf("Segment %llu MiB, default geometry and strategy (64 stripes, %s), %.0f s of churn "
                "per case after a warm-up of 3x the capacity written.\n\n",
                (unsigned long long)size_mb,
                shmcache::bench::strategy_name(shmcache::bench::resolve_default_strategy()), seconds);
    std::printf("| values | live data, mean | live data, min | blocks in use | overhead per entry | entries | evictions | memcached -m %llu entries | memcached items' bytes | memcached hash table / resident | shmcache / memcached entries | the same, hash tables counted |\n"
                "|---|---|---|---|---|---|---|---|---|---|---|---|\n",
                (unsigned long long)size_mb);
    bool target_met = true;
    double ratio_100 = 0, ratio_100_with_index = 0;
    std::string memcached_version, memcached_error;
    for (const Case& c : cases) {
        const Result r = run_case(c, size_mb, seconds);
        shmcache::bench::MemcachedStats mc;
        std::string why;
        const bool have_mc = run_memcached(c, size_mb, r, &mc, &why);
        std::printf("| %s | %.1f%% | %.1f%% | %.1f%% | %.0f B | %.0f | %llu |", c.name,
                    100 * r.live_mean, 100 * r.live_min, 100 * r.used_mean, r.overhead_mean,
                    r.entries_mean, (unsigned long long)r.evictions);
        if (have_mc && mc.curr_items) {
            const double ratio = r.entries_mean / double(mc.curr_items);
            // The segment's size counts its own hash index; memcached's is outside -m. Counted
            // in, memcached's items are scaled to what slabs and hash table would hold together
            // in the segment's size.
            const double mc_memory = double(size_mb << 20) + double(mc.hash_bytes);
            const double ratio_with_index =
                r.entries_mean / (double(mc.curr_items) * double(size_mb << 20) / mc_memory);
            std::printf(" %llu | %.1f%% | %.1f / %.1f MiB | %.2fx | %.3fx |\n",
                        (unsigned long long)mc.curr_items,
                        100.0 * double(mc.bytes) / double(size_mb << 20),
                        double(mc.hash_bytes) / (1 << 20), double(mc.resident_bytes) / (1 << 20),
                        ratio, ratio_with_index);
            if (std::strcmp(c.name, "fixed 100 B") == 0) {
                ratio_100 = ratio;
                ratio_100_with_index = ratio_with_index;
            }
        } else {
            std::printf(" failed | | | | |\n");
            if (memcached_error.empty()) memcached_error = why;
        }
        if (&c == &cases[0]) target_met = r.live_mean >= 0.85;
        std::fflush(stdout);
    }
    std::printf("\nTarget (issue 7): at least 85%% of the segment live under log-normal values: %s\n",
                target_met ? "PASS" : "FAIL");
    if (ratio_100 > 0)
        std::printf("Target (issue 15): at 100 B values, at least 1.3x the entries memcached holds "
                    "in the same memory: %.2fx, %s\n",
                    ratio_100, ratio_100 >= 1.3 ? "PASS" : "FAIL");
    if (ratio_100_with_index > 0)
        std::printf("(Counting memcached's hash table, which lives outside -m, as the segment "
                    "counts its own: %.3fx.)\n",
                    ratio_100_with_index);
    std::printf("\nmemcached: the same operations (keys, sizes, deletes, in order) sent to a "
                "memcached -m %llu -t 1 started on loopback for each case (pipelined, noreply); "
                "its curr_items after the last one, and its `bytes` (items with their headers) over the "
                "memory it was given. Outside that memory it keeps its hash table (`hash_bytes`: a word per "
                "bucket, doubled when it holds 1.5 items a bucket) and the rest of the process "
                "(VmRSS, about 4.5 MiB when empty); the segment's size includes its index. "
                "shmcache's entries are the mean over the churn samples. With "
                "mixed sizes the counts are not like for like: memcached splits its memory among "
                "slab classes, and the items it holds are smaller than the mix on average (its "
                "bytes over its items), so it holds more of them; compare live data there.%s%s\n",
                (unsigned long long)size_mb, memcached_error.empty() ? "" : " memcached failed: ",
                memcached_error.c_str());
    return memcached_error.empty() ? 0 : 1;
}
