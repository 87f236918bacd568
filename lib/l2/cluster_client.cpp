// cluster_client.cpp - see cluster_client.h.
#include "cluster_client.h"

#include <shmcache/shmcache.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <deque>
#include <set>
#include <thread>

#include "log.h"
#include "shm/errors.h"

namespace shmcache::l2 {

namespace shm = shmcache::shm;

namespace {

struct FreeReply {
    void operator()(redisReply* r) const {
        if (r) freeReplyObject(r);
    }
};
using ReplyPtr = std::unique_ptr<redisReply, FreeReply>;

std::string_view text(const redisReply& r) { return {r.str, r.len}; }

// CLUSTER SLOTS: [[start, end, [host, port, id, ...], replica...], ...]. An empty or "?" host
// is the node that answered (Redis 7 when it does not know its own announced address).
bool parse_slots(const redisReply& r, const std::string& answering_host,
                 std::vector<HostPort>* masters, std::array<int16_t, kClusterSlots>* table,
                 std::string* why) {
    if (r.type != REDIS_REPLY_ARRAY) {
        *why = r.type == REDIS_REPLY_ERROR ? std::string(text(r)) : "not an array";
        return false;
    }
    table->fill(-1);
    for (size_t i = 0; i < r.elements; ++i) {
        const redisReply* e = r.element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2 ||
            e->element[2]->element[0]->type != REDIS_REPLY_STRING ||
            e->element[2]->element[1]->type != REDIS_REPLY_INTEGER) {
            *why = "malformed entry";
            return false;
        }
        const long long lo = e->element[0]->integer, hi = e->element[1]->integer;
        if (lo < 0 || hi >= kClusterSlots || lo > hi) {
            *why = "slot range out of bounds";
            return false;
        }
        HostPort hp;
        hp.host = std::string(text(*e->element[2]->element[0]));
        if (hp.host.empty() || hp.host == "?") hp.host = answering_host;
        hp.port = int(e->element[2]->element[1]->integer);
        auto at = std::find(masters->begin(), masters->end(), hp);
        const size_t idx = size_t(at - masters->begin());
        if (at == masters->end()) masters->push_back(hp);
        for (long long s = lo; s <= hi; ++s) (*table)[size_t(s)] = int16_t(idx);
    }
    if (masters->empty()) {
        *why = "no slot is served";
        return false;
    }
    return true;
}

}  // namespace

struct ClusterClient::Item {
    size_t idx;       // in the caller's batch
    int slot;         // -1: keyless, goes with the run before it
    std::string ask;  // the node an ASK sent it to; "" to follow the map
    int redirects = 0;
};

std::unique_ptr<ClusterClient> ClusterClient::create(ClientOptions opts, ClientCounters counters,
                                                     std::string* why) {
    std::shared_ptr<TlsContext> tls;
    if (opts.endpoint.tls.enabled && !(tls = TlsContext::create(opts.endpoint.tls, why)))
        return nullptr;
    return std::make_unique<ClusterClient>(std::move(opts), counters, std::move(tls));
}

ClusterClient::ClusterClient(ClientOptions opts, ClientCounters counters,
                             std::shared_ptr<TlsContext> tls)
    : opts_(std::move(opts)), counters_(counters), tls_(std::move(tls)) {
    slots_.fill(-1);
    register_fork_aware(this);
}

ClusterClient::~ClusterClient() { unregister_fork_aware(this); }

void ClusterClient::fork_prepare() { m_.lock(); }
void ClusterClient::fork_parent() { m_.unlock(); }
void ClusterClient::fork_child() {
    // The nodes' pools clean up after themselves (RedisClient::fork_child); the map stays valid.
    connected_.store(false, std::memory_order_relaxed);
    m_.unlock();
}

std::shared_ptr<RedisClient> ClusterClient::node(const HostPort& hp) const {
    const std::string name = hp.describe();
    {
        std::lock_guard lk(m_);
        auto it = nodes_.find(name);
        if (it != nodes_.end()) return it->second;
    }
    ClientOptions o = opts_;
    o.endpoint = opts_.endpoint.node(hp);
    // Each node's client locks its TLS context across fork(): one context each (on the same
    // certificates), or the second lock in one fork_prepare would be a self-deadlock.
    auto made = std::make_shared<RedisClient>(std::move(o), counters_,
                                              tls_ ? TlsContext::share(*tls_) : nullptr);
    std::shared_ptr<RedisClient> kept;
    {
        std::lock_guard lk(m_);
        kept = nodes_.emplace(name, made).first->second;  // another thread may have made it first
    }
    return kept;  // a `made` that lost is freed here, outside m_
}

