// cluster_slots.h - the pure parts of Redis Cluster routing: which slot a key lives in, which key
// of a command decides that, and what a redirection error says.
//
// A key's slot is CRC16 (XMODEM: polynomial 0x1021, initial value 0) of the key modulo 16384,
// except that a key with a hash tag (the bytes between the first '{' and the first '}' after it,
// if there is at least one byte between them) is hashed on the tag alone, so that keys sharing a
// tag share a slot ("Redis Cluster specification", "Hash tags").
#ifndef SHMCACHE_LIB_L2_CLUSTER_SLOTS_H
#define SHMCACHE_LIB_L2_CLUSTER_SLOTS_H

#include <cstdint>
#include <string_view>
#include <vector>

#include "redis_url.h"

namespace shmcache::l2 {

constexpr int kClusterSlots = 16384;

uint16_t crc16_xmodem(std::string_view data);
// The hash tag rule applied: the part of the key that is hashed.
std::string_view hashed_part(std::string_view key);
int key_slot(std::string_view key);

// The slot a command must be sent to: that of its key (argv[1] for GET, SET, PTTL, UNLINK, ...;
// the first key of EVAL/EVALSHA when numkeys >= 1), or -1 for a command without a key (PING,
// PUBLISH: any node serves it). REQUIRES: a multi-key command's keys share one slot.
int command_slot(const std::vector<std::string_view>& argv);

// A reply error that tells the client to go elsewhere or to try again.
struct Redirect {
    enum Kind { kNone, kMoved, kAsk, kTryAgain } kind = kNone;
    int slot = -1;
    HostPort to;  // kMoved, kAsk; an empty host means "the node that answered" (Redis 7 sends
                  // ":port" when it does not know the address it is reached by)
};
// Parses "MOVED 3999 127.0.0.1:6381", "ASK 3999 [::1]:6381" or "::1:6381", "TRYAGAIN ...",
// "CLUSTERDOWN ...". Anything else (or a malformed redirect) is kNone: an ordinary error.
Redirect parse_redirect(std::string_view err);

}  // namespace shmcache::l2

#endif
