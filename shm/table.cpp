// table.cpp - see table.h.
//
// Write ordering, so that a writer killed at any instruction never exposes a torn value: a
// replaced entry is unlinked first; the new entry is written completely into blocks nobody can
// reach, and only then linked into its bucket. A reader holds the lock, so it sees either the
// old state or the new one; a dead writer leaves a dirty stripe that the next locker rebuilds.
#include "shm/table.h"

#include <cerrno>
#include <charconv>
#include <cstring>

#include "shm/allocator.h"
#include "shm/clock.h"
#include "shm/crash_point.h"
#include "shm/eviction.h"
#include "shm/glob.h"

namespace shmcache::shm {

namespace {

// The timing a store records: the stale window only means something with a TTL.
EntryTiming timing_of(const EntryMeta& meta) {
    return EntryTiming{meta.expires_ms ? meta.stale_ms : 0, meta.compute_ms};
}

// Writes an entry's timing at `at`, half by half from scalars. Callers pass scalars, not an
// EntryTiming: one built on the stack is reread as one 8-byte word right after the two 4-byte
// stores that built it, which store forwarding cannot serve (it cost an in-place set 12 ns).
void write_timing(uint8_t* at, uint32_t stale_ms, uint32_t compute_ms) {
    std::memcpy(at, &stale_ms, sizeof stale_ms);
    std::memcpy(at + sizeof stale_ms, &compute_ms, sizeof compute_ms);
}

uint32_t value_checksum(uint64_t key_hash, const EntryHeader* e, const void* value) {
    const EntryTiming t = entry_timing(e);
    return entry_checksum(key_hash, entry_flags(e), e->l2_epoch, t.stale_ms, t.compute_ms, value,
                          e->value_len);
}

// Calls fn(ptr, n) for each stretch of key and value bytes in [off, off+len) of the entry at
// head (offset 0 is the key's first byte). The header's lengths and optional-field bits must be
// set already.
template <class Fn>
void for_each_data_span(const StripeRef& s, uint32_t head, uint64_t off, uint64_t len, Fn&& fn) {
    bool first = true;
    const uint32_t first_skip = entry_data_offset(s.entry_raw(head));
    for_each_extent_raw(s, head, [&](uint32_t idx, uint32_t n) {
        if (len == 0) return;
        const uint32_t skip = first ? first_skip : kExtentHeader;
        first = false;
        uint8_t* p = s.block(idx) + skip;
        uint64_t cap = uint64_t(n) * kBlockSize - skip;
        if (off >= cap) {
            off -= cap;
            return;
        }
        uint64_t take = std::min(cap - off, len);
        fn(p + off, take);
        off = 0;
        len -= take;
    });
    if (len) corrupt("entry shorter than its lengths");
}

bool key_equals(const StripeRef& s, uint32_t idx, const EntryHeader* e, const Key& k) {
    const uint32_t at = entry_data_offset(e);
    // An entry that is not chained is one extent: the key is in it.
    if (!e->chained || at + k.len <= uint64_t(entry_chain(e).nblocks) * kBlockSize)
        return std::memcmp(reinterpret_cast<const uint8_t*>(e) + at, k.data, k.len) == 0;
    const char* want = k.data;
    bool same = true;
    for_each_data_span(s, idx, 0, k.len, [&](const uint8_t* p, uint64_t n) {
        same = same && std::memcmp(p, want, n) == 0;
        want += n;
    });
    return same;
}

uint32_t bucket_of(const StripeRef& s, uint32_t tag) { return tag & s.bucket_mask; }

// Finds k; *prev gets the previous entry in its chain (kNil if first).
uint32_t find(const StripeRef& s, const Key& k, uint32_t* prev) {
    uint32_t idx = s.buckets[bucket_of(s, k.tag())];
    *prev = kNil;
    for (uint32_t steps = 0; idx != kNil; ++steps) {
        if (steps >= s.nblocks) corrupt("hash chain loops");
        const EntryHeader* e = s.entry(idx);
        if (e->hash_tag == k.tag() && e->key_len == k.len && key_equals(s, idx, e, k)) return idx;
        *prev = idx;
        idx = e->bucket_next;
    }
    return kNil;
}

uint32_t chain_prev(const StripeRef& s, uint32_t target) {
    uint32_t idx = s.buckets[bucket_of(s, s.entry(target)->hash_tag)], prev = kNil;
    for (uint32_t steps = 0; idx != target; ++steps) {
        if (idx == kNil || steps >= s.nblocks) corrupt("entry not in its hash chain");
        prev = idx;
        idx = s.entry(idx)->bucket_next;
    }
    return prev;
}

// The host-wide entry count (EntryLimitShared in layout.h). Every call below is made with the
// stripe concerned locked and marked dirty, which is what lets a rebuild repair a count left
// wrong by a process killed between a count change and the matching chain change.

// Takes a slot if the count is below the limit. A CAS, not a fetch_add: the count must never
// pass the limit, even for an instant, since a reader may be summing it.
bool reserve_slot(const StripeRef& s) {
    std::atomic<uint64_t>& n = s.limit->count;
    uint64_t cur = n.load(std::memory_order_relaxed);
    while (cur < s.max_entries)
        if (n.compare_exchange_weak(cur, cur + 1, std::memory_order_acq_rel,
                                    std::memory_order_relaxed))
            return true;
    return false;
}

// Gives back k slots. REQUIRES: their entries already unlinked from their chains (or never
// linked), so that a count lowered here never counts fewer entries than a rebuild would find.
// Saturates at zero: only outside damage can make the count fall below the live entries, and
// then a recount is what fixes it.
void release_slots(const StripeRef& s, uint64_t k) {
    if (!s.max_entries || !k) return;
    std::atomic<uint64_t>& n = s.limit->count;
    uint64_t cur = n.load(std::memory_order_relaxed);
    while (!n.compare_exchange_weak(cur, cur >= k ? cur - k : 0, std::memory_order_acq_rel,
                                    std::memory_order_relaxed)) {
    }
    if (cur < k) s.limit->recount.store(1, std::memory_order_release);
}

// One slot held by a store from its reservation (or takeover) until its entry is linked into a
// chain; given back if the store returns or throws before that.
struct SlotGuard {
    const StripeRef& s;
    bool held = false;
    ~SlotGuard() {
        if (held) release_slots(s, 1);
    }
};

// Unlinks and frees the entry at idx (prev: its chain predecessor). release_slot false keeps
// the entry's slot of the host-wide count for the caller (eviction for a store, replacement).
void remove_entry(const StripeRef& s, uint32_t idx, uint32_t prev, bool release_slot = true) {
    mark_dirty(s);
    EntryHeader* e = s.entry(idx);
    const uint32_t blocks = entry_blocks(s, idx);  // before any unlink: it may throw
    const uint32_t b = bucket_of(s, e->hash_tag);
    if (prev == kNil) {
        if (s.buckets[b] != idx) corrupt("chain head mismatch");
        s.buckets[b] = e->bucket_next;
    } else {
        s.entry(prev)->bucket_next = e->bucket_next;
    }
    SHMC_CRASH_POINT();
    policy_forget(s, idx);
    queue_unlink(s, idx);
    StripeCtl* c = s.ctl;
    c->entries -= 1;
    if (release_slot) release_slots(s, 1);  // after the chain unlink: see release_slots
    c->used_blocks -= blocks;
    c->data_bytes -= uint64_t(e->key_len) + e->value_len;
    free_entry(s, idx);
}

bool expired(const EntryHeader* e, uint64_t now) {
    const uint64_t expires_ms = entry_expires(e);
    return expires_ms && now >= expires_ms;
}

// Removes every expired entry if one may exist (the stripe's lower bound on expiry has passed)
// and recomputes that bound. Returns how many were removed.
uint64_t reclaim_expired(const StripeRef& s, uint64_t now) {
    StripeCtl* c = s.ctl;
    if (c->min_expiry_lb == 0 || now < c->min_expiry_lb) return 0;
    uint64_t removed = 0, next_lb = 0;
    for_each_entry(s, [&](uint32_t idx) {
        EntryHeader* e = s.entry(idx);
        if (expired(e, now)) {
            remove_entry(s, idx, chain_prev(s, idx));
            ++removed;
        } else if (const uint64_t x = entry_expires(e); x && (next_lb == 0 || x < next_lb)) {
            next_lb = x;
        }
    });
    c->min_expiry_lb = next_lb;
    bump(c->stats.expirations, removed);
    return removed;
}

// by_count: the entry limit binds (the victim's slot is kept for the caller), not memory.
void evict_entry(const StripeRef& s, uint32_t victim, bool by_count) {
    remove_entry(s, victim, chain_prev(s, victim), !by_count);
    bump(s.ctl->stats.evictions);
}

// Evicts the policy's victim of a stripe that must evict (marked dirty first: the search may
// move entries between queues).
void evict_one(const StripeRef& s, bool by_count) {
    mark_dirty(s);
    const uint32_t v = policy_victim(s, by_count);
    if (v == kNil) corrupt("nothing to evict in a full stripe");
    evict_entry(s, v, by_count);
}

// Makes room for a store's slot under the entry limit, levelling (table_store) or else from
// this stripe: kHandedOver once a victim's slot is the store's, kRetry if the count may have
// room now (another stripe reclaimed expired entries).
SlotBroker::Outcome evict_for_slot(const StripeRef& s, SlotBroker* broker, uint64_t fair_share,
                                   bool level, uint64_t seed) {
    if (level) {
        const SlotBroker::Outcome r =
            broker->evict_from_richer_locked(s.index, uint32_t(fair_share), seed);
        if (r != SlotBroker::Outcome::kGiveUp) return r;
    }
    evict_one(s, true);
    return SlotBroker::Outcome::kHandedOver;
}

}  // namespace

void copy_entry_data(const StripeRef& s, uint32_t head, uint64_t off, uint64_t len, void* dst) {
    auto* out = static_cast<uint8_t*>(dst);
    for_each_data_span(s, head, off, len, [&](const uint8_t* p, uint64_t n) {
        std::memcpy(out, p, n);
        out += n;
    });
}

namespace {

// Copies the value of the entry at idx into buf and verifies it. Every read is verified: the
// copy is hot in cache, so this costs a few ns per 100 bytes, and a value damaged in the segment
// is dropped (by the rebuild) instead of returned.
void copy_value_verified(const StripeRef& s, const Key& k, uint32_t idx, const EntryHeader* e,
                         void* buf) {
    copy_entry_data(s, idx, e->key_len, e->value_len, buf);
    if (value_checksum(k.hash, e, buf) != e->checksum) corrupt("value checksum");
}

// The eviction policy learns of every use; the hit counter only of those asked to count.
void note_use(const StripeRef& s, uint32_t idx, bool count_hit) {
    if (policy_hit_relinks(s, idx)) mark_dirty(s);
    policy_hit(s, idx);
    if (count_hit) shm::count_hit(s);
}

}  // namespace

int table_get(const StripeRef& s, const Key& k, void* buf, size_t cap, GetResult* out) {
    uint32_t prev;
    const uint32_t idx = find(s, k, &prev);
    StripeCtl* c = s.ctl;
    if (idx == kNil) {
        count_miss(s);
        return SHMC_E_NOTFOUND;
    }
    EntryHeader* e = s.entry(idx);
    if (e->value_len > s.max_value_len) corrupt("value longer than the segment allows");
    out->ttl_left_ms = -1;
    uint64_t now = 0;
    if (const uint64_t expires_ms = entry_expires(e)) {
        now = monotonic_ms();
        if (now >= expires_ms) {
            remove_entry(s, idx, prev);
            bump(c->stats.expirations);
            count_miss(s);
            return SHMC_E_NOTFOUND;
        }
        if (soft_expired(e, now)) {  // stale: kept for shmc_fetch, a miss for everyone else
            count_miss(s);
            return SHMC_E_NOTFOUND;
        }
        out->ttl_left_ms = ttl_left(fresh_until(e), now);
    }
    // One byte test for every other entry: an L1 hit costs what it did before coherence v2.
    if (e->l2_epoch) {
        // The coarse clock when the entry has no TTL: a tick of slack on the lease, for a
        // third of the cost of a precise read on this path.
        const L2Copy st = l2_copy_state(s, e, now ? now : monotonic_coarse_ms());
        if (st != L2Copy::kServable) {
            if (st == L2Copy::kDead) {
                remove_entry(s, idx, prev);
                bump(c->stats.expirations);
            }
            count_miss(s);
            return SHMC_E_NOTFOUND;
        }
    }
    out->value_len = e->value_len;
    out->flags = entry_flags(e);
    if (e->value_len > cap) return SHMC_E_BUFFER_TOO_SMALL;
    copy_value_verified(s, k, idx, e, buf);
    note_use(s, idx, true);
    return 0;
}

int table_peek(const StripeRef& s, const Key& k, uint64_t now, void* buf, size_t cap, bool count,
               PeekResult* out) {
    *out = PeekResult{};
    uint32_t prev;
    const uint32_t idx = find(s, k, &prev);
    StripeCtl* c = s.ctl;
    const EntryHeader* found = idx != kNil ? s.entry(idx) : nullptr;
    const bool l2_dead = found && found->l2_epoch && l2_copy_state(s, found, now) == L2Copy::kDead;
    if (found && (expired(found, now) || l2_dead)) {
        remove_entry(s, idx, prev);
        bump(c->stats.expirations);
    } else if (found && !l2_unservable(s, found, now)) {
        EntryHeader* e = s.entry(idx);
        if (e->value_len > s.max_value_len) corrupt("value longer than the segment allows");
        out->state = soft_expired(e, now) ? Freshness::kStale : Freshness::kFresh;
        out->value_len = e->value_len;
        out->flags = entry_flags(e);
        out->compute_ms = entry_timing(e).compute_ms;
        out->fresh_until = fresh_until(e);
        if (e->value_len > cap) return SHMC_E_BUFFER_TOO_SMALL;
        copy_value_verified(s, k, idx, e, buf);
        note_use(s, idx, count);
        return 0;
    }
    if (count) count_miss(s);
    return 0;
}

namespace {

// A set of a key whose entry is one extent of exactly the blocks the new value needs, with the
// same optional fields: the new header fields and value are written over the old ones, in place.
// The chain, the queues, the allocator and the entry count are not touched, so a contended set
// writes a few cache lines instead of a dozen (bench/bench_engine). Crash-safe as the rest: the
// stripe is dirty (and seq odd) throughout, and the new checksum is written first, so a writer
// killed anywhere before the last value byte leaves an entry whose checksum the rebuild finds wrong
// and drops, which is what an interrupted replace leaves too (the key absent). Never the old value
// under the new flags or expiry: the checksum covers the flags, and the old value fails the new
// checksum. The overwrite counts as a use of the key for the eviction policy, as a hit would.
void overwrite_in_place(const StripeRef& s, const Key& k, uint32_t idx, const void* value,
                        size_t value_len, const EntryMeta& meta) {
    mark_dirty(s);
    StripeCtl* c = s.ctl;
    EntryHeader* e = s.entry(idx);
    // The caller checked that the timing and the flags keep their presence, so the key stays
    // where it is. The offsets are read once, before the stores into the header.
    const OptionalOffsets& at = kOptionalOffsets[optional_index(e)];
    const uint32_t stale_ms = meta.expires_ms ? meta.stale_ms : 0;  // timing_of, as scalars
    const uint64_t expires_ms = clamp_expires(meta.expires_ms);
    e->checksum = entry_checksum(k.hash, meta.flags, meta.l2_epoch, stale_ms, meta.compute_ms,
                                 value, value_len);
    SHMC_CRASH_POINT();
    c->data_bytes = c->data_bytes - e->value_len + value_len;
    e->value_len = uint32_t(value_len);
    set_entry_expires(e, expires_ms);
    auto* bytes = reinterpret_cast<uint8_t*>(e);
    if (e->has_timing) write_timing(bytes + at.timing, stale_ms, meta.compute_ms);
    if (e->has_flags) std::memcpy(bytes + at.flags, &meta.flags, kFlagsBytes);
    e->l2_epoch = meta.l2_epoch;
    SHMC_CRASH_POINT();
    if (value_len)  // value may be NULL for an empty value
        std::memcpy(bytes + at.data + k.len, value, value_len);
    SHMC_CRASH_POINT();
    if (expires_ms && (c->min_expiry_lb == 0 || expires_ms < c->min_expiry_lb))
        c->min_expiry_lb = expires_ms;
    policy_overwrite(s, e, idx);
    bump(c->stats.sets);
}

}  // namespace

int table_store(const StripeRef& s, const Key& k, const void* value, size_t value_len,
                const EntryMeta& meta, StoreMode mode, SlotBroker* broker) {
    StripeCtl* c = s.ctl;
    uint64_t now = 0;
    uint32_t prev;
    SlotGuard slot{s};
    // The timing is stored only when set.
    const EntryTiming timing_set = timing_of(meta);
    const uint32_t timing = timing_bytes(timing_set.stale_ms, timing_set.compute_ms);
    const uint32_t optional = optional_bytes(timing, meta.flags);
    uint32_t old = find(s, k, &prev);
    if (old != kNil) {
        const EntryHeader* e = s.entry(old);
        // No longer fresh counts as absent: an add (an L2 fill) may replace a stale value.
        // So does an L2 copy that may not be served (layout.h, L2Coherence).
        const bool dead = (entry_expires(e) && soft_expired(e, now = monotonic_ms())) ||
                          (e->l2_epoch && l2_unservable(s, e, now ? now : (now = monotonic_ms())));
        if (mode == StoreMode::kAdd && !dead) return SHMC_E_EXISTS;
        // One extent (not chained), the same optional fields, the same blocks.
        const uint32_t same_fields = (timing ? 1u : 0u) | (meta.flags ? 4u : 0u);
        if (optional_index(e) == same_fields &&
            contiguous_blocks(optional + k.len + e->value_len) ==
                contiguous_blocks(optional + k.len + value_len)) {
            overwrite_in_place(s, k, old, value, value_len, meta);
            if (dead) bump(c->stats.expirations);
            return 0;
        }
        // The new entry takes the old one's slot: an overwrite of a full cache evicts nothing.
        remove_entry(s, old, prev, false);
        slot.held = s.max_entries != 0;
        if (dead) bump(c->stats.expirations);
    }
    const uint64_t expires_ms = clamp_expires(meta.expires_ms);
    mark_dirty(s);  // before any reservation: a holder killed with a slot leaves a dirty stripe
    const uint64_t data = uint64_t(k.len) + value_len;
    bool reclaimed = false;
    auto reclaim_once = [&] {
        if (reclaimed) return false;
        reclaimed = true;
        // No entry of the stripe has a TTL: nothing to reclaim, and no clock read (about a
        // twentieth of an evicting store's time).
        if (c->min_expiry_lb == 0) return false;
        if (!now) now = monotonic_ms();
        return reclaim_expired(s, now) > 0;
    };
    // A slot under the host-wide limit: free if the count has room; else from this stripe
    // (expired entries first, then the policy's victim); else, this stripe being empty, from
    // another one. No eviction for the count happens while it is below the limit.
    uint64_t deadline_ms = 0;
    bool levelled = false;
    while (s.max_entries && !slot.held) {
        if (reserve_slot(s)) {
            slot.held = true;
        } else if (reclaim_once()) {
            continue;  // their slots went back to the count
        } else if (c->entries) {
            // Keep the stripes level: a stripe below its fair share (the limit over the
            // stripes, rounded down) takes the slot from a stripe above it, once per store, if
            // one can be had without waiting. Otherwise each stripe keeps for good the share it
            // happened to have when the count filled (binomial: about 100 to 155 entries for
            // 8192 over 64 stripes), and the small ones evict useful entries early. Once level,
            // stores evict from their own stripe: a second lock is taken only to level. The
            // search starts where the key's hash says, so a replay is deterministic.
            const uint64_t fair = s.max_entries / (uint64_t(s.stripe_mask) + 1);
            const bool level = broker && c->entries < fair && !levelled;
            levelled = levelled || level;
            if (evict_for_slot(s, broker, fair, level, k.hash >> 20) == SlotBroker::Outcome::kRetry)
                continue;
            slot.held = true;  // only once a victim is unlinked: a throw before leaves it counted
        } else {
            const auto r = broker
                               ? broker->evict_elsewhere_locked(s.index, &deadline_ms, k.hash >> 20)
                               : SlotBroker::Outcome::kGiveUp;
            if (r == SlotBroker::Outcome::kGiveUp)
                return fail(SHMC_E_LOCK_TIMEOUT,
                            "the cache holds max_entries (%llu) entries and none could be "
                            "evicted in time; treat as a failed store",
                            (unsigned long long)s.max_entries);
            slot.held = r == SlotBroker::Outcome::kHandedOver;
        }
    }
    uint32_t head;
    while ((head = alloc_entry(s, optional + data)) == kNil)
        if (!reclaim_once()) evict_one(s, false);

    // Fill the entry while nothing links to it.
    auto* e = reinterpret_cast<EntryHeader*>(s.block(head));
    const bool chained = e->chained;  // the allocator's, with the Extent after the header
    std::memset(static_cast<void*>(e), 0, sizeof *e);
    e->chained = chained;
    e->key_len = uint32_t(k.len);
    e->value_len = uint32_t(value_len);
    e->hash_tag = k.tag();
    set_entry_expires(e, expires_ms);
    e->has_timing = timing != 0;
    e->has_flags = meta.flags != 0;
    auto* bytes = reinterpret_cast<uint8_t*>(e);
    if (timing)
        write_timing(bytes + entry_timing_offset(e), timing_set.stale_ms, timing_set.compute_ms);
    if (meta.flags) std::memcpy(bytes + entry_flags_offset(e), &meta.flags, kFlagsBytes);
    e->l2_epoch = meta.l2_epoch;
    e->checksum = value_checksum(k.hash, e, value);
    const uint32_t total = entry_blocks(s, head);
    const char* src = k.data;
    for_each_data_span(s, head, 0, k.len, [&](uint8_t* p, uint64_t n) {
        std::memcpy(p, src, n);
        src += n;
    });
    src = static_cast<const char*>(value);
    for_each_data_span(s, head, k.len, value_len, [&](uint8_t* p, uint64_t n) {
        std::memcpy(p, src, n);
        src += n;
    });
    SHMC_CRASH_POINT();
    e->tag = kEntryTag;

    // Publish: bucket first (the entry becomes findable), then the eviction queue.
    const uint32_t b = bucket_of(s, k.tag());
    e->bucket_next = s.buckets[b];
    s.buckets[b] = head;
    slot.held = false;  // linked: the entry owns its slot now, whatever happens next
    SHMC_CRASH_POINT();
    policy_insert(s, head);
    c->entries += 1;
    c->used_blocks += total;
    c->data_bytes += data;
    if (expires_ms && (c->min_expiry_lb == 0 || expires_ms < c->min_expiry_lb))
        c->min_expiry_lb = expires_ms;
    bump(c->stats.sets);
    return 0;
}

int table_del(const StripeRef& s, const Key& k) {
    uint32_t prev;
    const uint32_t idx = find(s, k, &prev);
    if (idx == kNil) return SHMC_E_NOTFOUND;
    // A stale entry is removed too (a delete is often an invalidation), but it was already a
    // miss for the caller, so it reports NOTFOUND like an expired one.
    const uint64_t now = monotonic_ms();
    const bool dead = soft_expired(s.entry(idx), now) || l2_unservable(s, s.entry(idx), now);
    remove_entry(s, idx, prev);
    bump(dead ? s.ctl->stats.expirations : s.ctl->stats.deletes);
    return dead ? SHMC_E_NOTFOUND : 0;
}

int table_touch(const StripeRef& s, const Key& k, uint64_t fresh_until_ms) {
    uint32_t prev;
    const uint32_t idx = find(s, k, &prev);
    if (idx == kNil) return SHMC_E_NOTFOUND;
    EntryHeader* e = s.entry(idx);
    const uint64_t now = monotonic_ms();
    if (expired(e, now)) {
        remove_entry(s, idx, prev);
        bump(s.ctl->stats.expirations);
        return SHMC_E_NOTFOUND;
    }
    if (soft_expired(e, now)) return SHMC_E_NOTFOUND;      // absent for all but shmc_fetch; kept
    if (l2_unservable(s, e, now)) return SHMC_E_NOTFOUND;  // an L2 copy not vouched for
    // The stale window keeps its length; with no TTL there is nothing to be stale after.
    uint64_t expires_ms = 0;
    if (fresh_until_ms) {
        const uint32_t stale_ms = entry_timing(e).stale_ms;
        expires_ms = clamp_expires(
            fresh_until_ms > UINT64_MAX - stale_ms ? UINT64_MAX : fresh_until_ms + stale_ms);
    }
    // stale_ms is under the checksum, so it is kept even when expires_ms becomes 0 (never):
    // fresh_until() ignores it then. The low half alone is one aligned store, which a lock-free
    // reader sees whole and a dead writer leaves whole: no dirty mark needed. Both halves (once
    // in 49 days of monotonic time) are two stores, so the stripe is marked first, and
    // set_entry_expires orders them so that a writer killed between them never leaves the entry
    // a longer life than the old or the new expiry gives it.
    if (uint8_t(expires_ms >> 32) == e->expires_hi) {
        e->expires_lo = uint32_t(expires_ms);
    } else {
        mark_dirty(s);
        set_entry_expires(e, expires_ms);
    }
    if (expires_ms && (s.ctl->min_expiry_lb == 0 || expires_ms < s.ctl->min_expiry_lb))
        s.ctl->min_expiry_lb = expires_ms;
    return 0;
}

int table_incr(const StripeRef& s, const Key& k, int64_t delta, int64_t* result,
               SlotBroker* broker) {
    uint32_t prev;
    const uint32_t idx = find(s, k, &prev);
    if (idx == kNil) return SHMC_E_NOTFOUND;
    const EntryHeader* e = s.entry(idx);
    const uint64_t now = monotonic_ms();
    if (expired(e, now)) {
        remove_entry(s, idx, prev);
        bump(s.ctl->stats.expirations);
        return SHMC_E_NOTFOUND;
    }
    if (soft_expired(e, now)) return SHMC_E_NOTFOUND;      // stale: absent for incr, kept
    if (l2_unservable(s, e, now)) return SHMC_E_NOTFOUND;  // an L2 copy not vouched for
    char digits[24];
    if (e->value_len == 0 || e->value_len > 20) return SHMC_E_NOT_NUMBER;
    copy_entry_data(s, idx, e->key_len, e->value_len, digits);
    int64_t cur = 0;
    const char* end = digits + e->value_len;
    auto [p, ec] = std::from_chars(digits, end, cur);
    // A stored value outside int64 is "not a decimal int64"; SHMC_E_RANGE is for the sum.
    if (ec != std::errc() || p != end || digits[0] == '+') return SHMC_E_NOT_NUMBER;
    int64_t next;
    if (__builtin_add_overflow(cur, delta, &next)) return SHMC_E_RANGE;
    char out[24];
    const auto res = std::to_chars(out, out + sizeof out, next);
    if (result) *result = next;
    const EntryTiming t = entry_timing(e);
    const EntryMeta meta{entry_flags(e), entry_expires(e), t.stale_ms, t.compute_ms, e->l2_epoch};
    return table_store(s, k, out, size_t(res.ptr - out), meta, StoreMode::kSet, broker);
}

SlotEvict table_evict_for_slot(const StripeRef& s) {
    if (!s.ctl->entries) return SlotEvict::kNothing;
    // No clock read when no entry of the stripe has a TTL (as table_store's reclaim_once).
    if (s.ctl->min_expiry_lb && reclaim_expired(s, monotonic_ms()) > 0)
        return SlotEvict::kReclaimed;
    evict_one(s, true);
    return SlotEvict::kHandedOver;
}

namespace {

// The key of the entry at idx, as a pointer valid until the next call on this thread. The key is
// checked against the entry's hash tag and stripe: purge and scan act on keys they did not look
// up, so a damaged header must not make them report or remove a key nobody wrote.
const char* key_of(const StripeRef& s, uint32_t idx, const EntryHeader* e) {
    if (e->key_len == 0 || e->key_len > SHMC_MAX_KEY_LEN) corrupt("bad key length");
    const char* key;
    const uint32_t at = entry_data_offset(e);
    if (at + uint64_t(e->key_len) <= uint64_t(first_extent(e).nblocks) * kBlockSize) {
        key = reinterpret_cast<const char*>(e) + at;
    } else {
        thread_local std::string scratch;
        scratch.resize(e->key_len);
        copy_entry_data(s, idx, 0, e->key_len, scratch.data());
        key = scratch.data();
    }
    const uint64_t h = hash_key(key, e->key_len);
    if (uint32_t(h >> 32) != e->hash_tag || (h & s.stripe_mask) != s.index)
        corrupt("key does not match its hash");
    return key;
}

}  // namespace

void table_purge(const StripeRef& s, const char* pat, size_t plen, uint64_t* removed) {
    for_each_entry(s, [&](uint32_t idx) {
        const EntryHeader* e = s.entry(idx);
        if (glob_match(pat, plen, key_of(s, idx, e), e->key_len)) {
            remove_entry(s, idx, chain_prev(s, idx));
            ++*removed;  // counted as it happens: a rebuild mid-walk must not lose the count
            bump(s.ctl->stats.deletes);
        }
    });
}

void table_purge_flagged(const StripeRef& s, uint32_t mask, uint64_t* removed) {
    for_each_entry(s, [&](uint32_t idx) {
        if (entry_flags(s.entry(idx)) & mask) {
            remove_entry(s, idx, chain_prev(s, idx));
            ++*removed;
            bump(s.ctl->stats.deletes);
        }
    });
}

void table_purge_l2_dead(const StripeRef& s, uint8_t epoch8, uint64_t* removed) {
    for_each_entry(s, [&](uint32_t idx) {
        const EntryHeader* e = s.entry(idx);
        if (e->l2_epoch && e->l2_epoch != epoch8) {
            remove_entry(s, idx, chain_prev(s, idx));
            ++*removed;
            bump(s.ctl->stats.expirations);
        }
    });
}

uint64_t table_clear(const StripeRef& s) {
    const uint64_t n = s.ctl->entries;
    mark_dirty(s);
    reset_stripe(s);
    release_slots(s, n);  // after the reset: the chains are empty
    bump(s.ctl->stats.deletes, n);
    return n;
}

void table_collect(const StripeRef& s, const char* pat, size_t plen, std::vector<ScanItem>* out) {
    const uint64_t now = monotonic_ms();
    for_each_entry(s, [&](uint32_t idx) {
        const EntryHeader* e = s.entry(idx);
        // What a get would miss, scan does not list.
        if (soft_expired(e, now) || l2_unservable(s, e, now)) return;
        const char* key = key_of(s, idx, e);
        if (!glob_match(pat, plen, key, e->key_len)) return;
        out->push_back(ScanItem{std::string(key, e->key_len), uint32_t(e->value_len),
                                entry_expires(e) ? ttl_left(fresh_until(e), now) : -1});
    });
}

}  // namespace shmcache::shm
