// support.cpp - see support.h.
#include "support.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>

namespace unit {

std::string unique_name(const char* tag) {
    static std::atomic<int> n{0};
    return "shmc-u-" + std::string(tag) + "-" + std::to_string(getpid()) + "-" +
           std::to_string(n++);
}

shmc_options TestCache::defaults() {
    shmc_options o;
    shmc_options_default(&o);
    o.size_bytes = 4 << 20;
    o.n_stripes = 4;
    return o;
}

TestCache::TestCache(const char* tag, shmc_options o) : name(unique_name(tag)) {
    int rc = shmc_open(name.c_str(), &o, &c);
    INFO(shmc_errmsg());
    REQUIRE(rc == 0);
}

TestCache::~TestCache() {
    shmc_close(c);
    shmc_unlink(name.c_str(), 1);
}

void TestCache::set(const std::string& k, const std::string& v, uint64_t ttl_ms) {
    int rc = shmc_set(c, k.data(), k.size(), v.data(), v.size(), 0, ttl_ms);
    INFO(k, " ", shmc_errmsg());
    CHECK(rc == 0);
}

bool TestCache::has(const std::string& k) {
    // A real read (a probe with a too-small buffer is deliberately not counted as a hit).
    thread_local std::string buf(1 << 20, '\0');
    size_t n;
    int rc = shmc_get(c, k.data(), k.size(), buf.data(), buf.size(), &n, nullptr, nullptr);
    return rc == 0 || rc == SHMC_E_BUFFER_TOO_SMALL;
}

std::string TestCache::get(const std::string& k) {
    std::string out(1 << 20, '\0');
    size_t n = 0;
    int rc = shmc_get(c, k.data(), k.size(), out.data(), out.size(), &n, nullptr, nullptr);
    INFO(k, " ", shmc_errmsg());
    CHECK(rc == 0);
    out.resize(rc == 0 ? n : 0);
    return out;
}

shmc_stats TestCache::stats() {
    shmc_stats s;
    REQUIRE(shmc_get_stats(c, &s) == 0);
    return s;
}

RawSegment::RawSegment(const std::string& name) {
    int fd = shm_open(("/" + name).c_str(), O_RDWR, 0);
    REQUIRE(fd >= 0);
    struct stat st;
    REQUIRE(fstat(fd, &st) == 0);
    size = size_t(st.st_size);
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    REQUIRE(p != MAP_FAILED);
    base = static_cast<uint8_t*>(p);
    auto* h = header();
    const char* why = "";
    REQUIRE(shmcache::shm::compute_geometry(h->size_bytes, h->max_entries, h->n_stripes,
                                            h->strategy, h->max_value_len, &g, &why));
}

RawSegment::~RawSegment() {
    if (base) munmap(base, size);
}

shmcache::shm::StripeRef RawSegment::stripe(uint32_t i) const {
    return shmcache::shm::stripe_ref(base, g, i);
}

}  // namespace unit
