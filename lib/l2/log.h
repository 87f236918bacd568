// log.h - the library's logger (spdlog): state changes of the Redis tier, said once each.
//
// Logs go to stderr under the name "shmcache". SHMCACHE_LOG_LEVEL (trace, debug, info, warn,
// error, critical, off) sets the level; the default is info. Nothing on a hot path logs: only
// transitions (L2 lost, L2 back, subscriber elected, resync), so a flapping Redis costs a line per
// change, not per call.
//
// Write lines with log_debug/log_info/log_warn, never through the logger directly: a fork()
// while another thread is inside spdlog would leave the child's copy of the sink's mutex locked
// for ever, and the child's first line would hang. These take a mutex that the fork hooks
// (fork_hooks.h) hold across fork(), so a fork always falls between two lines.
#ifndef SHMCACHE_LIB_L2_LOG_H
#define SHMCACHE_LIB_L2_LOG_H

#include <spdlog/spdlog.h>

#include <mutex>
#include <utility>

namespace shmcache::l2 {

spdlog::logger& log();
std::mutex& log_fork_mutex();

template <class... Args>
void log_at(spdlog::level::level_enum level, spdlog::format_string_t<Args...> fmt,
            Args&&... args) {
    spdlog::logger& l = log();
    if (!l.should_log(level)) return;
    std::lock_guard lk(log_fork_mutex());
    l.log(level, fmt, std::forward<Args>(args)...);
}

template <class... Args>
void log_debug(spdlog::format_string_t<Args...> fmt, Args&&... args) {
    log_at(spdlog::level::debug, fmt, std::forward<Args>(args)...);
}
template <class... Args>
void log_info(spdlog::format_string_t<Args...> fmt, Args&&... args) {
    log_at(spdlog::level::info, fmt, std::forward<Args>(args)...);
}
template <class... Args>
void log_warn(spdlog::format_string_t<Args...> fmt, Args&&... args) {
    log_at(spdlog::level::warn, fmt, std::forward<Args>(args)...);
}

}  // namespace shmcache::l2

#endif
