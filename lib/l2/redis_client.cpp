// redis_client.cpp - see redis_client.h.
#include "redis_client.h"

#include <shmcache/shmcache.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "shm/errors.h"
#include "log.h"

namespace shmcache::l2 {

namespace shm = shmcache::shm;

uint64_t now_ms() {
    return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now().time_since_epoch())
                        .count());
}

namespace {

timeval to_timeval(uint64_t ms) {
    timeval tv;
    tv.tv_sec = time_t(ms / 1000);
    tv.tv_usec = suseconds_t((ms % 1000) * 1000);
    return tv;
}

bool is_timeout(const redisContext* c, int err) {
    return c->err == REDIS_ERR_IO && (err == EAGAIN || err == EWOULDBLOCK || err == ETIMEDOUT ||
                                      err == EINPROGRESS);
}

}  // namespace

void Replies::clear() {
    for (redisReply* r : replies_) freeReplyObject(r);
    replies_.clear();
}

bool exec_batch(redisContext* c, std::span<const Command> cmds, uint64_t deadline_ms,
                Replies* out, std::string* why, bool* timeout) {
    *timeout = false;
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const Command& cmd : cmds) {
        argv.clear();
        lens.clear();
        for (std::string_view a : cmd) {
            argv.push_back(a.data());
            lens.push_back(a.size());
        }
        if (redisAppendCommandArgv(c, int(argv.size()), argv.data(), lens.data()) != REDIS_OK) {
            *why = c->errstr[0] ? c->errstr : "out of memory";
            return false;
        }
    }
    for (size_t i = 0; i < cmds.size(); ++i) {
        const uint64_t now = now_ms();
        if (now >= deadline_ms) {
            *timeout = true;
            *why = "command timed out";
            return false;
        }
        // The socket timeouts bound each read and write; set to what is left of the budget.
        redisSetTimeout(c, to_timeval(std::max<uint64_t>(1, deadline_ms - now)));
        void* reply = nullptr;
        errno = 0;
        if (redisGetReply(c, &reply) != REDIS_OK || !reply) {
            const int err = errno;
            *timeout = is_timeout(c, err);
            *why = *timeout ? "command timed out"
                   : c->err == REDIS_ERR_EOF ? "connection closed by the server"
                   : c->errstr[0]            ? c->errstr
                                             : "no reply";
            return false;
        }
        out->push(static_cast<redisReply*>(reply));
    }
    return true;
}

RedisClient::RedisClient(ClientOptions opts, ClientCounters counters)
    : opts_(std::move(opts)),
      counters_(counters),
      breaker_(opts_.breaker_threshold, opts_.breaker_cooldown_ms) {
    register_fork_aware(this);
}

RedisClient::~RedisClient() {
    unregister_fork_aware(this);
    drop_idle();
}

void RedisClient::fork_prepare() { m_.lock(); }
void RedisClient::fork_parent() { m_.unlock(); }
void RedisClient::fork_child() {
    // The connections are the parent's: close this process's copies of the idle ones (the
    // parent's stay open) and forget those other threads of the parent had in use.
    for (redisContext* c : idle_) redisFree(c);
    idle_.clear();
    open_ = 0;
    connected_.store(false, std::memory_order_relaxed);
    m_.unlock();
}

void RedisClient::drop_idle() {
    std::vector<redisContext*> idle;
    {
        std::lock_guard lk(m_);
        idle.swap(idle_);
        open_ -= uint32_t(idle.size());
    }
    cv_.notify_all();
    for (redisContext* c : idle) redisFree(c);
}

