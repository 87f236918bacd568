/*
 * c_api_test.c - the public contract, exercised from plain C11 against shmcache.h alone.
 *
 * Compiling this file as C proves the header is real C (no C++ leaks into it); running it checks
 * each documented behaviour and error code of every call once, on a small private segment. It is
 * deliberately single-process except for the one place the contract is about other processes
 * (shmc_unlink refusing while someone else is attached).
 *
 * Every failed expectation prints file:line, the code, shmc_strerror and shmc_errmsg, and the
 * program exits non-zero at the end if any failed.
 */
#define _POSIX_C_SOURCE 200809L

#include <shmcache/shmcache.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures;

/* shmc_errmsg is valid only until the next shmcache call, and shmc_strerror is one: copy it. */
static void report(const char *file, int line, const char *what, int rc, int expected) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", shmc_errmsg());
    fprintf(stderr, "%s:%d: %s returned %d (%s; errmsg: \"%s\"), expected %d (%s)\n", file, line,
            what, rc, shmc_strerror(rc), msg, expected, shmc_strerror(expected));
    failures++;
}

#define EXPECT_RC(call, expected)                                                  \
    do {                                                                           \
        int rc_ = (call);                                                          \
        if (rc_ != (expected)) report(__FILE__, __LINE__, #call, rc_, (expected)); \
    } while (0)

#define EXPECT(cond)                                                                       \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: expectation failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                                    \
        }                                                                                  \
    } while (0)

/* Nothing below can run without a handle. */
#define REQUIRE_RC(call)                               \
    do {                                               \
        int rc_ = (call);                              \
        if (rc_ != 0) {                                \
            report(__FILE__, __LINE__, #call, rc_, 0); \
            exit(1);                                   \
        }                                              \
    } while (0)

static char g_name[128];

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int set_str(shmc_cache *c, const char *k, const char *v, uint32_t flags, uint64_t ttl) {
    return shmc_set(c, k, strlen(k), v, strlen(v), flags, ttl);
}

/* Get k into a NUL-terminated buffer; returns the shmc_get code. */
static int get_str(shmc_cache *c, const char *k, char *buf, size_t cap, size_t *len) {
    int rc = shmc_get(c, k, strlen(k), buf, cap - 1, len, NULL, NULL);
    if (rc == 0) buf[*len] = 0;
    return rc;
}

static shmc_stats stats_of(shmc_cache *c) {
    shmc_stats st;
    memset(&st, 0, sizeof st);
    EXPECT_RC(shmc_get_stats(c, &st), 0);
    return st;
}

static void test_version_and_strerror(void) {
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", SHMC_VERSION_MAJOR, SHMC_VERSION_MINOR,
             SHMC_VERSION_PATCH);
    EXPECT(shmc_version() != NULL && strcmp(shmc_version(), want) == 0);
    for (int code = 0; code >= SHMC_E_NO_ROOM; --code) {
        const char *s = shmc_strerror(code);
        if (!s || !*s) {
            fprintf(stderr, "shmc_strerror(%d) is empty\n", code);
            failures++;
        }
    }
    EXPECT(shmc_strerror(ENOENT) && *shmc_strerror(ENOENT)); /* positive: an errno */
    EXPECT(shmc_strerror(-9999) != NULL);                    /* unknown: still not NULL */
    EXPECT(shmc_errmsg() != NULL);
}

static void test_options_default(void) {
    shmc_options o;
    memset(&o, 0xab, sizeof o); /* every field must be written */
    shmc_options_default(&o);
    EXPECT(o.size_bytes == 64u * 1024 * 1024);
    EXPECT(o.max_entries == 0);
    EXPECT(o.n_stripes == 64);
    EXPECT(o.strategy == SHMC_STRATEGY_DEFAULT);
    EXPECT(o.lock_timeout_ms == 50);
    EXPECT(o.mode == 0600);
    EXPECT(o.flags == 0);
    EXPECT(o.max_value_len == 0);
    for (size_t i = 0; i < sizeof o.reserved; i++) EXPECT(o.reserved[i] == 0);
}

static shmc_options small_opts(void) {
    shmc_options o;
    shmc_options_default(&o);
    o.size_bytes = 4u * 1024 * 1024;
    o.n_stripes = 8;
    return o;
}

