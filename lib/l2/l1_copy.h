// l1_copy.h - how long an L1 copy of a Redis value may live, from the key's PTTL (shmc_tget's
// fill and shmc_fetch's, docs/l2.md).
//
// Redis answers PTTL with the milliseconds left, -1 for a key without a TTL, -2 for a key that is
// gone, and 0 during a key's last millisecond, while a GET in the same round trip still returns
// its value. Reading that 0 as "no TTL" would keep the copy for fill_ttl_ms (memory_cache_ttl,
// minutes by default) after Redis dropped the key, so a value about to expire is served but not
// copied.
#ifndef SHMCACHE_L2_L1_COPY_H
#define SHMCACHE_L2_L1_COPY_H

#include <algorithm>
#include <cstdint>

namespace shmcache::l2 {

struct L1Copy {
    bool fill = false;        // keep a copy in L1
    uint64_t ttl_ms = 0;      // for this long (0: never expires)
    int64_t ttl_left_ms = -1; // what the caller is told: ms left in Redis, -1 no TTL
};

// fill_ttl_ms caps the copy (0: the Redis TTL alone). pttl as PTTL answered; a reply that was not
// an integer is passed as -1 (no TTL known).
inline L1Copy l1_copy_from_pttl(long long pttl, uint64_t fill_ttl_ms) {
    L1Copy c;
    if (pttl == -1) {  // no TTL in Redis: the cap alone
        c.fill = true;
        c.ttl_ms = fill_ttl_ms;
        return c;
    }
    if (pttl <= 0) {  // gone (-2), or in its last millisecond (0): serve, do not copy
        c.ttl_left_ms = pttl == 0 ? 1 : -1;
        return c;
    }
    c.fill = true;
    c.ttl_ms = fill_ttl_ms ? std::min<uint64_t>(fill_ttl_ms, uint64_t(pttl)) : uint64_t(pttl);
    c.ttl_left_ms = pttl;
    return c;
}

}  // namespace shmcache::l2

#endif
