// kv.cpp - the single-key verbs: get, set, del, ttl.
//
// `get` shows what the application stored, through the value envelope: text (JSON, str) is
// printed as text; bytes are passed through untouched to a pipe but never thrown at a terminal,
// where they could drive the cursor or hide characters, so a terminal gets an escaped or hex
// preview and a note saying so; Python-only formats (pickle, msgpack) are summarized, since the
// CLI will not run a deserializer on cache contents. `get --raw` is the escape hatch: the stored
// bytes exactly, envelope included.
//
// `ttl` asks shmc_get for the length only (a zero-byte buffer), which returns the remaining TTL
// without copying the value, counting a hit or touching the eviction order.
#include <shmcache/shmcache.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "exit_codes.h"
#include "format.h"
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

}  // namespace

int run_get(const Global& g, const GetOptions& o) {
    Cache cache;
    if (int e = open_existing(g, "get", &cache)) return e;
    std::string stored;
    int64_t ttl_left = -1;
    int rc = fetch_value(cache.get(), o.key, &stored, &ttl_left);
    if (rc == SHMC_E_NOTFOUND) {
        warn("get", "not found: " + escape_bytes(o.key));
        return kExitNotFound;
    }
    if (rc != SHMC_OK) return report(g, "get", rc, "key " + escape_bytes(o.key));
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
    uint64_t ttl_ms = 0;
    if (!ttl_to_ms(o.ttl_seconds, &ttl_ms)) {
        warn("set", "--ttl must be between 0 and 100 years, in seconds");
        return kExitUsage;
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
    if (int e = open_or_create(g, "set", o.create, &cache)) return e;
    rc = shmc_set(cache.get(), o.key.data(), o.key.size(), envelope.data(), envelope.size(), 0,
                  ttl_ms);
    if (rc != SHMC_OK) return report(g, "set", rc, "key " + escape_bytes(o.key));
    std::printf(
        "stored %s (%s, %zu bytes, %zu stored, %s)\n", escape_bytes(o.key).c_str(),
        serializer_name(ser).c_str(), o.value.size(), envelope.size(),
        ttl_ms ? ("expires in " + human_seconds(double(ttl_ms) / 1000)).c_str() : "no expiry");
    return kExitOk;
}

int run_del(const Global& g, const std::string& key) {
    Cache cache;
    if (int e = open_existing(g, "del", &cache)) return e;
    int rc = shmc_del(cache.get(), key.data(), key.size());
    if (rc == SHMC_E_NOTFOUND) {
        warn("del", "not found: " + escape_bytes(key));
        return kExitNotFound;
    }
    if (rc != SHMC_OK) return report(g, "del", rc, "key " + escape_bytes(key));
    std::printf("deleted %s\n", escape_bytes(key).c_str());
    return kExitOk;
}

int run_ttl(const Global& g, const TtlOptions& o) {
    Cache cache;
    if (int e = open_existing(g, "ttl", &cache)) return e;
    size_t len = 0;
    int64_t ttl_left = -1;
    int rc =
        shmc_get(cache.get(), o.key.data(), o.key.size(), nullptr, 0, &len, nullptr, &ttl_left);
    if (rc == SHMC_E_NOTFOUND) {
        warn("ttl", "not found: " + escape_bytes(o.key));
        return kExitNotFound;
    }
    if (rc != SHMC_OK && rc != SHMC_E_BUFFER_TOO_SMALL)
        return report(g, "ttl", rc, "key " + escape_bytes(o.key));
    if (ttl_left < 0)
        std::printf("no expiry\n");
    else if (o.ms)
        std::printf("%lld\n", (long long)ttl_left);
    else  // rounded up: a live key never shows 0
        std::printf("%lld\n", (long long)((ttl_left + 999) / 1000));
    return kExitOk;
}

}  // namespace shmcache::cli