static void test_open_errors(void) {
    char name[160];
    shmc_cache *c = NULL;
    shmc_close(NULL); /* accepted */

    snprintf(name, sizeof name, "%s-missing", g_name);
    shmc_unlink(name, 1);
    shmc_options o = small_opts();
    o.flags = SHMC_OPEN_NO_CREATE;
    EXPECT_RC(shmc_open(name, &o, &c), SHMC_E_NO_SEGMENT);
    EXPECT(c == NULL);
    EXPECT_RC(shmc_unlink(name, 0), SHMC_E_NO_SEGMENT);

    snprintf(name, sizeof name, "%s-bad", g_name);
    o = small_opts();
    o.n_stripes = 3; /* not a power of two */
    EXPECT_RC(shmc_open(name, &o, &c), SHMC_E_INVAL);
    o = small_opts();
    o.size_bytes = 1024; /* below the 1 MiB minimum */
    EXPECT_RC(shmc_open(name, &o, &c), SHMC_E_INVAL);
    EXPECT_RC(shmc_open(name, NULL, NULL), SHMC_E_INVAL);
    shmc_unlink(name, 1);

    /* Far more than /dev/shm holds: refused up front (tmpfs checks the size before reserving),
     * with a message, and nothing left behind. */
    snprintf(name, sizeof name, "%s-huge", g_name);
    o = small_opts();
    o.size_bytes = 1ull << 40;
    EXPECT_RC(shmc_open(name, &o, &c), SHMC_E_NOSPC);
    EXPECT(shmc_errmsg()[0] != 0); /* names the size asked and what is free */
    EXPECT(c == NULL);
    o.flags = SHMC_OPEN_NO_CREATE;
    EXPECT_RC(shmc_open(name, &o, &c), SHMC_E_NO_SEGMENT);
    shmc_unlink(name, 1);
}

static void test_set_get_add_del(shmc_cache *c) {
    char buf[256];
    size_t len = 0;
    uint32_t flags = 0;
    int64_t ttl = 0;

    EXPECT_RC(shmc_set(c, "alpha", 5, "one", 3, 7, 0), 0);
    EXPECT_RC(shmc_get(c, "alpha", 5, buf, sizeof buf, &len, &flags, &ttl), 0);
    EXPECT(len == 3 && memcmp(buf, "one", 3) == 0);
    EXPECT(flags == 7);
    EXPECT(ttl == -1);                                                        /* no TTL */
    EXPECT_RC(shmc_get(c, "alpha", 5, buf, sizeof buf, &len, NULL, NULL), 0); /* NULL outs ok */

    EXPECT_RC(shmc_set(c, "alpha", 5, "uno", 3, 8, 0), 0); /* replace */
    EXPECT_RC(shmc_get(c, "alpha", 5, buf, sizeof buf, &len, &flags, NULL), 0);
    EXPECT(len == 3 && memcmp(buf, "uno", 3) == 0 && flags == 8);

    EXPECT_RC(shmc_add(c, "alpha", 5, "x", 1, 0, 0), SHMC_E_EXISTS);
    EXPECT_RC(shmc_get(c, "alpha", 5, buf, sizeof buf, &len, NULL, NULL), 0);
    EXPECT(len == 3 && memcmp(buf, "uno", 3) == 0); /* add did not overwrite */
    EXPECT_RC(shmc_add(c, "beta", 4, "two", 3, 0, 0), 0);

    EXPECT_RC(shmc_del(c, "alpha", 5), 0);
    EXPECT_RC(shmc_del(c, "alpha", 5), SHMC_E_NOTFOUND);
    EXPECT_RC(shmc_get(c, "alpha", 5, buf, sizeof buf, &len, NULL, NULL), SHMC_E_NOTFOUND);
    EXPECT_RC(shmc_del(c, "beta", 4), 0);

    /* Bad arguments. */
    EXPECT_RC(shmc_set(c, "", 0, "v", 1, 0, 0), SHMC_E_INVAL);
    EXPECT_RC(shmc_get(c, NULL, 3, buf, sizeof buf, &len, NULL, NULL), SHMC_E_INVAL);
    EXPECT_RC(shmc_get(NULL, "k", 1, buf, sizeof buf, &len, NULL, NULL), SHMC_E_INVAL);
    EXPECT_RC(shmc_set(NULL, "k", 1, "v", 1, 0, 0), SHMC_E_INVAL);
}

static void test_buffer_too_small(shmc_cache *c) {
    char buf[32];
    size_t len = 0;
    memset(buf, 'Z', sizeof buf);
    EXPECT_RC(set_str(c, "ten", "0123456789", 0, 0), 0);
    EXPECT_RC(shmc_get(c, "ten", 3, buf, 3, &len, NULL, NULL), SHMC_E_BUFFER_TOO_SMALL);
    EXPECT(len == 10);
    EXPECT(buf[3] == 'Z'); /* nothing written past cap */
    len = 0;
    EXPECT_RC(shmc_get(c, "ten", 3, NULL, 0, &len, NULL, NULL), SHMC_E_BUFFER_TOO_SMALL);
    EXPECT(len == 10);
    EXPECT_RC(shmc_get(c, "ten", 3, buf, 10, &len, NULL, NULL), 0); /* exact size suffices */
    EXPECT(len == 10 && memcmp(buf, "0123456789", 10) == 0);
    EXPECT_RC(shmc_del(c, "ten", 3), 0);
}

