// bench_l2.cpp - the Redis tier's latencies and bounds, measured against a real redis-server.
//
//   bench_l2 [--iters N]
//
// Starts its own redis-server on a random loopback port (tests/l2/redis_server.cpp) and two
// "hosts" (segments) on it, then measures, side by side in one run:
//   1. get: an L1 hit, an L2 hit (L1 bypassed), a BOTH get that misses L1 and fills it;
//      set to BOTH (SET + PUBLISH in one round trip) and to L1 only;
//   2. a hung Redis (SIGSTOP): the first calls (bounded by command_timeout_ms) and the calls made
//      while the circuit breaker is open;
//   3. cross-host invalidation: from a delete on host A to host B's L1 no longer holding the key;
//   4. subscriber takeover: from SIGKILL of host B's subscriber process to another process of
//      host B holding the subscription;
//   5. the cost of an L1 hit (plain shmc_get, batched: ns per call) on an entry L1 wrote itself
//      and on an L1 copy of an L2 value, which coherence v2 checks against the host's epoch and
//      lease (the file also builds against a library without coherence v2, for the comparison);
//   6. coherence v2 (tracking mode): from a write made outside shmcache (SET, DEL, PEXPIRE on
//      a plain connection), a key expiring in Redis and a key evicted by maxmemory, to neither
//      host's L1 serving the old value;
//   7. TLS against plain TCP: L2 gets and sets over rediss:// and redis:// to one server.
// Prints a Markdown table per part. Figures are machine-dependent; ratios within one run are what
// to compare.
#include <shmcache/shmcache.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "redis_server.h"

