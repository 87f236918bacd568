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
            // Not echoed: it may be the tail of a password with an unescaped '?'.
            *why = "a query item is not name=value (percent-encode '?', '#', '/' and '@' in "
                   "passwords)";
            return false;
        }
        std::string_view name = item.substr(0, eq), value = item.substr(eq + 1);
        std::string decoded;
        if (!percent_decode(value, &decoded)) {
            *why = "bad percent-escape in the query";
            return false;
        }
        const bool tls_item = name.starts_with("ssl_");
        if (tls_item && !ep->tls.enabled) {
            *why = std::string(name) + " needs a TLS URL (rediss://)";
            return false;
        }
        const bool sentinel_item = name.starts_with("sentinel_");
        if (sentinel_item && ep->topology != Topology::kSentinel) {
            *why = std::string(name) + " needs a Sentinel URL (redis+sentinel://)";
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
        } else if (name == "ssl_ca_certs") {
            ep->tls.ca_file = decoded;
        } else if (name == "ssl_ca_path") {
            ep->tls.ca_path = decoded;
        } else if (name == "ssl_certfile") {
            ep->tls.cert_file = decoded;
        } else if (name == "ssl_keyfile") {
            ep->tls.key_file = decoded;
        } else if (name == "ssl_server_name") {
            ep->tls.server_name = decoded;
        } else if (name == "ssl_cert_reqs") {
            if (decoded == "required") {
                ep->tls.verify = true;
            } else if (decoded == "none") {
                ep->tls.verify = false;
            } else {
                *why = "ssl_cert_reqs must be required or none";
                return false;
            }
        } else if (name == "sentinel_user" || name == "sentinel_username") {
            ep->sentinel_user = decoded;
        } else if (name == "sentinel_password") {
            ep->sentinel_password = decoded;
        } else {
            *why = "unknown query parameter '" + std::string(name) +
                   "' (db, user, password, ssl_ca_certs, ssl_ca_path, ssl_certfile, ssl_keyfile, "
                   "ssl_server_name, ssl_cert_reqs, sentinel_user, sentinel_password)";
            return false;
        }
    }
    if (ep->tls.key_file.empty()) ep->tls.key_file = ep->tls.cert_file;
    if (!ep->tls.key_file.empty() && ep->tls.cert_file.empty()) {
        *why = "ssl_keyfile needs ssl_certfile";
        return false;
    }
    return true;
}

// "host", "host:port", "[v6]", "[v6]:port".
bool parse_hostport(std::string_view hostport, int default_port, HostPort* out, std::string* why) {
    std::string_view port;
    if (!hostport.empty() && hostport[0] == '[') {
        const size_t close = hostport.find(']');
        if (close == std::string_view::npos) {
            *why = "unclosed '[' in an IPv6 host";
            return false;
        }
        out->host = std::string(hostport.substr(1, close - 1));
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
        out->host = std::string(hostport.substr(0, colon));
        if (colon != std::string_view::npos) port = hostport.substr(colon + 1);
    }
    out->port = default_port;
    if (!port.empty() && !parse_int(port, 1, 65535, &out->port)) {
        *why = "port must be 1-65535";
        return false;
    }
    return true;
}

}  // namespace

std::string HostPort::describe() const {
    const bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string RedisEndpoint::describe() const {
    const std::string tls_mark = tls.enabled ? " (TLS)" : "";
    switch (topology) {
        case Topology::kSentinel: {
            std::string s = "master '" + master_name + "' via sentinel";
            for (const HostPort& hp : seeds) s += " " + hp.describe();
            return s + " db " + std::to_string(db) + tls_mark;
        }
        case Topology::kCluster: {
            std::string s = "cluster";
            for (const HostPort& hp : seeds) s += " " + hp.describe();
            return s + tls_mark;
        }
        case Topology::kSingle:
            break;
    }
    if (is_unix) return "unix:" + path + " db " + std::to_string(db);
    return HostPort{host, port}.describe() + " db " + std::to_string(db) + tls_mark;
}

RedisEndpoint RedisEndpoint::node(const HostPort& hp) const {
    RedisEndpoint ep = *this;
    ep.topology = Topology::kSingle;
    ep.is_unix = false;
    ep.host = hp.host;
    ep.port = hp.port;
    ep.seeds.clear();
    ep.master_name.clear();
    ep.sentinel_user.clear();
    ep.sentinel_password.clear();
    return ep;
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
    std::string_view base = scheme;
    if (base.ends_with("+sentinel")) {
        ep.topology = Topology::kSentinel;
        base.remove_suffix(9);
    } else if (base.ends_with("+cluster")) {
        ep.topology = Topology::kCluster;
        base.remove_suffix(8);
    }
    if (base == "rediss") {
        ep.tls.enabled = true;
    } else if (base != "redis") {
        *why = "unknown scheme '" + std::string(scheme) +
               "' (redis://, rediss://, unix://, redis+sentinel://, redis+cluster://)";
        return false;
    }
    // Split off the query, then the userinfo, then the path, then the host list.
    const size_t qm = rest.find('?');
    std::string_view query = qm == std::string_view::npos ? std::string_view() : rest.substr(qm + 1);
    rest = rest.substr(0, qm);
    const size_t first_slash = rest.find('/');
    const size_t at = rest.substr(0, first_slash).rfind('@');
    if (at != std::string_view::npos) {
        if (!parse_userinfo(rest.substr(0, at), &ep, why)) return false;
        rest = rest.substr(at + 1);
    }
    const size_t slash = rest.find('/');
    std::string_view hosts = rest.substr(0, slash);
    std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    if (ep.topology == Topology::kSentinel) {
        // /mastername[/db]
        const size_t s2 = path.find('/');
        if (!percent_decode(path.substr(0, s2), &ep.master_name) || ep.master_name.empty()) {
            *why = "a Sentinel URL needs the master's name: redis+sentinel://host:26379/mymaster";
            return false;
        }
        path = s2 == std::string_view::npos ? std::string_view() : path.substr(s2 + 1);
    }
    if (!path.empty() && !parse_int(path, 0, 1 << 20, &ep.db)) {
        *why = "the path must be a database number: /0";
        return false;
    }
    const int default_port = ep.topology == Topology::kSentinel ? 26379 : 6379;
    while (true) {
        const size_t comma = hosts.find(',');
        HostPort hp;
        if (!parse_hostport(hosts.substr(0, comma), default_port, &hp, why)) return false;
        if (hp.host.empty()) {
            if (ep.topology != Topology::kSingle) {
                *why = "an empty host in the host list";
                return false;
            }
            hp.host = "127.0.0.1";
        }
        ep.seeds.push_back(hp);
        if (comma == std::string_view::npos) break;
        hosts = hosts.substr(comma + 1);
    }
    if (ep.topology == Topology::kSingle && ep.seeds.size() > 1) {
        *why = "several hosts need redis+sentinel:// or redis+cluster://";
        return false;
    }
    ep.host = ep.seeds[0].host;
    ep.port = ep.seeds[0].port;
    if (ep.topology == Topology::kSingle) ep.seeds.clear();
    if (!query.empty() && !parse_query(query, &ep, why)) return false;
    if (ep.topology == Topology::kCluster && ep.db != 0) {
        *why = "Redis Cluster has only database 0";
        return false;
    }
    *out = std::move(ep);
    return true;
}

}  // namespace shmcache::l2
