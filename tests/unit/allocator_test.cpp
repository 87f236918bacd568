// allocator_test.cpp - free runs, coalescing, and gathering extents in a fragmented stripe.
#include <doctest/doctest.h>

#include <random>
#include <vector>

#include "shm/allocator.h"
#include "support.h"

using namespace shmcache::shm;

namespace {

uint32_t runs_listed(const StripeRef& s) {
    uint32_t n = 0;
    for (uint32_t k = 0; k < kFreeClasses; ++k)
        for (uint32_t i = s.ctl->free_heads[k]; i != kNil;
             i = reinterpret_cast<FreeRun*>(s.block(i))->next)
            ++n;
    return n;
}

// Blocks in listed runs shorter than kGatherMinBlocks, counted from the lists.
uint32_t fragments_listed(const StripeRef& s) {
    uint32_t n = 0;
    for (uint32_t k = 0; k < kFreeClasses; ++k)
        for (uint32_t i = s.ctl->free_heads[k]; i != kNil;
             i = reinterpret_cast<FreeRun*>(s.block(i))->next) {
            const uint32_t len = reinterpret_cast<FreeRun*>(s.block(i))->nblocks;
            if (len < kGatherMinBlocks) n += len;
        }
    return n;
}

// Key+value bytes of an entry that takes exactly `blocks` blocks as one extent.
uint64_t data_for(uint32_t blocks) { return uint64_t(blocks) * kBlockSize - kEntryHeader; }

// An entry allocated and given the lengths a store would write (an entry that is not chained
// knows its blocks only from them).
uint32_t alloc_tagged(const StripeRef& s, uint64_t data) {
    uint32_t head = alloc_entry(s, data);
    if (head == kNil) return head;
    auto* e = reinterpret_cast<EntryHeader*>(s.block(head));
    e->tag = kEntryTag;
    e->has_timing = e->has_flags = 0;
    e->key_len = 0;
    e->value_len = data;
    return head;
}

}  // namespace

TEST_CASE("a fresh stripe is one free run, and freeing everything coalesces back to one") {
    unit::TestCache tc("alloc");
    unit::RawSegment raw(tc.name);
    StripeRef s = raw.stripe(0);
    CHECK(s.ctl->free_blocks == s.nblocks);
    CHECK(runs_listed(s) == 1);

    std::mt19937 rng(42);
    std::vector<uint32_t> live;
    for (int round = 0; round < 4000; ++round) {
        if (live.empty() || rng() % 3) {
            uint32_t h = alloc_tagged(s, rng() % 3000);
            if (h != kNil) live.push_back(h);
        } else {
            size_t i = rng() % live.size();
            free_entry(s, live[i]);
            live[i] = live.back();
            live.pop_back();
        }
        uint64_t popcount = 0;
        for (uint32_t w = 0; w < s.nblocks / 64; ++w)
            popcount += __builtin_popcountll(s.freemap[w]);
        REQUIRE(popcount == s.ctl->free_blocks);
        REQUIRE(fragments_listed(s) == s.ctl->fragment_blocks);
    }
    for (uint32_t h : live) free_entry(s, h);
    CHECK(s.ctl->free_blocks == s.nblocks);
    CHECK(runs_listed(s) == 1);
}

TEST_CASE("a value fits in a fragmented stripe by gathering extents") {
    unit::TestCache tc("frag");
    unit::RawSegment raw(tc.name);
    StripeRef s = raw.stripe(0);
    std::vector<uint32_t> smallest;  // entries of the shortest gatherable run each
    for (uint32_t h; (h = alloc_tagged(s, data_for(kGatherMinBlocks))) != kNil;)
        smallest.push_back(h);
    CHECK(s.ctl->free_blocks < kGatherMinBlocks);
    for (size_t i = 0; i < smallest.size(); i += 2) free_entry(s, smallest[i]);  // a checkerboard
    CHECK(s.ctl->fragment_blocks == fragments_listed(s));
    const uint64_t data = 40 * kBlockSize;
    REQUIRE(s.ctl->free_blocks - s.ctl->fragment_blocks >= worst_case_blocks(data));
    uint32_t head = alloc_tagged(s, data);
    REQUIRE(head != kNil);
    uint32_t extents = 0, blocks = 0;
    uint64_t capacity = 0;
    for_each_extent_raw(s, head, [&](uint32_t, uint32_t n) {
        CHECK(n >= (extents ? 1 : kGatherMinBlocks));
        blocks += n;
        capacity += uint64_t(n) * kBlockSize - kExtentHeader - (extents ? 0 : kEntryHeader);
        ++extents;
    });
    CHECK(extents > 1);
    CHECK(capacity >= data);
    CHECK(entry_blocks(s, head) == blocks);
    // Whole runs carry at least kGatherBytesPerBlock a block; the last extent is cut to what it
    // needs, and a short one carries less: one block more at most.
    CHECK(blocks <= worst_case_blocks(data) + 1);
    free_entry(s, head);
    for (size_t i = 1; i < smallest.size(); i += 2) free_entry(s, smallest[i]);
    CHECK(s.ctl->free_blocks == s.nblocks);
    CHECK(s.ctl->fragment_blocks == 0);
    CHECK(runs_listed(s) == 1);
}