namespace {

using Clock = std::chrono::steady_clock;

double us_since(Clock::time_point t) {
    return std::chrono::duration<double, std::micro>(Clock::now() - t).count();
}

struct Summary {
    double p50, p99, max;
};

Summary summarize(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    auto at = [&](double q) { return v[std::min(v.size() - 1, size_t(q * double(v.size())))]; };
    return {at(0.50), at(0.99), v.back()};
}

void row(const char* what, const std::vector<double>& us, const char* note = "") {
    const Summary s = summarize(us);
    std::printf("| %s | %zu | %.1f | %.1f | %.1f | %s |\n", what, us.size(), s.p50, s.p99, s.max,
                note);
}

void header(const char* title) {
    std::printf("\n### %s\n\n| operation | calls | p50 us | p99 us | max us | note |\n"
                "|---|---|---|---|---|---|\n",
                title);
}

shmc_cache* open_host(const std::string& name, const std::string& url, uint32_t timeout_ms) {
    shmc_options o;
    shmc_options_default(&o);
    o.size_bytes = 16u << 20;
    shmc_cache* c = nullptr;
    if (shmc_open(name.c_str(), &o, &c) != 0) {
        std::fprintf(stderr, "open %s: %s\n", name.c_str(), shmc_errmsg());
        std::exit(1);
    }
    shmc_l2_options l;
    shmc_l2_options_default(&l);
    l.url = url.c_str();
    l.key_prefix = "bench";
    l.command_timeout_ms = timeout_ms;
    l.breaker_cooldown_ms = 60000;  // stays open for the whole hung phase
    if (shmc_l2_attach(c, &l) != 0) {
        std::fprintf(stderr, "attach: %s\n", shmc_errmsg());
        std::exit(1);
    }
    return c;
}

bool wait_subscribed(shmc_cache* c, pid_t pid = 0) {
    for (int i = 0; i < 600; ++i) {
        shmc_l2_stats s;
        shmc_l2_get_stats(c, &s);
        if (s.subscribed && (!pid || s.subscriber_pid == uint32_t(pid))) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
}

bool in_l1(shmc_cache* c, const std::string& k) {
    size_t len = 0;
    const int rc = shmc_get(c, k.data(), k.size(), nullptr, 0, &len, nullptr, nullptr);
    return rc == 0 || rc == SHMC_E_BUFFER_TOO_SMALL;
}

// ns per shmc_get over keys, each hit, the best of 5 rounds of n calls.
double l1_hit_ns(shmc_cache* c, const std::vector<std::string>& keys, int n) {
    char buf[512];
    double best = 1e18;
    for (int round = 0; round < 5; ++round) {
        size_t len = 0;
        int misses = 0;
        const auto t = Clock::now();
        for (int i = 0; i < n; ++i) {
            const std::string& k = keys[size_t(i) % keys.size()];
            misses += shmc_get(c, k.data(), k.size(), buf, sizeof buf, &len, nullptr, nullptr) != 0;
        }
        const double ns = us_since(t) * 1000 / n;
        if (misses) std::fprintf(stderr, "l1_hit_ns: %d misses\n", misses);
        best = std::min(best, ns);
    }
    return best;
}

bool l1_serves(shmc_cache* c, const std::string& k, const std::string& v) {
    char buf[512];
    size_t len = 0;
    return shmc_get(c, k.data(), k.size(), buf, sizeof buf, &len, nullptr, nullptr) == 0 &&
           std::string(buf, len) == v;
}

#ifdef SHMC_INVAL_TRACKING
// Fills both hosts' L1 with k from Redis; false if a copy did not stick.
bool fill_both(shmc_cache* a, shmc_cache* b, const std::string& k, const std::string& v) {
    char buf[512];
    size_t len = 0;
    for (int attempt = 0; attempt < 50; ++attempt) {
        for (shmc_cache* c : {a, b})
            if (!l1_serves(c, k, v))
                shmc_tget(c, k.data(), k.size(), buf, sizeof buf, &len, nullptr, nullptr,
                          SHMC_TIER_BOTH, 0, nullptr);
        if (l1_serves(a, k, v) && l1_serves(b, k, v)) return true;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return false;
}

// Microseconds from t until neither host's L1 serves old for k (-1: not within 2 s).
double until_gone(shmc_cache* a, shmc_cache* b, const std::string& k, const std::string& old,
                  Clock::time_point t) {
    while (us_since(t) < 2e6)
        if (!l1_serves(a, k, old) && !l1_serves(b, k, old)) return us_since(t);
    return -1;
}
#endif

}  // namespace

int main(int argc, char** argv) {
    int iters = 5000;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--iters") && i + 1 < argc) {
            iters = std::atoi(argv[++i]);
        } else {
            std::fprintf(stderr, "usage: bench_l2 [--iters N]\n");
            return 2;
        }
    }
    setenv("SHMCACHE_LOG_LEVEL", "off", 0);
    l2test::RedisServer redis;
    const std::string url = redis.url();
    const std::string tag = std::to_string(getpid());
    const uint32_t timeout_ms = 100;
    shmc_cache* a = open_host("shmc-bench-l2-a-" + tag, url, timeout_ms);
    shmc_cache* b = open_host("shmc-bench-l2-b-" + tag, url, timeout_ms);
    wait_subscribed(a);
    wait_subscribed(b);
    const std::string value(200, 'v');
    char buf[4096];
    size_t len = 0;

    std::printf("## Redis L2 (redis-server %s, loopback; command_timeout_ms = %u)\n",
                "local", timeout_ms);
    header("Latency per call");
    {
        std::vector<double> l1, l2, fill, set_both, set_l1;
        for (int i = 0; i < iters; ++i) {
            const std::string k = "k" + std::to_string(i % 1000);
            auto t = Clock::now();
            shmc_tset(a, k.data(), k.size(), value.data(), value.size(), 0, 0, 0, SHMC_TIER_BOTH);
            set_both.push_back(us_since(t));
            t = Clock::now();
            shmc_tset(a, k.data(), k.size(), value.data(), value.size(), 0, 0, 0, SHMC_TIER_L1);
            set_l1.push_back(us_since(t));
            t = Clock::now();
            shmc_tget(a, k.data(), k.size(), buf, sizeof buf, &len, nullptr, nullptr, SHMC_TIER_BOTH,
                      0, nullptr);
            l1.push_back(us_since(t));
            t = Clock::now();
            shmc_tget(a, k.data(), k.size(), buf, sizeof buf, &len, nullptr, nullptr, SHMC_TIER_L2, 0,
                      nullptr);
            l2.push_back(us_since(t));
            shmc_del(b, k.data(), k.size());
            t = Clock::now();
            shmc_tget(b, k.data(), k.size(), buf, sizeof buf, &len, nullptr, nullptr, SHMC_TIER_BOTH,
                      0, nullptr);
            fill.push_back(us_since(t));
        }
        row("get, L1 hit (BOTH)", l1);
        row("get, L2 hit (L2 only)", l2, "GET + PTTL, one round trip");
        row("get, L1 miss + L2 hit + fill (BOTH)", fill);
        row("set, L1 only", set_l1);
#ifdef SHMC_INVAL_TRACKING
        row("set, BOTH", set_both, "SET (tracking mode: no PUBLISH), own echo applied, then L1");
#else
        row("set, BOTH", set_both, "SET + PUBLISH, one round trip, then L1");
#endif
        const Summary s1 = summarize(l1), s2 = summarize(l2);
        std::printf("\nL2 hit / L1 hit, p50: %.0fx\n", s2.p50 / s1.p50);
    }

