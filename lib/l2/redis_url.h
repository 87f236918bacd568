// redis_url.h - where the Redis tier connects: parsed from a URL.
//
//   redis://[[user]:password@]host[:port][/db]      host may be [IPv6]; port defaults to 6379
//   unix:///path/to/redis.sock[?db=N&password=P&user=U]
// User and password are percent-decoded. rediss:// (TLS) is refused: hiredis 0.14 has no TLS.
#ifndef SHMCACHE_LIB_L2_REDIS_URL_H
#define SHMCACHE_LIB_L2_REDIS_URL_H

#include <string>
#include <string_view>

namespace shmcache::l2 {

struct RedisEndpoint {
    bool is_unix = false;
    std::string host;  // TCP
    int port = 6379;
    std::string path;  // unix socket
    std::string user;  // empty: AUTH with password only (or none)
    std::string password;
    int db = 0;
    std::string describe() const;  // for messages: never includes the password
};

// Returns false with *why set on a malformed URL.
bool parse_redis_url(std::string_view url, RedisEndpoint* out, std::string* why);

}  // namespace shmcache::l2

#endif
