// redis_url.cpp - see redis_url.h.
#include "redis_url.h"

#include <charconv>

namespace shmcache::l2 {

namespace {

bool parse_int(std::string_view s, int lo, int hi, int* out) {
    int v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || v < lo || v > hi) return false;
    *out = v;
    return true;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool percent_decode(std::string_view s, std::string* out) {
    out->clear();
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out->push_back(s[i]);
            continue;
        }
        if (i + 2 >= s.size()) return false;  // a '%' needs two hex digits after it
        const int hi = hex_digit(s[i + 1]), lo = hex_digit(s[i + 2]);
        if (hi < 0 || lo < 0) return false;
        out->push_back(char(hi * 16 + lo));
        i += 2;
    }
    return true;
}

// "user:password", ":password" or "password" (the form redis-py accepts without a colon is
// taken as a password, as Redis before ACLs had no users).
bool parse_userinfo(std::string_view info, RedisEndpoint* ep, std::string* why) {
    const size_t colon = info.find(':');
    std::string_view user = colon == std::string_view::npos ? std::string_view() : info.substr(0, colon);
    std::string_view pass = colon == std::string_view::npos ? info : info.substr(colon + 1);
    if (!percent_decode(user, &ep->user) || !percent_decode(pass, &ep->password)) {
        *why = "bad percent-escape in the user or password";
        return false;
    }
    return true;
}

bool parse_query(std::string_view q, RedisEndpoint* ep, std::string* why) {
    while (!q.empty()) {
        const size_t amp = q.find('&');
        std::string_view item = q.substr(0, amp);
        q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
        const size_t eq = item.find('=');
        if (eq == std::string_view::npos) {
            *why = "query item '" + std::string(item) + "' is not name=value";
            return false;
        }
        std::string_view name = item.substr(0, eq), value = item.substr(eq + 1);
        std::string decoded;
        if (!percent_decode(value, &decoded)) {
            *why = "bad percent-escape in the query";
            return false;
        }
        if (name == "db") {
            if (!parse_int(decoded, 0, 1 << 20, &ep->db)) {
                *why = "db must be a non-negative integer";
                return false;
            }
        } else if (name == "password") {
            ep->password = decoded;
        } else if (name == "user" || name == "username") {
            ep->user = decoded;
        } else {
            *why = "unknown query parameter '" + std::string(name) + "' (db, password, user)";
            return false;
        }
    }
    return true;
}

}  // namespace

std::string RedisEndpoint::describe() const {
    if (is_unix) return "unix:" + path + " db " + std::to_string(db);
    const bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + " db " +
           std::to_string(db);
}

bool parse_redis_url(std::string_view url, RedisEndpoint* out, std::string* why) {
    RedisEndpoint ep;
    const size_t scheme_end = url.find("://");
    if (scheme_end == std::string_view::npos) {
        *why = "not a URL: expected redis://host:port/db or unix:///path";
        return false;
    }
    const std::string_view scheme = url.substr(0, scheme_end);
    std::string_view rest = url.substr(scheme_end + 3);
    if (scheme == "rediss") {
        *why = "rediss:// (TLS) is not supported: hiredis 0.14 on Debian 12 has no TLS";
        return false;
    }
    if (scheme == "unix") {
        const size_t qm = rest.find('?');
        ep.is_unix = true;
        ep.path = std::string(rest.substr(0, qm));
        if (ep.path.empty() || ep.path[0] != '/') {
            *why = "unix:// needs an absolute socket path (unix:///run/redis.sock)";
            return false;
        }
        if (qm != std::string_view::npos && !parse_query(rest.substr(qm + 1), &ep, why))
            return false;
        *out = std::move(ep);
        return true;
    }
    if (scheme != "redis") {
        *why = "unknown scheme '" + std::string(scheme) + "' (redis:// or unix://)";
        return false;
    }
    // Split off the query, then the path (/db), then the userinfo, then host:port.
    const size_t qm = rest.find('?');
    std::string_view query = qm == std::string_view::npos ? std::string_view() : rest.substr(qm + 1);
    rest = rest.substr(0, qm);
    const size_t at = rest.rfind('@');
    if (at != std::string_view::npos) {
        if (!parse_userinfo(rest.substr(0, at), &ep, why)) return false;
        rest = rest.substr(at + 1);
    }
    const size_t slash = rest.find('/');
    std::string_view hostport = rest.substr(0, slash);
    if (slash != std::string_view::npos) {
        std::string_view db = rest.substr(slash + 1);
        if (!db.empty() && !parse_int(db, 0, 1 << 20, &ep.db)) {
            *why = "the path must be a database number: /0";
            return false;
        }
    }
    std::string_view port;
    if (!hostport.empty() && hostport[0] == '[') {
        const size_t close = hostport.find(']');
        if (close == std::string_view::npos) {
            *why = "unclosed '[' in an IPv6 host";
            return false;
        }
        ep.host = std::string(hostport.substr(1, close - 1));
        std::string_view after = hostport.substr(close + 1);
        if (!after.empty()) {
            if (after[0] != ':') {
                *why = "junk after the IPv6 host";
                return false;
            }
            port = after.substr(1);
        }
    } else {
        const size_t colon = hostport.find(':');
        ep.host = std::string(hostport.substr(0, colon));
        if (colon != std::string_view::npos) port = hostport.substr(colon + 1);
    }
    if (ep.host.empty()) ep.host = "127.0.0.1";
    if (!port.empty() && !parse_int(port, 1, 65535, &ep.port)) {
        *why = "port must be 1-65535";
        return false;
    }
    if (!query.empty() && !parse_query(query, &ep, why)) return false;
    *out = std::move(ep);
    return true;
}

}  // namespace shmcache::l2
