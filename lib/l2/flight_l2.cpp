// flight_l2.cpp - single flight across hosts: the Tiers side of shmc_fetch (docs/stampede.md).
//
// The L1 fetch (Engine::fetch) runs first and settles everything that L1 can: hits, stale
// values, and which caller of this host goes on. Only that caller (the lease owner) or one that
// could not get a lease reaches Redis, so a host sends Redis one read per missing key, not one
// per waiting process. Then:
//   - GET + PTTL. A hit is copied into L1 and the local lease released in one locked step (the
//     host's waiters see the value), under the same rules as shmc_tget's fill.
//   - A miss with SHMC_FETCH_L2_LOCK: SET <prefix>__shmcache_lease__:<key> <token> NX PX lease_ms,
//     pipelined with GET + PTTL of the key so that a value stored just before the lock was freed
//     is seen in the same round trip. Won: the caller computes for every host. Held by another
//     host: poll the same three commands (1 ms, doubling to 8 ms) until the value appears, the
//     lock is ours (freed, or expired because its holder died: PX bounds that at lease_ms), or
//     wait_ms runs out; meanwhile the local lease is renewed so this host's waiters stay waiting
//     on this one caller.
//   - The lock is released on complete (in the round trip that writes the value, after the SET)
//     and on abandon, by a script that deletes it only if it still holds this caller's token,
//     so a lock that expired and was taken by another host is never deleted by its old owner.
// A Redis failure at any step counts as a miss: the caller computes with its local lease.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "shm/errors.h"
#include "l1_copy.h"
#include "tiers.h"

namespace shmcache::l2 {

namespace {

constexpr uint64_t kFirstL2PollMs = 1;
constexpr uint64_t kMaxL2PollMs = 8;

// Deletes KEYS[1] only if it still holds ARGV[1]: a compare-and-delete in one step.
constexpr const char* kReleaseScript =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) "
    "else return 0 end";

bool has_value(uint32_t outcome) {
    return outcome == SHMC_FETCH_HIT || outcome == SHMC_FETCH_STALE ||
           outcome == SHMC_FETCH_STALE_REFRESH || outcome == SHMC_FETCH_EARLY_REFRESH;
}

bool is_string(const redisReply& r) { return r.type == REDIS_REPLY_STRING; }

bool set_ok(const redisReply& r) {
    return r.type == REDIS_REPLY_STATUS && r.len == 2 && std::memcmp(r.str, "OK", 2) == 0;
}

long long pttl_of(const redisReply& r) { return r.type == REDIS_REPLY_INTEGER ? r.integer : -1; }

}  // namespace

std::string Tiers::lock_key(const void* key, size_t klen) const {
    std::string k;
    k.reserve(prefix_.size() + 20 + klen);
    k.append(prefix_).append("__shmcache_lease__:").append(static_cast<const char*>(key), klen);
    return k;
}

std::string Tiers::lock_token(uint64_t lease) const {
    // This host's origin plus the grant: unique across hosts and across grants of this host.
    char b[40];
    std::snprintf(b, sizeof b, "%016llx:%016llx", (unsigned long long)origin_,
                  (unsigned long long)(lease & ~shm::kTokenUserBits));
    return b;
}

int Tiers::release_lock(const std::string& lkey, uint64_t lease) {
    const std::string token = lock_token(lease);
    const Command cmd{"EVAL", kReleaseScript, "1", lkey, token};
    Replies r;
    return client_->run(std::span(&cmd, 1), &r);
}

