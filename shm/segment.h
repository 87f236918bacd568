// segment.h - the named shared-memory object: create or attach, validate, map, unlink.
//
// Boost.Interprocess creates, opens and maps the object (its managed allocator and mutexes are
// not used: FIELD-NOTES). The creation protocol (docs/architecture.md, "Creation and concurrent
// starters") makes concurrent starters share one initialized segment and re-initializes a
// segment whose initializer died half-way.
#ifndef SHMCACHE_SHM_SEGMENT_H
#define SHMCACHE_SHM_SEGMENT_H

#include <shmcache/shmcache.h>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <memory>
#include <string>

#include "shm/layout.h"

namespace shmcache::shm {

// Resolves the name rules of shmc_open (NULL/"" -> $SHMCACHE_NAME -> "shmcache"; a leading '/'
// is dropped) and validates it. Returns 0 or SHMC_E_INVAL.
int resolve_name(const char* name, std::string* out);

class Segment {
public:
    static int open(const std::string& name, const shmc_options& opts,
                    std::unique_ptr<Segment>* out);
    static int unlink(const std::string& name, bool force);
    ~Segment();

    SegmentHeader* header() const { return reinterpret_cast<SegmentHeader*>(base_); }
    uint8_t* base() const { return base_; }
    const Geometry& geometry() const { return g_; }
    const std::string& name() const { return name_; }
    int fd() const;

    // Claims an attach slot for the calling process (again after fork). Idempotent per pid.
    void register_process();
    // The lookup counters of this process's attach slot, or the shared overflow counters if it
    // has none (layout.h, ProcessCounters).
    ProcessCounters* lookup_counters() const {
        auto* pc = reinterpret_cast<ProcessCounters*>(base_ + g_.counters_offset);
        return pc + (slot_ >= 0 ? uint32_t(slot_) : kOverflowCounters);
    }
    // Live processes in the attach table, this one included if registered.
    uint32_t attached() const;

private:
    Segment() = default;
    boost::interprocess::shared_memory_object shm_;
    boost::interprocess::mapped_region region_;
    uint8_t* base_ = nullptr;
    Geometry g_{};
    std::string name_;
    int slot_ = -1;
    int slot_pid_ = 0;
};

}  // namespace shmcache::shm

#endif
