// engine.cpp - see engine.h.
#include "shm/engine.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <new>

#include "shm/clock.h"
#include "shm/engine_locked.h"
#include "shm/errors.h"
#include "shm/eviction.h"
#include "shm/glob.h"
#include "shm/optimistic.h"
#include "shm/rebuild.h"
#include "shm/stripe_lock.h"

namespace shmcache::shm {

namespace {

// Bumped in a fork child, so that each handle registers the child's pid on its next call.
std::atomic<uint64_t> g_fork_generation{1};
std::once_flag g_atfork_once;

void on_fork_child() { g_fork_generation.fetch_add(1, std::memory_order_relaxed); }

// After a recount that could not take every lock (a holder stopped), the wait before the next
// try: a recount holds the locks it took while it waits for the next, so a stopped process
// must not make it wait that long on every store.
constexpr uint64_t kRecountRetryMs = 1000;

template <class T>
uint64_t peek(const T& field) {  // an unlocked read of a field written under the stripe lock
    return std::atomic_ref<const T>(field).load(std::memory_order_relaxed);
}

}  // namespace

int Engine::open(const char* name, const shmc_options* opts, std::unique_ptr<Engine>* out) {
    // The defaults are applied here, field by field, rather than by shmc_options_default: that
    // is the C ABI's (lib/), and the engine must build and link without it. A zero field means
    // "the default" either way (mode 0 becomes 0600 in Segment::open).
    shmc_options o{};
    if (opts) o = *opts;
    if (!o.size_bytes) o.size_bytes = 64ull << 20;
    if (!o.n_stripes) o.n_stripes = 64;
    // A new segment's stripes (an existing one keeps its own).
    o.n_stripes = stripes_for_entry_limit(o.n_stripes, o.max_entries, o.size_bytes);
    if (!o.lock_timeout_ms) o.lock_timeout_ms = 50;
    std::string resolved;
    if (int rc = resolve_name(name, &resolved)) return rc;
    std::unique_ptr<Engine> e(new Engine());
    if (int rc = Segment::open(resolved, o, &e->seg_)) return rc;
    e->g_ = e->seg_->geometry();
    e->lock_timeout_ms_ = o.lock_timeout_ms;
    // A diagnostic switch (docs/operations.md): SHMCACHE_OPTIMISTIC_READS=0 makes every get
    // take its stripe lock, as before layout 6, for comparisons (bench/bench_engine).
    const char* opt = getenv("SHMCACHE_OPTIMISTIC_READS");
    e->optimistic_ = !(opt && opt[0] == '0');
    e->stripes_.reserve(e->g_.n_stripes);
    for (uint32_t i = 0; i < e->g_.n_stripes; ++i) {
        e->stripes_.push_back(stripe_ref(e->seg_->base(), e->g_, i));
        e->stripes_.back().counters = &e->counters_;
    }
    e->counters_ = e->seg_->lookup_counters();
    std::call_once(g_atfork_once, [] { pthread_atfork(nullptr, nullptr, on_fork_child); });
    e->fork_gen_seen_.store(g_fork_generation.load());
    *out = std::move(e);
    return 0;
}

void Engine::note_fork() {
    uint64_t seen = fork_gen_seen_.load(std::memory_order_relaxed);
    const uint64_t now = g_fork_generation.load(std::memory_order_relaxed);
    if (seen != now && fork_gen_seen_.compare_exchange_strong(seen, now)) {
        seg_->register_process();
        counters_ = seg_->lookup_counters();  // the child's own slot, not its parent's
    }
}

int Engine::check_key(const void* key, size_t klen) const {
    if (!key || klen == 0) return fail(SHMC_E_INVAL, "the key must be non-empty");
    if (klen > SHMC_MAX_KEY_LEN)
        return fail(SHMC_E_KEY_TOO_LONG, "key of %zu bytes is over the limit of %u bytes", klen,
                    SHMC_MAX_KEY_LEN);
    return 0;
}

int Engine::check_value(const void* value, size_t vlen) const {
    if (!value && vlen) return fail(SHMC_E_INVAL, "value is NULL");
    if (vlen > g_.max_value_len)
        return fail(SHMC_E_VALUE_TOO_LARGE,
                    "value of %zu bytes is over this segment's limit of %u bytes (max_value_len)",
                    vlen, g_.max_value_len);
    return 0;
}

Key Engine::make_key(const void* key, size_t klen) const {
    return Key{static_cast<const char*>(key), klen, hash_key(key, klen)};
}

int Engine::get(const void* key, size_t klen, void* buf, size_t cap, size_t* value_len,
                uint32_t* flags, int64_t* ttl_left_ms) {
    if (int rc = check_key(key, klen)) return rc;
    if (!buf && cap) return fail(SHMC_E_INVAL, "buf is NULL but cap is %zu", cap);
    if (!value_len) return fail(SHMC_E_INVAL, "value_len must not be NULL");
    const Key k = make_key(key, klen);
    GetResult r{};
    int rc = SHMC_E_LOCK_TIMEOUT;
    note_fork();  // before counting: a fork child counts in its own slot
    const StripeRef& s = stripes_[stripe_of(k)];
    const Optimistic o = optimistic_ ? optimistic_get(s, k, buf, cap, &r) : Optimistic::kLock;
    switch (o) {
        case Optimistic::kHit: rc = 0; break;
        case Optimistic::kMiss: rc = SHMC_E_NOTFOUND; break;
        case Optimistic::kTooSmall: rc = SHMC_E_BUFFER_TOO_SMALL; break;
        case Optimistic::kLock:
        case Optimistic::kHitNeedsLock: {
            const GetResult seen = r;
            rc = locked(s.index,
                        [&](const StripeRef& ls) { return table_get(ls, k, buf, cap, &r); });
            // A verified copy whose policy update could not be had: table_get never ran, so buf
            // still holds it.
            if (o == Optimistic::kHitNeedsLock && rc == SHMC_E_LOCK_TIMEOUT) {
                count_hit(s);
                r = seen;
                rc = 0;
            }
            clear_policy_decision();  // an LFU roll the locked get did not consume (it missed)
            break;
        }
    }
    if (rc == 0 || rc == SHMC_E_BUFFER_TOO_SMALL) {
        *value_len = r.value_len;
        if (flags) *flags = r.flags;
        if (ttl_left_ms) *ttl_left_ms = r.ttl_left_ms;
    }
    return rc;
}

int Engine::store(const void* key, size_t klen, const void* value, size_t vlen, uint32_t flags,
                  uint64_t ttl_ms, StoreMode mode) {
    if (int rc = check_key(key, klen)) return rc;
    if (int rc = check_value(value, vlen)) return rc;
    const Key k = make_key(key, klen);
    const EntryMeta meta{flags, expiry_from_ttl(ttl_ms), 0, 0};
    const uint32_t stripe = stripe_of(k);
    prefetch_for_store(stripes_[stripe], k, vlen);
    return locked(stripe, [&](const StripeRef& s) {
        return table_store(s, k, value, vlen, meta, mode, this);
    });
}

uint32_t Engine::key_slot(const void* key, size_t klen) const {
    // Bits the stripe index does not use, so that one stripe's keys spread over the slots.
    return uint32_t(hash_key(key, klen) >> 40) % kKeySeqSlots;
}

FillGuard Engine::fill_guard(const void* key, size_t klen) const {
    const L2Coherence& coh = coherence();
    FillGuard g;
    g.slot = key_slot(key, klen);
    g.seq = l2_shared().inval_seq.load(std::memory_order_acquire);
    g.epoch = coh.epoch.load(std::memory_order_acquire);
    g.slot_seq = coh.key_seq[g.slot].load(std::memory_order_acquire);
    return g;
}

int Engine::invalidate_key(const void* key, size_t klen) {
    if (int rc = check_key(key, klen)) return rc;
    const Key k = make_key(key, klen);
    std::atomic<uint32_t>& slot = coherence().key_seq[key_slot(key, klen)];
    return locked(stripe_of(k), [&](const StripeRef& s) {
        slot.fetch_add(1, std::memory_order_seq_cst);
        return table_del(s, k);
    });
}

bool fill_guard_holds(const SegmentHeader& h, const FillGuard& g) {
    return h.l2.inval_seq.load(std::memory_order_acquire) == g.seq &&
           h.coherence.epoch.load(std::memory_order_acquire) == g.epoch &&
           h.coherence.key_seq[g.slot % kKeySeqSlots].load(std::memory_order_acquire) ==
               g.slot_seq;
}

int Engine::fill(const void* key, size_t klen, const void* value, size_t vlen, uint32_t flags,
                 uint64_t ttl_ms, const FillGuard& guard, StoreMode mode) {
    if (int rc = check_key(key, klen)) return rc;
    if (int rc = check_value(value, vlen)) return rc;
    const Key k = make_key(key, klen);
    EntryMeta meta{flags, expiry_from_ttl(ttl_ms), 0, 0};
    meta.l2_epoch = epoch8(guard.epoch);
    const SegmentHeader& h = *seg_->header();
    const uint32_t stripe = stripe_of(k);
    prefetch_for_store(stripes_[stripe], k, vlen);
    return locked(stripe, [&](const StripeRef& s) {
        if (!fill_guard_holds(h, guard))
            return fail(SHMC_E_EXISTS, "an invalidation arrived while the value was read");
        return table_store(s, k, value, vlen, meta, mode, this);
    });
}

uint64_t Engine::bump_l2_epoch() {
    L2Coherence& coh = coherence();
    const uint64_t next = coh.epoch.fetch_add(1, std::memory_order_seq_cst) + 1;
    if (next % kEpochSweepEvery == 0) {
        // epoch8() repeats every 255 epochs, so a copy made in epoch E must be gone before E+255.
        // Every copy stored from now on carries next (stores check the epoch under their stripe
        // lock), so once each stripe has been swept only copies of this epoch are left, and the
        // next sweep, 128 bumps later, removes those: no copy lives to see its epoch8() again.
        // A stripe that could not be locked is tried again.
        for (uint32_t i = 0; i < g_.n_stripes; ++i) {
            for (int attempt = 0; attempt < 20; ++attempt) {
                uint64_t removed = 0;
                const int rc = locked(i, [&](const StripeRef& s) {
                    table_purge_l2_dead(s, epoch8(next), &removed);
                    return 0;
                });
                if (rc != SHMC_E_LOCK_TIMEOUT) break;
            }
        }
    }
    return next;
}

int Engine::del(const void* key, size_t klen) {
    if (int rc = check_key(key, klen)) return rc;
    const Key k = make_key(key, klen);
    return locked(stripe_of(k), [&](const StripeRef& s) { return table_del(s, k); });
}

int Engine::touch(const void* key, size_t klen, uint64_t ttl_ms) {
    if (int rc = check_key(key, klen)) return rc;
    const Key k = make_key(key, klen);
    const uint64_t expires = expiry_from_ttl(ttl_ms);
    return locked(stripe_of(k), [&](const StripeRef& s) { return table_touch(s, k, expires); });
}

int Engine::incr(const void* key, size_t klen, int64_t delta, int64_t* result) {
    if (int rc = check_key(key, klen)) return rc;
    const Key k = make_key(key, klen);
    return locked(stripe_of(k),
                  [&](const StripeRef& s) { return table_incr(s, k, delta, result, this); });
}

static int check_pattern(const void* pat, size_t plen) {
    if (!pat && plen) return fail(SHMC_E_INVAL, "pattern is NULL");
    if (!glob_valid(static_cast<const char*>(pat), plen))
        return fail(SHMC_E_BAD_PATTERN,
                    "bad glob pattern '%.*s': an unclosed '[' or a trailing '\\'", int(plen),
                    static_cast<const char*>(pat));
    return 0;
}

int Engine::purge(const void* pat, size_t plen, uint64_t* removed) {
    if (int rc = check_pattern(pat, plen)) return rc;
    const char* p = static_cast<const char*>(pat);
    uint64_t total = 0;
    int result = 0;
    for (uint32_t i = 0; i < g_.n_stripes; ++i) {
        int rc = locked(i, [&](const StripeRef& s) {
            table_purge(s, p, plen, &total);
            return 0;
        });
        if (rc && !result) result = rc;
    }
    if (removed) *removed = total;
    return result;
}

int Engine::purge_flagged(uint32_t mask, uint64_t* removed) {
    uint64_t total = 0;
    int result = 0;
    for (uint32_t i = 0; i < g_.n_stripes; ++i) {
        int rc = locked(i, [&](const StripeRef& s) {
            table_purge_flagged(s, mask, &total);
            return 0;
        });
        if (rc && !result) result = rc;
    }
    if (removed) *removed = total;
    return result;
}

int Engine::scan(const void* pat, size_t plen, shmc_scan_fn fn, void* ctx) {
    if (int rc = check_pattern(pat, plen)) return rc;
    if (!fn) return fail(SHMC_E_INVAL, "scan callback is NULL");
    const char* p = static_cast<const char*>(pat);
    std::vector<ScanItem> items;
    int result = 0;
    for (uint32_t i = 0; i < g_.n_stripes; ++i) {
        int rc = locked(i, [&](const StripeRef& s) {
            items.clear();  // inside: a retry after a rebuild must not report keys twice
            table_collect(s, p, plen, &items);
            return 0;
        });
        if (rc && !result) result = rc;
        for (auto& it : items)  // no lock held: the callback may take as long as it likes
            if (fn(it.key.data(), it.key.size(), it.value_len, it.ttl_left_ms, ctx)) return result;
    }
    return result;
}

int Engine::clear(uint64_t* removed) {
    uint64_t total = 0;
    int result = 0;
    for (uint32_t i = 0; i < g_.n_stripes; ++i) {
        int rc = locked(i, [&](const StripeRef& s) {
            total += table_clear(s);
            return 0;
        });
        if (rc && !result) result = rc;
    }
    if (removed) *removed = total;
    return result;
}

void Engine::add_stripe_stats(uint32_t i, shmc_stats* out) const {
    const StripeCtl* c = stripes_[i].ctl;
    auto rd = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    out->sets += rd(c->stats.sets);
    out->deletes += rd(c->stats.deletes);
    out->evictions += rd(c->stats.evictions);
    out->expirations += rd(c->stats.expirations);
    out->lock_recoveries += rd(c->stats.lock_recoveries);
    out->lock_timeouts += rd(c->stats.lock_timeouts);
    out->entries += peek(c->entries);
    out->bytes_used += peek(c->used_blocks) * kBlockSize;
    out->bytes_capacity += uint64_t(g_.blocks_per_stripe) * kBlockSize;
    out->bytes_data += peek(c->data_bytes);
}

int Engine::stats(shmc_stats* out) const {
    if (!out) return fail(SHMC_E_INVAL, "out is NULL");
    std::memset(out, 0, sizeof *out);
    for (uint32_t i = 0; i < g_.n_stripes; ++i) add_stripe_stats(i, out);
    // Lookups are counted per process (layout.h, ProcessCounters): every slot, live or not.
    const auto* pc = reinterpret_cast<const ProcessCounters*>(seg_->base() + g_.counters_offset);
    for (uint32_t i = 0; i < kProcessCounterSlots; ++i) {
        out->hits += pc[i].hits.load(std::memory_order_relaxed);
        out->misses += pc[i].misses.load(std::memory_order_relaxed);
    }
    // The stripes are summed one after another, without their locks, so an entry evicted from
    // a stripe already summed for a store into one not yet summed would be counted twice. Under
    // a limit the host-wide count bounds the sum: it is one atomic value, never above
    // max_entries and never below the live entries, so the minimum of the two is never above
    // the limit and, once the cache is quiet, exact.
    if (g_.max_entries) out->entries = std::min(out->entries, entry_count());
    return 0;
}

uint64_t Engine::entry_count() const {
    return g_.max_entries ? seg_->header()->entry_limit.count.load(std::memory_order_acquire) : 0;
}

int Engine::stripe_stats(uint32_t stripe, shmc_stats* out) const {
    if (!out) return fail(SHMC_E_INVAL, "out is NULL");
    if (stripe >= g_.n_stripes)
        return fail(SHMC_E_INVAL, "stripe %u out of range (%u stripes)", stripe, g_.n_stripes);
    std::memset(out, 0, sizeof *out);
    add_stripe_stats(stripe, out);
    return 0;
}

int Engine::info(shmc_info* out) const {
    if (!out) return fail(SHMC_E_INVAL, "out is NULL");
    std::memset(out, 0, sizeof *out);
    const SegmentHeader* h = seg_->header();
    snprintf(out->name, sizeof out->name, "%s", seg_->name().c_str());
    out->layout_version = h->layout_version;
    out->n_stripes = g_.n_stripes;
    out->size_bytes = g_.size_bytes;
    out->max_entries = g_.max_entries;
    out->max_key_len = SHMC_MAX_KEY_LEN;
    out->max_value_len = g_.max_value_len;
    out->strategy = g_.strategy;
    out->block_size = kBlockSize;
    struct stat st {};
    if (fstat(seg_->fd(), &st) == 0) {
        out->owner_uid = st.st_uid;
        out->mode = st.st_mode & 07777;
    }
    out->attached = seg_->attached();
    out->creator_pid = uint32_t(h->creator_pid);
    out->created_unix_ms = h->created_unix_ms;
    return 0;
}

int Engine::check(shmc_check_report* out) {
    shmc_check_report r{};
    int result = 0;
    for (uint32_t i = 0; i < g_.n_stripes; ++i) {
        int rc = locked(i, [&](const StripeRef& s) {
            CheckResult c = check_stripe(s);
            ++r.stripes_checked;
            if (c.damaged) {
                ++r.stripes_damaged;
                // The rebuild knows what it dropped; the survey behind c counts only the valid
                // entries, so comparing it with a later check would always say 0.
                r.entries_dropped += repair(s).dropped;
                CheckResult again = check_stripe(s);
                if (again.damaged)
                    return fail(SHMC_E_CORRUPT, "stripe %u still damaged after rebuild: %s", i,
                                again.problem);
                ++r.stripes_repaired;
                c = again;
            }
            r.entries_checked += c.entries;
            return 0;
        });
        if (rc == SHMC_E_LOCK_TIMEOUT) ++r.stripes_skipped;
        if (rc && !result) result = rc;
    }
    // The count is checked by recomputing it: comparing it with the stripes' entries needs
    // every lock anyway, and setting it then costs nothing more.
    if (!recount_entries(true) && !result)
        result = fail(SHMC_E_LOCK_TIMEOUT,
                      "could not take every stripe lock of '%s' to recount its entries",
                      seg_->name().c_str());
    if (out) *out = r;
    return result;
}

SlotBroker::Outcome Engine::evict_elsewhere_locked(uint32_t own, uint64_t* deadline_ms,
                                                   uint64_t seed) {
    const EntryLimitShared& lim = seg_->header()->entry_limit;
    if (!*deadline_ms) *deadline_ms = monotonic_ms() + lock_timeout_ms_;
    // Where to start looking: an xorshift seeded by the key's hash, so that stores of empty
    // stripes spread their evictions over the others instead of all draining the stripe after
    // their own, and a replay evicts the same entries every time (a per-process seed made small
    // caches' hit ratios move by a point between runs).
    uint64_t rng = (seed ^ 0x9e3779b97f4a7c15ull) | 1;
    for (;;) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        const Outcome o = evict_pass_locked(own, uint32_t(rng), 0);
        if (o != Outcome::kGiveUp) return o;
        // Nothing to evict: the count is full of slots reserved by stores that hold their
        // stripes' locks (their entries appear within microseconds), or it is too high after a
        // crash, in which case waiting will not help: recount first.
        if (lim.count.load(std::memory_order_acquire) < g_.max_entries) return Outcome::kRetry;
        if (lim.recount.load(std::memory_order_acquire)) {
            t_recount_due = true;
            return Outcome::kGiveUp;
        }
        if (monotonic_ms() >= *deadline_ms) return Outcome::kGiveUp;
        sched_yield();
    }
}