std::shared_ptr<RedisClient> ClusterClient::node_by_name(const std::string& name) const {
    std::lock_guard lk(m_);
    auto it = nodes_.find(name);
    return it == nodes_.end() ? nullptr : it->second;
}

std::vector<std::string> ClusterClient::candidates() const {
    // Who to ask (for the map, or for a connection): the nodes whose breaker is closed (masters
    // of the map first, then seeds, then any other seen), then the rest, so that a dead master
    // costs nothing once its breaker is open.
    std::vector<std::string> order, open;
    std::lock_guard lk(m_);
    auto add = [&](const std::string& n) {
        if (n.empty() || std::find(order.begin(), order.end(), n) != order.end() ||
            std::find(open.begin(), open.end(), n) != open.end())
            return;
        auto it = nodes_.find(n);
        if (it == nodes_.end()) return;
        (it->second->breaker_open() ? open : order).push_back(n);
    };
    for (const std::string& m : masters_) add(m);
    for (const HostPort& hp : opts_.endpoint.seeds) add(hp.describe());
    for (const auto& [n, c] : nodes_) add(n);
    order.insert(order.end(), open.begin(), open.end());
    return order;
}

int ClusterClient::refresh(uint64_t deadline_ms) {
    for (const HostPort& hp : opts_.endpoint.seeds) node(hp);
    const Command cmd{"CLUSTER", "SLOTS"};
    std::string why = "no node known";
    const std::vector<std::string> names = candidates();
    for (size_t i = 0; i < names.size(); ++i) {
        const std::string& name = names[i];
        const uint64_t now = now_ms();
        if (now >= deadline_ms) {
            why = "timed out; last: " + why;
            break;
        }
        // Each node but the last gets half of what is left: a hung one (it accepts connections
        // and never answers) then leaves the others time to answer.
        const uint64_t until = i + 1 < names.size()
                                   ? now + std::max<uint64_t>(1, (deadline_ms - now) / 2)
                                   : deadline_ms;
        std::shared_ptr<RedisClient> n = node_by_name(name);
        Replies r;
        if (n->run_raw(std::span(&cmd, 1), until, &r) != 0) {
            why = shm::last_errmsg();
            continue;
        }
        std::vector<HostPort> masters;
        std::array<int16_t, kClusterSlots> table;
        if (!parse_slots(r[0], n->options().endpoint.host, &masters, &table, &why)) {
            why = "CLUSTER SLOTS at " + name + ": " + why;
            continue;
        }
        std::vector<std::string> names;
        for (const HostPort& hp : masters) {
            node(hp);
            names.push_back(hp.describe());
        }
        bool changed = false;
        {
            std::lock_guard lk(m_);
            std::vector<std::string> was = masters_;
            std::sort(was.begin(), was.end());
            std::vector<std::string> now_sorted = names;
            std::sort(now_sorted.begin(), now_sorted.end());
            changed = !have_map_ || was != now_sorted;
            masters_ = std::move(names);
            slots_ = table;
            have_map_ = true;
            refresh_due_ = false;
        }
        if (changed) {
            std::string list;
            for (const HostPort& hp : masters) list += " " + hp.describe();
            log_info("Redis Cluster: slot map from {}: {} masters:{}", name, masters.size(), list);
        }
        return 0;
    }
    return shm::fail(SHMC_E_L2_UNAVAILABLE, "Redis Cluster %s: no node answered CLUSTER SLOTS (%s)",
                     opts_.endpoint.describe().c_str(), why.c_str());
}

int ClusterClient::ensure_map(uint64_t deadline_ms) {
    bool have = false, due = false;
    {
        std::lock_guard lk(m_);
        have = have_map_;
        const uint64_t now = now_ms();
        due = refresh_due_ && now - last_refresh_ms_ >= kRefreshIntervalMs;
        if (!have || due) last_refresh_ms_ = now;
    }
    if (have && !due) return 0;
    // With a map in hand the refresh is a courtesy to this call, whose own slot may be served
    // fine: it gets a quarter of the budget, so that a hung node asked first cannot eat the rest.
    const uint64_t quarter = now_ms() + std::max<uint64_t>(1, opts_.command_timeout_ms / 4);
    const int rc = refresh(have ? std::min(deadline_ms, quarter) : deadline_ms);
    if (rc && have) {
        shm::clear_errmsg();  // the old map serves until a refresh works
        return 0;
    }
    if (rc) {
        connected_.store(false, std::memory_order_relaxed);
        if (counters_.errors) counters_.errors->fetch_add(1, std::memory_order_relaxed);
    }
    return rc;
}

