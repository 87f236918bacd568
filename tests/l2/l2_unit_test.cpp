// l2_unit_test.cpp - the Redis tier's pure parts: URL parsing, the glob translation for SCAN,
// the invalidation message codec, the circuit breaker's state machine, the coherence epoch
// and lease in the engine, and Redis Cluster's slot hashing and redirections (no Redis needed).
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstring>

#include "breaker.h"
#include "cluster_slots.h"
#include "invalidation.h"
#include "l1_copy.h"
#include "redis_url.h"
#include "tiers.h"

using namespace shmcache::l2;

TEST_CASE("Redis URLs") {
    RedisEndpoint ep;
    std::string why;
    REQUIRE(parse_redis_url("redis://localhost:6380/2", &ep, &why));
    CHECK(ep.host == "localhost");
    CHECK(ep.port == 6380);
    CHECK(ep.db == 2);
    CHECK(ep.password.empty());
    REQUIRE(parse_redis_url("redis://127.0.0.1", &ep, &why));
    CHECK(ep.port == 6379);
    CHECK(ep.db == 0);
    REQUIRE(parse_redis_url("redis://:s%40cret@h:1/0", &ep, &why));
    CHECK(ep.user.empty());
    CHECK(ep.password == "s@cret");
    REQUIRE(parse_redis_url("redis://alice:pw@h", &ep, &why));
    CHECK(ep.user == "alice");
    CHECK(ep.password == "pw");
    REQUIRE(parse_redis_url("redis://[::1]:7000/3", &ep, &why));
    CHECK(ep.host == "::1");
    CHECK(ep.port == 7000);
    CHECK(ep.describe() == "[::1]:7000 db 3");
    REQUIRE(parse_redis_url("unix:///run/redis/redis.sock?db=4&password=p", &ep, &why));
    CHECK(ep.is_unix);
    CHECK(ep.path == "/run/redis/redis.sock");
    CHECK(ep.db == 4);
    CHECK(ep.password == "p");
    RedisEndpoint secret;
    secret.host = "h";
    secret.password = "hunter2";
    CHECK(secret.describe().find("hunter2") == std::string::npos);
    for (const char* bad : {"", "localhost:6379", "http://h", "redis://h:x",
                            "redis://h:70000", "redis://h/db", "unix://rel", "redis://h?x=1",
                            "redis://[::1", "redis://u:%4@h", "redis://u:%@h",
                            "redis://h?ssl_ca_certs=/ca.pem",     // TLS options without TLS
                            "rediss://h?ssl_cert_reqs=maybe", "rediss://h?ssl_keyfile=k.pem",
                            "redis://a,b", "redis+sentinel://h:26379", "redis+sentinel://h/",
                            "redis+sentinel://,h/m", "redis+cluster://h/1",
                            "redis://h?sentinel_password=x", "redis+cluster://h?sentinel_user=u",
                            "redis+foo://h", "unix:///s?ssl_certfile=c"}) {
        CHECK_MESSAGE(!parse_redis_url(bad, &ep, &why), bad);
        CHECK(!why.empty());
    }
}

