// kv.cpp - the single-key verbs: get, set, del, ttl.
//
// `get` shows what the application stored, through the value envelope: text (JSON, str) is
// printed as text; bytes are passed through untouched to a pipe but never thrown at a terminal,
// where they could drive the cursor or hide characters, so a terminal gets an escaped or hex
// preview and a note saying so; Python-only formats (pickle, msgpack) are summarized, since the
// CLI will not run a deserializer on cache contents. `get --raw` is the escape hatch: the stored
// bytes exactly, envelope included.
//
// `ttl` asks for the length only (a zero-byte buffer), which returns the remaining TTL without
// copying the value; in L1 it counts no hit and leaves the eviction order alone.
//
// Tiers (tiers.h): with --redis every verb here acts on L1 and L2 unless --tier says otherwise.
// get and ttl look in L1 first and then in L2, and say when L2 answered; they never copy an L2
// value into L1 (value.h says why). del removes from L2 first, then L1, the order the library
// uses so that no reader can refill L1 from the old L2 value in between, and reports each tier.
// set is one shmc_tset: L2 first, then L1, with an invalidation published to other hosts.
#include <shmcache/shmcache.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "base64.h"
#include "commands.h"
#include "exit_codes.h"
#include "format.h"
#include "tiers.h"
#include "ttl.h"
#include "value.h"

