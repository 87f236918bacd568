// glob.cpp - see glob.h.
//
// The matcher keeps one backtrack point: the position after the last `*` and the subject
// position it was tried at. On a mismatch it retries the star one byte further. Because a later
// star subsumes an earlier one, remembering only the last star is complete, and the work is
// bounded by plen * slen.
#include "shm/glob.h"

#include <cstdint>

namespace shmcache::shm {

// Parses the class starting at pat[i] == '['. On success sets *end to one past `]` and returns
// true; *matched tells whether byte c is in the class.
static bool parse_class(const char* pat, size_t plen, size_t i, unsigned char c, size_t* end,
                        bool* matched) {
    size_t j = i + 1;
    bool negate = false;
    if (j < plen && (pat[j] == '!' || pat[j] == '^')) {
        negate = true;
        ++j;
    }
    bool hit = false;
    bool first = true;
    while (j < plen && (pat[j] != ']' || first)) {
        first = false;
        unsigned char lo = static_cast<unsigned char>(pat[j]);
        if (lo == '\\') {
            if (++j >= plen) return false;
            lo = static_cast<unsigned char>(pat[j]);
        }
        ++j;
        unsigned char hi = lo;
        if (j + 1 < plen && pat[j] == '-' && pat[j + 1] != ']') {
            ++j;
            hi = static_cast<unsigned char>(pat[j]);
            if (hi == '\\') {
                if (++j >= plen) return false;
                hi = static_cast<unsigned char>(pat[j]);
            }
            ++j;
        }
        if (lo <= c && c <= hi) hit = true;
    }
    if (j >= plen) return false;  // no closing bracket
    *end = j + 1;
    *matched = hit != negate;
    return true;
}

bool glob_class(const char* pat, size_t plen, size_t i, size_t* end, std::bitset<256>* members) {
    members->reset();
    for (unsigned c = 0; c < 256; ++c) {
        bool m = false;
        if (!parse_class(pat, plen, i, static_cast<unsigned char>(c), end, &m)) return false;
        if (m) members->set(c);
    }
    return true;
}

bool glob_valid(const char* pat, size_t plen) {
    for (size_t i = 0; i < plen;) {
        if (pat[i] == '\\') {
            if (i + 1 >= plen) return false;
            i += 2;
        } else if (pat[i] == '[') {
            size_t end;
            bool m;
            if (!parse_class(pat, plen, i, 0, &end, &m)) return false;
            i = end;
        } else {
            ++i;
        }
    }
    return true;
}

bool glob_match(const char* pat, size_t plen, const char* s, size_t slen) {
    size_t p = 0, i = 0;
    size_t star_p = SIZE_MAX, star_i = 0;
    while (i < slen) {
        if (p < plen) {
            char pc = pat[p];
            if (pc == '*') {
                star_p = ++p;
                star_i = i;
                continue;
            }
            if (pc == '?') {
                ++p;
                ++i;
                continue;
            }
            if (pc == '[') {
                size_t end;
                bool m;
                if (parse_class(pat, plen, p, static_cast<unsigned char>(s[i]), &end, &m) && m) {
                    p = end;
                    ++i;
                    continue;
                }
            } else {
                if (pc == '\\' && p + 1 < plen) pc = pat[p + 1];
                if (pc == s[i]) {
                    p += (pat[p] == '\\') ? 2 : 1;
                    ++i;
                    continue;
                }
            }
        }
        if (star_p == SIZE_MAX) return false;
        p = star_p;
        i = ++star_i;
    }
    while (p < plen && pat[p] == '*') ++p;
    return p == plen;
}

}  // namespace shmcache::shm