    header("Invalidation reaching another host's L1 (delete on A until B's L1 misses)");
    {
        std::vector<double> delay;
        for (int i = 0; i < std::min(iters, 500); ++i) {
            const std::string k = "inv" + std::to_string(i);
            shmc_tset(a, k.data(), k.size(), value.data(), value.size(), 0, 0, 0, SHMC_TIER_BOTH);
            shmc_tget(b, k.data(), k.size(), buf, sizeof buf, &len, nullptr, nullptr, SHMC_TIER_BOTH,
                      0, nullptr);
            if (!in_l1(b, k)) continue;
            const auto t = Clock::now();
            shmc_tdel(a, k.data(), k.size(), SHMC_TIER_BOTH);
            while (in_l1(b, k) && us_since(t) < 2e6) {
            }
            delay.push_back(us_since(t));
        }
        row("delete on A -> gone from B's L1", delay, "includes the UNLINK+PUBLISH round trip");
    }

    header("Subscriber takeover (SIGKILL of the subscriber until another process subscribes)");
    {
        std::vector<double> takeover;
        const std::string bname = "shmc-bench-l2-b-" + tag;
        for (int round = 0; round < 5; ++round) {
            int ready[2];
            if (pipe(ready) != 0) return 1;
            // Make a child host B's subscriber: close this process's handle (its elector lets
            // go), let the child attach and win the election, reattach, then kill the child.
            shmc_close(b);
            const pid_t child = fork();
            if (child == 0) {
                shmc_cache* c = open_host(bname, url, timeout_ms);
                wait_subscribed(c, getpid());
                (void)!write(ready[1], "x", 1);
                for (;;) pause();
            }
            close(ready[1]);  // a child that dies early gives EOF, not a hang
            char x;
            if (read(ready[0], &x, 1) != 1) return 1;
            b = open_host(bname, url, timeout_ms);
            const auto t = Clock::now();
            kill(child, SIGKILL);
            waitpid(child, nullptr, 0);
            wait_subscribed(b, getpid());
            takeover.push_back(us_since(t));
            close(ready[0]);
        }
        row("subscriber killed -> new subscriber", takeover, "elector polls every 200 ms");
    }

