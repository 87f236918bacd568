// invalidation.h - cross-host L1 coherence: invalidation messages and the host's subscriber.
//
// A delete, purge or set that reaches L2 is published on the namespace's channel. On each host,
// exactly one process applies the messages of other hosts to the shared L1. That process is
// elected with an open-file-description lock (F_OFD_SETLK) on byte 0 of the segment's file: the
// kernel frees it when its holder dies, and another process's elector takes over within
// kElectPollMs. (It does not interfere with the flock that serializes initialization.)
//
// Messages published while a host had no live subscription are lost (Redis pub/sub does not
// queue). So whenever a subscription is established (first election, takeover from a dead
// subscriber, reconnection) the subscriber drops every L1 entry marked SHMC_FLAG_FROM_L2, and L2
// hits are copied into L1 only while a live subscription exists. A broken subscription does not
// drop anything by itself: during a Redis outage those entries are what the host serves. See
// docs/l2.md for the resulting staleness bound.
#ifndef SHMCACHE_LIB_L2_INVALIDATION_H
#define SHMCACHE_LIB_L2_INVALIDATION_H

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "shm/engine.h"
#include "fork_hooks.h"
#include "redis_client.h"

namespace shmcache::l2 {

// How often an elector that does not hold the lock tries again, and how often a subscriber checks
// its connection with PING when no message arrives.
constexpr uint32_t kElectPollMs = 200;
constexpr uint32_t kPingIntervalMs = 1000;

// Message: "shmc1 <origin:16 hex> <op> <key or pattern bytes>". Ops: 'D' delete, 'S' set,
// 'P' purge by glob.
std::string encode_invalidation(uint64_t origin, char op, std::string_view arg);
bool decode_invalidation(std::string_view msg, uint64_t* origin, char* op, std::string_view* arg);

// Whether some live process of this host holds a live subscription.
bool subscription_live(const shm::L2Shared& l2);

class Subscriber final : public ForkAware {
public:
    Subscriber(shm::Engine& engine, const RedisClient& client, std::string channel);
    ~Subscriber();
    Subscriber(const Subscriber&) = delete;
    Subscriber& operator=(const Subscriber&) = delete;

    // Starts this process's elector thread unless it runs already (after a fork it does not).
    void ensure_started();

    void fork_prepare() override;
    void fork_parent() override;
    void fork_child() override;

private:
    void run();
    bool try_elect();
    void serve();  // while elected: subscribe, resync, apply messages until the link fails
    void resync(const char* why);
    void apply(std::string_view payload);
    bool sleep_for(uint32_t ms);  // false if asked to stop

    shm::Engine& engine_;
    const RedisClient& client_;
    const std::string channel_;
    shm::L2Shared& shared_;

    std::mutex m_;  // guards thread_, stop_; held by the thread while it applies a message
    std::condition_variable cv_;
    std::unique_ptr<std::thread> thread_;
    bool stop_ = false;
    int lock_fd_ = -1;
    int owner_pid_ = 0;  // the process the thread runs in
    std::mutex work_m_;  // held while touching the engine, so fork never splits an apply
};

}  // namespace shmcache::l2

#endif
