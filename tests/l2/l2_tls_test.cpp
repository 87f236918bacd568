// l2_tls_test.cpp - the Redis tier over TLS (rediss://) and with ACL users, against a real
// redis-server listening with --tls-port and certificates the fixture makes with openssl.
//
// The fixture keeps a plain port too: the test itself reads and writes Redis through it, as
// another service would, while shmcache talks TLS.
#include <doctest/doctest.h>
#include <shmcache/shmcache.h>

#include <cstring>
#include <string>

#include "l2_host.h"
#include "redis_server.h"

using l2test::big_value;
using l2test::Clock;
using l2test::eventually;
using l2test::Host;
using l2test::ms_since;
using l2test::RedisServer;

namespace {

RedisServer::Options tls_server(bool require_client_cert = true) {
    RedisServer::Options o;
    o.tls = true;
    o.tls_auth_clients = require_client_cert;
    return o;
}

void no_subscriber(shmc_l2_options& l) { l.flags |= SHMC_L2_NO_SUBSCRIBE; }

// The error a get through both tiers meets, and how long it took.
int failing_get(Host& h, std::string* msg, double* took_ms) {
    int rc = 0;
    const auto t0 = Clock::now();
    h.get("k", SHMC_TIER_BOTH, &rc);
    *took_ms = ms_since(t0);
    *msg = shmc_errmsg();
    return rc;
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("tls: both tiers, large values and tracking invalidations over rediss://") {
    RedisServer redis(tls_server());
    Host a("tls", redis.tls_url());  // waits for the subscriber, itself over TLS
    CHECK(a.stats().invalidation_mode == SHMC_INVAL_TRACKING);

    CHECK(a.set("k1", "v1") == 0);
    CHECK(redis.command("GET", "t:k1") == "$2\r\nv1\r\n");
    REQUIRE(shmc_del(a.c, "k1", 2) == 0);
    uint32_t served = 0;
    int rc = 0;
    CHECK(a.get("k1", SHMC_TIER_BOTH, &rc, &served) == "v1");
    CHECK(served == SHMC_TIER_L2);

    // Values far larger than a TLS record (16 KiB) and than one read: written and read in parts.
    const std::string big = big_value(3u << 20, false, 7);
    CHECK(a.set("big", big, SHMC_TIER_L2) == 0);
    std::string buf(big.size(), '\0');
    size_t len = 0;
    CHECK(shmc_tget(a.c, "big", 3, buf.data(), buf.size(), &len, nullptr, nullptr, SHMC_TIER_L2, 0,
                    nullptr) == 0);
    CHECK(len == big.size());
    CHECK(buf == big);

    // Another writer, on the plain port: the TLS subscriber hears of it and drops the copy.
    REQUIRE(a.get_filled("k1", "v1"));
    CHECK(redis.command("SET", "t:k1", "external") == "+OK\r\n");
    CHECK(eventually([&] { return a.get("k1") == "external"; }));

    // A pipelined batch (the single-flight fetch path sends several commands at once).
    char out[64];
    shmc_fetch_options fo;
    shmc_fetch_options_default(&fo);
    fo.tiers = SHMC_TIER_BOTH;
    fo.flags = SHMC_FETCH_L2_LOCK;  // SET NX, GET and PTTL in one round trip
    shmc_fetch_result fr;
    REQUIRE(shmc_fetch(a.c, "f", 1, out, sizeof out, &fo, &fr) == 0);
    CHECK(fr.outcome == SHMC_FETCH_COMPUTE);
    CHECK(shmc_fetch_complete(a.c, "f", 1, "computed", 8, 0, 5, &fo, fr.lease) == 0);
    CHECK(redis.command("GET", "t:f") == "$8\r\ncomputed\r\n");
}

TEST_CASE("tls: a connection the server closed costs a retry, never the process (SIGPIPE)") {
    // OpenSSL's own socket writes would raise SIGPIPE here, which kills a program that does
    // not ignore it (this test program does not).
    RedisServer redis(tls_server());
    Host a("tls-pipe", redis.tls_url(), "t", no_subscriber);
    REQUIRE(a.set("k", "v", SHMC_TIER_L2) == 0);  // leaves a pooled connection
    REQUIRE(redis.command_argv({"CLIENT", "KILL", "TYPE", "normal"}).rfind(":", 0) == 0);
    const std::string big = big_value(1u << 20, false, 3);
    for (int i = 0; i < 3; ++i) {
        const int rc = a.set("big" + std::to_string(i), big, SHMC_TIER_L2);
        CHECK((rc == 0 || rc == SHMC_E_L2_UNAVAILABLE));
    }
    CHECK(eventually([&] { return a.set("big", big, SHMC_TIER_L2) == 0; }));
    std::string buf(big.size(), '\0');
    size_t len = 0;
    CHECK(shmc_tget(a.c, "big", 3, buf.data(), buf.size(), &len, nullptr, nullptr, SHMC_TIER_L2, 0,
                    nullptr) == 0);
    CHECK(buf == big);
}

TEST_CASE("tls: the server's certificate and name are checked") {
    RedisServer redis(tls_server());
    const std::string d = redis.dir();
    const std::string client = "&ssl_certfile=" + d + "/client.crt&ssl_keyfile=" + d + "/client.key";
    std::string msg;
    double took = 0;
    {
        // A CA that did not sign the server's certificate.
        Host h("tls-ca", "rediss://127.0.0.1:" + std::to_string(redis.tls_port()) +
                             "/0?ssl_ca_certs=" + d + "/other-ca.crt" + client,
               "t", no_subscriber);
        CHECK(failing_get(h, &msg, &took) == SHMC_E_L2_UNAVAILABLE);
        CHECK_MESSAGE(contains(msg, "certificate"), msg);
        CHECK(took < 1000);
    }
    {
        // The right CA, but the certificate does not name the host asked for.
        Host h("tls-name", redis.tls_url("ssl_server_name=cache.example.com"), "t", no_subscriber);
        CHECK(failing_get(h, &msg, &took) == SHMC_E_L2_UNAVAILABLE);
        CHECK_MESSAGE(contains(msg, "certificate"), msg);
    }
    {
        // The certificate names localhost: connecting to 127.0.0.1 as "localhost" passes.
        Host h("tls-sni", redis.tls_url("ssl_server_name=localhost"), "t");
        CHECK(h.set("k", "v") == 0);
        CHECK(h.get("k", SHMC_TIER_L2) == "v");
    }
    {
        // And so does "localhost" as the host itself (a DNS name, checked against the SAN).
        Host h("tls-host", "rediss://localhost:" + std::to_string(redis.tls_port()) +
                               "/0?ssl_ca_certs=" + d + "/ca.crt" + client,
               "t", no_subscriber);
        CHECK(h.set("k2", "v2", SHMC_TIER_L2) == 0);
    }
    {
        // ssl_cert_reqs=none: no CA at all, nothing checked (tests only).
        Host h("tls-none", "rediss://127.0.0.1:" + std::to_string(redis.tls_port()) +
                               "/0?ssl_cert_reqs=none" + client,
               "t", no_subscriber);
        CHECK(h.set("k3", "v3", SHMC_TIER_L2) == 0);
    }
}

TEST_CASE("tls: client certificates") {
    {
        RedisServer redis(tls_server(true));
        const std::string no_cert = "rediss://127.0.0.1:" + std::to_string(redis.tls_port()) +
                                    "/0?ssl_ca_certs=" + redis.dir() + "/ca.crt";
        Host h("tls-nocert", no_cert, "t", no_subscriber);
        std::string msg;
        double took = 0;
        CHECK(failing_get(h, &msg, &took) == SHMC_E_L2_UNAVAILABLE);
        CHECK(took < 1000);
        CHECK(redis.command("DBSIZE") == ":0\r\n");
    }
    {
        RedisServer redis(tls_server(false));
        Host h("tls-optional", "rediss://127.0.0.1:" + std::to_string(redis.tls_port()) +
                                   "/0?ssl_ca_certs=" + redis.dir() + "/ca.crt");
        CHECK(h.set("k", "v") == 0);
        CHECK(redis.command("GET", "t:k") == "$1\r\nv\r\n");
    }
}

TEST_CASE("tls: attach refuses files it cannot use, naming them") {
    RedisServer redis(tls_server());
    const std::string d = redis.dir();
    shmc_cache* c = nullptr;
    const std::string name = "shmc-t-l2-tls-attach-" + std::to_string(getpid());
    REQUIRE(shmc_open(name.c_str(), nullptr, &c) == 0);
    shmc_l2_options l;
    shmc_l2_options_default(&l);
    const std::string port = std::to_string(redis.tls_port());
    const std::string missing_ca = "rediss://127.0.0.1:" + port + "/0?ssl_ca_certs=/nonexistent.pem";
    l.url = missing_ca.c_str();
    CHECK(shmc_l2_attach(c, &l) == SHMC_E_INVAL);
    CHECK(contains(shmc_errmsg(), "ssl_ca_certs"));
    const std::string wrong_key = "rediss://127.0.0.1:" + port + "/0?ssl_ca_certs=" + d +
                                  "/ca.crt&ssl_certfile=" + d + "/client.crt&ssl_keyfile=" + d +
                                  "/server.key";
    l.url = wrong_key.c_str();
    CHECK(shmc_l2_attach(c, &l) == SHMC_E_INVAL);
    CHECK_MESSAGE(contains(shmc_errmsg(), "ssl_keyfile"), shmc_errmsg());
    const std::string plain_opts = "redis://127.0.0.1:" + port + "/0?ssl_ca_certs=" + d + "/ca.crt";
    l.url = plain_opts.c_str();
    CHECK(shmc_l2_attach(c, &l) == SHMC_E_INVAL);
    CHECK(contains(shmc_errmsg(), "rediss://"));
    shmc_close(c);
    shmc_unlink(name.c_str(), 1);
}

TEST_CASE("tls: a hung server, or the wrong protocol on either side, costs at most the timeout") {
    RedisServer redis(tls_server());
    std::string msg;
    double took = 0;
    {
        // TLS to the plain port: the handshake gets no TLS answer.
        Host h("tls-plainport", "rediss://127.0.0.1:" + std::to_string(redis.port()) +
                                    "/0?ssl_cert_reqs=none",
               "t", no_subscriber);
        CHECK(failing_get(h, &msg, &took) == SHMC_E_L2_UNAVAILABLE);
        CHECK(took < 1000);
    }
    {
        // Plain RESP to the TLS port: no reply ever comes, the deadline ends the call.
        Host h("tls-plaintotls", "redis://127.0.0.1:" + std::to_string(redis.tls_port()) + "/0",
               "t", no_subscriber);
        CHECK(failing_get(h, &msg, &took) == SHMC_E_L2_UNAVAILABLE);
        CHECK(took < 1000);
    }
    Host a("tls-hung", redis.tls_url(), "t", no_subscriber);
    REQUIRE(a.set("k", "v", SHMC_TIER_L2) == 0);
    redis.stop();
    // In the middle of a session (pooled connection) and for new handshakes alike.
    CHECK(failing_get(a, &msg, &took) == SHMC_E_L2_UNAVAILABLE);
    CHECK(took < 1000);
    Host b("tls-hung2", redis.tls_url(), "t", no_subscriber);
    CHECK(failing_get(b, &msg, &took) == SHMC_E_L2_UNAVAILABLE);
    CHECK(took < 1000);
    redis.cont();
    CHECK(eventually([&] { return a.get("k", SHMC_TIER_L2) == "v"; }));
}

TEST_CASE("acl: user:password authenticates every connection, the subscriber's too") {
    RedisServer redis(tls_server());
    // A user that may only touch the namespace t:* and may use pub/sub and tracking.
    REQUIRE(redis.command_argv({"ACL", "SETUSER", "app", "on", ">s3cret p@ss", "~t:*", "&*",
                                "+@all"}) == "+OK\r\n");
    const std::string base = "rediss://app:s3cret%20p%40ss@127.0.0.1:" +
                             std::to_string(redis.tls_port()) + "/0?ssl_ca_certs=" + redis.dir() +
                             "/ca.crt&ssl_certfile=" + redis.dir() + "/client.crt&ssl_keyfile=" +
                             redis.dir() + "/client.key";
    Host a("acl", base);
    CHECK(a.stats().invalidation_mode == SHMC_INVAL_TRACKING);
    CHECK(a.set("k", "v") == 0);
    CHECK(redis.command("GET", "t:k") == "$1\r\nv\r\n");
    // Every connection of shmcache's (pool and subscriber) is the app user's.
    const std::string clients = redis.command_argv({"CLIENT", "LIST"});
    size_t app_clients = 0;
    for (size_t at = 0; (at = clients.find("user=app", at)) != std::string::npos; ++at)
        ++app_clients;
    CHECK(app_clients >= 2);
    CHECK(clients.find("user=app") != std::string::npos);
    // The ACL applies: a key outside the user's namespace is refused, with Redis's reason.
    Host other("acl-other", base, "u", no_subscriber);
    CHECK(other.set("k", "v", SHMC_TIER_L2) == SHMC_E_L2_REPLY);
    CHECK(contains(shmc_errmsg(), "NOPERM"));
    // A wrong password: a clear refusal, bounded.
    Host wrong("acl-wrong",
               "rediss://app:nope@127.0.0.1:" + std::to_string(redis.tls_port()) +
                   "/0?ssl_ca_certs=" + redis.dir() + "/ca.crt&ssl_certfile=" + redis.dir() +
                   "/client.crt&ssl_keyfile=" + redis.dir() + "/client.key",
               "t", no_subscriber);
    std::string msg;
    double took = 0;
    CHECK(failing_get(wrong, &msg, &took) == SHMC_E_L2_UNAVAILABLE);
    CHECK_MESSAGE(contains(msg, "WRONGPASS"), msg);
}
