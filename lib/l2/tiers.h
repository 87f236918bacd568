// tiers.h - the two tiers together: the shared L1 (the engine) and Redis as L2.
//
// Implements the shmc_t* calls of shmcache.h; the semantics are documented there and in
// docs/l2.md. The orderings that keep L1 coherent (docs/l2.md, "Coherence"):
// - a write that invalidates (delete, purge, L2-only set) goes to L2 first, then moves the key's
//   invalidation sequence (the purge sequence for a purge) and changes L1;
// - a read that misses L1 takes a FillGuard (the key's sequence, the epoch, the purge sequence)
//   before asking L2 and copies the answer into L1 only if nothing in it moved (checked under
//   the stripe lock, Engine::fill) and only as an add, so it never overwrites a newer local
//   write nor reinstates an invalidated value;
// - in tracking mode Redis echoes this host's own writes to its subscriber: a write waits for
//   its echo (wait_own_echo, bounded) and a write to both tiers stores its L1 copy after it,
//   under a guard taken then, so the host keeps what it wrote and later invalidations win;
// - L2 hits are copied into L1 only while this host's invalidation link is vouched for (its
//   heartbeat lease runs); a write whose Redis half failed keeps an L1-only copy for at most
//   outage_write_ttl_ms.
#ifndef SHMCACHE_LIB_L2_TIERS_H
#define SHMCACHE_LIB_L2_TIERS_H

#include <shmcache/shmcache.h>

#include <memory>
#include <string>

#include "shm/engine.h"
#include "invalidation.h"
#include "shm/lease.h"
#include "cluster_client.h"
#include "redis_client.h"

namespace shmcache::l2 {

class Tiers {
public:
    // Validates opts (SHMC_E_INVAL with a message) and builds the tier; connects lazily.
    static int create(shm::Engine& engine, const shmc_l2_options& opts, std::unique_ptr<Tiers>* out);

    int get(const void* key, size_t klen, void* buf, size_t cap, size_t* value_len,
            uint32_t* flags, int64_t* ttl_left_ms, uint32_t tiers, uint64_t fill_ttl_ms,
            uint32_t* served_by);
    int set(const void* key, size_t klen, const void* value, size_t vlen, uint32_t flags,
            uint64_t l1_ttl_ms, uint64_t l2_ttl_ms, uint32_t tiers);
    int del(const void* key, size_t klen, uint32_t tiers);
    int ping();  // one PING: no lookup counted (shmc_l2_ping)
    int purge(const void* pat, size_t plen, uint32_t tiers, uint64_t* removed_l1,
              uint64_t* removed_l2);
    void stats(shmc_l2_stats* out) const;

    // Single flight over both tiers (flight_l2.cpp, docs/stampede.md): the L1 fetch first; on an
    // L1 miss, Redis before computing and, with SHMC_FETCH_L2_LOCK, the cross-host lock. o is
    // validated by the caller; p is resolved from it.
    int fetch(const void* key, size_t klen, void* buf, size_t cap, const shmc_fetch_options& o,
              const shm::FetchParams& p, shm::FetchResult* out, uint32_t* served_by);
    int fetch_complete(const void* key, size_t klen, const void* value, size_t vlen, uint32_t flags,
                       uint32_t compute_ms, const shmc_fetch_options& o, uint64_t lease);
    int fetch_abandon(const void* key, size_t klen, uint64_t lease);

    // Called on every L2-aware call: after a fork, starts the child's subscriber elector.
    void ensure_process() {
        if (subscriber_) subscriber_->ensure_started();
    }

private:
    Tiers(shm::Engine& engine, std::unique_ptr<Client> client, std::string prefix,
          std::string watch, uint32_t flags, uint32_t lease_ms, uint32_t outage_write_ttl_ms);
    std::string l2_key(const void* key, size_t klen) const;
    int purge_l2(const char* pat, size_t plen, uint64_t* removed);
    int purge_shard(const std::string& shard, bool per_key, const char* pat, size_t plen,
                    uint64_t* removed);
    // Runs cmd and, unless SHMC_L2_NO_PUBLISH, the invalidation (op, key) in one round trip;
    // counts `done` or a dropped write (then *errmsg gets the message).
    int write_l2(Command cmd, char op, const void* key, size_t klen, shm::L2Counter done,
                 Replies* r, std::string* errmsg);
    void bump_inval_seq() { shared_.inval_seq.fetch_add(1, std::memory_order_seq_cst); }
    void count(shm::L2Counter c, uint64_t n = 1) const {
        shared_.counters[c].fetch_add(n, std::memory_order_relaxed);
    }
    bool fills_allowed() const;
    bool publishes() const;  // whether writes publish invalidations (publish mode)
    // The key's sequence once this host's own tracking echo of a write has been applied (or
    // kEchoWaitMs passed); before: the guard taken before the write.
    uint32_t wait_own_echo(const shm::FillGuard& before) const;
    // A write to both tiers: whether to store its L1 copy, and under which guard (tiers.cpp).
    bool await_own_echo(const void* key, size_t klen, const shm::FillGuard& before,
                        shm::FillGuard* after);
    // flight_l2.cpp
    std::string lock_key(const void* key, size_t klen) const;
    std::string lock_token(uint64_t lease) const;
    int release_lock(const std::string& lkey, uint64_t lease);
    int serve_l2(const void* key, size_t klen, void* buf, size_t cap, const redisReply& value,
                 long long pttl, const shm::FillGuard& guard, const shmc_fetch_options& o, shm::FetchResult* out,
                 uint32_t* served_by);

    shm::Engine& engine_;
    shm::L2Shared& shared_;
    shm::L2Coherence& coh_;
    const std::string prefix_;  // "" or key_prefix + separator
    const std::string channel_;
    const uint32_t flags_;
    const uint32_t outage_write_ttl_ms_;
    uint64_t origin_ = 0;
    std::unique_ptr<Client> client_;  // a RedisClient, or a ClusterClient for redis+cluster://
    std::unique_ptr<Subscriber> subscriber_;  // null with SHMC_L2_NO_SUBSCRIBE
};

// Set in a lease token (in the bits shm/lease.h leaves free) when its holder also holds the
// cross-host lock in Redis: complete and abandon then release that too.
constexpr uint64_t kLeaseL2Lock = 1ull << 8;
static_assert((kLeaseL2Lock & shm::kTokenUserBits) == kLeaseL2Lock);

// The host-wide L2 figures kept in the segment (configured, connected, breaker_open left 0).
void shared_stats(const shm::L2Shared& l2, const shm::L2Coherence& coh, shmc_l2_stats* out);

// How long a write to both tiers waits for its own tracking echo before storing its L1 copy.
constexpr uint64_t kEchoWaitMs = 5;

// The Redis MATCH pattern that matches exactly the L2 keys "prefix + k" for the keys k that the
// (valid) shmcache glob pat matches.
std::string redis_match_pattern(const std::string& prefix, const char* pat, size_t plen);

}  // namespace shmcache::l2

#endif
