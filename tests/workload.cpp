// workload.cpp - see workload.h.
#include "workload.h"

#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace tsupport {

void OpCounters::note_problem(const char *fmt, ...) {
    char msg[224];  // leaves room for the "[pid N] " prefix in first_problem
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    // Printed at once too: the process may be SIGKILLed before anyone reads the slot.
    std::fprintf(stderr, "[pid %d] %s\n", int(getpid()), msg);
    if (problem_set.exchange(1) == 0)
        std::snprintf(first_problem, sizeof first_problem, "[pid %d] %s", int(getpid()), msg);
}

void OpCounters::add_to(OpCounters &t) const {
    auto add = [](std::atomic<uint64_t> &to, const std::atomic<uint64_t> &from) {
        to.store(to.load() + from.load());
    };
    add(t.ops, ops), add(t.gets, gets), add(t.hits, hits), add(t.sets, sets), add(t.adds, adds);
    add(t.dels, dels), add(t.touches, touches), add(t.incrs, incrs), add(t.purges, purges);
    add(t.purged, purged), add(t.timeouts, timeouts), add(t.slow_ops, slow_ops);
    add(t.corrupt, corrupt), add(t.errors, errors);
    if (max_ns.load() > t.max_ns.load()) t.max_ns.store(max_ns.load());
    if (problem_set.load() && !t.problem_set.exchange(1))
        std::memcpy(t.first_problem, first_problem, sizeof first_problem);
}

namespace {
void bump(std::atomic<uint64_t> &a, uint64_t n = 1) {
    a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}
}  // namespace

Workload::Workload(shmc_cache *c, const WorkloadConfig &cfg, uint64_t seed, OpCounters *out,
                   OwnedKeys *owned, int slot)
    : c_(c), cfg_(cfg), rng_(seed), out_(out), owned_(owned), slot_(slot) {
    if (cfg_.max_value_len == 0) {
        shmc_info info{};
        if (shmc_get_info(c_, &info) == 0) cfg_.max_value_len = info.max_value_len;
    }
    size_t limit =
        cfg_.max_value_len > encoded_len(7, 1) ? cfg_.max_value_len - encoded_len(7, 0) : 1;
    if (cfg_.max_payload > limit) cfg_.max_payload = limit;
    max_big_payload_ = limit;
    buf_.resize(encoded_len(7, limit) + 64);
    const Mix &m = cfg_.mix;
    total_weight_ = m.get + m.set + m.big_set + m.add + m.del + m.touch + m.incr + m.purge +
                    (owned_ ? m.owned : 0);
}

std::string Workload::object_key(uint32_t i) const {
    char k[16];
    std::snprintf(k, sizeof k, "k:%05u", i);
    return k;
}

std::string Workload::counter_key(uint32_t i) const {
    char k[16];
    std::snprintf(k, sizeof k, "n:%03u", i);
    return k;
}

void Workload::timed_end() {
    uint64_t d = now_ns() - t0_;
    bump(out_->ops);
    if (d > out_->max_ns.load(std::memory_order_relaxed))
        out_->max_ns.store(d, std::memory_order_relaxed);
    if (d > cfg_.slow_ns) bump(out_->slow_ops);
}

uint64_t Workload::pick_ttl() {
    if (!rng_.chance(cfg_.ttl_percent)) return 0;
    return rng_.range(1, cfg_.max_ttl_ms);
}

void Workload::unexpected(const char *op, const std::string &key, int rc) {
    if (rc == SHMC_E_LOCK_TIMEOUT) {  // allowed by the contract; the tests report how many
        bump(out_->timeouts);
        return;
    }
    std::string msg = shmc_errmsg();
    bump(out_->errors);
    out_->note_problem("%s(%s) returned %d (%s; errmsg: \"%s\")", op, key.c_str(), rc,
                       shmc_strerror(rc), msg.c_str());
}

void Workload::step() {
    unsigned r = unsigned(rng_.below(total_weight_));
    const Mix &m = cfg_.mix;
    if (r < m.get) return do_get(rng_.chance(5));
    r -= m.get;
    if (r < m.set) return do_set(false, false);
    r -= m.set;
    if (r < m.big_set) return do_set(false, true);
    r -= m.big_set;
    if (r < m.add) return do_set(true, false);
    r -= m.add;
    if (r < m.del) return do_del();
    r -= m.del;
    if (r < m.touch) return do_touch();
    r -= m.touch;
    if (r < m.incr) return do_incr();
    r -= m.incr;
    if (r < m.purge) return do_purge();
    return do_owned();
}

