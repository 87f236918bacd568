// table.h - the operations of one stripe: its hash chains, entries and counters.
//
// REQUIRES (every function): the stripe lock held. Functions mark the stripe dirty themselves
// (mark_dirty) before their first structural write; the caller clears the mark after the last
// write and before unlocking (see engine.cpp).
#ifndef SHMCACHE_SHM_TABLE_H
#define SHMCACHE_SHM_TABLE_H

#include <cstdint>
#include <string>
#include <vector>

#include "stripe.h"

namespace shmcache::shm {

// A key with its hash. The low bits of hash choose the stripe, its high 32 bits (the tag) choose
// the bucket and are stored in the entry.
struct Key {
    const char* data;
    size_t len;
    uint64_t hash;
    uint32_t tag() const { return uint32_t(hash >> 32); }
};

uint64_t hash_key(const void* key, size_t len);

inline void mark_dirty(const StripeRef& s) {
    if (!s.ctl->dirty.load(std::memory_order_relaxed))
        s.ctl->dirty.store(1, std::memory_order_seq_cst);  // visible before any later store
}

// Relaxed load + store: counters are only written under the stripe lock.
inline void bump(std::atomic<uint64_t>& c, uint64_t n = 1) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

struct GetResult {
    uint32_t value_len;
    uint32_t flags;
    int64_t ttl_left_ms;  // -1: no TTL
};

int table_get(const StripeRef& s, const Key& k, void* buf, size_t cap, GetResult* out);

enum class StoreMode { kSet, kAdd };
// expires_ms: absolute monotonic ms, 0 for none.
int table_store(const StripeRef& s, const Key& k, const void* value, size_t value_len,
                uint32_t flags, uint64_t expires_ms, StoreMode mode);
int table_del(const StripeRef& s, const Key& k);
int table_touch(const StripeRef& s, const Key& k, uint64_t expires_ms);
int table_incr(const StripeRef& s, const Key& k, int64_t delta, int64_t* result);

// Removes the entries whose keys match the (validated) glob, adding each to *removed.
void table_purge(const StripeRef& s, const char* pat, size_t plen, uint64_t* removed);
// Removes the entries with any of the flag bits in mask set, adding each to *removed.
void table_purge_flagged(const StripeRef& s, uint32_t mask, uint64_t* removed);
uint64_t table_clear(const StripeRef& s);

struct ScanItem {
    std::string key;
    uint32_t value_len;
    int64_t ttl_left_ms;
};
void table_collect(const StripeRef& s, const char* pat, size_t plen, std::vector<ScanItem>* out);

// Copies len bytes of the entry's key+value data, starting at offset off, into dst.
void copy_entry_data(const StripeRef& s, uint32_t head, uint64_t off, uint64_t len, void* dst);

}  // namespace shmcache::shm

#endif
