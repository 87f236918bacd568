// rebuild.h - verifying a stripe, and rebuilding it from what survives.
//
// Rebuild is the engine's only repair (docs/architecture.md, "Recovery protocol"): it keeps
// each entry reachable from a hash chain whose header, extents, lengths, hash and checksum are
// valid and whose blocks no other kept entry claims, and recomputes everything else (free map,
// free lists, queues, counters) from those. It reads the segment defensively and never throws
// StripeCorrupt.
//
// REQUIRES (every function): the stripe lock held.
#ifndef SHMCACHE_SHM_REBUILD_H
#define SHMCACHE_SHM_REBUILD_H

#include <cstdint>

#include "shm/stripe.h"

namespace shmcache::shm {

struct RebuildResult {
    uint64_t kept = 0;
    uint64_t dropped = 0;
};

// REQUIRES: the stripe marked dirty (it stays dirty until the caller clears it).
RebuildResult rebuild_stripe(const StripeRef& s);

struct CheckResult {
    bool damaged = false;
    uint64_t entries = 0;
    const char* problem = "";
};

// Verifies every invariant without changing anything.
CheckResult check_stripe(const StripeRef& s);

}  // namespace shmcache::shm

#endif
