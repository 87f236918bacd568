// stats.cpp - the stats verb: host-wide figures once, as a table, JSON or Prometheus text, or
// refreshed every few seconds with per-second rates (--watch).
//
// The figures are the segment's own counters (shmc_get_stats), summed over stripes without
// locks, so they count what every process did and reading them disturbs no one. --watch redraws
// in place on a terminal (cursor home, erase each line's leftovers); to a pipe or a file it
// appends one block per refresh, separated by a blank line, so a log stays readable.
//
// The single-flight figures (shmc_flight_get_stats: what shmc_fetch did, and the leases held now)
// and the L2 counters are host-wide too and always shown. With --redis each reading also asks Redis
// once (probe_l2, a lookup of a reserved key), so that "connected" is what Redis did just now,
// not what some earlier call found. The counters are read before the probe, so its own lookup
// shows up in the next reading, not in this one. A Redis that does not answer is reported in the
// output (connected false, and why) and stats still exits 0: the reading is complete, and a
// monitoring job must not drop the very reading that says Redis is down.
#include <shmcache/shmcache.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <thread>

#include "commands.h"
#include "exit_codes.h"
#include "format.h"
#include "stats_render.h"
#include "tiers.h"

namespace shmcache::cli {

namespace {

volatile sig_atomic_t g_stop = 0;

void on_signal(int) { g_stop = 1; }

std::string clock_text(uint64_t unix_ms) {
    std::time_t t = std::time_t(unix_ms / 1000);
    std::tm tm{};
    char buf[32];
    localtime_r(&t, &tm);
    std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
    return buf;
}

// take_snapshot, then with --redis the probe and the connection state it leaves.
int read_stats(const Global& g, shmc_cache* cache, bool per_stripe, Snapshot* s) {
    if (int rc = take_snapshot(cache, per_stripe, s)) return rc;
    if (!g.redis) return SHMC_OK;
    s->l2_probed = true;
    s->l2_where = l2_where(*g.redis);
    const int rc = probe_l2(cache);
    s->l2_error = rc == SHMC_OK ? "" : shmc_errmsg();
    if (rc != SHMC_OK && s->l2_error.empty()) s->l2_error = shmc_strerror(rc);
    shmc_l2_stats after{};
    if (shmc_l2_get_stats(cache, &after) == SHMC_OK) {
        s->l2.configured = after.configured;
        s->l2.connected = after.connected;
        s->l2.breaker_open = after.breaker_open;
    }
    return SHMC_OK;
}

int watch(const Global& g, shmc_cache* cache, const StatsOptions& o) {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    const bool tty = is_tty(1);
    const char* eol = tty ? "\x1b[K\n" : "\n";
    Snapshot prev, cur;
    bool have_prev = false;
    if (tty) std::fputs("\x1b[H\x1b[2J", stdout);
    for (uint64_t n = 0; !g_stop && (!o.count || n < o.count); ++n) {
        if (n) {
            // Sleep in short steps so Ctrl-C is answered at once.
            const auto until =
                std::chrono::steady_clock::now() + std::chrono::duration<double>(o.watch_seconds);
            while (!g_stop && std::chrono::steady_clock::now() < until)
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            if (g_stop) break;
        }
        if (int rc = read_stats(g, cache, o.per_stripe, &cur)) return report(g, "stats", rc);
        std::string frame = strf("shmcache stats every %.1f s, %s (Ctrl-C to stop)%s",
                                 o.watch_seconds, clock_text(cur.unix_ms).c_str(), eol);
        frame += render_table(cur, have_prev ? &prev : nullptr, eol);
        if (o.per_stripe) frame += eol + render_stripes(cur, eol);
        if (tty)
            frame = "\x1b[H" + frame + "\x1b[J";
        else if (n)
            frame = "\n" + frame;
        std::fputs(frame.c_str(), stdout);
        std::fflush(stdout);
        prev = cur;
        have_prev = true;
    }
    return kExitOk;
}

}  // namespace

int run_stats(const Global& g, const StatsOptions& o) {
    Cache cache;
    if (int e = open_existing(g, "stats", &cache, g.redis ? SHMC_TIER_BOTH : SHMC_TIER_L1))
        return e;
    if (o.watch_seconds > 0) return watch(g, cache.get(), o);
    Snapshot s;
    if (int rc = read_stats(g, cache.get(), o.per_stripe, &s)) return report(g, "stats", rc);
    if (!s.l2_error.empty()) warn("stats", "L2 not connected: " + s.l2_error);
    std::string out;
    if (o.json)
        out = render_json(s);
    else if (o.prometheus)
        out = render_prometheus(s);
    else
        out = render_table(s, nullptr, "\n") + (o.per_stripe ? "\n" + render_stripes(s, "\n") : "");
    write_all(stdout, out);
    return std::fflush(stdout) == 0 ? kExitOk : kExitOther;
}

}  // namespace shmcache::cli
