// fuzz_warm_parse.cpp - the warm file's line parser (tools/cli/warm_parse.h) on any line.
//
// Input: the line, as is (the parser must take any bytes, even the newlines and NULs the driver
// would have split on). Checked:
//  - no crash, no exception out of the parser, and the same answer twice;
//  - kBlank exactly for lines of whitespace only (a trailing '\r' ignored);
//  - kBad gives a reason; kRecord a key of 1 to SHMC_MAX_KEY_LEN bytes, a serializer among
//    JSON, RAW and STR, a TTL within 100 years, and for JSON a payload that is JSON already in
//    compact form;
//  - a record written back as a line (the way a deploy script would write it) parses to the
//    same record;
//  - value_b64 is accepted exactly when a reference says it is canonical base64 (standard
//    alphabet, padding either complete or absent, zero trailing bits), with the same bytes.
#include <shmcache/shmcache.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "fuzz_support.h"
#include "warm_parse.h"

using shmcache::cli::parse_warm_line;
using shmcache::cli::WarmLine;
using shmcache::cli::WarmRecord;

namespace {

using json = nlohmann::ordered_json;

const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string b64_encode(std::string_view in, bool pad) {
    std::string out;
    size_t i = 0;
    for (; i + 3 <= in.size(); i += 3) {
        uint32_t v = uint8_t(in[i]) << 16 | uint8_t(in[i + 1]) << 8 | uint8_t(in[i + 2]);
        for (int k = 18; k >= 0; k -= 6) out += kAlphabet[(v >> k) & 63];
    }
    if (in.size() - i == 1) {
        uint32_t v = uint8_t(in[i]) << 16;
        out += kAlphabet[v >> 18];
        out += kAlphabet[(v >> 12) & 63];
        if (pad) out += "==";
    } else if (in.size() - i == 2) {
        uint32_t v = uint8_t(in[i]) << 16 | uint8_t(in[i + 1]) << 8;
        out += kAlphabet[v >> 18];
        out += kAlphabet[(v >> 12) & 63];
        out += kAlphabet[(v >> 6) & 63];
        if (pad) out += "=";
    }
    return out;
}

// Reference: decode leniently (alphabet characters only, '=' only at the end, leftover bits
// dropped), then accept only if encoding the result gives back the input exactly, padded or
// not. Canonical by construction, and written without looking at base64.cpp.
bool b64_reference(std::string_view in, std::string* out) {
    size_t n = in.size();
    while (n > 0 && in[n - 1] == '=') --n;
    std::string bytes;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; ++i) {
        const char* p = static_cast<const char*>(std::memchr(kAlphabet, in[i], 64));
        if (!p || in[i] == '\0') return false;
        acc = (acc << 6 | uint32_t(p - kAlphabet)) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            bytes += char((acc >> bits) & 0xff);
        }
    }
    if (in != b64_encode(bytes, true) && in != b64_encode(bytes, false)) return false;
    *out = bytes;
    return true;
}

