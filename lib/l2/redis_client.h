// redis_client.h - commands to Redis with a hard time bound, a per-process connection pool and
// a circuit breaker.
//
// run() sends a batch of commands in one round trip (pipelined) and waits for every reply, never
// longer than command_timeout_ms in total: connecting, the TLS handshake, writing and reading all
// count against the same deadline (conn.h waits with poll() on non-blocking sockets). A connection
// that failed in any way is closed, never reused (a reply may still be in flight on it), and
// an I/O failure also closes the idle ones, which a restarted Redis has reset as well.
//
// Connections belong to the process that opened them. After fork() the child closes its copies
// of the idle ones (the parent keeps its own) and opens new ones on demand, so a handle opened
// before fork (gunicorn --preload) works in every worker.
#ifndef SHMCACHE_LIB_L2_REDIS_CLIENT_H
#define SHMCACHE_LIB_L2_REDIS_CLIENT_H

#include <atomic>
#include <memory>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "breaker.h"
#include "conn.h"
#include "fork_hooks.h"
#include "redis_url.h"
#include "sentinel.h"

namespace shmcache::l2 {

struct ClientOptions {
    RedisEndpoint endpoint;
    uint32_t connect_timeout_ms = 250;
    uint32_t command_timeout_ms = 100;
    uint32_t max_connections = 16;
    bool retry_on_timeout = false;
    uint32_t breaker_threshold = 3;
    uint32_t breaker_cooldown_ms = 1000;
};

// Where the host-wide counters live (the segment's L2 block); may be null in tests.
struct ClientCounters {
    std::atomic<uint64_t>* errors = nullptr;
    std::atomic<uint64_t>* timeouts = nullptr;
    std::atomic<uint64_t>* breaker_opens = nullptr;
    // The host's coherence epoch (L2Coherence::epoch): pooled connections opened before it
    // moved are not reused (acquire).
    const std::atomic<uint64_t>* epoch = nullptr;
};

// What the tiers use of Redis, behind which one server (RedisClient) or a cluster
// (ClusterClient, cluster_client.h) answers. run() has the contract documented on RedisClient.
class Client {
public:
    virtual ~Client() = default;
    virtual int run(std::span<const Command> cmds, Replies* out) = 0;
    // The shards a pattern purge must SCAN one by one (one server: itself; a cluster: each
    // master), and a batch sent to one of them by name.
    virtual int shards(std::vector<std::string>* names) = 0;
    virtual int run_on(const std::string& shard, std::span<const Command> cmds, Replies* out) = 0;
    virtual bool connected() const = 0;
    virtual bool breaker_open() const = 0;
    virtual const ClientOptions& options() const = 0;
    // The subscriber's own connection (see RedisClient::connect_dedicated).
    virtual std::unique_ptr<Conn> connect_dedicated(std::string* why) const = 0;
    // Sentinel only (RedisClient): where the master is, and the subscriber's news of a switch.
    virtual SentinelResolver* sentinel() const { return nullptr; }
    virtual void master_switched(const HostPort&) {}
};

class RedisClient final : public Client, public ForkAware {
public:
    // Null with *why set when the TLS files cannot be loaded.
    static std::unique_ptr<RedisClient> create(ClientOptions opts, ClientCounters counters,
                                               std::string* why);
    RedisClient(ClientOptions opts, ClientCounters counters, std::shared_ptr<TlsContext> tls);
    ~RedisClient();
    RedisClient(const RedisClient&) = delete;
    RedisClient& operator=(const RedisClient&) = delete;

    // Sends cmds in one round trip and fills *out with their replies. Returns 0, or
    // SHMC_E_L2_UNAVAILABLE (breaker open, connect failure, timeout, connection lost) or
    // SHMC_E_L2_REPLY (Redis answered an error; the connection stays usable), with the errmsg set.
    int run(std::span<const Command> cmds, Replies* out) override;
    // As run(), but bounded by the caller's deadline (a cluster call spans several nodes within
    // one budget), and error replies are left in *out for the caller to read (a cluster's MOVED
    // and ASK are routing, not failures): neither counted nor turned into SHMC_E_L2_REPLY.
    int run_raw(std::span<const Command> cmds, uint64_t deadline_ms, Replies* out);

    int shards(std::vector<std::string>* names) override {
        *names = {opts_.endpoint.describe()};
        return 0;
    }
    int run_on(const std::string&, std::span<const Command> cmds, Replies* out) override {
        return run(cmds, out);
    }
    bool connected() const override { return connected_.load(std::memory_order_relaxed); }
    bool breaker_open() const override { return breaker_.is_open(); }
    const ClientOptions& options() const override { return opts_; }

    // Opens a connection outside the pool (the subscriber's own), bounded by connect_timeout_ms,
    // authenticated and with the database selected. Null with *why set on failure.
    std::unique_ptr<Conn> connect_dedicated(std::string* why) const override;

    // With a Sentinel endpoint: where the master is (null otherwise).
    SentinelResolver* sentinel() const override { return sentinel_.get(); }
    // The master changed (the subscriber heard +switch-master): this process's idle connections
    // go, the next ones are opened to the new master.
    void master_switched(const HostPort& to) override;

    void fork_prepare() override;
    void fork_parent() override;
    void fork_child() override;

private:
    struct Failure {
        std::string what;
        bool timeout = false;
        bool io = false;  // the connection is unusable (timeout, EOF, reset)
        bool readonly = false;  // it reached a replica (behind Sentinel: a failover)
    };
    std::unique_ptr<Conn> acquire(uint64_t deadline_ms, bool* fresh, Failure* f);
    void release(std::unique_ptr<Conn> c, bool reusable);
    void drop_idle();
    std::unique_ptr<Conn> connect(uint64_t deadline_ms, Failure* f) const;
    int attempt(std::span<const Command> cmds, uint64_t deadline_ms, Replies* out, Failure* f,
                bool* fresh);
    void note_failure(const Failure& f);

    const ClientOptions opts_;
    const ClientCounters counters_;
    const std::shared_ptr<TlsContext> tls_;  // null: plain
    const std::unique_ptr<SentinelResolver> sentinel_;  // kSentinel endpoints
    Breaker breaker_;
    std::atomic<bool> connected_{false};

    std::mutex m_;  // guards idle_ and open_
    std::condition_variable cv_;
    std::vector<std::unique_ptr<Conn>> idle_;
    uint32_t open_ = 0;  // connections of this process, idle or in use
    uint64_t pool_epoch_ = 0;  // the epoch the idle connections were opened under
};

}  // namespace shmcache::l2

#endif
