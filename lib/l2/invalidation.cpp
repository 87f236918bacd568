// invalidation.cpp - see invalidation.h.
#include "invalidation.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "log.h"
#include "shm/clock.h"

namespace shmcache::l2 {

namespace {

constexpr std::string_view kMagic = "shmc1 ";

void count(shm::L2Shared& l2, shm::L2Counter c, uint64_t n = 1) {
    l2.counters[c].fetch_add(n, std::memory_order_relaxed);
}

bool reply_is(const redisReply* r, std::string_view s) {
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
           std::string_view(r->str, r->len) == s;
}

}  // namespace

std::string encode_invalidation(uint64_t origin, char op, std::string_view arg) {
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)origin);
    std::string m;
    m.reserve(kMagic.size() + 19 + arg.size());
    m.append(kMagic).append(hex, 16).push_back(' ');
    m.push_back(op);
    m.push_back(' ');
    m.append(arg);
    return m;
}

bool decode_invalidation(std::string_view msg, uint64_t* origin, char* op, std::string_view* arg) {
    if (msg.size() < kMagic.size() + 19 || msg.substr(0, kMagic.size()) != kMagic) return false;
    std::string_view hex = msg.substr(kMagic.size(), 16);
    auto [p, ec] = std::from_chars(hex.data(), hex.data() + 16, *origin, 16);
    if (ec != std::errc() || p != hex.data() + 16) return false;
    const size_t at = kMagic.size() + 16;
    if (msg[at] != ' ' || msg[at + 2] != ' ') return false;
    *op = msg[at + 1];
    if (*op != 'D' && *op != 'S' && *op != 'P') return false;
    *arg = msg.substr(at + 3);
    return true;
}

bool link_vouched(const shm::L2Coherence& coh) {
    return shm::monotonic_ms() < coh.valid_until_ms.load(std::memory_order_acquire);
}

bool subscription_live(const shm::L2Shared& l2) {
    const int pid = l2.subscriber_pid.load(std::memory_order_acquire);
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

Subscriber::Subscriber(shm::Engine& engine, Client& client, SubscriberOptions opts)
    : engine_(engine),
      client_(client),
      opts_(std::move(opts)),
      shared_(engine.l2_shared()),
      coh_(engine.coherence()) {
    register_fork_aware(this);
}

Subscriber::~Subscriber() {
    unregister_fork_aware(this);
    std::unique_ptr<std::thread> t;
    {
        std::lock_guard lk(m_);
        stop_ = true;
        t = std::move(thread_);
    }
    cv_.notify_all();
    if (t && t->joinable()) t->join();
    if (lock_fd_ >= 0) close(lock_fd_);  // frees the election lock
}

void Subscriber::ensure_started() {
    std::lock_guard lk(m_);
    if (thread_ && owner_pid_ == getpid()) return;
    stop_ = false;
    owner_pid_ = getpid();
    thread_ = std::make_unique<std::thread>([this] { run(); });
}

void Subscriber::fork_prepare() {
    m_.lock();
    work_m_.lock();
}

void Subscriber::fork_parent() {
    work_m_.unlock();
    m_.unlock();
}

void Subscriber::fork_child() {
    // The thread stayed in the parent: forget it without joining (its std::thread object is
    // leaked on purpose; destroying a joinable one would abort). The child's copy of the lock
    // descriptor must be closed, or the lock would outlive the parent. The next L2 call in the
    // child starts the child's own elector.
    (void)thread_.release();
    if (lock_fd_ >= 0) close(lock_fd_);
    lock_fd_ = -1;
    owner_pid_ = 0;
    work_m_.unlock();
    m_.unlock();
}

bool Subscriber::sleep_for(uint32_t ms) {
    std::unique_lock lk(m_);
    cv_.wait_for(lk, std::chrono::milliseconds(ms), [this] { return stop_; });
    return !stop_;
}

bool Subscriber::try_elect() {
    if (lock_fd_ < 0) {
        lock_fd_ = shm_open(("/" + engine_.name()).c_str(), O_RDWR | O_CLOEXEC, 0);
        if (lock_fd_ < 0) return false;
    }
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 0;
    fl.l_len = 1;
    return fcntl(lock_fd_, F_OFD_SETLK, &fl) == 0;
}

void Subscriber::run() {
    bool elected = false;
    uint32_t backoff = kElectPollMs;
    for (;;) {
        {
            std::lock_guard lk(m_);
            if (stop_) break;
        }
        if (!elected) {
            elected = try_elect();
            if (elected) log_debug("elected the invalidation subscriber of '{}'", engine_.name());
        }
        if (elected) {
            // After a link that was up, try again soon (a failover, a restart); after failed
            // attempts, back off up to 2 s.
            backoff = serve() ? 50 : std::min<uint32_t>(backoff * 2, 2000);
        } else {
            backoff = kElectPollMs;
        }
        if (!sleep_for(elected ? backoff : kElectPollMs)) break;
    }
    int self = getpid();
    shared_.subscriber_pid.compare_exchange_strong(self, 0);
}

void Subscriber::resync(const char* why) {
    // O(1): every L2-derived L1 entry made so far is dead (layout.h, L2Coherence); entries that
    // L1 wrote itself (no SHMC_FLAG_FROM_L2) are not touched.
    std::lock_guard work(work_m_);
    const uint64_t epoch = engine_.bump_l2_epoch();
    count(shared_, shm::kL2Resyncs);
    log_info("resync ({}): L1 copies of L2 values dropped (epoch {})", why, epoch);
}

bool Subscriber::drop_key(std::string_view key) {
    // The key's sequence moves with the delete, under its stripe lock: a concurrent reader that
    // fetched the old value from L2 then cannot copy it into L1 after (Engine::fill checks).
    int rc = 0;
    for (int attempt = 0; attempt < 3; ++attempt) {
        rc = engine_.invalidate_key(key.data(), key.size());
        if (rc != SHMC_E_LOCK_TIMEOUT) break;
    }
    count(shared_, shm::kL2InvalApplied);
    return rc == 0 || rc == SHMC_E_NOTFOUND;
}

bool Subscriber::apply_tracked(const redisReply& keys) {
    if (keys.type == REDIS_REPLY_NIL) return false;  // FLUSHALL / FLUSHDB
    std::lock_guard work(work_m_);
    bool ok = true;
    auto one = [&](const redisReply* k) {
        if (!k || k->type != REDIS_REPLY_STRING) return;
        std::string_view key(k->str, k->len);
        if (key.substr(0, opts_.prefix.size()) != opts_.prefix) return;  // not ours (BCAST prefix)
        key.remove_prefix(opts_.prefix.size());
        if (key.empty() || key.size() > SHMC_MAX_KEY_LEN) return;  // never an L1 key
        if (key.substr(0, 19) == "__shmcache_lease__:") return;   // cross-host locks
        if (!drop_key(key)) ok = false;
    };
    if (keys.type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < keys.elements; ++i) one(keys.element[i]);
    } else {
        one(&keys);
    }
    if (!ok) log_warn("could not apply a tracking invalidation: {}", shm::last_errmsg());
    return ok;
}

