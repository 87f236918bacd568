// warm_parse.cpp - see warm_parse.h.
//
// nlohmann::json validates the whole line (including UTF-8 inside strings) before we look at it;
// its parse error (with the column) becomes the reason, so a hostile line costs one parse.
// Numbers in "value" are written back by nlohmann's dump(), which round-trips every double and
// 64-bit integer; a number too large for a double (1e999) is refused rather than stored as null.
#include "warm_parse.h"

#include <shmcache/shmcache.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "base64.h"
#include "ttl.h"

namespace shmcache::cli {

namespace {

// ordered_json keeps the members of an object value in the order the file gave them.
using json = nlohmann::ordered_json;

bool is_blank(std::string_view s) {
    for (char c : s)
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '\f' && c != '\v') return false;
    return true;
}

// nlohmann parses an out-of-range number as an infinite double; dump() would write it as null.
bool has_non_finite(const json& j) {
    switch (j.type()) {
        case json::value_t::number_float: return !std::isfinite(j.get<double>());
        case json::value_t::array:
        case json::value_t::object:
            for (const auto& v : j)
                if (has_non_finite(v)) return true;
            return false;
        default: return false;
    }
}

WarmLine bad(std::string* reason, std::string why) {
    *reason = std::move(why);
    return WarmLine::kBad;
}

}  // namespace

WarmLine parse_warm_line(std::string_view line, WarmRecord* out, std::string* reason) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (is_blank(line)) return WarmLine::kBlank;

    json j;
    try {
        j = json::parse(line.begin(), line.end());
    } catch (const json::exception& e) {
        // "[json.exception.parse_error.101] parse error at line 1, column 5: ..." -> keep the
        // part after the id: it has the column and the cause.
        const std::string what = e.what();
        const auto p = what.find("] ");
        return bad(reason, "invalid JSON: " + (p == std::string::npos ? what : what.substr(p + 2)));
    }
    if (!j.is_object()) return bad(reason, "not a JSON object");

    auto key = j.find("key");
    if (key == j.end()) return bad(reason, "no \"key\"");
    if (!key->is_string()) return bad(reason, "\"key\" is not a string");
    const auto& k = key->get_ref<const std::string&>();
    if (k.empty()) return bad(reason, "\"key\" is empty");
    if (k.size() > SHMC_MAX_KEY_LEN)
        return bad(reason, "\"key\" is " + std::to_string(k.size()) + " bytes, over the limit of " +
                               std::to_string(SHMC_MAX_KEY_LEN));

    auto value = j.find("value");
    auto b64 = j.find("value_b64");
    auto text = j.find("text");
    const int given = (value != j.end()) + (b64 != j.end()) + (text != j.end());
    if (given == 0) return bad(reason, "no value: give one of \"value\", \"value_b64\", \"text\"");
    if (given > 1)
        return bad(reason, "more than one of \"value\", \"value_b64\", \"text\": give exactly one");

    WarmRecord r;
    if (value != j.end()) {
        if (has_non_finite(*value)) return bad(reason, "\"value\" has a number out of range");
        r.serializer = SHMC_SER_JSON;
        r.payload = value->dump();
    } else if (b64 != j.end()) {
        if (!b64->is_string()) return bad(reason, "\"value_b64\" is not a string");
        std::string why;
        if (!base64_decode(b64->get_ref<const std::string&>(), &r.payload, &why))
            return bad(reason, "\"value_b64\": " + why);
        r.serializer = SHMC_SER_RAW;
    } else {
        if (!text->is_string()) return bad(reason, "\"text\" is not a string");
        r.payload = text->get_ref<const std::string&>();
        r.serializer = SHMC_SER_STR;
    }

    auto ttl = j.find("ttl");
    if (ttl != j.end() && !ttl->is_null()) {
        if (!ttl->is_number()) return bad(reason, "\"ttl\" is not a number of seconds");
        const double s = ttl->get<double>();
        if (s < 0) return bad(reason, "\"ttl\" is negative");
        uint64_t ms;
        if (!ttl_to_ms(s, &ms)) return bad(reason, "\"ttl\" is too large (over 100 years)");
        r.ttl_ms = ms;
    }

    r.key = k;
    *out = std::move(r);
    return WarmLine::kRecord;
}

}  // namespace shmcache::cli
