// format.cpp - see format.h.
#include "format.h"

#include <shmcache/shmcache.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>

namespace shmcache::cli {

bool is_tty(int fd) { return isatty(fd) == 1; }

std::string strf(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = std::vsnprintf(nullptr, 0, fmt, ap);
    va_end(ap);
    std::string s(n > 0 ? size_t(n) : 0, '\0');
    if (n > 0) std::vsnprintf(s.data(), s.size() + 1, fmt, ap2);
    va_end(ap2);
    return s;
}

std::string human_bytes(uint64_t n) {
    static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    if (n < 1024) return strf("%llu B", (unsigned long long)n);
    double v = double(n);
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        ++u;
    }
    return strf("%.1f %s", v, units[u]);
}

std::string with_commas(uint64_t n) {
    std::string digits = std::to_string(n);
    std::string out;
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

std::string human_seconds(double s) {
    if (!std::isfinite(s) || s < 0) return "?";
    if (s < 60) return strf("%.2f s", s);
    auto t = uint64_t(std::llround(s));
    if (t < 3600)
        return strf("%llu:%02llu", (unsigned long long)(t / 60), (unsigned long long)(t % 60));
    return strf("%llu:%02llu:%02llu", (unsigned long long)(t / 3600),
                (unsigned long long)(t / 60 % 60), (unsigned long long)(t % 60));
}

// Length of the valid UTF-8 sequence starting at s[i] (2-4 bytes), or 0 if there is none.
// Rejects overlong forms, surrogates and code points above U+10FFFF, like a strict decoder.
static size_t utf8_seq(std::string_view s, size_t i) {
    const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = b(i);
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else
        return 0;
    if (i + n > s.size()) return 0;
    if (b(i + 1) < lo || b(i + 1) > hi) return 0;
    for (size_t k = 2; k < n; ++k)
        if (b(i + k) < 0x80 || b(i + k) > 0xbf) return 0;
    return n;
}

std::string escape_bytes(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out += char(c);
            ++i;
        } else if (c == '\\') {
            out += "\\\\";
            ++i;
        } else if (c == '\n') {
            out += "\\n";
            ++i;
        } else if (c == '\t') {
            out += "\\t";
            ++i;
        } else if (c == '\r') {
            out += "\\r";
            ++i;
        } else if (size_t n = c >= 0x80 ? utf8_seq(s, i) : 0) {
            // C1 controls (U+0080..U+009F) are escaped too: terminals act on them.
            if (n == 2 && c == 0xc2 && static_cast<unsigned char>(s[i + 1]) < 0xa0) {
                out += strf("\\x%02x\\x%02x", c, static_cast<unsigned char>(s[i + 1]));
            } else {
                out.append(s.substr(i, n));
            }
            i += n;
        } else {
            out += strf("\\x%02x", c);
            ++i;
        }
    }
    return out;
}

bool is_utf8(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        if (static_cast<unsigned char>(s[i]) < 0x80)
            ++i;
        else if (size_t n = utf8_seq(s, i))
            i += n;
        else
            return false;
    }
    return true;
}

bool is_text(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        if ((c >= 0x20 && c < 0x7f) || c == '\n' || c == '\t' || c == '\r') {
            ++i;
        } else if (size_t n = c >= 0x80 ? utf8_seq(s, i) : 0) {
            i += n;
        } else {
            return false;
        }
    }
    return true;
}

std::string hex_dump(std::string_view s, size_t max) {
    std::string out;
    const size_t n = std::min(s.size(), max);
    for (size_t off = 0; off < n; off += 16) {
        out += strf("%08zx ", off);
        for (size_t k = 0; k < 16; ++k) {
            if (k == 8) out += ' ';
            if (off + k < n)
                out += strf(" %02x", static_cast<unsigned char>(s[off + k]));
            else
                out += "   ";
        }
        out += "  |";
        for (size_t k = 0; k < 16 && off + k < n; ++k) {
            const auto c = static_cast<unsigned char>(s[off + k]);
            out += (c >= 0x20 && c < 0x7f) ? char(c) : '.';
        }
        out += "|\n";
    }
    if (s.size() > n) out += strf("... %zu more bytes (--raw writes them all)\n", s.size() - n);
    return out;
}

std::string strategy_name(uint32_t s) {
    switch (s) {
        case SHMC_STRATEGY_LRU: return "LRU";
        case SHMC_STRATEGY_LFU: return "LFU";
        case SHMC_STRATEGY_FIFO: return "FIFO";
        case SHMC_STRATEGY_TTL: return "TTL";
        case SHMC_STRATEGY_SIEVE: return "SIEVE";
        case SHMC_STRATEGY_S3FIFO: return "S3-FIFO";
        case SHMC_STRATEGY_WTINYLFU: return "W-TinyLFU";
        default: return strf("strategy %u", s);
    }
}

std::string serializer_name(uint32_t s) {
    switch (s) {
        case SHMC_SER_RAW: return "raw";
        case SHMC_SER_JSON: return "json";
        case SHMC_SER_PICKLE: return "pickle";
        case SHMC_SER_MSGPACK: return "msgpack";
        case SHMC_SER_STR: return "str";
        default: return strf("serializer %u", s);
    }
}

bool write_all(FILE* f, std::string_view bytes) {
    return std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
}

std::string Table::render(const char* eol) const {
    std::vector<size_t> width;
    for (const auto& r : rows_) {
        if (width.size() < r.size()) width.resize(r.size(), 0);
        for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
    }
    std::string out;
    for (const auto& r : rows_) {
        std::string line;
        for (size_t i = 0; i < r.size(); ++i) {
            const bool right = i < numeric_.size() && numeric_[i];
            const std::string pad(width[i] - r[i].size(), ' ');
            if (i) line += "  ";
            line += right ? pad + r[i] : r[i] + (i + 1 < r.size() ? pad : "");
        }
        while (!line.empty() && line.back() == ' ') line.pop_back();
        out += line + eol;
    }
    return out;
}

}  // namespace shmcache::cli