TEST_CASE("gathering needs only the runs it takes, not the worst case") {
    unit::TestCache tc("gather-exact");
    unit::RawSegment raw(tc.name);
    StripeRef s = raw.stripe(0);
    std::vector<uint32_t> entries;
    for (uint32_t h; (h = alloc_tagged(s, data_for(20))) != kNil;) entries.push_back(h);
    REQUIRE(entries.size() >= 4);
    // The stripe's last few blocks (its size mod 20) are taken too, so that only the two runs
    // freed below are free, whatever the geometry.
    for (uint32_t h; (h = alloc_tagged(s, data_for(kGatherMinBlocks))) != kNil;) (void)h;
    free_entry(s, entries[0]);
    free_entry(s, entries[2]);  // two runs of 20 blocks, apart
    // As much as the two runs carry (both extents' headers taken off): more than the worst case
    // allows, exactly what is free.
    const uint64_t data = data_for(40) - 2 * kExtentHeader;
    REQUIRE(s.ctl->free_blocks - s.ctl->fragment_blocks < worst_case_blocks(data));
    const uint32_t head = alloc_tagged(s, data);
    REQUIRE(head != kNil);
    uint32_t extents = 0;
    for_each_extent_raw(s, head, [&](uint32_t, uint32_t) { ++extents; });
    CHECK(extents >= 2);
    // Now too little is free even in fact: nothing is taken.
    const uint32_t before = s.ctl->free_blocks;
    CHECK(alloc_tagged(s, data_for(20)) == kNil);
    CHECK(s.ctl->free_blocks == before);
}

TEST_CASE("fragments, runs too short for an entry header, are counted and never gathered") {
    unit::TestCache tc("fragments");
    unit::RawSegment raw(tc.name);
    StripeRef s = raw.stripe(0);
    std::vector<uint32_t> smallest;
    for (uint32_t h; (h = alloc_tagged(s, data_for(kGatherMinBlocks))) != kNil;)
        smallest.push_back(h);
    // In every group of three neighbours, free the last two (one run of 2 * kGatherMinBlocks)
    // and take kGatherMinBlocks + 1 blocks from its front: kGatherMinBlocks - 1 free blocks are
    // left behind, a fragment between two entries.
    std::vector<uint32_t> live;
    for (size_t i = 0; i + 2 < smallest.size(); i += 3) {
        live.push_back(smallest[i]);
        free_entry(s, smallest[i + 1]);
        free_entry(s, smallest[i + 2]);
        const uint32_t h = alloc_tagged(s, data_for(kGatherMinBlocks + 1));
        REQUIRE(h == smallest[i + 1]);
        live.push_back(h);
    }
    for (size_t i = smallest.size() / 3 * 3; i < smallest.size(); ++i) live.push_back(smallest[i]);
    const uint32_t free_before = s.ctl->free_blocks;
    REQUIRE(free_before >= uint32_t(smallest.size() / 3) * (kGatherMinBlocks - 1));
    CHECK(s.ctl->fragment_blocks == free_before);
    CHECK(fragments_listed(s) == free_before);
    // Plenty of blocks are free, but none can take a header or carry a gathered extent.
    CHECK(alloc_tagged(s, 8 * kBlockSize) == kNil);
    CHECK(alloc_tagged(s, 1) == kNil);
    CHECK(s.ctl->free_blocks == free_before);
    CHECK(s.ctl->fragment_blocks == free_before);
    // Freeing an entry merges the fragments on both sides into a gatherable run.
    free_entry(s, live[1]);
    CHECK(s.ctl->fragment_blocks == free_before - (kGatherMinBlocks - 1));
    CHECK(alloc_tagged(s, 1) != kNil);
}

TEST_CASE("too little free space returns kNil and changes nothing") {
    unit::TestCache tc("nofit");
    unit::RawSegment raw(tc.name);
    StripeRef s = raw.stripe(0);
    const uint32_t before = s.ctl->free_blocks;
    CHECK(alloc_entry(s, uint64_t(s.nblocks) * kBlockSize) == kNil);
    CHECK(s.ctl->free_blocks == before);
}
