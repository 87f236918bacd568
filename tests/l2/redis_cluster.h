// redis_cluster.h - a real Redis Cluster for the tests: three masters on random loopback ports.
//
// Each node is a redis-server with cluster mode on, no persistence, in a private temporary
// directory (its nodes.conf too); redis-cli --cluster create joins them and spreads the 16384
// slots (and with replicas, gives each master its replicas), and the constructor returns once
// every node reports cluster_state:ok and knows every other. cluster-require-full-coverage is off,
// so a killed master takes only its own slots down (with it on, the others would refuse everything
// once they mark it failed). Everything is killed when the object goes away.
#ifndef SHMCACHE_TESTS_L2_REDIS_CLUSTER_H
#define SHMCACHE_TESTS_L2_REDIS_CLUSTER_H

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

namespace l2test {

class RedisCluster {
public:
    // With tls: the nodes listen on TLS only (tls-cluster: the bus too), with the certificates
    // of redis_server.h's make_certificates; clients need no certificate of their own.
    // With replicas (per master): cluster-node-timeout 1500 ms, so that a killed master's
    // replica takes over in a few seconds.
    explicit RedisCluster(size_t masters = 3, bool tls = false,
                          size_t replicas = 0);  // throws std::runtime_error
    ~RedisCluster();
    RedisCluster(const RedisCluster&) = delete;
    RedisCluster& operator=(const RedisCluster&) = delete;

    // redis+cluster://127.0.0.1:p0,127.0.0.1:p1 (two seeds: the client must find the third);
    // with TLS rediss+cluster://...?ssl_ca_certs=<the test CA>.
    std::string url() const;
    size_t size() const { return nodes_.size(); }
    int port(size_t i) const { return nodes_[i].port; }
    const std::string& id(size_t i) const { return nodes_[i].id; }

    // redis-cli against node i (no cluster redirection: what that node itself answers); its
    // standard output, "" if it failed.
    std::string cli(size_t i, const std::vector<std::string>& args) const;
    long long integer(size_t i, const std::vector<std::string>& args) const;  // -1 on failure
    int keyslot(const std::string& key) const;  // CLUSTER KEYSLOT, asked of a live node
    // The node that owns slot, by node 0's (or a live node's) CLUSTER SLOTS; -1 if none.
    int owner(int slot) const;
    int owner_of(const std::string& key) const { return owner(keyslot(key)); }

    // Moves slot from node `from` to node `to` the way redis-cli --cluster reshard does:
    // IMPORTING on the target, MIGRATING on the source, MIGRATE the keys one at a time
    // (pause_ms between keys, so that clients meet the half-moved slot and get ASK), then
    // SETSLOT NODE on every node (clients of the source get MOVED from then on). Throws
    // std::runtime_error if a MIGRATE fails, or if the slot is not empty after 60 s (with the
    // keys moved, left and the last MIGRATE's answer): a caller that runs threads meanwhile must
    // catch it and join them first.
    void migrate_slot(int slot, size_t from, size_t to, int pause_ms = 0);
    void kill(size_t i);  // SIGKILL and reap
    void stop(size_t i);  // SIGSTOP: a hung master
    void cont(size_t i);  // SIGCONT
    bool alive(size_t i) const { return nodes_[i].pid > 0; }
    // The helpers above ask a running node, never a stopped one; cli(i) on a stopped node fails
    // after 10 s.

private:
    struct Node {
        int port = 0;
        int bus_port = 0;
        pid_t pid = -1;
        bool stopped = false;  // SIGSTOPped: not asked anything (it would not answer)
        std::string id;
    };
    bool start(Node* n);
    void discard_nodes();                       // kills every node, removes what they wrote
    void cleanup();                             // discard_nodes(), and removes the directory
    size_t live() const;                        // a node still running
    std::vector<std::string> tls_args() const;  // for redis-cli
    bool tls_ = false;
    size_t replicas_ = 0;
    std::string dir_;
    std::vector<Node> nodes_;
};

}  // namespace l2test

#endif