int Tiers::serve_l2(const void* key, size_t klen, void* buf, size_t cap, const redisReply& value,
                    long long pttl, const shm::FillGuard& guard, const shmc_fetch_options& o,
                    shm::FetchResult* out, uint32_t* served_by) {
    count(shm::kL2Hits);
    const size_t len = value.len;
    const uint64_t lease = out->lease;
    // With stale_ttl the Redis key outlives the value's freshness by stale_ttl_ms
    // (fetch_complete): what is left of its PTTL beyond that is the freshness left.
    long long fresh_pttl = pttl;
    if (o.stale_ttl_ms && pttl > 0) {
        if (pttl <= (long long)o.stale_ttl_ms) {
            // In its stale window: served at once, and this caller (if it holds the lease)
            // refreshes it. No L1 copy: it would be fresh to the next caller.
            out->outcome = lease ? SHMC_FETCH_STALE_REFRESH : SHMC_FETCH_STALE;
            out->value_len = len;
            out->flags = SHMC_FLAG_FROM_L2;
            out->ttl_left_ms = 0;
            *served_by = SHMC_TIER_L2;
            shm::clear_errmsg();
            if (cap < len) {
                if (lease) engine_.lease_release(key, klen, lease, false);
                out->lease = 0;
                return shm::fail(SHMC_E_BUFFER_TOO_SMALL, "value of %zu bytes; buffer holds %zu",
                                 len, cap);
            }
            if (len) std::memcpy(buf, value.str, len);
            return 0;
        }
        fresh_pttl = pttl - (long long)o.stale_ttl_ms;
    }
    const L1Copy copy = l1_copy_from_pttl(fresh_pttl, o.fill_ttl_ms);
    if (copy.fill && fills_allowed()) {
        shm::FetchStore st;
        st.flags = SHMC_FLAG_FROM_L2;
        st.ttl_ms = copy.ttl_ms;
        st.stale_ms = uint32_t(o.stale_ttl_ms);  // validated below 2^32
        st.guard = &guard;
        st.l2_copy = true;
        if (engine_.fetch_complete(key, klen, value.str, len, st, lease) == 0) count(shm::kL2Fills);
    } else if (lease) {
        // No copy may be kept (no live subscription, or the key is in its last millisecond):
        // release the lease, so that the next waiter reads Redis in turn rather than waiting for
        // a value that will not come.
        engine_.lease_release(key, klen, lease, false);
    }
    shm::clear_errmsg();  // a fill that did not happen is not the caller's failure
    out->outcome = SHMC_FETCH_HIT;
    out->lease = 0;
    out->value_len = len;
    out->flags = SHMC_FLAG_FROM_L2;
    out->ttl_left_ms = copy.ttl_left_ms;
    *served_by = SHMC_TIER_L2;
    if (cap < len)
        return shm::fail(SHMC_E_BUFFER_TOO_SMALL, "value of %zu bytes; buffer holds %zu", len, cap);
    if (len) std::memcpy(buf, value.str, len);
    return 0;
}