static void test_binary_keys(shmc_cache *c) {
    const char k1[] = {'a', 0, 'b'}, k2[] = {'a', 0, 'c'}, k3[] = {'a'};
    const char v1[] = {0, 1, 0, 2}, v2[] = {'x', 0};
    char buf[16];
    size_t len = 0;
    EXPECT_RC(shmc_set(c, k1, 3, v1, 4, 0, 0), 0);
    EXPECT_RC(shmc_set(c, k2, 3, v2, 2, 0, 0), 0);
    EXPECT_RC(shmc_get(c, k1, 3, buf, sizeof buf, &len, NULL, NULL), 0);
    EXPECT(len == 4 && memcmp(buf, v1, 4) == 0);
    EXPECT_RC(shmc_get(c, k2, 3, buf, sizeof buf, &len, NULL, NULL), 0);
    EXPECT(len == 2 && memcmp(buf, v2, 2) == 0);
    EXPECT_RC(shmc_get(c, k3, 1, buf, sizeof buf, &len, NULL, NULL), SHMC_E_NOTFOUND);
    EXPECT_RC(shmc_get(c, "a", 2, buf, sizeof buf, &len, NULL, NULL), SHMC_E_NOTFOUND);
    EXPECT_RC(shmc_del(c, k1, 3), 0);
    EXPECT_RC(shmc_get(c, k2, 3, buf, sizeof buf, &len, NULL, NULL), 0); /* k2 untouched */
    EXPECT_RC(shmc_del(c, k2, 3), 0);
}

static void test_key_limits(shmc_cache *c) {
    static char key[SHMC_MAX_KEY_LEN + 2];
    char buf[16];
    size_t len = 0;
    memset(key, 'k', sizeof key);
    EXPECT_RC(set_str(c, "keeper", "kept", 0, 0), 0);
    EXPECT_RC(shmc_set(c, key, SHMC_MAX_KEY_LEN, "max", 3, 0, 0), 0);
    EXPECT_RC(shmc_get(c, key, SHMC_MAX_KEY_LEN, buf, sizeof buf, &len, NULL, NULL), 0);
    EXPECT(len == 3 && memcmp(buf, "max", 3) == 0);
    uint64_t before = stats_of(c).entries;

    EXPECT_RC(shmc_set(c, key, SHMC_MAX_KEY_LEN + 1, "v", 1, 0, 0), SHMC_E_KEY_TOO_LONG);
    EXPECT_RC(shmc_add(c, key, SHMC_MAX_KEY_LEN + 1, "v", 1, 0, 0), SHMC_E_KEY_TOO_LONG);
    EXPECT_RC(shmc_get(c, key, SHMC_MAX_KEY_LEN + 1, buf, sizeof buf, &len, NULL, NULL),
              SHMC_E_KEY_TOO_LONG);
    EXPECT_RC(shmc_del(c, key, SHMC_MAX_KEY_LEN + 1), SHMC_E_KEY_TOO_LONG);
    EXPECT_RC(shmc_touch(c, key, SHMC_MAX_KEY_LEN + 1, 0), SHMC_E_KEY_TOO_LONG);
    EXPECT_RC(shmc_incr(c, key, SHMC_MAX_KEY_LEN + 1, 1, NULL), SHMC_E_KEY_TOO_LONG);

    /* Nothing else lost: the longest legal key and an unrelated key are still there. */
    EXPECT(stats_of(c).entries == before);
    EXPECT_RC(shmc_get(c, key, SHMC_MAX_KEY_LEN, buf, sizeof buf, &len, NULL, NULL), 0);
    EXPECT_RC(get_str(c, "keeper", buf, sizeof buf, &len), 0);
    EXPECT(strcmp(buf, "kept") == 0);
    EXPECT_RC(shmc_del(c, key, SHMC_MAX_KEY_LEN), 0);
    EXPECT_RC(shmc_del(c, "keeper", 6), 0);
}

static void test_value_limits(shmc_cache *c, const shmc_info *info) {
    size_t max = info->max_value_len;
    char *big = malloc(max + 2);
    char *back = malloc(max + 2);
    size_t len = 0;
    if (!big || !back) {
        fprintf(stderr, "malloc failed\n");
        exit(1);
    }
    for (size_t i = 0; i < max + 1; i++) big[i] = (char)(i * 31 + 7);
    EXPECT_RC(set_str(c, "big", "small", 0, 0), 0);
    EXPECT_RC(shmc_set(c, "big", 3, big, max + 1, 0, 0), SHMC_E_VALUE_TOO_LARGE);
    EXPECT_RC(shmc_add(c, "big2", 4, big, max + 1, 0, 0), SHMC_E_VALUE_TOO_LARGE);
    EXPECT_RC(shmc_get(c, "big", 3, back, max + 2, &len, NULL, NULL), 0);
    EXPECT(len == 5 && memcmp(back, "small", 5) == 0); /* previous value unchanged */
    /* Exactly max_value_len fits (after eviction if need be). */
    EXPECT_RC(shmc_set(c, "big", 3, big, max, 0, 0), 0);
    EXPECT_RC(shmc_get(c, "big", 3, back, max + 2, &len, NULL, NULL), 0);
    EXPECT(len == max && memcmp(back, big, max) == 0);
    EXPECT_RC(shmc_del(c, "big", 3), 0);
    free(big);
    free(back);
}