namespace shmcache::cli {

namespace {

constexpr size_t kPreviewBytes = 4096;

// Bytes to stdout: as they are to a pipe; escaped or hex-dumped (with a note on stderr) to a
// terminal. `what` names the bytes for the note ("raw bytes", "the stored value").
void print_bytes(std::string_view bytes, const char* what) {
    if (!is_tty(1)) {
        write_all(stdout, bytes);
        return;
    }
    if (is_text(bytes) && bytes.size() <= kPreviewBytes) {
        std::fprintf(stderr,
                     "(%s, %zu bytes, escaped because stdout is a terminal; a pipe or --raw "
                     "gives the bytes)\n",
                     what, bytes.size());
        std::printf("%s\n", escape_bytes(bytes).c_str());
    } else {
        std::fprintf(stderr,
                     "(%s, %zu bytes, shown as a hex dump because stdout is a terminal; a pipe "
                     "or --raw gives the bytes)\n",
                     what, bytes.size());
        write_all(stdout, hex_dump(bytes, kPreviewBytes));
    }
}

// Text (JSON or str) to stdout, followed by a newline; on a terminal, text holding control
// characters is escaped.
void print_text(std::string_view text) {
    if (is_tty(1) && !is_text(text)) {
        std::fprintf(stderr, "(text with control characters, escaped for the terminal)\n");
        std::printf("%s\n", escape_bytes(text).c_str());
        return;
    }
    write_all(stdout, text);
    write_all(stdout, "\n");
}

// `get --json`: a warm record (key, then value, text or value_b64, then ttl in seconds with 0
// for no expiry), so that the output can be fed back to `warm`, plus what a reader wants to
// know: the tier that served it, the serializer, and the stored size.
std::string get_json(std::string_view key, std::string_view stored, int64_t ttl_left_ms,
                     uint32_t served_by) {
    using json = nlohmann::ordered_json;
    json j;
    if (is_utf8(key))
        j["key"] = key;
    else
        j["key_b64"] = base64_encode(key);  // JSON strings are text; warm cannot read this one
    const Decoded d = decode_value(stored, nullptr);
    bool done = false;
    if (d.envelope && d.serializer == SHMC_SER_JSON) {
        json v = json::parse(d.payload, nullptr, false);
        if (!v.is_discarded()) {
            j["value"] = std::move(v);
            done = true;
        }
    }
    if (!done && d.envelope && (d.serializer == SHMC_SER_STR || d.serializer == SHMC_SER_JSON) &&
        is_utf8(d.payload)) {
        j["text"] = d.payload;
        done = true;
    }
    if (!done) j["value_b64"] = base64_encode(d.payload);
    // A live key with under a millisecond left must not read as 0, "never expires".
    j["ttl"] = ttl_left_ms < 0 ? 0.0 : double(std::max<int64_t>(ttl_left_ms, 1)) / 1000.0;
    j["tier"] = served_by == SHMC_TIER_L2 ? "l2" : "l1";
    j["serializer"] = d.envelope ? json(serializer_name(d.serializer)) : json(nullptr);
    j["compressed"] = d.compressed;
    j["stored_bytes"] = stored.size();
    return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

// "not found: KEY", naming the tiers looked in when Redis is in play.
std::string not_found(const Global& g, std::string_view key, uint32_t tiers) {
    std::string msg = "not found: " + escape_bytes(key);
    if (g.redis)
        msg += tiers == SHMC_TIER_BOTH ? " (in L1 or L2)" : " (in " + tier_text(tiers) + ")";
    return msg;
}

const char* kFromL2Note = "note: served by L2 (Redis): the key is not in this host's L1";

std::string expiry_text(uint64_t ttl_ms) {
    return ttl_ms ? "expires in " + human_seconds(double(ttl_ms) / 1000) : "no expiry";
}

// The TTL left of key in one tier, without copying the value.
int ttl_from(shmc_cache* cache, std::string_view key, uint32_t tier, int64_t* ttl_left_ms) {
    size_t len = 0;
    int rc = shmc_tget(cache, key.data(), key.size(), nullptr, 0, &len, nullptr, ttl_left_ms, tier,
                       0, nullptr);
    return rc == SHMC_E_BUFFER_TOO_SMALL ? SHMC_OK : rc;
}

}  // namespace

int run_get(const Global& g, const GetOptions& o) {
    uint32_t tiers = 0;
    if (int e = resolve_tiers(g, "get", o.tier, &tiers)) return e;
    Cache cache;
    if (int e = open_existing(g, "get", &cache, tiers)) return e;
    std::string stored;
    int64_t ttl_left = -1;
    uint32_t served_by = 0;
    int rc = fetch_value(cache.get(), o.key, tiers, &stored, &ttl_left, &served_by);
    if (rc == SHMC_E_NOTFOUND) {
        warn("get", not_found(g, o.key, tiers));
        return kExitNotFound;
    }
    if (rc != SHMC_OK) {
        const bool l1_missed = tiers == SHMC_TIER_BOTH && rc != SHMC_E_LOCK_TIMEOUT;
        return report(g, "get", rc,
                      "key " + escape_bytes(o.key) + (l1_missed ? " (not in L1)" : ""));
    }
    if (o.json) {
        write_all(stdout, get_json(o.key, stored, ttl_left, served_by));
        return std::fflush(stdout) == 0 ? kExitOk : kExitOther;
    }
    if (served_by == SHMC_TIER_L2 && tiers == SHMC_TIER_BOTH) warn("get", kFromL2Note);
    if (o.raw) {
        if (!write_all(stdout, stored)) return kExitOther;
        return kExitOk;
    }
    std::string why;
    const Decoded d = decode_value(stored, &why);
    if (!d.envelope) {
        warn("get",
             "note: the value is not in the shmcache value envelope (written by another "
             "client?" +
                 (why.find("zstd") != std::string::npos ? "; " + why : std::string()) +
                 "); printed as stored");
        print_bytes(d.payload, "the stored value");
        return kExitOk;
    }
    switch (d.serializer) {
        case SHMC_SER_JSON:
        case SHMC_SER_STR: print_text(d.payload); break;
        case SHMC_SER_RAW: print_bytes(d.payload, "raw bytes"); break;
        default:
            // pickle, msgpack, or an id this build does not know: not ours to deserialize.
            std::printf("<%s, %zu bytes>\n", serializer_name(d.serializer).c_str(),
                        d.payload.size());
            break;
    }
    return std::fflush(stdout) == 0 ? kExitOk : kExitOther;
}

int run_set(const Global& g, const SetOptions& o) {
    uint32_t tiers = 0;
    if (int e = resolve_tiers(g, "set", o.tier, &tiers)) return e;
    uint64_t ttl_ms = 0, l2_ttl_ms = 0;
    if (!ttl_to_ms(o.ttl_seconds, &ttl_ms)) {
        warn("set", "--ttl must be between 0 and 100 years, in seconds");
        return kExitUsage;
    }
    l2_ttl_ms = ttl_ms;
    if (o.l2_ttl_seconds) {
        if (!(tiers & SHMC_TIER_L2)) {
            warn("set", "--l2-ttl is the TTL in Redis: it needs --tier l2 or both (and --redis)");
            return kExitUsage;
        }
        if (!ttl_to_ms(*o.l2_ttl_seconds, &l2_ttl_ms)) {
            warn("set", "--l2-ttl must be between 0 and 100 years, in seconds");
            return kExitUsage;
        }
    }
    uint32_t ser = SHMC_SER_STR;
    if (o.json) {
        if (!nlohmann::json::accept(o.value)) {
            warn("set", "--json: the value is not valid JSON");
            return kExitUsage;
        }
        ser = SHMC_SER_JSON;
    } else if (!is_utf8(o.value)) {
        warn("set",
             "the value is not valid UTF-8 text (bytes can be stored with warm's "
             "value_b64)");
        return kExitUsage;
    }
    std::string envelope;
    int rc = encode_value(ser, o.value, o.compress_threshold, &envelope);
    if (rc != SHMC_OK) return report(g, "set", rc, "encoding the value");

    Cache cache;
    if (int e = open_or_create(g, "set", o.create, &cache, tiers)) return e;
    // L2 is written before L1: check L1's limit first, so that a value L1 refuses is not left
    // in Redis alone.
    shmc_info info{};
    if ((tiers & SHMC_TIER_L1) && shmc_get_info(cache.get(), &info) == SHMC_OK &&
        envelope.size() > info.max_value_len) {
        warn("set", strf("value is %zu bytes once encoded, over this segment's max_value_len of "
                         "%u bytes; nothing stored",
                         envelope.size(), info.max_value_len));
        return kExitUsage;
    }
    rc = shmc_tset(cache.get(), o.key.data(), o.key.size(), envelope.data(), envelope.size(), 0,
                   ttl_ms, l2_ttl_ms, tiers);
    if (rc != SHMC_OK) {
        // shmc_tset reports an L1 failure first; an L2 error means L1 (if asked) was written.
        const bool l2_failed = rc == SHMC_E_L2_UNAVAILABLE || rc == SHMC_E_L2_REPLY;
        const std::string what =
            "key " + escape_bytes(o.key) +
            (l2_failed
                 ? (tiers & SHMC_TIER_L1 ? ": stored in L1 only, not in L2" : ": not stored in L2")
                 : "");
        return report(g, "set", rc, what);
    }
    std::string expiry = expiry_text(ttl_ms);
    if (tiers == SHMC_TIER_L2)
        expiry = expiry_text(l2_ttl_ms);
    else if (tiers == SHMC_TIER_BOTH && l2_ttl_ms != ttl_ms)
        expiry = "L1 " + expiry + ", L2 " + expiry_text(l2_ttl_ms);
    std::printf("stored %s (%s, %zu bytes, %zu stored, %s)%s\n", escape_bytes(o.key).c_str(),
                serializer_name(ser).c_str(), o.value.size(), envelope.size(), expiry.c_str(),
                g.redis ? (" in " + tier_text(tiers)).c_str() : "");
    return kExitOk;
}

int run_del(const Global& g, const DelOptions& o) {
    uint32_t tiers = 0;
    if (int e = resolve_tiers(g, "del", o.tier, &tiers)) return e;
    Cache cache;
    if (int e = open_existing(g, "del", &cache, tiers)) return e;
    const std::string key = escape_bytes(o.key);
    // One call per tier, L2 first (as shmc_tdel with both), so that each tier's outcome can be
    // reported; a failure in one tier does not stop the other.
    int status = kExitOk;
    std::string outcome;
    bool removed = false;
    for (const uint32_t tier : {uint32_t(SHMC_TIER_L2), uint32_t(SHMC_TIER_L1)}) {
        if (!(tiers & tier)) continue;
        const int rc = shmc_tdel(cache.get(), o.key.data(), o.key.size(), tier);
        if (rc != SHMC_OK && rc != SHMC_E_NOTFOUND) {
            const int s = report(g, "del", rc, "key " + key + " in " + tier_text(tier));
            if (status == kExitOk) status = s;
        }
        removed |= rc == SHMC_OK;
        outcome += (outcome.empty() ? "" : ", ") + tier_text(tier) + ": " +
                   (rc == SHMC_OK           ? "removed"
                    : rc == SHMC_E_NOTFOUND ? "not there"
                                            : "failed");
    }
    if (removed)
        std::printf("deleted %s%s\n", key.c_str(), g.redis ? (" (" + outcome + ")").c_str() : "");
    else if (status == kExitOk)
        warn("del", not_found(g, o.key, tiers));
    return status != kExitOk ? status : removed ? kExitOk : kExitNotFound;
}

int run_ttl(const Global& g, const TtlOptions& o) {
    uint32_t tiers = 0;
    if (int e = resolve_tiers(g, "ttl", o.tier, &tiers)) return e;
    Cache cache;
    if (int e = open_existing(g, "ttl", &cache, tiers)) return e;
    int64_t ttl_left = -1;
    int rc = SHMC_E_NOTFOUND, l1_rc = SHMC_E_NOTFOUND;
    bool from_l2 = false;
    if (tiers & SHMC_TIER_L1) rc = l1_rc = ttl_from(cache.get(), o.key, SHMC_TIER_L1, &ttl_left);
    if ((tiers & SHMC_TIER_L2) && (rc == SHMC_E_NOTFOUND || rc == SHMC_E_LOCK_TIMEOUT)) {
        rc = ttl_from(cache.get(), o.key, SHMC_TIER_L2, &ttl_left);
        from_l2 = rc == SHMC_OK;
        if (rc == SHMC_E_NOTFOUND && l1_rc == SHMC_E_LOCK_TIMEOUT) rc = l1_rc;
    }
    if (rc == SHMC_E_NOTFOUND) {
        warn("ttl", not_found(g, o.key, tiers));
        return kExitNotFound;
    }
    if (rc != SHMC_OK) return report(g, "ttl", rc, "key " + escape_bytes(o.key));
    if (from_l2 && tiers == SHMC_TIER_BOTH) warn("ttl", kFromL2Note);
    if (ttl_left < 0)
        std::printf("no expiry\n");
    else if (o.ms)
        std::printf("%lld\n", (long long)ttl_left);
    else  // rounded up: a live key never shows 0
        std::printf("%lld\n", (long long)((ttl_left + 999) / 1000));
    return kExitOk;
}

}  // namespace shmcache::cli
