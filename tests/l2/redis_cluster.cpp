// redis_cluster.cpp - see redis_cluster.h.
#include "redis_cluster.h"

#include "redis_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

namespace l2test {

namespace {

int free_port() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        if (fd >= 0) close(fd);
        return 0;
    }
    close(fd);
    return ntohs(a.sin_port);
}

// Starts args[0] (found on PATH) with args, its standard output on out_fd and its standard error
// on /dev/null; the pid, -1 on failure.
// posix_spawn, not fork: while a load runs, the test process is multi-threaded and, under ASan,
// large (its quarantine holds hundreds of MB). fork() copies its page tables and has the threads
// fault on copy-on-write pages until the child execs: a redis-cli cost 60-150 ms, growing with the
// heap and the machine's load (migrate_slot runs ~100 of them), against ~15 ms now. And a forked
// child of a multi-threaded process must not allocate before exec (an allocator lock another
// thread held at the fork stays held), which the argv vector did. posix_spawn shares the memory
// until the exec (vfork-style) and runs only the file actions in the child.
pid_t spawn(const std::vector<std::string>& args, int out_fd) {
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0) return -1;
    bool ok = posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0) == 0;
    ok = ok && posix_spawn_file_actions_adddup2(&fa, out_fd, 1) == 0;
    pid_t pid = -1;
    if (!ok || posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

// Runs argv with stdout captured into *out, killed after timeout_s (redis-cli would wait for ever
// on a stopped node); whether it exited 0.
bool run(std::vector<std::string> args, int timeout_s, std::string* out) {
    args.insert(args.begin(), {"timeout", "-s", "KILL", std::to_string(timeout_s)});
    out->clear();
    int fds[2];
    // Close-on-exec: only this child gets the write end (as its stdout), so EOF comes with it.
    if (pipe2(fds, O_CLOEXEC) != 0) return false;
    const pid_t pid = spawn(args, fds[1]);
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        return false;
    }
    char buf[4096];
    for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR);)
        if (n > 0) out->append(buf, size_t(n));
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// run() with a 10 s limit; its output, "" unless it exits 0.
std::string capture(std::vector<std::string> args) {
    std::string out;
    return run(std::move(args), 10, &out) ? out : "";
}

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    return s;
}

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

}  // namespace

std::string RedisCluster::url() const {
    return std::string(tls_ ? "rediss" : "redis") +
           "+cluster://127.0.0.1:" + std::to_string(nodes_[0].port) +
           ",127.0.0.1:" + std::to_string(nodes_[1].port) +
           (tls_ ? "?ssl_ca_certs=" + dir_ + "/ca.crt" : "");
}

std::vector<std::string> RedisCluster::tls_args() const {
    if (!tls_) return {};
    return {"--tls", "--cacert", dir_ + "/ca.crt"};
}

std::string RedisCluster::cli(size_t i, const std::vector<std::string>& args) const {
    std::vector<std::string> argv{"redis-cli", "-h", "127.0.0.1", "-p",
                                  std::to_string(nodes_[i].port)};
    const std::vector<std::string> tls = tls_args();
    argv.insert(argv.end(), tls.begin(), tls.end());
    argv.insert(argv.end(), args.begin(), args.end());
    return capture(argv);
}

long long RedisCluster::integer(size_t i, const std::vector<std::string>& args) const {
    const std::string out = trim(cli(i, args));
    if (out.empty()) return -1;
    char* end = nullptr;
    const long long v = strtoll(out.c_str(), &end, 10);
    return *end ? -1 : v;
}

size_t RedisCluster::live() const {
    for (size_t i = 0; i < nodes_.size(); ++i)
        if (nodes_[i].pid > 0 && !nodes_[i].stopped) return i;
    throw std::runtime_error("no cluster node is running");
}

int RedisCluster::keyslot(const std::string& key) const {
    return int(integer(live(), {"CLUSTER", "KEYSLOT", key}));
}

int RedisCluster::owner(int slot) const {
    // CLUSTER SHARDS would be tidier; CLUSTER NODES lines are stable across Redis 6 and 7:
    // <id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot ranges...>
    std::istringstream lines(cli(live(), {"CLUSTER", "NODES"}));
    for (std::string line; std::getline(lines, line);) {
        std::istringstream f(line);
        std::string id, addr, flags, master, ping, pong, epoch, link, range;
        f >> id >> addr >> flags >> master >> ping >> pong >> epoch >> link;
        if (flags.find("master") == std::string::npos) continue;
        while (f >> range) {
            if (range[0] == '[') continue;  // a migration in progress
            const size_t dash = range.find('-');
            const int lo = atoi(range.c_str());
            const int hi = dash == std::string::npos ? lo : atoi(range.c_str() + dash + 1);
            if (slot < lo || slot > hi) continue;
            for (size_t i = 0; i < nodes_.size(); ++i)
                if (nodes_[i].id == id) return int(i);
        }
    }
    return -1;
}

