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

// W-TinyLFU: the hits an entry counts itself before the policy next looks at it; beyond, hits
// are lock-free no-ops (policy_hit_is_noop).
constexpr uint8_t kTinyFreqMax = 3;

void queue_push_head(const StripeRef& s, uint32_t q, uint32_t idx);
void queue_push_tail(const StripeRef& s, uint32_t q, uint32_t idx);
void queue_unlink(const StripeRef& s, uint32_t idx);

// Places a new entry in its queue. hash_tag lets S3-FIFO recognise a recently evicted key.
void policy_insert(const StripeRef& s, uint32_t idx);

// Records a get's hit. It needs the stripe dirty only when it relinks the entry (LRU: not at
// the head; W-TinyLFU: a window or protected entry not at its queue's head):
// policy_hit_relinks() says whether it will, so that other locked hits do not open a write
// section that readers would retry on.
bool policy_hit_relinks(const StripeRef& s, uint32_t idx);
void policy_hit(const StripeRef& s, uint32_t idx);
// Records an overwrite in place of the entry e at idx: a use, as a hit is. W-TinyLFU counts it
// but does not move the entry: relinking would write two neighbours' lines, which the in-place
// set exists to avoid (table.cpp; in one noisy comparison bench_engine's sets of a million keys
// took 670-730 ns p50 with the move, 560 without; the replay has no overwrites: every store
// there is a miss). Its count is inline: a call to policy_hit and its second check of the entry
// cost 31 of a hot in-place set's ~920 instructions (callgrind). The other strategies record
// it as a hit.
inline void policy_overwrite(const StripeRef& s, EntryHeader* e, uint32_t idx) {
    if (s.strategy != SHMC_STRATEGY_WTINYLFU) return policy_hit(s, idx);
    if (e->freq < kTinyFreqMax) ++e->freq;
}

// Whether a hit on the entry e (a copy, at block idx) would change nothing policy_hit writes,
// judged from values a lock-free reader took (shm/optimistic.h): the main queue's head. Needs
// no lock and writes nothing shared. False: take the lock for this hit (LRU: the entry is not
// at the head; LFU: the increment was rolled and won, and the locked policy_hit applies it as
// is). LRU stays exact: a hot set that is not all at the head takes the lock on its hits (the
// replay check holds the engine's LRU to the published LRU figures).
// The default strategy's test is inline, the others' (policy_hit_is_noop_other) are not: the
// call cost 13 of a hot get's ~600 instructions (callgrind).
bool policy_hit_is_noop_other(const StripeRef& s, uint32_t idx, const EntryHeader& e,
                              uint32_t q_head);
inline bool policy_hit_is_noop(const StripeRef& s, uint32_t idx, const EntryHeader& e,
                               uint32_t q_head) {
    if (s.strategy == SHMC_STRATEGY_WTINYLFU) return e.freq >= kTinyFreqMax;
    return policy_hit_is_noop_other(s, idx, e, q_head);
}
// Forgets a decision policy_hit_is_noop left for the locked hit (when that hit did not happen).
void clear_policy_decision();

// Chooses the entry to evict (moving others as the policy says) and returns it, still linked;
// kNil if the stripe is empty. by_count: the entry limit, not memory, is what binds.
uint32_t policy_victim(const StripeRef& s, bool by_count);

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
