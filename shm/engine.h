// engine.h - the engine as a whole: one attached segment and the operations over its stripes.
//
// Every single-key operation hashes the key, takes exactly one stripe lock through locked(),
// and runs a table_* function. locked() is where the recovery protocol lives: a lock whose
// holder died, or a stripe left dirty, is rebuilt before use; a StripeCorrupt thrown by a bounds
// check rebuilds the stripe and retries the operation once. Nothing here throws to the caller.
#ifndef SHMCACHE_SHM_ENGINE_H
#define SHMCACHE_SHM_ENGINE_H

#include <shmcache/shmcache.h>

#include <atomic>
#include <memory>
#include <vector>

#include "shm/flight.h"
#include "shm/segment.h"
#include "shm/stripe.h"
#include "shm/table.h"

namespace shmcache::shm {

// Whether nothing in g moved (Engine::fill). REQUIRES: the key's stripe lock held.
bool fill_guard_holds(const SegmentHeader& h, const FillGuard& g);

// The engine is the SlotBroker of its stores (table.h): under a host-wide entry limit, a store
// may get its slot from an entry of another stripe (its own empty, or levelling).
class Engine final : private SlotBroker {
public:
    static int open(const char* name, const shmc_options* opts, std::unique_ptr<Engine>* out);

    int get(const void* key, size_t klen, void* buf, size_t cap, size_t* value_len, uint32_t* flags,
            int64_t* ttl_left_ms);
    int store(const void* key, size_t klen, const void* value, size_t vlen, uint32_t flags,
              uint64_t ttl_ms, StoreMode mode);
    // fill: a store (kAdd for a copy of an L2 hit) that gives up (SHMC_E_EXISTS) if anything in
    // guard moved, checked under the stripe lock: copies an L2 value into L1 without ever
    // reinstating a value invalidated since it was read. The entry is an L2 copy of guard's
    // epoch (layout.h, L2Coherence); nothing else is.
    int fill(const void* key, size_t klen, const void* value, size_t vlen, uint32_t flags,
             uint64_t ttl_ms, const FillGuard& guard, StoreMode mode = StoreMode::kAdd);
    // Notes what a later fill of key must find unchanged (call before asking Redis).
    FillGuard fill_guard(const void* key, size_t klen) const;
    // The key's slot in L2Coherence::key_seq.
    uint32_t key_slot(const void* key, size_t klen) const;
    // Removes key for an invalidation: bumps its invalidation sequence and deletes it in one
    // locked step, so that a fill in flight is not stored, and a writer that sees the bump
    // (Tiers::await_own_echo) knows the delete is done.
    int invalidate_key(const void* key, size_t klen);
    // The sequence bump alone (a write to L2 only: L1 keeps its copy, but no fill in flight of
    // the old value is stored).
    void bump_key_seq(const void* key, size_t klen) {
        coherence().key_seq[key_slot(key, klen)].fetch_add(1, std::memory_order_seq_cst);
    }
    L2Coherence& coherence() const { return seg_->header()->coherence; }
    // Makes every L2 copy dead at once (O(1); layout.h, L2Coherence) and, every
    // kEpochSweepEvery bumps, removes the dead ones stripe by stripe. Returns the new epoch.
    // Called by the host's subscriber only.
    uint64_t bump_l2_epoch();
    int del(const void* key, size_t klen);
    int touch(const void* key, size_t klen, uint64_t ttl_ms);
    int incr(const void* key, size_t klen, int64_t delta, int64_t* result);
    int purge(const void* pat, size_t plen, uint64_t* removed);
    int scan(const void* pat, size_t plen, shmc_scan_fn fn, void* ctx);
    int clear(uint64_t* removed);
    // Removes every entry with any flag bit of mask set, stripe by stripe.
    int purge_flagged(uint32_t mask, uint64_t* removed);
    L2Shared& l2_shared() const { return seg_->header()->l2; }
    const std::string& name() const { return seg_->name(); }
    uint32_t max_value_len() const { return g_.max_value_len; }
    // Single flight (flight.cpp, docs/stampede.md). fetch looks key up and, on a miss, takes
    // the key's lease or waits (bounded by p.wait_ms) for the caller that holds it.
    // fetch_complete stores a computed value and releases the lease (0: none) in one locked
    // step; the lease is released even if the store fails. lease_release releases it alone
    // (abandoned: counted as a failed computation). lease_renew moves a held lease's deadline
    // (lib/l2 keeps its lease while it waits for another host's value).
    int fetch(const void* key, size_t klen, void* buf, size_t cap, const FetchParams& p,
              FetchResult* out);
    int fetch_complete(const void* key, size_t klen, const void* value, size_t vlen,
                       const FetchStore& st, uint64_t lease);
    int lease_release(const void* key, size_t klen, uint64_t lease, bool abandoned);
    int lease_renew(const void* key, size_t klen, uint64_t lease, uint32_t lease_ms);
    void flight_count(FlightCounter c, uint64_t n = 1) {
        seg_->header()->flight.counters[c].fetch_add(n, std::memory_order_relaxed);
    }
    int flight_stats(shmc_flight_stats* out) const;

