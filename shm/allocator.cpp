// allocator.cpp - see allocator.h.
#include "shm/allocator.h"

#include <bit>
#include <cstring>

#include "shm/crash_point.h"

namespace shmcache::shm {

namespace {

uint32_t size_class(uint32_t n) { return 31u - uint32_t(std::countl_zero(n)); }

FreeRun* run_at(const StripeRef& s, uint32_t idx) {
    auto* r = reinterpret_cast<FreeRun*>(s.block(idx));
    if (r->tag != kFreeTag || r->nblocks == 0 || r->nblocks > s.nblocks - idx)
        corrupt("bad free run");
    return r;
}

uint32_t& tail_tag(const StripeRef& s, uint32_t last_block) {
    return *reinterpret_cast<uint32_t*>(s.block(last_block) + kBlockSize - sizeof(uint32_t));
}

// Sets (free = true) or clears the free-map bits of [start, start+n).
void mark(const StripeRef& s, uint32_t start, uint32_t n, bool free) {
    uint64_t i = start, end = uint64_t(start) + n;
    while (i < end) {
        uint64_t bit = i & 63, take = std::min<uint64_t>(64 - bit, end - i);
        uint64_t mask = (take == 64 ? ~0ull : ((1ull << take) - 1)) << bit;
        if (free)
            s.freemap[i >> 6] |= mask;
        else
            s.freemap[i >> 6] &= ~mask;
        i += take;
    }
}

void list_push(const StripeRef& s, uint32_t start, uint32_t n) {
    auto* r = reinterpret_cast<FreeRun*>(s.block(start));
    const uint32_t c = size_class(n);
    r->tag = kFreeTag;
    r->nblocks = n;
    r->prev = kNil;
    r->next = s.ctl->free_heads[c];
    if (r->next != kNil) run_at(s, r->next)->prev = start;
    tail_tag(s, start + n - 1) = n;
    SHMC_CRASH_POINT();
    s.ctl->free_heads[c] = start;
    if (n < kGatherMinBlocks) s.ctl->fragment_blocks += n;
}

void list_unlink(const StripeRef& s, uint32_t start) {
    FreeRun* r = run_at(s, start);
    if (r->prev != kNil)
        run_at(s, r->prev)->next = r->next;
    else {
        uint32_t& head = s.ctl->free_heads[size_class(r->nblocks)];
        if (head != start) corrupt("free run not at its list head");
        head = r->next;
    }
    if (r->next != kNil) run_at(s, r->next)->prev = r->prev;
    if (r->nblocks < kGatherMinBlocks) s.ctl->fragment_blocks -= r->nblocks;
    r->tag = 0;
}

// Takes n blocks from the front of the free run at start (length len); the rest stays free.
uint32_t take_from_run(const StripeRef& s, uint32_t start, uint32_t len, uint32_t n) {
    list_unlink(s, start);
    SHMC_CRASH_POINT();
    mark(s, start, n, false);
    if (len > n) list_push(s, start + n, len - n);
    s.ctl->free_blocks -= n;
    return start;
}

// A run of at least n blocks: first fit within n's own class (bounded), else the head of any
// larger class, which is always big enough.
bool find_run(const StripeRef& s, uint32_t n, uint32_t* start, uint32_t* len) {
    const uint32_t c = size_class(n);
    uint32_t idx = s.ctl->free_heads[c];
    for (int tries = 0; idx != kNil && tries < 16; ++tries) {
        FreeRun* r = run_at(s, idx);
        if (r->nblocks >= n) {
            *start = idx;
            *len = r->nblocks;
            return true;
        }
        idx = r->next;
    }
    for (uint32_t k = c + 1; k < kFreeClasses; ++k) {
        if (s.ctl->free_heads[k] != kNil) {
            *start = s.ctl->free_heads[k];
            *len = run_at(s, *start)->nblocks;
            return true;
        }
    }
    return false;
}

// The largest run available (head of the highest non-empty class), cut to at most max blocks.
uint32_t take_largest(const StripeRef& s, uint32_t max, uint32_t* got) {
    for (uint32_t k = kFreeClasses; k-- > 0;) {
        uint32_t idx = s.ctl->free_heads[k];
        if (idx == kNil) continue;
        uint32_t len = run_at(s, idx)->nblocks;
        *got = std::min(len, max);
        return take_from_run(s, idx, len, *got);
    }
    corrupt("free block count says blocks are free but no list has any");
}

// Runs gather_fits looks at, at most: a bound on the walk under the lock.
constexpr uint32_t kGatherCheckRuns = 64;

// Whether gathering `data` bytes would succeed now: walks the runs in the order alloc_entry takes
// them (highest class first, each list from its head), looking at no more than max_runs. False
// when that is not enough to tell, so the caller evicts once more: eviction alone always ends
// with room (an empty stripe is one run).
bool gather_fits(const StripeRef& s, uint64_t data, uint32_t max_runs) {
    uint64_t capacity = 0, need = data + kEntryHeader;  // each run below counts its Extent
    for (uint32_t k = kFreeClasses; k-- > 0 && max_runs;) {
        for (uint32_t idx = s.ctl->free_heads[k]; idx != kNil && max_runs; --max_runs) {
            const FreeRun* r = run_at(s, idx);
            if (r->nblocks < kGatherMinBlocks) return false;  // alloc_entry would take it next
            capacity += uint64_t(r->nblocks) * kBlockSize - kExtentHeader;
            if (capacity >= need) return true;
            idx = r->next;
        }
    }
    return false;
}

}  // namespace

void add_free_run(const StripeRef& s, uint32_t start, uint32_t n) {
    mark(s, start, n, true);
    list_push(s, start, n);
    s.ctl->free_blocks += n;
}

uint32_t alloc_entry(const StripeRef& s, uint64_t data) {
    const uint32_t n = contiguous_blocks(data);
    uint32_t start, len;
    if (n <= s.ctl->free_blocks && find_run(s, n, &start, &len)) {
        take_from_run(s, start, len, n);
        reinterpret_cast<EntryHeader*>(s.block(start))->chained = 0;
        return start;
    }
    // Enough gatherable blocks for the worst case; or, for fewer, runs long enough in fact.
    if (s.ctl->free_blocks - s.ctl->fragment_blocks < worst_case_blocks(data) &&
        !gather_fits(s, data, kGatherCheckRuns))
        return kNil;
    // Gather runs, largest first, so every run taken has at least kGatherMinBlocks (some class
    // at or above kGatherMinBlocks' is not empty while gatherable blocks remain). Every extent
    // spends 8 bytes on its Extent, the first one after the entry header.
    uint32_t got;
    const uint32_t head = take_largest(s, n, &got);
    auto* e = reinterpret_cast<EntryHeader*>(s.block(head));
    e->chained = 1;
    auto* last = reinterpret_cast<Extent*>(s.block(head) + kEntryHeader);
    *last = Extent{got, kNil};
    const uint64_t first = uint64_t(got) * kBlockSize - kEntryHeader - kExtentHeader;
    uint64_t left = data - std::min<uint64_t>(data, first);
    while (left > 0) {
        const uint32_t want = uint32_t((left + kExtentHeader + kBlockSize - 1) / kBlockSize);
        const uint32_t idx = take_largest(s, want, &got);
        auto* x = reinterpret_cast<Extent*>(s.block(idx));
        *x = Extent{got, kNil};
        last->next = idx;
        last = x;
        left -= std::min<uint64_t>(left, uint64_t(got) * kBlockSize - kExtentHeader);
    }
    return head;
}

namespace {

// Returns [start, start+n) to the free lists, merged with free neighbours on both sides.
void release_run(const StripeRef& s, uint32_t start, uint32_t n) {
    if (s.block_free(start) || s.block_free(start + n - 1)) corrupt("double free");
    const uint32_t orig_start = start, orig_n = n;
    if (start > 0 && s.block_free(start - 1)) {  // merge with the run on the left
        const uint32_t left_len = tail_tag(s, start - 1);
        if (left_len == 0 || left_len > start) corrupt("bad tail tag");
        const uint32_t left = start - left_len;
        if (run_at(s, left)->nblocks != left_len) corrupt("tail tag disagrees with head");
        list_unlink(s, left);
        start = left;
        n += left_len;
    }
    const uint32_t right = orig_start + orig_n;
    if (right < s.nblocks && s.block_free(right)) {  // and with the run on the right
        const uint32_t right_len = run_at(s, right)->nblocks;
        list_unlink(s, right);
        n += right_len;
    }
    SHMC_CRASH_POINT();
    mark(s, orig_start, orig_n, true);
    list_push(s, start, n);
    s.ctl->free_blocks += orig_n;
}

}  // namespace

void free_entry(const StripeRef& s, uint32_t head) {
    // Releasing an extent writes only to its own blocks and to free neighbours, never to the
    // next extent of the chain (a used block), so reading `next` before each release suffices.
    s.entry(head)->tag = 0;
    for_each_extent_raw(s, head, [&](uint32_t idx, uint32_t n) { release_run(s, idx, n); });
}

}  // namespace shmcache::shm
