// ttl.h - TTLs as operators write them (seconds, fractions allowed) to milliseconds for shmc_set.
//
// Header-only so that warm's line parser, which is fuzzed alone, needs no library to link.
#ifndef SHMCACHE_CLI_TTL_H
#define SHMCACHE_CLI_TTL_H

#include <cmath>
#include <cstdint>

namespace shmcache::cli {

inline constexpr double kMaxTtlSeconds = 100.0 * 365 * 24 * 3600;  // 100 years

// False if seconds is negative, not finite, or over kMaxTtlSeconds. Rounds up, so that a small
// positive TTL never becomes 0 ("never expires").
inline bool ttl_to_ms(double seconds, uint64_t* ms) {
    if (!std::isfinite(seconds) || seconds < 0 || seconds > kMaxTtlSeconds) return false;
    *ms = uint64_t(std::ceil(seconds * 1000.0));
    return true;
}

}  // namespace shmcache::cli

#endif
