// redis_server.cpp - see redis_server.h.
#include "redis_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <thread>

namespace l2test {

namespace {

int free_port() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        if (fd >= 0) close(fd);
        return 0;
    }
    close(fd);
    return ntohs(a.sin_port);
}

std::string resp(const std::vector<std::string>& args) {
    std::string out = "*" + std::to_string(args.size()) + "\r\n";
    for (const std::string& s : args) out += "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
    return out;
}

}  // namespace

std::string RedisServer::command(const std::string& a, const std::string& b,
                                 const std::string& c) const {
    std::vector<std::string> args{a};
    if (!b.empty()) args.push_back(b);
    if (!c.empty()) args.push_back(c);
    return command_argv(args);
}

std::string RedisServer::cli(const std::vector<std::string>& args) const {
    int fds[2];
    if (pipe(fds) != 0) return "";
    const pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return "";
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        const std::string p = std::to_string(port_);
        std::vector<const char*> argv{"redis-cli", "-h", "127.0.0.1", "-p", p.c_str()};
        for (const std::string& a : args) argv.push_back(a.c_str());
        argv.push_back(nullptr);
        execvp("redis-cli", const_cast<char* const*>(argv.data()));
        _exit(127);
    }
    close(fds[1]);
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, size_t(n));
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? out : "";
}

std::string RedisServer::command_argv(const std::vector<std::string>& args) const {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return "";
    timeval tv{0, 300000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(uint16_t(port_));
    std::string reply;
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
        const std::string req = resp(args);
        if (write(fd, req.data(), req.size()) == ssize_t(req.size())) {
            char buf[4096];
            ssize_t n = read(fd, buf, sizeof buf);
            if (n > 0) reply.assign(buf, size_t(n));
        }
    }
    close(fd);
    return reply;
}

void make_certificates(const std::string& dir) {
    const std::string script =
        "set -e; cd '" + dir + "'; exec >openssl.log 2>&1\n"
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=shmcache-test-ca "
        "  -keyout ca.key -out ca.crt\n"
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca "
        "  -keyout other-ca.key -out other-ca.crt\n"
        "openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr "
        "  -addext subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
        "  -copy_extensions copyall -out server.crt\n"
        "openssl req -newkey rsa:2048 -nodes -subj /CN=shmcache-client -keyout client.key "
        "  -out client.csr\n"
        "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
        "  -out client.crt\n";
    const std::string cmd = "/bin/sh -c \"" + script + "\"";
    if (std::system(cmd.c_str()) != 0)
        throw std::runtime_error("could not make test certificates with openssl (see " + dir +
                                 "/openssl.log)");
}

std::string RedisServer::tls_url(const std::string& query) const {
    std::string url = "rediss://127.0.0.1:" + std::to_string(tls_port_) + "/0?ssl_ca_certs=" +
                      dir_ + "/ca.crt&ssl_certfile=" + dir_ + "/client.crt&ssl_keyfile=" + dir_ +
                      "/client.key";
    if (!query.empty()) url += "&" + query;
    return url;
}

bool RedisServer::start_on(int port) {
    port_ = port;
    if (opts_.tls && !tls_port_) tls_port_ = free_port();
    std::vector<std::string> args{"redis-server"};
    if (!opts_.config.empty()) args.push_back(dir_ + "/redis.conf");
    if (opts_.sentinel) args.push_back("--sentinel");
    const std::string p = std::to_string(port);
    for (const char* a : {"--port", p.c_str(), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                          "no", "--protected-mode", "no", "--loglevel", "warning", "--logfile",
                          "redis.log"})
        args.push_back(a);
    if (opts_.tls) {
        for (const char* a : {"--tls-port", "", "--tls-cert-file", "server.crt", "--tls-key-file",
                              "server.key", "--tls-ca-cert-file", "ca.crt", "--tls-auth-clients"})
            args.push_back(a);
        args[args.size() - 8] = std::to_string(tls_port_);
        args.push_back(opts_.tls_auth_clients ? "yes" : "no");
    }
    for (const std::string& a : opts_.extra_args) args.push_back(a);
    pid_ = fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {
        if (chdir(dir_.c_str()) != 0) _exit(127);
        std::vector<char*> argv;
        for (std::string& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        execvp("redis-server", argv.data());
        _exit(127);
    }
    stopped_ = false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {  // exited: port taken, or no binary
            pid_ = -1;
            return false;
        }
        if (command("PING").rfind("+PONG", 0) == 0) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill();
    return false;
}

RedisServer::RedisServer() : RedisServer(Options{}) {}

RedisServer::RedisServer(Options opts) : opts_(std::move(opts)) {
    char tmpl[] = "/tmp/shmc-redis-XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    if (opts_.tls) make_certificates(dir_);
    if (!opts_.config.empty()) {
        FILE* f = std::fopen((dir_ + "/redis.conf").c_str(), "w");
        if (!f || std::fputs(opts_.config.c_str(), f) < 0 || std::fclose(f) != 0)
            throw std::runtime_error("cannot write redis.conf");
    }
    for (int attempt = 0; attempt < 8; ++attempt) {
        const int port = free_port();
        tls_port_ = 0;
        if (port && start_on(port)) return;
    }
    throw std::runtime_error("could not start redis-server (is the redis-server package installed?)");
}

RedisServer::~RedisServer() {
    kill();
    for (const char* f : {"redis.log", "openssl.log", "ca.key", "ca.crt", "ca.srl", "other-ca.key",
                          "other-ca.crt", "server.key", "server.csr", "server.crt", "client.key",
                          "client.csr", "client.crt", "redis.conf"})
        unlink((dir_ + "/" + f).c_str());
    rmdir(dir_.c_str());
}

void RedisServer::stop() {
    if (pid_ > 0 && !stopped_) ::kill(pid_, SIGSTOP);
    stopped_ = true;
}

void RedisServer::cont() {
    if (pid_ > 0 && stopped_) ::kill(pid_, SIGCONT);
    stopped_ = false;
}

void RedisServer::kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    if (stopped_) ::kill(pid_, SIGCONT);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
    stopped_ = false;
}

void RedisServer::restart() {
    kill();
    for (int attempt = 0; attempt < 50; ++attempt) {
        if (start_on(port_)) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    throw std::runtime_error("could not restart redis-server on its port");
}

}  // namespace l2test