int Tiers::fetch(const void* key, size_t klen, void* buf, size_t cap, const shmc_fetch_options& o,
                 const shm::FetchParams& p, shm::FetchResult* out, uint32_t* served_by) {
    *served_by = 0;
    if (int rc = engine_.fetch(key, klen, buf, cap, p, out)) return rc;
    if (p.no_wait && !has_value(out->outcome)) {
        // NO_WAIT: the caller comes back without the flag. (BUSY from L1 already, or a stripe
        // lock timeout settled as COMPUTE_UNLEASED: going on would ask Redis.)
        *out = shm::FetchResult{};
        out->outcome = SHMC_FETCH_BUSY;
        return 0;
    }
    const bool want_lock = (o.flags & SHMC_FETCH_L2_LOCK) && out->lease;
    if (has_value(out->outcome)) {
        *served_by = SHMC_TIER_L1;
        if (!want_lock) return 0;
        // A refresh (stale or early): one host refreshes for all. The value in hand is served
        // either way; if another host holds the lock, the refresh is left to it.
        const std::string lkey = lock_key(key, klen);
        const std::string token = lock_token(out->lease);
        const std::string px = std::to_string(p.lease_ms);
        const Command cmd{"SET", lkey, token, "NX", "PX", px};
        Replies r;
        if (client_->run(std::span(&cmd, 1), &r) != 0) {
            shm::clear_errmsg();  // Redis down: this host refreshes on its own
            return 0;
        }
        if (set_ok(r[0])) {
            out->lease |= kLeaseL2Lock;
            engine_.flight_count(shm::kFlL2Locks);
            return 0;
        }
        engine_.flight_count(shm::kFlL2LockBusy);
        engine_.lease_release(key, klen, out->lease, false);
        out->lease = 0;
        out->outcome = out->outcome == SHMC_FETCH_STALE_REFRESH ? SHMC_FETCH_STALE : SHMC_FETCH_HIT;
        return 0;
    }

    // An L1 miss: this caller computes unless Redis has the value.
    const std::string k = l2_key(key, klen);
    shm::FillGuard guard = engine_.fill_guard(key, klen);
    {
        const Command cmds[] = {{"GET", k}, {"PTTL", k}};
        Replies r;
        if (client_->run(cmds, &r) != 0) {
            shm::clear_errmsg();  // an L2 failure is a miss: compute with the local lease
            return 0;
        }
        if (is_string(r[0]))
            return serve_l2(key, klen, buf, cap, r[0], pttl_of(r[1]), guard, o, out, served_by);
    }
    count(shm::kL2Misses);
    if (!want_lock) return 0;

    const std::string lkey = lock_key(key, klen);
    const std::string token = lock_token(out->lease);
    const std::string px = std::to_string(p.lease_ms);
    const uint64_t start = now_ms();
    const uint64_t give_up = start + p.wait_ms;
    uint64_t sleep_ms = kFirstL2PollMs;
    bool busy = false;
    for (;;) {
        guard = engine_.fill_guard(key, klen);
        const Command cmds[] = {{"SET", lkey, token, "NX", "PX", px}, {"GET", k}, {"PTTL", k}};
        Replies r;
        if (client_->run(cmds, &r) != 0) {
            shm::clear_errmsg();
            return 0;  // compute with the local lease only
        }
        const bool won = set_ok(r[0]);
        if (is_string(r[1])) {
            // The value arrived (just before we took the lock, or while another host held it).
            if (won) release_lock(lkey, out->lease);
            if (busy) engine_.flight_count(shm::kFlL2Served);
            shm::clear_errmsg();
            return serve_l2(key, klen, buf, cap, r[1], pttl_of(r[2]), guard, o, out, served_by);
        }
        if (won) {
            out->lease |= kLeaseL2Lock;
            engine_.flight_count(shm::kFlL2Locks);
            return 0;
        }
        if (!busy) {
            busy = true;
            engine_.flight_count(shm::kFlL2LockBusy);
        }
        const uint64_t now = now_ms();
        if (now >= give_up) {
            engine_.flight_count(shm::kFlLeaseTimeouts);
            return 0;  // compute with the local lease; the other host's lock stays its own
        }
        // Keep this host's waiters on this caller: they would otherwise take the local lease
        // over at its deadline and ask Redis for the lock too.
        engine_.lease_renew(key, klen, out->lease, p.lease_ms);
        shm::clear_errmsg();
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min(sleep_ms, give_up - now)));
        sleep_ms = std::min(sleep_ms * 2, kMaxL2PollMs);
    }
}