static void test_ttl_touch(shmc_cache *c) {
    char buf[32];
    size_t len = 0;
    int64_t ttl = 0;
    EXPECT_RC(set_str(c, "short", "v", 0, 300), 0);
    EXPECT_RC(shmc_get(c, "short", 5, buf, sizeof buf, &len, NULL, &ttl), 0);
    EXPECT(ttl > 0 && ttl <= 300);
    EXPECT_RC(set_str(c, "long", "v", 0, 0), 0);
    EXPECT_RC(shmc_touch(c, "long", 4, 10000), 0);
    EXPECT_RC(shmc_get(c, "long", 4, buf, sizeof buf, &len, NULL, &ttl), 0);
    EXPECT(ttl > 9000 && ttl <= 10000);
    EXPECT_RC(shmc_touch(c, "long", 4, 0), 0); /* 0: never expires */
    EXPECT_RC(shmc_get(c, "long", 4, buf, sizeof buf, &len, NULL, &ttl), 0);
    EXPECT(ttl == -1);
    EXPECT_RC(shmc_touch(c, "absent", 6, 100), SHMC_E_NOTFOUND);

    shmc_stats before = stats_of(c);
    sleep_ms(450);
    EXPECT_RC(shmc_get(c, "short", 5, buf, sizeof buf, &len, NULL, &ttl), SHMC_E_NOTFOUND);
    EXPECT_RC(shmc_touch(c, "short", 5, 1000), SHMC_E_NOTFOUND); /* expired = absent */
    EXPECT_RC(shmc_add(c, "short", 5, "again", 5, 0, 0), 0);     /* add over an expired key */
    EXPECT_RC(get_str(c, "short", buf, sizeof buf, &len), 0);
    EXPECT(strcmp(buf, "again") == 0);
    shmc_stats after = stats_of(c);
    EXPECT(after.misses > before.misses);
    EXPECT(after.expirations > before.expirations);
    EXPECT_RC(shmc_del(c, "short", 5), 0);
    EXPECT_RC(shmc_del(c, "long", 4), 0);
}

