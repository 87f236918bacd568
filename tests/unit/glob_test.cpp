// glob_test.cpp - the glob matcher of purge and scan.
#include <doctest/doctest.h>

#include <cstring>
#include <string>

#include "shm/glob.h"

using shmcache::shm::glob_match;
using shmcache::shm::glob_valid;

static bool m(const std::string& p, const std::string& s) {
    REQUIRE(glob_valid(p.data(), p.size()));
    return glob_match(p.data(), p.size(), s.data(), s.size());
}

TEST_CASE("literal, star and question mark") {
    CHECK(m("user:1*", "user:1"));
    CHECK(m("user:1*", "user:123"));
    CHECK_FALSE(m("user:1*", "user:23"));
    CHECK(m("*", ""));
    CHECK(m("", ""));
    CHECK_FALSE(m("", "a"));
    CHECK(m("a?c", "abc"));
    CHECK_FALSE(m("a?c", "ac"));
    CHECK(m("*a*b*c", "xaxxbxxxc"));
    CHECK_FALSE(m("*a*b*c", "xaxxbxxx"));
    CHECK(m("user_profile:123*", "user_profile:123:abc"));
}

TEST_CASE("classes, ranges, negation and escapes") {
    CHECK(m("[abc]x", "bx"));
    CHECK_FALSE(m("[abc]x", "dx"));
    CHECK(m("[a-c]", "b"));
    CHECK(m("[!a-c]", "d"));
    CHECK(m("[^a-c]", "d"));
    CHECK_FALSE(m("[!a-c]", "b"));
    CHECK(m("[]]", "]"));
    CHECK(m("\\*", "*"));
    CHECK_FALSE(m("\\*", "a"));
    CHECK(m("a\\?", "a?"));
    CHECK(m("[\\]]", "]"));
}

TEST_CASE("binary keys with NUL bytes") {
    const std::string p("a\0*", 3), s("a\0zzz", 5);
    CHECK(m(p, s));
    CHECK_FALSE(m(p, std::string("a\1zzz", 5)));
}

TEST_CASE("malformed patterns are refused") {
    for (const char* bad : {"[abc", "abc\\", "[", "[!", "x[a-"})
        CHECK_FALSE(glob_valid(bad, strlen(bad)));
}

TEST_CASE("no exponential blow-up on pathological patterns") {
    std::string s(5000, 'a'), p;
    for (int i = 0; i < 50; ++i) p += "*a";
    p += "b";
    CHECK_FALSE(m(p, s));  // would take forever with naive backtracking
}
