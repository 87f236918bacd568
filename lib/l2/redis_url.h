// redis_url.h - where the Redis tier connects: parsed from a URL.
//
//   redis://[[user]:password@]host[:port][/db][?query]          one server; port 6379
//   rediss://...                                                the same over TLS
//   unix:///path/to/redis.sock[?db=N&password=P&user=U]
//   redis+sentinel://[[user]:password@]host[:port],host[:port].../mastername[/db][?query]
//                                                               Sentinel; port 26379
//   redis+cluster://[[user]:password@]host[:port],host[:port]...[?query]
//                                                               Redis Cluster (seeds); db 0
//   rediss+sentinel://, rediss+cluster://                       the same over TLS
//
// Query: db, user (or username), password; TLS (rediss only): ssl_ca_certs (a PEM file of CAs),
// ssl_ca_path (a directory of hashed CAs), ssl_certfile and ssl_keyfile (a client certificate),
// ssl_server_name (the name the certificate must carry and SNI sends; default: the host),
// ssl_cert_reqs (required, the default, or none: no verification, for tests only); Sentinel
// only: sentinel_user, sentinel_password (the sentinels' own credentials; the userinfo is the
// data nodes'). The names follow redis-py's. Values are percent-decoded.
#ifndef SHMCACHE_LIB_L2_REDIS_URL_H
#define SHMCACHE_LIB_L2_REDIS_URL_H

#include <string>
#include <string_view>
#include <vector>

namespace shmcache::l2 {

struct HostPort {
    std::string host;
    int port = 6379;
    bool operator==(const HostPort&) const = default;
    std::string describe() const;  // host:port, [v6]:port
};

struct TlsOptions {
    bool enabled = false;
    std::string ca_file;      // ssl_ca_certs; none given: the system's default CAs
    std::string ca_path;      // ssl_ca_path
    std::string cert_file;    // ssl_certfile
    std::string key_file;     // ssl_keyfile (defaults to cert_file when only that is given)
    std::string server_name;  // ssl_server_name; empty: the host connected to
    bool verify = true;       // ssl_cert_reqs=none: false
};

enum class Topology { kSingle, kSentinel, kCluster };

struct RedisEndpoint {
    Topology topology = Topology::kSingle;
    bool is_unix = false;
    std::string host;  // TCP (kSingle); for the others the first seed
    int port = 6379;
    std::string path;  // unix socket
    std::vector<HostPort> seeds;  // kSentinel: the sentinels; kCluster: the seed nodes
    std::string master_name;      // kSentinel
    std::string sentinel_user, sentinel_password;
    std::string user;  // empty: AUTH with password only (or none)
    std::string password;
    int db = 0;
    TlsOptions tls;

    std::string describe() const;  // for messages: never includes a password
    // The data node at hp with this endpoint's credentials, database and TLS settings.
    RedisEndpoint node(const HostPort& hp) const;
};

// Returns false with *why set on a malformed URL.
bool parse_redis_url(std::string_view url, RedisEndpoint* out, std::string* why);

}  // namespace shmcache::l2

#endif
