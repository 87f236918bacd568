// fuzz_l2_parse.cpp - what the Redis tier parses or rewrites: Redis URLs (configuration),
// invalidation messages (read off the network, from any publisher on the channel), and shmcache
// globs rewritten as Redis MATCH patterns (purge must remove the same keys from both tiers).
//
// Input: a mode byte, then:
//   mode % 3 == 0: a URL. Checked: parsing never crashes; an accepted URL has a port in 1-65535,
//     a database >= 0, and a TCP host or an absolute socket path; describe() (used in messages)
//     is exactly host:port or the socket path, and the db: never the user or password.
//   mode % 3 == 1: a message. Checked: a decoded message re-encodes to one that decodes to the
//     same origin, op and argument, and the op is one of D, S, P.
//   mode % 3 == 2: [n][n bytes of prefix][m][m bytes of pattern][key]. For a valid pattern and
//     a non-empty key:
//     shmcache's glob_match(pattern, key) == Redis's matcher (a port of stringmatchlen from
//     Redis 7.0 util.c, below) on (rewritten pattern, prefix + key).
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_support.h"
#include "shm/glob.h"
#include "invalidation.h"
#include "redis_url.h"
#include "tiers.h"

namespace {

namespace l2 = shmcache::l2;
namespace shm = shmcache::shm;

// Redis 7.0's stringmatchlen (src/util.c), case-sensitive, with its pointer walk kept and its
// reads past the end (Redis's strings are NUL-terminated) bounded here. Note `int c = string[0]`:
// Redis compares bytes as (signed) char in ranges; the rewrite never emits ranges.
int redis_match(const char* pattern, int patternLen, const char* string, int stringLen,
                int* skipLonger) {
    while (patternLen && stringLen) {
        switch (pattern[0]) {
            case '*':
                while (patternLen > 1 && pattern[1] == '*') {
                    pattern++;
                    patternLen--;
                }
                if (patternLen == 1) return 1;
                while (stringLen) {
                    if (redis_match(pattern + 1, patternLen - 1, string, stringLen, skipLonger))
                        return 1;
                    if (*skipLonger) return 0;
                    string++;
                    stringLen--;
                }
                *skipLonger = 1;
                return 0;
            case '?':
                string++;
                stringLen--;
                break;
            case '[': {
                pattern++;
                patternLen--;
                const bool negate = patternLen && pattern[0] == '^';
                if (negate) {
                    pattern++;
                    patternLen--;
                }
                bool match = false;
                while (true) {
                    if (patternLen >= 2 && pattern[0] == '\\') {
                        pattern++;
                        patternLen--;
                        if (pattern[0] == string[0]) match = true;
                    } else if (patternLen && pattern[0] == ']') {
                        break;
                    } else if (patternLen == 0) {
                        pattern--;
                        patternLen++;
                        break;
                    } else if (patternLen >= 3 && pattern[1] == '-') {
                        int start = pattern[0], end = pattern[2], c = string[0];
                        if (start > end) std::swap(start, end);
                        pattern += 2;
                        patternLen -= 2;
                        if (c >= start && c <= end) match = true;
                    } else if (pattern[0] == string[0]) {
                        match = true;
                    }
                    pattern++;
                    patternLen--;
                }
                if (negate) match = !match;
                if (!match) return 0;
                string++;
                stringLen--;
                break;
            }
            case '\\':
                if (patternLen >= 2) {
                    pattern++;
                    patternLen--;
                }
                [[fallthrough]];
            default:
                if (pattern[0] != string[0]) return 0;
                string++;
                stringLen--;
                break;
        }
        pattern++;
        patternLen--;
        if (stringLen == 0) {
            while (patternLen && pattern[0] == '*') {
                pattern++;
                patternLen--;
            }
            break;
        }
    }
    return patternLen == 0 && stringLen == 0;
}

void check_url(std::string_view in) {
    l2::RedisEndpoint ep;
    std::string why;
    if (!l2::parse_redis_url(in, &ep, &why)) {
        FUZZ_CHECK(!why.empty(), "a refused URL must say why");
        return;
    }
    FUZZ_CHECK(ep.db >= 0, "db " + std::to_string(ep.db));
    if (ep.is_unix) {
        FUZZ_CHECK(!ep.path.empty() && ep.path[0] == '/', "socket path " + ep.path);
    } else {
        FUZZ_CHECK(ep.port >= 1 && ep.port <= 65535, "port " + std::to_string(ep.port));
        FUZZ_CHECK(!ep.host.empty(), "empty host");
    }
    FUZZ_CHECK(!ep.tls.enabled || !ep.is_unix, "TLS over a unix socket");
    FUZZ_CHECK(ep.tls.key_file.empty() || !ep.tls.cert_file.empty(), "a key without a certificate");
    // describe() is built from the endpoint alone (so it can never show a password).
    const std::string tls = ep.tls.enabled ? " (TLS)" : "";
    if (ep.topology != l2::Topology::kSingle) {
        FUZZ_CHECK(!ep.seeds.empty(), "no seeds");
        std::string hosts;
        for (const l2::HostPort& hp : ep.seeds) {
            FUZZ_CHECK(!hp.host.empty(), "an empty seed host");
            FUZZ_CHECK(hp.port >= 1 && hp.port <= 65535, "seed port " + std::to_string(hp.port));
            hosts += " " + hp.describe();
        }
        FUZZ_CHECK(ep.host == ep.seeds[0].host && ep.port == ep.seeds[0].port, "first seed");
        const std::string expect =
            ep.topology == l2::Topology::kSentinel
                ? "master '" + ep.master_name + "' via sentinel" + hosts + " db " +
                      std::to_string(ep.db) + tls
                : "cluster" + hosts + tls;
        FUZZ_CHECK(ep.topology != l2::Topology::kSentinel || !ep.master_name.empty(), "no master");
        FUZZ_CHECK(ep.topology != l2::Topology::kCluster || ep.db == 0, "cluster db");
        FUZZ_CHECK(ep.describe() == expect, "describe() says " + ep.describe());
        return;
    }
    FUZZ_CHECK(ep.seeds.empty(), "seeds on a single server");
    const bool v6 = ep.host.find(':') != std::string::npos;
    const std::string expect =
        ep.is_unix ? "unix:" + ep.path + " db " + std::to_string(ep.db)
                   : (v6 ? "[" + ep.host + "]" : ep.host) + ":" + std::to_string(ep.port) +
                         " db " + std::to_string(ep.db) + tls;
    FUZZ_CHECK(ep.describe() == expect, "describe() says " + ep.describe());
}

void check_message(std::string_view in) {
    uint64_t origin = 0;
    char op = 0;
    std::string_view arg;
    if (!l2::decode_invalidation(in, &origin, &op, &arg)) return;
    FUZZ_CHECK(op == 'D' || op == 'S' || op == 'P', std::string("op ") + op);
    const std::string again = l2::encode_invalidation(origin, op, arg);
    uint64_t origin2 = 0;
    char op2 = 0;
    std::string_view arg2;
    FUZZ_CHECK(l2::decode_invalidation(again, &origin2, &op2, &arg2), "re-encoded fails to decode");
    FUZZ_CHECK(origin2 == origin && op2 == op && arg2 == arg, "round trip changed the message");
}

void check_pattern(fuzz::Reader& r) {
    const std::string prefix(r.bytes(r.u8() % 16));
    const std::string pat(r.bytes(r.u8() % 64));
    const std::string key(r.rest().substr(0, 128));
    // Keys are never empty (the C ABI refuses them), and Redis's matcher never matches an
    // empty string, not even with "*".
    if (key.empty() || !shm::glob_valid(pat.data(), pat.size())) return;
    const bool ours = shm::glob_match(pat.data(), pat.size(), key.data(), key.size());
    const std::string rp = l2::redis_match_pattern(prefix, pat.data(), pat.size());
    const std::string subject = prefix + key;
    int skip = 0;
    const bool theirs =
        redis_match(rp.data(), int(rp.size()), subject.data(), int(subject.size()), &skip) != 0;
    FUZZ_CHECK(ours == theirs, "pattern '" + pat + "' prefix '" + prefix + "' key '" + key +
                                   "': shmcache " + (ours ? "matches" : "does not match") +
                                   ", Redis with '" + rp + "' " + (theirs ? "matches" : "does not"));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::Reader r(data, size);
    switch (r.u8() % 3) {
        case 0: check_url(r.rest()); break;
        case 1: check_message(r.rest()); break;
        default: check_pattern(r); break;
    }
    return 0;
}
