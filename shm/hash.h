// hash.h - the two hashes of the hot path: the key's hash and an entry's checksum (XXH3).
//
// Inlined from Debian's xxhash.h (XXH_INLINE_ALL) rather than called in libxxhash.so: a get
// hashes its key and verifies its value's checksum, and the library calls cost about a quarter
// of a hit (perf on bench/bench_engine's hot set); inlined, the compiler also specializes them
// for the lengths at hand.
#ifndef SHMCACHE_SHM_HASH_H
#define SHMCACHE_SHM_HASH_H

#include <cstddef>
#include <cstdint>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace shmcache::shm {

inline uint64_t hash_key(const void* key, size_t len) { return XXH3_64bits(key, len); }

// The checksum an entry carries: XXH3 of the value seeded with the key's hash mixed with the
// entry's stale window and compute time, so that a damaged copy of either is caught like a
// damaged value. With both zero (every plain set) the seed is the key's hash alone.
inline uint32_t entry_checksum(uint64_t key_hash, uint32_t stale_ms, uint32_t compute_ms,
                               const void* value, size_t len) {
    // A multiply by an odd constant spreads both fields over the seed and maps (0, 0) to 0.
    const uint64_t meta = (uint64_t(compute_ms) << 32 | stale_ms) * 0x9E3779B97F4A7C15ull;
    return uint32_t(XXH3_64bits_withSeed(value, len, key_hash ^ meta));
}

}  // namespace shmcache::shm

#endif
