// progress.cpp - see progress.h.
#include "progress.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include "format.h"

namespace shmcache::cli {

Progress::Progress(bool enabled, uint64_t total_bytes)
    : enabled_(enabled), total_(total_bytes), start_(clock::now()), last_(start_) {}

void Progress::update(uint64_t records, uint64_t bytes_read, bool force) {
    if (!enabled_) return;
    const auto now = clock::now();
    if (!force && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double rate = secs > 0 ? double(records) / secs : 0;
    std::string line;
    if (total_) {
        const double frac = std::min(1.0, double(bytes_read) / double(total_));
        constexpr int kWidth = 24;
        const int full = int(frac * kWidth);
        line = "[" + std::string(size_t(full), '#') + std::string(size_t(kWidth - full), '.') +
               "] " + strf("%3.0f%%", frac * 100);
        line += "  " + with_commas(records) + " records  " + with_commas(uint64_t(rate)) + "/s";
        const double byte_rate = secs > 0 ? double(bytes_read) / secs : 0;
        if (byte_rate > 0 && frac < 1)
            line += "  ETA " + human_seconds(double(total_ - bytes_read) / byte_rate);
    } else {
        line = with_commas(records) + " records  " + with_commas(uint64_t(rate)) + "/s  " +
               human_bytes(bytes_read) + " read";
    }
    std::fprintf(stderr, "\r%s\x1b[K", line.c_str());
    std::fflush(stderr);
    drawn_ = true;
}

void Progress::clear() {
    if (!drawn_) return;
    std::fputs("\r\x1b[K", stderr);
    std::fflush(stderr);
    drawn_ = false;
}

}  // namespace shmcache::cli
