// conn.cpp - see conn.h.
#include "conn.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <new>
#include <shared_mutex>

namespace shmcache::l2 {

uint64_t now_ms() {
    return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now().time_since_epoch())
                        .count());
}

namespace {

// The newest OpenSSL error as text, or fallback; empties the thread's error queue.
std::string ssl_error(const char* fallback) {
    unsigned long e = ERR_get_error();
    std::string what = fallback;
    if (e) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        what = buf;
    }
    ERR_clear_error();
    return what;
}

bool is_ip_literal(const std::string& host) {
    in6_addr a6;
    in_addr a4;
    return inet_pton(AF_INET, host.c_str(), &a4) == 1 || inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

// Waits for a non-blocking connect on fd; 0 or the errno.
int finish_connect(int fd, uint64_t deadline_ms, bool* timeout) {
    for (;;) {
        const uint64_t now = now_ms();
        if (now >= deadline_ms) {
            *timeout = true;
            return ETIMEDOUT;
        }
        pollfd p{fd, POLLOUT, 0};
        const int n = poll(&p, 1, int(std::min<uint64_t>(deadline_ms - now, 60000)));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno;
        if (n == 0) continue;
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return errno;
        return err;
    }
}

// A connected non-blocking socket, or -1 with *err set.
int connect_socket(const RedisEndpoint& ep, uint64_t deadline_ms, IoError* err) {
    bool timeout = false;
    if (ep.is_unix) {
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        if (ep.path.size() >= sizeof sa.sun_path) {
            err->what = "socket path too long";
            return -1;
        }
        std::memcpy(sa.sun_path, ep.path.c_str(), ep.path.size() + 1);
        const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            err->what = std::string("socket: ") + std::strerror(errno);
            return -1;
        }
        // A unix socket connects at once or fails (EAGAIN: the server's backlog is full).
        const int e = connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 ? 0 : errno;
        if (e) {
            close(fd);
            err->timeout = timeout;
            err->what = timeout ? "connect timed out" : std::strerror(e);
            return -1;
        }
        return fd;
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const std::string port = std::to_string(ep.port);
    if (int rc = getaddrinfo(ep.host.c_str(), port.c_str(), &hints, &res); rc != 0) {
        err->what = std::string("cannot resolve '") + ep.host + "': " + gai_strerror(rc);
        return -1;
    }
    int last = ECONNREFUSED;
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
        const int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                              ai->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        int e = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : errno;
        if (e == EINPROGRESS) e = finish_connect(fd, deadline_ms, &timeout);
        if (!e) {
            freeaddrinfo(res);
            const int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
            return fd;
        }
        close(fd);
        last = e;
        if (timeout) break;
    }
    freeaddrinfo(res);
    err->timeout = timeout;
    err->what = timeout ? "connect timed out" : std::strerror(last);
    return -1;
}

// OpenSSL's socket BIO writes with write(), which raises SIGPIPE on a connection the server has
// closed and kills a program that did not ignore it. This BIO is the socket BIO with its write
// replaced by send(MSG_NOSIGNAL), as the plain path uses.
int send_nosignal(BIO* b, const char* data, int len) {
    const ssize_t n = send(int(BIO_get_fd(b, nullptr)), data, size_t(len), MSG_NOSIGNAL);
    BIO_clear_retry_flags(b);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_write(b);
    return int(n);
}

const BIO_METHOD* socket_bio_method() {
    static BIO_METHOD* method = [] {
        const BIO_METHOD* base = BIO_s_socket();
        BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK |
                                         BIO_TYPE_DESCRIPTOR,
                                     "shmcache socket");
        if (!m) return m;
        BIO_meth_set_write(m, send_nosignal);
        BIO_meth_set_read(m, BIO_meth_get_read(base));
        BIO_meth_set_puts(m, BIO_meth_get_puts(base));
        BIO_meth_set_ctrl(m, BIO_meth_get_ctrl(base));
        BIO_meth_set_create(m, BIO_meth_get_create(base));
        BIO_meth_set_destroy(m, BIO_meth_get_destroy(base));
        return m;
    }();
    return method;
}

}  // namespace

void Replies::clear() {
    for (redisReply* r : replies_) freeReplyObject(r);
    replies_.clear();
}

