// recovery_test.cpp - damaged stripes: every operation stays safe, and check/rebuild repair.
#include <doctest/doctest.h>

#include <cstring>
#include <random>
#include <string>

#include "support.h"
#include "shm/table.h"

using namespace shmcache::shm;

namespace {

void fill(unit::TestCache& t, int n) {
    for (int i = 0; i < n; ++i)
        t.set("key" + std::to_string(i), "value" + std::to_string(i) + std::string(i % 300, '.'));
}

// Every present key must hold exactly its own value: damage may lose entries, never alter one.
void verify_no_torn_values(unit::TestCache& t, int n) {
    for (int i = 0; i < n; ++i) {
        const std::string k = "key" + std::to_string(i);
        std::string buf(4096, '\0');
        size_t len = 0;
        int rc = shmc_get(t.c, k.data(), k.size(), buf.data(), buf.size(), &len, nullptr, nullptr);
        if (rc == 0)
            CHECK(buf.substr(0, len) == "value" + std::to_string(i) + std::string(i % 300, '.'));
        else
            CHECK((rc == SHMC_E_NOTFOUND || rc == SHMC_E_CORRUPT));
    }
}

void expect_clean_after_check(unit::TestCache& t) {
    shmc_check_report r;
    CHECK(shmc_check(t.c, &r) == 0);
    CHECK(r.stripes_repaired == r.stripes_damaged);
    CHECK(shmc_check(t.c, &r) == 0);
    CHECK(r.stripes_damaged == 0);
}

}  // namespace

TEST_CASE("a stripe left dirty is rebuilt by the next locker, keeping valid entries") {
    unit::TestCache t("dirty");
    fill(t, 300);
    const uint64_t before = t.stats().entries;
    {
        unit::RawSegment raw(t.name);
        for (uint32_t i = 0; i < raw.g.n_stripes; ++i) raw.stripe(i).ctl->dirty.store(1);
    }
    verify_no_torn_values(t, 300);
    CHECK(t.stats().entries == before);
    expect_clean_after_check(t);
}

TEST_CASE("a smashed entry header is dropped, the rest kept") {
    unit::TestCache t("smash");
    fill(t, 300);
    {
        unit::RawSegment raw(t.name);
        StripeRef s = raw.stripe(1);
        for (uint32_t b = 0; b <= s.bucket_mask; ++b)
            if (s.buckets[b] != kNil) {
                std::memset(s.blocks + uint64_t(s.buckets[b]) * kBlockSize + 8, 0xA5, 40);
                break;
            }
    }
    verify_no_torn_values(t, 300);
    expect_clean_after_check(t);
    CHECK(t.stats().entries >= 290);
}

TEST_CASE("out-of-range links and chain loops are caught") {
    unit::TestCache t("links");
    fill(t, 300);
    {
        unit::RawSegment raw(t.name);
        StripeRef s0 = raw.stripe(0), s2 = raw.stripe(2);
        for (uint32_t b = 0; b <= s0.bucket_mask; ++b)
            if (s0.buckets[b] != kNil) s0.buckets[b] = 0x7fffffff;  // out of range
        for (uint32_t b = 0; b <= s2.bucket_mask; ++b)
            if (s2.buckets[b] != kNil) {  // a loop: the entry links to itself
                reinterpret_cast<EntryHeader*>(s2.blocks + uint64_t(s2.buckets[b]) * kBlockSize)
                    ->bucket_next = s2.buckets[b];
            }
        raw.stripe(3).ctl->free_heads[3] = 12345678;  // a free list into nowhere
    }
    verify_no_torn_values(t, 300);
    for (int i = 0; i < 300; ++i) t.set("after" + std::to_string(i), "x");
    expect_clean_after_check(t);
}

TEST_CASE("a chain head in the last blocks of the last stripe is damage, not a read past the end") {
    // An entry header spans several 16-byte blocks, so a head in the stripe's last
    // kGatherMinBlocks - 1 blocks would be read past the blocks; in the last stripe, past the end
    // of the mapping. Lock-free gets, locked operations and the rebuild must all refuse it.
    unit::TestCache t("tail");
    fill(t, 300);
    {
        unit::RawSegment raw(t.name);
        StripeRef s = raw.stripe(raw.g.n_stripes - 1);
        for (uint32_t i = 1; i < kGatherMinBlocks; ++i) {
            s.blocks[uint64_t(s.nblocks - i) * kBlockSize] = kEntryTag;  // looks like a header
            CHECK_THROWS_AS(s.entry(s.nblocks - i), StripeCorrupt);
        }
        CHECK_NOTHROW(s.entry_raw(s.nblocks - kGatherMinBlocks));
        for (uint32_t b = 0; b <= s.bucket_mask; ++b)
            if (s.buckets[b] != kNil) s.buckets[b] = s.nblocks - 1 - (b % (kGatherMinBlocks - 1));
    }
    verify_no_torn_values(t, 300);
    for (int i = 0; i < 300; ++i) t.set("after" + std::to_string(i), "x");
    expect_clean_after_check(t);
}