std::string ClusterClient::owner(int slot) const {
    std::lock_guard lk(m_);
    const int16_t i = slots_[size_t(slot)];
    return i >= 0 ? masters_[size_t(i)] : std::string();
}

int ClusterClient::fail_call(int rc, bool timeout, const char* fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (counters_.errors) counters_.errors->fetch_add(1, std::memory_order_relaxed);
    if (timeout && counters_.timeouts) counters_.timeouts->fetch_add(1, std::memory_order_relaxed);
    if (rc == SHMC_E_L2_UNAVAILABLE) connected_.store(false, std::memory_order_relaxed);
    return shm::fail(rc, "%s", buf);
}

int ClusterClient::run(std::span<const Command> cmds, Replies* out) {
    const uint64_t deadline = now_ms() + opts_.command_timeout_ms;
    out->clear();
    if (int rc = ensure_map(deadline)) return rc;
    std::vector<ReplyPtr> got(cmds.size());
    std::deque<Item> pending;
    for (size_t i = 0; i < cmds.size(); ++i) pending.push_back(Item{i, command_slot(cmds[i]), ""});
    std::string last;  // the node of the previous run
    uint64_t pause_ms = 2;
    while (!pending.empty()) {
        if (now_ms() >= deadline)
            return fail_call(SHMC_E_L2_UNAVAILABLE, true,
                             "Redis Cluster: command timed out after redirections (%s)",
                             std::string(cmds[pending.front().idx][0]).c_str());
        auto target_of = [&](const Item& it, const std::string& keyless) {
            return !it.ask.empty() ? it.ask : it.slot >= 0 ? owner(it.slot) : keyless;
        };
        std::string target = target_of(pending.front(), last);
        if (target.empty() && pending.front().slot < 0) {
            const std::vector<std::string> any = candidates();  // breakers closed first
            if (!any.empty()) target = any[0];
        }
        if (target.empty())
            return fail_call(SHMC_E_L2_UNAVAILABLE, false,
                             "Redis Cluster: slot %d is served by no master (cluster down?)",
                             pending.front().slot);
        std::shared_ptr<RedisClient> n = node_by_name(target);
        if (!n)
            return fail_call(SHMC_E_L2_UNAVAILABLE, false, "Redis Cluster: unknown node %s",
                             target.c_str());
        // The run: the commands from the head on that go to the same node.
        std::vector<Item> items;
        std::vector<Command> batch;
        std::vector<size_t> pos;  // where each item's reply is in the batch
        while (!pending.empty() && target_of(pending.front(), target) == target) {
            Item& it = pending.front();
            if (!it.ask.empty()) batch.push_back({"ASKING"});
            pos.push_back(batch.size());
            batch.push_back(cmds[it.idx]);
            items.push_back(std::move(it));
            pending.pop_front();
        }
        Replies r;
        if (int rc = n->run_raw(batch, deadline, &r)) {
            // Counted by the node (errors, timeouts, its breaker). A master that failed may have
            // been replaced: ask for the map again soon.
            std::lock_guard lk(m_);
            refresh_due_ = true;
            connected_.store(false, std::memory_order_relaxed);
            return rc;
        }
        std::vector<Item> redo;
        bool redirected = false, wait = false;
        for (size_t k = 0; k < items.size(); ++k) {
            Item& it = items[k];
            ReplyPtr rep(r.take(pos[k]));
            Redirect rd = rep->type == REDIS_REPLY_ERROR ? parse_redirect(text(*rep)) : Redirect{};
            if (rd.kind == Redirect::kNone) {
                if (redirected && it.slot < 0)
                    redo.push_back(std::move(it));  // sent again after the command it followed
                else
                    got[it.idx] = std::move(rep);
                continue;
            }
            redirected = true;
            if (++it.redirects > kMaxRedirects)
                return fail_call(SHMC_E_L2_REPLY, false,
                                 "Redis Cluster: %s still redirected after %d tries: %.*s",
                                 std::string(cmds[it.idx][0]).c_str(), kMaxRedirects, int(rep->len),
                                 rep->str);
            if (rd.to.host.empty()) rd.to.host = n->options().endpoint.host;
            if (rd.kind == Redirect::kMoved) {
                node(rd.to);
                const std::string to = rd.to.describe();
                bool news = false;
                {
                    std::lock_guard lk(m_);
                    auto at = std::find(masters_.begin(), masters_.end(), to);
                    if (at == masters_.end()) at = masters_.insert(masters_.end(), to);
                    const int16_t idx = int16_t(at - masters_.begin());
                    news = slots_[size_t(rd.slot)] != idx;
                    slots_[size_t(rd.slot)] = idx;
                    refresh_due_ = true;
                }
                moved_.fetch_add(1, std::memory_order_relaxed);
                if (news) log_debug("Redis Cluster: slot {} moved to {}", rd.slot, to);
                it.ask.clear();
            } else if (rd.kind == Redirect::kAsk) {
                node(rd.to);
                it.ask = rd.to.describe();
                asked_.fetch_add(1, std::memory_order_relaxed);
            } else {
                wait = true;  // TRYAGAIN, CLUSTERDOWN: same place, a moment later
            }
            redo.push_back(std::move(it));
        }
        pending.insert(pending.begin(), std::make_move_iterator(redo.begin()),
                       std::make_move_iterator(redo.end()));
        last = target;
        if (wait) {
            const uint64_t now = now_ms();
            if (now < deadline)
                std::this_thread::sleep_for(
                    std::chrono::milliseconds(std::min(pause_ms, deadline - now)));
            pause_ms = std::min<uint64_t>(pause_ms * 2, 20);
        }
    }
    for (ReplyPtr& p : got) out->push(p.release());
    connected_.store(true, std::memory_order_relaxed);
    for (size_t i = 0; i < out->size(); ++i) {
        const redisReply& rep = (*out)[i];
        if (rep.type == REDIS_REPLY_ERROR) {
            if (counters_.errors) counters_.errors->fetch_add(1, std::memory_order_relaxed);
            return shm::fail(SHMC_E_L2_REPLY, "Redis L2 replied to %.*s: %.*s",
                             int(cmds[i][0].size()), cmds[i][0].data(), int(rep.len), rep.str);
        }
    }
    return 0;
}

