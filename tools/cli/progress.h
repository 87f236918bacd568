// progress.h - a one-line progress bar on stderr for long runs (warm).
//
// Drawn only when stderr is a terminal, and at most ten times a second, so that it costs nothing
// measurable per record and never lands in a log file. With a known total (a regular file's
// size) it shows a bar, the percentage and an ETA; otherwise records, rate and bytes read.
#ifndef SHMCACHE_CLI_PROGRESS_H
#define SHMCACHE_CLI_PROGRESS_H

#include <chrono>
#include <cstdint>

namespace shmcache::cli {

class Progress {
public:
    // enabled: draw at all; total_bytes: input size, 0 when unknown.
    Progress(bool enabled, uint64_t total_bytes);
    // Redraw if the last drawing is more than 100 ms old (or force).
    void update(uint64_t records, uint64_t bytes_read, bool force = false);
    // Erase the bar (before printing another message, and at the end).
    void clear();
    bool enabled() const { return enabled_; }

private:
    using clock = std::chrono::steady_clock;
    bool enabled_;
    bool drawn_ = false;
    uint64_t total_;
    clock::time_point start_, last_;
};

}  // namespace shmcache::cli

#endif