TEST_CASE("Redis URLs: TLS, Sentinel and Cluster") {
    RedisEndpoint ep;
    std::string why;
    REQUIRE(parse_redis_url("rediss://u:p@cache.example:6380/1?ssl_ca_certs=%2Fetc%2Fca.pem"
                            "&ssl_certfile=/c.pem&ssl_keyfile=/k.pem&ssl_server_name=redis.internal",
                            &ep, &why));
    CHECK(ep.topology == Topology::kSingle);
    CHECK(ep.tls.enabled);
    CHECK(ep.tls.verify);
    CHECK(ep.tls.ca_file == "/etc/ca.pem");
    CHECK(ep.tls.cert_file == "/c.pem");
    CHECK(ep.tls.key_file == "/k.pem");
    CHECK(ep.tls.server_name == "redis.internal");
    CHECK(ep.host == "cache.example");
    CHECK(ep.port == 6380);
    CHECK(ep.db == 1);
    CHECK(ep.describe() == "cache.example:6380 db 1 (TLS)");
    REQUIRE(parse_redis_url("rediss://h?ssl_cert_reqs=none&ssl_certfile=/both.pem", &ep, &why));
    CHECK(!ep.tls.verify);
    CHECK(ep.tls.key_file == "/both.pem");  // one PEM holding the certificate and its key

    REQUIRE(parse_redis_url("redis+sentinel://app:pw@s1,s2:26380,[::1]/my%20master/3"
                            "?sentinel_password=sp",
                            &ep, &why));
    CHECK(ep.topology == Topology::kSentinel);
    CHECK(!ep.tls.enabled);
    CHECK(ep.master_name == "my master");
    CHECK(ep.db == 3);
    CHECK(ep.user == "app");
    CHECK(ep.password == "pw");
    CHECK(ep.sentinel_password == "sp");
    REQUIRE(ep.seeds.size() == 3);
    CHECK(ep.seeds[0] == HostPort{"s1", 26379});
    CHECK(ep.seeds[1] == HostPort{"s2", 26380});
    CHECK(ep.seeds[2] == HostPort{"::1", 26379});
    const RedisEndpoint master = ep.node(HostPort{"10.0.0.5", 6379});
    CHECK(master.topology == Topology::kSingle);
    CHECK(master.describe() == "10.0.0.5:6379 db 3");
    CHECK(master.password == "pw");
    CHECK(master.sentinel_password.empty());
    CHECK(ep.describe().find("pw") == std::string::npos);
    CHECK(ep.describe().find("sp") == std::string::npos);

    REQUIRE(parse_redis_url("rediss+cluster://n1:7000,n2:7001?ssl_cert_reqs=none", &ep, &why));
    CHECK(ep.topology == Topology::kCluster);
    CHECK(ep.tls.enabled);
    REQUIRE(ep.seeds.size() == 2);
    CHECK(ep.seeds[1] == HostPort{"n2", 7001});
    CHECK(ep.node(ep.seeds[1]).tls.enabled);
    REQUIRE(parse_redis_url("redis+cluster://n1", &ep, &why));
    CHECK(ep.seeds[0].port == 6379);
}

TEST_CASE("shmcache globs become Redis MATCH patterns inside the namespace") {
    CHECK(redis_match_pattern("app:", "user:*", 6) == "app:user:*");
    CHECK(redis_match_pattern("", "a[!b]c", 6).size() == 1 + 1 + 255 * 2 + 1 + 1);  // all but b
    CHECK(redis_match_pattern("", "[ab]", 4) == "[\\a\\b]");
    CHECK(redis_match_pattern("", "[b-a]", 5) == "[]");    // an empty range matches nothing
    CHECK(redis_match_pattern("", "[]]", 3) == "[\\]]");   // a leading ] is a member
    CHECK(redis_match_pattern("", "[!]]", 4).find("\\]") == std::string::npos);  // all but ]
    CHECK(redis_match_pattern("", "a\\[!b", 5) == "a\\[!b");  // escaped: not a class
    CHECK(redis_match_pattern("we*rd[1]:", "*", 1) == "we\\*rd\\[1\\]:*");
    CHECK(redis_match_pattern("", "[\x00-\xff]", 5) == "?");
}

TEST_CASE("invalidation messages") {
    const std::string m = encode_invalidation(0xabcdef0123456789ull, 'D', std::string("k\0ey", 4));
    uint64_t origin = 0;
    char op = 0;
    std::string_view arg;
    REQUIRE(decode_invalidation(m, &origin, &op, &arg));
    CHECK(origin == 0xabcdef0123456789ull);
    CHECK(op == 'D');
    CHECK(arg == std::string_view("k\0ey", 4));
    REQUIRE(decode_invalidation(encode_invalidation(1, 'P', ""), &origin, &op, &arg));
    CHECK(arg.empty());
    for (std::string bad : {std::string(""), std::string("shmc1 "), m.substr(0, 20),
                            "shmc2" + m.substr(5), m.substr(0, 22) + "X" + m.substr(23),
                            std::string("shmc1 zzzzzzzzzzzzzzzz D k")})
        CHECK_FALSE(decode_invalidation(bad, &origin, &op, &arg));
}

TEST_CASE("circuit breaker: opens after the threshold, one trial per cooldown") {
    Breaker b(3, 100);
    uint64_t wait = 0;
    CHECK(b.admit(0, &wait) == Breaker::Verdict::kGo);
    CHECK_FALSE(b.on_failure(0));
    CHECK_FALSE(b.on_failure(1));
    CHECK(b.on_failure(2));  // opened: reported once
    CHECK(b.is_open());
    CHECK(b.admit(50, &wait) == Breaker::Verdict::kRefuse);
    CHECK(wait == 52);
    CHECK(b.admit(102, &wait) == Breaker::Verdict::kTrial);
    CHECK(b.admit(103, &wait) == Breaker::Verdict::kRefuse);  // one trial at a time
    CHECK_FALSE(b.on_failure(104));                             // failed trial: still open
    CHECK(b.admit(150, &wait) == Breaker::Verdict::kRefuse);
    CHECK(b.admit(204, &wait) == Breaker::Verdict::kTrial);
    CHECK(b.on_success());  // closed: reported once
    CHECK_FALSE(b.is_open());
    CHECK(b.admit(205, &wait) == Breaker::Verdict::kGo);
    CHECK_FALSE(b.on_success());
}

