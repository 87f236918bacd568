// table.h - the operations of one stripe: its hash chains, entries and counters.
//
// REQUIRES (every function): the stripe lock held. Functions mark the stripe dirty themselves
// (mark_dirty) before their first structural write; the caller clears the mark after the last
// write and before unlocking (see engine.cpp).
#ifndef SHMCACHE_SHM_TABLE_H
#define SHMCACHE_SHM_TABLE_H

#include <shmcache/shmcache.h>

#include <cstdint>
#include <string>
#include <vector>

#include "shm/eviction.h"
#include "shm/hash.h"
#include "shm/stripe.h"

namespace shmcache::shm {

// A key with its hash. The low bits of hash choose the stripe, its high 32 bits (the tag) choose
// the bucket and are stored in the entry.
struct Key {
    const char* data;
    size_t len;
    uint64_t hash;
    uint32_t tag() const { return uint32_t(hash >> 32); }
};

// When the entry stops being fresh: its expiry - stale_ms (0: never). Clamped, so that a damaged
// stale_ms larger than expires_ms makes the entry stale at once rather than fresh forever.
inline uint64_t fresh_until(const EntryHeader* e) {
    const uint64_t expires_ms = entry_expires(e);
    if (!expires_ms) return 0;
    const uint32_t stale_ms = entry_timing(e).stale_ms;
    return expires_ms > stale_ms ? expires_ms - stale_ms : 1;
}
inline bool soft_expired(const EntryHeader* e, uint64_t now) {
    const uint64_t f = fresh_until(e);
    return f && now >= f;
}

// Remaining TTL of an unexpired entry, clamped: a TTL near UINT64_MAX must not turn negative.
inline int64_t ttl_left(uint64_t expires_ms, uint64_t now) {
    const uint64_t left = expires_ms - now;
    return left > uint64_t(INT64_MAX) ? INT64_MAX : int64_t(left);
}

// Opens a write section (docs/architecture.md, "Optimistic reads"): the dirty mark first (the
// recovery protocol), then seq made odd, so that odd implies dirty and lock-free readers stop
// trusting what they read. Idempotent: called before each structural write of an operation.
inline void mark_dirty(const StripeRef& s) {
    StripeCtl* c = s.ctl;
    if (!c->dirty.load(std::memory_order_relaxed))
        c->dirty.store(1, std::memory_order_seq_cst);  // visible before any later store
    const uint32_t v = c->seq.load(std::memory_order_relaxed);
    if (!(v & 1)) {
        c->seq.store(v + 1, std::memory_order_relaxed);
        // The seqlock writer's fence: the odd value is visible before any store that follows.
        std::atomic_thread_fence(std::memory_order_release);
    }
}

// Closes the write section, if one is open: seq to the next even value (so that a reader that
// started before the section fails its validation), then the dirty mark cleared.
inline void end_write(StripeCtl* c) {
    if (!c->dirty.load(std::memory_order_relaxed)) return;
    const uint32_t v = c->seq.load(std::memory_order_relaxed);
    c->seq.store((v | 1) + 1, std::memory_order_release);
    c->dirty.store(0, std::memory_order_release);
}

// Lookups are counted per process (layout.h, ProcessCounters); relaxed fetch_add, since the
// process's threads share its slot.
inline void count_hit(const StripeRef& s, uint64_t n = 1) {
    s.lookup_counters().hits.fetch_add(n, std::memory_order_relaxed);
}
inline void count_miss(const StripeRef& s, uint64_t n = 1) {
    s.lookup_counters().misses.fetch_add(n, std::memory_order_relaxed);
}

// Relaxed load + store: counters are only written under the stripe lock.
inline void bump(std::atomic<uint64_t>& c, uint64_t n = 1) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

struct GetResult {
    uint32_t value_len;
    uint32_t flags;
    int64_t ttl_left_ms;  // -1: no TTL
};

// A stale entry is a miss here (and is left in place for shmc_fetch); ttl_left_ms is the time
// left until the entry stops being fresh.
int table_get(const StripeRef& s, const Key& k, void* buf, size_t cap, GetResult* out);

// What table_peek found.
enum class Freshness { kAbsent, kFresh, kStale };
struct PeekResult {
    Freshness state = Freshness::kAbsent;
    uint32_t value_len = 0;
    uint32_t flags = 0;
    uint32_t compute_ms = 0;
    uint64_t fresh_until = 0;  // 0: never stops being fresh
};

// The single-flight look-up: like table_get, but a stale entry is returned as kStale (with its
// value) instead of a miss. Copies the value into buf when it fits; SHMC_E_BUFFER_TOO_SMALL
// (with value_len set) when it does not. Counts a hit or a miss only if count is set, so that a
// waiter polling for another caller's value is counted once.
int table_peek(const StripeRef& s, const Key& k, uint64_t now, void* buf, size_t cap, bool count,
               PeekResult* out);

enum class StoreMode { kSet, kAdd };

// Where a store gets a slot of the host-wide entry limit from another stripe when the count is
// full: its own stripe has no entry to evict, or is below its fair share (levelling). The
// engine evicts there, because only the engine knows the other stripes and how to lock them.
class SlotBroker {
public:
    enum class Outcome {
        kHandedOver,  // an entry of another stripe was evicted; its slot is now the caller's
        kRetry,       // nothing handed over, but the count may have room now: reserve again
        kGiveUp,      // nothing could be evicted in time (or a recount is due first)
    };
    // REQUIRES: the lock of stripe own held. Never waits for another stripe's lock (it only
    // tries them), so two stores that both look elsewhere cannot deadlock. *deadline_ms (0 on
    // the store's first call; set by the broker) bounds the whole store, however many calls.
    // The search starts where seed says (the key's hash: stores of empty stripes spread their
    // evictions over the others, and a replay is deterministic).
    virtual Outcome evict_elsewhere_locked(uint32_t own, uint64_t* deadline_ms, uint64_t seed) = 0;
    // Levelling (table_store): one pass over the other stripes, from a start given by seed,
    // trying only those that appear to hold more than richer_than entries and evicting from the
    // first one whose lock it gets. kGiveUp if none (the caller evicts from its own stripe).
    // Never waits for a lock either.
    virtual Outcome evict_from_richer_locked(uint32_t own, uint32_t richer_than,
                                             uint64_t seed) = 0;

protected:
    ~SlotBroker() = default;
};

// What an entry records besides its key and value.
struct EntryMeta {
    uint32_t flags = 0;
    uint64_t expires_ms = 0;  // absolute monotonic ms when the entry is gone; 0: never
    uint32_t stale_ms = 0;    // the end of its life that only shmc_fetch serves (stale)
    uint32_t compute_ms = 0;  // compute time recorded for XFetch
    uint8_t l2_epoch = 0;     // 0, or epoch8() of the coherence epoch of an L2 copy
};

// An entry's l2_epoch: 0 for every entry but the L2 copies made by lib/l2 (so that an
// application's own use of the SHMC_FLAG_FROM_L2 bit in plain sets changes nothing), else
// 1 + epoch % 255.
inline uint8_t epoch8(uint64_t epoch) { return uint8_t(1 + epoch % 255); }
// Every this many epoch bumps, dead copies are swept (Engine::bump_l2_epoch); less than half of
// epoch8()'s period, so that each copy meets a sweep that removes it before its byte comes round.
constexpr uint64_t kEpochSweepEvery = 128;

// What a copy of an L2 value must find unchanged, under the stripe lock, to be stored (layout.h,
// L2Coherence): noted before Redis is asked.
struct FillGuard {
    uint64_t seq = 0;       // L2Shared::inval_seq (purges)
    uint64_t epoch = 0;     // L2Coherence::epoch
    uint32_t slot = 0;      // the key's L2Coherence::key_seq slot
    uint32_t slot_seq = 0;  // and its value
};

// Whether the L2 copy e (l2_epoch != 0) may be served now (layout.h, L2Coherence): kDead once
// its epoch is over (remove it), kSuspended while the subscriber's lease has lapsed (keep it).
enum class L2Copy { kServable, kSuspended, kDead };
inline L2Copy l2_copy_state(const StripeRef& s, const EntryHeader* e, uint64_t now) {
    const L2Coherence* c = s.coherence;
    if (e->l2_epoch != epoch8(c->epoch.load(std::memory_order_acquire))) return L2Copy::kDead;
    if (now >= c->valid_until_ms.load(std::memory_order_acquire)) return L2Copy::kSuspended;
    return L2Copy::kServable;
}
inline bool l2_unservable(const StripeRef& s, const EntryHeader* e, uint64_t now) {
    return e->l2_epoch && l2_copy_state(s, e, now) != L2Copy::kServable;
}

// kAdd stores only if the key is absent or no longer fresh (a stale entry counts as absent).
// Under a host-wide entry limit a new key needs a slot of the count (EntryLimitShared): it
// reserves one if the count is below the limit; else it reclaims expired entries of its stripe,
// or evicts one of its stripe's entries and takes over its slot, or, its stripe being empty, asks
// broker (NULL: fail) for one from another stripe. A replaced key keeps its entry's slot.
// SHMC_E_LOCK_TIMEOUT if no slot could be had.
int table_store(const StripeRef& s, const Key& k, const void* value, size_t value_len,
                const EntryMeta& meta, StoreMode mode, SlotBroker* broker);
int table_del(const StripeRef& s, const Key& k);
// Sets a new freshness deadline (fresh_until_ms, 0: never); the entry keeps its stale window.
int table_touch(const StripeRef& s, const Key& k, uint64_t fresh_until_ms);
int table_incr(const StripeRef& s, const Key& k, int64_t delta, int64_t* result,
               SlotBroker* broker);

// What table_evict_for_slot did.
enum class SlotEvict { kNothing, kReclaimed, kHandedOver };
// Makes room under the entry limit for a store that holds another stripe's lock: removes this
// stripe's expired entries if any may exist (their slots go back to the count: kReclaimed), else
// evicts one entry by the policy and keeps its slot for the caller (kHandedOver). kNothing if
// the stripe is empty.
SlotEvict table_evict_for_slot(const StripeRef& s);
// Removes the entries whose keys match the (validated) glob, adding each to *removed.
void table_purge(const StripeRef& s, const char* pat, size_t plen, uint64_t* removed);
// Removes the entries with any of the flag bits in mask set, adding each to *removed.
void table_purge_flagged(const StripeRef& s, uint32_t mask, uint64_t* removed);
// Removes every L2 copy (l2_epoch != 0) whose l2_epoch is not epoch8.
void table_purge_l2_dead(const StripeRef& s, uint8_t epoch8, uint64_t* removed);
uint64_t table_clear(const StripeRef& s);

struct ScanItem {
    std::string key;
    uint32_t value_len;
    int64_t ttl_left_ms;
};
void table_collect(const StripeRef& s, const char* pat, size_t plen, std::vector<ScanItem>* out);

// Copies len bytes of the entry's key+value data, starting at offset off, into dst.
void copy_entry_data(const StripeRef& s, uint32_t head, uint64_t off, uint64_t len, void* dst);

}  // namespace shmcache::shm

#endif
