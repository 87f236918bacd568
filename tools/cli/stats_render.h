// stats_render.h - one reading of a segment's statistics, and its four renderings: the table
// for people, the per-stripe table, JSON for scripts and the Prometheus text exposition format.
//
// Rendering is separate from reading so that --watch can keep the previous reading and show
// per-second rates, and so that every format is produced from the same numbers.
#ifndef SHMCACHE_CLI_STATS_RENDER_H
#define SHMCACHE_CLI_STATS_RENDER_H

#include <shmcache/shmcache.h>

#include <cstdint>
#include <string>
#include <vector>

namespace shmcache::cli {

struct Snapshot {
    shmc_info info{};
    shmc_stats total{};
    std::vector<shmc_stats> stripes;  // filled only when asked for (--per-stripe)
    // The host-wide L2 counters, kept in the segment: readable without a Redis URL. configured,
    // connected and breaker_open are this command's own, and meaningful only when probed.
    shmc_l2_stats l2{};
    // The host-wide single-flight figures (shmc_fetch): counters since the segment was created,
    // and the leases held now.
    shmc_flight_stats flight{};
    bool l2_probed = false;   // --redis: Redis was asked once (stats.cpp) right after the reading
    std::string l2_where;     // the redacted URL and namespace, when probed
    std::string l2_error;     // why the probe failed; "" when Redis answered
    double mono_seconds = 0;  // CLOCK_MONOTONIC when taken, for rates
    uint64_t unix_ms = 0;
};

// Read stats, L2 stats, single-flight stats and info (per-stripe stats if per_stripe). Returns a
// shmc return code.
int take_snapshot(shmc_cache* cache, bool per_stripe, Snapshot* out);

// The human table, then the single-flight section, then the L2 section. With prev, a third
// column gives per-second rates of the counters since prev. Lines end with eol.
std::string render_table(const Snapshot& s, const Snapshot* prev, const char* eol);

// One row per stripe.
std::string render_stripes(const Snapshot& s, const char* eol);

// One JSON object (per-stripe figures under "stripes" when they were read).
std::string render_json(const Snapshot& s);

// Prometheus text exposition format 0.0.4: shmcache_* names (shmcache_flight_* for single
// flight, shmcache_l2_* for the Redis tier), counters ending in _total, HELP and TYPE lines,
// every sample labelled segment="NAME".
std::string render_prometheus(const Snapshot& s);

}  // namespace shmcache::cli

#endif