std::shared_ptr<TlsContext> TlsContext::create(const TlsOptions& o, std::string* why) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        *why = ssl_error("cannot create a TLS context");
        return nullptr;
    }
    auto fail = [&](std::string what) {
        *why = what + ": " + ssl_error("unknown error");
        SSL_CTX_free(ctx);
        return nullptr;
    };
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    // A partial write is resumed from a new buffer position (out_ moves as it drains).
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (o.verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
        if (o.ca_file.empty() && o.ca_path.empty()) {
            if (SSL_CTX_set_default_verify_paths(ctx) != 1)
                return fail("cannot load the system's CA certificates");
        } else if (SSL_CTX_load_verify_locations(ctx, o.ca_file.empty() ? nullptr : o.ca_file.c_str(),
                                                 o.ca_path.empty() ? nullptr : o.ca_path.c_str()) != 1) {
            return fail("cannot load the CA certificates (ssl_ca_certs '" + o.ca_file +
                        "', ssl_ca_path '" + o.ca_path + "')");
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    }
    if (!o.cert_file.empty()) {
        if (SSL_CTX_use_certificate_chain_file(ctx, o.cert_file.c_str()) != 1)
            return fail("cannot load the client certificate (ssl_certfile '" + o.cert_file + "')");
        if (SSL_CTX_use_PrivateKey_file(ctx, o.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
            return fail("cannot load the client key (ssl_keyfile '" + o.key_file + "')");
        if (SSL_CTX_check_private_key(ctx) != 1)
            return fail("the client key does not match the client certificate");
    }
    return std::shared_ptr<TlsContext>(new TlsContext(ctx, o));
}

std::shared_ptr<TlsContext> TlsContext::share(const TlsContext& other) {
    SSL_CTX_up_ref(other.ctx_);
    return std::shared_ptr<TlsContext>(new TlsContext(other.ctx_, other.opts_));
}

void TlsContext::fork_child_reset() const { new (&fork_m_) std::shared_mutex(); }

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

Conn::Conn(int fd, SSL* ssl) : fd_(fd), ssl_(ssl), reader_(redisReaderCreate()) {}

Conn::~Conn() {
    if (ssl_) SSL_free(ssl_);  // no SSL_shutdown: see conn.h (fork)
    if (fd_ >= 0) close(fd_);
    if (reader_) redisReaderFree(reader_);
}

std::unique_ptr<Conn> Conn::open(const RedisEndpoint& ep, const TlsContext* tls,
                                 uint64_t deadline_ms, IoError* err) {
    const int fd = connect_socket(ep, deadline_ms, err);
    if (fd < 0) return nullptr;
    if (!tls) {
        std::unique_ptr<Conn> c(new Conn(fd, nullptr));
        if (!c->reader_) {
            err->what = "out of memory";
            return nullptr;
        }
        return c;
    }
    SSL* ssl = SSL_new(tls->ctx());
    if (!ssl) {
        close(fd);
        err->what = ssl_error("cannot create a TLS session");
        return nullptr;
    }
    std::unique_ptr<Conn> c(new Conn(fd, ssl));
    const TlsOptions& o = tls->options();
    const std::string& name = o.server_name.empty() ? ep.host : o.server_name;
    BIO* bio = socket_bio_method() ? BIO_new(socket_bio_method()) : nullptr;
    if (!bio) {
        err->what = ssl_error("cannot create a socket BIO");
        return nullptr;
    }
    BIO_set_fd(bio, fd, BIO_NOCLOSE);  // the Conn closes fd
    SSL_set_bio(ssl, bio, bio);
    if (!is_ip_literal(name)) SSL_set_tlsext_host_name(ssl, name.c_str());  // SNI: names only
    if (o.verify) {
        // The certificate must name the server: a DNS name, or an IP address in its SANs.
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
        const int ok = is_ip_literal(name) ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                                           : X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0);
        if (ok != 1) {
            err->what = ssl_error("cannot set the expected server name");
            return nullptr;
        }
    }
    // Handshakes use the shared SSL_CTX's locks (certificate store, session cache): fork waits
    // for them to finish, so that a child never inherits one of those locks held.
    std::shared_lock fork_guard(tls->fork_mutex());
    for (;;) {
        ERR_clear_error();
        const int rc = SSL_connect(ssl);
        if (rc == 1) break;
        const int e = SSL_get_error(ssl, rc);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            if (!c->wait(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline_ms, err)) {
                if (err->timeout) err->what = "TLS handshake timed out";
                return nullptr;
            }
            continue;
        }
        const long verify = SSL_get_verify_result(ssl);
        err->what = verify != X509_V_OK
                        ? std::string("TLS: the server's certificate was refused: ") +
                              X509_verify_cert_error_string(verify)
                        : "TLS handshake failed: " +
                              ssl_error(e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN
                                            ? "the server closed the connection (not TLS?)"
                                            : "unknown error");
        ERR_clear_error();
        return nullptr;
    }
    if (!c->reader_) {
        err->what = "out of memory";
        return nullptr;
    }
    return c;
}

bool Conn::wait(short events, uint64_t deadline_ms, IoError* err) const {
    for (;;) {
        const uint64_t now = now_ms();
        if (now >= deadline_ms) {
            err->timeout = true;
            err->what = "command timed out";
            return false;
        }
        pollfd p{fd_, events, 0};
        const int n = poll(&p, 1, int(std::min<uint64_t>(deadline_ms - now, 60000)));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            err->what = std::string("poll: ") + std::strerror(errno);
            return false;
        }
        if (n > 0) return true;  // readable, writable, or an error the next call reports
    }
}

