// sentinel.cpp - see sentinel.h.
#include "sentinel.h"

#include <algorithm>
#include <charconv>

namespace shmcache::l2 {

namespace {

bool parse_port(std::string_view s, int* out) {
    int v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || v < 1 || v > 65535) return false;
    *out = v;
    return true;
}

}  // namespace

SentinelResolver::SentinelResolver(RedisEndpoint endpoint, std::shared_ptr<TlsContext> tls,
                                   uint32_t connect_timeout_ms)
    : ep_(std::move(endpoint)), tls_(std::move(tls)), connect_timeout_ms_(connect_timeout_ms) {}

void SentinelResolver::forget() {
    std::lock_guard lk(m_);
    known_.reset();
}

void SentinelResolver::switched_to(const HostPort& master) {
    std::lock_guard lk(m_);
    known_ = master;
    ++switches_;
}

std::unique_ptr<Conn> SentinelResolver::open_sentinel(size_t i, uint64_t deadline_ms,
                                                      std::string* why) {
    const HostPort& hp = ep_.seeds[i];
    RedisEndpoint sep = ep_.node(hp);
    IoError err;
    const uint64_t until = std::min<uint64_t>(deadline_ms, now_ms() + connect_timeout_ms_);
    std::unique_ptr<Conn> c = Conn::open(sep, tls_.get(), until, &err);
    if (!c) {
        *why = "sentinel " + hp.describe() + ": " + err.what;
        return nullptr;
    }
    if (ep_.sentinel_password.empty()) return c;
    Command auth{"AUTH"};
    if (!ep_.sentinel_user.empty()) auth.push_back(ep_.sentinel_user);
    auth.push_back(ep_.sentinel_password);
    Replies r;
    if (!exec_batch(*c, std::span(&auth, 1), until, &r, &err)) {
        *why = "sentinel " + hp.describe() + ": " + err.what;
        return nullptr;
    }
    if (r[0].type == REDIS_REPLY_ERROR) {
        *why = "sentinel " + hp.describe() + " refused AUTH: " + std::string(r[0].str, r[0].len);
        return nullptr;
    }
    return c;
}

bool SentinelResolver::master(uint64_t deadline_ms, HostPort* out, std::string* why) {
    size_t first;
    uint64_t switches;
    {
        std::lock_guard lk(m_);
        if (known_) {
            *out = *known_;
            return true;
        }
        first = first_;
        switches = switches_;
    }
    std::string errors;
    const size_t n = ep_.seeds.size();
    for (size_t k = 0; k < n && now_ms() < deadline_ms; ++k) {
        const size_t i = (first + k) % n;
        std::string e;
        std::unique_ptr<Conn> c = open_sentinel(i, deadline_ms, &e);
        if (c) {
            const Command ask{"SENTINEL", "GET-MASTER-ADDR-BY-NAME", ep_.master_name};
            Replies r;
            IoError err;
            if (!exec_batch(*c, std::span(&ask, 1), deadline_ms, &r, &err)) {
                e = "sentinel " + ep_.seeds[i].describe() + ": " + err.what;
            } else if (r[0].type == REDIS_REPLY_ARRAY && r[0].elements == 2 &&
                       r[0].element[0]->type == REDIS_REPLY_STRING &&
                       r[0].element[1]->type == REDIS_REPLY_STRING) {
                HostPort hp;
                hp.host.assign(r[0].element[0]->str, r[0].element[0]->len);
                if (parse_port(std::string_view(r[0].element[1]->str, r[0].element[1]->len),
                               &hp.port)) {
                    std::lock_guard lk(m_);
                    // A +switch-master heard while this query ran is newer than its answer.
                    if (switches_ == switches) known_ = hp;
                    first_ = i;
                    *out = known_ ? *known_ : hp;
                    return true;
                }
                e = "sentinel " + ep_.seeds[i].describe() + " gave a bad port";
            } else if (r[0].type == REDIS_REPLY_NIL) {
                e = "sentinel " + ep_.seeds[i].describe() + " does not know a master named '" +
                    ep_.master_name + "'";
            } else {
                e = "sentinel " + ep_.seeds[i].describe() + " answered " +
                    (r[0].type == REDIS_REPLY_ERROR ? std::string(r[0].str, r[0].len)
                                                    : std::string("something unexpected"));
            }
        }
        errors += (errors.empty() ? "" : "; ") + e;
    }
    *why = "no sentinel gave the address of master '" + ep_.master_name + "': " +
           (errors.empty() ? std::string("no time left") : errors);
    return false;
}

std::unique_ptr<Conn> SentinelResolver::watch(uint64_t deadline_ms, std::string* why) {
    size_t first;
    {
        std::lock_guard lk(m_);
        first = first_;
    }
    std::string errors;
    for (size_t k = 0; k < ep_.seeds.size() && now_ms() < deadline_ms; ++k) {
        std::string e;
        std::unique_ptr<Conn> c = open_sentinel((first + k) % ep_.seeds.size(), deadline_ms, &e);
        if (c) {
            const Command sub{"SUBSCRIBE", "+switch-master"};
            Replies r;
            IoError err;
            if (exec_batch(*c, std::span(&sub, 1), deadline_ms, &r, &err) &&
                r[0].type == REDIS_REPLY_ARRAY)
                return c;
            e = err.what.empty() ? "SUBSCRIBE +switch-master refused" : err.what;
        }
        errors += (errors.empty() ? "" : "; ") + e;
    }
    *why = errors.empty() ? "no time left" : errors;
    return nullptr;
}

bool SentinelResolver::parse_switch(std::string_view payload, HostPort* to) const {
    // "<name> <old ip> <old port> <new ip> <new port>"; the name may not contain spaces in
    // Sentinel's configuration, so splitting on spaces from the right is exact.
    std::string_view parts[4];
    for (int i = 3; i >= 0; --i) {
        const size_t sp = payload.rfind(' ');
        if (sp == std::string_view::npos) return false;
        parts[i] = payload.substr(sp + 1);
        payload = payload.substr(0, sp);
    }
    if (payload != ep_.master_name) return false;
    to->host = std::string(parts[2]);
    return parse_port(parts[3], &to->port);
}

}  // namespace shmcache::l2
