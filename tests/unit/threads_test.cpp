// threads_test.cpp - one handle shared by several threads (the header promises it is safe).
#include <doctest/doctest.h>

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "support.h"

TEST_CASE("threads sharing one handle never see another key's value or a torn one") {
    shmc_options o = unit::TestCache::defaults();
    o.size_bytes = 2 << 20;  // small, so that eviction runs all the time
    unit::TestCache t("threads", o);
    std::atomic<int> bad{0}, errors{0};
    std::vector<std::thread> threads;
    for (int id = 0; id < 4; ++id) {
        threads.emplace_back([&, id] {
            std::mt19937 rng(id);
            std::string buf(64 * 1024, '\0');
            for (int i = 0; i < 20000; ++i) {
                const std::string k = "k" + std::to_string(rng() % 500);
                const int op = int(rng() % 10);
                if (op < 6) {
                    size_t n = 0;
                    int rc = shmc_get(t.c, k.data(), k.size(), buf.data(), buf.size(), &n,
                                      nullptr, nullptr);
                    // Each value is its key repeated: anything else is another key's or torn.
                    if (rc == 0)
                        for (size_t j = 0; j < n; j += k.size())
                            if (buf.compare(j, k.size(), k) != 0) ++bad;
                    if (rc != 0 && rc != SHMC_E_NOTFOUND && rc != SHMC_E_LOCK_TIMEOUT) ++errors;
                } else if (op < 9) {
                    std::string v;
                    for (size_t reps = rng() % 4000; reps > 0; --reps) v += k;
                    int rc = shmc_set(t.c, k.data(), k.size(), v.data(), v.size(), 0, 0);
                    // A lock timeout (a holder preempted on a loaded machine) is documented
                    // behaviour, not an error: the value is simply not stored.
                    if (rc != 0 && rc != SHMC_E_LOCK_TIMEOUT) ++errors;
                } else {
                    int rc = shmc_del(t.c, k.data(), k.size());
                    if (rc != 0 && rc != SHMC_E_NOTFOUND && rc != SHMC_E_LOCK_TIMEOUT) ++errors;
                }
            }
        });
    }
    for (auto& th : threads) th.join();
    CHECK(bad == 0);
    CHECK(errors == 0);
    shmc_check_report r;
    CHECK(shmc_check(t.c, &r) == 0);
    CHECK(r.stripes_damaged == 0);
    CHECK(t.stats().evictions > 0);
}
