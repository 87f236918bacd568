// envelope_test.cpp - the value envelope: round trips, compression threshold, hostile input.
#include <doctest/doctest.h>
#include <shmcache/shmcache.h>

#include <random>
#include <string>
#include <vector>

static std::string encode(uint32_t ser, const std::string& v, size_t threshold) {
    std::string out(shmc_encode_bound(v.size()), '\0');
    size_t n = 0;
    REQUIRE(shmc_encode(ser, v.data(), v.size(), threshold, 0, out.data(), out.size(), &n) == 0);
    out.resize(n);
    return out;
}

static std::string decode(const std::string& env, uint32_t* ser) {
    size_t n = 0;
    int rc = shmc_decode(env.data(), env.size(), ser, nullptr, 0, &n);
    if (rc == SHMC_E_BUFFER_TOO_SMALL || (rc == 0 && n == 0)) {
        std::string out(n, '\0');
        REQUIRE(shmc_decode(env.data(), env.size(), ser, out.data(), out.size(), &n) == 0);
        return out;
    }
    REQUIRE(rc == 0);
    return "";
}

TEST_CASE("round trips around the compression threshold") {
    for (size_t len : {0, 1, 99, 100, 101, 5000, 200000}) {
        CAPTURE(len);
        const std::string v(len, 'a');
        const std::string env = encode(SHMC_SER_JSON, v, 100);
        CHECK(uint8_t(env[0]) == SHMC_ENVELOPE_MAGIC);
        const bool compressed = (uint8_t(env[1]) & 0x10) != 0;
        CHECK(compressed == (len >= 100));  // repetitive data compresses once over the threshold
        if (compressed) CHECK(env.size() < len);
        uint32_t ser = 99;
        CHECK(decode(env, &ser) == v);
        CHECK(ser == SHMC_SER_JSON);
    }
}

TEST_CASE("incompressible values are stored raw, never larger") {
    std::mt19937 rng(3);
    std::string v(4096, '\0');
    for (auto& ch : v) ch = char(rng());
    const std::string env = encode(SHMC_SER_RAW, v, 64);
    CHECK(env.size() == v.size() + SHMC_ENVELOPE_HEADER);
    CHECK((uint8_t(env[1]) & 0x10) == 0);
    uint32_t ser;
    CHECK(decode(env, &ser) == v);
}

TEST_CASE("hostile envelopes are refused") {
    uint32_t ser;
    size_t n;
    char buf[64];
    const std::string not_env = "hello";
    CHECK(shmc_decode(not_env.data(), not_env.size(), &ser, buf, sizeof buf, &n) ==
          SHMC_E_BAD_ENVELOPE);
    std::string reserved = encode(SHMC_SER_STR, "x", 0);
    reserved[1] = char(uint8_t(reserved[1]) | 0x80);
    CHECK(shmc_decode(reserved.data(), reserved.size(), &ser, buf, sizeof buf, &n) ==
          SHMC_E_BAD_ENVELOPE);
    std::string z = encode(SHMC_SER_STR, std::string(10000, 'q'), 1);
    z.resize(z.size() - 3);  // truncated frame
    std::vector<char> big(20000);
    CHECK(shmc_decode(z.data(), z.size(), &ser, big.data(), big.size(), &n) == SHMC_E_BAD_ENVELOPE);
    std::string one(1, char(SHMC_ENVELOPE_MAGIC));
    CHECK(shmc_decode(one.data(), one.size(), &ser, buf, sizeof buf, &n) == SHMC_E_BAD_ENVELOPE);
    CHECK(shmc_encode(16, "x", 1, 0, 0, buf, sizeof buf, &n) == SHMC_E_INVAL);
}