static void test_incr(shmc_cache *c) {
    char buf[64];
    size_t len = 0;
    uint32_t flags = 0;
    int64_t r = 0, ttl = 0;
    EXPECT_RC(set_str(c, "n", "10", 5, 0), 0);
    EXPECT_RC(shmc_incr(c, "n", 1, 5, &r), 0);
    EXPECT(r == 15);
    EXPECT_RC(shmc_incr(c, "n", 1, -20, &r), 0);
    EXPECT(r == -5);
    EXPECT_RC(shmc_incr(c, "n", 1, 0, NULL), 0);
    EXPECT_RC(shmc_get(c, "n", 1, buf, sizeof buf - 1, &len, &flags, NULL), 0);
    buf[len] = 0;
    EXPECT(strcmp(buf, "-5") == 0);
    EXPECT(flags == 5); /* flags kept */

    EXPECT_RC(set_str(c, "nt", "1", 0, 60000), 0);
    EXPECT_RC(shmc_incr(c, "nt", 2, 1, &r), 0);
    EXPECT_RC(shmc_get(c, "nt", 2, buf, sizeof buf, &len, NULL, &ttl), 0);
    EXPECT(ttl > 50000 && ttl <= 60000); /* TTL kept */

    EXPECT_RC(shmc_incr(c, "absent", 6, 1, &r), SHMC_E_NOTFOUND);
    EXPECT_RC(set_str(c, "s", "abc", 0, 0), 0);
    EXPECT_RC(shmc_incr(c, "s", 1, 1, &r), SHMC_E_NOT_NUMBER);
    EXPECT_RC(set_str(c, "s", "12x", 0, 0), 0);
    EXPECT_RC(shmc_incr(c, "s", 1, 1, &r), SHMC_E_NOT_NUMBER);
    EXPECT_RC(set_str(c, "s", "99999999999999999999", 0, 0), 0); /* above int64 */
    EXPECT_RC(shmc_incr(c, "s", 1, 1, &r), SHMC_E_NOT_NUMBER);

    EXPECT_RC(set_str(c, "max", "9223372036854775807", 0, 0), 0);
    EXPECT_RC(shmc_incr(c, "max", 3, 1, &r), SHMC_E_RANGE);
    EXPECT_RC(get_str(c, "max", buf, sizeof buf, &len), 0);
    EXPECT(strcmp(buf, "9223372036854775807") == 0); /* unchanged */
    EXPECT_RC(set_str(c, "min", "-9223372036854775808", 0, 0), 0);
    EXPECT_RC(shmc_incr(c, "min", 3, -1, &r), SHMC_E_RANGE);
    EXPECT_RC(shmc_incr(c, "min", 3, INT64_MAX, &r), 0);
    EXPECT(r == -1);
    const char *keys[] = {"n", "nt", "s", "max", "min"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        EXPECT_RC(shmc_del(c, keys[i], strlen(keys[i])), 0);
}

static void test_glob(void) {
    EXPECT(shmc_glob_match("user:*", 6, "user:1", 6) == 1);
    EXPECT(shmc_glob_match("user:?", 6, "user:10", 7) == 0);
    EXPECT(shmc_glob_match("[a-c]x", 6, "bx", 2) == 1);
    EXPECT(shmc_glob_match("[a-c]x", 6, "dx", 2) == 0);
    EXPECT(shmc_glob_match("[!a]x", 5, "ax", 2) == 0);
    EXPECT(shmc_glob_match("[^a]x", 5, "bx", 2) == 1);
    EXPECT(shmc_glob_match("a\\*b", 4, "a*b", 3) == 1);
    EXPECT(shmc_glob_match("a\\*b", 4, "axb", 3) == 0);
    EXPECT(shmc_glob_match("a\0*", 3, "a\0zz", 4) == 1); /* binary-safe */
    EXPECT(shmc_glob_match("[abc", 4, "a", 1) == SHMC_E_BAD_PATTERN);
    EXPECT(shmc_glob_match("abc\\", 4, "abc", 3) == SHMC_E_BAD_PATTERN);
}

static void test_purge(shmc_cache *c) {
    const char *keys[] = {"user:1", "user:2", "user:10", "session:1", "a*b", "axb", "bx", "dx"};
    size_t n = sizeof keys / sizeof keys[0];
    uint64_t removed = 99;
    char buf[16];
    size_t len;
    for (size_t i = 0; i < n; i++) EXPECT_RC(set_str(c, keys[i], "v", 0, 0), 0);
    EXPECT_RC(shmc_purge(c, "user:?", 6, &removed), 0);
    EXPECT(removed == 2);
    EXPECT_RC(get_str(c, "user:10", buf, sizeof buf, &len), 0);
    EXPECT_RC(shmc_purge(c, "user:*", 6, &removed), 0);
    EXPECT(removed == 1);
    EXPECT_RC(shmc_purge(c, "a\\*b", 4, &removed), 0); /* escaped: only the literal "a*b" */
    EXPECT(removed == 1);
    EXPECT_RC(get_str(c, "axb", buf, sizeof buf, &len), 0);
    EXPECT_RC(shmc_purge(c, "[a-c]x", 6, &removed), 0);
    EXPECT(removed == 1); /* bx, not dx */
    EXPECT_RC(get_str(c, "dx", buf, sizeof buf, &len), 0);

    removed = 99;
    EXPECT_RC(shmc_purge(c, "[abc", 4, &removed), SHMC_E_BAD_PATTERN);
    EXPECT_RC(shmc_purge(c, "abc\\", 4, &removed), SHMC_E_BAD_PATTERN);
    EXPECT_RC(shmc_purge(c, NULL, 3, &removed), SHMC_E_INVAL);
    EXPECT_RC(get_str(c, "session:1", buf, sizeof buf, &len),
              0);                                     /* a bad pattern removed nothing */
    EXPECT_RC(shmc_purge(c, "nothing*", 8, NULL), 0); /* removed may be NULL */
    EXPECT_RC(shmc_purge(c, "*", 1, &removed), 0);
    EXPECT(removed == 3); /* session:1, axb, dx */
    EXPECT(stats_of(c).entries == 0);
}

struct scan_ctx {
    int seen, stop_after;
    size_t value_bytes;
    int bad;
};

static int scan_cb(const void *key, size_t key_len, size_t value_len, int64_t ttl_left_ms,
                   void *ctx) {
    struct scan_ctx *s = ctx;
    s->seen++;
    s->value_bytes += value_len;
    if (key_len < 6 || memcmp(key, "scan:", 5) != 0) {
        s->bad++;
    } else if (memcmp(key, "scan:t", 6) == 0 ? !(ttl_left_ms > 0 && ttl_left_ms <= 60000)
                                             : ttl_left_ms != -1) {
        s->bad++;
    }
    return s->stop_after && s->seen >= s->stop_after;
}

static void test_scan(shmc_cache *c) {
    EXPECT_RC(set_str(c, "scan:a", "1", 0, 0), 0);
    EXPECT_RC(set_str(c, "scan:b", "22", 0, 0), 0);
    EXPECT_RC(set_str(c, "scan:t", "333", 0, 60000), 0);
    EXPECT_RC(set_str(c, "other", "4444", 0, 0), 0);
    struct scan_ctx s = {0, 0, 0, 0};
    EXPECT_RC(shmc_scan(c, "scan:*", 6, scan_cb, &s), 0);
    EXPECT(s.seen == 3 && s.value_bytes == 6 && s.bad == 0);
    struct scan_ctx one = {0, 1, 0, 0};
    EXPECT_RC(shmc_scan(c, "*", 1, scan_cb, &one), 0);
    EXPECT(one.seen == 1); /* nonzero from the callback stops the scan */
    EXPECT_RC(shmc_scan(c, "[x", 2, scan_cb, &s), SHMC_E_BAD_PATTERN);
    EXPECT_RC(shmc_scan(c, "*", 1, NULL, &s), SHMC_E_INVAL);
}

static void test_clear_and_stats(shmc_cache *c) {
    uint64_t removed = 0;
    char buf[16];
    size_t len;
    EXPECT_RC(shmc_clear(c, NULL), 0);
    shmc_stats s0 = stats_of(c);
    EXPECT(s0.entries == 0 && s0.bytes_data == 0);

    EXPECT_RC(set_str(c, "s1", "aaaa", 0, 0), 0);   /* 2 + 4 bytes */
    EXPECT_RC(set_str(c, "s22", "bbbbb", 0, 0), 0); /* 3 + 5 bytes */
    EXPECT_RC(get_str(c, "s1", buf, sizeof buf, &len), 0);
    EXPECT_RC(get_str(c, "nope", buf, sizeof buf, &len), SHMC_E_NOTFOUND);
    EXPECT_RC(shmc_del(c, "s22", 3), 0);
    EXPECT_RC(set_str(c, "s22", "bbbbb", 0, 0), 0);
    shmc_stats s1 = stats_of(c);
    EXPECT(s1.sets - s0.sets == 3);
    EXPECT(s1.hits - s0.hits == 1);
    EXPECT(s1.misses - s0.misses == 1);
    EXPECT(s1.deletes - s0.deletes == 1);
    EXPECT(s1.entries == 2);
    EXPECT(s1.bytes_data == 14);
    EXPECT(s1.bytes_used >= s1.bytes_data && s1.bytes_used <= s1.bytes_capacity);
    EXPECT(s1.lock_recoveries == 0 && s1.lock_timeouts == 0);

    /* The per-stripe figures add up to the total. */
    shmc_info info;
    EXPECT_RC(shmc_get_info(c, &info), 0);
    uint64_t entries = 0, sets = 0;
    for (uint32_t i = 0; i < info.n_stripes; i++) {
        shmc_stats st;
        EXPECT_RC(shmc_stripe_stats(c, i, &st), 0);
        entries += st.entries;
        sets += st.sets;
    }
    EXPECT(entries == s1.entries && sets == s1.sets);
    shmc_stats st;
    EXPECT_RC(shmc_stripe_stats(c, info.n_stripes, &st), SHMC_E_INVAL);

    EXPECT_RC(shmc_clear(c, &removed), 0);
    EXPECT(removed == 2);
    EXPECT(stats_of(c).entries == 0);
    EXPECT_RC(get_str(c, "s1", buf, sizeof buf, &len), SHMC_E_NOTFOUND);
}

static void test_info(shmc_cache *c, shmc_info *info) {
    memset(info, 0, sizeof *info);
    EXPECT_RC(shmc_get_info(c, info), 0);
    EXPECT(strcmp(info->name, g_name) == 0);
    EXPECT(info->layout_version > 0);
    EXPECT(info->n_stripes == 8);
    EXPECT(info->size_bytes == 4u * 1024 * 1024);
    EXPECT(info->max_entries == 0);
    EXPECT(info->max_key_len == SHMC_MAX_KEY_LEN);
    EXPECT(info->max_value_len > 0 && info->max_value_len <= 1024u * 1024);
    EXPECT(info->strategy == SHMC_STRATEGY_WTINYLFU); /* DEFAULT resolved */
    EXPECT(info->block_size == 16);
    EXPECT(info->owner_uid == (uint32_t)getuid());
    EXPECT((info->mode & 0777) == 0600);
    EXPECT(info->attached == 1);
    EXPECT(info->creator_pid == (uint32_t)getpid());
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t now_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
    EXPECT(info->created_unix_ms <= now_ms && info->created_unix_ms + 60000 > now_ms);
}

static void test_check(shmc_cache *c, const shmc_info *info) {
    shmc_check_report rep;
    memset(&rep, 0xff, sizeof rep);
    EXPECT_RC(set_str(c, "c1", "x", 0, 0), 0);
    EXPECT_RC(set_str(c, "c2", "y", 0, 0), 0);
    EXPECT_RC(shmc_check(c, &rep), 0);
    EXPECT(rep.stripes_checked == info->n_stripes);
    EXPECT(rep.stripes_damaged == 0 && rep.stripes_repaired == 0 && rep.stripes_skipped == 0);
    EXPECT(rep.entries_checked == 2 && rep.entries_dropped == 0);
    EXPECT_RC(shmc_check(c, NULL), 0);
    EXPECT_RC(shmc_clear(c, NULL), 0);
}

/* Geometry comes from the creator: a second open with other options sees the first's. Each open
 * handle counts as attached. */
static void test_second_handle(shmc_cache *c) {
    shmc_options o = small_opts();
    o.n_stripes = 16;
    o.size_bytes = 8u * 1024 * 1024;
    shmc_cache *c2 = NULL;
    REQUIRE_RC(shmc_open(g_name, &o, &c2));
    shmc_info info;
    EXPECT_RC(shmc_get_info(c2, &info), 0);
    EXPECT(info.n_stripes == 8 && info.size_bytes == 4u * 1024 * 1024);
    EXPECT(info.attached == 2);
    EXPECT_RC(shmc_set(c2, "via2", 4, "x", 1, 0, 0), 0);
    char buf[4];
    size_t len;
    EXPECT_RC(shmc_get(c, "via2", 4, buf, sizeof buf, &len, NULL, NULL), 0); /* one segment */
    shmc_close(c2);
    EXPECT_RC(shmc_get_info(c, &info), 0);
    EXPECT(info.attached == 1);
    EXPECT_RC(shmc_del(c, "via2", 4), 0);
}

/* Each strategy can be chosen at creation and then works. */
static void test_strategies(void) {
    for (uint32_t s = SHMC_STRATEGY_LRU; s <= SHMC_STRATEGY_WTINYLFU; s++) {
        char name[160];
        snprintf(name, sizeof name, "%s-strat%u", g_name, s);
        shmc_unlink(name, 1);
        shmc_options o = small_opts();
        o.size_bytes = 1u * 1024 * 1024;
        o.n_stripes = 2;
        o.strategy = s;
        o.max_entries = 32;
        shmc_cache *c = NULL;
        REQUIRE_RC(shmc_open(name, &o, &c));
        shmc_info info;
        EXPECT_RC(shmc_get_info(c, &info), 0);
        EXPECT(info.strategy == s && info.max_entries == 32);
        char key[32], buf[32];
        size_t len;
        for (int i = 0; i < 200; i++) { /* far beyond max_entries: eviction by count */
            snprintf(key, sizeof key, "key%d", i);
            EXPECT_RC(set_str(c, key, key, 0, (i % 3) ? 0 : 60000), 0);
            EXPECT_RC(get_str(c, key, buf, sizeof buf, &len), 0); /* just written: present */
        }
        shmc_stats st = stats_of(c);
        EXPECT(st.entries <= 32 && st.evictions > 0);
        EXPECT_RC(shmc_check(c, NULL), 0);
        shmc_close(c);
        EXPECT_RC(shmc_unlink(name, 0), 0);
    }
}

/* $SHMCACHE_NAME names the segment when name is NULL or "". */
static void test_env_name(void) {
    char name[160];
    snprintf(name, sizeof name, "%s-env", g_name);
    setenv("SHMCACHE_NAME", name, 1);
    shmc_options o = small_opts();
    shmc_cache *c = NULL;
    REQUIRE_RC(shmc_open(NULL, &o, &c));
    shmc_info info;
    EXPECT_RC(shmc_get_info(c, &info), 0);
    EXPECT(strcmp(info.name, name) == 0);
    shmc_close(c);
    c = NULL;
    REQUIRE_RC(shmc_open("", &o, &c));
    EXPECT_RC(shmc_get_info(c, &info), 0);
    EXPECT(strcmp(info.name, name) == 0);
    shmc_close(c);
    EXPECT_RC(shmc_unlink(NULL, 0), 0);
    unsetenv("SHMCACHE_NAME");
}

/* shmc_unlink refuses while another process is attached, unless forced. */
static void test_unlink_busy(void) {
    char name[160];
    int go[2];
    snprintf(name, sizeof name, "%s-busy", g_name);
    shmc_unlink(name, 1);
    if (pipe(go) != 0) {
        perror("pipe");
        exit(1);
    }
    shmc_options o = small_opts();
    shmc_cache *c = NULL;
    REQUIRE_RC(shmc_open(name, &o, &c));
    shmc_close(c);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        shmc_cache *cc = NULL;
        char ch = shmc_open(name, &o, &cc) == 0 ? 'y' : 'n';
        if (write(go[1], &ch, 1) != 1) _exit(1);
        pause(); /* attached until killed */
        _exit(0);
    }
    char ch = 0;
    if (read(go[0], &ch, 1) != 1 || ch != 'y') {
        fprintf(stderr, "child could not open %s\n", name);
        failures++;
    }
    EXPECT_RC(shmc_unlink(name, 0), SHMC_E_BUSY);
    EXPECT_RC(shmc_unlink(name, 1), 0);
    EXPECT_RC(shmc_unlink(name, 1), SHMC_E_NO_SEGMENT);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(go[0]);
    close(go[1]);
}

