// redis_client.cpp - see redis_client.h.
#include "redis_client.h"

#include <shmcache/shmcache.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "shm/errors.h"
#include "log.h"

namespace shmcache::l2 {

namespace shm = shmcache::shm;

namespace {

// The server's role ("master", "slave", ...) from its answer to HELLO 2 (a flat list of names
// and values), else from ROLE. "" when the user may run neither (NOPERM) or an old server knows
// neither: then nothing can be checked and the sentinels' word is taken. False on an I/O error.
bool server_role(Conn& c, const redisReply& hello, uint64_t deadline_ms, std::string* role,
                 IoError* err) {
    role->clear();
    if (hello.type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < hello.elements; i += 2) {
            const redisReply* k = hello.element[i];
            const redisReply* v = hello.element[i + 1];
            if (k->type == REDIS_REPLY_STRING && std::string_view(k->str, k->len) == "role" &&
                v->type == REDIS_REPLY_STRING) {
                role->assign(v->str, v->len);
                return true;
            }
        }
    }
    const Command cmd{"ROLE"};
    Replies r;
    if (!exec_batch(c, std::span(&cmd, 1), deadline_ms, &r, err)) return false;
    if (r[0].type == REDIS_REPLY_ARRAY && r[0].elements >= 1 &&
        r[0].element[0]->type == REDIS_REPLY_STRING)
        role->assign(r[0].element[0]->str, r[0].element[0]->len);
    return true;
}

}  // namespace

std::unique_ptr<RedisClient> RedisClient::create(ClientOptions opts, ClientCounters counters,
                                                 std::string* why) {
    std::shared_ptr<TlsContext> tls;
    if (opts.endpoint.tls.enabled) {
        tls = TlsContext::create(opts.endpoint.tls, why);
        if (!tls) return nullptr;
    }
    return std::make_unique<RedisClient>(std::move(opts), counters, std::move(tls));
}

RedisClient::RedisClient(ClientOptions opts, ClientCounters counters,
                         std::shared_ptr<TlsContext> tls)
    : opts_(std::move(opts)),
      counters_(counters),
      tls_(std::move(tls)),
      sentinel_(opts_.endpoint.topology == Topology::kSentinel
                    ? std::make_unique<SentinelResolver>(opts_.endpoint, tls_,
                                                         opts_.connect_timeout_ms)
                    : nullptr),
      breaker_(opts_.breaker_threshold, opts_.breaker_cooldown_ms) {
    register_fork_aware(this);
}

RedisClient::~RedisClient() {
    unregister_fork_aware(this);
    drop_idle();
}

// Locks taken across fork so that the child finds none of them held: no handshake in progress
// (its OpenSSL locks), the pool, the Sentinel resolver. In that order, the order a connecting
// thread may take them in.
void RedisClient::fork_prepare() {
    if (tls_) tls_->fork_mutex().lock();
    m_.lock();
    if (sentinel_) sentinel_->fork_lock();
}
void RedisClient::fork_parent() {
    if (sentinel_) sentinel_->fork_unlock();
    m_.unlock();
    if (tls_) tls_->fork_mutex().unlock();
}
void RedisClient::fork_child() {
    // The connections are the parent's: close this process's copies of the idle ones (the
    // parent's stay open) and forget those other threads of the parent had in use.
    idle_.clear();
    open_ = 0;
    connected_.store(false, std::memory_order_relaxed);
    if (sentinel_) sentinel_->fork_unlock();
    m_.unlock();
    if (tls_) tls_->fork_child_reset();  // not unlock(): see conn.h
}

void RedisClient::drop_idle() {
    std::vector<std::unique_ptr<Conn>> idle;
    {
        std::lock_guard lk(m_);
        idle.swap(idle_);
        open_ -= uint32_t(idle.size());
    }
    cv_.notify_all();
}

