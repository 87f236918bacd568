// invalidation.h - cross-host L1 coherence: the host's subscriber and its invalidation modes.
//
// On each host exactly one process keeps an invalidation link to Redis and applies what it
// learns to the shared L1. That process is elected with an open-file-description lock
// (F_OFD_SETLK) on byte 0 of the segment's file: the kernel frees it when its holder dies, and
// another process's elector takes over within kElectPollMs. (It does not interfere with the
// flock that serializes initialization.)
//
// Two modes, chosen on every subscription and logged (docs/l2.md, "Coherence"):
//  - tracking (Redis 6+): the subscriber's connection asks for CLIENT TRACKING on REDIRECT <its
//    own id> BCAST [PREFIX <namespace>] and subscribes to __redis__:invalidate, so Redis reports
//    every key of the namespace that changes, whoever changed it (another service, redis-cli,
//    expiry, eviction), and a null message for FLUSHALL/FLUSHDB. One connection carries both, so
//    the redirect can never point at a dead client (tracking-redir-broken cannot happen).
//  - publish: where CLIENT TRACKING is refused (managed Redis, an ACL user without it, or
//    SHMC_L2_NO_TRACKING), shmcache's own writes publish "shmc1 ..." messages on the namespace's
//    channel, and only those are seen.
// Both modes share the bound on a broken link (layout.h, L2Coherence): a PING every
// lease/10 ms; an answered PING renews the lease to its send time + link_lease_ms; a new
// subscription, a FLUSHALL and a message that could not be applied bump the epoch, which drops
// every L2-derived L1 entry at once. Losing the link sets the lease to 0 at once.
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

// How often an elector that does not hold the lock tries again.
constexpr uint32_t kElectPollMs = 200;
// The channel of Redis's tracking messages (RESP2: a pub/sub message whose payload is an array of
// keys, or null for a flush).
constexpr std::string_view kTrackingChannel = "__redis__:invalidate";

// Message: "shmc1 <origin:16 hex> <op> <key or pattern bytes>". Ops: 'D' delete, 'S' set,
// 'P' purge by glob.
std::string encode_invalidation(uint64_t origin, char op, std::string_view arg);
bool decode_invalidation(std::string_view msg, uint64_t* origin, char* op, std::string_view* arg);

// Whether some live process of this host holds a live subscription.
bool subscription_live(const shm::L2Shared& l2);
// Whether this host's subscriber vouches for L2-derived L1 entries now (its lease is running).
bool link_vouched(const shm::L2Coherence& coh);

struct SubscriberOptions {
    std::string channel;     // publish mode's channel
    std::string prefix;      // the namespace: BCAST PREFIX, stripped from tracked keys
    std::string watch;       // tracking_prefix: BCAST PREFIX is prefix + watch (not stripped)
    bool tracking = true;    // false: SHMC_L2_NO_TRACKING, or a cluster
    std::string tracking_off = "disabled (SHMC_L2_NO_TRACKING)";  // why, when tracking is false
    uint32_t lease_ms = 1000;
};

class Subscriber final : public ForkAware {
public:
    Subscriber(shm::Engine& engine, Client& client, SubscriberOptions opts);
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
    // While elected: subscribe, resync, apply messages until the link fails. Whether a
    // subscription was made.
    bool serve();
    // Subscribes c in tracking mode if Redis allows it, else in publish mode. Returns the mode
    // (kModeNone with *why set if neither worked).
    shm::InvalMode subscribe(Conn& c, std::string* why);
    void resync(const char* why);
    void apply(std::string_view payload);       // publish mode: one "shmc1 ..." message
    bool apply_tracked(const redisReply& keys);  // tracking mode: false if a flush (null)
    bool drop_key(std::string_view key);         // false if it could not be removed
    bool sleep_for(uint32_t ms);  // false if asked to stop

    shm::Engine& engine_;
    Client& client_;
    const SubscriberOptions opts_;
    shm::L2Shared& shared_;
    shm::L2Coherence& coh_;
    shm::InvalMode logged_mode_ = shm::kModeNone;  // the mode last logged

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