SlotBroker::Outcome Engine::evict_from_richer_locked(uint32_t own, uint32_t richer_than,
                                                     uint64_t seed) {
    return evict_pass_locked(own, uint32_t(seed), richer_than);
}

SlotBroker::Outcome Engine::evict_pass_locked(uint32_t own, uint32_t start, uint32_t richer_than) {
    const uint32_t n = g_.n_stripes;
    for (uint32_t step = 0; step < n; ++step) {
        const uint32_t j = (start + step) & (n - 1);
        if (j == own || peek(stripes_[j].ctl->entries) <= richer_than) continue;  // a hint only
        switch (evict_from_other_locked(j)) {
            case SlotEvict::kHandedOver: return Outcome::kHandedOver;
            case SlotEvict::kReclaimed: return Outcome::kRetry;
            case SlotEvict::kNothing: break;
        }
    }
    return Outcome::kGiveUp;
}

SlotEvict Engine::evict_from_other_locked(uint32_t j) {
    const StripeRef& t = stripes_[j];
    StripeCtl* c = t.ctl;
    const LockResult got = stripe_trylock(&c->mutex);
    if (got != LockResult::kAcquired && got != LockResult::kOwnerDied) return SlotEvict::kNothing;
    // The recovery protocol of locked(), for a lock taken by trying.
    if (got == LockResult::kOwnerDied) bump(c->stats.lock_recoveries);
    SlotEvict out = SlotEvict::kNothing;
    try {
        if (c->dirty.load(std::memory_order_acquire)) repair(t);
        try {
            out = table_evict_for_slot(t);
        } catch (const StripeCorrupt&) {
            repair(t);  // a victim unlinked before the throw leaves the count high: recounted
            out = SlotEvict::kNothing;
        }
        end_write(c);
    } catch (const std::bad_alloc&) {
        out = SlotEvict::kNothing;  // the stripe stays marked dirty, as in locked()
    }
    if (got == LockResult::kOwnerDied) stripe_lock_mark_consistent(&c->mutex);
    stripe_unlock(&c->mutex);
    return out;
}

