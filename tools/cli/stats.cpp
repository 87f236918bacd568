// stats.cpp - the stats verb: host-wide figures once, as a table, JSON or Prometheus text, or
// refreshed every few seconds with per-second rates (--watch).
//
// The figures are the segment's own counters (shmc_get_stats), summed over stripes without
// locks, so they count what every process did and reading them disturbs no one. --watch redraws
// in place on a terminal (cursor home, erase each line's leftovers); to a pipe or a file it
// appends one block per refresh, separated by a blank line, so a log stays readable.
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
        if (int rc = take_snapshot(cache, o.per_stripe, &cur)) return report(g, "stats", rc);
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
    if (int e = open_existing(g, "stats", &cache)) return e;
    if (o.watch_seconds > 0) return watch(g, cache.get(), o);
    Snapshot s;
    if (int rc = take_snapshot(cache.get(), o.per_stripe, &s)) return report(g, "stats", rc);
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