void Workload::do_get(bool small_buffer_first) {
    if (rng_.chance(15))
        get_counter(uint32_t(rng_.below(cfg_.n_counters)));
    else
        get_object(uint32_t(rng_.below(cfg_.n_keys)), small_buffer_first);
}

void Workload::get_object(uint32_t i, bool small_buffer_first) {
    std::string key = object_key(i);
    size_t len = 0;
    uint32_t flags = 0;
    int64_t ttl = 0;
    bump(out_->gets);
    if (small_buffer_first) {
        // A 16-byte buffer is too small for every object value: the call must say so and
        // report a plausible length, and must not write past cap.
        char small[16 + 8];
        std::memset(small, 0x5a, sizeof small);
        timed_begin();
        int rc = shmc_get(c_, key.data(), key.size(), small, 16, &len, &flags, &ttl);
        timed_end();
        if (std::memcmp(small + 16, "\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a", 8) != 0) {
            bump(out_->corrupt);
            out_->note_problem("get(%s, cap 16) wrote past the buffer", key.c_str());
        }
        if (rc == SHMC_E_NOTFOUND) return;
        if (rc != SHMC_E_BUFFER_TOO_SMALL) {
            if (rc == 0) {
                bump(out_->corrupt);
                out_->note_problem("get(%s, cap 16) succeeded with length %zu", key.c_str(), len);
            } else {
                unexpected("get(cap 16)", key, rc);
            }
            return;
        }
        if (len < encoded_len(key.size(), 1) || len > cfg_.max_value_len) {
            bump(out_->corrupt);
            out_->note_problem("get(%s) BUFFER_TOO_SMALL reported length %zu", key.c_str(), len);
            return;
        }
    }
    timed_begin();
    int rc = shmc_get(c_, key.data(), key.size(), buf_.data(), buf_.size(), &len, &flags, &ttl);
    timed_end();
    if (rc == SHMC_E_NOTFOUND) return;
    if (rc != 0) return unexpected("get", key, rc);
    bump(out_->hits);
    std::string why;
    if (!verify_value(key.data(), key.size(), buf_.data(), len, flags, &why)) {
        bump(out_->corrupt);
        out_->note_problem("get(%s): %s", key.c_str(), why.c_str());
    } else if (ttl != -1 && (ttl < 0 || uint64_t(ttl) > cfg_.max_ttl_ms)) {
        bump(out_->corrupt);
        out_->note_problem("get(%s): ttl_left_ms %" PRId64 " outside [0, %" PRIu64 "] and not -1",
                           key.c_str(), ttl, cfg_.max_ttl_ms);
    }
}

// A counter must always read back as a plain decimal int64 with flags 0.
void Workload::get_counter(uint32_t i) {
    std::string key = counter_key(i);
    char b[64];
    size_t len = 0;
    uint32_t flags = 0;
    bump(out_->gets);
    timed_begin();
    int rc = shmc_get(c_, key.data(), key.size(), b, sizeof b - 1, &len, &flags, nullptr);
    timed_end();
    if (rc == SHMC_E_NOTFOUND) return;
    if (rc != 0) return unexpected("get", key, rc);
    bump(out_->hits);
    b[len] = 0;
    char *end = nullptr;
    errno = 0;
    std::strtoll(b, &end, 10);
    if (len == 0 || end != b + len || errno != 0 || flags != 0 || b[0] == ' ' || b[0] == '+') {
        bump(out_->corrupt);
        out_->note_problem("get(%s): not a clean decimal counter: \"%.*s\" flags %u", key.c_str(),
                           int(len), b, flags);
    }
}