/* Single flight from C: the miss-compute-complete cycle, a stale value, abandon, the stats. */
static void test_fetch(shmc_cache *c) {
    shmc_fetch_options o;
    shmc_fetch_options_default(&o);
    EXPECT(o.tiers == SHMC_TIER_L1 && o.lease_ms == 5000 && o.wait_ms == 0 &&
           o.xfetch_beta == 0.0);
    o.ttl_ms = 30;
    o.stale_ttl_ms = 60000;
    char buf[32];
    shmc_fetch_result r;
    EXPECT_RC(shmc_fetch(c, "fk", 2, buf, sizeof buf, &o, &r), 0);
    EXPECT(r.outcome == SHMC_FETCH_COMPUTE && r.lease != 0);
    EXPECT_RC(shmc_fetch_complete(c, "fk", 2, "v1", 2, 5, 3, &o, r.lease), 0);
    EXPECT_RC(shmc_fetch(c, "fk", 2, buf, sizeof buf, &o, &r), 0);
    EXPECT(r.outcome == SHMC_FETCH_HIT && r.value_len == 2 && memcmp(buf, "v1", 2) == 0);
    EXPECT(r.flags == 5 && r.served_by == SHMC_TIER_L1 && r.lease == 0);
    sleep_ms(50);
    EXPECT_RC(shmc_fetch(c, "fk", 2, buf, sizeof buf, &o, &r), 0);
    EXPECT(r.outcome == SHMC_FETCH_STALE_REFRESH && r.lease != 0);
    uint64_t lease = r.lease;
    EXPECT_RC(shmc_fetch(c, "fk", 2, buf, sizeof buf, &o, &r), 0);
    EXPECT(r.outcome == SHMC_FETCH_STALE && r.lease == 0);
    o.flags = SHMC_FETCH_NO_WAIT; /* a free lease on a cold key; a held one is BUSY */
    EXPECT_RC(shmc_fetch(c, "nw", 2, buf, sizeof buf, &o, &r), 0);
    EXPECT(r.outcome == SHMC_FETCH_COMPUTE && r.lease != 0);
    uint64_t nw_lease = r.lease;
    EXPECT_RC(shmc_fetch(c, "nw", 2, buf, sizeof buf, &o, &r), 0);
    EXPECT(r.outcome == SHMC_FETCH_BUSY && r.lease == 0 && r.waited_ms == 0);
    EXPECT_RC(shmc_fetch_abandon(c, "nw", 2, nw_lease), 0);
    o.flags = 0;
    size_t len = 0;
    EXPECT_RC(shmc_get(c, "fk", 2, buf, sizeof buf, &len, NULL, NULL), SHMC_E_NOTFOUND);
    EXPECT_RC(shmc_fetch_abandon(c, "fk", 2, lease), 0);
    shmc_flight_stats fs;
    EXPECT_RC(shmc_flight_get_stats(c, &fs), 0);
    EXPECT(fs.leases_granted == 3 && fs.stale_served == 2 && fs.abandoned == 2);
    EXPECT(fs.leases_held == 0 && fs.lease_slots > 0);
    EXPECT_RC(shmc_del(c, "fk", 2), SHMC_E_NOTFOUND); /* stale: removed, reported absent */
}

