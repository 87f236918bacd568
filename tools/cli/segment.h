// segment.h - opening the segment for one verb, and turning C ABI errors into messages and exit
// statuses.
//
// Verbs that only read or remove attach with SHMC_OPEN_NO_CREATE: an operator who mistypes a
// name must get "no such segment", not a fresh empty 64 MiB cache that then reports a perfect
// zero. Only `set` and `warm` create, with the geometry given on their command line.
#ifndef SHMCACHE_CLI_SEGMENT_H
#define SHMCACHE_CLI_SEGMENT_H

#include <shmcache/shmcache.h>

#include <cstdint>
#include <optional>
#include <string>

namespace shmcache::cli {

// The Redis L2, from --redis, --redis-prefix and --redis-timeout-ms (or their environment
// variables). Set only when a URL was given; the verbs that use tiers attach it (tiers.h).
struct RedisOptions {
    std::string url;             // passed to the library as is; shown redacted (tiers.h)
    std::string prefix;          // the L2 namespace (shmc_l2_options.key_prefix); "" for none
    uint32_t timeout_ms = 1000;  // bounds each L2 call, the connection included
};

// Options every verb shares.
struct Global {
    std::optional<std::string> name;  // --name; unset: the library resolves $SHMCACHE_NAME
    std::optional<RedisOptions> redis;
};

// Geometry for a segment that `set` or `warm` may create.
struct CreateOptions {
    uint64_t size_mb = 64;
    uint32_t stripes = 64;
    bool size_given = false;
    bool stripes_given = false;
};

// The name the library will use: --name, else $SHMCACHE_NAME, else "shmcache".
std::string resolved_name(const Global& g);

// An open handle, closed on destruction.
class Cache {
public:
    Cache() = default;
    Cache(const Cache&) = delete;
    Cache& operator=(const Cache&) = delete;
    ~Cache() { shmc_close(c_); }
    shmc_cache* get() const { return c_; }
    shmc_cache** out() { return &c_; }

private:
    shmc_cache* c_ = nullptr;
};

// Attach to an existing segment. On failure prints why (naming the verb) and returns the exit
// status; 0 on success. When `tiers` includes SHMC_TIER_L2 the Redis L2 of g.redis is attached
// to the handle too (see attach_l2 in tiers.h).
int open_existing(const Global& g, const char* verb, Cache* cache, uint32_t tiers = SHMC_TIER_L1);

// Attach, creating the segment with `create` if it does not exist (a note on stderr says so,
// and says when --size-mb/--stripes were ignored because the segment already existed). `tiers`
// as for open_existing.
int open_or_create(const Global& g, const char* verb, const CreateOptions& create, Cache* cache,
                   uint32_t tiers = SHMC_TIER_L1);

// The exit status for a C ABI return code.
int exit_code_for(int rc);

// Print "shmcache-cli VERB: <what>: <strerror>: <errmsg>" (or a clearer sentence for the codes
// an operator meets: no segment, version, permission, lock timeout, Redis unavailable) and
// return exit_code_for(rc).
// Call it right after the failing call, before any other shmc_* call replaces shmc_errmsg().
int report(const Global& g, const char* verb, int rc, const std::string& what = "");

// Print "shmcache-cli VERB: message" on stderr.
void warn(const char* verb, const std::string& message);

}  // namespace shmcache::cli

#endif
