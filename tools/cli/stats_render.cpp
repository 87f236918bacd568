// stats_render.cpp - see stats_render.h.
//
// The metric list below is the single place that names each figure: the table, JSON and
// Prometheus renderings all walk it, so a field added to shmc_stats is added once. Prometheus
// names follow its conventions: counters end in _total, byte gauges end in _bytes, and the
// segment name is a label so several segments on one host can be scraped into one series set.
// A hit ratio is not exported: Prometheus derives it correctly over any window
// (rate(hits) / (rate(hits) + rate(misses))), which a precomputed lifetime ratio cannot.
//
// The L2 figures have a list of their own (kL2Metrics): the host-wide counters of the Redis tier,
// kept in the segment, so they are shown with or without --redis. Their Prometheus names and
// help texts are those of the Python package's exporter (bindings/python/shmcache/prometheus.py),
// so one dashboard reads either source. Only the probe's findings (connected, breaker open, the
// error) need --redis; without it they are left out rather than shown as a false "down".
//
// The single-flight figures (shmc_flight_get_stats, docs/stampede.md) have a list too
// (kFlightMetrics): counters of what shmc_fetch did on this host, and three levels of "now" (the
// leases held, reclaimable, and the slots there are), which are gauges: never given a rate.
#include "stats_render.h"

#include <time.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "format.h"

