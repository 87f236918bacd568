// conn.h - one connection to one Redis server: TCP, a unix socket, or TLS over TCP.
//
// hiredis 0.14 (Debian 12) has no TLS, but its protocol parts are separate from its socket code:
// commands are formatted with redisFormatCommandArgv and replies parsed with a redisReader. This
// class supplies the socket: non-blocking, every wait bounded by the caller's deadline with
// poll(), and OpenSSL (SSL_connect/SSL_read/SSL_write over the same non-blocking socket) when the
// endpoint asks for TLS. Replies are the usual redisReply objects (freeReplyObject).
//
// A Conn is not shared between threads. After fork the child may destroy its copy: the
// destructor only closes the descriptor and frees memory (no TLS close_notify is ever sent, so
// the parent's session on the same socket is untouched).
#ifndef SHMCACHE_LIB_L2_CONN_H
#define SHMCACHE_LIB_L2_CONN_H

#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "redis_url.h"

namespace shmcache::l2 {

// One command, as its arguments (binary-safe).
using Command = std::vector<std::string_view>;

// The TLS settings of an endpoint, loaded once (certificates read, CAs parsed) and shared by
// every connection to it.
class TlsContext {
public:
    // Null with *why set if a file cannot be loaded or the key does not match the certificate.
    static std::shared_ptr<TlsContext> create(const TlsOptions& opts, std::string* why);
    // Another context on the same loaded certificates (SSL_CTX_up_ref) with a fork mutex of its
    // own: for a client per node (a cluster's), each of which locks its context across fork.
    static std::shared_ptr<TlsContext> share(const TlsContext& other);
    ~TlsContext();
    TlsContext(const TlsContext&) = delete;
    TlsContext& operator=(const TlsContext&) = delete;
    SSL_CTX* ctx() const { return ctx_; }
    const TlsOptions& options() const { return opts_; }
    // Held shared during every handshake, exclusively across fork() (redis_client.cpp).
    std::shared_mutex& fork_mutex() const { return fork_m_; }
    // In a fork child, instead of unlocking fork_mutex(): a fresh one. glibc's rwlock unlock
    // tells a writer by its thread id, which the child's thread no longer has, so an unlock there
    // would leave the lock held and the child's first handshake waiting for ever.
    void fork_child_reset() const;

private:
    TlsContext(SSL_CTX* ctx, TlsOptions opts) : ctx_(ctx), opts_(std::move(opts)) {}
    SSL_CTX* ctx_;
    const TlsOptions opts_;
    mutable std::shared_mutex fork_m_;
};

// Why an operation failed.
struct IoError {
    std::string what;
    bool timeout = false;
};

class Conn {
public:
    // Connects to ep (a single node: TCP or unix) and, with tls, completes the handshake, all
    // before deadline_ms (monotonic, now_ms()). Null with *err set on failure.
    static std::unique_ptr<Conn> open(const RedisEndpoint& ep, const TlsContext* tls,
                                      uint64_t deadline_ms, IoError* err);
    ~Conn();
    Conn(const Conn&) = delete;
    Conn& operator=(const Conn&) = delete;

    // Queues a command; nothing is sent before flush().
    void append(const Command& cmd);
    // Sends everything queued. False with *err set on failure or when deadline_ms passes.
    bool flush(uint64_t deadline_ms, IoError* err);
    // The next reply, read from the socket if none is buffered, waiting until deadline_ms at most.
    bool read_reply(uint64_t deadline_ms, redisReply** out, IoError* err);

    // For event loops (the subscriber): a reply already parsed from what was read, or null.
    // False on a protocol error.
    bool buffered_reply(redisReply** out, IoError* err);
    // Reads what the socket has now, without waiting. False on EOF or an error.
    bool read_available(IoError* err);
    // Whether decrypted bytes wait inside the TLS layer (poll() on fd() cannot see them).
    bool input_pending() const;
    int fd() const { return fd_; }

    uint64_t pool_tag = 0;  // for the connection pool's bookkeeping (redis_client.cpp)

private:
    Conn(int fd, SSL* ssl);
    enum class Io { kDone, kWantRead, kWantWrite, kEof, kError };
    Io read_some(IoError* err);                                      // into the reader
    Io write_some(const char* p, size_t n, size_t* written, IoError* err);
    bool wait(short events, uint64_t deadline_ms, IoError* err) const;  // poll until ready

    int fd_;
    SSL* ssl_;  // null: plain
    redisReader* reader_;
    std::string out_;  // formatted commands not yet sent
};

// The replies of one batch, one per command; freed with the object.
class Replies {
public:
    Replies() = default;
    Replies(const Replies&) = delete;
    Replies& operator=(const Replies&) = delete;
    ~Replies() { clear(); }
    void clear();
    void push(redisReply* r) { replies_.push_back(r); }
    size_t size() const { return replies_.size(); }
    const redisReply& operator[](size_t i) const { return *replies_[i]; }
    // Hands reply i over to the caller (who frees it); only clear() may follow for that slot.
    redisReply* take(size_t i) {
        redisReply* r = replies_[i];
        replies_[i] = nullptr;
        return r;
    }

private:
    std::vector<redisReply*> replies_;
};

// Sends cmds in one round trip on c and reads one reply per command into *out (appended), all
// before deadline_ms. False with *err set on an I/O failure (the connection is then unusable).
bool exec_batch(Conn& c, std::span<const Command> cmds, uint64_t deadline_ms, Replies* out,
                IoError* err);

// Milliseconds on the monotonic clock.
uint64_t now_ms();

}  // namespace shmcache::l2

#endif
