// stripe.h - a process-local view of one stripe: pointers into the segment computed from the
// validated geometry (never read from the segment), plus bounds-checked accessors.
#ifndef SHMCACHE_SHM_STRIPE_H
#define SHMCACHE_SHM_STRIPE_H

#include <cstdint>

#include "shm/errors.h"
#include "shm/layout.h"

namespace shmcache::shm {

struct StripeRef {
    StripeCtl* ctl;
    uint32_t* buckets;
    uint64_t* ghost;    // the policy table: S3-FIFO's ghosts, or W-TinyLFU's sketch (sketch.h)
    uint64_t* freemap;  // bit set: block is free
    uint8_t* blocks;
    uint32_t nblocks;
    uint32_t bucket_mask;
    uint32_t ghost_mask;  // its words - 1; 0 when the strategy keeps no policy table
    uint64_t* steer;      // W-TinyLFU's steering ghosts (eviction.cpp)
    uint32_t steer_mask;  // their words - 1; 0 for every other strategy
    uint32_t max_value_len;
    uint32_t strategy;
    uint32_t index;        // this stripe's number
    uint32_t stripe_mask;  // n_stripes - 1
    // The host-wide entry limit (0: memory only) and its count, shared by every stripe.
    uint64_t max_entries;
    EntryLimitShared* limit;
    // Whether L2 copies may be served (layout.h, L2Coherence), shared by every stripe.
    const L2Coherence* coherence;
    // Where this process counts lookups: *counters is its attach slot's ProcessCounters (the
    // engine moves it after a fork); counters NULL (a view made outside an engine): overflow.
    ProcessCounters* const* counters;
    ProcessCounters* overflow_counters;
    ProcessCounters& lookup_counters() const { return counters ? **counters : *overflow_counters; }

    // Every block index read from the segment passes through here.
    uint8_t* block(uint32_t idx) const {
        if (idx >= nblocks) corrupt("block index out of range");
        return blocks + uint64_t(idx) * kBlockSize;
    }
    // An entry's head: its header spans several blocks, all in its first extent, which is at
    // least kGatherMinBlocks long. So a head closer than that to the end is damage, and reading a
    // header there would run past the stripe's blocks.
    bool head_in_range(uint32_t idx) const { return idx <= nblocks - kGatherMinBlocks; }
    EntryHeader* entry_raw(uint32_t idx) const {
        if (!head_in_range(idx)) corrupt("entry index out of range");
        return reinterpret_cast<EntryHeader*>(blocks + uint64_t(idx) * kBlockSize);
    }
    EntryHeader* entry(uint32_t idx) const {
        EntryHeader* e = entry_raw(idx);
        if (e->tag != kEntryTag) corrupt("entry tag missing");
        return e;
    }
    bool block_free(uint32_t idx) const { return (freemap[idx >> 6] >> (idx & 63)) & 1u; }
    // The stripe's entry count, for bounding walks. Every entry takes at least one block, so a
    // count above the block count is damage: walks bounded by it would be effectively unbounded.
    uint32_t entry_bound() const {
        const uint32_t n = ctl->entries;
        if (n > nblocks) corrupt("entry count larger than the stripe");
        return n;
    }
};

StripeRef stripe_ref(uint8_t* base, const Geometry& g, uint32_t stripe);

// Formats a stripe as empty: no entries, one free run of all blocks. REQUIRES: lock held or the
// segment not yet published. Does not touch the mutex or the counters.
void reset_stripe(const StripeRef& s);

}  // namespace shmcache::shm

#endif