void Subscriber::apply(std::string_view payload) {
    uint64_t origin = 0;
    char op = 0;
    std::string_view arg;
    if (!decode_invalidation(payload, &origin, &op, &arg)) {
        log_debug("ignored a malformed invalidation message ({} bytes)", payload.size());
        return;
    }
    if (origin == shared_.origin.load(std::memory_order_relaxed)) return;  // ours, applied
    bool ok = true;
    {
        std::lock_guard work(work_m_);
        if (op != 'P') {
            ok = drop_key(arg);
        } else {
            // Bump first, as drop_key does for one key.
            shared_.inval_seq.fetch_add(1, std::memory_order_seq_cst);
            int rc = 0;
            for (int attempt = 0; attempt < 3; ++attempt) {
                uint64_t removed = 0;
                rc = engine_.purge(arg.data(), arg.size(), &removed);
                if (rc != SHMC_E_LOCK_TIMEOUT) break;
            }
            ok = rc == 0;
            count(shared_, shm::kL2InvalApplied);
        }
    }
    if (!ok) {
        log_warn("could not apply an invalidation ({} '{}'): {}", op, arg, shm::last_errmsg());
        resync("an invalidation could not be applied");
    }
}

shm::InvalMode Subscriber::subscribe(Conn& c, std::string* why) {
    const uint32_t reply_timeout = std::max<uint32_t>(client_.options().command_timeout_ms, 100);
    auto run = [&](const Command& cmd, Replies* r) {
        r->clear();
        IoError err;
        if (exec_batch(c, std::span(&cmd, 1), now_ms() + reply_timeout + 250, r, &err)) return true;
        *why = err.what;
        return false;
    };
    auto subscribed = [](const Replies& r) {
        return r[0].type == REDIS_REPLY_ARRAY && r[0].elements >= 1 &&
               reply_is(r[0].element[0], "subscribe");
    };
    auto error_of = [](const redisReply& r) {
        return r.type == REDIS_REPLY_ERROR ? std::string(r.str, r.len) : std::string("unexpected reply");
    };
    Replies r;
    std::string refused = opts_.tracking_off;
    if (opts_.tracking) {
        const std::string client_cmd = "CLIENT";
        if (!run({client_cmd, "ID"}, &r)) return shm::kModeNone;
        if (r[0].type == REDIS_REPLY_INTEGER) {
            const std::string id = std::to_string(r[0].integer);
            Command track{client_cmd, "TRACKING", "on", "REDIRECT", id, "BCAST"};
            const std::string watched = opts_.prefix + opts_.watch;
            if (!watched.empty()) {
                track.push_back("PREFIX");
                track.push_back(watched);
            }
            if (!run(track, &r)) return shm::kModeNone;
            if (reply_is(&r[0], "OK")) {
                const std::string sub = "SUBSCRIBE";
                if (!run({sub, kTrackingChannel}, &r)) return shm::kModeNone;
                if (subscribed(r)) return shm::kModeTracking;
                refused = "SUBSCRIBE " + std::string(kTrackingChannel) + ": " + error_of(r[0]);
                if (!run({client_cmd, "TRACKING", "off"}, &r)) return shm::kModeNone;
            } else {
                refused = "CLIENT TRACKING: " + error_of(r[0]);
            }
        } else {
            refused = "CLIENT ID: " + error_of(r[0]);
        }
    }
    const std::string sub = "SUBSCRIBE";
    if (!run({sub, opts_.channel}, &r)) return shm::kModeNone;
    if (!subscribed(r)) {
        *why = "SUBSCRIBE " + opts_.channel + ": " + error_of(r[0]);
        return shm::kModeNone;
    }
    if (logged_mode_ != shm::kModePublish)
        log_warn("invalidation mode: publish (Redis tracking unavailable: {}); only writes made "
                 "through shmcache reach other hosts' L1", refused);
    return shm::kModePublish;
}

