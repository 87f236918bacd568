// eviction.h - eviction metadata inside the segment, and the policies that use it.
//
// Every policy works on at most two intrusive doubly linked queues per stripe (links in the
// entry header), a per-entry counter byte, and for S3-FIFO a small table of ghost fingerprints.
// Policies that need a full ordering (LFU, TTL) sample the 8 oldest entries, as Redis does,
// rather than keep a sorted structure. See docs/architecture.md, "Eviction".
//
// REQUIRES (every function): the stripe lock held; functions that change links also require
// the stripe marked dirty.
#ifndef SHMCACHE_SHM_EVICTION_H
#define SHMCACHE_SHM_EVICTION_H

#include <cstdint>

#include "stripe.h"

namespace shmcache::shm {

void queue_push_head(const StripeRef& s, uint32_t q, uint32_t idx);
void queue_push_tail(const StripeRef& s, uint32_t q, uint32_t idx);
void queue_unlink(const StripeRef& s, uint32_t idx);

// Places a new entry in its queue. hash_tag lets S3-FIFO recognise a recently evicted key.
void policy_insert(const StripeRef& s, uint32_t idx);

// Records a hit. Needs the stripe dirty only for LRU (the one policy that relinks on a hit):
// policy_hit_relinks() says whether it will.
bool policy_hit_relinks(const StripeRef& s);
void policy_hit(const StripeRef& s, uint32_t idx);

// Chooses the entry to evict (moving others as the policy says) and returns it, still linked;
// kNil if the stripe is empty. by_count: the entry limit, not memory, is what binds.
uint32_t policy_victim(const StripeRef& s, bool by_count);

// Called before an entry is unlinked for any reason (keeps the SIEVE hand valid).
void policy_forget(const StripeRef& s, uint32_t idx);

// Calls fn(idx) for every linked entry, oldest first, bounded by the entry count; fn may
// remove the entry it is given.
template <class Fn>
void for_each_entry(const StripeRef& s, Fn&& fn) {
    const uint32_t limit = s.ctl->entries;  // fixed: fn may remove entries as we go
    for (uint32_t q = 0; q < kQueues; ++q) {
        uint32_t idx = s.ctl->q_tail[q];
        for (uint32_t steps = 0; idx != kNil; ++steps) {
            if (steps >= limit) corrupt("queue longer than the entry count");
            const uint32_t prev = s.entry(idx)->q_prev;
            fn(idx);
            idx = prev;
        }
    }
}

}  // namespace shmcache::shm

#endif
