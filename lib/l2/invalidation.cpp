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

bool subscription_live(const shm::L2Shared& l2) {
    const int pid = l2.subscriber_pid.load(std::memory_order_acquire);
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

Subscriber::Subscriber(shm::Engine& engine, const RedisClient& client, std::string channel)
    : engine_(engine), client_(client), channel_(std::move(channel)), shared_(engine.l2_shared()) {
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
            serve();
            backoff = std::min<uint32_t>(backoff * 2, 2000);
        } else {
            backoff = kElectPollMs;
        }
        if (!sleep_for(elected ? backoff : kElectPollMs)) break;
    }
    int self = getpid();
    shared_.subscriber_pid.compare_exchange_strong(self, 0);
}

void Subscriber::resync(const char* why) {
    std::lock_guard work(work_m_);
    uint64_t dropped = 0;
    const int rc = engine_.purge_flagged(SHMC_FLAG_FROM_L2, &dropped);
    count(shared_, shm::kL2Resyncs);
    count(shared_, shm::kL2ResyncDropped, dropped);
    if (rc)
        log_warn("resync ({}): dropping L1 entries from L2 left some: {}", why, shm::last_errmsg());
    else
        log_info("resync ({}): dropped {} L1 entries copied from L2", why, dropped);
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
    std::lock_guard work(work_m_);
    // Bump first: a concurrent reader that fetched the old value from L2 must not copy it into
    // L1 after the delete below (Engine::fill checks the sequence under the stripe lock).
    shared_.inval_seq.fetch_add(1, std::memory_order_seq_cst);
    int rc = 0;
    for (int attempt = 0; attempt < 3; ++attempt) {
        uint64_t removed = 0;
        rc = op == 'P' ? engine_.purge(arg.data(), arg.size(), &removed)
                       : engine_.del(arg.data(), arg.size());
        if (rc != SHMC_E_LOCK_TIMEOUT) break;
    }
    if (rc && rc != SHMC_E_NOTFOUND)
        log_warn("could not apply an invalidation ({} '{}'): {}", op, arg, shm::last_errmsg());
    count(shared_, shm::kL2InvalApplied);
}

void Subscriber::serve() {
    std::string why;
    redisContext* c = client_.connect_dedicated(&why);
    if (!c) {
        log_debug("invalidation subscriber: {}", why);
        return;
    }
    const uint32_t reply_timeout = std::max<uint32_t>(client_.options().command_timeout_ms, 100);
    const std::string sub_cmd = "SUBSCRIBE";
    const Command sub{sub_cmd, channel_};
    Replies r;
    bool timeout = false;
    if (!exec_batch(c, std::span(&sub, 1), now_ms() + reply_timeout + 250, &r, &why, &timeout) ||
        r[0].type != REDIS_REPLY_ARRAY || r[0].elements < 1 || !reply_is(r[0].element[0], "subscribe")) {
        log_warn("invalidation subscriber: SUBSCRIBE {} failed: {}", channel_,
                   why.empty() ? "unexpected reply" : why);
        redisFree(c);
        return;
    }
    r.clear();
    resync("subscribed");
    shared_.subscriber_pid.store(getpid(), std::memory_order_release);
    log_info("subscribed to invalidations on '{}' for segment '{}'", channel_, engine_.name());

    uint64_t last_ping = now_ms();
    bool ping_outstanding = false;
    const char* lost = nullptr;
    while (!lost) {
        {
            std::lock_guard lk(m_);
            if (stop_) break;
        }
        // Apply every complete reply already read.
        for (;;) {
            void* reply = nullptr;
            if (redisGetReplyFromReader(c, &reply) != REDIS_OK) {
                lost = "protocol error";
                break;
            }
            if (!reply) break;
            const redisReply* rr = static_cast<redisReply*>(reply);
            if (rr->type == REDIS_REPLY_ARRAY && rr->elements >= 3 &&
                reply_is(rr->element[0], "message") && rr->element[2]->type == REDIS_REPLY_STRING)
                apply(std::string_view(rr->element[2]->str, rr->element[2]->len));
            else if (rr->type == REDIS_REPLY_ARRAY && rr->elements >= 1 &&
                     reply_is(rr->element[0], "pong"))
                ping_outstanding = false;
            freeReplyObject(reply);
        }
        if (lost) break;
        const uint64_t now = now_ms();
        if (ping_outstanding && now - last_ping > reply_timeout) {
            lost = "no answer to PING (Redis hung?)";
            break;
        }
        if (!ping_outstanding && now - last_ping >= kPingIntervalMs) {
            redisAppendCommand(c, "PING");
            int done = 0;
            while (!done)
                if (redisBufferWrite(c, &done) != REDIS_OK) break;
            if (!done) {
                lost = "connection lost (write)";
                break;
            }
            last_ping = now;
            ping_outstanding = true;
        }
        pollfd p{c->fd, POLLIN, 0};
        const int n = poll(&p, 1, 100);
        if (n < 0 && errno != EINTR) {
            lost = "poll failed";
        } else if (n > 0) {
            if (p.revents & POLLIN) {
                if (redisBufferRead(c) != REDIS_OK) lost = "connection lost";
            } else if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) {
                lost = "connection lost";
            }
        }
    }
    int self = getpid();
    shared_.subscriber_pid.compare_exchange_strong(self, 0);
    redisFree(c);
    // The L1 copies stay: during a Redis outage they are what the host serves. No new copies are
    // made until a subscription is live again, and resubscribing drops these (resync), since
    // messages published meanwhile are lost.
    if (lost) log_warn("invalidation subscription on '{}' lost: {}", channel_, lost);
}

}  // namespace shmcache::l2