    int stats(shmc_stats* out) const;
    int stripe_stats(uint32_t stripe, shmc_stats* out) const;
    int info(shmc_info* out) const;
    // Checks and repairs every stripe, then recounts the host-wide entry count (a limited
    // segment): after a check without skipped stripes, the count equals the live entries.
    int check(shmc_check_report* out);
    // The host-wide entry count (live entries plus reservations in flight; 0 with no limit).
    uint64_t entry_count() const;

    // Test hook (test_hooks.h): take the stripe lock of key and never return.
    [[noreturn]] void hold_lock_forever(const void* key, size_t klen, bool dirty);

private:
    Engine() = default;
    int check_key(const void* key, size_t klen) const;
    int check_value(const void* value, size_t vlen) const;  // NULL with a length, or too large
    Key make_key(const void* key, size_t klen) const;
    uint32_t stripe_of(const Key& k) const { return uint32_t(k.hash) & (g_.n_stripes - 1); }
    void note_fork();
    void add_stripe_stats(uint32_t i, shmc_stats* out) const;
    // Runs fn(stripe) with the stripe's lock held and the recovery protocol applied.
    template <class Fn>
    int locked(uint32_t stripe, Fn&& fn);
    // SlotBroker: evicts one entry of another stripe for a store holding stripe own.
    Outcome evict_elsewhere_locked(uint32_t own, uint64_t* deadline_ms, uint64_t seed) override;
    Outcome evict_from_richer_locked(uint32_t own, uint32_t richer_than, uint64_t seed) override;
    // One pass over the stripes other than own, from start, trying those that appear to hold
    // more than richer_than entries (evict_from_other_locked); kGiveUp if none made room.
    Outcome evict_pass_locked(uint32_t own, uint32_t start, uint32_t richer_than);
    // REQUIRES: the lock of some other stripe held. Tries stripe j's lock (never waits) and, if
    // it gets it, makes room there (table_evict_for_slot).
    SlotEvict evict_from_other_locked(uint32_t j);
    // Makes the host-wide entry count equal to the stripes' entries, holding every stripe lock
    // (taken in index order, each with the lock timeout). Only if a rebuild asked for it (the
    // segment's recount flag), unless force. Returns false if a lock could not be had in time;
    // the flag then stays set and the next attempt waits a while. REQUIRES: no lock held.
    bool recount_entries(bool force);

    std::unique_ptr<Segment> seg_;
    Geometry g_{};
    uint32_t lock_timeout_ms_ = 50;
    bool optimistic_ = true;  // gets try shm/optimistic.h before the lock
    std::vector<StripeRef> stripes_;
    std::atomic<uint64_t> fork_gen_seen_{0};
    // This process's lookup counters (Segment::lookup_counters), read by every StripeRef.
    ProcessCounters* counters_ = nullptr;
};

}  // namespace shmcache::shm

#endif