std::unique_ptr<Conn> RedisClient::connect(uint64_t deadline_ms, Failure* f) const {
    const uint64_t now = now_ms();
    if (now >= deadline_ms) {
        f->timeout = f->io = true;
        f->what = "no time left to connect";
        return nullptr;
    }
    const uint64_t connect_deadline = std::min<uint64_t>(deadline_ms, now + opts_.connect_timeout_ms);
    RedisEndpoint ep = opts_.endpoint;
    if (sentinel_) {
        HostPort master;
        if (!sentinel_->master(connect_deadline, &master, &f->what)) {
            f->io = true;
            f->timeout = now_ms() >= connect_deadline;
            return nullptr;
        }
        ep = opts_.endpoint.node(master);
    }
    IoError err;
    std::unique_ptr<Conn> c = Conn::open(ep, tls_.get(), connect_deadline, &err);
    if (!c) {
        f->io = true;
        f->timeout = err.timeout;
        f->what = "cannot connect to " + ep.describe() + ": " + err.what;
        if (sentinel_) sentinel_->forget();  // ask the sentinels again next time
        return nullptr;
    }
    std::vector<Command> setup;
    if (!ep.password.empty()) {
        if (ep.user.empty())
            setup.push_back({"AUTH", ep.password});
        else
            setup.push_back({"AUTH", ep.user, ep.password});
    }
    std::string db = std::to_string(ep.db);
    if (ep.db) setup.push_back({"SELECT", db});
    const size_t n_setup = setup.size();
    // Behind Sentinel, a sentinel's answer may be stale during a failover: the server itself
    // must say it is the master before anything is written to it. HELLO 2 tells (its "role"),
    // in @fast @connection, which users limited to their keys may run; ROLE is @admin.
    if (sentinel_) setup.push_back({"HELLO", "2"});
    if (setup.empty()) return c;
    Replies r;
    if (!exec_batch(*c, setup, connect_deadline, &r, &err)) {
        f->io = true;
        f->timeout = err.timeout;
        f->what = "connected to " + ep.describe() + " but setup failed: " + err.what;
        if (sentinel_) sentinel_->forget();
        return nullptr;
    }
    for (size_t i = 0; i < n_setup; ++i) {
        if (r[i].type == REDIS_REPLY_ERROR) {
            f->io = true;  // a failed AUTH or SELECT: no use retrying on this connection
            f->what = "Redis at " + ep.describe() + " refused " + std::string(setup[i][0]) +
                      ": " + std::string(r[i].str, r[i].len);
            return nullptr;
        }
    }
    if (sentinel_) {
        std::string role;
        if (!server_role(*c, r[n_setup], connect_deadline, &role, &err)) {
            f->io = true;
            f->timeout = err.timeout;
            f->what = "connected to " + ep.describe() + " but setup failed: " + err.what;
            sentinel_->forget();
            return nullptr;
        }
        if (!role.empty() && role != "master") {
            f->io = true;
            f->what = ep.describe() + " is a " + role + ", not the master of '" +
                      opts_.endpoint.master_name + "' (a failover in progress?)";
            sentinel_->forget();
            return nullptr;
        }
    }
    return c;
}

void RedisClient::master_switched(const HostPort& to) {
    if (sentinel_) sentinel_->switched_to(to);
    drop_idle();
}

std::unique_ptr<Conn> RedisClient::connect_dedicated(std::string* why) const {
    Failure f;
    std::unique_ptr<Conn> c = connect(now_ms() + opts_.connect_timeout_ms, &f);
    if (!c) *why = f.what;
    return c;
}

std::unique_ptr<Conn> RedisClient::acquire(uint64_t deadline_ms, bool* fresh, Failure* f) {
    std::vector<std::unique_ptr<Conn>> stale;  // closed outside the lock
    uint64_t epoch;
    {
        std::unique_lock lk(m_);
        epoch = counters_.epoch ? counters_.epoch->load(std::memory_order_acquire) : 0;
        if (epoch != pool_epoch_) {
            // The host resynced (a new subscription: after a failover, a restart, a lost
            // link): connections opened before may lead to a server that is no longer the
            // master, which would answer reads with old data. Open new ones; each checks the
            // server's role (connect), and a refused one makes the sentinels be asked again.
            pool_epoch_ = epoch;
            stale.swap(idle_);
            open_ -= uint32_t(stale.size());
        }
        while (idle_.empty() && open_ >= std::max<uint32_t>(1, opts_.max_connections)) {
            const auto left = std::chrono::milliseconds(deadline_ms - std::min(deadline_ms, now_ms()));
            if (cv_.wait_for(lk, left) == std::cv_status::timeout && idle_.empty() &&
                open_ >= std::max<uint32_t>(1, opts_.max_connections)) {
                f->timeout = true;
                f->what = "all " + std::to_string(opts_.max_connections) +
                          " connections of this process stayed busy (max_connections)";
                return nullptr;
            }
        }
        if (!idle_.empty()) {
            std::unique_ptr<Conn> c = std::move(idle_.back());
            idle_.pop_back();
            *fresh = false;
            return c;
        }
        ++open_;
    }
    stale.clear();
    *fresh = true;
    std::unique_ptr<Conn> c = connect(deadline_ms, f);
    if (!c) {
        std::lock_guard lk(m_);
        --open_;
        cv_.notify_one();
        return nullptr;
    }
    c->pool_tag = epoch;
    return c;
}