redisContext* RedisClient::connect(uint64_t deadline_ms, Failure* f) const {
    const uint64_t now = now_ms();
    const uint64_t budget = deadline_ms > now ? deadline_ms - now : 0;
    if (!budget) {
        f->timeout = f->io = true;
        f->what = "no time left to connect";
        return nullptr;
    }
    const timeval tv = to_timeval(std::min<uint64_t>(budget, opts_.connect_timeout_ms));
    const RedisEndpoint& ep = opts_.endpoint;
    errno = 0;
    redisContext* c = ep.is_unix ? redisConnectUnixWithTimeout(ep.path.c_str(), tv)
                                 : redisConnectWithTimeout(ep.host.c_str(), ep.port, tv);
    const int err = errno;
    if (!c || c->err) {
        f->io = true;
        f->timeout = c && is_timeout(c, err);
        f->what = "cannot connect to " + ep.describe() + ": " +
                  (c ? (f->timeout ? std::string("connect timed out") : std::string(c->errstr))
                     : std::string("out of memory"));
        if (c) redisFree(c);
        return nullptr;
    }
    if (!ep.is_unix) redisEnableKeepAlive(c);
    std::vector<Command> setup;
    if (!ep.password.empty()) {
        if (ep.user.empty())
            setup.push_back({"AUTH", ep.password});
        else
            setup.push_back({"AUTH", ep.user, ep.password});
    }
    std::string db = std::to_string(ep.db);
    if (ep.db) setup.push_back({"SELECT", db});
    if (setup.empty()) return c;
    Replies r;
    std::string why;
    bool timeout = false;
    const uint64_t setup_deadline = std::min<uint64_t>(deadline_ms, now + opts_.connect_timeout_ms);
    if (!exec_batch(c, setup, setup_deadline, &r, &why, &timeout)) {
        f->io = true;
        f->timeout = timeout;
        f->what = "connected to " + ep.describe() + " but setup failed: " + why;
        redisFree(c);
        return nullptr;
    }
    for (size_t i = 0; i < r.size(); ++i) {
        if (r[i].type == REDIS_REPLY_ERROR) {
            f->io = true;  // a failed AUTH or SELECT: no use retrying on this connection
            f->what = "Redis at " + ep.describe() + " refused " + std::string(setup[i][0]) +
                      ": " + std::string(r[i].str, r[i].len);
            redisFree(c);
            return nullptr;
        }
    }
    return c;
}

redisContext* RedisClient::connect_dedicated(std::string* why) const {
    Failure f;
    redisContext* c = connect(now_ms() + opts_.connect_timeout_ms, &f);
    if (!c) *why = f.what;
    return c;
}

redisContext* RedisClient::acquire(uint64_t deadline_ms, bool* fresh, Failure* f) {
    {
        std::unique_lock lk(m_);
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
            redisContext* c = idle_.back();
            idle_.pop_back();
            *fresh = false;
            return c;
        }
        ++open_;
    }
    *fresh = true;
    redisContext* c = connect(deadline_ms, f);
    if (!c) {
        std::lock_guard lk(m_);
        --open_;
        cv_.notify_one();
    }
    return c;
}

void RedisClient::release(redisContext* c, bool reusable) {
    {
        std::lock_guard lk(m_);
        if (reusable) {
            idle_.push_back(c);
            c = nullptr;
        } else {
            --open_;
        }
    }
    cv_.notify_one();
    if (c) redisFree(c);
}

int RedisClient::attempt(std::span<const Command> cmds, uint64_t deadline_ms, Replies* out,
                         Failure* f, bool* fresh) {
    redisContext* c = acquire(deadline_ms, fresh, f);
    if (!c) return SHMC_E_L2_UNAVAILABLE;
    out->clear();
    std::string why;
    bool timeout = false;
    if (!exec_batch(c, cmds, deadline_ms, out, &why, &timeout)) {
        release(c, false);
        f->io = true;
        f->timeout = timeout;
        f->what = why + " (" + opts_.endpoint.describe() + ")";
        return SHMC_E_L2_UNAVAILABLE;
    }
    release(c, true);
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
        // connection was a pooled one (stale) or the caller asked for retries on timeouts.
        drop_idle();
        if ((!fresh && !f.timeout) || (f.timeout && opts_.retry_on_timeout)) {
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