bool RedisCluster::start(Node* n) {
    n->port = free_port();
    n->bus_port = free_port();
    if (!n->port || !n->bus_port || n->port == n->bus_port) return false;
    n->pid = fork();
    if (n->pid < 0) return false;
    if (n->pid == 0) {
        if (chdir(dir_.c_str()) != 0) _exit(127);
        const std::string p = std::to_string(n->port), bus = std::to_string(n->bus_port);
        const std::string conf = "nodes-" + p + ".conf", log = "redis-" + p + ".log";
        std::vector<std::string> args{"redis-server",
                                      "--bind",
                                      "127.0.0.1",
                                      "--save",
                                      "",
                                      "--appendonly",
                                      "no",
                                      "--protected-mode",
                                      "no",
                                      "--cluster-enabled",
                                      "yes",
                                      "--cluster-config-file",
                                      conf,
                                      "--cluster-port",
                                      bus,
                                      "--cluster-require-full-coverage",
                                      "no",
                                      "--loglevel",
                                      "warning",
                                      "--logfile",
                                      log};
        if (replicas_)
            for (const char* a :
                 {"--cluster-node-timeout", "1500", "--cluster-replica-validity-factor", "0",
                  "--repl-diskless-sync-delay", "0"})
                args.push_back(a);
        if (tls_) {
            for (const char* a : {"--port", "0", "--tls-port", p.c_str(), "--tls-cluster", "yes",
                                  "--tls-cert-file", "server.crt", "--tls-key-file", "server.key",
                                  "--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no"})
                args.push_back(a);
        } else {
            args.push_back("--port");
            args.push_back(p);
        }
        std::vector<const char*> argv;
        for (const std::string& a : args) argv.push_back(a.c_str());
        argv.push_back(nullptr);
        execvp("redis-server", const_cast<char* const*>(argv.data()));
        _exit(127);
    }
    for (int i = 0; i < 500; ++i) {
        int status = 0;
        if (waitpid(n->pid, &status, WNOHANG) == n->pid) {  // exited: a port taken
            n->pid = -1;
            return false;
        }
        std::vector<std::string> myid{"redis-cli", "-h", "127.0.0.1", "-p",
                                      std::to_string(n->port)};
        for (const std::string& a : tls_args()) myid.push_back(a);
        myid.push_back("CLUSTER");
        myid.push_back("MYID");
        n->id = trim(capture(myid));
        if (n->id.size() == 40) return true;
        sleep_ms(10);
    }
    ::kill(n->pid, SIGKILL);
    waitpid(n->pid, nullptr, 0);
    n->pid = -1;
    return false;
}

RedisCluster::RedisCluster(size_t masters, bool tls, size_t replicas)
    : tls_(tls), replicas_(replicas) {
    char tmpl[] = "/tmp/shmc-cluster-XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    if (tls_) {
        try {
            make_certificates(dir_);
        } catch (...) {
            cleanup();
            throw;
        }
    }
    // The cluster is made again on fresh nodes if redis-cli cannot make it: it failed once on
    // CI's loaded 2 CPUs, with its output (the reason) thrown away, which the error now carries.
    std::string output;
    for (int made = 0;; ++made) {
        nodes_.assign(masters * (1 + replicas), Node{});
        for (Node& n : nodes_) {
            bool ok = false;
            for (int attempt = 0; attempt < 8 && !ok; ++attempt) ok = start(&n);
            if (!ok) {
                cleanup();
                throw std::runtime_error("could not start a cluster-enabled redis-server");
            }
        }
        std::vector<std::string> create{"redis-cli"};
        for (const std::string& a : tls_args()) create.push_back(a);
        for (const char* a : {"--cluster", "create"}) create.push_back(a);
        for (const Node& n : nodes_) create.push_back("127.0.0.1:" + std::to_string(n.port));
        if (replicas_) {
            create.push_back("--cluster-replicas");
            create.push_back(std::to_string(replicas_));
        }
        create.push_back("--cluster-yes");
        if (run(create, 30, &output)) break;
        if (made == 2) {
            cleanup();
            const size_t tail = output.size() > 2000 ? output.size() - 2000 : 0;
            throw std::runtime_error("redis-cli --cluster create failed 3 times; its output:\n" +
                                     output.substr(tail));
        }
        discard_nodes();
    }
    // Up when every node says ok and knows every slot's owner.
    for (int i = 0; i < 1000; ++i) {
        bool ok = true;
        for (size_t k = 0; k < nodes_.size() && ok; ++k) {
            const std::string info = cli(k, {"CLUSTER", "INFO"});
            ok = info.find("cluster_state:ok") != std::string::npos &&
                 info.find("cluster_slots_assigned:16384") != std::string::npos &&
                 info.find("cluster_known_nodes:" + std::to_string(nodes_.size())) !=
                     std::string::npos;
            if (ok && replicas_) {  // and every replica has its first copy
                const std::string repl = cli(k, {"INFO", "replication"});
                ok = repl.find("role:master") != std::string::npos ||
                     repl.find("master_link_status:up") != std::string::npos;
            }
        }
        if (ok) return;
        sleep_ms(20);
    }
    cleanup();
    throw std::runtime_error("the cluster did not reach cluster_state:ok");
}

