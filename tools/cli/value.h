// value.h - reading whole values out of the cache and the value envelope around them.
//
// The CLI stores and reads values in the envelope of shmcache.h (shmc_encode/shmc_decode), the
// format the Python package reads, so that a key set or warmed here is a hit for the
// application, and a value the application stored can be shown here.
#ifndef SHMCACHE_CLI_VALUE_H
#define SHMCACHE_CLI_VALUE_H

#include <shmcache/shmcache.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace shmcache::cli {

// Copy the stored bytes of key into *out (growing the buffer when the value is larger than
// expected; a value replaced meanwhile by a larger one is read again). *ttl_left_ms: -1 for no
// expiry. `tiers` (SHMC_TIER_*) says where to look: L1 first, then L2 on an L1 miss; *served_by
// gets the tier that answered. An L2 value is never copied into L1: the CLI does not hold the
// host's invalidation subscription, so a copy it made could outlive a change made on another
// host. Returns a shmc return code: an L1 lock timeout followed by an L2 miss is reported as the
// lock timeout (the key may well be in L1).
int fetch_value(shmc_cache* cache, std::string_view key, uint32_t tiers, std::string* out,
                int64_t* ttl_left_ms, uint32_t* served_by);

// What a stored value holds.
struct Decoded {
    bool envelope = false;    // false: not an envelope; payload is the stored bytes
    bool compressed = false;  // the envelope held a zstd frame
    uint32_t serializer = SHMC_SER_RAW;
    std::string payload;
};

// Decode stored bytes. A value that is not an envelope (or is a damaged one) is returned as is,
// with envelope = false and *why saying what was wrong. Always succeeds.
Decoded decode_value(std::string_view stored, std::string* why);

// Wrap payload in an envelope (zstd above compress_threshold when that is smaller; 0 = never).
// Returns a shmc return code.
int encode_value(uint32_t serializer, std::string_view payload, size_t compress_threshold,
                 std::string* out);

}  // namespace shmcache::cli

#endif
