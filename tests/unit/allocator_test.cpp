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

uint32_t alloc_tagged(const StripeRef& s, uint64_t data) {
    uint32_t head = alloc_entry(s, data);
    if (head != kNil) reinterpret_cast<EntryHeader*>(s.block(head))->tag = kEntryTag;
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
    }
    for (uint32_t h : live) free_entry(s, h);
    CHECK(s.ctl->free_blocks == s.nblocks);
    CHECK(runs_listed(s) == 1);
}

TEST_CASE("a value fits in a fragmented stripe by gathering extents") {
    unit::TestCache tc("frag");
    unit::RawSegment raw(tc.name);
    StripeRef s = raw.stripe(0);
    std::vector<uint32_t> singles;
    for (uint32_t h; (h = alloc_tagged(s, 8)) != kNil;) singles.push_back(h);  // 1 block each
    CHECK(s.ctl->free_blocks == 0);
    for (size_t i = 0; i < singles.size(); i += 2) free_entry(s, singles[i]);  // a checkerboard
    const uint64_t data = 40 * kBlockSize;
    REQUIRE(s.ctl->free_blocks >= worst_case_blocks(data));
    uint32_t head = alloc_tagged(s, data);
    REQUIRE(head != kNil);
    uint32_t extents = 0;
    uint64_t capacity = 0;
    for_each_extent_raw(s, head, [&](uint32_t, uint32_t n) {
        capacity += uint64_t(n) * kBlockSize - (extents ? kExtentHeader : kEntryHeader);
        ++extents;
    });
    CHECK(extents > 1);
    CHECK(capacity >= data);
    free_entry(s, head);
    for (size_t i = 1; i < singles.size(); i += 2) free_entry(s, singles[i]);
    CHECK(s.ctl->free_blocks == s.nblocks);
    CHECK(runs_listed(s) == 1);
}

TEST_CASE("too little free space returns kNil and changes nothing") {
    unit::TestCache tc("nofit");
    unit::RawSegment raw(tc.name);
    StripeRef s = raw.stripe(0);
    const uint32_t before = s.ctl->free_blocks;
    CHECK(alloc_entry(s, uint64_t(s.nblocks) * kBlockSize) == kNil);
    CHECK(s.ctl->free_blocks == before);
}
