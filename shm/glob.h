// glob.h - the glob patterns of purge and scan: `*`, `?`, `[abc]`, `[a-z]`, `[!a]`/`[^a]`, and
// `\` escaping the next byte. Binary-safe (pattern and subject are pointer + length).
#ifndef SHMCACHE_SHM_GLOB_H
#define SHMCACHE_SHM_GLOB_H

#include <cstddef>

namespace shmcache::shm {

// True if the pattern is well formed: every `[` closed, no trailing lone `\`, no empty class.
bool glob_valid(const char* pat, size_t plen);

// REQUIRES: glob_valid(pat, plen). Worst case O(plen * slen), never exponential: a `*` only
// remembers the most recent star position (the classic single-backtrack algorithm).
bool glob_match(const char* pat, size_t plen, const char* s, size_t slen);

}  // namespace shmcache::shm

#endif
