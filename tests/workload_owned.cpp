// workload_owned.cpp - the owned-key part of the workload (see OwnedKeys in workload.h).
//
// Values of owned keys are ordinary self-verifying values whose payload starts with the 8-byte
// version that wrote them, so a read tells not only "intact" but "which write".
#include "workload.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <new>

namespace tsupport {

namespace {
void bump(std::atomic<uint64_t> &a) {  // single writer per slot: load + store is enough
    a.store(a.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}
constexpr uint64_t word(uint64_t version, uint64_t state) { return version << 2 | state; }
constexpr uint64_t state_of(uint64_t w) { return w & 3; }
constexpr uint64_t version_of(uint64_t w) { return w >> 2; }
}  // namespace

std::string Workload::owned_key(uint32_t i) const {
    char k[24];
    std::snprintf(k, sizeof k, "o%d:%03u", slot_, i);
    return k;
}

// Versions only grow: a process taking over a slot jumps far past anything its predecessor
// could have used, even for a write it never recorded as done.
uint64_t Workload::new_version() { return owned_->next_version.fetch_add(1) + 1; }

bool Workload::check_owned(uint32_t i, bool allow_inflight) {
    std::string key = owned_key(i);
    size_t len = 0;
    uint32_t flags = 0;
    bump(out_->gets);
    timed_begin();
    int rc = shmc_get(c_, key.data(), key.size(), buf_.data(), buf_.size(), &len, &flags, nullptr);
    timed_end();
    if (rc != 0 && rc != SHMC_E_NOTFOUND) {
        unexpected("get", key, rc);
        return false;
    }
    uint64_t done = owned_->done[i].load();
    uint64_t inflight = allow_inflight ? owned_->inflight[i].load() : 0;
    if (rc == SHMC_E_NOTFOUND) {  // always allowed: evicted, deleted, or never written
        owned_->done[i].store(word(version_of(done), OwnedKeys::kAbsent));
        owned_->inflight[i].store(0);
        return true;
    }
    bump(out_->hits);
    std::string why;
    if (!verify_value(key.data(), key.size(), buf_.data(), len, flags, &why)) {
        bump(out_->corrupt);
        out_->note_problem("get(%s): %s", key.c_str(), why.c_str());
        return false;
    }
    uint64_t v;
    std::memcpy(&v, buf_.data() + 8 + key.size(), 8);
    bool ok = (state_of(done) == OwnedKeys::kHolds && version_of(done) == v) ||
              (inflight && state_of(inflight) == OwnedKeys::kHolds && version_of(inflight) == v);
    if (!ok) {
        bump(out_->corrupt);
        out_->note_problem(
            "get(%s) returned version %" PRIu64 ", but the last write was %s %" PRIu64
            " (in flight: %s %" PRIu64 "): a stale or resurrected value",
            key.c_str(), v, state_of(done) == OwnedKeys::kHolds ? "set" : "delete/miss",
            version_of(done),
            !inflight                                 ? "none"
            : state_of(inflight) == OwnedKeys::kHolds ? "set"
                                                      : "delete",
            version_of(inflight));
    }
    owned_->done[i].store(word(v, OwnedKeys::kHolds));
    owned_->inflight[i].store(0);
    return ok;
}

void Workload::resolve_owned() {
    if (!owned_) return;
    owned_->next_version.fetch_add(1u << 20);
    for (uint32_t i = 0; i < OwnedKeys::kKeys; ++i) check_owned(i, true);
}

void Workload::do_owned() {
    uint32_t i = uint32_t(rng_.below(OwnedKeys::kKeys));
    uint64_t p = rng_.below(100);
    if (p < 40) {
        check_owned(i, false);
        return;
    }
    if (p < 95) {
        std::string key = owned_key(i);
        bool del = p >= 80;
        uint64_t v = new_version();
        owned_->inflight[i].store(word(v, del ? OwnedKeys::kAbsent : OwnedKeys::kHolds));
        int rc;
        if (del) {
            timed_begin();
            rc = shmc_del(c_, key.data(), key.size());
            timed_end();
            if (rc == 0 || rc == SHMC_E_NOTFOUND)
                owned_->done[i].store(word(v, OwnedKeys::kAbsent));
        } else {
            size_t payload = 8 + rng_.below(rng_.chance(10) ? cfg_.max_payload - 8 : 600);
            uint32_t flags = encode_value(val_, key.data(), key.size(), payload, rng_, &v);
            timed_begin();
            rc = shmc_set(c_, key.data(), key.size(), val_.data(), val_.size(), flags, 0);
            timed_end();
            if (rc == 0) owned_->done[i].store(word(v, OwnedKeys::kHolds));
        }
        if (rc == SHMC_E_LOCK_TIMEOUT) {
            // Not applied: the record keeps the previous outcome.
        } else if (rc != 0 && !(del && rc == SHMC_E_NOTFOUND)) {
            unexpected(del ? "del" : "set", key, rc);
        }
        owned_->inflight[i].store(0);
        bump(del ? out_->dels : out_->sets);
        return;
    }
    // Purge ten owned keys at once: all ten are in flight as deletes.
    uint32_t tens = uint32_t(rng_.below(OwnedKeys::kKeys / 10));
    char pat[24];
    std::snprintf(pat, sizeof pat, "o%d:0%u?", slot_, tens);
    uint64_t v = new_version();
    for (uint32_t j = tens * 10; j < tens * 10 + 10; ++j)
        owned_->inflight[j].store(word(v, OwnedKeys::kAbsent));
    uint64_t removed = 0;
    bump(out_->purges);
    timed_begin();
    int rc = shmc_purge(c_, pat, std::strlen(pat), &removed);
    timed_end();
    for (uint32_t j = tens * 10; j < tens * 10 + 10; ++j) {
        if (rc == 0) owned_->done[j].store(word(v, OwnedKeys::kAbsent));
        owned_->inflight[j].store(0);
    }
    if (rc != 0) unexpected("purge", pat, rc);
}

OpCounters *new_counters(int n) {
    auto *p = static_cast<OpCounters *>(shared_alloc(sizeof(OpCounters) * size_t(n)));
    for (int i = 0; i < n; ++i) new (&p[i]) OpCounters();
    return p;
}

OwnedKeys *new_owned(int n) {
    auto *p = static_cast<OwnedKeys *>(shared_alloc(sizeof(OwnedKeys) * size_t(n)));
    for (int i = 0; i < n; ++i) new (&p[i]) OwnedKeys();
    return p;
}

void resolve_all_owned(shmc_cache *c, OwnedKeys *owned, int n, OpCounters *out) {
    for (int i = 0; i < n; ++i) {
        Workload w(c, WorkloadConfig(), 1, out, &owned[i], i);
        w.resolve_owned();
    }
}

}  // namespace tsupport