int ClusterClient::shards(std::vector<std::string>* names) {
    if (int rc = ensure_map(now_ms() + opts_.command_timeout_ms)) return rc;
    std::lock_guard lk(m_);
    std::set<int16_t> used(slots_.begin(), slots_.end());
    names->clear();
    for (int16_t i : used)
        if (i >= 0) names->push_back(masters_[size_t(i)]);
    return 0;
}

int ClusterClient::run_on(const std::string& shard, std::span<const Command> cmds, Replies* out) {
    std::shared_ptr<RedisClient> n = node_by_name(shard);
    if (!n)
        return fail_call(SHMC_E_L2_UNAVAILABLE, false, "Redis Cluster: unknown node %s",
                         shard.c_str());
    out->clear();
    if (int rc = n->run_raw(cmds, now_ms() + opts_.command_timeout_ms, out)) {
        std::lock_guard lk(m_);
        refresh_due_ = true;
        connected_.store(false, std::memory_order_relaxed);
        return rc;
    }
    connected_.store(true, std::memory_order_relaxed);
    for (size_t i = 0; i < out->size(); ++i) {
        const redisReply& rep = (*out)[i];
        if (rep.type == REDIS_REPLY_ERROR) {
            if (counters_.errors) counters_.errors->fetch_add(1, std::memory_order_relaxed);
            return shm::fail(SHMC_E_L2_REPLY, "Redis L2 (%s) replied to %.*s: %.*s", shard.c_str(),
                             int(cmds[i][0].size()), cmds[i][0].data(), int(rep.len), rep.str);
        }
    }
    return 0;
}

bool ClusterClient::breaker_open() const {
    std::lock_guard lk(m_);
    for (const auto& [name, n] : nodes_)
        if (n->breaker_open()) return true;
    return false;
}

std::unique_ptr<Conn> ClusterClient::connect_dedicated(std::string* why) const {
    for (const HostPort& hp : opts_.endpoint.seeds) node(hp);
    std::string last = "no node known";
    // Each attempt starts one node further: a hung master accepts connections (the kernel
    // does) but never answers the subscription, and must not be the first choice for ever.
    std::vector<std::string> names = candidates();
    if (!names.empty())
        std::rotate(names.begin(),
                    names.begin() + long(dedicated_turn_.fetch_add(1) % names.size()), names.end());
    for (const std::string& name : names) {
        std::shared_ptr<RedisClient> n = node_by_name(name);
        std::string w;
        if (std::unique_ptr<Conn> c = n->connect_dedicated(&w)) return c;
        last = w;
    }
    *why =
        "no node of Redis Cluster " + opts_.endpoint.describe() + " accepted a connection: " + last;
    return nullptr;
}

}  // namespace shmcache::l2