void RedisClient::release(std::unique_ptr<Conn> c, bool reusable) {
    {
        std::lock_guard lk(m_);
        if (reusable && c->pool_tag == pool_epoch_)  // not from before a resync (acquire)
            idle_.push_back(std::move(c));
        else
            --open_;
    }
    cv_.notify_one();
    // A connection not kept is closed here, outside the lock.
}

int RedisClient::attempt(std::span<const Command> cmds, uint64_t deadline_ms, Replies* out,
                         Failure* f, bool* fresh) {
    std::unique_ptr<Conn> c = acquire(deadline_ms, fresh, f);
    if (!c) return SHMC_E_L2_UNAVAILABLE;
    out->clear();
    IoError err;
    if (!exec_batch(*c, cmds, deadline_ms, out, &err)) {
        release(std::move(c), false);
        f->io = true;
        f->timeout = err.timeout;
        f->what = err.what + " (" + opts_.endpoint.describe() + ")";
        return SHMC_E_L2_UNAVAILABLE;
    }
    if (sentinel_) {
        // A master demoted by a failover answers writes with READONLY (when its clients were
        // not disconnected): the connection is to the wrong server, not the command wrong.
        for (size_t i = 0; i < out->size(); ++i) {
            const redisReply& r = (*out)[i];
            if (r.type == REDIS_REPLY_ERROR && std::string_view(r.str, r.len).starts_with("READONLY")) {
                release(std::move(c), false);
                sentinel_->forget();
                f->io = true;
                f->readonly = true;
                f->what = "the server is no longer the master (READONLY; " +
                          opts_.endpoint.describe() + ")";
                return SHMC_E_L2_UNAVAILABLE;
            }
        }
    }
    release(std::move(c), true);
    return 0;
}

void RedisClient::note_failure(const Failure& f) {
    if (counters_.errors) counters_.errors->fetch_add(1, std::memory_order_relaxed);
    if (f.timeout && counters_.timeouts) counters_.timeouts->fetch_add(1, std::memory_order_relaxed);
    const bool was_connected = connected_.exchange(false, std::memory_order_relaxed);
    if (breaker_.on_failure(now_ms())) {
        if (counters_.breaker_opens) counters_.breaker_opens->fetch_add(1, std::memory_order_relaxed);
        log_warn("Redis L2 unavailable: {}; serving from L1 only, next try in {} ms", f.what,
                   opts_.breaker_cooldown_ms);
    } else if (was_connected) {
        log_warn("Redis L2 call failed: {}", f.what);
    }
}

int RedisClient::run(std::span<const Command> cmds, Replies* out) {
    if (int rc = run_raw(cmds, now_ms() + opts_.command_timeout_ms, out)) return rc;
    for (size_t i = 0; i < out->size(); ++i) {
        const redisReply& r = (*out)[i];
        if (r.type == REDIS_REPLY_ERROR) {
            if (counters_.errors) counters_.errors->fetch_add(1, std::memory_order_relaxed);
            return shm::fail(SHMC_E_L2_REPLY, "Redis L2 replied to %.*s: %.*s",
                             int(cmds[i][0].size()), cmds[i][0].data(), int(r.len), r.str);
        }
    }
    return 0;
}

int RedisClient::run_raw(std::span<const Command> cmds, uint64_t deadline, Replies* out) {
    uint64_t wait = 0;
    const uint64_t start = now_ms();
    if (breaker_.admit(start, &wait) == Breaker::Verdict::kRefuse)
        return shm::fail(SHMC_E_L2_UNAVAILABLE,
                         "Redis L2 at %s is unavailable (circuit breaker open after %u failures; "
                         "next try in %llu ms)",
                         opts_.endpoint.describe().c_str(), breaker_.failures(),
                         (unsigned long long)wait);
    Failure f;
    bool fresh = false;
    int rc = attempt(cmds, deadline, out, &f, &fresh);
    if (rc && f.io) {
        // A restarted Redis resets every pooled connection: close the idle ones too. Then one
        // retry on a fresh connection, within what is left of the same budget, if the failed
        // connection was a pooled one (stale), reached a demoted master, or the caller asked
        // for retries on timeouts.
        drop_idle();
        if ((!fresh && !f.timeout) || f.readonly || (f.timeout && opts_.retry_on_timeout)) {
            if (now_ms() < deadline) {
                Failure f2;
                rc = attempt(cmds, deadline, out, &f2, &fresh);
                if (rc) f = f2;
            }
        }
    }
    if (rc) {
        note_failure(f);
        return shm::fail(rc, "Redis L2: %s", f.what.c_str());
    }
    if (breaker_.on_success())
        log_info("Redis L2 at {} is available again", opts_.endpoint.describe());
    connected_.store(true, std::memory_order_relaxed);
    return 0;
}

}  // namespace shmcache::l2
