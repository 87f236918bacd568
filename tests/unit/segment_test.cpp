// segment_test.cpp - creation, attach checks and refusals: version, owner, room, half-initialized.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "support.h"

using namespace shmcache::shm;

static std::string errmsg() { return shmc_errmsg(); }

TEST_CASE("a layout version mismatch names both versions and changes nothing") {
    unit::TestCache t("ver");
    t.set("k", "v");
    {
        unit::RawSegment raw(t.name);
        raw.header()->layout_version = 99;
    }
    shmc_cache* c2 = nullptr;
    CHECK(shmc_open(t.name.c_str(), nullptr, &c2) == SHMC_E_VERSION);
    CHECK(errmsg().find("layout version 99") != std::string::npos);
    CHECK(errmsg().find("layout version " + std::to_string(shmcache::shm::kLayoutVersion)) !=
          std::string::npos);
    CHECK(c2 == nullptr);
    CHECK(shmc_unlink(t.name.c_str(), 0) == SHMC_E_VERSION);  // cannot count its users
    shmc_options o;
    shmc_options_default(&o);
    o.flags = SHMC_OPEN_REPLACE_INCOMPATIBLE;
    REQUIRE(shmc_open(t.name.c_str(), &o, &c2) == 0);  // explicitly asked: a fresh segment
    size_t n;
    CHECK(shmc_get(c2, "k", 1, nullptr, 0, &n, nullptr, nullptr) == SHMC_E_NOTFOUND);
    shmc_close(c2);
}

TEST_CASE("a header with impossible geometry is refused") {
    unit::TestCache t("geom");
    {
        unit::RawSegment raw(t.name);
        raw.header()->blocks_per_stripe += 64;
    }
    shmc_cache* c2 = nullptr;
    CHECK(shmc_open(t.name.c_str(), nullptr, &c2) == SHMC_E_CORRUPT);
}

TEST_CASE("a segment owned by another user is refused unless allowed") {
    unit::TestCache t("owner");
    if (geteuid() != 0) return;  // chown needs root; the CI machine runs as root
    REQUIRE(chown(("/dev/shm/" + t.name).c_str(), 4242, 4242) == 0);
    shmc_cache* c2 = nullptr;
    CHECK(shmc_open(t.name.c_str(), nullptr, &c2) == SHMC_E_PERM);
    CHECK(errmsg().find("uid 4242") != std::string::npos);
    shmc_options o;
    shmc_options_default(&o);
    o.flags = SHMC_OPEN_ALLOW_FOREIGN_OWNER;
    CHECK(shmc_open(t.name.c_str(), &o, &c2) == 0);
    shmc_close(c2);
}

TEST_CASE("permissions are 0600 by default and follow mode") {
    unit::TestCache t("mode");
    struct stat st;
    REQUIRE(stat(("/dev/shm/" + t.name).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    shmc_options o = unit::TestCache::defaults();
    o.mode = 0660;
    unit::TestCache g("gmode", o);
    REQUIRE(stat(("/dev/shm/" + g.name).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0660);
    shmc_info info;
    REQUIRE(shmc_get_info(g.c, &info) == 0);
    CHECK(info.mode == 0660);
}

TEST_CASE("no room in /dev/shm fails up front with the sizes") {
    const std::string name = unit::unique_name("nospc");
    shmc_options o;
    shmc_options_default(&o);
    o.size_bytes = 1ull << 44;  // 16 TiB: more than any /dev/shm here
    shmc_cache* c = nullptr;
    CHECK(shmc_open(name.c_str(), &o, &c) == SHMC_E_NOSPC);
    CHECK(errmsg().find("17592186044416 bytes") != std::string::npos);
    CHECK(errmsg().find("free") != std::string::npos);
    CHECK(access(("/dev/shm/" + name).c_str(), F_OK) != 0);  // nothing left behind
}

TEST_CASE("a segment whose initializer died half-way is initialized again") {
    const std::string name = unit::unique_name("halfinit");
    int fd = shm_open(("/" + name).c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(ftruncate(fd, 1 << 20) == 0);  // a dead initializer's leftovers: no READY header
    void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    static_cast<SegmentHeader*>(p)->init_state.store(kInitRunning);
    munmap(p, 4096);
    close(fd);
    shmc_cache* c = nullptr;
    shmc_options o = unit::TestCache::defaults();
    REQUIRE(shmc_open(name.c_str(), &o, &c) == 0);
    CHECK(shmc_set(c, "k", 1, "v", 1, 0, 0) == 0);
    shmc_check_report r;
    CHECK(shmc_check(c, &r) == 0);
    shmc_close(c);
    shmc_unlink(name.c_str(), 1);
}

TEST_CASE("attach-only open of a missing segment, and bad names") {
    shmc_options o;
    shmc_options_default(&o);
    o.flags = SHMC_OPEN_NO_CREATE;
    shmc_cache* c = nullptr;
    CHECK(shmc_open(unit::unique_name("absent").c_str(), &o, &c) == SHMC_E_NO_SEGMENT);
    CHECK(shmc_open("a/b", nullptr, &c) == SHMC_E_INVAL);
    o.flags = 0;
    o.n_stripes = 3;
    CHECK(shmc_open(unit::unique_name("badopt").c_str(), &o, &c) == SHMC_E_INVAL);
}

TEST_CASE("unlink refuses while another process is attached, unless forced") {
    unit::TestCache t("busy");
    int ready[2];
    REQUIRE(pipe(ready) == 0);
    pid_t child = fork();
    if (child == 0) {
        shmc_cache* c = nullptr;
        if (shmc_open(t.name.c_str(), nullptr, &c) != 0) _exit(1);
        char b = 1;
        if (write(ready[1], &b, 1) != 1) _exit(1);
        pause();
        _exit(0);
    }
    char b;
    REQUIRE(read(ready[0], &b, 1) == 1);
    shmc_info info;
    REQUIRE(shmc_get_info(t.c, &info) == 0);
    CHECK(info.attached == 2);
    CHECK(shmc_unlink(t.name.c_str(), 0) == SHMC_E_BUSY);
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    CHECK(shmc_unlink(t.name.c_str(), 0) == 0);  // the dead child no longer counts
}
