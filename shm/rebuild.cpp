// rebuild.cpp - see rebuild.h; also the stripe view and the empty-stripe format.
#include "shm/rebuild.h"

#include <bit>
#include <cstring>
#include <vector>

#include "shm/allocator.h"
#include "shm/clock.h"
#include "shm/eviction.h"
#include "shm/lease.h"
#include "shm/table.h"

namespace shmcache::shm {

StripeRef stripe_ref(uint8_t* base, const Geometry& g, uint32_t i) {
    uint8_t* region = base + g.regions_offset + uint64_t(i) * g.region_bytes;
    StripeRef s;
    s.ctl = reinterpret_cast<StripeCtl*>(base + g.stripes_offset) + i;
    s.buckets = reinterpret_cast<uint32_t*>(region + g.buckets_off);
    s.ghost = reinterpret_cast<uint64_t*>(region + g.ghost_off);
    s.freemap = reinterpret_cast<uint64_t*>(region + g.freemap_off);
    s.blocks = region + g.blocks_off;
    s.nblocks = g.blocks_per_stripe;
    s.bucket_mask = g.buckets_per_stripe - 1;
    s.ghost_mask = g.ghost_per_stripe ? g.ghost_per_stripe - 1 : 0;
    s.steer = reinterpret_cast<uint64_t*>(region + g.steer_off);
    s.steer_mask = g.steer_per_stripe ? g.steer_per_stripe - 1 : 0;
    s.max_value_len = g.max_value_len;
    s.strategy = g.strategy;
    s.index = i;
    s.stripe_mask = g.n_stripes - 1;
    s.max_entries = g.max_entries;
    s.limit = &reinterpret_cast<SegmentHeader*>(base)->entry_limit;
    s.coherence = &reinterpret_cast<SegmentHeader*>(base)->coherence;
    s.counters = nullptr;
    s.overflow_counters =
        reinterpret_cast<ProcessCounters*>(base + g.counters_offset) + kOverflowCounters;
    return s;
}

namespace {

// Empties every structure of the stripe except its lock and counters, and leaves no free run.
void clear_structures(const StripeRef& s) {
    StripeCtl* c = s.ctl;
    std::fill_n(s.buckets, s.bucket_mask + 1, kNil);
    if (s.ghost_mask) std::fill_n(s.ghost, s.ghost_mask + 1, 0);
    if (s.steer_mask) std::fill_n(s.steer, s.steer_mask + 1, 0);
    std::fill_n(s.freemap, s.nblocks / 64, 0);
    std::fill_n(c->free_heads, kFreeClasses, kNil);
    for (uint32_t q = 0; q < kQueues; ++q) {
        c->q_head[q] = c->q_tail[q] = kNil;
        c->q_entries[q] = c->q_blocks[q] = 0;
    }
    c->free_blocks = c->fragment_blocks = c->entries = c->used_blocks = 0;
    c->sieve_hand = kNil;
    c->ghost_clock = 0;
    c->min_expiry_lb = 0;
    c->data_bytes = 0;
}

// Validates the entry at idx, found in bucket b, without trusting anything: returns its total
// blocks (0 if invalid) and fills *extents with its runs.
uint32_t validate_entry(const StripeRef& s, uint32_t idx, uint32_t b,
                        std::vector<std::pair<uint32_t, uint32_t>>* extents,
                        std::vector<char>* data) {
    const auto* e = reinterpret_cast<const EntryHeader*>(s.blocks + uint64_t(idx) * kBlockSize);
    if (e->tag != kEntryTag || e->key_len == 0 || e->key_len > SHMC_MAX_KEY_LEN ||
        e->value_len > s.max_value_len || (e->hash_tag & s.bucket_mask) != b)
        return 0;
    const uint32_t first_skip = entry_data_offset(e);  // the header and its optional fields
    Extent ext = first_extent(e);
    if (uint64_t(ext.nblocks) * kBlockSize < first_skip) return 0;
    extents->clear();
    uint64_t capacity = 0, total = 0;
    uint32_t at = idx;
    for (uint32_t hops = 0;; ++hops) {
        if (hops >= s.nblocks || ext.nblocks == 0 || ext.nblocks > s.nblocks - at) return 0;
        extents->emplace_back(at, ext.nblocks);
        capacity += uint64_t(ext.nblocks) * kBlockSize - (hops ? kExtentHeader : first_skip);
        total += ext.nblocks;
        if (ext.next == kNil) break;
        if (ext.next >= s.nblocks) return 0;
        at = ext.next;
        ext = *reinterpret_cast<const Extent*>(s.blocks + uint64_t(at) * kBlockSize);
    }
    const uint64_t need = uint64_t(e->key_len) + e->value_len;
    if (capacity < need) return 0;
    data->resize(need);
    char* out = data->data();
    uint64_t left = need;
    for (size_t i = 0; i < extents->size() && left; ++i) {
        const uint32_t skip = i ? kExtentHeader : first_skip;
        const uint64_t n =
            std::min<uint64_t>(left, uint64_t((*extents)[i].second) * kBlockSize - skip);
        std::memcpy(out, s.blocks + uint64_t((*extents)[i].first) * kBlockSize + skip, n);
        out += n;
        left -= n;
    }
    const uint64_t h = hash_key(data->data(), e->key_len);
    if (uint32_t(h >> 32) != e->hash_tag || (h & s.stripe_mask) != s.index) return 0;
    const EntryTiming t = entry_timing(e);
    if (entry_checksum(h, entry_flags(e), e->l2_epoch, t.stale_ms, t.compute_ms,
                       data->data() + e->key_len, e->value_len) != e->checksum)
        return 0;
    return uint32_t(total);
}

// Walks every hash chain and returns the entries worth keeping; claim[i] marks their blocks.
struct Survey {
    std::vector<uint32_t> kept;
    std::vector<uint8_t> claim;
    uint64_t dropped = 0;
    bool chains_damaged = false;
};

Survey survey(const StripeRef& s) {
    Survey v;
    v.claim.assign(s.nblocks, 0);
    std::vector<std::pair<uint32_t, uint32_t>> extents;
    std::vector<char> data;
    std::vector<std::pair<uint32_t, std::vector<char>>> bucket_keys;  // duplicates check
    for (uint32_t b = 0; b <= s.bucket_mask; ++b) {
        bucket_keys.clear();
        uint32_t idx = s.buckets[b];
        for (uint32_t steps = 0; idx != kNil; ++steps) {
            if (!s.head_in_range(idx) || steps >= s.nblocks || v.claim[idx]) {
                v.chains_damaged = true;  // out of range, or a loop: the rest is lost
                break;
            }
            const auto* e =
                reinterpret_cast<const EntryHeader*>(s.blocks + uint64_t(idx) * kBlockSize);
            const uint32_t next = e->bucket_next;
            bool ok = validate_entry(s, idx, b, &extents, &data) != 0;
            for (auto& [start, n] : extents)
                for (uint32_t i = 0; ok && i < n; ++i) ok = !v.claim[start + i];
            if (ok) {
                std::vector<char> key(data.begin(), data.begin() + e->key_len);
                for (auto& bk : bucket_keys) ok = ok && bk.second != key;
                if (ok) bucket_keys.emplace_back(idx, std::move(key));
            }
            if (ok) {
                for (auto& [start, n] : extents) std::fill_n(&v.claim[start], n, 1);
                v.kept.push_back(idx);
            } else {
                ++v.dropped;
                v.chains_damaged = true;
            }
            if (e->tag != kEntryTag) break;  // not an entry: its link means nothing
            idx = next;
        }
    }
    return v;
}

}  // namespace

void reset_stripe(const StripeRef& s) {
    clear_structures(s);
    add_free_run(s, 0, s.nblocks);
}

RebuildResult rebuild_stripe(const StripeRef& s) {
    // The dead holder may have reserved a slot it never used, or unlinked an entry whose slot it
    // never gave back, and the survey may drop damaged entries: either way the host-wide count
    // may now be above the live entries. Flag it first, so that a rebuilder killed half-way
    // leaves the flag too; the engine recounts once it holds no lock (engine.cpp).
    if (s.max_entries) s.limit->recount.store(1, std::memory_order_release);
    Survey v = survey(s);
    clear_structures(s);
    StripeCtl* c = s.ctl;
    for (uint32_t idx : v.kept) {
        EntryHeader* e = s.entry(idx);
        const uint32_t b = e->hash_tag & s.bucket_mask;
        e->bucket_next = s.buckets[b];
        s.buckets[b] = idx;
        e->queue = kMainQueue;
        queue_push_head(s, kMainQueue, idx);
        e->freq = 0;
        c->entries += 1;
        c->used_blocks += entry_blocks(s, idx);
        c->data_bytes += uint64_t(e->key_len) + e->value_len;
        const uint64_t expires_ms = entry_expires(e);
        if (expires_ms && (c->min_expiry_lb == 0 || expires_ms < c->min_expiry_lb))
            c->min_expiry_lb = expires_ms;
    }
    for (uint32_t i = 0; i < s.nblocks;) {  // every unclaimed maximal run becomes free
        if (v.claim[i]) {
            ++i;
            continue;
        }
        uint32_t j = i;
        while (j < s.nblocks && !v.claim[j]) ++j;
        add_free_run(s, i, j - i);
        i = j;
    }
    // Leases are crash-safe by write order (lease.h), but a rebuild also follows damage: free
    // the slots that cannot be leases and those of dead owners. Live owners keep theirs, so
    // their waiters go on waiting for the value rather than all computing it.
    lease_sanitize_locked(s, monotonic_ms());
    return RebuildResult{v.kept.size(), v.dropped};
}

CheckResult check_stripe(const StripeRef& s) {
    CheckResult r;
    auto bad = [&](const char* why) {
        r.damaged = true;
        r.problem = why;
        return r;
    };
    Survey v = survey(s);
    r.entries = v.kept.size();
    if (v.chains_damaged) return bad("invalid entry or broken hash chain");
    const StripeCtl* c = s.ctl;
    if (c->entries != v.kept.size()) return bad("entry count disagrees with the hash chains");
    uint64_t used = 0, data = 0;
    std::vector<uint8_t> is_entry(s.nblocks, 0);
    for (uint32_t idx : v.kept) {
        const auto* e = reinterpret_cast<const EntryHeader*>(s.blocks + uint64_t(idx) * kBlockSize);
        used += entry_blocks(s, idx);
        data += uint64_t(e->key_len) + e->value_len;
        is_entry[idx] = 1;
    }
    if (c->used_blocks != used || c->data_bytes != data) return bad("usage counters disagree");
    // Queues: every kept entry exactly once, links consistent both ways.
    uint64_t queued = 0;
    for (uint32_t q = 0; q < kQueues; ++q) {
        uint32_t idx = c->q_head[q], prev = kNil, n = 0;
        while (idx != kNil) {
            if (idx >= s.nblocks || is_entry[idx] != 1 || n > c->entries) return bad("bad queue");
            is_entry[idx] = 2;
            const auto* e =
                reinterpret_cast<const EntryHeader*>(s.blocks + uint64_t(idx) * kBlockSize);
            if (e->q_prev != prev || e->queue != q) return bad("queue links disagree");
            prev = idx;
            idx = e->q_next;
            ++n;
        }
        if (c->q_tail[q] != prev || c->q_entries[q] != n) return bad("queue ends disagree");
        queued += n;
    }
    if (queued != v.kept.size()) return bad("entries missing from the eviction queues");
    // Free runs: listed in the right class, marked in the map, never overlapping an entry.
    uint64_t free_listed = 0, fragments = 0;
    for (uint32_t k = 0; k < kFreeClasses; ++k) {
        uint32_t idx = c->free_heads[k], prev = kNil;
        for (uint32_t n = 0; idx != kNil; ++n) {
            if (idx >= s.nblocks || n >= s.nblocks) return bad("free list out of range");
            const auto* f = reinterpret_cast<const FreeRun*>(s.blocks + uint64_t(idx) * kBlockSize);
            if (f->tag != kFreeTag || f->nblocks == 0 || f->nblocks > s.nblocks - idx ||
                f->prev != prev || 31u - uint32_t(std::countl_zero(f->nblocks)) != k)
                return bad("bad free run");
            for (uint32_t i = idx; i < idx + f->nblocks; ++i)
                if (v.claim[i] || !s.block_free(i)) return bad("free run overlaps an entry");
            free_listed += f->nblocks;
            if (f->nblocks < kGatherMinBlocks) fragments += f->nblocks;
            prev = idx;
            idx = f->next;
        }
    }
    uint64_t free_mapped = 0;
    for (uint32_t w = 0; w < s.nblocks / 64; ++w) free_mapped += std::popcount(s.freemap[w]);
    if (free_listed != c->free_blocks || free_mapped != c->free_blocks ||
        c->free_blocks + used != s.nblocks || fragments != c->fragment_blocks)
        return bad("free space accounting disagrees");
    if (const char* why = lease_problem_locked(s, monotonic_ms())) return bad(why);
    return r;
}

}  // namespace shmcache::shm
