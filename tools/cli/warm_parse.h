// warm_parse.h - one line of a warm file into one record, with no I/O and no cache access.
//
// Kept apart from the driver (warm.cpp) so it can be fuzzed on its own: its input is whatever a
// deploy script produced, and it must turn any line into either a record or a reason, never a
// crash. It uses shmcache.h only for constants (key limit, serializer ids).
//
// A line is one JSON object (JSON Lines):
//   {"key": "...", "value": <any JSON>, "ttl": seconds}   stored as compact JSON text (SER_JSON)
//   {"key": "...", "value_b64": "<base64>"}                stored as the decoded bytes (SER_RAW)
//   {"key": "...", "text": "..."}                          stored as the text (SER_STR)
// "ttl" is optional (a number of seconds, 0 = never expires; absent or null = the run's default).
// Other members are ignored. A line holding only whitespace is blank.
#ifndef SHMCACHE_CLI_WARM_PARSE_H
#define SHMCACHE_CLI_WARM_PARSE_H

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace shmcache::cli {

struct WarmRecord {
    std::string key;
    uint32_t serializer = 0;         // SHMC_SER_JSON, SHMC_SER_RAW or SHMC_SER_STR
    std::string payload;             // the bytes to wrap in the envelope
    std::optional<uint64_t> ttl_ms;  // unset: use the run's default
};

enum class WarmLine { kRecord, kBlank, kBad };

// Parse one line (without its newline; a trailing '\r' is ignored). kRecord fills *out; kBad
// sets *reason to a short phrase for "line N: <reason>".
WarmLine parse_warm_line(std::string_view line, WarmRecord* out, std::string* reason);

}  // namespace shmcache::cli

#endif
