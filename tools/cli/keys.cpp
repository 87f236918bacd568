// keys.cpp - the pattern verbs: keys (list) and purge (remove).
//
// Both walk the stripes one at a time through the C ABI (shmc_scan, shmc_purge), never holding
// two locks, so they can run against a busy production cache. A listing is a snapshot per
// stripe: a key printed may be gone a moment later, and keys written meanwhile may be missed.
// Keys are printed one per line, escaped (escape_bytes), so a key holding a newline or terminal
// control bytes cannot break the listing or the terminal.
//
// The pattern is checked with shmc_glob_match before anything runs, so a malformed pattern is a
// usage error with a clear message rather than a half-done walk.
//
// With the Redis L2 (tiers.h), purge removes from L2 first (SCAN + UNLINK in the namespace,
// inside the library, then an invalidation published so other hosts drop their L1 copies) and
// then from L1, the order that keeps an application on this host from refilling L1 with a value
// Redis is about to lose. Each tier is one call, so each gets its own count and its own error.
// `keys` and `purge --dry-run` list L1 only: the C ABI has no call that lists Redis keys.
#include <shmcache/shmcache.h>

#include <cstdio>

#include "commands.h"
#include "exit_codes.h"
#include "format.h"
#include "tiers.h"

namespace shmcache::cli {

namespace {

// Validate a glob pattern; prints the error and returns the exit status if it is malformed.
int check_pattern(const char* verb, const std::string& pattern) {
    if (shmc_glob_match(pattern.data(), pattern.size(), "", 0) == SHMC_E_BAD_PATTERN) {
        warn(verb, "bad pattern '" + escape_bytes(pattern) +
                       "': an unclosed '[' or a trailing '\\' (glob syntax: * ? [abc] [a-z] "
                       "[!a] and \\ to escape)");
        return kExitUsage;
    }
    return 0;
}

struct Listing {
    uint64_t limit = 0;  // 0: no limit
    bool long_format = false;
    uint64_t shown = 0;
    bool truncated = false;
};

int print_key(const void* key, size_t key_len, size_t value_len, int64_t ttl_left_ms, void* ctx) {
    auto* l = static_cast<Listing*>(ctx);
    if (l->limit && l->shown == l->limit) {
        l->truncated = true;  // one more than the limit exists: stop the walk here
        return 1;
    }
    const std::string k = escape_bytes({static_cast<const char*>(key), key_len});
    if (l->long_format) {
        const std::string ttl = ttl_left_ms < 0 ? "-" : strf("%.1fs", double(ttl_left_ms) / 1000.0);
        std::printf("%10zu %12s  %s\n", value_len, ttl.c_str(), k.c_str());
    } else {
        std::printf("%s\n", k.c_str());
    }
    ++l->shown;
    return 0;
}

}  // namespace

int run_keys(const Global& g, const KeysOptions& o) {
    if (int e = check_pattern("keys", o.pattern)) return e;
    Cache cache;
    if (int e = open_existing(g, "keys", &cache)) return e;
    Listing l;
    l.limit = o.limit;
    l.long_format = o.long_format;
    if (o.long_format) std::printf("%10s %12s  %s\n", "bytes", "ttl", "key");
    int rc = shmc_scan(cache.get(), o.pattern.data(), o.pattern.size(), print_key, &l);
    std::fflush(stdout);
    if (rc != SHMC_OK) return report(g, "keys", rc, "listing stopped early");
    if (l.truncated)
        warn("keys", strf("stopped at the limit of %llu keys; more match (--limit N, 0 for no "
                          "limit)",
                          (unsigned long long)o.limit));
    return kExitOk;
}

int run_purge(const Global& g, const PurgeOptions& o) {
    if (int e = check_pattern("purge", o.pattern)) return e;
    uint32_t tiers = 0;
    if (int e = resolve_tiers(g, "purge", o.tier, &tiers)) return e;
    const std::string pat = escape_bytes(o.pattern);
    if (o.dry_run && (tiers & SHMC_TIER_L2)) {
        warn("purge",
             "--dry-run lists L1 only (the library cannot list Redis keys without "
             "removing them): add --tier l1. To see the L2 keys purge would remove: "
             "redis-cli --scan --pattern '" +
                 escape_bytes(redis_scan_pattern(*g.redis, o.pattern)) + "'");
        return kExitUsage;
    }
    Cache cache;
    if (int e = open_existing(g, "purge", &cache, tiers)) return e;
    if (o.dry_run) {
        Listing l;
        int rc = shmc_scan(cache.get(), o.pattern.data(), o.pattern.size(), print_key, &l);
        std::printf("dry run: %llu keys match '%s'; nothing removed\n", (unsigned long long)l.shown,
                    pat.c_str());
        std::fflush(stdout);
        if (rc != SHMC_OK) return report(g, "purge", rc, "some stripes were not listed");
        return kExitOk;
    }
    int status = kExitOk;
    if (tiers & SHMC_TIER_L2) {
        uint64_t removed = 0;
        int rc = shmc_tpurge(cache.get(), o.pattern.data(), o.pattern.size(), SHMC_TIER_L2, nullptr,
                             &removed);
        std::printf("removed %llu keys matching '%s' from L2 (%s)%s\n", (unsigned long long)removed,
                    pat.c_str(), l2_where(*g.redis).c_str(),
                    rc == SHMC_OK ? "; other hosts told to drop them from their L1"
                                  : " before the error below");
        std::fflush(stdout);
        if (rc != SHMC_OK) status = report(g, "purge", rc, "L2");
    }
    if (tiers & SHMC_TIER_L1) {
        uint64_t removed = 0;
        int rc = shmc_tpurge(cache.get(), o.pattern.data(), o.pattern.size(), SHMC_TIER_L1,
                             &removed, nullptr);
        std::printf("removed %llu keys matching '%s'%s\n", (unsigned long long)removed, pat.c_str(),
                    g.redis ? " from L1" : "");
        std::fflush(stdout);
        if (rc != SHMC_OK) {
            const int s = report(
                g, "purge", rc,
                std::string(g.redis ? "L1: " : "") + "some stripes were skipped; run purge again");
            if (status == kExitOk) status = s;
        }
    }
    return status;
}

}  // namespace shmcache::cli
