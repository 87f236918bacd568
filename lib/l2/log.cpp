// log.cpp - see log.h.
#include "log.h"

#include <spdlog/sinks/stdout_sinks.h>

#include <cstdlib>
#include <memory>

namespace shmcache::l2 {

spdlog::logger& log() {
    // Not registered in spdlog's global registry: an application's own use of spdlog (or a
    // second copy of it) must not clash with ours by name.
    static const std::shared_ptr<spdlog::logger> logger = [] {
        auto l = std::make_shared<spdlog::logger>(
            "shmcache", std::make_shared<spdlog::sinks::stderr_sink_mt>());
        l->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [shmcache] [%l] [pid %P] %v");
        const char* level = std::getenv("SHMCACHE_LOG_LEVEL");
        l->set_level(level ? spdlog::level::from_str(level) : spdlog::level::info);
        return l;
    }();
    return *logger;
}

}  // namespace shmcache::l2