TEST_CASE("new flags over an old value (a writer killed mid-overwrite) are never served") {
    // An in-place overwrite writes the new checksum first, then the header, then the value. Kill
    // it after the flags and the old value is under the new flags: the checksum covers the flags,
    // so the entry is dropped, by a lock-free get and by a rebuild alike. Same for the L2 epoch.
    for (int field = 0; field < 2; ++field) {
        for (bool dirty : {false, true}) {
            CAPTURE(field);
            CAPTURE(dirty);
            unit::TestCache t("flags");
            const std::string k = "typed", v = "a value whose type its flags name";
            REQUIRE(shmc_set(t.c, k.data(), k.size(), v.data(), v.size(), 7, 0) == 0);
            {
                unit::RawSegment raw(t.name);
                for (uint32_t i = 0; i < raw.g.n_stripes; ++i) {
                    StripeRef s = raw.stripe(i);
                    for (uint32_t b = 0; b <= s.bucket_mask; ++b)
                        if (s.buckets[b] != kNil) {
                            EntryHeader* e = s.entry(s.buckets[b]);
                            if (field == 0) {
                                REQUIRE(bool(e->has_flags));
                                const uint32_t eight = 8;
                                std::memcpy(reinterpret_cast<uint8_t*>(e) + entry_flags_offset(e),
                                            &eight, sizeof eight);
                            } else {
                                e->l2_epoch = 3;
                            }
                            if (dirty) s.ctl->dirty.store(1);
                        }
                }
            }
            char buf[64];
            size_t len = 0;
            uint32_t flags = 0;
            CHECK(shmc_get(t.c, k.data(), k.size(), buf, sizeof buf, &len, &flags, nullptr) ==
                  SHMC_E_NOTFOUND);
            expect_clean_after_check(t);
        }
    }
}

TEST_CASE("random byte damage never crashes, never returns a torn value") {
    std::mt19937 rng(1234);
    for (int round = 0; round < 60; ++round) {
        unit::TestCache t("fuzz");
        fill(t, 200);
        {
            unit::RawSegment raw(t.name);
            StripeRef s = raw.stripe(rng() % raw.g.n_stripes);
            const uint64_t region = raw.g.region_bytes - raw.g.buckets_off;
            uint8_t* start = reinterpret_cast<uint8_t*>(s.buckets);
            for (int k = 0; k < 20; ++k) start[rng() % region] ^= uint8_t(1u << (rng() % 8));
            auto* ctl = reinterpret_cast<uint8_t*>(s.ctl);  // and the control block, past the mutex
            ctl[sizeof(pthread_mutex_t) + 4 +
                rng() % (sizeof(StripeCtl) - sizeof(pthread_mutex_t) - 4 -
                         sizeof(StripeCounters))] ^= 0xff;
        }
        verify_no_torn_values(t, 200);
        uint64_t n;
        shmc_purge(t.c, "key1*", 5, &n);
        for (int i = 0; i < 100; ++i)
            t.set("n" + std::to_string(i), std::string(size_t(i) * 50, 'n'));
        expect_clean_after_check(t);
    }
}

TEST_CASE("check reports the entries its repair dropped") {
    unit::TestCache t("dropped");
    fill(t, 300);
    {
        unit::RawSegment raw(t.name);
        StripeRef s = raw.stripe(0);
        for (uint32_t b = 0; b <= s.bucket_mask; ++b)
            if (s.buckets[b] != kNil) {  // break the value's checksum: a damaged entry
                reinterpret_cast<EntryHeader*>(s.blocks + uint64_t(s.buckets[b]) * kBlockSize)
                    ->checksum ^= 1;
                break;
            }
    }
    shmc_check_report r;
    CHECK(shmc_check(t.c, &r) == 0);
    CHECK(r.stripes_damaged == 1);
    CHECK(r.stripes_repaired == 1);
    CHECK(r.entries_dropped == 1);
}
