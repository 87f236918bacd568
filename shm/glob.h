// glob.h - the glob patterns of purge and scan: `*`, `?`, `[abc]`, `[a-z]`, `[!a]`/`[^a]`, and
// `\` escaping the next byte. Binary-safe (pattern and subject are pointer + length).
#ifndef SHMCACHE_SHM_GLOB_H
#define SHMCACHE_SHM_GLOB_H

#include <bitset>
#include <cstddef>

namespace shmcache::shm {

// True if the pattern is well formed: every `[` closed, no trailing lone `\`, no empty class.
bool glob_valid(const char* pat, size_t plen);

// REQUIRES: glob_valid(pat, plen). Worst case O(plen * slen), never exponential: a `*` only
// remembers the most recent star position (the classic single-backtrack algorithm).
bool glob_match(const char* pat, size_t plen, const char* s, size_t slen);

// The class starting at pat[i] == '[': false if it is malformed; otherwise *end is one past its
// closing `]` and members holds the bytes it matches (negation applied). Used to rewrite a
// pattern for another matcher (Redis) with exactly this one's meaning.
bool glob_class(const char* pat, size_t plen, size_t i, size_t* end, std::bitset<256>* members);

}  // namespace shmcache::shm

#endif
