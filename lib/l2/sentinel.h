// sentinel.h - where the master is, according to Redis Sentinel (redis+sentinel:// URLs).
//
// The resolver asks the sentinels of the URL, in order starting with the last one that answered,
// SENTINEL GET-MASTER-ADDR-BY-NAME <master>, and remembers the answer until told to forget it:
// after a connection to the master failed, the master answered READONLY or ROLE said it is a
// replica (a failover happened), or the host's subscriber heard +switch-master. Every connection
// the pool opens is checked with ROLE before use (redis_client.cpp), so a demoted master is
// never written to, even when a sentinel's answer is stale.
//
// The sentinels use the URL's TLS settings and their own credentials (sentinel_user,
// sentinel_password); the master uses the URL's user, password and database.
#ifndef SHMCACHE_LIB_L2_SENTINEL_H
#define SHMCACHE_LIB_L2_SENTINEL_H

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "conn.h"
#include "redis_url.h"

namespace shmcache::l2 {

class SentinelResolver {
public:
    SentinelResolver(RedisEndpoint endpoint, std::shared_ptr<TlsContext> tls,
                     uint32_t connect_timeout_ms);

    // The master's address: remembered, or asked of the sentinels before deadline_ms. False
    // with *why set when no sentinel answered with an address.
    bool master(uint64_t deadline_ms, HostPort* out, std::string* why);
    // Forgets the remembered address (the next master() asks the sentinels again).
    void forget();
    // Records what a +switch-master message announced.
    void switched_to(const HostPort& master);

    // A connection to a sentinel subscribed to +switch-master (for the host's subscriber),
    // bounded by deadline_ms. Null with *why set on failure.
    std::unique_ptr<Conn> watch(uint64_t deadline_ms, std::string* why);
    // Parses a +switch-master payload "<name> <old ip> <old port> <new ip> <new port>": whether
    // it concerns this master, and its new address.
    bool parse_switch(std::string_view payload, HostPort* to) const;

    const std::string& master_name() const { return ep_.master_name; }

    // Held across fork by the owning client (redis_client.cpp).
    void fork_lock() { m_.lock(); }
    void fork_unlock() { m_.unlock(); }

private:
    // A connection to sentinel i, authenticated; null with *why set.
    std::unique_ptr<Conn> open_sentinel(size_t i, uint64_t deadline_ms, std::string* why);

    const RedisEndpoint ep_;
    const std::shared_ptr<TlsContext> tls_;
    const uint32_t connect_timeout_ms_;
    std::mutex m_;  // guards known_, switches_ and first_
    std::optional<HostPort> known_;
    uint64_t switches_ = 0;  // +switch-master messages seen: an older query's answer is stale
    size_t first_ = 0;  // the sentinel that answered last: asked first next time
};

}  // namespace shmcache::l2

#endif