bool is_blank(std::string_view s) {
    if (!s.empty() && s.back() == '\r') s.remove_suffix(1);
    for (char c : s)
        if (!(c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'))
            return false;
    return true;
}

bool same(const WarmRecord& a, const WarmRecord& b) {
    return a.key == b.key && a.serializer == b.serializer && a.payload == b.payload &&
           a.ttl_ms == b.ttl_ms;
}

std::string describe(const WarmRecord& r) {
    return "key " + fuzz::show(r.key) + " ser " + std::to_string(r.serializer) + " payload " +
           fuzz::show(r.payload) + " ttl " + (r.ttl_ms ? std::to_string(*r.ttl_ms) : "default");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view line(reinterpret_cast<const char*>(data), size);

    WarmRecord r1, r2;
    std::string why1, why2;
    const WarmLine k1 = parse_warm_line(line, &r1, &why1);
    const WarmLine k2 = parse_warm_line(line, &r2, &why2);
    FUZZ_CHECK(k1 == k2 && why1 == why2 && (k1 != WarmLine::kRecord || same(r1, r2)),
               "two parses of one line disagree");
    FUZZ_CHECK((k1 == WarmLine::kBlank) == is_blank(line), "blank line misjudged");
    if (k1 == WarmLine::kBad) FUZZ_CHECK(!why1.empty(), "rejected without a reason");

    // What value_b64 holds, if the line is an object that has one and no other value: the
    // reference must agree with the parser on it.
    json j;
    bool parsed = false;
    try {
        std::string_view l = line;
        if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
        j = json::parse(l.begin(), l.end());
        parsed = true;
    } catch (const json::exception&) {
    }
    if (parsed && j.is_object() && j.contains("value_b64") && !j.contains("value") &&
        !j.contains("text") && j["value_b64"].is_string() && j.contains("key") &&
        j["key"].is_string() && !j["key"].get<std::string>().empty() &&
        j["key"].get<std::string>().size() <= SHMC_MAX_KEY_LEN &&
        (!j.contains("ttl") || j["ttl"].is_null())) {
        std::string want;
        const bool ok = b64_reference(j["value_b64"].get<std::string>(), &want);
        FUZZ_CHECK(ok == (k1 == WarmLine::kRecord),
                   "value_b64 " + fuzz::show(j["value_b64"].get<std::string>()) + ": reference " +
                       (ok ? "accepts" : "refuses") + ", parser says " + why1);
        if (ok) FUZZ_CHECK(r1.payload == want, "value_b64 decoded differently");
    }

    if (k1 != WarmLine::kRecord) return 0;
    FUZZ_CHECK(!r1.key.empty() && r1.key.size() <= SHMC_MAX_KEY_LEN,
               "key of " + std::to_string(r1.key.size()) + " bytes");
    FUZZ_CHECK(r1.serializer == SHMC_SER_JSON || r1.serializer == SHMC_SER_RAW ||
                   r1.serializer == SHMC_SER_STR,
               "serializer " + std::to_string(r1.serializer));
    if (r1.ttl_ms) FUZZ_CHECK(*r1.ttl_ms <= 100ull * 365 * 24 * 3600 * 1000, "ttl over 100 years");

    // Written back as a line, the record parses to itself.
    json back = json::object();
    back["key"] = r1.key;
    if (r1.serializer == SHMC_SER_JSON) {
        json v;
        try {
            v = json::parse(r1.payload);
        } catch (const json::exception& e) {
            FUZZ_CHECK(false, "JSON payload does not parse: " + fuzz::show(r1.payload));
        }
        FUZZ_CHECK(v.dump() == r1.payload, "JSON payload not compact: " + fuzz::show(r1.payload));
        back["value"] = v;
    } else if (r1.serializer == SHMC_SER_RAW) {
        back["value_b64"] = b64_encode(r1.payload, r1.payload.size() % 2 == 0);
    } else {
        back["text"] = r1.payload;
    }
    // Whole seconds survive exactly; fractional ones may round up by a millisecond.
    if (r1.ttl_ms) back["ttl"] = double(*r1.ttl_ms) / 1000.0;
    const std::string text = back.dump();
    WarmRecord r3;
    std::string why3;
    FUZZ_CHECK(parse_warm_line(text, &r3, &why3) == WarmLine::kRecord,
               "written-back line refused: " + why3 + " line " + fuzz::show(text));
    const bool ttl_ok = r1.ttl_ms == r3.ttl_ms ||
                        (r1.ttl_ms && r3.ttl_ms && *r3.ttl_ms == *r1.ttl_ms + 1);
    FUZZ_CHECK(r3.key == r1.key && r3.serializer == r1.serializer && r3.payload == r1.payload &&
                   ttl_ok,
               "written back and parsed again: " + describe(r3) + ", was " + describe(r1));
    return 0;
}
