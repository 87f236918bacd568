// sketch.h - W-TinyLFU's frequency sketch (Einziger, Friedman & Manes, "TinyLFU: A Highly
// Efficient Cache Admission Policy", ACM ToS 2017): a count-min sketch of 4-bit counters, 16 to
// a 64-bit word, one per stripe in the stripe's policy table (the words S3-FIFO uses for ghosts).
//
// A key has one counter in each of 4 words of one cache line, chosen by a mix of its 32-bit hash
// tag; its estimate is the smallest of the 4. Counters saturate at 15, and the whole sketch is halved
// every so many additions (the caller decides when), so that old popularity fades.
//
// Nothing here is trusted for memory safety: indexes come from the hash and the stripe's mask
// (from the validated geometry), never from the segment, and any counter value is a valid
// estimate. So a process killed mid-update or mid-halving leaves a slightly wrong estimate and
// nothing else; rebuild simply zeroes the sketch.
//
// REQUIRES: the stripe lock held.
#ifndef SHMCACHE_SHM_SKETCH_H
#define SHMCACHE_SHM_SKETCH_H

#include <cstdint>

namespace shmcache::shm {

constexpr uint32_t kSketchRows = 4;
constexpr uint32_t kSketchCounterMax = 15;

// Where a key's counters lie: all 4 in one 64-byte line of 8 words (so an update or an
// estimate misses the cache once, not 4 times: Caffeine's layout), row r's in word 2r or 2r+1 of
// the line, at a 4-bit slot; the line, the words and the slots come from one mix of the tag.
struct SketchSlots {
    uint32_t word[kSketchRows];
    uint32_t shift[kSketchRows];
};
// REQUIRES: mask + 1 (the words) a power of two of at least 8; the geometry gives at least 16.
inline SketchSlots sketch_slots(uint32_t hash_tag, uint32_t mask) {
    // splitmix64's finalizer: the line is independent of the bucket index (the tag's low bits).
    uint64_t z = uint64_t(hash_tag) + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    SketchSlots s;
    const uint32_t line = uint32_t(z) & mask & ~7u;
    for (uint32_t r = 0; r < kSketchRows; ++r) {
        s.word[r] = line + 2 * r + uint32_t(z >> (32 + r) & 1);
        s.shift[r] = uint32_t(z >> (40 + 4 * r) & 15) * 4;
    }
    return s;
}

inline uint32_t sketch_estimate(const uint64_t* words, uint32_t mask, uint32_t hash_tag) {
    const SketchSlots s = sketch_slots(hash_tag, mask);
    uint32_t least = kSketchCounterMax;
    for (uint32_t r = 0; r < kSketchRows; ++r) {
        const uint32_t v = uint32_t(words[s.word[r]] >> s.shift[r]) & 15u;
        least = v < least ? v : least;
    }
    return least;
}

// Adds n to the key's counters (each saturating at 15).
inline void sketch_add(uint64_t* words, uint32_t mask, uint32_t hash_tag, uint32_t n) {
    const SketchSlots s = sketch_slots(hash_tag, mask);
    for (uint32_t r = 0; r < kSketchRows; ++r) {
        const uint32_t v = uint32_t(words[s.word[r]] >> s.shift[r]) & 15u;
        const uint32_t nv = v + n > kSketchCounterMax ? kSketchCounterMax : v + n;
        words[s.word[r]] += uint64_t(nv - v) << s.shift[r];
    }
}

// Halves every counter (the "reset" of TinyLFU's sample), rounding down.
inline void sketch_halve(uint64_t* words, uint32_t mask) {
    for (uint64_t i = 0; i <= mask; ++i) words[i] = (words[i] >> 1) & 0x7777777777777777ull;
}

}  // namespace shmcache::shm

#endif
