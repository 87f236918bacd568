// cluster_client.h - Redis Cluster behind the Client interface: commands routed by slot.
//
// The slot map comes from CLUSTER SLOTS, asked of the known nodes in turn (the masters of the
// map, then the seeds; those whose breaker is open last), and each master gets its own RedisClient:
// its own pool, and its own breaker, so a dead master costs its slots the command timeout until its
// breaker opens and then fails them at once, while the other masters' slots keep working.
//
// run() keeps RedisClient's contract: one deadline (command_timeout_ms) over the whole call,
// redirections and retries included; the same error codes; replies in command order. A batch is
// cut into runs of consecutive commands for the same node, sent one run after the other, so the
// order the caller wrote is the order the nodes apply (a SET before its PUBLISH, the value
// before the lock's release: tiers.cpp and flight_l2.cpp rely on that). A keyless command (PUBLISH,
// PING) joins the run before it, so an invalidation is published by the node that took the write,
// after it. Redirections, per command, within the deadline:
//   -MOVED slot host:port  the slot has a new owner: the map is updated for that slot, a full
//                          refresh is due (rate-limited), and the command is sent there;
//   -ASK slot host:port    the slot is migrating and this key is already on the target: ASKING
//                          plus the command go there, the map stays;
//   -TRYAGAIN, -CLUSTERDOWN a short pause (2 ms, doubling to 20 ms) and again.
// When a command is redirected, the keyless commands after it in its run are sent again after it
// (an invalidation published twice is harmless, one published before its write is not).
#ifndef SHMCACHE_LIB_L2_CLUSTER_CLIENT_H
#define SHMCACHE_LIB_L2_CLUSTER_CLIENT_H

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cluster_slots.h"
#include "fork_hooks.h"
#include "redis_client.h"

namespace shmcache::l2 {

// A pause, a MOVED and an ASK each count as one; past this a command fails (a redirection loop
// during a broken resharding must not spin until the deadline).
constexpr int kMaxRedirects = 16;
// At most one full CLUSTER SLOTS refresh per this interval (MOVED in bulk during a resharding).
constexpr uint64_t kRefreshIntervalMs = 100;

class ClusterClient final : public Client, public ForkAware {
public:
    // Null with *why set when the TLS files cannot be loaded (rediss+cluster://).
    static std::unique_ptr<ClusterClient> create(ClientOptions opts, ClientCounters counters,
                                                 std::string* why);
    ClusterClient(ClientOptions opts, ClientCounters counters, std::shared_ptr<TlsContext> tls);
    ~ClusterClient();
    ClusterClient(const ClusterClient&) = delete;
    ClusterClient& operator=(const ClusterClient&) = delete;

    int run(std::span<const Command> cmds, Replies* out) override;
    int shards(std::vector<std::string>* names) override;  // the masters, "host:port"
    int run_on(const std::string& shard, std::span<const Command> cmds, Replies* out) override;
    bool connected() const override { return connected_.load(std::memory_order_relaxed); }
    bool breaker_open() const override;  // any node's
    const ClientOptions& options() const override { return opts_; }
    // A connection to a master (or seed) that accepts one, starting one node further each time.
    std::unique_ptr<Conn> connect_dedicated(std::string* why) const override;

    // Redirections followed so far by this process (for tests and logs).
    uint64_t moved() const { return moved_.load(std::memory_order_relaxed); }
    uint64_t asked() const { return asked_.load(std::memory_order_relaxed); }

    void fork_prepare() override;
    void fork_parent() override;
    void fork_child() override;

private:
    struct Item;
    std::shared_ptr<RedisClient> node(const HostPort& hp) const;  // made on first use
    std::shared_ptr<RedisClient> node_by_name(const std::string& name) const;
    // Asks CLUSTER SLOTS of the known nodes until one answers. Returns 0 or the failure.
    int refresh(uint64_t deadline_ms);
    // Loads the map if there is none, or refreshes it if due (MOVED, a node failure) and the
    // rate limit allows; a failed refresh keeps the old map.
    int ensure_map(uint64_t deadline_ms);
    std::vector<std::string> candidates() const;
    std::string owner(int slot) const;
    int fail_call(int rc, bool timeout, const char* fmt, ...);

    const ClientOptions opts_;
    const ClientCounters counters_;
    const std::shared_ptr<TlsContext> tls_;  // the certificates, loaded once; null: plain
    std::atomic<bool> connected_{false};
    std::atomic<uint64_t> moved_{0}, asked_{0};
    mutable std::atomic<size_t> dedicated_turn_{0};  // where connect_dedicated starts

    // m_ guards everything below. Never held while calling into a RedisClient or making one
    // (its constructor registers with the fork hooks, whose lock is held across fork while
    // this object's fork_prepare takes m_).
    mutable std::mutex m_;
    mutable std::map<std::string, std::shared_ptr<RedisClient>> nodes_;  // by "host:port"
    std::vector<std::string> masters_;          // of the current map, by index
    std::array<int16_t, kClusterSlots> slots_;  // index into masters_, -1 if unserved
    bool have_map_ = false;
    bool refresh_due_ = false;
    uint64_t last_refresh_ms_ = 0;
};

}  // namespace shmcache::l2

#endif