int Tiers::fetch_complete(const void* key, size_t klen, const void* value, size_t vlen,
                          uint32_t flags, uint32_t compute_ms, const shmc_fetch_options& o,
                          uint64_t lease) {
    if (!key || !klen) return shm::fail(SHMC_E_INVAL, "key is NULL or empty");
    if (klen > SHMC_MAX_KEY_LEN)
        return shm::fail(SHMC_E_KEY_TOO_LONG, "key of %zu bytes is over the limit of %u", klen,
                         SHMC_MAX_KEY_LEN);
    if (!value && vlen) return shm::fail(SHMC_E_INVAL, "value is NULL");
    const bool to_l2 = (o.tiers & SHMC_TIER_L2) != 0;
    const bool unlock = (lease & kLeaseL2Lock) != 0;
    int l2_rc = 0;
    std::string l2_msg;
    const shm::FillGuard before = engine_.fill_guard(key, klen);
    if (to_l2 || unlock) {
        // One round trip: the value (and its invalidation) first, then the lock, so that a host
        // polling for the value never finds the lock gone and the value still missing.
        const std::string k = l2_key(key, klen);
        // With stale_ttl, Redis keeps the value through its stale window too, so that no host's
        // L1 copy is invalidated by the key's expiry while it may still be served stale, and
        // an L2 hit in that window is known to be stale (serve_l2).
        const uint64_t l2_px = o.l2_ttl_ms && o.stale_ttl_ms ? o.l2_ttl_ms + o.stale_ttl_ms
                                                              : o.l2_ttl_ms;
        const std::string px = std::to_string(l2_px);
        const std::string_view v(static_cast<const char*>(value), vlen);
        const bool publish = to_l2 && publishes();
        const std::string msg =
            publish ? encode_invalidation(origin_, 'S',
                                          std::string_view(static_cast<const char*>(key), klen))
                    : "";
        const std::string lkey = unlock ? lock_key(key, klen) : "";
        const std::string token = unlock ? lock_token(lease) : "";
        std::vector<Command> cmds;
        if (to_l2)
            cmds.push_back(o.l2_ttl_ms ? Command{"SET", k, v, "PX", px} : Command{"SET", k, v});
        if (publish) cmds.push_back({"PUBLISH", channel_, msg});
        if (unlock) cmds.push_back({"EVAL", kReleaseScript, "1", lkey, token});
        Replies r;
        l2_rc = client_->run(cmds, &r);
        if (l2_rc) {
            l2_msg = shm::last_errmsg();
            if (to_l2) count(shm::kL2DroppedWrites);
        } else if (to_l2) {
            count(shm::kL2Sets);
            if (publish) count(shm::kL2InvalSent);
        }
    }
    shm::FetchStore st;
    st.flags = to_l2 ? flags | SHMC_FLAG_FROM_L2 : flags;
    st.ttl_ms = o.ttl_ms;
    st.stale_ms = uint32_t(o.stale_ttl_ms);
    st.compute_ms = compute_ms;
    shm::FillGuard after;
    if (to_l2 && l2_rc) {
        // Not in Redis: this host's own value for at most outage_write_ttl_ms (as Tiers::set).
        st.flags &= ~SHMC_FLAG_FROM_L2;
        st.ttl_ms = st.ttl_ms ? std::min<uint64_t>(st.ttl_ms, outage_write_ttl_ms_)
                              : outage_write_ttl_ms_;
        st.stale_ms = 0;
    } else if (to_l2) {
        // Stored under the guard taken after this write's own tracking echo, so the echo does
        // not drop it (Tiers::await_own_echo); if no copy may be kept, the lease is still
        // released.
        if (await_own_echo(key, klen, before, &after)) {
            st.guard = &after;
            st.overwrite = true;
            st.l2_copy = true;
        } else {
            engine_.invalidate_key(key, klen);  // no copy, and no older one either
            engine_.lease_release(key, klen, lease, false);
            shm::clear_errmsg();
            if (l2_rc) return shm::fail(l2_rc, "%s", l2_msg.c_str());
            return 0;
        }
    }
    int l1_rc = engine_.fetch_complete(key, klen, value, vlen, st, lease);
    if (l1_rc == SHMC_E_EXISTS && st.guard) {  // invalidated meanwhile: no copy, not an error
        engine_.invalidate_key(key, klen);       // and no older one either
        l1_rc = 0;
        shm::clear_errmsg();
    }
    if (l1_rc) return l1_rc;
    if (l2_rc) return shm::fail(l2_rc, "%s", l2_msg.c_str());
    return 0;
}

int Tiers::fetch_abandon(const void* key, size_t klen, uint64_t lease) {
    // The Redis lock first, so that the local waiter that takes the lease next can take the lock
    // too. A failed release leaves the lock to expire at its PX (lease_ms), when the other hosts
    // take it as after a host's death: not the caller's failure.
    if ((lease & kLeaseL2Lock) && key && klen && klen <= SHMC_MAX_KEY_LEN) {
        release_lock(lock_key(key, klen), lease);
        shm::clear_errmsg();
    }
    return engine_.lease_release(key, klen, lease, true);
}

}  // namespace shmcache::l2
