// log.cpp - see log.h.
#include "log.h"

#include <spdlog/sinks/stdout_sinks.h>

#include <cstdlib>
#include <memory>

#include "fork_hooks.h"

namespace shmcache::l2 {

namespace {

// Holds the log mutex across fork() (see log.h). Registered once, never unregistered.
class LogForkGuard final : public ForkAware {
public:
    void fork_prepare() override { log_fork_mutex().lock(); }
    void fork_parent() override { log_fork_mutex().unlock(); }
    void fork_child() override { log_fork_mutex().unlock(); }
};

}  // namespace

std::mutex& log_fork_mutex() {
    static std::mutex* m = [] {
        auto* mutex = new std::mutex();  // never freed: a fork may come during exit
        register_fork_aware(new LogForkGuard(), /*last=*/true);  // see log.h
        return mutex;
    }();
    return *m;
}

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
