// layout.cpp - geometry of a segment and the fingerprint of its structures' layout.
#include "shm/layout.h"

#include <shmcache/shmcache.h>
#include <xxhash.h>

#include <algorithm>
#include <bit>

namespace shmcache::shm {

namespace {

uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

}  // namespace

#define SHMC_STR2(x) #x
#define SHMC_STR(x) SHMC_STR2(x)
const char* library_version() {
    return SHMC_STR(SHMC_VERSION_MAJOR) "." SHMC_STR(SHMC_VERSION_MINOR) "." SHMC_STR(
        SHMC_VERSION_PATCH);
}

static_assert(SHMC_MAX_KEY_LEN < (1u << 13), "EntryHeader::key_len has 13 bits");

uint64_t abi_fingerprint() {
    // Every size and offset a reader relies on. A change to any of them changes the hash.
    const uint64_t facts[] = {
        kLayoutVersion,
        kBlockSize,
        kHeaderBytes,
        kAttachSlots,
        kFreeClasses,
        kQueues,
        sizeof(SegmentHeader),
        offsetof(SegmentHeader, init_state),
        offsetof(SegmentHeader, size_bytes),
        offsetof(SegmentHeader, attach),
        offsetof(SegmentHeader, l2),
        sizeof(L2Shared),
        offsetof(SegmentHeader, flight),
        sizeof(FlightShared),
        offsetof(SegmentHeader, entry_limit),
        sizeof(EntryLimitShared),
        offsetof(SegmentHeader, coherence),
        sizeof(L2Coherence),
        kKeySeqSlots,
        offsetof(EntryLimitShared, recount),
        sizeof(StripeCtl),
        sizeof(pthread_mutex_t),
        offsetof(StripeCtl, dirty),
        offsetof(StripeCtl, seq),
        sizeof(ProcessCounters),
        kProcessCounterSlots,
        kProcessCountersBytes,
        offsetof(StripeCtl, free_heads),
        offsetof(StripeCtl, stats),
        sizeof(StripeCounters),
        offsetof(StripeCtl, leases),
        offsetof(StripeCtl, lfu_epoch),
        offsetof(StripeCtl, window_share),
        sizeof(LeaseSlot),
        kLeaseSlots,
        offsetof(LeaseSlot, owner_pid),
        sizeof(EntryHeader),
        offsetof(EntryHeader, bucket_next),
        offsetof(EntryHeader, expires_lo),
        sizeof(EntryTiming),
        sizeof(EntryHead),
        sizeof(FreeRun),
        offsetof(FreeRun, nblocks),
        sizeof(Extent),
        SHMC_MAX_KEY_LEN,
    };
    return XXH3_64bits(facts, sizeof facts);
}

uint32_t stripes_for_entry_limit(uint32_t n_stripes, uint64_t max_entries, uint64_t size_bytes) {
    // An invalid count is left for compute_geometry to refuse with its message.
    if (!max_entries || !std::has_single_bit(n_stripes) || n_stripes > kMaxStripes)
        return n_stripes;
    const uint64_t by_entries =
        std::bit_floor(std::max<uint64_t>(max_entries / kMinEntriesPerStripe, 1));
    const uint64_t stripes_of_max_bytes =  // rounded up, without overflow for any size_bytes
        size_bytes / kMaxCappedStripeBytes + (size_bytes % kMaxCappedStripeBytes != 0);
    const uint64_t by_bytes = std::bit_ceil(std::max<uint64_t>(stripes_of_max_bytes, 1));
    return uint32_t(std::min<uint64_t>(n_stripes, std::max(by_entries, by_bytes)));
}

bool compute_geometry(uint64_t size_bytes, uint64_t max_entries, uint32_t n_stripes,
                      uint32_t strategy, uint32_t max_value_len, Geometry* g, const char** why) {
    *g = Geometry{};
    if (n_stripes == 0 || !std::has_single_bit(n_stripes) || n_stripes > kMaxStripes) {
        *why = "n_stripes must be a power of two between 1 and 65536";
        return false;
    }
    if (size_bytes < (1u << 20)) {
        *why = "size_bytes must be at least 1 MiB";
        return false;
    }
    if (size_bytes >= (1ull << 63)) {  // off_t is signed: posix_fallocate could not take it
        *why = "size_bytes must be below 2^63 bytes";
        return false;
    }
    if (max_value_len && max_value_len < 1024) {
        *why = "max_value_len must be 0 (the default) or at least 1024 bytes";
        return false;
    }
    if (strategy > SHMC_STRATEGY_WTINYLFU) {
        *why = "unknown strategy";
        return false;
    }
    g->size_bytes = size_bytes;
    g->max_entries = max_entries;
    g->n_stripes = n_stripes;
    g->strategy = strategy == SHMC_STRATEGY_DEFAULT ? uint32_t(SHMC_STRATEGY_WTINYLFU) : strategy;
    g->counters_offset = kHeaderBytes;
    g->stripes_offset = kHeaderBytes + kProcessCountersBytes;
    g->regions_offset = round_up(g->stripes_offset + uint64_t(n_stripes) * sizeof(StripeCtl), 4096);
    if (g->regions_offset >= size_bytes) {
        *why = "size_bytes is too small for that many stripes";
        return false;
    }
    g->region_bytes = (size_bytes - g->regions_offset) / n_stripes / kBlockSize * kBlockSize;

    // Size the hash index for the entries a stripe is expected to hold: its share of the entry
    // limit if there is one (the limit is host-wide, so a stripe may hold more than its share,
    // with longer chains), else one per 256 bytes of region (entries of 256 bytes or more keep
    // chains at length <= 1). Counted in bytes, not blocks: the index costs 12 bytes a bucket
    // with S3-FIFO's ghosts, so it must not grow when blocks get smaller.
    const uint64_t most = g->region_bytes / (kGatherMinBlocks * kBlockSize);  // none is smaller
    const uint64_t share = max_entries ? (max_entries - 1) / n_stripes + 1 : 0;
    const uint64_t expected =
        share ? std::min(share, most) : std::max<uint64_t>(g->region_bytes / 256, 1);
    g->buckets_per_stripe = uint32_t(std::bit_ceil(std::max<uint64_t>(expected, 16)));
    // The policy table: S3-FIFO's ghosts (a word a bucket), or W-TinyLFU's frequency sketch (16
    // counters a word, 4 per key). When an entry limit says how many entries a stripe will hold,
    // the sketch has two words for each (8 counters a row per entry, as the W-TinyLFU reference
    // of bench/replay; sketch.h): fewer collisions between keys' counters, and over four key
    // seeds 33.0 rows of the replay table's 47 at or above the bar, mean +0.40, against 31.0 and
    // +0.24 with one word (four words: 32.5, +0.45). When memory binds, the count is a guess
    // (an entry per 256 bytes) and every word is memory entries could have used, so it keeps
    // one (8 bytes per 256, 3% of the stripe); so does a limit that expects more buckets than
    // that guess would make (one per 256 bytes), where two words would cost over 1/16 of it.
    const bool policy_table =
        g->strategy == SHMC_STRATEGY_S3FIFO || g->strategy == SHMC_STRATEGY_WTINYLFU;
    const bool wide_sketch = g->strategy == SHMC_STRATEGY_WTINYLFU && share &&
                             g->buckets_per_stripe <= g->region_bytes / 256;
    g->ghost_per_stripe = policy_table ? g->buckets_per_stripe * (wide_sketch ? 2 : 1) : 0;
    // W-TinyLFU's steering ghosts (eviction.cpp): they remember the sampled half of the last
    // kSteerReachPct% of each side's evictions, as far as half the table per side allows. A
    // sixteenth of the buckets (an entry for 6-12% of the entries a stripe is expected to hold;
    // half a byte per bucket, 0.2% of a segment bounded by memory), and at least 64 words, so
    // that a stripe of a few hundred entries reaches its 15% instead of 4 evictions a side
    // (layout 13; the 8 words before clamped cpp c=120's reach to 4 sampled evictions). The
    // minimum costs 512 bytes a stripe, only where the bucket array is under 1024.
    g->steer_per_stripe =
        g->strategy == SHMC_STRATEGY_WTINYLFU ? std::max(g->buckets_per_stripe / 16, 64u) : 0;

    g->buckets_off = 0;
    g->ghost_off = round_up(uint64_t(g->buckets_per_stripe) * 4, 64);
    g->steer_off = g->ghost_off + uint64_t(g->ghost_per_stripe) * 8;
    g->freemap_off = g->steer_off + uint64_t(g->steer_per_stripe) * 8;
    if (g->freemap_off + 2 * kBlockSize >= g->region_bytes) {
        *why = "size_bytes is too small for that many stripes and entries";
        return false;
    }
    // Each block costs kBlockSize bytes plus one bit of free map; keep the block count a multiple of 64
    // so the free map is whole 64-bit words.
    uint64_t room = g->region_bytes - g->freemap_off - kBlockSize;
    uint64_t blocks = room * 8 / (kBlockSize * 8 + 1) / 64 * 64;
    if (blocks > 0xfffffff0ull) blocks = 0xffffffc0ull;
    g->blocks_per_stripe = uint32_t(blocks);
    g->blocks_off = round_up(g->freemap_off + blocks / 8, kBlockSize);
    if (blocks < 64 || g->blocks_off + blocks * kBlockSize > g->region_bytes) {
        *why = "size_bytes is too small for that many stripes";
        return false;
    }
    g->expected_per_stripe = uint32_t(std::min<uint64_t>(expected, 0xffffffffu));

    // A value must fit in half of a stripe even when gathered from the shortest runs gathering
    // takes, so that eviction can always make room for it (docs/architecture.md, "Memory").
    const uint64_t half = blocks / 2;
    const uint64_t fixed = kEntryHeader + kTimingBytes + kFlagsBytes + SHMC_MAX_KEY_LEN;
    uint64_t limit = half * kGatherBytesPerBlock;
    limit = limit > fixed ? limit - fixed : 0;
    uint64_t want = max_value_len ? max_value_len : (1u << 20);
    g->max_value_len = uint32_t(std::min<uint64_t>({want, limit, SHMC_MAX_VALUE_LEN}));
    if (g->max_value_len < 1024) {
        *why =
            "size_bytes is too small: a stripe must hold a value of at least 1 KiB "
            "(use fewer stripes or a larger segment)";
        return false;
    }
    return true;
}

}  // namespace shmcache::shm
