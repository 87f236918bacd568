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
//      host B holding the subscription.
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
        row("set, BOTH", set_both, "SET + PUBLISH, one round trip, then L1");
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
        row("get, L1 hit, Redis hung", l1, "L1 keeps serving");
    }
    shmc_close(a);
    shmc_close(b);
    shmc_unlink(("shmc-bench-l2-a-" + tag).c_str(), 1);
    shmc_unlink(("shmc-bench-l2-b-" + tag).c_str(), 1);
    return 0;
}
