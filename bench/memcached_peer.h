// memcached_peer.h - a memcached server started for a benchmark, on a random loopback port,
// and a pipelined text-protocol client for it (sets and deletes without replies, then stats).
//
// bench_memory sends it the same operations it sends shmcache, so that the entries each holds
// in the same memory can be compared side by side in one run (memcached -m N: N MiB of slabs).
#ifndef SHMCACHE_BENCH_MEMCACHED_PEER_H
#define SHMCACHE_BENCH_MEMCACHED_PEER_H

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace shmcache::bench {

struct MemcachedStats {
    uint64_t curr_items = 0;
    uint64_t evictions = 0;
    uint64_t bytes = 0;  // memory held by stored items, headers included
    // Outside -m: the hash table (memcached's `hash_bytes`), and everything the process holds
    // (VmRSS: the slabs it touched, the hash table, buffers, its code), 0 if unreadable.
    uint64_t hash_bytes = 0;
    uint64_t resident_bytes = 0;
};

class MemcachedPeer {
public:
    // Starts `memcached -m memory_mb` (one thread, no UDP, items up to item_max bytes) and
    // connects to it. ok() is false, and error() says why, if either failed.
    MemcachedPeer(uint64_t memory_mb, uint64_t item_max);
    ~MemcachedPeer();
    MemcachedPeer(const MemcachedPeer&) = delete;
    MemcachedPeer& operator=(const MemcachedPeer&) = delete;

    bool ok() const { return fd_ >= 0; }
    const std::string& error() const { return error_; }
    std::string version() const { return version_; }

    // Queue a command; they are sent in batches (noreply: memcached answers none of them).
    void set(const char* key, size_t klen, const char* value, size_t vlen);
    void del(const char* key, size_t klen);
    // Sends what is queued and reads `stats`. False (and error()) on a broken connection.
    bool stats(MemcachedStats* out);

private:
    void flush();
    bool send_all(const char* p, size_t n);
    void drain();  // discards anything the server sent (an error line, say) so it never blocks
    std::string request(const std::string& cmd, const char* terminator);

    pid_t pid_ = -1;
    int fd_ = -1;
    std::string out_;
    std::string error_;
    std::string version_;
};

}  // namespace shmcache::bench

#endif