bool Subscriber::serve() {
    std::string why;
    // Behind Sentinel, a second link listens for +switch-master: a failover ends this
    // subscription at once (the data link to a partitioned old master may look alive), and the
    // next one, to the new master, resyncs. Opened first, so that a switch made while the data
    // link is being set up is not missed.
    SentinelResolver* sentinel = client_.sentinel();
    std::unique_ptr<Conn> watch;
    uint64_t watch_tried = 0;
    auto open_watch = [&](uint32_t budget_ms) {
        watch_tried = shm::monotonic_ms();
        std::string e;
        watch = sentinel->watch(now_ms() + budget_ms, &e);
        if (!watch) log_warn("cannot watch Sentinel for failovers: {}", e);
    };
    if (sentinel) open_watch(client_.options().connect_timeout_ms);
    std::unique_ptr<Conn> c = client_.connect_dedicated(&why);
    if (!c) {
        log_debug("invalidation subscriber: {}", why);
        return false;
    }
    const uint32_t reply_timeout = std::max<uint32_t>(client_.options().command_timeout_ms, 100);
    const uint32_t lease = opts_.lease_ms;
    const uint32_t heartbeat = std::max<uint32_t>(lease / 10, 5);
    const uint64_t subscribe_sent = shm::monotonic_ms();
    const shm::InvalMode mode = subscribe(*c, &why);
    if (mode == shm::kModeNone) {
        log_warn("invalidation subscriber: could not subscribe: {}", why.empty() ? "no reply" : why);
        return false;
    }
    // Whatever was missed before the subscription is dropped; from here on every change reaches
    // this connection, in order.
    resync("subscribed");
    coh_.mode.store(mode, std::memory_order_release);
    coh_.valid_until_ms.store(subscribe_sent + lease, std::memory_order_release);
    shared_.subscriber_pid.store(getpid(), std::memory_order_release);
    if (mode == shm::kModeTracking && logged_mode_ != shm::kModeTracking)
        log_info("invalidation mode: tracking (CLIENT TRACKING BCAST{}{}): every write to the "
                 "namespace reaches this host's L1",
                 opts_.prefix.empty() && opts_.watch.empty() ? "" : " PREFIX ",
                 opts_.prefix + opts_.watch);
    logged_mode_ = mode;
    log_info("subscribed to invalidations on '{}' for segment '{}'",
             mode == shm::kModeTracking ? std::string(kTrackingChannel) : opts_.channel,
             engine_.name());

    uint64_t ping_sent = 0;
    bool ping_outstanding = false;
    std::string lost;
    IoError err;
    while (lost.empty()) {
        {
            std::lock_guard lk(m_);
            if (stop_) break;
        }
        // Apply every complete reply already read.
        for (;;) {
            redisReply* reply = nullptr;
            if (!c->buffered_reply(&reply, &err)) {
                lost = err.what;
                break;
            }
            if (!reply) break;
            const redisReply* rr = reply;
            if (rr->type == REDIS_REPLY_ARRAY && rr->elements >= 3 &&
                reply_is(rr->element[0], "message")) {
                if (reply_is(rr->element[1], kTrackingChannel)) {
                    if (!apply_tracked(*rr->element[2]))
                        resync(rr->element[2]->type == REDIS_REPLY_NIL ? "FLUSHALL or FLUSHDB"
                                                                       : "a key not dropped");
                } else if (rr->element[2]->type == REDIS_REPLY_STRING) {
                    apply(std::string_view(rr->element[2]->str, rr->element[2]->len));
                }
            } else if (rr->type == REDIS_REPLY_ARRAY && rr->elements >= 1 &&
                       reply_is(rr->element[0], "pong")) {
                // Every message Redis sent before this PING has been applied above.
                ping_outstanding = false;
                coh_.valid_until_ms.store(ping_sent + lease, std::memory_order_release);
            }
            freeReplyObject(reply);
        }
        if (!lost.empty()) break;
        if (watch) {
            // +switch-master messages: "<name> <old ip> <old port> <new ip> <new port>".
            redisReply* reply = nullptr;
            while (watch && lost.empty()) {
                if (!watch->buffered_reply(&reply, &err)) {
                    log_warn("Sentinel watch link lost: {}", err.what);
                    watch.reset();
                    break;
                }
                if (!reply) break;
                HostPort to;
                if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 3 &&
                    reply_is(reply->element[0], "message") &&
                    reply->element[2]->type == REDIS_REPLY_STRING &&
                    sentinel->parse_switch(std::string_view(reply->element[2]->str,
                                                            reply->element[2]->len),
                                           &to)) {
                    client_.master_switched(to);
                    lost = "failover: the master of '" + sentinel->master_name() + "' is now " +
                           to.describe();
                }
                freeReplyObject(reply);
            }
            if (!lost.empty()) break;
        }
        if (sentinel && !watch && !ping_outstanding && shm::monotonic_ms() - watch_tried >= 1000) {
            // Retried between heartbeats, bounded by one heartbeat interval, so that a sentinel
            // that is down never delays the PING that keeps the lease.
            open_watch(heartbeat);
        }
        const uint64_t now = shm::monotonic_ms();
        if (ping_outstanding && now - ping_sent > reply_timeout) {
            lost = "no answer to PING (Redis hung?)";
            break;
        }
        if (!ping_outstanding && now - ping_sent >= heartbeat) {
            static const std::string ping = "PING";
            c->append({ping});
            if (!c->flush(now + reply_timeout, &err)) {
                lost = "connection lost (write): " + err.what;
                break;
            }
            ping_sent = now;
            ping_outstanding = true;
        }
        if (c->input_pending()) {  // decrypted bytes that poll() cannot see
            if (!c->read_available(&err)) lost = "connection lost: " + err.what;
            continue;
        }
        if (watch && watch->input_pending()) {
            if (!watch->read_available(&err)) watch.reset();
            continue;
        }
        pollfd p[2] = {{c->fd(), POLLIN, 0}, {watch ? watch->fd() : -1, POLLIN, 0}};
        const uint64_t next_ping = ping_outstanding ? ping_sent + reply_timeout : ping_sent + heartbeat;
        const int wait = int(std::clamp<uint64_t>(next_ping > now ? next_ping - now : 0, 1, 100));
        const int n = poll(p, watch ? 2 : 1, wait);
        if (n < 0 && errno != EINTR) {
            lost = "poll failed";
        } else if (n > 0) {
            if (p[0].revents & (POLLIN | POLLERR | POLLHUP)) {
                if (!c->read_available(&err)) lost = "connection lost: " + err.what;
            } else if (p[0].revents & POLLNVAL) {
                lost = "connection lost";
            }
            if (watch && (p[1].revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) &&
                !watch->read_available(&err)) {
                log_warn("Sentinel watch link lost: {}", err.what);
                watch.reset();
            }
        }
    }
    // The link no longer vouches for anything: L2-derived entries stop being served now (not
    // at the lease's end), and the next subscription drops them (resync).
    coh_.valid_until_ms.store(0, std::memory_order_release);
    int self = getpid();
    shared_.subscriber_pid.compare_exchange_strong(self, 0);
    c.reset();
    if (!lost.empty()) log_warn("invalidation link for segment '{}' lost: {}", engine_.name(), lost);
    return true;
}

}  // namespace shmcache::l2
