// fuzz_glob.cpp - shmc_glob_match (the patterns of purge and scan) against a reference matcher.
//
// Input: one byte n, then n bytes of pattern, then the subject (the rest, at most 512 bytes).
// Checked:
//  - the result is 1, 0 or SHMC_E_BAD_PATTERN, and BAD_PATTERN exactly when the reference
//    parser of the documented syntax (shmcache.h, shmc_purge) finds the pattern malformed;
//  - on valid patterns, the result equals the reference: the pattern parsed into tokens, then
//    matched by plain recursion over (token, subject position) with a memo, the obviously
//    correct exponential algorithm made polynomial; the engine's single-backtrack matcher
//    shares no code with it;
//  - two identities that need no reference: the subject with every byte escaped matches the
//    subject, and "*" followed by the subject escaped matches the subject.
#include <shmcache/shmcache.h>

#include <array>
#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.h"

namespace {

// One token of a parsed pattern: a star, or a set of the bytes that one subject byte may be.
struct Token {
    bool star = false;
    std::bitset<256> set;
};

// The documented syntax: `*`, `?`, `[abc]`, `[a-z]`, `[!a]` or `[^a]`, `\` escapes the next
// byte (also inside a class). Inside a class a `]` right after `[` (or after the negation) is a
// member, and `-` is a range only between two members (`[a-]` holds `a` and `-`). Malformed:
// an unclosed `[`, a trailing lone `\`.
bool parse(std::string_view p, std::vector<Token>* out) {
    size_t i = 0;
    while (i < p.size()) {
        Token t;
        unsigned char c = static_cast<unsigned char>(p[i]);
        if (c == '*') {
            t.star = true;
            ++i;
        } else if (c == '?') {
            t.set.set();
            ++i;
        } else if (c == '\\') {
            if (i + 1 == p.size()) return false;
            t.set.set(static_cast<unsigned char>(p[i + 1]));
            i += 2;
        } else if (c == '[') {
            size_t j = i + 1;
            bool negate = j < p.size() && (p[j] == '!' || p[j] == '^');
            if (negate) ++j;
            // Members: read one (possibly escaped) byte at a time.
            auto member = [&](unsigned char* out_byte) {
                if (j >= p.size()) return false;
                if (p[j] == '\\') {
                    if (j + 1 >= p.size()) return false;
                    *out_byte = static_cast<unsigned char>(p[j + 1]);
                    j += 2;
                } else {
                    *out_byte = static_cast<unsigned char>(p[j]);
                    j += 1;
                }
                return true;
            };
            bool closed = false;
            for (bool first = true;; first = false) {
                if (j >= p.size()) break;
                if (p[j] == ']' && !first) {
                    closed = true;
                    ++j;
                    break;
                }
                unsigned char lo;
                if (!member(&lo)) return false;
                unsigned char hi = lo;
                if (j + 1 < p.size() && p[j] == '-' && p[j + 1] != ']') {
                    ++j;
                    if (!member(&hi)) return false;
                }
                for (unsigned v = lo; v <= hi; ++v) t.set.set(v);
            }
            if (!closed) return false;
            if (negate) t.set.flip();
            i = j;
        } else {
            t.set.set(c);
            ++i;
        }
        out->push_back(t);
    }
    return true;
}

struct Matcher {
    const std::vector<Token>& toks;
    std::string_view s;
    std::vector<int8_t> memo;  // -1 unknown, else 0/1
    Matcher(const std::vector<Token>& t, std::string_view subj)
        : toks(t), s(subj), memo((t.size() + 1) * (subj.size() + 1), -1) {}

    bool match(size_t ti, size_t si) {
        int8_t& m = memo[ti * (s.size() + 1) + si];
        if (m >= 0) return m;
        bool r;
        if (ti == toks.size()) {
            r = si == s.size();
        } else if (toks[ti].star) {
            r = match(ti + 1, si) || (si < s.size() && match(ti, si + 1));
        } else {
            r = si < s.size() && toks[ti].set.test(static_cast<unsigned char>(s[si])) &&
                match(ti + 1, si + 1);
        }
        m = r;
        return r;
    }
};

std::string escaped(std::string_view s) {
    std::string out;
    for (char c : s) {
        out += '\\';
        out += c;
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::Reader in(data, size);
    const size_t plen = in.u8();
    const std::string pat(in.bytes(plen));
    std::string subj(in.bytes(512));

    const int rc = shmc_glob_match(pat.data(), pat.size(), subj.data(), subj.size());
    FUZZ_CHECK(rc == 1 || rc == 0 || rc == SHMC_E_BAD_PATTERN, "rc " + std::to_string(rc));

    std::vector<Token> toks;
    const bool valid = parse(pat, &toks);
    FUZZ_CHECK(valid == (rc != SHMC_E_BAD_PATTERN),
               "pattern " + fuzz::show(pat) + ": engine rc " + std::to_string(rc) +
                   ", reference says " + (valid ? "valid" : "malformed"));
    if (valid) {
        // Recursion depth is at most tokens + subject bytes (about 770): fine for any stack.
        Matcher m(toks, subj);
        const bool want = m.match(0, 0);
        FUZZ_CHECK(rc == (want ? 1 : 0), "pattern " + fuzz::show(pat) + " subject " +
                                             fuzz::show(subj) + ": engine " +
                                             std::to_string(rc) + ", reference " +
                                             std::to_string(want));
    }

    // Identities, also on subjects that happen to contain glob syntax.
    const std::string esc = escaped(subj);
    FUZZ_CHECK(shmc_glob_match(esc.data(), esc.size(), subj.data(), subj.size()) == 1,
               "escaped subject does not match itself: " + fuzz::show(subj));
    const std::string star = "*" + esc;
    FUZZ_CHECK(shmc_glob_match(star.data(), star.size(), subj.data(), subj.size()) == 1,
               "\"*\" + escaped subject does not match it: " + fuzz::show(subj));
    return 0;
}