    {
        // 5. The L1 hit: 1000 keys L1 wrote itself, 1000 L1 copies of L2 values.
        // Each kind with no TTL and with one (an L1 hit reads the clock only for an entry with
        // a TTL, before coherence v2).
        const char* names[4] = {"written to L1 only, no TTL", "written to L1 only, TTL 10 min",
                                "L1 copy of an L2 value, no TTL",
                                "L1 copy of an L2 value, TTL 10 min (fill_ttl_ms)"};
        std::vector<std::string> keys[4];
        for (int i = 0; i < 1000; ++i) {
            for (int kind = 0; kind < 4; ++kind) {
                keys[kind].push_back("hit" + std::to_string(kind) + ":" + std::to_string(i));
                const std::string& k = keys[kind].back();
                const uint64_t ttl = kind % 2 ? 600000 : 0;
                if (kind < 2) {
                    shmc_tset(a, k.data(), k.size(), value.data(), value.size(), 0, ttl, 0,
                              SHMC_TIER_L1);
                    continue;
                }
                shmc_tset(a, k.data(), k.size(), value.data(), value.size(), 0, 0, 0, SHMC_TIER_L2);
                for (int t = 0; t < 50 && !in_l1(a, k); ++t)
                    shmc_tget(a, k.data(), k.size(), buf, sizeof buf, &len, nullptr, nullptr,
                              SHMC_TIER_BOTH, ttl, nullptr);
            }
        }
        const int n = iters * 100;
        double ns[4];
        for (int pass = 0; pass < 3; ++pass)  // interleaved: the same machine state for all
            for (int kind = 0; kind < 4; ++kind) {
                const double v = l1_hit_ns(a, keys[kind], n);
                ns[kind] = pass ? std::min(ns[kind], v) : v;
            }
        std::printf("\n### L1 hit cost (plain shmc_get, 1000 keys, 200 B values, best of 15 "
                    "rounds of %d calls)\n\n| entry | ns per hit |\n|---|---|\n", n);
        for (int kind = 0; kind < 4; ++kind) std::printf("| %s | %.1f |\n", names[kind], ns[kind]);
#ifdef SHMC_INVAL_TRACKING
        std::printf("\n(coherence v2: a copy of an L2 value is checked against the host's epoch "
                    "and lease)\n");
#else
        std::printf("\n(library without coherence v2)\n");
#endif
    }

#ifdef SHMC_INVAL_TRACKING
    header("Coherence v2: a write made outside shmcache, until neither host's L1 serves the old value");
    {
        shmc_l2_stats st;
        shmc_l2_get_stats(a, &st);
        if (st.invalidation_mode != SHMC_INVAL_TRACKING)
            std::fprintf(stderr, "warning: not in tracking mode (%u)\n", st.invalidation_mode);
        std::vector<double> set_d, del_d, expire_d, expiry_d, evict_d;
        const int rounds = std::min(iters, 300);
        for (int i = 0; i < rounds; ++i) {
            const std::string k = "ext" + std::to_string(i % 50), rk = "bench:" + k;
            redis.command("SET", rk, "old");
            if (!fill_both(a, b, k, "old")) continue;
            auto t = Clock::now();
            redis.command("SET", rk, "new");
            set_d.push_back(until_gone(a, b, k, "old", t));
            if (!fill_both(a, b, k, "new")) continue;
            t = Clock::now();
            redis.command("DEL", rk);
            del_d.push_back(until_gone(a, b, k, "new", t));
            redis.command("SET", rk, "ttl");
            if (!fill_both(a, b, k, "ttl")) continue;
            t = Clock::now();
            redis.command("PEXPIRE", rk, "1");  // the copies had no TTL
            expire_d.push_back(until_gone(a, b, k, "ttl", t));
        }
        for (int i = 0; i < 30; ++i) {
            const std::string k = "expiring" + std::to_string(i), rk = "bench:" + k;
            const auto t_set = Clock::now();
            redis.command_argv({"SET", rk, "e", "PX", "40"});
            if (!fill_both(a, b, k, "e")) continue;
            const auto t_exp = t_set + std::chrono::milliseconds(40);
            while (Clock::now() < t_exp) {
            }
            expiry_d.push_back(until_gone(a, b, k, "e", t_exp));
        }
        // Eviction: the victim is the only key with a TTL, so volatile-lru evicts it first.
        redis.command_argv({"CONFIG", "SET", "maxmemory-policy", "volatile-lru"});
        const std::string filler(8192, 'f');
        for (int i = 0; i < 20; ++i) {
            const std::string k = "victim" + std::to_string(i), rk = "bench:" + k;
            redis.command_argv({"CONFIG", "SET", "maxmemory", "0"});
            redis.command_argv({"SET", rk, "x", "EX", "3600"});
            if (!fill_both(a, b, k, "x")) continue;
            std::string info = redis.command("INFO", "memory");
            const size_t at = info.find("used_memory:");
            const long used = at == std::string::npos ? 0 : std::atol(info.c_str() + at + 12);
            redis.command_argv({"CONFIG", "SET", "maxmemory", std::to_string(used + (256 << 10))});
            for (int j = 0; j < 1000; ++j) {
                const auto t = Clock::now();
                redis.command_argv({"SET", "junk:" + std::to_string(j), filler});
                if (redis.command("EXISTS", rk) == ":0\r\n") {
                    evict_d.push_back(until_gone(a, b, k, "x", t));
                    break;
                }
            }
            redis.command_argv({"CONFIG", "SET", "maxmemory", "0"});
            redis.command("FLUSHDB");
        }
        row("external SET", set_d, "plain connection; from before the SET is sent");
        row("external DEL", del_d, "");
        row("external PEXPIRE", expire_d, "copies made without a TTL");
        row("key expiring in Redis", expiry_d, "from the key's expiry instant");
        row("key evicted by maxmemory", evict_d, "from before the write that evicted it");
        std::printf("\nA FLUSHDB ran between eviction rounds: each dropped every copy at once "
                    "(epoch bump).\n");
    }
#endif

