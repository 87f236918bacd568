// lease.cpp - see lease.h.
#include "shm/lease.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "shm/clock.h"

namespace shmcache::shm {

namespace {

// owner_pid is the slot's publication point: stored last on a grant (release order keeps the
// compiler from sinking the other fields below it) and read without the lock by lease_census.
int32_t owner_of(const LeaseSlot& l) {
    return std::atomic_ref<const int32_t>(l.owner_pid).load(std::memory_order_relaxed);
}
void set_owner(LeaseSlot& l, int32_t pid) {
    std::atomic_ref<int32_t>(l.owner_pid).store(pid, std::memory_order_release);
}
uint64_t deadline_of(const LeaseSlot& l) {
    return std::atomic_ref<const uint64_t>(l.deadline_ms).load(std::memory_order_relaxed);
}

// A deadline passed, or one too far away to have been written by a grant (damage): either way
// the lease may be taken.
bool overdue(const LeaseSlot& l, uint64_t now) {
    const uint64_t d = deadline_of(l);
    return now >= d || d - now > kMaxLeaseMs;
}

// A free slot that still remembers a value stored for its key (lease_complete_locked). A
// deadline more than the grace away is an abandoned lease's, or damage: it remembers nothing.
bool remembers(const LeaseSlot& l, uint64_t now) {
    const uint64_t d = deadline_of(l);
    return d > now && d - now <= kFilledGraceMs;
}

void grant(LeaseSlot& l, uint32_t slot, uint64_t hash, uint64_t now, uint32_t lease_ms,
           uint64_t* token) {
    uint32_t gen = l.generation + 1;
    if (gen == 0) gen = 1;  // a token is never 0: 0 means "no lease" in the C ABI
    l.key_hash = hash;
    std::atomic_ref<uint64_t>(l.deadline_ms).store(now + lease_ms, std::memory_order_relaxed);
    l.checked_ms = now;
    l.generation = gen;
    set_owner(l, int32_t(getpid()));
    *token = lease_token(slot, gen);
}

bool is_zombie(int32_t pid) {
    char path[40];
    std::snprintf(path, sizeof path, "/proc/%d/stat", int(pid));
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;  // no /proc: kill() alone decides
    char buf[512];
    const ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return false;
    buf[n] = '\0';
    // "pid (comm) S ...": comm may itself hold ')' and spaces, so take the last ')'.
    const char* p = std::strrchr(buf, ')');
    return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

}  // namespace

bool process_gone(int32_t pid) {
    if (pid <= 0) return true;
    if (kill(pid, 0) != 0 && errno == ESRCH) return true;  // EPERM: alive, another user's
    return is_zombie(pid);
}

AcquireResult lease_acquire_locked(const StripeRef& s, uint64_t hash, uint64_t now,
                                   uint32_t lease_ms, uint64_t gone_token) {
    AcquireResult r;
    LeaseSlot* slots = s.ctl->leases;
    int free_slot = -1, overdue_slot = -1;
    for (uint32_t i = 0; i < kLeaseSlots; ++i) {
        LeaseSlot& l = slots[i];
        const int32_t owner = owner_of(l);
        if (owner <= 0) {  // free (below 0 is damage: as good as free)
            // The first free slot, or a later one that, unlike it, remembers no value.
            if (free_slot < 0 || (remembers(slots[free_slot], now) && !remembers(l, now)))
                free_slot = int(i);
            continue;
        }
        if (l.key_hash != hash) {
            if (overdue_slot < 0 && overdue(l, now)) overdue_slot = int(i);
            continue;
        }
        const uint64_t current = lease_token(i, l.generation);
        if (overdue(l, now) || (gone_token & ~kTokenUserBits) == current) {
            grant(l, i, hash, now, lease_ms, &r.token);
            r.kind = Acquire::kGranted;
            r.took_over = true;
            return r;
        }
        r.kind = Acquire::kHeld;
        r.token = current;
        r.owner_pid = owner;
        if (now >= l.checked_ms + kOwnerCheckEveryMs || l.checked_ms > now) {
            l.checked_ms = now;
            r.check_owner = true;
        }
        return r;
    }
    // No lease on this key. A free slot first; else one whose deadline passed (its owner
    // overran or died: whoever wants that key next gets a new lease, bounded the same way).
    const int slot = free_slot >= 0 ? free_slot : overdue_slot;
    if (slot < 0) return r;  // kNoSlot
    grant(slots[slot], uint32_t(slot), hash, now, lease_ms, &r.token);
    r.kind = Acquire::kGranted;
    return r;
}

bool lease_held_locked(const StripeRef& s, uint64_t hash, uint64_t now) {
    for (uint32_t i = 0; i < kLeaseSlots; ++i) {
        const LeaseSlot& l = s.ctl->leases[i];
        if (owner_of(l) > 0 && l.key_hash == hash) return !overdue(l, now);
    }
    return false;
}

namespace {

// Ends the grant named by token, leaving deadline_ms in the freed slot (see remembers()).
bool end_grant(const StripeRef& s, uint64_t hash, uint64_t token, uint64_t deadline_ms) {
    const uint64_t slot = token & kTokenSlotMask;
    if (slot >= kLeaseSlots) return false;
    LeaseSlot& l = s.ctl->leases[slot];
    if (owner_of(l) <= 0 || l.key_hash != hash || l.generation != uint32_t(token >> 32))
        return false;
    // A holder killed between the two stores leaves a held slot with a deadline at most the
    // grace away (or 0): it is overdue, and taken over, within the grace.
    std::atomic_ref<uint64_t>(l.deadline_ms).store(deadline_ms, std::memory_order_relaxed);
    set_owner(l, 0);
    return true;
}

}  // namespace

bool lease_release_locked(const StripeRef& s, uint64_t hash, uint64_t token) {
    return end_grant(s, hash, token, 0);
}

bool lease_complete_locked(const StripeRef& s, uint64_t hash, uint64_t token, uint64_t now) {
    return end_grant(s, hash, token, now + kFilledGraceMs);
}

bool lease_recently_filled_locked(const StripeRef& s, uint32_t hash_tag) {
    uint64_t now = 0;
    for (const LeaseSlot& l : s.ctl->leases) {
        if (owner_of(l) != 0 || uint32_t(l.key_hash >> 32) != hash_tag) continue;
        if (!now) now = monotonic_ms();
        if (remembers(l, now)) return true;
    }
    return false;
}

bool lease_renew_locked(const StripeRef& s, uint64_t hash, uint64_t token, uint64_t now,
                        uint32_t lease_ms) {
    const uint64_t slot = token & kTokenSlotMask;
    if (slot >= kLeaseSlots) return false;
    LeaseSlot& l = s.ctl->leases[slot];
    if (owner_of(l) <= 0 || l.key_hash != hash || l.generation != uint32_t(token >> 32))
        return false;
    std::atomic_ref<uint64_t>(l.deadline_ms).store(now + lease_ms, std::memory_order_relaxed);
    return true;
}

uint32_t lease_sanitize_locked(const StripeRef& s, uint64_t now) {
    uint32_t freed = 0;
    for (LeaseSlot& l : s.ctl->leases) {
        const int32_t owner = owner_of(l);
        if (owner == 0) continue;
        if (owner < 0 || deadline_of(l) > now + kMaxLeaseMs || process_gone(owner)) {
            set_owner(l, 0);
            ++freed;
        }
    }
    return freed;
}

const char* lease_problem_locked(const StripeRef& s, uint64_t now) {
    for (const LeaseSlot& l : s.ctl->leases) {
        const int32_t owner = owner_of(l);
        if (owner < 0) return "lease slot with a negative owner pid";
        if (owner > 0 && deadline_of(l) > now + kMaxLeaseMs)
            return "lease deadline further away than the longest lease";
    }
    return nullptr;
}

void lease_census(const StripeRef& s, uint64_t now, LeaseCensus* out) {
    for (const LeaseSlot& l : s.ctl->leases) {
        const int32_t owner = owner_of(l);
        if (owner == 0) continue;
        if (owner < 0 || overdue(l, now) || process_gone(owner))
            ++out->reclaimable;
        else
            ++out->held;
    }
}

}  // namespace shmcache::shm