namespace shmcache::cli {

namespace {

using json = nlohmann::ordered_json;

enum class Kind { kCounter, kGauge, kBytes };

struct Metric {
    const char* label;  // in the table
    const char* key;    // in JSON
    const char* prom;   // Prometheus name
    Kind kind;
    uint64_t shmc_stats::*field;
    const char* help;
};

const Metric kMetrics[] = {
    {"hits", "hits", "shmcache_hits_total", Kind::kCounter, &shmc_stats::hits,
     "Lookups (shmc_get) that found a live value, all processes."},
    {"misses", "misses", "shmcache_misses_total", Kind::kCounter, &shmc_stats::misses,
     "Lookups that found no live value (absent or expired), all processes."},
    {"sets", "sets", "shmcache_sets_total", Kind::kCounter, &shmc_stats::sets, "Values stored."},
    {"deletes", "deletes", "shmcache_deletes_total", Kind::kCounter, &shmc_stats::deletes,
     "Keys removed by delete or purge."},
    {"evictions", "evictions", "shmcache_evictions_total", Kind::kCounter, &shmc_stats::evictions,
     "Live entries removed to make room."},
    {"expirations", "expirations", "shmcache_expirations_total", Kind::kCounter,
     &shmc_stats::expirations, "Expired entries reclaimed."},
    {"entries", "entries", "shmcache_entries", Kind::kGauge, &shmc_stats::entries,
     "Live entries now."},
    {"bytes used", "bytes_used", "shmcache_used_bytes", Kind::kBytes, &shmc_stats::bytes_used,
     "Memory held by entries, overhead included."},
    {"bytes capacity", "bytes_capacity", "shmcache_capacity_bytes", Kind::kBytes,
     &shmc_stats::bytes_capacity, "Memory available for entries."},
    {"bytes data", "bytes_data", "shmcache_data_bytes", Kind::kBytes, &shmc_stats::bytes_data,
     "Key and value bytes of the live entries."},
    {"lock recoveries", "lock_recoveries", "shmcache_lock_recoveries_total", Kind::kCounter,
     &shmc_stats::lock_recoveries,
     "Stripe locks whose holder died; the stripe was checked or rebuilt."},
    {"lock timeouts", "lock_timeouts", "shmcache_lock_timeouts_total", Kind::kCounter,
     &shmc_stats::lock_timeouts, "Lock waits that gave up after lock_timeout_ms."},
};

// The Redis tier's counters (shmc_l2_stats), in the order the table shows them.
struct L2Metric {
    const char* label;  // in the table, after "l2 "
    const char* key;    // in JSON, under "l2"; the Prometheus name is shmcache_l2_KEY_total
    uint64_t shmc_l2_stats::*field;
    const char* help;
};

const L2Metric kL2Metrics[] = {
    {"hits", "hits", &shmc_l2_stats::hits,
     "Redis lookups that found a value, all processes of this host."},
    {"misses", "misses", &shmc_l2_stats::misses, "Redis lookups that found nothing."},
    {"sets", "sets", &shmc_l2_stats::sets, "Values written to Redis."},
    {"deletes", "deletes", &shmc_l2_stats::deletes, "Keys removed from Redis."},
    {"fills", "fills", &shmc_l2_stats::fills, "Redis hits copied into the shared memory."},
    {"errors", "errors", &shmc_l2_stats::errors,
     "Failed Redis calls (timeouts, connection errors, error replies)."},
    {"timeouts", "timeouts", &shmc_l2_stats::timeouts, "Failed Redis calls that timed out."},
    {"dropped writes", "dropped_writes", &shmc_l2_stats::dropped_writes,
     "Writes to Redis not made (failure or open circuit breaker)."},
    {"breaker opens", "breaker_opens", &shmc_l2_stats::breaker_opens,
     "Times a circuit breaker opened."},
    {"invalidations sent", "invalidations_sent", &shmc_l2_stats::invalidations_sent,
     "Invalidations published to other hosts (publish mode only)."},
    {"invalidations applied", "invalidations_applied", &shmc_l2_stats::invalidations_applied,
     "Keys (or patterns) dropped from this host's L1 by its invalidation subscriber."},
    {"resyncs", "resyncs", &shmc_l2_stats::resyncs,
     "Times every L1 copy of a Redis value was dropped at once (new subscription, FLUSHALL)."},
    {"resync dropped", "resync_dropped", &shmc_l2_stats::resync_dropped,
     "Always 0: resyncs drop copies lazily."},
};

// The single-flight figures (shmc_flight_stats), in the order the table shows them. Kind is
// kCounter or kGauge (the "now" levels).
struct FlightMetric {
    const char* label;  // in the table
    const char* key;    // in JSON, under "flight"; the Prometheus name is shmcache_flight_KEY,
                        // with _total for a counter
    Kind kind;
    uint64_t shmc_flight_stats::*field;
    const char* help;
};

const FlightMetric kFlightMetrics[] = {
    {"leases granted", "leases_granted", Kind::kCounter, &shmc_flight_stats::leases_granted,
     "Single-flight leases granted (misses, stale and early refreshes, takeovers), all "
     "processes of this host."},
    {"waits", "waits", Kind::kCounter, &shmc_flight_stats::waits,
     "Fetches that waited for another caller's computation."},
    {"stampedes avoided", "stampedes_avoided", Kind::kCounter,
     &shmc_flight_stats::stampedes_avoided,
     "Waiting fetches served by that computation, with no work of their own."},
    {"lease timeouts", "lease_timeouts", Kind::kCounter, &shmc_flight_stats::lease_timeouts,
     "Waiting fetches that gave up after wait_ms and computed themselves."},
    {"takeovers", "takeovers", Kind::kCounter, &shmc_flight_stats::takeovers,
     "Leases taken from an owner that died or overran lease_ms."},
    {"stale served", "stale_served", Kind::kCounter, &shmc_flight_stats::stale_served,
     "Stale values returned while one caller refreshes (stale-while-revalidate)."},
    {"early refreshes", "early_refreshes", Kind::kCounter, &shmc_flight_stats::early_refreshes,
     "Fresh hits given the lease to refresh early (XFetch)."},
    {"unleased", "unleased", Kind::kCounter, &shmc_flight_stats::unleased,
     "Fetches that found every lease slot of their stripe taken."},
    {"abandoned", "abandoned", Kind::kCounter, &shmc_flight_stats::abandoned,
     "Leases given back without a value (shmc_fetch_abandon)."},
    {"redis locks taken", "l2_locks", Kind::kCounter, &shmc_flight_stats::l2_locks,
     "Cross-host locks taken in Redis."},
    {"redis lock busy", "l2_lock_busy", Kind::kCounter, &shmc_flight_stats::l2_lock_busy,
     "Fetches that found another host's Redis lock held."},
    {"served by other host", "l2_served", Kind::kCounter, &shmc_flight_stats::l2_served,
     "Misses served the value another host computed meanwhile."},
    {"leases held now", "leases_held", Kind::kGauge, &shmc_flight_stats::leases_held,
     "Leases whose owner lives and whose deadline is ahead."},
    {"leases reclaimable now", "leases_reclaimable", Kind::kGauge,
     &shmc_flight_stats::leases_reclaimable,
     "Leases of dead owners or past their deadline; the next caller that wants one takes it."},
    {"lease slots", "lease_slots", Kind::kGauge, &shmc_flight_stats::lease_slots,
     "Lease slots in the segment (8 per stripe)."},
};

// Whether this host has ever used shmc_fetch (a counter moved or a lease is held). The slot
// count is a property of the segment, not of its use.
bool flight_used(const shmc_flight_stats& f) {
    for (const FlightMetric& m : kFlightMetrics)
        if (m.field != &shmc_flight_stats::lease_slots && f.*m.field) return true;
    return false;
}

// Whether this host has ever used the Redis tier (a counter moved or a subscriber lives).
bool l2_used(const shmc_l2_stats& l2) {
    if (l2.subscribed) return true;
    for (const L2Metric& m : kL2Metrics)
        if (l2.*m.field) return true;
    return false;
}

double monotonic_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

// hits / (hits + misses), or a negative number when there was no lookup.
double hit_ratio(uint64_t hits, uint64_t misses) {
    return hits + misses ? double(hits) / double(hits + misses) : -1;
}

std::string ratio_text(double r) { return r < 0 ? "-" : strf("%.2f%%", r * 100); }

// Per-second rates: one decimal while small, whole and grouped once large ("69,912").
std::string rate_text(double r) {
    return r < 100 ? strf("%.1f", r) : with_commas(uint64_t(std::llround(r)));
}

std::string value_text(const Metric& m, uint64_t v) {
    return m.kind == Kind::kBytes ? human_bytes(v) : with_commas(v);
}

// A Prometheus label value: backslash, double quote and newline escaped.
std::string prom_label(const char* s) {
    std::string out;
    for (; *s; ++s) {
        if (*s == '\\')
            out += "\\\\";
        else if (*s == '"')
            out += "\\\"";
        else if (*s == '\n')
            out += "\\n";
        else
            out += *s;
    }
    return out;
}

// SHMC_INVAL_* as shown: how the host's last subscription learns of writes (docs/l2.md).
const char* inval_mode_name(uint32_t mode) {
    return mode == SHMC_INVAL_TRACKING ? "tracking" : mode == SHMC_INVAL_PUBLISH ? "publish" : "none";
}

// The L2 section of the table: a line on the tier's state, then its counters (with rates when
// prev is given). A host that never used Redis gets one line instead of a block of zeros.
std::string render_l2(const Snapshot& s, const Snapshot* prev, double dt, const char* eol) {
    const shmc_l2_stats& l = s.l2;
    const std::string subscriber =
        l.subscribed ? strf("pid %u, %s mode", l.subscriber_pid, inval_mode_name(l.invalidation_mode))
                     : std::string("none");
    std::string head;
    if (s.l2_probed) {
        head = "L2 (Redis) " + s.l2_where + ": " +
               (s.l2_error.empty() ? std::string("connected") : "NOT connected: " + s.l2_error) +
               (l.breaker_open ? " (circuit breaker open)" : "") +
               "; invalidation subscriber: " + subscriber;
    } else if (!l2_used(l)) {
        return "L2 (Redis): not used on this host yet (--redis URL to test a connection)" +
               std::string(eol);
    } else {
        head = "L2 (Redis), host-wide counters; invalidation subscriber: " + subscriber;
    }
    Table tab({false, true, prev != nullptr});
    tab.row(
        {"l2 hit rate", ratio_text(hit_ratio(l.hits, l.misses)),
         prev ? ratio_text(hit_ratio(l.hits - prev->l2.hits, l.misses - prev->l2.misses)) : ""});
    for (const L2Metric& m : kL2Metrics) {
        const uint64_t v = l.*m.field;
        tab.row({std::string("l2 ") + m.label, with_commas(v),
                 prev ? rate_text(double(v - prev->l2.*m.field) / dt) : ""});
    }
    return head + eol + tab.render(eol);
}

// The single-flight section of the table: its counters (with rates when prev is given) and the
// leases now. A host that never fetched gets one line instead of a block of zeros.
std::string render_flight(const Snapshot& s, const Snapshot* prev, double dt, const char* eol) {
    const shmc_flight_stats& f = s.flight;
    if (!flight_used(f))
        return strf("single flight (shmc_fetch): not used on this host yet; %s lease slots%s",
                    with_commas(f.lease_slots).c_str(), eol);
    Table tab({false, true, prev != nullptr});
    for (const FlightMetric& m : kFlightMetrics) {
        const uint64_t v = f.*m.field;
        std::string extra;
        if (prev && m.kind == Kind::kCounter) {
            extra = rate_text(double(v - prev->flight.*m.field) / dt);
        } else if (!prev && m.field == &shmc_flight_stats::stampedes_avoided && f.waits) {
            extra = strf("%.1f%% of waits", 100.0 * double(v) / double(f.waits));
        }
        tab.row({m.label, with_commas(v), extra});
    }
    return std::string("single flight (shmc_fetch), host-wide") + eol + tab.render(eol);
}

}  // namespace

int take_snapshot(shmc_cache* cache, bool per_stripe, Snapshot* out) {
    int rc = shmc_get_info(cache, &out->info);
    if (rc == SHMC_OK) rc = shmc_get_stats(cache, &out->total);
    if (rc == SHMC_OK) rc = shmc_l2_get_stats(cache, &out->l2);
    if (rc == SHMC_OK) rc = shmc_flight_get_stats(cache, &out->flight);
    if (rc != SHMC_OK) return rc;
    out->stripes.clear();
    if (per_stripe) {
        out->stripes.resize(out->info.n_stripes);
        for (uint32_t i = 0; i < out->info.n_stripes; ++i)
            if ((rc = shmc_stripe_stats(cache, i, &out->stripes[i])) != SHMC_OK) return rc;
    }
    out->mono_seconds = monotonic_seconds();
    out->unix_ms = uint64_t(std::time(nullptr)) * 1000;
    return SHMC_OK;
}

std::string render_table(const Snapshot& s, const Snapshot* prev, const char* eol) {
    const shmc_info& i = s.info;
    const shmc_stats& t = s.total;
    const uint32_t others = i.attached ? i.attached - 1 : 0;
    std::string out = strf("segment '%s': %s, %u stripes, %s, %u other handle(s) attached%s",
                           i.name, human_bytes(i.size_bytes).c_str(), i.n_stripes,
                           strategy_name(i.strategy).c_str(), others, eol);
    const double dt = prev ? s.mono_seconds - prev->mono_seconds : 0;
    const bool rates = prev && dt > 0;
    Table tab({false, true, rates});
    if (rates) tab.row({"", "total", strf("per second (last %.1f s)", dt)});
    tab.row({"hit rate", ratio_text(hit_ratio(t.hits, t.misses)),
             rates ? ratio_text(hit_ratio(t.hits - prev->total.hits, t.misses - prev->total.misses))
                   : ""});
    for (const Metric& m : kMetrics) {
        const uint64_t v = t.*m.field;
        std::string extra;
        if (rates && m.kind == Kind::kCounter) {
            extra = rate_text(double(v - prev->total.*m.field) / dt);
        } else if (rates) {
            // gauges: the level is in the total column; a per-second figure would mislead
        } else if (m.field == &shmc_stats::bytes_used && t.bytes_capacity) {
            extra = strf("%.1f%% of capacity", 100.0 * double(v) / double(t.bytes_capacity));
        } else if (m.field == &shmc_stats::bytes_data && t.bytes_used) {
            extra = strf("%.1f%% of used", 100.0 * double(v) / double(t.bytes_used));
        }
        tab.row({m.label, value_text(m, v), extra});
    }
    return out + tab.render(eol) + render_flight(s, rates ? prev : nullptr, dt, eol) +
           render_l2(s, rates ? prev : nullptr, dt, eol);
}

// Lookups are counted per process, not per stripe (a hit writes no shared line: docs/
// architecture.md, "Optimistic reads"), so the per-stripe view has no hits or misses.
bool per_stripe_metric(uint64_t shmc_stats::*field) {
    return field != &shmc_stats::bytes_capacity && field != &shmc_stats::hits &&
           field != &shmc_stats::misses;
}

std::string render_stripes(const Snapshot& s, const char* eol) {
    Table tab({true, true, true, true, true, true, true, true});
    tab.row({"stripe", "entries", "used", "sets", "deletes", "evictions", "timeouts",
             "recoveries"});
    for (size_t i = 0; i < s.stripes.size(); ++i) {
        const shmc_stats& t = s.stripes[i];
        tab.row({std::to_string(i), with_commas(t.entries), human_bytes(t.bytes_used),
                 with_commas(t.sets), with_commas(t.deletes), with_commas(t.evictions),
                 with_commas(t.lock_timeouts), with_commas(t.lock_recoveries)});
    }
    return tab.render(eol);
}

std::string render_json(const Snapshot& s) {
    json j;
    j["segment"] = s.info.name;
    j["time_unix_ms"] = s.unix_ms;
    const double r = hit_ratio(s.total.hits, s.total.misses);
    j["hit_rate"] = r < 0 ? json(nullptr) : json(r);
    for (const Metric& m : kMetrics) j[m.key] = s.total.*m.field;
    j["size_bytes"] = s.info.size_bytes;
    j["n_stripes"] = s.info.n_stripes;
    j["strategy"] = strategy_name(s.info.strategy);
    j["attached_others"] = s.info.attached ? s.info.attached - 1 : 0;
    if (!s.stripes.empty()) {
        json a = json::array();
        for (size_t i = 0; i < s.stripes.size(); ++i) {
            json e;
            e["stripe"] = i;
            for (const Metric& m : kMetrics)
                if (per_stripe_metric(m.field)) e[m.key] = s.stripes[i].*m.field;
            a.push_back(std::move(e));
        }
        j["stripes"] = std::move(a);
    }
    json flight;
    for (const FlightMetric& m : kFlightMetrics) flight[m.key] = s.flight.*m.field;
    j["flight"] = std::move(flight);
    const shmc_l2_stats& l = s.l2;
    json l2;
    const double lr = hit_ratio(l.hits, l.misses);
    l2["hit_rate"] = lr < 0 ? json(nullptr) : json(lr);
    for (const L2Metric& m : kL2Metrics) l2[m.key] = l.*m.field;
    l2["subscribed"] = l.subscribed != 0;
    l2["subscriber_pid"] = l.subscribed ? json(l.subscriber_pid) : json(nullptr);
    l2["invalidation_mode"] = inval_mode_name(l.invalidation_mode);
    if (s.l2_probed) {
        l2["redis"] = s.l2_where;
        l2["connected"] = s.l2_error.empty();
        l2["breaker_open"] = l.breaker_open != 0;
        l2["error"] = s.l2_error.empty() ? json(nullptr) : json(s.l2_error);
    }
    j["l2"] = std::move(l2);
    return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string render_prometheus(const Snapshot& s) {
    const std::string seg = "segment=\"" + prom_label(s.info.name) + "\"";
    std::string out;
    auto family = [&](const char* name, const char* type, const char* help,
                      const std::string& labels, const std::string& value) {
        out += strf("# HELP %s %s\n# TYPE %s %s\n%s{%s} %s\n", name, help, name, type, name,
                    labels.c_str(), value.c_str());
    };
    for (const Metric& m : kMetrics)
        family(m.prom, m.kind == Kind::kCounter ? "counter" : "gauge", m.help, seg,
               std::to_string(s.total.*m.field));
    family("shmcache_segment_size_bytes", "gauge", "Size of the shared-memory segment.", seg,
           std::to_string(s.info.size_bytes));
    family("shmcache_max_value_bytes", "gauge", "Largest value this segment accepts.", seg,
           std::to_string(s.info.max_value_len));
    family("shmcache_attached_handles", "gauge",
           "Open handles of live processes, the scraping command not counted.", seg,
           std::to_string(s.info.attached ? s.info.attached - 1 : 0));
    family("shmcache_info", "gauge", "Segment layout, library version and eviction strategy.",
           seg + strf(",layout_version=\"%u\",library_version=\"%s\",strategy=\"%s\"",
                      s.info.layout_version, prom_label(shmc_version()).c_str(),
                      strategy_name(s.info.strategy).c_str()),
           "1");
    for (const FlightMetric& m : kFlightMetrics) {
        const bool counter = m.kind == Kind::kCounter;
        const std::string name =
            std::string("shmcache_flight_") + m.key + (counter ? "_total" : "");
        family(name.c_str(), counter ? "counter" : "gauge", m.help, seg,
               std::to_string(s.flight.*m.field));
    }
    const shmc_l2_stats& l = s.l2;
    for (const L2Metric& m : kL2Metrics) {
        const std::string name = std::string("shmcache_l2_") + m.key + "_total";
        family(name.c_str(), "counter", m.help, seg, std::to_string(l.*m.field));
    }
    family("shmcache_l2_subscribed", "gauge",
           "1 if a process of this host holds the invalidation subscription.", seg,
           l.subscribed ? "1" : "0");
    family("shmcache_l2_subscriber_pid", "gauge",
           "The process holding this host's invalidation subscription (0: none).", seg,
           std::to_string(l.subscribed ? l.subscriber_pid : 0));
    if (s.l2_probed) {
        family("shmcache_l2_connected", "gauge", "1 if Redis answered this scrape's probe.", seg,
               s.l2_error.empty() ? "1" : "0");
        family("shmcache_l2_breaker_open", "gauge", "1 if this process's circuit breaker is open.",
               seg, l.breaker_open ? "1" : "0");
    }
    return out;
}

}  // namespace shmcache::cli