bool Engine::recount_entries(bool force) {
    if (!g_.max_entries) return true;
    EntryLimitShared& lim = seg_->header()->entry_limit;
    if (!force && !lim.recount.load(std::memory_order_acquire)) return true;
    const uint64_t now = monotonic_ms();
    if (!force && now < lim.retry_after_ms.load(std::memory_order_relaxed)) return false;
    // Index order, like every other taker of more than one lock that waits (the others only
    // try), so two recounts cannot deadlock. Each stripe is made consistent as it is taken, so
    // that no bookkeeping is needed to unlock.
    const uint32_t n = g_.n_stripes;
    uint32_t taken = 0;
    bool ok = true;
    while (ok && taken < n) {
        const StripeRef& s = stripes_[taken];
        StripeCtl* c = s.ctl;
        const LockResult got = stripe_lock(&c->mutex, lock_timeout_ms_);
        if (got == LockResult::kTimeout) c->stats.lock_timeouts.fetch_add(1);
        if (got != LockResult::kAcquired && got != LockResult::kOwnerDied) {
            ok = false;
            break;
        }
        ++taken;
        try {
            if (c->dirty.load(std::memory_order_acquire)) {
                mark_dirty(s);  // seq odd too, before the rebuild writes
                rebuild_stripe(s);
                end_write(c);
            }
        } catch (const std::bad_alloc&) {
            ok = false;  // the stripe stays dirty; its next locker rebuilds it
        }
        if (got == LockResult::kOwnerDied) {
            bump(c->stats.lock_recoveries);
            stripe_lock_mark_consistent(&c->mutex);
        }
    }
    if (ok) {
        // Every lock is held, so no store is between its reservation and its link and no
        // removal between its unlink and its release: the entries are the whole count.
        uint64_t total = 0;
        for (uint32_t i = 0; i < n; ++i) total += stripes_[i].ctl->entries;
        lim.count.store(total, std::memory_order_release);
        lim.recount.store(0, std::memory_order_release);
    } else {
        lim.retry_after_ms.store(now + kRecountRetryMs, std::memory_order_relaxed);
    }
    while (taken) stripe_unlock(&stripes_[--taken].ctl->mutex);
    return ok;
}

void Engine::hold_lock_forever(const void* key, size_t klen, bool dirty) {
    const Key k = make_key(key, klen);
    const StripeRef& s = stripes_[stripe_of(k)];
    if (stripe_lock(&s.ctl->mutex, 10000) == LockResult::kOwnerDied)
        stripe_lock_mark_consistent(&s.ctl->mutex);
    if (dirty) {
        mark_dirty(s);
        // Scribble over the head of the key's chain as a writer killed half-way could.
        const uint32_t head = s.buckets[k.tag() & s.bucket_mask];
        if (head < s.nblocks) std::memset(s.blocks + uint64_t(head) * kBlockSize, 0xA5, 24);
    }
    for (;;) pause();
}

}  // namespace shmcache::shm
