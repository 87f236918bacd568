// lease.h - a stripe's lease slots: which caller on the host computes a key's value right now.
//
// A lease is the right to compute one key's value while the host's other callers wait for it
// (docs/stampede.md). Each stripe has kLeaseSlots slots in its control block (layout.h,
// LeaseSlot), so a lease costs no allocation and is guarded by the lock that guards the key.
// A slot is found by the key's full 64-bit hash: two keys with the same hash would share a lease
// (wait for each other, never longer than the wait bound), a 2^-64 event per pair.
//
// A lease ends when its owner releases it (a value stored, or the computation abandoned), or is
// taken over by the next caller that wants it once its deadline has passed or its owner is known
// to be gone. Whether the owner lives is a system call (kill, and /proc for zombies), so it is
// never made under the lock: the slot records when a waiter last checked, so that one waiter per
// millisecond checks, outside the lock, and claims the lease with the token it saw.
//
// A token names one grant: generation << 32 | slot. A release or renewal with an old token (the
// lease was taken over meanwhile) changes nothing, so a slow owner never ends its successor's
// lease. Bits 8-31 are free for the layers above (lib/ marks a held Redis lock there).
//
// REQUIRES (every *_locked function): the stripe lock held. None marks the stripe dirty: every
// change publishes with one store of owner_pid (see LeaseSlot), so a holder killed mid-change
// leaves each slot free or complete.
#ifndef SHMCACHE_SHM_LEASE_H
#define SHMCACHE_SHM_LEASE_H

#include <cstdint>

#include "shm/stripe.h"

namespace shmcache::shm {

constexpr uint64_t kTokenSlotMask = 0xff;
constexpr uint64_t kTokenUserBits = 0xffffff00ull;  // ignored here; lib/ may set them
// A waiter checks that a lease's owner lives at most this often (per lease, host-wide).
constexpr uint64_t kOwnerCheckEveryMs = 1;

inline uint64_t lease_token(uint32_t slot, uint32_t generation) {
    return uint64_t(generation) << 32 | slot;
}

enum class Acquire {
    kGranted,  // the caller holds the lease now
    kHeld,     // another caller holds it: wait
    kNoSlot,   // every slot of the stripe is held by other keys' leases
};

struct AcquireResult {
    Acquire kind = Acquire::kNoSlot;
    uint64_t token = 0;        // kGranted: the caller's; kHeld: the owner's
    bool took_over = false;    // kGranted: from an owner that was gone or past its deadline
    int32_t owner_pid = 0;     // kHeld
    bool check_owner = false;  // kHeld: this caller should check, unlocked, that owner_pid lives
};

// Grants the lease on hash to this process, takes it over, or reports who holds it.
// gone_token: a grant whose owner this caller found gone (process_gone) since it last looked,
// or 0; it is taken over at once if it is still the current grant.
AcquireResult lease_acquire_locked(const StripeRef& s, uint64_t hash, uint64_t now,
                                   uint32_t lease_ms, uint64_t gone_token);

// True if a caller holds the lease on hash and its deadline is ahead (whether the owner still
// lives is not checked: a system call). Changes nothing.
bool lease_held_locked(const StripeRef& s, uint64_t hash, uint64_t now);

// Ends the grant named by token, if it is still the current one for hash. True if it was.
bool lease_release_locked(const StripeRef& s, uint64_t hash, uint64_t token);

// A lease ended by a stored value leaves its slot free but remembering the key's hash for
// kFilledGraceMs: its waiters look for the value at most kMaxPollUs (2 ms) apart, and the
// eviction policy keeps a value the slot remembers (lease_recently_filled_locked) instead of
// letting a burst of other stores push it out before they see it. Five poll intervals, so that
// a waiter descheduled for a while still finds it; the slot is reusable at once (a grant prefers
// slots that remember nothing).
constexpr uint64_t kFilledGraceMs = 10;

// lease_release_locked for an owner that stored the key's value: the slot remembers hash until
// now + kFilledGraceMs.
bool lease_complete_locked(const StripeRef& s, uint64_t hash, uint64_t token, uint64_t now);

// True if a free slot remembers a value stored for a key whose hash's high 32 bits are
// hash_tag (an entry's EntryHeader::hash_tag) less than kFilledGraceMs ago. Reads the clock
// only when some slot's hash matches.
bool lease_recently_filled_locked(const StripeRef& s, uint32_t hash_tag);

// Moves the deadline of the grant named by token to now + lease_ms, if it is still current.
bool lease_renew_locked(const StripeRef& s, uint64_t hash, uint64_t token, uint64_t now,
                        uint32_t lease_ms);

// For rebuild: frees every slot whose owner is gone or whose fields cannot be a lease (an
// owner pid below 0, a deadline further than kMaxLeaseMs away). Returns how many it freed.
uint32_t lease_sanitize_locked(const StripeRef& s, uint64_t now);

// For check: why some slot cannot be a lease, or nullptr. An owner that died is not damage:
// its lease is taken over at the next look.
const char* lease_problem_locked(const StripeRef& s, uint64_t now);

// Leases of a stripe, read without the lock (a snapshot of each slot, not of the stripe).
struct LeaseCensus {
    uint64_t held = 0;         // owner alive and deadline ahead
    uint64_t reclaimable = 0;  // owner gone or deadline passed: the next caller takes it
};
void lease_census(const StripeRef& s, uint64_t now, LeaseCensus* out);

// True if no process pid exists or it is a zombie (dead, not yet reaped by its parent). A pid
// reused by an unrelated process reads as alive; the deadline bounds that case.
bool process_gone(int32_t pid);

}  // namespace shmcache::shm

#endif
