// optimistic.h - the lock-free get: a read that takes no lock and writes no shared cache line.
//
// Each stripe's seq (layout.h, StripeCtl) is a seqlock word: every writer makes it odd before
// its first change and even (a new value) after its last, under the stripe lock. A reader notes
// an even seq, walks the chain and copies the value while writers may be changing them, then
// checks that seq did not move: if it did, what it read may be torn and it tries again; if not,
// it read one consistent state. Everything read before that check is treated as untrusted input:
// every index and length is bounds-checked against the stripe before it is followed, walks are
// bounded, and nothing read is acted on (beyond reading more of the stripe) until seq is checked.
// After the check the value's checksum is verified too, as the locked get does.
//
// A hit that would change eviction metadata (policy_hit_is_noop) returns kHitNeedsLock. The
// reader gives up and returns kLock whenever the lock is needed or simpler: the entry has expired or is a dead L2 copy (the
// locked get removes it), the entry spans several extents, the chain is long, the checksum does
// not match (damage: the locked get rebuilds), or seq kept moving for a few tries. A writer that
// was killed leaves seq odd: readers then take the lock, and the first one rebuilds the stripe.
#ifndef SHMCACHE_SHM_OPTIMISTIC_H
#define SHMCACHE_SHM_OPTIMISTIC_H

#include "shm/table.h"

namespace shmcache::shm {

enum class Optimistic {
    kHit,       // the value is in buf; counted as a hit
    kMiss,      // absent, stale, or an L2 copy not vouched for; counted as a miss
    kTooSmall,  // present, but longer than cap: out has its length and flags; nothing counted
    // A verified hit in buf and out, not counted, whose eviction metadata needs a write: do the
    // locked get, and serve this copy (counting the hit) only if the lock is not granted in
    // time, so that a stopped holder that is not mid-write never costs a hit.
    kHitNeedsLock,
    kLock,      // nothing decided and nothing counted: do the locked get
};

Optimistic optimistic_get(const StripeRef& s, const Key& k, void* buf, size_t cap, GetResult* out);

// Starts loading, before a store of k takes the stripe lock, the lines the store will write:
// the lock's, the key's bucket and the first extent of the entry at the head of its chain
// (usually the key itself: chains average under one entry). Another process wrote most of them
// last, so each must move between cores; issued together here, the moves overlap with the
// lock's own instead of following it one by one. Only hints: the bucket is read without the
// lock, as the optimistic get reads it, bounds-checked, and nothing read is acted on.
void prefetch_for_store(const StripeRef& s, const Key& k, size_t vlen);

}  // namespace shmcache::shm

#endif
