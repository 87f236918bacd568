// tiers.cpp - see tiers.h.
#include "tiers.h"

#include <algorithm>
#include <cstring>
#include <random>
#include <thread>

#include <unistd.h>

#include "shm/errors.h"
#include "shm/glob.h"
#include "l1_copy.h"
#include "log.h"

namespace shmcache::l2 {

namespace {

constexpr uint32_t kScanCount = 1000;  // keys asked of each SCAN step
constexpr uint32_t kTierMask = SHMC_TIER_BOTH;

bool is_miss(int rc) { return rc == SHMC_E_NOTFOUND || rc == SHMC_E_LOCK_TIMEOUT; }

int check_tiers(uint32_t tiers) {
    if (!tiers || (tiers & ~kTierMask))
        return shm::fail(SHMC_E_INVAL, "tiers must be SHMC_TIER_L1, SHMC_TIER_L2 or SHMC_TIER_BOTH");
    return 0;
}

int check_key(const void* key, size_t klen) {
    if (!key || !klen) return shm::fail(SHMC_E_INVAL, "key is NULL or empty");
    if (klen > SHMC_MAX_KEY_LEN)
        return shm::fail(SHMC_E_KEY_TOO_LONG, "key of %zu bytes is over the limit of %u", klen,
                         SHMC_MAX_KEY_LEN);
    return 0;
}

#ifdef SHMC_TEST_HOOKS
// Test builds only: SHMC_TEST_FILL_DELAY_US widens the window between reading a value from L2
// and copying it into L1, so the race the invalidation sequence closes becomes reproducible.
void test_delay_before_fill() {
    static const long us = [] {
        const char* v = getenv("SHMC_TEST_FILL_DELAY_US");
        return v ? atol(v) : 0L;
    }();
    if (us > 0) usleep(useconds_t(us));
}
#else
void test_delay_before_fill() {}
#endif

uint64_t random_origin() {
    std::random_device rd;
    uint64_t v = 0;
    while (!v) v = (uint64_t(rd()) << 32) | rd();
    return v;
}

}  // namespace

std::string redis_match_pattern(const std::string& prefix, const char* pat, size_t plen) {
    // Redis's matcher differs from ours in corners (a leading `]` in a class, `[!`, ranges over
    // bytes >= 0x80 compared as signed chars), so nothing is passed through unexamined: every
    // literal byte that Redis could read as syntax is escaped, and every class is rewritten as
    // the explicit list of the bytes it matches, each escaped (`?` if it matches all 256).
    auto literal = [](std::string* out, char ch) {
        if (ch == '*' || ch == '?' || ch == '[' || ch == ']' || ch == '\\') out->push_back('\\');
        out->push_back(ch);
    };
    std::string out;
    out.reserve(prefix.size() * 2 + plen * 2);
    for (char ch : prefix) literal(&out, ch);
    for (size_t i = 0; i < plen;) {
        const char ch = pat[i];
        if (ch == '*' || ch == '?') {
            out.push_back(ch);
            ++i;
        } else if (ch == '\\' && i + 1 < plen) {
            literal(&out, pat[i + 1]);
            i += 2;
        } else if (ch == '[') {
            std::bitset<256> members;
            size_t end = 0;
            if (!shm::glob_class(pat, plen, i, &end, &members)) {  // callers validate first
                literal(&out, ch);
                ++i;
                continue;
            }
            if (members.all()) {
                out.push_back('?');
            } else {
                out.push_back('[');
                for (unsigned c = 0; c < 256; ++c) {
                    if (!members.test(c)) continue;
                    out.push_back('\\');
                    out.push_back(char(c));
                }
                out.push_back(']');  // "[]" (no member) matches nothing, as in ours
            }
            i = end;
        } else {
            literal(&out, ch);
            ++i;
        }
    }
    return out;
}

int Tiers::create(shm::Engine& engine, const shmc_l2_options& o, std::unique_ptr<Tiers>* out) {
    if (!o.url || !*o.url) return shm::fail(SHMC_E_INVAL, "L2 options: url is required");
    ClientOptions c;
    std::string why;
    if (!parse_redis_url(o.url, &c.endpoint, &why))
        return shm::fail(SHMC_E_INVAL, "L2 options: bad Redis URL: %s", why.c_str());
    if (!o.command_timeout_ms || !o.connect_timeout_ms)
        return shm::fail(SHMC_E_INVAL, "L2 options: timeouts must be at least 1 ms");
    if (o.command_timeout_ms > 60000 || o.connect_timeout_ms > 60000)
        return shm::fail(SHMC_E_INVAL, "L2 options: timeouts above 60 s are not allowed");
    if (!o.max_connections || o.max_connections > 1024)
        return shm::fail(SHMC_E_INVAL, "L2 options: max_connections must be 1-1024");
    if (o.flags & ~uint32_t(SHMC_L2_NO_SUBSCRIBE | SHMC_L2_NO_PUBLISH | SHMC_L2_NO_TRACKING))
        return shm::fail(SHMC_E_INVAL, "L2 options: unknown flags 0x%x", o.flags);
    const uint32_t lease = o.link_lease_ms ? o.link_lease_ms : 1000;
    if (lease < 50 || lease > 60000)
        return shm::fail(SHMC_E_INVAL, "L2 options: link_lease_ms must be 50-60000");
    c.connect_timeout_ms = o.connect_timeout_ms;
    c.command_timeout_ms = o.command_timeout_ms;
    c.max_connections = o.max_connections;
    c.retry_on_timeout = o.retry_on_timeout != 0;
    c.breaker_threshold = o.breaker_threshold ? o.breaker_threshold : 3;
    c.breaker_cooldown_ms = o.breaker_cooldown_ms;
    std::string prefix;
    if (o.key_prefix && *o.key_prefix) {
        if (strlen(o.key_prefix) > 1024)
            return shm::fail(SHMC_E_INVAL, "L2 options: key_prefix is over 1024 bytes");
        prefix = std::string(o.key_prefix) + (o.key_separator ? o.key_separator : ":");
    }
    std::string watch = o.tracking_prefix ? o.tracking_prefix : "";
    if (watch.size() > 1024)
        return shm::fail(SHMC_E_INVAL, "L2 options: tracking_prefix is over 1024 bytes");
    shm::L2Shared& shared = engine.l2_shared();
    const ClientCounters counters{&shared.counters[shm::kL2Errors],
                                  &shared.counters[shm::kL2Timeouts],
                                  &shared.counters[shm::kL2BreakerOpens],
                                  &engine.coherence().epoch};
    std::unique_ptr<Client> client;
    if (c.endpoint.topology == Topology::kCluster)
        client = ClusterClient::create(std::move(c), counters, &why);
    else
        client = RedisClient::create(std::move(c), counters, &why);
    if (!client) return shm::fail(SHMC_E_INVAL, "L2 options: TLS: %s", why.c_str());
    out->reset(new Tiers(engine, std::move(client), std::move(prefix), std::move(watch), o.flags,
                         lease, o.outage_write_ttl_ms ? o.outage_write_ttl_ms : 1000));
    return 0;
}

Tiers::Tiers(shm::Engine& engine, std::unique_ptr<Client> client, std::string prefix,
             std::string watch, uint32_t flags, uint32_t lease_ms, uint32_t outage_write_ttl_ms)
    : engine_(engine),
      shared_(engine.l2_shared()),
      coh_(engine.coherence()),
      prefix_(std::move(prefix)),
      channel_(prefix_ + "__shmcache__:invalidate"),
      flags_(flags),
      outage_write_ttl_ms_(outage_write_ttl_ms) {
    uint64_t expected = 0;
    shared_.origin.compare_exchange_strong(expected, random_origin());
    origin_ = shared_.origin.load();
    client_ = std::move(client);
    const bool cluster = client_->options().endpoint.topology == Topology::kCluster;
    if (!(flags_ & SHMC_L2_NO_SUBSCRIBE)) {
        SubscriberOptions so;
        so.channel = channel_;
        so.prefix = prefix_;
        so.watch = std::move(watch);
        // A cluster's tracking would report only the keys of the one master the subscriber
        // connects to; classic PUBLISH reaches every node's subscribers (docs/l2.md, "Redis
        // Cluster"), so a cluster runs in publish mode.
        so.tracking = !(flags_ & SHMC_L2_NO_TRACKING) && !cluster;
        if (cluster && !(flags_ & SHMC_L2_NO_TRACKING))
            so.tracking_off =
                "not used with Redis Cluster (a node's tracking sees its own slots only)";
        so.lease_ms = lease_ms;
        subscriber_ = std::make_unique<Subscriber>(engine_, *client_, std::move(so));
        subscriber_->ensure_started();
    }
}

std::string Tiers::l2_key(const void* key, size_t klen) const {
    std::string k;
    k.reserve(prefix_.size() + klen);
    k.append(prefix_).append(static_cast<const char*>(key), klen);
    return k;
}

bool Tiers::fills_allowed() const {
    // Without a live link on this host, another host's invalidation would be missed: serve the
    // L2 value but do not keep a copy (it would not be served anyway: layout.h, L2Coherence).
    return link_vouched(coh_);
}

bool Tiers::publishes() const {
    // In tracking mode Redis itself reports every write to every host: publishing too would
    // only double the work. Before the first subscription (mode none) we publish, in case the
    // other hosts are in publish mode.
    return !(flags_ & SHMC_L2_NO_PUBLISH) &&
           coh_.mode.load(std::memory_order_relaxed) != shm::kModeTracking;
}

uint32_t Tiers::wait_own_echo(const shm::FillGuard& before) const {
    // Tracking mode reports this host's own writes back to its subscriber too, which drops the
    // key from L1 (Engine::invalidate_key: the key's sequence moves with the delete, under the
    // stripe lock). Waiting for it, bounded, leaves this host settled when the write returns:
    // nothing of it is still in flight to undo a copy stored next.
    const std::atomic<uint32_t>& slot = coh_.key_seq[before.slot];
    uint32_t cur = slot.load(std::memory_order_acquire);
    if (coh_.mode.load(std::memory_order_relaxed) != shm::kModeTracking || !link_vouched(coh_))
        return cur;  // no echo expected soon (one that comes later only drops a copy)
    const uint64_t give_up = now_ms() + kEchoWaitMs;
    for (int spins = 0; cur == before.slot_seq && now_ms() < give_up; ++spins) {
        if (spins < 50)
            std::this_thread::yield();
        else
            usleep(20);
        cur = slot.load(std::memory_order_acquire);
    }
    return cur;
}

bool Tiers::await_own_echo(const void* key, size_t klen, const shm::FillGuard& before,
                           shm::FillGuard* after) {
    // The L1 copy of a write to both tiers is stored after the write's echo (wait_own_echo), or
    // it would be dropped a moment later (a needless Redis read on the next get), under a guard
    // taken after the echo, so that any later invalidation still wins. More than one move of
    // the key's sequence: another invalidation of the key (or of one sharing its slot) came
    // too, and no copy is kept.
    const uint32_t cur = wait_own_echo(before);
    if (cur - before.slot_seq > 1) return false;
    *after = engine_.fill_guard(key, klen);
    return after->slot_seq == cur && after->epoch == before.epoch && after->seq == before.seq;
}

int Tiers::get(const void* key, size_t klen, void* buf, size_t cap, size_t* value_len,
               uint32_t* flags, int64_t* ttl_left_ms, uint32_t tiers, uint64_t fill_ttl_ms,
               uint32_t* served_by) {
    const bool l1_missed = (tiers & SHMC_TGET_AFTER_L1_MISS) != 0;
    tiers &= ~SHMC_TGET_AFTER_L1_MISS;
    if (int rc = check_tiers(tiers)) return rc;
    if (l1_missed && tiers != SHMC_TIER_BOTH)
        return shm::fail(SHMC_E_INVAL, "SHMC_TGET_AFTER_L1_MISS goes with SHMC_TIER_BOTH only");
    if (!value_len) return shm::fail(SHMC_E_INVAL, "value_len is NULL");
    if (!buf && cap) return shm::fail(SHMC_E_INVAL, "buf is NULL with cap > 0");
    int rc = SHMC_E_NOTFOUND;
    if ((tiers & SHMC_TIER_L1) && !l1_missed) {
        rc = engine_.get(key, klen, buf, cap, value_len, flags, ttl_left_ms);
        if (rc == 0 && served_by) *served_by = SHMC_TIER_L1;
        if (!is_miss(rc) || !(tiers & SHMC_TIER_L2)) return rc;
    }
    if (int krc = check_key(key, klen)) return krc;
    const shm::FillGuard guard = engine_.fill_guard(key, klen);
    const std::string k = l2_key(key, klen);
    const Command cmds[] = {{"GET", k}, {"PTTL", k}};
    Replies r;
    if (int lrc = client_->run(cmds, &r)) return lrc;
    if (r[0].type != REDIS_REPLY_STRING) {
        count(shm::kL2Misses);
        return shm::fail(SHMC_E_NOTFOUND, "key not found in %s",
                         tiers & SHMC_TIER_L1 ? "L1 or L2" : "L2");
    }
    count(shm::kL2Hits);
    const long long pttl = r[1].type == REDIS_REPLY_INTEGER ? r[1].integer : -1;
    const size_t len = r[0].len;
    const L1Copy copy = l1_copy_from_pttl(pttl, fill_ttl_ms);
    if ((tiers & SHMC_TIER_L1) && copy.fill && fills_allowed()) {
        test_delay_before_fill();
        if (engine_.fill(key, klen, r[0].str, len, SHMC_FLAG_FROM_L2, copy.ttl_ms, guard) == 0)
            count(shm::kL2Fills);
        shm::clear_errmsg();  // a fill that did not happen is not the caller's failure
    }
    *value_len = len;
    if (flags) *flags = SHMC_FLAG_FROM_L2;
    if (ttl_left_ms) *ttl_left_ms = copy.ttl_left_ms;
    if (served_by) *served_by = SHMC_TIER_L2;
    if (cap < len)
        return shm::fail(SHMC_E_BUFFER_TOO_SMALL, "value of %zu bytes; buffer holds %zu", len, cap);
    if (len) memcpy(buf, r[0].str, len);
    return 0;
}

int Tiers::write_l2(Command cmd, char op, const void* key, size_t klen, shm::L2Counter done,
                    Replies* r, std::string* errmsg) {
    // The write and its invalidation in one round trip; a write that fails is dropped and
    // counted, never queued (docs/l2.md).
    std::vector<Command> cmds{std::move(cmd)};
    const bool publish = publishes();
    const std::string msg =
        publish ? encode_invalidation(origin_, op, {static_cast<const char*>(key), klen}) : "";
    if (publish) cmds.push_back({"PUBLISH", channel_, msg});
    const int rc = client_->run(cmds, r);
    if (rc) {
        count(shm::kL2DroppedWrites);
        *errmsg = shm::last_errmsg();
        return rc;
    }
    count(done);
    if (publish) count(shm::kL2InvalSent);
    return 0;
}

int Tiers::set(const void* key, size_t klen, const void* value, size_t vlen, uint32_t flags,
               uint64_t l1_ttl_ms, uint64_t l2_ttl_ms, uint32_t tiers) {
    if (int rc = check_tiers(tiers)) return rc;
    if (int rc = check_key(key, klen)) return rc;
    if (!value && vlen) return shm::fail(SHMC_E_INVAL, "value is NULL");
    if (vlen > SHMC_MAX_VALUE_LEN)
        return shm::fail(SHMC_E_VALUE_TOO_LARGE, "value of %zu bytes is over the limit of %u",
                         vlen, SHMC_MAX_VALUE_LEN);
    // A value L1 will refuse is refused before Redis is written: nothing is stored anywhere.
    if ((tiers & SHMC_TIER_L1) && vlen > engine_.max_value_len())
        return shm::fail(SHMC_E_VALUE_TOO_LARGE,
                         "value of %zu bytes is over this segment's limit of %u bytes "
                         "(max_value_len); nothing stored in either tier",
                         vlen, engine_.max_value_len());
    int l2_rc = 0;
    std::string l2_msg;
    const shm::FillGuard before = engine_.fill_guard(key, klen);
    if (tiers & SHMC_TIER_L2) {
        const std::string k = l2_key(key, klen);
        const std::string px = std::to_string(l2_ttl_ms);
        const std::string_view v(static_cast<const char*>(value), vlen);
        Replies r;
        l2_rc = write_l2(l2_ttl_ms ? Command{"SET", k, v, "PX", px} : Command{"SET", k, v}, 'S',
                         key, klen, shm::kL2Sets, &r, &l2_msg);
    }
    int l1_rc = 0;
    if (tiers == SHMC_TIER_BOTH && l2_rc) {
        // Writes during an outage (docs/l2.md): the value did not reach Redis, so this host's
        // copy is its own, not a mirror of L2: an L1-only entry that lives at most
        // outage_write_ttl_ms, whatever happens to the link. Other hosts keep what Redis has.
        const uint64_t ttl = l1_ttl_ms ? std::min<uint64_t>(l1_ttl_ms, outage_write_ttl_ms_)
                                       : outage_write_ttl_ms_;
        l1_rc = engine_.store(key, klen, value, vlen, flags & ~SHMC_FLAG_FROM_L2, ttl,
                              shm::StoreMode::kSet);
    } else if (tiers == SHMC_TIER_BOTH) {
        shm::FillGuard after;
        l1_rc = await_own_echo(key, klen, before, &after)
                    ? engine_.fill(key, klen, value, vlen, flags | SHMC_FLAG_FROM_L2, l1_ttl_ms,
                                   after, shm::StoreMode::kSet)
                    : SHMC_E_EXISTS;
        if (l1_rc == SHMC_E_EXISTS) {
            // Invalidated meanwhile: no copy (not an error), and no older one either (without an
            // echo, in publish mode, nothing else would remove it).
            l1_rc = engine_.invalidate_key(key, klen);
            if (l1_rc == SHMC_E_NOTFOUND) l1_rc = 0;
            if (!l1_rc) shm::clear_errmsg();
        }
    } else if (tiers == SHMC_TIER_L1) {
        l1_rc = engine_.store(key, klen, value, vlen, flags, l1_ttl_ms, shm::StoreMode::kSet);
    } else if (!l2_rc) {
        // L2 only: this host's L1 copy, if any, is now stale.
        wait_own_echo(before);
        l1_rc = engine_.invalidate_key(key, klen);
        if (l1_rc == SHMC_E_NOTFOUND) l1_rc = 0;
    }
    if (l1_rc) return l1_rc;
    if (l2_rc) return shm::fail(l2_rc, "%s", l2_msg.c_str());
    return 0;
}

int Tiers::ping() {
    const Command cmds[] = {{"PING"}};
    Replies r;
    if (int rc = client_->run(cmds, &r)) return rc;
    if (r[0].type == REDIS_REPLY_ERROR)
        return shm::fail(SHMC_E_L2_REPLY, "PING answered: %.*s", static_cast<int>(r[0].len),
                         r[0].str ? r[0].str : "");
    return 0;
}

int Tiers::del(const void* key, size_t klen, uint32_t tiers) {
    if (int rc = check_tiers(tiers)) return rc;
    if (int rc = check_key(key, klen)) return rc;
    bool found = false;
    int l2_rc = 0;
    std::string l2_msg;
    if (tiers & SHMC_TIER_L2) {
        const shm::FillGuard before = engine_.fill_guard(key, klen);
        Replies r;
        l2_rc = write_l2({"UNLINK", l2_key(key, klen)}, 'D', key, klen, shm::kL2Deletes, &r,
                         &l2_msg);
        if (!l2_rc) found = r[0].type == REDIS_REPLY_INTEGER && r[0].integer > 0;
        if (found) wait_own_echo(before);  // a key that was not there has no echo
        if (!(tiers & SHMC_TIER_L1)) engine_.bump_key_seq(key, klen);
    }
    int l1_rc = 0;
    if (tiers & SHMC_TIER_L1) {
        // With L2: the key's sequence moves too, so a fill in flight is not stored.
        l1_rc = (tiers & SHMC_TIER_L2) ? engine_.invalidate_key(key, klen) : engine_.del(key, klen);
        if (l1_rc == 0) found = true;
        if (l1_rc == SHMC_E_NOTFOUND) l1_rc = 0;
    }
    if (l1_rc) return l1_rc;
    if (l2_rc) return shm::fail(l2_rc, "%s", l2_msg.c_str());
    return found ? 0 : shm::fail(SHMC_E_NOTFOUND, "key not found");
}

int Tiers::purge_l2(const char* pat, size_t plen, uint64_t* removed) {
    // SCAN walks one server's keys: a cluster's masters are walked one after the other. The keys
    // found are unlinked by key (routed, so a key that moved meanwhile is still found), in a
    // cluster one per command: a multi-key UNLINK must not span slots (CROSSSLOT), nor a slot
    // that is half migrated (TRYAGAIN).
    std::vector<std::string> shards;
    if (int rc = client_->shards(&shards)) return rc;
    const bool per_key = client_->options().endpoint.topology == Topology::kCluster;
    for (const std::string& shard : shards)
        if (int rc = purge_shard(shard, per_key, pat, plen, removed)) return rc;
    return 0;
}

int Tiers::purge_shard(const std::string& shard, bool per_key, const char* pat, size_t plen,
                       uint64_t* removed) {
    const std::string match = redis_match_pattern(prefix_, pat, plen);
    const std::string count_arg = std::to_string(kScanCount);
    std::string cursor = "0";
    do {
        const Command scan{"SCAN", cursor, "MATCH", match, "COUNT", count_arg};
        Replies r;
        if (int rc = client_->run_on(shard, std::span(&scan, 1), &r)) return rc;
        const redisReply& rep = r[0];
        if (rep.type != REDIS_REPLY_ARRAY || rep.elements != 2 ||
            rep.element[0]->type != REDIS_REPLY_STRING || rep.element[1]->type != REDIS_REPLY_ARRAY)
            return shm::fail(SHMC_E_L2_REPLY, "unexpected reply to SCAN");
        cursor.assign(rep.element[0]->str, rep.element[0]->len);
        const redisReply* keys = rep.element[1];
        if (keys->elements) {
            std::vector<Command> unlinks(per_key ? keys->elements : 1, Command{"UNLINK"});
            for (size_t i = 0; i < keys->elements; ++i)
                unlinks[per_key ? i : 0].emplace_back(keys->element[i]->str, keys->element[i]->len);
            Replies u;
            if (int rc = client_->run(unlinks, &u)) return rc;
            for (size_t i = 0; i < u.size(); ++i)
                if (u[i].type == REDIS_REPLY_INTEGER) *removed += uint64_t(u[i].integer);
        }
    } while (cursor != "0");
    return 0;
}

int Tiers::purge(const void* pat, size_t plen, uint32_t tiers, uint64_t* removed_l1,
                 uint64_t* removed_l2) {
    if (int rc = check_tiers(tiers)) return rc;
    if (!pat && plen) return shm::fail(SHMC_E_INVAL, "pattern is NULL");
    const char* p = static_cast<const char*>(pat);
    if (!shm::glob_valid(p, plen))
        return shm::fail(SHMC_E_BAD_PATTERN,
                         "bad glob pattern '%.*s': an unclosed '[' or a trailing '\\'", int(plen), p);
    uint64_t n1 = 0, n2 = 0;
    int l2_rc = 0;
    std::string l2_msg;
    int l1_rc = 0;
    if (tiers == SHMC_TIER_BOTH) {
        // A first L1 pass, so that removed_l1 counts this host's copies: in tracking mode the
        // L2 pass's own echoes would otherwise reach the subscriber first and remove them
        // uncounted. The second pass below (after the L2 pass and the sequence bump) still
        // removes anything a reader copied from L2 in between.
        l1_rc = engine_.purge(p, plen, &n1);
    }
    if (tiers & SHMC_TIER_L2) {
        l2_rc = purge_l2(p, plen, &n2);
        if (!l2_rc && publishes()) {
            const std::string msg = encode_invalidation(origin_, 'P', std::string_view(p, plen));
            const Command pub{"PUBLISH", channel_, msg};
            Replies r;
            l2_rc = client_->run(std::span(&pub, 1), &r);
            if (!l2_rc) count(shm::kL2InvalSent);
        }
        if (l2_rc) {
            count(shm::kL2DroppedWrites);
            l2_msg = shm::last_errmsg();
        }
        count(shm::kL2Deletes, n2);
        bump_inval_seq();
    }
    if (tiers & SHMC_TIER_L1) {
        uint64_t more = 0;
        const int rc = engine_.purge(p, plen, &more);
        n1 += more;
        if (!l1_rc) l1_rc = rc;
    }
    if (removed_l1) *removed_l1 = n1;
    if (removed_l2) *removed_l2 = n2;
    if (l1_rc) return l1_rc;
    if (l2_rc) return shm::fail(l2_rc, "%s", l2_msg.c_str());
    return 0;
}

void shared_stats(const shm::L2Shared& l2, const shm::L2Coherence& coh, shmc_l2_stats* out) {
    std::memset(out, 0, sizeof *out);
    auto c = [&](shm::L2Counter k) { return l2.counters[k].load(std::memory_order_relaxed); };
    out->subscribed = subscription_live(l2) ? 1 : 0;
    out->subscriber_pid = out->subscribed ? uint32_t(l2.subscriber_pid.load()) : 0;
    out->invalidation_mode = coh.mode.load(std::memory_order_relaxed);
    out->hits = c(shm::kL2Hits);
    out->misses = c(shm::kL2Misses);
    out->sets = c(shm::kL2Sets);
    out->deletes = c(shm::kL2Deletes);
    out->errors = c(shm::kL2Errors);
    out->timeouts = c(shm::kL2Timeouts);
    out->dropped_writes = c(shm::kL2DroppedWrites);
    out->breaker_opens = c(shm::kL2BreakerOpens);
    out->fills = c(shm::kL2Fills);
    out->invalidations_sent = c(shm::kL2InvalSent);
    out->invalidations_applied = c(shm::kL2InvalApplied);
    out->resyncs = c(shm::kL2Resyncs);
    out->resync_dropped = c(shm::kL2ResyncDropped);
}

void Tiers::stats(shmc_l2_stats* out) const {
    shared_stats(shared_, coh_, out);
    out->configured = 1;
    out->connected = client_->connected() ? 1 : 0;
    out->breaker_open = client_->breaker_open() ? 1 : 0;
}

}  // namespace shmcache::l2
