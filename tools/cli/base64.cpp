// base64.cpp - see base64.h.
#include "base64.h"

#include <cstdint>

namespace shmcache::cli {

static int sextet(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

bool base64_decode(std::string_view in, std::string* out, std::string* why) {
    size_t n = in.size();
    size_t pad = 0;
    while (pad < 2 && n > 0 && in[n - 1] == '=') {
        --n;
        ++pad;
    }
    if (pad && in.size() % 4 != 0) {
        *why = "base64 padding '=' in the wrong place";
        return false;
    }
    if (n % 4 == 1) {
        *why = "base64 length is impossible (one character left over)";
        return false;
    }
    out->clear();
    out->reserve(n / 4 * 3 + 2);
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; ++i) {
        const int v = sextet(static_cast<unsigned char>(in[i]));
        if (v < 0) {
            *why = in[i] == '=' ? "base64 padding '=' in the wrong place"
                                : "character " + std::to_string(i + 1) +
                                      " is not base64 (standard "
                                      "alphabet A-Z a-z 0-9 + /)";
            return false;
        }
        acc = (acc << 6) | uint32_t(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out->push_back(char((acc >> bits) & 0xff));
        }
    }
    if (bits && (acc & ((1u << bits) - 1))) {
        *why = "base64 has non-zero bits after the last byte";
        return false;
    }
    if (pad && (n + pad) % 4 != 0) {
        *why = "base64 padding does not match the length";
        return false;
    }
    return true;
}

std::string base64_encode(std::string_view in) {
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= in.size(); i += 3) {
        const uint32_t v =
            uint32_t(uint8_t(in[i])) << 16 | uint32_t(uint8_t(in[i + 1])) << 8 | uint8_t(in[i + 2]);
        for (int shift = 18; shift >= 0; shift -= 6) out.push_back(kAlphabet[(v >> shift) & 63]);
    }
    if (const size_t left = in.size() - i) {
        uint32_t v = uint32_t(uint8_t(in[i])) << 16;
        if (left == 2) v |= uint32_t(uint8_t(in[i + 1])) << 8;
        out.push_back(kAlphabet[(v >> 18) & 63]);
        out.push_back(kAlphabet[(v >> 12) & 63]);
        out.push_back(left == 2 ? kAlphabet[(v >> 6) & 63] : '=');
        out.push_back('=');
    }
    return out;
}

}  // namespace shmcache::cli
