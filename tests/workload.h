// workload.h - a seeded random mix of cache operations in which every result is verified.
//
// The multi-process and crash tests all need "a process hammering the cache and noticing any
// wrong answer". Object keys "k:NNNNN" always hold self-verifying values (support.h); counter keys
// "n:NNN" always hold decimal int64s, changed by set and incr; owned keys "o<slot>:NNN" have one
// writer at a time, which checks freshness as well (OwnedKeys). Any value that fails its check is a
// torn or misfiled value; any return code the contract does not allow for that call is an error;
// any call slower than the slow bound is counted. Results go to an OpCounters block in shared
// memory so the parent can add them up even for processes that were SIGKILLed.
#ifndef SHMCACHE_TESTS_WORKLOAD_H
#define SHMCACHE_TESTS_WORKLOAD_H

#include "support.h"

#include <atomic>
#include <cstdint>
#include <string>

namespace tsupport {

// One per process slot, in shared memory; written only by the process in that slot (relaxed
// atomics so that a reader in another process never sees a torn counter).
struct OpCounters {
    std::atomic<uint64_t> ops, gets, hits, sets, adds, dels, touches, incrs, purges, purged;
    std::atomic<uint64_t> timeouts, slow_ops, corrupt, errors, max_ns;
    char first_problem[256];  // the first corrupt value or error this slot saw
    std::atomic<int> problem_set;

    void note_problem(const char *fmt, ...) __attribute__((format(printf, 2, 3)));
    void add_to(OpCounters &total) const;  // total += *this (plain loads; call when quiet)
};

// Keys with one writer at a time: a process slot's "o<slot>:NNN" keys are written only by the
// process currently in that slot, so it knows exactly what each must hold, which catches what a
// checksum cannot: a stale older version, a deleted key coming back, a lost delete. A miss is
// always allowed (eviction). The record lives in shared memory and survives the writer: before
// each write the writer notes it as in flight, after it the outcome as done; whoever takes the
// slot next (or the parent at the end) accepts either for keys with a write in flight, then
// records what it observed. Each word is (version << 2) | state, stored at once, so a writer
// killed between stores never leaves a half-updated record.
struct OwnedKeys {
    static constexpr uint32_t kKeys = 100;
    enum : uint64_t { kUnknown = 0, kHolds = 1, kAbsent = 2 };
    std::atomic<uint64_t> next_version;
    std::atomic<uint64_t> done[kKeys];
    std::atomic<uint64_t> inflight[kKeys];  // 0: nothing in flight
};

// Relative weights of each operation in the mix (owned: ops on the slot's owned keys, if any).
struct Mix {
    unsigned get = 30, set = 25, big_set = 5, add = 8, del = 10, touch = 5, incr = 12, purge = 2;
    unsigned owned = 12;
};

struct WorkloadConfig {
    uint32_t n_keys = 2000;    // object keys k:00000 .. (the collision space)
    uint32_t n_counters = 64;  // counter keys n:000 ..
    size_t max_payload = 20 * 1024;
    size_t max_value_len = 0;   // the segment's limit (shmc_get_info), values are clamped to it
    unsigned ttl_percent = 10;  // share of writes with a short TTL, so expiry happens too
    uint64_t max_ttl_ms = 2000;
    uint64_t slow_ns = 100 * 1000000ull;  // an op slower than this is a failure in crash tests
    Mix mix;
};

class Workload {
public:
    // owned (optional): the slot's owned-key record, shared memory; slot names the keys.
    Workload(shmc_cache *c, const WorkloadConfig &cfg, uint64_t seed, OpCounters *out,
             OwnedKeys *owned = nullptr, int slot = 0);
    void step();  // one random operation, verified

    // Read every key once and verify what is there (a final sweep after the storm).
    void verify_all();

    // Take over the owned keys: read each, accept what the record allows (including the write a
    // dead predecessor had in flight), and record what was found. Call before the first step().
    void resolve_owned();

private:
    void timed_begin() { t0_ = now_ns(); }
    void timed_end();
    void do_get(bool small_buffer_first);
    void do_set(bool add, bool big);
    void do_del();
    void do_touch();
    void do_incr();
    void do_purge();
    void get_counter(uint32_t i);
    void get_object(uint32_t i, bool small_buffer_first);
    std::string object_key(uint32_t i) const;
    std::string counter_key(uint32_t i) const;
    uint64_t pick_ttl();
    void unexpected(const char *op, const std::string &key, int rc);
    // Owned keys (workload_owned.cpp).
    void do_owned();
    std::string owned_key(uint32_t i) const;
    uint64_t new_version();
    bool check_owned(uint32_t i, bool allow_inflight);  // read key i, verify against the record

    shmc_cache *c_;
    WorkloadConfig cfg_;
    Rng rng_;
    OpCounters *out_;
    OwnedKeys *owned_;
    int slot_;
    std::string val_;
    std::string buf_;
    size_t max_big_payload_ = 0;  // payload of the largest value the segment accepts
    uint64_t t0_ = 0;
    unsigned total_weight_;
};

// Arrays of per-slot records in shared memory, zeroed.
OpCounters *new_counters(int n);
OwnedKeys *new_owned(int n);

// With no writer left alive: take over and verify every slot's owned keys from this process.
void resolve_all_owned(shmc_cache *c, OwnedKeys *owned, int n, OpCounters *out);

}  // namespace tsupport

#endif