void Conn::append(const Command& cmd) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    argv.reserve(cmd.size());
    lens.reserve(cmd.size());
    for (std::string_view a : cmd) {
        argv.push_back(a.data());
        lens.push_back(a.size());
    }
    char* formatted = nullptr;
    const int n = redisFormatCommandArgv(&formatted, int(argv.size()), argv.data(), lens.data());
    if (n > 0) out_.append(formatted, size_t(n));
    redisFreeCommand(formatted);
}

Conn::Io Conn::write_some(const char* p, size_t n, size_t* written, IoError* err) {
    *written = 0;
    if (!ssl_) {
        const ssize_t w = send(fd_, p, n, MSG_NOSIGNAL);
        if (w >= 0) {
            *written = size_t(w);
            return Io::kDone;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return Io::kWantWrite;
        err->what = std::string("write: ") + std::strerror(errno);
        return Io::kError;
    }
    ERR_clear_error();
    const int w = SSL_write(ssl_, p, int(std::min<size_t>(n, 1 << 30)));
    if (w > 0) {
        *written = size_t(w);
        return Io::kDone;
    }
    const int e = SSL_get_error(ssl_, w);
    if (e == SSL_ERROR_WANT_WRITE) return Io::kWantWrite;
    if (e == SSL_ERROR_WANT_READ) return Io::kWantRead;
    err->what = "TLS write: " + ssl_error(std::strerror(errno));
    return Io::kError;
}

bool Conn::flush(uint64_t deadline_ms, IoError* err) {
    size_t done = 0;
    while (done < out_.size()) {
        size_t w = 0;
        const Io io = write_some(out_.data() + done, out_.size() - done, &w, err);
        done += w;
        if (io == Io::kError) return false;
        if (io == Io::kWantRead || io == Io::kWantWrite) {
            if (!wait(io == Io::kWantRead ? POLLIN : POLLOUT, deadline_ms, err)) return false;
        }
    }
    out_.clear();
    return true;
}

Conn::Io Conn::read_some(IoError* err) {
    char buf[16384];
    if (!ssl_) {
        const ssize_t n = recv(fd_, buf, sizeof buf, 0);
        if (n > 0) {
            redisReaderFeed(reader_, buf, size_t(n));
            return Io::kDone;
        }
        if (n == 0) {
            err->what = "connection closed by the server";
            return Io::kEof;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return Io::kWantRead;
        err->what = std::string("read: ") + std::strerror(errno);
        return Io::kError;
    }
    ERR_clear_error();
    const int n = SSL_read(ssl_, buf, sizeof buf);
    if (n > 0) {
        redisReaderFeed(reader_, buf, size_t(n));
        return Io::kDone;
    }
    const int e = SSL_get_error(ssl_, n);
    if (e == SSL_ERROR_WANT_READ) return Io::kWantRead;
    if (e == SSL_ERROR_WANT_WRITE) return Io::kWantWrite;
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
        ERR_clear_error();
        err->what = "connection closed by the server";
        return Io::kEof;
    }
    err->what = "TLS read: " + ssl_error(std::strerror(errno));
    return Io::kError;
}

bool Conn::buffered_reply(redisReply** out, IoError* err) {
    void* reply = nullptr;
    if (redisReaderGetReply(reader_, &reply) != REDIS_OK) {
        err->what = std::string("protocol error: ") + reader_->errstr;
        return false;
    }
    *out = static_cast<redisReply*>(reply);
    return true;
}

bool Conn::read_available(IoError* err) {
    for (;;) {
        const Io io = read_some(err);
        if (io == Io::kDone) {
            if (!input_pending()) return true;
            continue;
        }
        return io == Io::kWantRead || io == Io::kWantWrite;
    }
}

bool Conn::input_pending() const { return ssl_ && SSL_pending(ssl_) > 0; }

bool Conn::read_reply(uint64_t deadline_ms, redisReply** out, IoError* err) {
    for (;;) {
        if (!buffered_reply(out, err)) return false;
        if (*out) return true;
        const Io io = read_some(err);
        if (io == Io::kDone) continue;
        if (io == Io::kEof || io == Io::kError) return false;
        if (!wait(io == Io::kWantWrite ? POLLOUT : POLLIN, deadline_ms, err)) return false;
    }
}

bool exec_batch(Conn& c, std::span<const Command> cmds, uint64_t deadline_ms, Replies* out,
                IoError* err) {
    for (const Command& cmd : cmds) c.append(cmd);
    if (!c.flush(deadline_ms, err)) return false;
    for (size_t i = 0; i < cmds.size(); ++i) {
        redisReply* r = nullptr;
        if (!c.read_reply(deadline_ms, &r, err)) return false;
        out->push(r);
    }
    return true;
}

}  // namespace shmcache::l2
