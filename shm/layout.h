// layout.h - every structure that lives inside the shared segment, and its geometry.
//
// The segment is shared by processes that may run different builds, and by processes that die
// at any instruction, so three rules hold for everything here:
//  - structures link by 32-bit block indexes relative to their stripe, never by pointers;
//  - every index or length read from the segment is bounds-checked before use (see table.cpp);
//  - the sizes and offsets of these structures are hashed into abi_fingerprint, so a build with a
//    different layout refuses to attach instead of reinterpreting the bytes.
// See docs/architecture.md for the picture.
#ifndef SHMCACHE_SHM_LAYOUT_H
#define SHMCACHE_SHM_LAYOUT_H

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include <shmcache/shmcache.h>

#include "shm/crash_point.h"

namespace shmcache::shm {

constexpr uint64_t kMagic = 0x4548434143484d53ull;  // "SHMCACHE" in little-endian bytes
// 2: the L2 block in the header. 3: an entry's stale window and compute time, lease slots in
// every stripe, the single-flight counters in the header. 4: the host-wide entry count
// (EntryLimitShared) replaces the per-stripe entry limit. 5: coherence v2 (L2Coherence in the
// header, an entry's l2_epoch). 6: optimistic reads (StripeCtl::seq) and per-process lookup
// counters (ProcessCounters, after the header page) instead of per-stripe hits and misses.
// 7: LFU ages by the stripe's turnover (StripeCtl::lfu_epoch, EntryHeader::lfu_epoch) instead
// of by wall-clock minutes. 8: 16-byte blocks (64 before) and a 52-byte entry header (64 before:
// no total_blocks, and the stale window and compute time stored after it only when set): an
// entry wastes at most 15 bytes to rounding instead of 63. 9: W-TinyLFU's window adapts
// (StripeCtl::window_share and steer_clock, and a table of steering ghosts after the sketch).
// 10: W-TinyLFU's main is segmented (a third queue in StripeCtl, kProtectedQueue). 11: a
// 36-byte entry header: the first extent, the flags and the top of the expiry stored only when
// needed (EntryHeader). 12: W-TinyLFU's sketch has two words per entry when an entry limit
// sets the count (compute_geometry), so a build of 11 would find the geometry changed. 13: the
// steering table has at least 64 words (8 before), so a build of 12 would place the free map
// and the blocks of a small stripe elsewhere; and W-TinyLFU's counted hits relink their entry.
// 14: 16 lease slots a stripe (8 before), since an entry limit now leaves each stripe 256
// entries instead of 128 (stripes_for_entry_limit) and so gives half as many stripes.
constexpr uint32_t kLayoutVersion = 14;
// The allocation unit. Small, so that rounding wastes little (8 bytes an entry on average); a
// free run's head (FreeRun) must fit in one.
constexpr uint32_t kBlockSize = 16;
constexpr uint32_t kNil = 0xffffffffu;
constexpr uint32_t kHeaderBytes = 4096;
constexpr uint32_t kAttachSlots = 256;
constexpr uint32_t kFreeClasses = 32;  // class c holds free runs of [2^c, 2^(c+1)) blocks
constexpr uint32_t kQueues = 3;      // W-TinyLFU uses all three, S3-FIFO the first two, others main
constexpr uint32_t kMainQueue = 0;   // W-TinyLFU: main's probation segment
constexpr uint32_t kSmallQueue = 1;  // S3-FIFO's small queue, W-TinyLFU's window
constexpr uint32_t kProtectedQueue = 2;  // W-TinyLFU: main's protected segment

enum InitState : uint32_t { kInitNone = 0, kInitRunning = 1, kInitReady = 2 };

// One slot per attached process (for `attached` and for refusing to unlink a segment in use).
struct AttachSlot {
    std::atomic<int32_t> pid;  // 0: free
    uint32_t reserved;
};

// Host-wide state of the Redis tier (lib/l2), kept in the segment so that every process of the
// host shares it. Unused (zero) when no process attaches an L2.
enum L2Counter : uint32_t {
    kL2Hits, kL2Misses, kL2Sets, kL2Deletes, kL2Errors, kL2Timeouts, kL2DroppedWrites,
    kL2BreakerOpens, kL2Fills, kL2InvalSent, kL2InvalApplied, kL2Resyncs, kL2ResyncDropped,
    kL2CounterCount
};
constexpr uint32_t kL2CounterSlots = 24;
static_assert(kL2CounterCount <= kL2CounterSlots);

struct L2Shared {
    // Bumped after an invalidation reached L2 and before it is applied to L1. A process that
    // read a value from L2 copies it into L1 only if this did not move meanwhile (checked under
    // the stripe lock), so an old value read just before an invalidation is never put back.
    std::atomic<uint64_t> inval_seq;
    // Random id of this host's segment, set once: a subscriber skips its own host's messages.
    std::atomic<uint64_t> origin;
    // The process holding this host's live invalidation subscription (0: none).
    std::atomic<int32_t> subscriber_pid;
    uint32_t reserved;
    std::atomic<uint64_t> counters[kL2CounterSlots];  // L2Counter; relaxed fetch_add
};

// Whether an L1 copy of a Redis value may be served (docs/l2.md, "Coherence"). Every L2 copy (an
// entry with a nonzero l2_epoch: a copy of an L2 hit, or the L1 half of a write to both tiers,
// made by lib/l2 and flagged SHMC_FLAG_FROM_L2) is served only while
//  - its l2_epoch equals epoch8(epoch): the host's subscriber bumps epoch whenever it cannot
//    vouch for the copies made so far (a new subscription after a gap, a FLUSHALL, a message it
//    could not apply), which makes every older copy dead at once (O(1)); dead copies are
//    removed when next touched, and all of them, stripe by stripe, every 128 bumps, so that a
//    copy never comes back to life when epoch8() comes round again (every 255);
//  - and the monotonic clock is before valid_until_ms: the subscriber's heartbeat lease. Each
//    answered PING on the invalidation connection moves it to (time the PING was sent) +
//    link_lease_ms; every invalidation Redis sent before that PING was applied first (one ordered
//    connection). A subscriber that stops, or a link that goes quiet, lets it lapse: the copies
//    are then kept but not served, and served again if the same link answers within the
//    command timeout (nothing it carried was lost), else dropped by the epoch bump of the next
//    subscription. A subscriber that loses its link sets it to 0 at once.
// key_seq: an invalidation of key k bumps key_seq[slot(k)] before it changes L1; a fill notes
// the slot's value (and epoch, and the purge sequence inval_seq) before asking Redis and is
// stored only if none moved (checked under the stripe lock), so a value read just before its
// invalidation is never put back. Written by the subscriber and by local invalidations only.
enum InvalMode : uint32_t { kModeNone = 0, kModePublish = 1, kModeTracking = 2 };
constexpr uint32_t kKeySeqSlots = 256;
struct L2Coherence {
    alignas(64) std::atomic<uint64_t> epoch;
    std::atomic<uint64_t> valid_until_ms;  // monotonic ms; 0: no live subscription yet
    std::atomic<uint32_t> mode;            // InvalMode of the last subscription
    uint32_t reserved0;
    uint64_t reserved1[5];
    alignas(64) std::atomic<uint32_t> key_seq[kKeySeqSlots];
};

// Host-wide counters of single-flight fetches (docs/stampede.md); relaxed fetch_add, on the slow
// paths only (misses, stale serves, waits).
enum FlightCounter : uint32_t {
    kFlLeasesGranted, kFlWaits, kFlStampedesAvoided, kFlLeaseTimeouts, kFlTakeovers,
    kFlStaleServed, kFlEarlyRefreshes, kFlUnleased, kFlAbandoned, kFlL2Locks, kFlL2LockBusy,
    kFlL2Served, kFlCounterCount
};
constexpr uint32_t kFlightCounterSlots = 16;
static_assert(kFlCounterCount <= kFlightCounterSlots);

struct FlightShared {
    std::atomic<uint64_t> counters[kFlightCounterSlots];  // FlightCounter
};

// The host-wide entry count behind max_entries (docs/architecture.md, "Entry limit"); zero and
// unused when max_entries is 0.
//
// count is the number of live entries plus the slots reserved by inserters that still hold the
// lock of the stripe they insert into. Writers keep two rules, so that it never drops below the
// live entries and the bound holds whatever instruction a process dies at:
//  - a slot is reserved (a CAS that never goes past max_entries) before the entry is linked into
//    its hash chain, and given back only after an entry has been unlinked from its chain (rebuild
//    finds entries only through the chains);
//  - every change of count happens with the stripe concerned locked and marked dirty.
// A process killed between the two steps therefore leaves count one too high (an early eviction,
// never an extra entry) and a dirty stripe, whose rebuild sets recount; the recount (all stripe
// locks, in index order, no other lock held) makes count equal to the sum of the stripes' entries.
struct EntryLimitShared {
    // Alone on its line: every insert and removal of a limited cache writes it.
    alignas(64) std::atomic<uint64_t> count;
    // Nonzero: a stripe was rebuilt (or damage dropped entries), so count may be above the live
    // entries until the next recount. Read on slow paths only; on its own line so that reading it
    // does not contend with the writers of count.
    alignas(64) std::atomic<uint32_t> recount;
    uint32_t reserved0;
    // A recount that could not take every lock (a holder stopped) is not tried again before this
    // monotonic ms, so that a stopped process does not make every store wait for it.
    std::atomic<uint64_t> retry_after_ms;
    uint64_t reserved1[6];
};

// The first page of the segment. Everything after `geometry` is derived from the creation
// parameters; attach recomputes it and refuses a header that disagrees.
struct SegmentHeader {
    uint64_t magic;
    uint32_t layout_version;
    uint32_t header_bytes;
    uint64_t abi_fingerprint;
    std::atomic<uint32_t> init_state;
    int32_t creator_pid;
    uint64_t created_unix_ms;
    uint32_t owner_uid;
    uint32_t mode;
    // Creation parameters.
    uint64_t size_bytes;
    uint64_t max_entries;
    uint32_t n_stripes;
    uint32_t strategy;
    uint32_t max_value_len;
    uint32_t steer_per_stripe;  // derived, like the geometry below (here for want of room there)
    // Derived geometry.
    uint32_t blocks_per_stripe;
    uint32_t buckets_per_stripe;
    uint32_t ghost_per_stripe;
    uint32_t expected_per_stripe;  // sizes the hash index; not a limit
    uint64_t stripes_offset;
    uint64_t regions_offset;
    uint64_t region_bytes;
    uint64_t reserved1[8];
    AttachSlot attach[kAttachSlots];
    L2Shared l2;
    FlightShared flight;
    EntryLimitShared entry_limit;
    L2Coherence coherence;
};
static_assert(sizeof(SegmentHeader) <= kHeaderBytes);

// Counters of one stripe. Written under the stripe lock with relaxed load+store (no locked
// read-modify-write); read by anyone without the lock. lock_timeouts is the exception: it is
// bumped by a waiter that does not hold the lock, so it uses fetch_add. Lookups (hits, misses)
// are not counted here but per process (ProcessCounters), so that a get writes no shared line.
struct StripeCounters {
    std::atomic<uint64_t> sets, deletes, evictions, expirations;
    std::atomic<uint64_t> lock_recoveries, lock_timeouts;
};

// The lookup counters of one attach slot (and one more, kOverflowCounters, shared by processes
// that found no free slot). Only the slot's current process writes them (relaxed fetch_add: its
// threads share them), so a hit bumps a cache line no other core is reading or writing; readers
// of the statistics sum every slot. A slot's counters are never reset: a process that takes over
// the slot of a dead one goes on adding to them, so the sums lose nothing when processes die.
struct alignas(64) ProcessCounters {
    std::atomic<uint64_t> hits, misses;
    uint64_t reserved[6];
};
constexpr uint32_t kProcessCounterSlots = kAttachSlots + 1;
constexpr uint32_t kOverflowCounters = kAttachSlots;
constexpr uint64_t kProcessCountersBytes =  // whole pages, so the stripes start page-aligned
    (kProcessCounterSlots * sizeof(ProcessCounters) + 4095) / 4096 * 4096;

// One lease: the right, given to one caller on the host, to compute the value of one key while
// the others wait for it (docs/stampede.md). A stripe keeps kLeaseSlots of them for its keys.
// Written only under the stripe lock and crash-safe by write order: a grant fills every field
// and stores owner_pid last, a release clears owner_pid alone, so a holder killed between two
// stores leaves a slot that is either free or complete. A slot whose owner died, or whose
// deadline passed, is taken over by the next caller that wants it; rebuild clears such slots.
struct LeaseSlot {
    uint64_t key_hash;     // the full 64-bit hash of the key
    uint64_t deadline_ms;  // monotonic ms: past it, anyone may take the lease over
    uint64_t checked_ms;   // when a waiter last checked that the owner is alive (once per ms)
    int32_t owner_pid;     // 0: the slot is free
    uint32_t generation;   // bumped by every grant; a lease token names one grant (never 0)
};
// 16: under an entry limit a stripe holds 256 entries of it or more (kMinEntriesPerStripe), so
// Python's default limit of 1000 makes 2 stripes, which keep the 32 slots 4 stripes of 8 had.
// A miss looks through its stripe's slots under the lock: 16 slots are 8 cache lines.
constexpr uint32_t kLeaseSlots = 16;
// Longest lease a caller may ask for. Also the bound rebuild and check apply to deadlines read
// from the segment: a deadline further away than this is damage, not a lease.
constexpr uint32_t kMaxLeaseMs = 3600 * 1000;

// The control block of one stripe: its lock, the heads of its structures and its counters.
// REQUIRES: every field below `seq` is written only with `mutex` held (and read only with it,
// except by the optimistic reader, shm/optimistic.h, which validates what it read with seq).
struct alignas(64) StripeCtl {
    pthread_mutex_t mutex;        // robust, process-shared
    std::atomic<uint32_t> dirty;  // nonzero while the holder is mid-update (see recovery)
    // The stripe's seqlock word for lock-free reads: odd while a holder may be changing anything
    // a reader looks at (it is made odd after dirty is set, and even before dirty is cleared, so
    // odd implies dirty), and moved on by every such section. A reader that sees the same even
    // value before and after reading saw no change at all.
    std::atomic<uint32_t> seq;
    // Counters follow the lock: a store writes its lock line anyway.
    StripeCounters stats;
    uint32_t free_blocks;
    uint32_t fragment_blocks;  // of free_blocks, those in runs too short to gather (kGatherMin)
    uint32_t entries;
    uint32_t used_blocks;
    uint32_t free_heads[kFreeClasses];
    uint32_t q_head[kQueues], q_tail[kQueues];
    uint32_t q_entries[kQueues];
    uint32_t q_blocks[kQueues];
    uint32_t sieve_hand;
    uint32_t ghost_clock;  // S3-FIFO: ghost insertions; W-TinyLFU: sketch additions since halving
    // LFU's clock: it moves once per as many inserts into the stripe as the stripe holds
    // entries (one turnover), so counters age with the traffic, not with wall time. Written
    // under the lock with relaxed atomic stores; the optimistic reader loads it relaxed.
    uint32_t lfu_epoch;
    uint32_t lfu_inserts;  // inserts since lfu_epoch last moved
    // W-TinyLFU's window: its share of the stripe in 1/65536ths (0: not moved yet, the start
    // share), and the two clocks of the steering ghosts (eviction.cpp): [0] counts evictions
    // from main, [1] window candidates refused by admission. Any value is valid: the share is
    // clamped where it is read, and a wrong clock only makes a few ghosts look older or newer.
    uint32_t window_share;
    uint32_t steer_clock[2];
    uint64_t min_expiry_lb;  // no entry expires before this monotonic ms (0: none has a TTL)
    uint64_t data_bytes;     // key + value bytes of live entries
    uint64_t rng;            // xorshift state for probabilistic policy decisions
    // Single-flight leases of this stripe's keys.
    LeaseSlot leases[kLeaseSlots];
};
static_assert(offsetof(StripeCtl, seq) + sizeof(uint32_t) <= 64,
              "seq must share the lock's cache line, which every writer writes anyway");

// An extent is a run of contiguous blocks; an entry is a chain of extents.
struct Extent {
    uint32_t nblocks;
    uint32_t next;  // head block of the next extent, or kNil
};

constexpr uint8_t kEntryTag = 0xE7;
constexpr uint8_t kFreeTag = 0xF4;

// The header of an entry, at the start of its first block. Up to three optional fields follow
// it, in this order, each only when the header says so: an Extent (chained: the entry was
// gathered from several runs), an EntryTiming (has_timing: a stale window or a compute time),
// the flags (has_flags: nonzero flags). Then the key bytes, then the value bytes, continuing
// into later extents (each of which starts with an Extent). An entry that is not chained is one
// run of contiguous_blocks(entry_payload(e)) blocks (allocator.h): the length is not stored.
// The checksum covers the key (through the hash seed), the value, the flags and the timing (see
// entry_checksum); the metadata fields that change while the entry is linked (links, freq,
// queue, expiry) are outside it on purpose.
//
// Expiry has two steps (docs/stampede.md): the entry is fresh until expires_ms - stale_ms, then
// stale until expires_ms, when it is gone. Only shmc_fetch ever returns a stale entry; every
// other call treats it as absent. Plain sets have stale_ms 0, so both instants coincide. The
// expiry is kept in 40 bits of monotonic ms (34 years after boot; later instants are clamped
// there, which only makes an entry live that long): entry_expires and set_entry_expires.
//
// 36 bytes (52 in layout 10): the first extent, the flags and the top of the expiry left the
// fixed part, so a 100-byte value with an 8-byte key takes 9 blocks (144 bytes) instead of 10.
// Packed to 4-byte alignment: no field needs more (the expiry is two 32-bit halves).
#pragma pack(push, 4)
struct EntryHeader {
    uint8_t tag;             // kEntryTag
    uint8_t queue : 2;       // which of the stripe's queues (below kQueues) links it
    uint8_t has_timing : 1;  // an EntryTiming follows the header (and its Extent, if chained)
    uint8_t chained : 1;     // an Extent follows the header: the entry spans several runs
    uint8_t has_flags : 1;   // the flags follow the timing (absent: flags 0)
    uint8_t unused_bits : 3;
    uint8_t freq;      // policy counter: LFU log counter, S3-FIFO/W-TinyLFU hits, SIEVE visited bit
    uint8_t l2_epoch;  // 0, or an L2 copy's coherence epoch (epoch8() of L2Coherence::epoch)
    uint64_t key_len : 13;    // 1 to SHMC_MAX_KEY_LEN
    uint64_t value_len : 27;  // up to SHMC_MAX_VALUE_LEN
    uint64_t expires_hi : 8;  // bits 32-39 of the expiry
    uint64_t lfu_epoch : 16;  // LFU: the stripe's lfu_epoch (mod 2^16) at the counter's last decay
    uint32_t bucket_next;     // next entry in the hash chain
    uint32_t q_prev, q_next;
    uint32_t hash_tag;  // high 32 bits of the key hash
    uint32_t checksum;
    uint32_t expires_lo;  // bits 0-31 of the expiry (monotonic ms; 0 in both halves: never)
};
// Stored after the header only when one of them is not 0 (most entries: a plain set, no
// single flight): 8 bytes saved per entry.
struct EntryTiming {
    uint32_t stale_ms;    // the last stale_ms before expires_ms are stale (0 with no TTL)
    uint32_t compute_ms;  // how long the value took to compute, for XFetch (0: unknown)
};
// A header with the optional fields that may follow it, as they lie in the segment: what a
// lock-free reader copies (the first extent always holds them all, see kGatherMinBlocks).
struct EntryHead {
    EntryHeader h;
    uint8_t optional[sizeof(Extent) + sizeof(EntryTiming) + sizeof(uint32_t)];
};
#pragma pack(pop)
static_assert(sizeof(EntryHeader) == 36 && alignof(EntryHeader) == 4);
static_assert(sizeof(EntryTiming) == 8 && offsetof(EntryTiming, compute_ms) == 4 &&
              sizeof(EntryHead) == 56);
static_assert((uint64_t(1) << 27) > SHMC_MAX_VALUE_LEN && (1u << 13) > SHMC_MAX_KEY_LEN,
              "the length fields must hold the longest key and value");

// The head block of a free run; the run's last block ends with a copy of nblocks (the tail tag)
// so that a block being freed can find and merge with a free run on its left. nblocks is the
// head block's last word, so in a one-block run the head's count is its own tail tag.
struct FreeRun {
    uint8_t tag;  // kFreeTag
    uint8_t reserved[3];
    uint32_t prev, next;
    uint32_t nblocks;
};
static_assert(sizeof(FreeRun) == kBlockSize && offsetof(FreeRun, nblocks) == kBlockSize - 4,
              "a one-block free run's count doubles as its tail tag");

constexpr uint32_t kExtentHeader = sizeof(Extent);
constexpr uint32_t kEntryHeader = sizeof(EntryHeader);
constexpr uint32_t kTimingBytes = sizeof(EntryTiming);
constexpr uint32_t kFlagsBytes = sizeof(uint32_t);
constexpr uint32_t kMaxOptionalBytes = kExtentHeader + kTimingBytes + kFlagsBytes;

// Bytes of timing an entry with these values stores after its header.
inline uint32_t timing_bytes(uint32_t stale_ms, uint32_t compute_ms) {
    return stale_ms || compute_ms ? kTimingBytes : 0;
}
// Bytes of optional fields a store of this timing and these flags puts after the header,
// besides the Extent of a chained entry (the allocator's to add): the `data` of allocator.h
// is these, the key and the value.
inline uint32_t optional_bytes(uint32_t timing, uint32_t flags) {
    return timing + (flags ? kFlagsBytes : 0);
}

inline const uint8_t* entry_bytes(const EntryHeader* e) {
    return reinterpret_cast<const uint8_t*>(e);
}
// Which optional fields the entry has, as one index (timing 1, chained 2, flags 4), and where
// each is, from the start of the header: a table, so that the offsets on the hot paths cost one
// load, not a chain of tests.
// Read as bits 2-4 of the header's second byte, where the x86-64 ABI allocates has_timing,
// chained and has_flags (bit-fields fill a byte from its lowest bit; tests/unit/table_test.cpp
// checks every combination): one load and a mask, where reading the three bit-fields one by one
// cost a set about 60 instructions over its several offset lookups.
inline uint32_t optional_index(const EntryHeader* e) {
    return uint32_t(entry_bytes(e)[1] >> 2) & 7u;
}
struct OptionalOffsets {
    uint8_t timing, flags, data, payload;  // payload: optional bytes counted in entry_payload
};
inline constexpr OptionalOffsets kOptionalOffsets[8] = {
    // timing, flags, data (key), payload
    {36, 36, 36, 0},   // none
    {36, 44, 44, 8},   // timing
    {44, 44, 44, 0},   // chained
    {44, 52, 52, 8},   // chained, timing
    {36, 36, 40, 4},   // flags
    {36, 44, 48, 12},  // timing, flags
    {44, 44, 48, 4},   // chained, flags
    {44, 52, 56, 12},  // chained, timing, flags
};
static_assert(kEntryHeader == 36 && kExtentHeader == 8 && kTimingBytes == 8 && kFlagsBytes == 4,
              "kOptionalOffsets spells these sizes out");
inline uint32_t entry_timing_offset(const EntryHeader* e) {
    return kOptionalOffsets[optional_index(e)].timing;
}
inline uint32_t entry_flags_offset(const EntryHeader* e) {
    return kOptionalOffsets[optional_index(e)].flags;
}
// Where the entry's key starts, from the start of its header.
inline uint32_t entry_data_offset(const EntryHeader* e) {
    return kOptionalOffsets[optional_index(e)].data;
}
// What follows the header of an entry that is not chained: the blocks it takes derive from it.
inline uint64_t entry_payload(const EntryHeader* e) {
    return uint64_t(kOptionalOffsets[optional_index(e)].payload) + e->key_len + e->value_len;
}
// The optional fields. REQUIRES: e is in the segment (its first extent holds every optional
// field it has) or inside an EntryHead.
inline EntryTiming entry_timing(const EntryHeader* e) {
    EntryTiming t{0, 0};
    if (e->has_timing) std::memcpy(&t, entry_bytes(e) + entry_timing_offset(e), sizeof t);
    return t;
}
inline uint32_t entry_flags(const EntryHeader* e) {
    uint32_t f = 0;
    if (e->has_flags) std::memcpy(&f, entry_bytes(e) + entry_flags_offset(e), sizeof f);
    return f;
}
// The Extent of a chained entry (after its header). REQUIRES: e->chained.
inline Extent entry_chain(const EntryHeader* e) {
    Extent x;
    std::memcpy(&x, entry_bytes(e) + kEntryHeader, sizeof x);
    return x;
}

constexpr uint64_t kMaxExpiresMs = (uint64_t(1) << 40) - 1;
inline uint64_t entry_expires(const EntryHeader* e) {
    return uint64_t(e->expires_hi) << 32 | e->expires_lo;
}
// Stores ms (0: never), clamped to the 40 bits kept. Callers clamp the expiry they compute with
// clamp_expires first, so that what they compare with (min_expiry_lb) is what is stored. The
// halves are two stores, ordered so that a writer killed between them leaves an expiry no later
// than the later of the old and the new one (an earlier one only costs a miss): moving up, the
// low half first; moving down (or to 0, never), the high half first. (An entry rewritten in
// place with the same value and flags keeps its checksum, so the expiry it is left with counts.)
inline uint64_t clamp_expires(uint64_t ms) { return std::min(ms, kMaxExpiresMs); }
inline void set_entry_expires(EntryHeader* e, uint64_t ms) {
    ms = clamp_expires(ms);
    const uint8_t hi = uint8_t(ms >> 32);
    if (hi >= e->expires_hi) {
        e->expires_lo = uint32_t(ms);
        SHMC_CRASH_POINT();
        e->expires_hi = hi;
    } else {
        e->expires_hi = hi;
        SHMC_CRASH_POINT();
        e->expires_lo = uint32_t(ms);
    }
}

// Geometry computed from creation parameters; identical in every process that attaches.
struct Geometry {
    uint64_t size_bytes;
    uint64_t max_entries;
    uint32_t n_stripes;
    uint32_t strategy;
    uint32_t max_value_len;
    uint32_t blocks_per_stripe;
    uint32_t buckets_per_stripe;
    uint32_t ghost_per_stripe;
    uint32_t steer_per_stripe;     // W-TinyLFU's steering ghosts (words, after the policy table)
    uint32_t expected_per_stripe;  // entries a stripe is expected to hold (sizes the hash index)
    uint64_t counters_offset;      // ProcessCounters[kProcessCounterSlots]
    uint64_t stripes_offset;
    uint64_t regions_offset;
    uint64_t region_bytes;
    // Offsets within one stripe's region.
    uint64_t buckets_off, ghost_off, steer_off, freemap_off, blocks_off;
};

// Computes the geometry; returns false (with *why set) if the parameters cannot make a usable
// segment (too small for the stripes asked, too large for 32-bit block indexes, ...).
bool compute_geometry(uint64_t size_bytes, uint64_t max_entries, uint32_t n_stripes,
                      uint32_t strategy, uint32_t max_value_len, Geometry* g, const char** why);

// The stripes a new segment is made with: n_stripes as asked, but under an entry limit no more
// than leave each stripe kMinEntriesPerStripe entries of it (a power of two, at least 1). Each
// stripe runs its eviction policy over its own entries only, and a policy that chooses among a
// few entries chooses badly: W-TinyLFU's hit ratio on the LIRS gli trace at c=500 is 30.5% on 1
// stripe, 30.3% on 4 (125 entries each), 28.2% on 16 and 27.4% on 64 (8 each); an exact
// W-TinyLFU split by key hash into 64 caches of c/64 loses as much, so it is the split, not the
// engine. With 128 the replay table's mean distance to its bar went from -1.79 (64 stripes) to
// -0.79, about that of one stripe (-0.76); 256 (layout 14) takes today's policy from 34.0 rows
// of 47 at or above the bar to 34.75 over four key seeds, mean +0.48 to +0.51 (cs c=560 -1.25 ->
// +0.06, ps c=1200 -1.19 -> -0.55; docs/architecture.md, "Stripes for small limits").
// But no stripe is made larger than kMaxCappedStripeBytes by the cap: a process that dies
// mid-write leaves its stripe to be rebuilt by the next locker, a walk of the stripe's every
// block under its lock (a 64 MiB stripe took 17 ms, a 256 MiB one 71 ms, against the 50 ms
// lock timeout of the others). An unlimited cache, or one whose limit leaves 256 entries a
// stripe asked, keeps every stripe asked. Applied when a segment is created (Engine::open),
// never to an existing segment's header: its geometry comes from the stripes it was made with.
constexpr uint32_t kMaxStripes = 65536;
constexpr uint64_t kMinEntriesPerStripe = 256;
constexpr uint64_t kMaxCappedStripeBytes = 32ull << 20;
uint32_t stripes_for_entry_limit(uint32_t n_stripes, uint64_t max_entries, uint64_t size_bytes);

// "MAJOR.MINOR.PATCH" of this build, from the public header's macros.
const char* library_version();

// Hash of the sizes and offsets of the shared structures: differs between incompatible builds.
uint64_t abi_fingerprint();

// Gathering (allocator.h) takes only free runs of at least kGatherMinBlocks: one holds an entry
// header with every optional field (the Extent a gathered entry has, the timing, the flags), and
// the extents gathered keep 56 of every 64 bytes for data, as 64-byte blocks did. "data" below
// is what follows the header besides that Extent: timing, flags, key and value. Shorter runs
// (fragments left where an allocation split a run) wait for a neighbour to free. No entry is
// shorter either (contiguous_blocks), so a head always has kGatherMinBlocks blocks to read.
constexpr uint32_t kGatherMinBlocks =
    (kEntryHeader + kMaxOptionalBytes + kBlockSize - 1) / kBlockSize;
static_assert(kGatherMinBlocks * kBlockSize >= sizeof(EntryHead));

// Blocks of gatherable runs (kGatherMinBlocks or longer) that always hold an entry of `data`
// bytes after its header, whatever those runs are: a run of g >= kGatherMinBlocks blocks carries
// g * kBlockSize - kExtentHeader >= g * kGatherBytesPerBlock bytes, the head's run kEntryHeader
// fewer.
constexpr uint64_t kGatherBytesPerBlock = kBlockSize - kExtentHeader / kGatherMinBlocks;
static_assert(kGatherMinBlocks * kBlockSize - kExtentHeader >=
              kGatherMinBlocks * kGatherBytesPerBlock);
inline uint64_t worst_case_blocks(uint64_t data) {
    const uint64_t bytes = data + kEntryHeader;
    return std::max<uint64_t>((bytes + kGatherBytesPerBlock - 1) / kGatherBytesPerBlock,
                              kGatherMinBlocks);
}

}  // namespace shmcache::shm

#endif