    header("Hung Redis (SIGSTOP): calls during the outage");
    {
        redis.stop();
        std::vector<double> first, open;
        for (int i = 0; i < 3; ++i) {
            const std::string k = "cold" + std::to_string(i);
            const auto t = Clock::now();
            shmc_tget(a, k.data(), k.size(), buf, sizeof buf, &len, nullptr, nullptr, SHMC_TIER_BOTH,
                      0, nullptr);
            first.push_back(us_since(t));
        }
        for (int i = 0; i < iters; ++i) {
            const auto t = Clock::now();
            shmc_tget(a, "cold", 4, buf, sizeof buf, &len, nullptr, nullptr, SHMC_TIER_BOTH, 0,
                      nullptr);
            open.push_back(us_since(t));
        }
        std::vector<double> l1;
        for (int i = 0; i < iters; ++i) {
            const std::string k = "k" + std::to_string(i % 1000);
            const auto t = Clock::now();
            shmc_tget(a, k.data(), k.size(), buf, sizeof buf, &len, nullptr, nullptr, SHMC_TIER_BOTH,
                      0, nullptr);
            l1.push_back(us_since(t));
        }
        redis.cont();
        row("get, L1 miss, before the breaker opens", first, "bounded by command_timeout_ms");
        row("get, L1 miss, breaker open", open, "fails at once");
        row("get, L1 hit, Redis hung", l1, "entries L1 wrote itself: L1 keeps serving them");
    }
    shmc_close(a);
    shmc_close(b);
    shmc_unlink(("shmc-bench-l2-a-" + tag).c_str(), 1);
    shmc_unlink(("shmc-bench-l2-b-" + tag).c_str(), 1);

#ifdef SHMC_INVAL_TRACKING
    header("TLS against plain TCP (one redis-server with both ports, calls interleaved)");
    {
        l2test::RedisServer::Options o;
        o.tls = true;
        l2test::RedisServer tls_redis(o);
        shmc_cache* plain = open_host("shmc-bench-l2-plain-" + tag, tls_redis.url(), timeout_ms);
        shmc_cache* tls = open_host("shmc-bench-l2-tls-" + tag, tls_redis.tls_url(), timeout_ms);
        std::vector<double> get_plain, get_tls, set_plain, set_tls;
        for (int i = 0; i < iters; ++i) {
            const std::string k = "t" + std::to_string(i % 1000);
            for (shmc_cache* c : {plain, tls}) {
                auto& gets = c == plain ? get_plain : get_tls;
                auto& sets = c == plain ? set_plain : set_tls;
                auto t = Clock::now();
                shmc_tset(c, k.data(), k.size(), value.data(), value.size(), 0, 0, 0, SHMC_TIER_L2);
                sets.push_back(us_since(t));
                t = Clock::now();
                shmc_tget(c, k.data(), k.size(), buf, sizeof buf, &len, nullptr, nullptr,
                          SHMC_TIER_L2, 0, nullptr);
                gets.push_back(us_since(t));
            }
        }
        row("get, L2 only, plain", get_plain, "GET + PTTL");
        row("get, L2 only, TLS", get_tls, "GET + PTTL, TLS 1.3");
        row("set, L2 only, plain", set_plain);
        row("set, L2 only, TLS", set_tls);
        std::printf("\nTLS / plain, get p50: %.2fx; set p50: %.2fx\n",
                    summarize(get_tls).p50 / summarize(get_plain).p50,
                    summarize(set_tls).p50 / summarize(set_plain).p50);
        shmc_close(plain);
        shmc_close(tls);
        shmc_unlink(("shmc-bench-l2-plain-" + tag).c_str(), 1);
        shmc_unlink(("shmc-bench-l2-tls-" + tag).c_str(), 1);
    }
#endif
    return 0;
}
