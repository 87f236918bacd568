// memcached_peer.cpp - see memcached_peer.h.
#include "memcached_peer.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>
#include <vector>

extern char** environ;

namespace shmcache::bench {

namespace {

// A port the kernel just handed out on 127.0.0.1 and that nothing listens on now. Another
// process may take it before memcached binds it; the caller then tries again.
int free_loopback_port() {
    const int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0)
        port = ntohs(a.sin_port);
    close(s);
    return port;
}

int connect_loopback(int port) {
    const int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        close(s);
        return -1;
    }
    return s;
}

constexpr size_t kBatchBytes = 256 * 1024;

// VmRSS of a process, in bytes (0 if /proc does not say).
uint64_t resident_bytes(pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
    return 0;
}

}  // namespace

MemcachedPeer::MemcachedPeer(uint64_t memory_mb, uint64_t item_max) {
    for (int attempt = 0; attempt < 5 && fd_ < 0; ++attempt) {
        const int port = free_loopback_port();
        if (port < 0) {
            error_ = std::string("no free loopback port: ") + strerror(errno);
            return;
        }
        const std::string m = std::to_string(memory_mb), p = std::to_string(port),
                          i = std::to_string(item_max);
        std::vector<const char*> argv = {"memcached", "-m", m.c_str(), "-l", "127.0.0.1",
                                         "-p", p.c_str(), "-U", "0", "-t", "1", "-I",
                                         i.c_str()};
        if (geteuid() == 0) {  // memcached refuses to run as root unless told which user
            argv.push_back("-u");
            argv.push_back("root");
        }
        argv.push_back(nullptr);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
        const int rc = posix_spawnp(&pid_, "memcached", &fa, nullptr,
                                    const_cast<char* const*>(argv.data()), environ);
        posix_spawn_file_actions_destroy(&fa);
        if (rc != 0) {
            pid_ = -1;
            error_ = std::string("cannot start memcached (scripts/deps.sh installs it): ") +
                     strerror(rc);
            return;
        }
        // Up within 3 s, or it lost the port (or failed): stop it and try another port.
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
        while (fd_ < 0 && std::chrono::steady_clock::now() < deadline) {
            if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
                pid_ = -1;
                break;
            }
            fd_ = connect_loopback(port);
            if (fd_ < 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        if (fd_ < 0 && pid_ > 0) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
            pid_ = -1;
        }
    }
    if (fd_ < 0) {
        error_ = "memcached did not accept connections on loopback within 3 s, 5 times";
        return;
    }
    const std::string v = request("version\r\n", "\r\n");
    version_ = v.rfind("VERSION ", 0) == 0 ? v.substr(8, v.size() - 10) : "unknown";
}

MemcachedPeer::~MemcachedPeer() {
    if (fd_ >= 0) close(fd_);
    if (pid_ > 0) {
        kill(pid_, SIGTERM);
        waitpid(pid_, nullptr, 0);
    }
}

void MemcachedPeer::set(const char* key, size_t klen, const char* value, size_t vlen) {
    out_.append("set ").append(key, klen).append(" 0 0 ").append(std::to_string(vlen));
    out_.append(" noreply\r\n").append(value, vlen).append("\r\n");
    if (out_.size() >= kBatchBytes) flush();
}

void MemcachedPeer::del(const char* key, size_t klen) {
    out_.append("delete ").append(key, klen).append(" noreply\r\n");
    if (out_.size() >= kBatchBytes) flush();
}

void MemcachedPeer::flush() {
    if (fd_ < 0 || out_.empty()) return;
    if (!send_all(out_.data(), out_.size())) {
        close(fd_);
        fd_ = -1;
    }
    out_.clear();
}

bool MemcachedPeer::send_all(const char* p, size_t n) {
    while (n) {
        drain();
        pollfd pfd{fd_, POLLOUT, 0};
        if (poll(&pfd, 1, 10000) <= 0) {
            error_ = "memcached stopped reading for 10 s";
            return false;
        }
        const ssize_t w = send(fd_, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (w <= 0) {
            error_ = std::string("send to memcached: ") + strerror(errno);
            return false;
        }
        p += w;
        n -= size_t(w);
    }
    return true;
}

void MemcachedPeer::drain() {
    char buf[4096];
    while (recv(fd_, buf, sizeof buf, MSG_DONTWAIT) > 0) {
    }
}

std::string MemcachedPeer::request(const std::string& cmd, const char* terminator) {
    flush();
    if (fd_ < 0) return {};
    drain();  // noreply commands answer nothing, but an error line may be waiting
    if (!send_all(cmd.data(), cmd.size())) return {};
    std::string in;
    char buf[4096];
    while (in.find(terminator) == std::string::npos) {
        pollfd pfd{fd_, POLLIN, 0};
        if (poll(&pfd, 1, 10000) <= 0) {
            error_ = "memcached did not answer within 10 s";
            return {};
        }
        const ssize_t r = recv(fd_, buf, sizeof buf, 0);
        if (r <= 0) {
            error_ = "memcached closed the connection";
            return {};
        }
        in.append(buf, size_t(r));
    }
    return in;
}

bool MemcachedPeer::stats(MemcachedStats* out) {
    const std::string s = request("stats\r\n", "END\r\n");
    if (s.empty()) return false;
    auto field = [&](const char* name) -> uint64_t {
        const std::string tag = std::string("STAT ") + name + " ";
        const size_t at = s.find(tag);
        return at == std::string::npos ? 0 : std::strtoull(s.c_str() + at + tag.size(), nullptr, 10);
    };
    out->curr_items = field("curr_items");
    out->evictions = field("evictions");
    out->bytes = field("bytes");
    out->hash_bytes = field("hash_bytes");
    out->resident_bytes = resident_bytes(pid_);
    return true;
}

}  // namespace shmcache::bench
