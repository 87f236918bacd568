// tiers.cpp - see tiers.h.
#include "tiers.h"

#include "exit_codes.h"
#include "format.h"

namespace shmcache::cli {

int resolve_tiers(const Global& g, const char* verb, const std::string& choice, uint32_t* tiers) {
    if (choice.empty())
        *tiers = g.redis ? SHMC_TIER_BOTH : SHMC_TIER_L1;
    else if (choice == "l1")
        *tiers = SHMC_TIER_L1;
    else if (choice == "l2")
        *tiers = SHMC_TIER_L2;
    else
        *tiers = SHMC_TIER_BOTH;
    if ((*tiers & SHMC_TIER_L2) && !g.redis) {
        warn(verb, "--tier " + choice +
                       " needs the Redis L2: give --redis URL (or set $SHMCACHE_REDIS_URL)");
        return kExitUsage;
    }
    return 0;
}

int attach_l2(const Global& g, const char* verb, Cache* cache) {
    shmc_l2_options o;
    shmc_l2_options_default(&o);
    o.url = g.redis->url.c_str();
    o.key_prefix = g.redis->prefix.empty() ? nullptr : g.redis->prefix.c_str();
    // One budget for everything: the connection is made inside the first call's budget anyway,
    // and an operator thinks of "how long may Redis take", not of its phases.
    o.connect_timeout_ms = g.redis->timeout_ms;
    o.command_timeout_ms = g.redis->timeout_ms;
    o.max_connections = 1;  // one thread, one call at a time
    o.flags = SHMC_L2_NO_SUBSCRIBE;
    int rc = shmc_l2_attach(cache->get(), &o);
    if (rc == SHMC_OK) return 0;
    // The library's message says what is wrong with the URL without repeating it (it may hold
    // a password); add the redacted form so the operator sees which value was used.
    return report(g, verb, rc, "--redis " + redacted_url(g.redis->url));
}

int probe_l2(shmc_cache* cache) {
    const std::string_view key = kProbeKey;
    size_t len = 0;
    int rc = shmc_tget(cache, key.data(), key.size(), nullptr, 0, &len, nullptr, nullptr,
                       SHMC_TIER_L2, 0, nullptr);
    return rc == SHMC_E_NOTFOUND || rc == SHMC_E_BUFFER_TOO_SMALL ? SHMC_OK : rc;
}

std::string tier_text(uint32_t tiers) {
    switch (tiers) {
        case SHMC_TIER_L1: return "L1";
        case SHMC_TIER_L2: return "L2";
        default: return "L1 and L2";
    }
}

std::string redacted_url(const std::string& url) {
    std::string out = url;
    const size_t scheme = out.find("://");
    if (scheme == std::string::npos) return out;
    // The userinfo ends at the last '@' before the query, as the library parses it.
    const size_t start = scheme + 3;
    const size_t query = out.find('?', start);
    const size_t at = out.rfind('@', query == std::string::npos ? std::string::npos : query);
    if (at != std::string::npos && at >= start) {
        const size_t colon = out.find(':', start);
        const size_t from = colon != std::string::npos && colon < at ? colon + 1 : start;
        out.replace(from, at - from, "***");
    }
    // ?password=P, ?sentinel_password=P: every query item whose name ends in "password".
    for (size_t q = out.find('?'); q != std::string::npos; q = out.find('&', q + 1)) {
        const size_t eq = out.find('=', q + 1);
        const size_t next = out.find('&', q + 1);
        if (eq == std::string::npos || (next != std::string::npos && eq > next)) continue;
        if (!std::string_view(out).substr(q + 1, eq - q - 1).ends_with("password")) continue;
        out.replace(eq + 1, (next == std::string::npos ? out.size() : next) - eq - 1, "***");
    }
    return out;
}

std::string l2_where(const RedisOptions& r) {
    std::string out = redacted_url(r.url);
    if (!r.prefix.empty()) out += ", namespace '" + escape_bytes(r.prefix) + ":'";
    return out;
}

std::string redis_scan_pattern(const RedisOptions& r, const std::string& pattern) {
    std::string out;
    const std::string ns = r.prefix.empty() ? "" : r.prefix + ":";
    for (char ch : ns) {
        if (ch == '*' || ch == '?' || ch == '[' || ch == ']' || ch == '\\') out.push_back('\\');
        out.push_back(ch);
    }
    for (size_t i = 0; i < pattern.size(); ++i) {
        out.push_back(pattern[i]);
        if (pattern[i] == '\\' && i + 1 < pattern.size()) {
            out.push_back(pattern[++i]);
        } else if (pattern[i] == '[' && i + 1 < pattern.size() && pattern[i + 1] == '!') {
            out.push_back('^');
            ++i;
        }
    }
    return out;
}

}  // namespace shmcache::cli
