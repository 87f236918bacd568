// redis_server.h - a real redis-server for the tests, on a random free loopback port.
//
// Started with no persistence (nothing written to disk) in a private temporary directory, killed
// when the object goes away. stop()/cont() freeze and thaw it (SIGSTOP/SIGCONT: a hung Redis);
// kill() is SIGKILL; restart() starts a new server on the same port.
#ifndef SHMCACHE_TESTS_L2_REDIS_SERVER_H
#define SHMCACHE_TESTS_L2_REDIS_SERVER_H

#include <sys/types.h>

#include <string>
#include <vector>

namespace l2test {

// Makes the test PKI in dir with the openssl program: a CA, a server certificate for localhost
// and 127.0.0.1, a client certificate, and a second CA that signed nothing (ca.crt, ca.key,
// server.crt, server.key, client.crt, client.key, other-ca.crt, other-ca.key, and their
// by-products: ca.srl, *.csr, openssl.log). Throws std::runtime_error on failure.
void make_certificates(const std::string& dir);

class RedisServer {
public:
    struct Options {
        // Also listen with TLS on tls_port(), with certificates made for the test in dir():
        // ca.crt (the CA), server.crt (names localhost and 127.0.0.1), client.crt/client.key
        // (a client certificate from that CA), other-ca.crt (a CA that signed nothing here).
        bool tls = false;
        bool tls_auth_clients = true;  // the TLS port requires a client certificate
        std::vector<std::string> extra_args;  // more redis-server arguments
        // Written to redis.conf in dir() and given as the configuration file (Sentinel needs
        // one it can rewrite).
        std::string config;
        bool sentinel = false;  // run as a sentinel (--sentinel); config monitors the master
    };
    RedisServer();  // throws std::runtime_error if no server could be started
    explicit RedisServer(Options opts);
    ~RedisServer();
    RedisServer(const RedisServer&) = delete;
    RedisServer& operator=(const RedisServer&) = delete;

    int port() const { return port_; }
    int tls_port() const { return tls_port_; }
    const std::string& dir() const { return dir_; }
    // rediss://127.0.0.1:<tls port>/0 with the test CA and client certificate; query is appended.
    std::string tls_url(const std::string& query = "") const;
    std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/0"; }
    pid_t pid() const { return pid_; }

    void stop();     // SIGSTOP
    void cont();     // SIGCONT
    void kill();     // SIGKILL and reap
    void restart();  // kill (if running) and start again on the same port, empty

    // Runs one command through redis-cli-free plain RESP over a socket and returns the raw reply
    // line(s) (for checks like EXISTS or PTTL). Returns "" on failure.
    std::string command(const std::string& a, const std::string& b = "",
                        const std::string& c = "") const;
    // The same with any number of arguments.
    std::string command_argv(const std::vector<std::string>& args) const;
    // Runs the redis-cli program against this server (a client that is not shmcache, as an
    // operator would) and returns its standard output ("" if it could not run).
    std::string cli(const std::vector<std::string>& args) const;

private:
    bool start_on(int port);
    Options opts_;
    int port_ = 0;
    int tls_port_ = 0;
    pid_t pid_ = -1;
    bool stopped_ = false;
    std::string dir_;
};

}  // namespace l2test

#endif