int main(void) {
    snprintf(g_name, sizeof g_name, "shmc-t-capi-%d", (int)getpid());
    shmc_unlink(g_name, 1);

    test_version_and_strerror();
    test_options_default();
    test_open_errors();
    test_glob();

    shmc_options o = small_opts();
    shmc_cache *c = NULL;
    REQUIRE_RC(shmc_open(g_name, &o, &c));
    shmc_info info;
    test_info(c, &info);
    test_check(c, &info);
    test_set_get_add_del(c);
    test_buffer_too_small(c);
    test_binary_keys(c);
    test_key_limits(c);
    test_value_limits(c, &info);
    test_ttl_touch(c);
    test_incr(c);
    test_purge(c);
    test_scan(c);
    test_clear_and_stats(c);
    test_second_handle(c);
    test_fetch(c);
    shmc_close(c);

    test_strategies();
    test_env_name();
    test_unlink_busy();

    /* Unlink: gone afterwards, and NO_CREATE then finds nothing. */
    EXPECT_RC(shmc_unlink(g_name, 0), 0);
    EXPECT_RC(shmc_unlink(g_name, 0), SHMC_E_NO_SEGMENT);
    o.flags = SHMC_OPEN_NO_CREATE;
    c = NULL;
    EXPECT_RC(shmc_open(g_name, &o, &c), SHMC_E_NO_SEGMENT);
    shmc_close(c);
    shmc_unlink(g_name, 1);

    printf("%s c/c_api: %d failed expectations (segment %s)\n", failures ? "FAIL" : "PASS",
           failures, g_name);
    return failures ? 1 : 0;
}