TEST_CASE("an L1 copy of a Redis value lives no longer than the Redis key") {
    // A key in its last millisecond: PTTL says 0 while GET still returns it. Served, not copied
    // (read as "no TTL", the copy would outlive the key by fill_ttl_ms).
    L1Copy c = l1_copy_from_pttl(0, 300000);
    CHECK_FALSE(c.fill);
    CHECK(c.ttl_left_ms == 1);
    c = l1_copy_from_pttl(-2, 300000);  // gone between GET and PTTL
    CHECK_FALSE(c.fill);
    c = l1_copy_from_pttl(-1, 300000);  // no TTL in Redis: the cap alone
    CHECK(c.fill);
    CHECK(c.ttl_ms == 300000);
    CHECK(c.ttl_left_ms == -1);
    c = l1_copy_from_pttl(-1, 0);
    CHECK(c.fill);
    CHECK(c.ttl_ms == 0);  // never expires in either tier
    c = l1_copy_from_pttl(1500, 300000);
    CHECK(c.fill);
    CHECK(c.ttl_ms == 1500);
    CHECK(c.ttl_left_ms == 1500);
    c = l1_copy_from_pttl(900000, 300000);
    CHECK(c.ttl_ms == 300000);
    CHECK(c.ttl_left_ms == 900000);
    c = l1_copy_from_pttl(7, 0);
    CHECK(c.ttl_ms == 7);
}

TEST_CASE("coherence epoch: a copy is dead after a bump and never comes back when the stamp byte repeats") {
    namespace shm = shmcache::shm;
    const std::string name = "shmc-t-l2unit-epoch-" + std::to_string(getpid());
    shmc_options o{};
    o.size_bytes = 1u << 20;
    o.n_stripes = 4;
    std::unique_ptr<shm::Engine> e;
    REQUIRE(shm::Engine::open(name.c_str(), &o, &e) == 0);
    shm::L2Coherence& coh = e->coherence();
    coh.valid_until_ms.store(UINT64_MAX);  // a live link, as the subscriber's lease would say
    char buf[16];
    size_t len = 0;
    auto fill = [&](const char* k) {
        return e->fill(k, strlen(k), "v", 1, SHMC_FLAG_FROM_L2, 0, e->fill_guard(k, strlen(k)));
    };
    auto served = [&](const char* k) {
        return e->get(k, strlen(k), buf, sizeof buf, &len, nullptr, nullptr) == 0;
    };
    REQUIRE(fill("a") == 0);
    REQUIRE(fill("b") == 0);
    REQUIRE(e->store("own", 3, "x", 1, SHMC_FLAG_FROM_L2, 0, shm::StoreMode::kSet) == 0);
    CHECK(served("a"));
    // A fill whose guard was taken before a bump is refused.
    const shm::FillGuard stale = e->fill_guard("c", 1);
    e->bump_l2_epoch();
    CHECK(e->fill("c", 1, "v", 1, SHMC_FLAG_FROM_L2, 0, stale) == SHMC_E_EXISTS);
    CHECK_FALSE(served("a"));  // dead (and removed)
    // "b" is never touched: 254 more bumps bring epoch8() back to its stamp; the sweeps must
    // have removed it by then.
    for (int i = 0; i < 254; ++i) e->bump_l2_epoch();
    CHECK(shm::epoch8(coh.epoch.load()) == shm::epoch8(0));
    CHECK_FALSE(served("b"));
    // An entry L1 wrote itself is never affected, whatever its flags.
    CHECK(served("own"));
    // The lease: a copy of the current epoch is served only while it runs.
    REQUIRE(fill("d") == 0);
    CHECK(served("d"));
    coh.valid_until_ms.store(0);
    CHECK_FALSE(served("d"));
    coh.valid_until_ms.store(UINT64_MAX);
    CHECK(served("d"));  // suspended, not dropped: the same link answered again
    e.reset();
    shmc_unlink(name.c_str(), 1);
}

