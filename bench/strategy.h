// strategy.h - the benchmarks' names for eviction strategies, and the strategy the engine
// resolves SHMC_STRATEGY_DEFAULT to, for their headings.
#ifndef SHMCACHE_BENCH_STRATEGY_H
#define SHMCACHE_BENCH_STRATEGY_H

#include <shmcache/shmcache.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>

namespace shmcache::bench {

// The names bench/replay and bench_engine take on their command lines (shmc_strategy order).
inline const char* strategy_name(uint32_t s) {
    static const char* const kNames[] = {"default", "lru",   "lfu",    "fifo",
                                         "ttl",     "sieve", "s3fifo", "wtinylfu"};
    return s < sizeof kNames / sizeof kNames[0] ? kNames[s] : "?";
}

// The strategy a segment created with SHMC_STRATEGY_DEFAULT runs, found by creating a small one
// and asking it; SHMC_STRATEGY_DEFAULT itself if that fails.
inline uint32_t resolve_default_strategy() {
    char name[96];
    std::snprintf(name, sizeof name, "shmc-bench-probe-%d", int(getpid()));
    shmc_unlink(name, 1);
    shmc_options o;
    shmc_options_default(&o);
    o.size_bytes = 1u << 20;
    o.n_stripes = 1;
    o.strategy = SHMC_STRATEGY_DEFAULT;
    shmc_cache* cache = nullptr;
    uint32_t out = SHMC_STRATEGY_DEFAULT;
    if (shmc_open(name, &o, &cache) == 0) {
        shmc_info info;
        if (shmc_get_info(cache, &info) == 0) out = info.strategy;
        shmc_close(cache);
        shmc_unlink(name, 1);
    }
    return out;
}

}  // namespace shmcache::bench

#endif
