// fuzz_support.h - what every fuzz target here shares: a front-to-back reader of the input, the
// way a target reports a broken property, and the switch for findings already reported.
//
// Inputs are read from the front, one field after another, and an exhausted input reads as
// zeros: a hand-made seed (fuzz/corpus/) is then just the fields in order, and libFuzzer's
// mutations of a prefix keep the meaning of what follows. A broken property is reported with
// FUZZ_CHECK, which prints what failed and aborts, so libFuzzer saves the input as a crash.
#ifndef SHMCACHE_FUZZ_SUPPORT_H
#define SHMCACHE_FUZZ_SUPPORT_H

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace fuzz {

class Reader {
public:
    Reader(const uint8_t* data, size_t size) : p_(data), left_(size) {}
    bool empty() const { return left_ == 0; }
    size_t left() const { return left_; }
    uint8_t u8() {
        if (!left_) return 0;
        --left_;
        return *p_++;
    }
    // Little-endian. (Each byte read in its own statement: the order of two calls within one
    // expression is unspecified.)
    uint64_t uint(int bytes) {
        uint64_t v = 0;
        for (int i = 0; i < bytes; ++i) v |= uint64_t(u8()) << (8 * i);
        return v;
    }
    uint16_t u16() { return uint16_t(uint(2)); }
    uint32_t u24() { return uint32_t(uint(3)); }
    uint32_t u32() { return uint32_t(uint(4)); }
    uint64_t u64() { return uint(8); }
    // Up to n bytes (fewer if the input ends).
    std::string_view bytes(size_t n) {
        if (n > left_) n = left_;
        std::string_view s(reinterpret_cast<const char*>(p_), n);
        p_ += n;
        left_ -= n;
        return s;
    }
    std::string_view rest() { return bytes(left_); }

private:
    const uint8_t* p_;
    size_t left_;
};

// True if the finding named `id` is listed in $SHMC_FUZZ_ALLOW (comma-separated): the targets
// skip the check that reports it, so a long run can go on looking for other findings while a
// reported one awaits its fix. fuzz/README.md lists the ids.
inline bool allowed(const char* id) {
    const char* env = std::getenv("SHMC_FUZZ_ALLOW");
    if (!env) return false;
    std::string_view list(env), want(id);
    while (!list.empty()) {
        size_t comma = list.find(',');
        if (list.substr(0, comma) == want) return true;
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    return false;
}

[[noreturn]] inline void check_failed(const char* file, int line, const char* cond,
                                      const std::string& detail) {
    std::fprintf(stderr, "\n%s:%d: fuzz check failed: %s\n  %s\n", file, line, cond,
                 detail.c_str());
    std::fflush(stderr);
    std::abort();
}

// A printable rendering of binary bytes for messages (at most max bytes shown).
inline std::string show(std::string_view s, size_t max = 80) {
    std::string out = "\"";
    for (size_t i = 0; i < s.size() && i < max; ++i) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            out += char(c);
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        }
    }
    out += s.size() > max ? "\"... (" + std::to_string(s.size()) + " bytes)" : "\"";
    return out;
}

}  // namespace fuzz

// FUZZ_CHECK(cond, detail): detail is any expression convertible to std::string, evaluated only
// on failure.
#define FUZZ_CHECK(cond, detail) \
    do {                                                                         \
        if (!(cond)) ::fuzz::check_failed(__FILE__, __LINE__, #cond, (detail)); \
    } while (0)

#endif
