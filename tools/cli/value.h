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
// expiry. Returns a shmc return code.
int fetch_value(shmc_cache* cache, std::string_view key, std::string* out, int64_t* ttl_left_ms);

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