TEST_CASE("cluster: CRC16 (XMODEM) and key slots, with hash tags, as in the cluster spec") {
    CHECK(crc16_xmodem("123456789") == 0x31C3);  // the spec's check value
    CHECK(crc16_xmodem("") == 0);
    CHECK(key_slot("123456789") == (0x31C3 & 16383));
    // Known slots (CLUSTER KEYSLOT on Redis 7).
    CHECK(key_slot("foo") == 12182);
    CHECK(key_slot("bar") == 5061);
    CHECK(key_slot("hello") == 866);
    // A tag: only what is inside the first {...} is hashed.
    CHECK(key_slot("{user1000}.following") == key_slot("{user1000}.followers"));
    CHECK(key_slot("{user1000}.following") == key_slot("user1000"));
    CHECK(hashed_part("{user1000}.following") == "user1000");
    // "{}" is no tag: the whole key is hashed; the first '{' and the first '}' after it count.
    CHECK(hashed_part("foo{}{bar}") == "foo{}{bar}");
    CHECK(key_slot("foo{}{bar}") == (crc16_xmodem("foo{}{bar}") & 16383));
    CHECK(hashed_part("foo{{bar}}zap") == "{bar");
    CHECK(hashed_part("foo{bar}{zap}") == "bar");
    CHECK(hashed_part("no tag}{") == "no tag}{");
    CHECK(hashed_part("open{only") == "open{only");
    for (const char* k : {"a", "t:k1", "t:__shmcache_lease__:k1", "\xff\x00"})
        CHECK(key_slot(k) < 16384);
}

TEST_CASE("cluster: which key routes a command") {
    using A = std::vector<std::string_view>;
    CHECK(command_slot(A{"GET", "foo"}) == 12182);
    CHECK(command_slot(A{"SET", "foo", "v", "PX", "100"}) == 12182);
    CHECK(command_slot(A{"UNLINK", "{foo}a", "{foo}b"}) == 12182);
    CHECK(command_slot(A{"EVAL", "return 1", "1", "foo", "token"}) == 12182);
    CHECK(command_slot(A{"EVAL", "return 1", "0"}) == -1);
    CHECK(command_slot(A{"PUBLISH", "chan", "msg"}) == -1);
    CHECK(command_slot(A{"PING"}) == -1);
}

TEST_CASE("cluster: MOVED, ASK, TRYAGAIN and CLUSTERDOWN replies") {
    Redirect r = parse_redirect("MOVED 3999 127.0.0.1:6381");
    CHECK(r.kind == Redirect::kMoved);
    CHECK(r.slot == 3999);
    CHECK(r.to == HostPort{"127.0.0.1", 6381});
    r = parse_redirect("ASK 16383 10.0.0.7:7002");
    CHECK(r.kind == Redirect::kAsk);
    CHECK(r.slot == 16383);
    CHECK(r.to == HostPort{"10.0.0.7", 7002});
    r = parse_redirect("MOVED 1 ::1:7000");  // an IPv6 address: the last colon is the port's
    CHECK(r.kind == Redirect::kMoved);
    CHECK(r.to == HostPort{"::1", 7000});
    r = parse_redirect("ASK 2 [::1]:7000");
    CHECK(r.kind == Redirect::kAsk);
    CHECK(r.to == HostPort{"::1", 7000});
    r = parse_redirect("MOVED 5 :7000");  // Redis 7: the address the client used
    CHECK(r.kind == Redirect::kMoved);
    CHECK(r.to.host.empty());
    CHECK(r.to.port == 7000);
    CHECK(parse_redirect("TRYAGAIN Multiple keys request during rehashing of slot").kind ==
          Redirect::kTryAgain);
    CHECK(parse_redirect("CLUSTERDOWN The cluster is down").kind == Redirect::kTryAgain);
    // Anything else is an ordinary error, malformed redirects included.
    CHECK(parse_redirect("ERR unknown command").kind == Redirect::kNone);
    CHECK(parse_redirect("WRONGTYPE Operation against a key").kind == Redirect::kNone);
    CHECK(parse_redirect("MOVED 16384 127.0.0.1:6381").kind == Redirect::kNone);
    CHECK(parse_redirect("MOVED x 127.0.0.1:6381").kind == Redirect::kNone);
    CHECK(parse_redirect("MOVED 12 127.0.0.1").kind == Redirect::kNone);
    CHECK(parse_redirect("MOVED 12 127.0.0.1:0").kind == Redirect::kNone);
    CHECK(parse_redirect("MOVEDX 12 127.0.0.1:1").kind == Redirect::kNone);
    CHECK(parse_redirect("ASKING").kind == Redirect::kNone);
}
