// eviction.h - eviction metadata inside the segment, and the policies that use it.
//
// Every policy works on at most two intrusive doubly linked queues per stripe (links in the
// entry header), a per-entry counter byte, and a per-stripe policy table: S3-FIFO's ghost
// fingerprints, or W-TinyLFU's frequency sketch (shm/sketch.h).
// Policies that need a full ordering (LFU, TTL) sample the 8 oldest entries, as Redis does,
// rather than keep a sorted structure. See docs/architecture.md, "Eviction".
//
// REQUIRES (every function): the stripe lock held; functions that change links also require
// the stripe marked dirty.
#ifndef SHMCACHE_SHM_EVICTION_H
#define SHMCACHE_SHM_EVICTION_H

#include <cstdint>

#include "shm/stripe.h"

namespace shmcache::shm {
// policy_victim's worth_below when any victim will do; policy_worth's answer when the policy
// has no worth to compare (every worth is below it).
constexpr uint32_t kAnyWorth = UINT32_MAX;

// Whether a store of this stripe that must evict for a slot of the entry limit compares its
// victim with other stripes' (table.cpp, evict_for_slot): W-TinyLFU under a limit that leaves
// fewer than kSampleBelowShare entries a stripe, where a stripe is too small a cache for its
// policy alone.
constexpr uint64_t kSampleBelowShare = 64;
inline bool samples_other_stripes(const StripeRef& s) {
    return s.strategy == SHMC_STRATEGY_WTINYLFU && s.max_entries &&
           s.max_entries / (uint64_t(s.stripe_mask) + 1) < kSampleBelowShare;
}
// How many other stripes such a store looks at: 2, or 8 where the limit leaves fewer than
// kSampleWideBelowShare entries a stripe. The fewer entries a stripe holds, the less its own
// victim says, and the more its store gains from looking wider (bench/replay --full, 64
// stripes: cpp c=60 42.7 -> 47.1, c=120 74.4 -> 76.4, multi3 c=370 39.1 -> 39.4; mean distance
// to the bar -1.94 -> -1.79, no row down by more than 0.1). Sampling 8 everywhere scored the
// same over the table, at four times the added cost of an evicting store where shares are larger.
// 8 with a margin of 3 instead of 4 gained 0.05 point more on the table but lost 0.5 point at
// OLTP c=500, a size the table does not have.
constexpr uint64_t kSampleWideBelowShare = 8;
inline uint32_t stripes_to_sample(uint64_t max_entries, uint32_t n_stripes) {
    return max_entries / n_stripes < kSampleWideBelowShare ? 8 : 2;
}

void queue_push_head(const StripeRef& s, uint32_t q, uint32_t idx);
void queue_push_tail(const StripeRef& s, uint32_t q, uint32_t idx);
void queue_unlink(const StripeRef& s, uint32_t idx);

// Places a new entry in its queue. hash_tag lets S3-FIFO recognise a recently evicted key.
void policy_insert(const StripeRef& s, uint32_t idx);

// Records a hit. Needs the stripe dirty only for LRU (the one policy that relinks on a hit):
// policy_hit_relinks() says whether it will.
bool policy_hit_relinks(const StripeRef& s);
void policy_hit(const StripeRef& s, uint32_t idx);

// Whether a hit on the entry e (a copy, at block idx) would change nothing policy_hit writes,
// judged from values a lock-free reader took (shm/optimistic.h): the main queue's head. Needs
// no lock and writes nothing shared. False: take the lock for this hit (LRU: the entry is not
// at the head; LFU: the increment was rolled and won, and the locked policy_hit applies it as
// is). LRU stays exact: a hot set that is not all at the head takes the lock on its hits (the
// replay check holds the engine's LRU to the published LRU figures).
bool policy_hit_is_noop(const StripeRef& s, uint32_t idx, const EntryHeader& e, uint32_t q_head);
// Forgets a decision policy_hit_is_noop left for the locked hit (when that hit did not happen).
void clear_policy_decision();

// Chooses the entry to evict (moving others as the policy says) and returns it, still linked;
// kNil if the stripe is empty. by_count: the entry limit, not memory, is what binds.
// worth_below (another stripe's store sampling this one, see policy_worth): returns the victim
// only if it is worth less, else kNil, having made only the moves the policy makes anyway;
// kNil at once for the policies without a worth.
uint32_t policy_victim(const StripeRef& s, bool by_count, uint32_t worth_below = kAnyWorth);

// What keeping the linked entry idx is worth to the policy, comparable between the stripes of
// the segment (W-TinyLFU: its frequency estimate; each stripe's sketch counts its share of the
// keys, and ages by its own entries, see tiny_record), so that a store may evict another
// stripe's victim instead of its own when that one is worth less. kAnyWorth for the policies
// that do not compare entries across stripes.
uint32_t policy_worth(const StripeRef& s, uint32_t idx);
// Called before an entry is unlinked for any reason (keeps the SIEVE hand valid).
void policy_forget(const StripeRef& s, uint32_t idx);

// Calls fn(idx) for every linked entry, oldest first; fn may remove the entry it is given.
// The walk proves it saw every entry exactly once (bounded steps, each entry in the queue its
// header names, and as many visits as the stripe has entries): damaged queues must not make a
// purge or an expiry scan silently skip entries, so they raise StripeCorrupt (and a rebuild).
template <class Fn>
void for_each_entry(const StripeRef& s, Fn&& fn) {
    const uint32_t limit = s.entry_bound();  // fixed: fn may remove entries as we go
    uint32_t visited = 0;
    for (uint32_t q = 0; q < kQueues; ++q) {
        uint32_t idx = s.ctl->q_tail[q];
        while (idx != kNil) {
            if (visited >= limit) corrupt("queues longer than the entry count");
            const EntryHeader* e = s.entry(idx);
            if (e->queue != q) corrupt("entry in a queue it does not name");
            const uint32_t prev = e->q_prev;
            fn(idx);
            ++visited;
            idx = prev;
        }
    }
    if (visited != limit) corrupt("queues miss entries");
}

}  // namespace shmcache::shm

#endif