void Workload::do_set(bool add, bool big) {
    if (!big && rng_.chance(15)) {
        std::string key = counter_key(uint32_t(rng_.below(cfg_.n_counters)));
        char num[32];
        int n = std::snprintf(num, sizeof num, "%lld", (long long)rng_.range(0, 2000000) - 1000000);
        bump(add ? out_->adds : out_->sets);
        timed_begin();
        int rc = add ? shmc_add(c_, key.data(), key.size(), num, size_t(n), 0, pick_ttl())
                     : shmc_set(c_, key.data(), key.size(), num, size_t(n), 0, pick_ttl());
        timed_end();
        if (rc != 0 && !(add && rc == SHMC_E_EXISTS)) unexpected(add ? "add" : "set", key, rc);
        return;
    }
    std::string key = object_key(uint32_t(rng_.below(cfg_.n_keys)));
    size_t payload;
    uint64_t p = rng_.below(100);
    // Some big sets are exactly the segment's largest value: "a value within the limit always
    // fits after eviction" must hold while other processes fill the stripe too.
    if (big && rng_.chance(20))
        payload = max_big_payload_;
    else if (big)
        payload = rng_.range(cfg_.max_payload / 2, cfg_.max_payload);
    else if (p < 70)
        payload = rng_.range(1, 256);
    else if (p < 95)
        payload = rng_.range(257, 4096);
    else
        payload = rng_.range(4097, cfg_.max_payload > 4097 ? cfg_.max_payload : 4097);
    if (payload > max_big_payload_) payload = max_big_payload_;
    uint32_t flags = encode_value(val_, key.data(), key.size(), payload, rng_);
    uint64_t ttl = pick_ttl();
    bump(add ? out_->adds : out_->sets);
    timed_begin();
    int rc = add ? shmc_add(c_, key.data(), key.size(), val_.data(), val_.size(), flags, ttl)
                 : shmc_set(c_, key.data(), key.size(), val_.data(), val_.size(), flags, ttl);
    timed_end();
    if (rc != 0 && !(add && rc == SHMC_E_EXISTS)) unexpected(add ? "add" : "set", key, rc);
}

void Workload::do_del() {
    std::string key = rng_.chance(15) ? counter_key(uint32_t(rng_.below(cfg_.n_counters)))
                                      : object_key(uint32_t(rng_.below(cfg_.n_keys)));
    bump(out_->dels);
    timed_begin();
    int rc = shmc_del(c_, key.data(), key.size());
    timed_end();
    if (rc != 0 && rc != SHMC_E_NOTFOUND) unexpected("del", key, rc);
}

void Workload::do_touch() {
    std::string key = object_key(uint32_t(rng_.below(cfg_.n_keys)));
    bump(out_->touches);
    timed_begin();
    int rc = shmc_touch(c_, key.data(), key.size(), pick_ttl());
    timed_end();
    if (rc != 0 && rc != SHMC_E_NOTFOUND) unexpected("touch", key, rc);
}

void Workload::do_incr() {
    std::string key = counter_key(uint32_t(rng_.below(cfg_.n_counters)));
    int64_t delta = int64_t(rng_.range(0, 200)) - 100;
    int64_t result = 0;
    bump(out_->incrs);
    timed_begin();
    int rc = shmc_incr(c_, key.data(), key.size(), delta, &result);
    timed_end();
    if (rc == 0 || rc == SHMC_E_NOTFOUND) return;
    if (rc == SHMC_E_NOT_NUMBER) {  // only decimal numbers are ever stored under n: keys
        bump(out_->corrupt);
        out_->note_problem("incr(%s): NOT_NUMBER, but only numbers are written there", key.c_str());
        return;
    }
    unexpected("incr", key, rc);
}

void Workload::do_purge() {
    // A narrow pattern (10 keys) so that purges collide with the other operations without
    // emptying the cache.
    char pat[32];
    if (rng_.chance(20))
        std::snprintf(pat, sizeof pat, "n:0%u?", unsigned(rng_.below(cfg_.n_counters / 10 + 1)));
    else
        std::snprintf(pat, sizeof pat, "k:%04u?", unsigned(rng_.below(cfg_.n_keys / 10)));
    uint64_t removed = 0;
    bump(out_->purges);
    timed_begin();
    int rc = shmc_purge(c_, pat, std::strlen(pat), &removed);
    timed_end();
    if (rc != 0) return unexpected("purge", pat, rc);
    if (removed > 10) {
        bump(out_->corrupt);
        out_->note_problem("purge(%s) removed %llu keys, at most 10 match", pat,
                           (unsigned long long)removed);
    }
    bump(out_->purged, removed);
}

void Workload::verify_all() {
    for (uint32_t i = 0; i < cfg_.n_keys; ++i) get_object(i, false);
    for (uint32_t i = 0; i < cfg_.n_counters; ++i) get_counter(i);
}

}  // namespace tsupport
