// tiers.h - the Redis L2 on the command line: which tiers a verb acts on, attaching Redis to the
// segment handle, and how the endpoint is shown.
//
// With --redis URL (or $SHMCACHE_REDIS_URL) the key verbs act on both tiers by default, as the
// application does, and --tier l1|l2|both narrows them. Without a URL there is no L2 to ask:
// --tier l2 or both is then a usage error naming --redis, never a quiet L1-only run that an
// operator would take for a purge across hosts.
//
// The CLI attaches with SHMC_L2_NO_SUBSCRIBE. Each host elects one process to hold the
// invalidation subscription, and whoever wins it first drops every L1 entry that mirrors L2
// (invalidations published before it subscribed are lost). A command that lives for a second
// must never win: its exit would hand the subscription to another process, which drops them all
// again.
#ifndef SHMCACHE_CLI_TIERS_H
#define SHMCACHE_CLI_TIERS_H

#include <shmcache/shmcache.h>

#include <cstdint>
#include <string>

#include "segment.h"

namespace shmcache::cli {

// A key the probe looks up in L2 (stats, to learn whether Redis answers). It is in the
// "__shmcache__" space the library keeps for itself (its invalidation channel), so no
// application key is ever read by it.
inline constexpr const char* kProbeKey = "__shmcache__:cli:probe";

// The tier mask for --tier CHOICE ("l1", "l2", "both"; "" for the default: both with --redis,
// l1 without). Prints a usage error naming --redis and returns kExitUsage when L2 is asked
// without a URL; 0 otherwise.
int resolve_tiers(const Global& g, const char* verb, const std::string& choice, uint32_t* tiers);

// Attach g.redis to the handle (SHMC_L2_NO_SUBSCRIBE, every timeout = g.redis->timeout_ms). Does
// not connect: the first L2 call does. A bad URL is a usage error; returns the exit status.
// REQUIRES: g.redis is set.
int attach_l2(const Global& g, const char* verb, Cache* cache);

// One L2 lookup of kProbeKey: SHMC_OK if Redis answered (found or not), else the L2 error, with
// shmc_errmsg() saying why. Counts one L2 miss (or error) in the host-wide figures.
int probe_l2(shmc_cache* cache);

// "L1", "L2" or "L1 and L2".
std::string tier_text(uint32_t tiers);

// The URL with its password replaced by "***" (in the userinfo, or a password= query
// parameter), so that output and logs never carry the secret.
std::string redacted_url(const std::string& url);

// The redacted URL and, when set, the namespace: "redis://h:6379/0, namespace 'app:'".
std::string l2_where(const RedisOptions& r);

// The Redis glob that purge SCANs for in L2: the namespace with its glob metacharacters escaped,
// then the pattern with "[!" written "[^" (Redis negates a class with '^' only). The library
// does the same translation; this copy only tells an operator what to list with redis-cli.
std::string redis_scan_pattern(const RedisOptions& r, const std::string& pattern);

}  // namespace shmcache::cli

#endif
