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

// The checksum an entry carries: XXH3 of the value seeded with the key's hash mixed with what
// belongs to the value: its flags (a binding's type tag), its L2 epoch, its stale window and its
// compute time. So a damaged copy of any of them is caught like a damaged value, and so is a
// writer killed between writing them and writing the value (an in-place overwrite). With all of
// them zero (a plain set of untagged bytes) the seed is the key's hash alone.
inline uint32_t entry_checksum(uint64_t key_hash, uint32_t flags, uint8_t l2_epoch,
                               uint32_t stale_ms, uint32_t compute_ms, const void* value,
                               size_t len) {
    // Multiplies by odd constants spread the fields over the seed and map zeros to zero.
    const uint64_t timing = (uint64_t(compute_ms) << 32 | stale_ms) * 0x9E3779B97F4A7C15ull;
    const uint64_t tag = (uint64_t(l2_epoch) << 32 | flags) * 0xC2B2AE3D27D4EB4Full;
    return uint32_t(
        XXH3_64bits_withSeed(value, len, key_hash ^ timing ^ (tag << 29 | tag >> 35)));
}

}  // namespace shmcache::shm

#endif
