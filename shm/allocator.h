// allocator.h - block allocation inside one stripe.
//
// Free space is kept as maximal runs of free blocks, in segregated lists by size class (class c
// holds runs of [2^c, 2^(c+1)) blocks), with a bitmap of free blocks and a tail tag at the end
// of each run so that freeing merges with both neighbours in O(1). An entry is a chain of
// extents: one run when a large enough run exists, else several runs gathered together. So an
// entry fits whenever enough blocks are free, whatever the fragmentation; eviction only ever has
// to free blocks, never a contiguous hole.
//
// REQUIRES (every function): the stripe lock held and the stripe marked dirty.
#ifndef SHMCACHE_SHM_ALLOCATOR_H
#define SHMCACHE_SHM_ALLOCATOR_H

#include <cstdint>

#include "shm/stripe.h"

namespace shmcache::shm {

// Blocks an entry takes when stored as one extent, with `data` bytes after its header (its
// optional fields but a chained entry's Extent, its key and value: the same `data` for every
// function below). Never fewer than kGatherMinBlocks, so that a lock-free reader may copy an
// EntryHead from any head (StripeRef::head_in_range); only entries of 12 bytes or less pay.
inline uint32_t contiguous_blocks(uint64_t data) {
    return std::max<uint32_t>(uint32_t((kEntryHeader + data + kBlockSize - 1) / kBlockSize),
                              kGatherMinBlocks);
}

// The entry's first extent: its own Extent if chained, else the one run its lengths imply.
// REQUIRES: the header's lengths and optional-field bits are set (a store sets them before it
// counts or walks the entry's blocks).
inline Extent first_extent(const EntryHeader* e) {
    return e->chained ? entry_chain(e) : Extent{contiguous_blocks(entry_payload(e)), kNil};
}

// Allocates the extents for an entry of `data` bytes, sets the header's chained bit and writes
// the Extent headers (the entry header's other fields are the caller's, who must keep chained).
// Returns the head block, or kNil if the stripe lacks free blocks (the caller evicts and retries).
// Never fails when the blocks free in gatherable runs, free_blocks - fragment_blocks, are at least
// worst_case_blocks(data).
uint32_t alloc_entry(const StripeRef& s, uint64_t data);

// Returns every extent of the entry at head to the free lists. Throws StripeCorrupt on a bad
// extent chain.
void free_entry(const StripeRef& s, uint32_t head);

// Adds [start, start+n) as a free run without merging. For rebuild, which passes maximal runs.
void add_free_run(const StripeRef& s, uint32_t start, uint32_t n);

// Calls fn(start, nblocks) for each extent of the entry at head, bounds-checked and bounded.
// fn may overwrite the extent it is given (the next link is read first). The head's tag is not
// checked: free_entry clears it before walking.
template <class Fn>
void for_each_extent_raw(const StripeRef& s, uint32_t head, Fn&& fn) {
    uint32_t idx = head;
    Extent ext = first_extent(s.entry_raw(head));
    for (uint32_t hops = 0;; ++hops) {
        if (hops >= s.nblocks || ext.nblocks == 0 || ext.nblocks > s.nblocks - idx)
            corrupt("bad extent");
        fn(idx, ext.nblocks);
        if (ext.next == kNil) return;
        idx = ext.next;
        ext = *reinterpret_cast<const Extent*>(s.block(idx));
    }
}

// Blocks over all extents of the entry at head. Only an entry gathered from several runs (when
// no single run was large enough) needs the walk; the header does not store the total, to stay
// small. Like for_each_extent_raw, it does not check the head's tag (a store counts its blocks
// before it tags the entry).
inline uint32_t entry_blocks(const StripeRef& s, uint32_t head) {
    const Extent first = first_extent(s.entry_raw(head));
    if (first.next == kNil) return first.nblocks;
    uint32_t total = 0;
    for_each_extent_raw(s, head, [&](uint32_t, uint32_t n) { total += n; });
    return total;
}

}  // namespace shmcache::shm

#endif