RedisCluster::~RedisCluster() { cleanup(); }

void RedisCluster::discard_nodes() {
    for (size_t i = 0; i < nodes_.size(); ++i) kill(i);
    if (dir_.empty()) return;
    // Only what the servers wrote: their nodes.conf and logs.
    for (const Node& n : nodes_) {
        const std::string p = std::to_string(n.port);
        unlink((dir_ + "/nodes-" + p + ".conf").c_str());
        unlink((dir_ + "/redis-" + p + ".log").c_str());
    }
}

void RedisCluster::cleanup() {
    discard_nodes();
    if (!dir_.empty()) {
        for (const char* f : {"ca.key", "ca.crt", "ca.srl", "other-ca.key", "other-ca.crt",
                              "server.key", "server.csr", "server.crt", "client.key", "client.csr",
                              "client.crt", "openssl.log", "dump.rdb"})
            unlink((dir_ + "/" + f).c_str());
        rmdir(dir_.c_str());
        dir_.clear();
    }
}

void RedisCluster::kill(size_t i) {
    if (nodes_[i].pid <= 0) return;
    ::kill(nodes_[i].pid, SIGKILL);
    waitpid(nodes_[i].pid, nullptr, 0);
    nodes_[i].pid = -1;
}

void RedisCluster::stop(size_t i) {
    if (nodes_[i].pid > 0) ::kill(nodes_[i].pid, SIGSTOP);
    nodes_[i].stopped = true;
}

void RedisCluster::cont(size_t i) {
    if (nodes_[i].pid > 0) ::kill(nodes_[i].pid, SIGCONT);
    nodes_[i].stopped = false;
}

void RedisCluster::migrate_slot(int slot, size_t from, size_t to, int pause_ms) {
    const std::string s = std::to_string(slot);
    auto ok = [](const std::string& out) { return out.rfind("OK", 0) == 0; };
    if (!ok(cli(to, {"CLUSTER", "SETSLOT", s, "IMPORTING", nodes_[from].id})) ||
        !ok(cli(from, {"CLUSTER", "SETSLOT", s, "MIGRATING", nodes_[to].id})))
        throw std::runtime_error("CLUSTER SETSLOT IMPORTING/MIGRATING failed");
    const std::string to_port = std::to_string(nodes_[to].port);
    // Bounded by time, not by a count of rounds (each round is two redis-cli runs, of up to 10 s
    // each): a slot that does not empty fails the caller with what was seen, well within the
    // test's own timeout. Each key should be moved once: one that the source lists again after
    // its MIGRATE said OK was written there again, by a client that did not follow ASK.
    const auto t0 = std::chrono::steady_clock::now();
    const int limit_s = 60;
    std::set<std::string> moved;
    int again = 0;
    std::string key, out;
    for (;;) {
        if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(limit_s))
            throw std::runtime_error(
                "slot " + s + " still not migrated after " + std::to_string(limit_s) +
                " s: " + std::to_string(moved.size()) + " keys moved (" + std::to_string(again) +
                " found on the source again), " +
                std::to_string(integer(from, {"CLUSTER", "COUNTKEYSINSLOT", s})) +
                " left; last: " + key + " -> " + trim(out));
        std::istringstream keys(cli(from, {"CLUSTER", "GETKEYSINSLOT", s, "1"}));
        if (!std::getline(keys, key) || key.empty()) {
            // "" is also what a failed redis-cli gives: done only if the source says so.
            if (integer(from, {"CLUSTER", "COUNTKEYSINSLOT", s}) == 0) break;
            continue;
        }
        out = cli(from, {"MIGRATE", "127.0.0.1", to_port, "", "0", "5000", "REPLACE", "KEYS", key});
        if (out.rfind("OK", 0) == 0 && !moved.insert(key).second) ++again;
        // A timeout (IOERR, or redis-cli killed: "") on a busy machine is tried again.
        if (out.rfind("OK", 0) != 0 && out.rfind("NOKEY", 0) != 0 && !out.empty() &&
            out.rfind("IOERR", 0) != 0)
            throw std::runtime_error("MIGRATE of " + key + " failed: " + trim(out));
        if (pause_ms) sleep_ms(pause_ms);
    }
    // The target first, then the source (from then on it answers MOVED), then the others.
    for (size_t i : {to, from}) cli(i, {"CLUSTER", "SETSLOT", s, "NODE", nodes_[to].id});
    for (size_t i = 0; i < nodes_.size(); ++i)
        if (i != to && i != from && nodes_[i].pid > 0)
            cli(i, {"CLUSTER", "SETSLOT", s, "NODE", nodes_[to].id});
}

}  // namespace l2test
