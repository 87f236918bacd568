// engine_alone_test.cpp - the engine (shm/) used without the C ABI (lib/). This binary links
// the engine's static library and nothing of lib/, so it fails to link if the engine ever calls
// a shmc_* function again (it once called shmc_options_default). It also drives the host-wide
// entry limit through Engine itself.
#include <doctest/doctest.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "shm/engine.h"
#include "shm/segment.h"

using shmcache::shm::Engine;
using shmcache::shm::Segment;
using shmcache::shm::StoreMode;

TEST_CASE("the engine opens, stores and bounds its entries without the C ABI") {
    const std::string name = "shmc-u-alone-" + std::to_string(getpid());
    shmc_options o{};  // zero fields are the defaults, as for shmc_options_default
    o.size_bytes = 8u << 20;
    o.max_entries = 10;
    std::unique_ptr<Engine> e;
    REQUIRE(Engine::open(name.c_str(), &o, &e) == 0);
    shmc_info info{};
    REQUIRE(e->info(&info) == 0);
    CHECK(info.n_stripes == 1);  // 64 by default, but a limit of 10 leaves too few for more
    CHECK(info.max_entries == 10);
    for (int i = 0; i < 30; ++i) {
        const std::string k = "k" + std::to_string(i);
        REQUIRE(e->store(k.data(), k.size(), "v", 1, 0, 0, StoreMode::kSet) == 0);
    }
    shmc_stats st{};
    REQUIRE(e->stats(&st) == 0);
    CHECK(st.entries == 10);
    CHECK(st.evictions == 20);
    CHECK(e->entry_count() == 10);
    char buf[4];
    size_t n = 0;
    CHECK(e->get("k29", 3, buf, sizeof buf, &n, nullptr, nullptr) == 0);
    e.reset();
    CHECK(Segment::unlink(name, true) == 0);
}
