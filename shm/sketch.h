// sketch.h - W-TinyLFU's frequency sketch (Einziger, Friedman & Manes, "TinyLFU: A Highly
// Efficient Cache Admission Policy", ACM ToS 2017): a count-min sketch of 4-bit counters, 16 to
// a 64-bit word, one per stripe in the stripe's policy table (the words S3-FIFO uses for ghosts).
//
// A key has one counter in each of 4 words chosen by 4 mixes of its 32-bit hash tag; its
// estimate is the smallest of the 4. Counters saturate at 15, and the whole sketch is halved
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

// Where row `row`'s counter of a key lies: a word and a 4-bit slot in it.
struct SketchSlot {
    uint32_t word;
    uint32_t shift;
};
inline SketchSlot sketch_slot(uint32_t hash_tag, uint32_t row, uint32_t mask) {
    // splitmix64's finalizer over (row, tag): the rows' words are independent of each other
    // and of the bucket index, which uses the tag's low bits.
    uint64_t z = (uint64_t(row) << 32 | hash_tag) + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return {uint32_t(z) & mask, uint32_t(z >> 60) * 4};
}

inline uint32_t sketch_estimate(const uint64_t* words, uint32_t mask, uint32_t hash_tag) {
    uint32_t least = kSketchCounterMax;
    for (uint32_t r = 0; r < kSketchRows; ++r) {
        const SketchSlot s = sketch_slot(hash_tag, r, mask);
        const uint32_t v = uint32_t(words[s.word] >> s.shift) & 15u;
        least = v < least ? v : least;
    }
    return least;
}

// Adds n to the key's counters (each saturating at 15).
inline void sketch_add(uint64_t* words, uint32_t mask, uint32_t hash_tag, uint32_t n) {
    for (uint32_t r = 0; r < kSketchRows; ++r) {
        const SketchSlot s = sketch_slot(hash_tag, r, mask);
        const uint32_t v = uint32_t(words[s.word] >> s.shift) & 15u;
        const uint32_t nv = v + n > kSketchCounterMax ? kSketchCounterMax : v + n;
        words[s.word] += uint64_t(nv - v) << s.shift;
    }
}

// Halves every counter (the "reset" of TinyLFU's sample), rounding down.
inline void sketch_halve(uint64_t* words, uint32_t mask) {
    for (uint64_t i = 0; i <= mask; ++i) words[i] = (words[i] >> 1) & 0x7777777777777777ull;
}

}  // namespace shmcache::shm

#endif
