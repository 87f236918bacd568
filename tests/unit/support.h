// support.h - helpers for the engine unit tests: unique segments, and a raw view of a segment's
// memory (mapped independently of the engine) so tests can inspect and damage it.
#ifndef SHMCACHE_TESTS_UNIT_SUPPORT_H
#define SHMCACHE_TESTS_UNIT_SUPPORT_H

#include <shmcache/shmcache.h>

#include <string>

#include "shm/layout.h"
#include "shm/stripe.h"

namespace unit {

// A segment with a unique name, unlinked when the test ends.
struct TestCache {
    explicit TestCache(const char* tag, shmc_options o = defaults());
    ~TestCache();
    static shmc_options defaults();
    void set(const std::string& k, const std::string& v, uint64_t ttl_ms = 0);
    bool has(const std::string& k);
    std::string get(const std::string& k);  // "" and a failed CHECK if absent
    shmc_stats stats();
    std::string name;
    shmc_cache* c = nullptr;
};

// The segment's bytes, mapped read-write by this process, with its geometry.
struct RawSegment {
    explicit RawSegment(const std::string& name);
    ~RawSegment();
    shmcache::shm::SegmentHeader* header() const {
        return reinterpret_cast<shmcache::shm::SegmentHeader*>(base);
    }
    shmcache::shm::StripeRef stripe(uint32_t i) const;
    uint8_t* base = nullptr;
    size_t size = 0;
    shmcache::shm::Geometry g{};
};

std::string unique_name(const char* tag);

}  // namespace unit

#endif
