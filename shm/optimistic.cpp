// optimistic.cpp - see optimistic.h.
#include "shm/optimistic.h"

#include <shmcache/shmcache.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "shm/allocator.h"
#include "shm/clock.h"
#include "shm/eviction.h"

// The reads below race with writers by design (a seqlock); they are validated afterwards.
// ThreadSanitizer cannot know that, so the functions that make them are not instrumented, and
// under it they copy and compare with plain byte loops: memcpy and memcmp are intercepted by the
// TSan runtime, which would check them whatever the caller's attributes.
#if defined(__SANITIZE_THREAD__)
#define SHMC_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SHMC_TSAN 1
#endif
#endif
#ifdef SHMC_TSAN
#define SHMC_SEQLOCK_READ __attribute__((no_sanitize("thread"), noinline))
#else
#define SHMC_SEQLOCK_READ
#endif

namespace shmcache::shm {

namespace {

// Tries per call before taking the lock. A try fails only when a writer changed the stripe
// meanwhile; on a hot stripe a few are enough, and the lock then orders the rest.
constexpr int kTries = 4;
// Longest chain walked without the lock: chains average under one entry (the index is sized
// for the stripe), so a longer one is damage, a chain changing under us, or rare bad luck.
constexpr uint32_t kMaxSteps = 32;

enum class Look { kFound, kAbsent, kRetry, kLock };

// What one pass read: a copy of the entry's header and of the eviction state a hit depends on.
struct Seen {
    EntryHead head;  // the header and the optional fields that may follow it
    const EntryHeader& h() const { return head.h; }
    uint32_t idx;
    uint32_t q_head;
    bool copied;  // the value was copied into buf (it fits)
};

// A load of a field that a writer may be storing to: one untorn read (relaxed atomic), whose
// value is trusted only after seq is checked.
template <class T>
SHMC_SEQLOCK_READ T racy_load(const T& field) {
    return __atomic_load_n(&field, __ATOMIC_RELAXED);
}

#ifdef SHMC_TSAN
SHMC_SEQLOCK_READ void racy_copy(void* dst, const void* src, size_t n) {
    const volatile uint8_t* s = static_cast<const volatile uint8_t*>(src);
    uint8_t* d = static_cast<uint8_t*>(dst);
    for (size_t i = 0; i < n; ++i) d[i] = s[i];
}
SHMC_SEQLOCK_READ bool racy_equal(const void* shared, const void* mine, size_t n) {
    const volatile uint8_t* s = static_cast<const volatile uint8_t*>(shared);
    const uint8_t* m = static_cast<const uint8_t*>(mine);
    for (size_t i = 0; i < n; ++i)
        if (s[i] != m[i]) return false;
    return true;
}
#else
inline void racy_copy(void* dst, const void* src, size_t n) {
    if (n) std::memcpy(dst, src, n);  // dst may be NULL for an empty value (cap 0)
}
inline bool racy_equal(const void* shared, const void* mine, size_t n) {
    return std::memcmp(shared, mine, n) == 0;
}
#endif

// One pass over the key's chain; every read may be torn and is validated by the caller.
SHMC_SEQLOCK_READ Look look(const StripeRef& s, const Key& k, void* buf, size_t cap, Seen* out) {
    uint32_t idx = racy_load(s.buckets[k.tag() & s.bucket_mask]);
    for (uint32_t steps = 0; idx != kNil; ++steps) {
        if (steps >= kMaxSteps) return Look::kLock;
        if (!s.head_in_range(idx)) return Look::kRetry;  // the header would run past the end
        const uint8_t* p = s.blocks + uint64_t(idx) * kBlockSize;
        racy_copy(&out->head, p, sizeof out->head);  // checked below, field by field
        const EntryHeader& h = out->head.h;
        if (h.tag != kEntryTag) return Look::kRetry;
        if (h.hash_tag == k.tag() && h.key_len == k.len) {
            // Read once: a bit field costs a load, a shift and a mask, and the copy into buf
            // below may alias *out as far as the compiler knows.
            const uint32_t value_len = h.value_len;
            if (value_len > s.max_value_len) return Look::kRetry;
            // Key and value must lie in this first extent (an entry that is not chained is one
            // extent; a torn one must still not run past the blocks); chained entries take the
            // lock unless their first extent holds both.
            const uint32_t at = entry_data_offset(&h);
            const uint64_t end = at + uint64_t(k.len) + value_len;
            if (h.chained) {
                const uint32_t n = entry_chain(&h).nblocks;  // torn: bounded here
                if (n == 0 || n > s.nblocks - idx) return Look::kRetry;
                if (end > uint64_t(n) * kBlockSize) return Look::kLock;
            } else if (end > uint64_t(s.nblocks - idx) * kBlockSize) {
                return Look::kRetry;
            }
            if (racy_equal(p + at, k.data, k.len)) {
                out->idx = idx;
                out->q_head = racy_load(s.ctl->q_head[kMainQueue]);
                out->copied = value_len <= cap;
                if (value_len <= cap) racy_copy(buf, p + at + k.len, value_len);
                return Look::kFound;
            }
        }
        idx = h.bucket_next;
    }
    return Look::kAbsent;
}

// Decides a validated find: what the locked get would do, or kLock where it would write.
Optimistic decide(const StripeRef& s, const Key& k, const Seen& seen, void* buf,
                  GetResult* out) {
    const EntryHeader& e = seen.h();
    out->ttl_left_ms = -1;
    uint64_t now = 0;
    if (const uint64_t expires_ms = entry_expires(&e)) {
        now = monotonic_ms();
        if (now >= expires_ms) return Optimistic::kLock;  // the locked get removes it
        if (soft_expired(&e, now)) {
            count_miss(s);
            return Optimistic::kMiss;
        }
        out->ttl_left_ms = ttl_left(fresh_until(&e), now);
    }
    if (e.l2_epoch) {
        const L2Copy st = l2_copy_state(s, &e, now ? now : monotonic_coarse_ms());
        if (st == L2Copy::kDead) return Optimistic::kLock;  // removed under the lock
        if (st == L2Copy::kSuspended) {
            count_miss(s);
            return Optimistic::kMiss;
        }
    }
    out->value_len = e.value_len;
    const uint32_t flags = entry_flags(&e);
    out->flags = flags;
    // Not a use of the entry (the locked get does not tell the policy either): nothing to write.
    if (!seen.copied) return Optimistic::kTooSmall;
    const EntryTiming t = entry_timing(&e);
    if (entry_checksum(k.hash, flags, e.l2_epoch, t.stale_ms, t.compute_ms, buf, e.value_len) !=
        e.checksum)
        return Optimistic::kLock;  // damage in the segment: the locked get rebuilds the stripe
    if (!policy_hit_is_noop(s, seen.idx, e, seen.q_head))
        return Optimistic::kHitNeedsLock;
    count_hit(s);
    return Optimistic::kHit;
}

}  // namespace

Optimistic optimistic_get(const StripeRef& s, const Key& k, void* buf, size_t cap,
                          GetResult* out) {
    const std::atomic<uint32_t>& seq = s.ctl->seq;
    for (int t = 0; t < kTries; ++t) {
        const uint32_t before = seq.load(std::memory_order_acquire);
        if (before & 1) {  // a writer is inside (or died inside: the lock path rebuilds)
            __builtin_ia32_pause();
            continue;
        }
        Seen seen;
        const Look r = look(s, k, buf, cap, &seen);
        if (r == Look::kLock) return Optimistic::kLock;
        // The seqlock reader's fence: every read above happens before seq is read again.
        std::atomic_thread_fence(std::memory_order_acquire);
        if (seq.load(std::memory_order_relaxed) != before) continue;
        if (r == Look::kRetry) return Optimistic::kLock;  // damage, not a race: seq held still
        if (r == Look::kAbsent) {
            count_miss(s);
            return Optimistic::kMiss;
        }
        return decide(s, k, seen, buf, out);
    }
    return Optimistic::kLock;
}

// prfchw: PREFETCHW, a prefetch for writing (the line arrives owned, not shared); decoded as a
// NOP by CPUs without it.
SHMC_SEQLOCK_READ __attribute__((target("prfchw"))) void prefetch_for_store(const StripeRef& s,
                                                                             const Key& k,
                                                                             size_t vlen) {
    __builtin_prefetch(s.ctl, 1);
    const uint32_t idx = racy_load(s.buckets[k.tag() & s.bucket_mask]);
    if (!s.head_in_range(idx)) return;
    // The cache lines the entry's first extent spans (blocks are smaller than a line and an
    // entry need not start on one), at most 8, and none past the stripe's blocks.
    constexpr uint64_t kLine = 64;
    const uint64_t start = uint64_t(idx) * kBlockSize;
    const uint64_t end =
        std::min<uint64_t>(start + kEntryHeader + k.len + vlen, uint64_t(s.nblocks) * kBlockSize);
    const uint64_t first = start / kLine * kLine;
    const uint64_t lines = std::min<uint64_t>((end - first + kLine - 1) / kLine, 8);
    for (uint64_t i = 0; i < lines; ++i) __builtin_prefetch(s.blocks + first + i * kLine, 1);
}

}  // namespace shmcache::shm
