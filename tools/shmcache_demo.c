/*
 * shmcache_demo.c - several worker processes share one cache: the project's main demo.
 *
 * It plays the situation shmcache is for: a web service runs N worker processes (gunicorn,
 * uvicorn) and each request needs a "user profile" that is slow to build (a database query,
 * a template). The parent forks N workers; each opens the same named segment on its own, as a
 * worker would at start-up, then serves requests whose keys follow a Zipf-like law over a few
 * hundred profiles (a few users are very popular). For every request a worker does get; on a miss
 * it "computes" the profile (sleeps, like waiting for a database) and sets it with a TTL.
 *
 * The computing worker writes its number and pid into the value, so on every hit the reader can
 * tell whether the value came from itself or from another process: the report counts, per worker,
 * the requests served from values another worker computed, which a per-process cache cannot do.
 * Every value read is also checked (it names its key), so the demo doubles as a small smoke test.
 *
 * Plain C11 against the public header only, as any C caller would use the library.
 */
#define _GNU_SOURCE /* getopt_long */

#include <shmcache/shmcache.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 64
#define MAX_KEYS 1000000
#define VALUE_CAP 4096

struct config {
    int workers;
    long requests;   /* per worker */
    int keys;        /* distinct user profiles */
    double zipf_s;   /* skew: weight of rank r is 1 / r^s */
    long compute_us; /* cost of building one profile on a miss */
    uint64_t ttl_ms;
    uint64_t size_mb;
    uint64_t seed;
    int keep;
    char name[200];
};

/* What one worker reports back to the parent (in an anonymous shared mapping). */
struct worker_result {
    pid_t pid;
    int opened; /* 1 once shmc_open succeeded */
    long requests;
    long hits;
    long served_own;    /* hits on values this worker computed */
    long served_others; /* hits on values another worker computed */
    long computed;      /* misses: profiles this worker built and set */
    long lock_timeouts; /* treated as misses, as the header says */
    long errors;        /* set failures and unexpected get errors */
    long bad_values;    /* values that did not name their key: must stay 0 */
    long distinct_keys; /* distinct profiles this worker asked for */
    double get_ns;      /* mean time of one shmc_get */
    double seconds;     /* wall time of the request loop */
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift64*: a small per-worker generator; no shared state between processes. */
static uint64_t next_rand(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * UINT64_C(0x2545F4914F6CDD1D);
}

/* Cumulative Zipf weights over ranks 1..n, normalised to 1. */
static double *zipf_cdf(int n, double s) {
    double *cdf = malloc(sizeof(double) * (size_t)n);
    if (!cdf) return NULL;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        sum += 1.0 / pow((double)(i + 1), s);
        cdf[i] = sum;
    }
    for (int i = 0; i < n; i++) cdf[i] /= sum;
    return cdf;
}

/* A rank drawn from the Zipf law: binary search of a uniform draw in the CDF. */
static int zipf_draw(const double *cdf, int n, uint64_t *state) {
    double u = (double)(next_rand(state) >> 11) / 9007199254740992.0; /* [0, 1) */
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* Build the value of one profile: what a real service would render from its database. */
static int compute_profile(int user, int worker, char *buf, size_t cap, long compute_us) {
    sleep_us(compute_us);
    return snprintf(buf, cap,
                    "{\"user\":%d,\"name\":\"user-%d\",\"plan\":\"%s\",\"karma\":%d,"
                    "\"bio\":\"profile %d, rendered from the (simulated) database\","
                    "\"computed_by\":%d,\"computed_pid\":%ld}",
                    user, user, user % 3 ? "free" : "pro", (user * 7919) % 1000, user, worker,
                    (long)getpid());
}

/* Check that a value read for user names that user, and return the pid of the process that
 * computed it (-1 if the value is bad). The pid, not the worker number, tells "this process" from
 * "another one" even on a segment kept from an earlier run (--keep, --name). */
static long value_owner(const char *value, size_t len, int user) {
    char text[VALUE_CAP + 1];
    if (len > VALUE_CAP) return -1;
    memcpy(text, value, len);
    text[len] = '\0';
    int got_user = -1;
    long owner = -1;
    if (sscanf(text, "{\"user\":%d,", &got_user) != 1 || got_user != user) return -1;
    const char *p = strstr(text, "\"computed_pid\":");
    if (!p || sscanf(p, "\"computed_pid\":%ld", &owner) != 1 || owner <= 0) return -1;
    return owner;
}

static void report_error(const char *what, int rc) {
    const char *msg = shmc_errmsg();
    fprintf(stderr, "shmcache-demo: %s: %s%s%s\n", what, shmc_strerror(rc), *msg ? ": " : "", msg);
}

static shmc_options demo_options(const struct config *cfg) {
    shmc_options opts;
    shmc_options_default(&opts);
    opts.size_bytes = cfg->size_mb * 1024 * 1024;
    return opts;
}

/* One worker process: open the segment, wait for the start signal, serve the requests. */
static int run_worker(const struct config *cfg, int id, int start_fd, const double *cdf,
                      atomic_uchar *asked_any, struct worker_result *res) {
    res->pid = getpid();
    shmc_options opts = demo_options(cfg);
    shmc_cache *cache = NULL;
    int rc = shmc_open(cfg->name, &opts, &cache);
    if (rc != SHMC_OK) {
        report_error("worker: shmc_open", rc);
        return 1;
    }
    res->opened = 1;

    /* Start together: the parent closes the pipe once every worker exists. */
    char c;
    while (read(start_fd, &c, 1) == -1 && errno == EINTR) {
    }
    close(start_fd);

    unsigned char *asked = calloc((size_t)cfg->keys, 1);
    if (!asked) {
        shmc_close(cache);
        return 1;
    }
    uint64_t rng = cfg->seed * UINT64_C(0x9E3779B97F4A7C15) + (uint64_t)id + 1u;
    char value[VALUE_CAP];
    char key[64];
    double get_time = 0;
    double t0 = now_s();

    for (long r = 0; r < cfg->requests; r++) {
        int user = zipf_draw(cdf, cfg->keys, &rng) + 1;
        int key_len = snprintf(key, sizeof key, "demo:profile:%d", user);
        if (!asked[user - 1]) {
            asked[user - 1] = 1;
            res->distinct_keys++;
            atomic_store_explicit(&asked_any[user - 1], 1, memory_order_relaxed);
        }
        res->requests++;

        size_t len = 0;
        double g0 = now_s();
        rc = shmc_get(cache, key, (size_t)key_len, value, sizeof value, &len, NULL, NULL);
        get_time += now_s() - g0;

        if (rc == SHMC_OK) {
            long owner = value_owner(value, len, user);
            if (owner < 0) {
                res->bad_values++;
                continue;
            }
            res->hits++;
            if (owner == (long)res->pid)
                res->served_own++;
            else
                res->served_others++;
            continue;
        }
        if (rc == SHMC_E_LOCK_TIMEOUT)
            res->lock_timeouts++; /* a miss, by the header's rule: compute, never retry */
        else if (rc != SHMC_E_NOTFOUND) {
            res->errors++;
            report_error("worker: shmc_get", rc);
            continue;
        }

        int n = compute_profile(user, id, value, sizeof value, cfg->compute_us);
        res->computed++;
        rc = shmc_set(cache, key, (size_t)key_len, value, (size_t)n, 0, cfg->ttl_ms);
        if (rc != SHMC_OK && rc != SHMC_E_LOCK_TIMEOUT) {
            res->errors++;
            report_error("worker: shmc_set", rc);
        }
    }

    res->seconds = now_s() - t0;
    res->get_ns = res->requests ? get_time * 1e9 / (double)res->requests : 0;
    free(asked);
    shmc_close(cache);
    return 0;
}

static const char *strategy_name(uint32_t s) {
    switch (s) {
        case SHMC_STRATEGY_LRU: return "LRU";
        case SHMC_STRATEGY_LFU: return "LFU";
        case SHMC_STRATEGY_FIFO: return "FIFO";
        case SHMC_STRATEGY_TTL: return "TTL";
        case SHMC_STRATEGY_SIEVE: return "SIEVE";
        case SHMC_STRATEGY_S3FIFO: return "S3-FIFO";
        case SHMC_STRATEGY_WTINYLFU: return "W-TinyLFU";
        default: return "default";
    }
}

static double pct(long part, long whole) {
    return whole ? 100.0 * (double)part / (double)whole : 0;
}

static void human_bytes(uint64_t n, char *buf, size_t cap) {
    if (n >= 1024ull * 1024)
        snprintf(buf, cap, "%.1f MiB", (double)n / (1024.0 * 1024.0));
    else if (n >= 1024ull)
        snprintf(buf, cap, "%.1f KiB", (double)n / 1024.0);
    else
        snprintf(buf, cap, "%" PRIu64 " B", n);
}

/* The parent's report: per worker, then host-wide from the segment itself. */
static int print_report(const struct config *cfg, const struct worker_result *res,
                        long distinct_all) {
    struct worker_result sum = {0};
    printf(
        "\ncomputed: misses the worker built and stored; served-own / served-others: hits on\n"
        "profiles computed by this worker / by another worker.\n");
    printf("\n%-7s %8s %9s %8s %6s %9s %10s %13s %9s\n", "worker", "pid", "requests", "hits",
           "hit%", "computed", "served-own", "served-others", "get(ns)");
    for (int i = 0; i < cfg->workers; i++) {
        const struct worker_result *w = &res[i];
        printf("%-7d %8ld %9ld %8ld %5.1f%% %9ld %10ld %13ld %9.0f\n", i, (long)w->pid, w->requests,
               w->hits, pct(w->hits, w->requests), w->computed, w->served_own, w->served_others,
               w->get_ns);
        sum.requests += w->requests;
        sum.hits += w->hits;
        sum.computed += w->computed;
        sum.served_own += w->served_own;
        sum.served_others += w->served_others;
        sum.lock_timeouts += w->lock_timeouts;
        sum.errors += w->errors;
        sum.bad_values += w->bad_values;
        sum.distinct_keys += w->distinct_keys;
    }
    printf("%-7s %8s %9ld %8ld %5.1f%% %9ld %10ld %13ld\n", "total", "", sum.requests, sum.hits,
           pct(sum.hits, sum.requests), sum.computed, sum.served_own, sum.served_others);

    /* Host-wide figures come from the segment: a new handle sees what every process did. */
    shmc_options opts = demo_options(cfg);
    opts.flags |= SHMC_OPEN_NO_CREATE;
    shmc_cache *cache = NULL;
    int rc = shmc_open(cfg->name, &opts, &cache);
    if (rc != SHMC_OK) {
        report_error("parent: shmc_open", rc);
        return 1;
    }
    shmc_stats st;
    shmc_info info;
    int rs = shmc_get_stats(cache, &st);
    int ri = shmc_get_info(cache, &info);
    shmc_close(cache);
    if (rs != SHMC_OK || ri != SHMC_OK) {
        report_error("parent: shmc_get_stats/shmc_get_info", rs != SHMC_OK ? rs : ri);
        return 1;
    }
    char used[32], cap[32], data[32], size[32], maxval[32];
    human_bytes(st.bytes_used, used, sizeof used);
    human_bytes(st.bytes_capacity, cap, sizeof cap);
    human_bytes(st.bytes_data, data, sizeof data);
    human_bytes(info.size_bytes, size, sizeof size);
    human_bytes(info.max_value_len, maxval, sizeof maxval);

    printf("\nsegment \"%s\": %s, %u stripes, %s eviction, values up to %s\n", info.name, size,
           info.n_stripes, strategy_name(info.strategy), maxval);
    printf("host-wide statistics (shmc_get_stats: the segment's counters, all processes):\n");
    printf("  hits %" PRIu64 ", misses %" PRIu64 ", hit rate %.1f%%\n", st.hits, st.misses,
           st.hits + st.misses ? 100.0 * (double)st.hits / (double)(st.hits + st.misses) : 0.0);
    printf("  sets %" PRIu64 ", evictions %" PRIu64 ", expirations %" PRIu64
           ", lock timeouts %" PRIu64 ", lock recoveries %" PRIu64 "\n",
           st.sets, st.evictions, st.expirations, st.lock_timeouts, st.lock_recoveries);
    printf("  entries %" PRIu64 ", memory used %s of %s (key and value bytes %s)\n", st.entries,
           used, cap, data);

    printf("\nworkers served %ld requests with values computed by another worker.\n",
           sum.served_others);
    printf("  profiles computed with the shared cache: %ld, for %ld distinct profiles",
           sum.computed, distinct_all);
    if (sum.computed > distinct_all && st.evictions + st.expirations == 0)
        printf(
            ";\n  %ld extra computes by workers that missed the same profile at the same "
            "time\n  (this demo does not coalesce concurrent misses)",
            sum.computed - distinct_all);
    else if (sum.computed > distinct_all)
        printf(";\n  %ld computed again (concurrent misses, expired or evicted entries)",
               sum.computed - distinct_all);
    printf(".\n");
    if (st.evictions + st.expirations == 0)
        printf(
            "  a private cache in each worker would have computed at least %ld (once per "
            "worker\n  for every distinct profile that worker was asked for).\n",
            sum.distinct_keys);
    if (sum.lock_timeouts || sum.errors || sum.bad_values)
        printf("lock timeouts %ld (served as misses), errors %ld, bad values %ld\n",
               sum.lock_timeouts, sum.errors, sum.bad_values);
    return sum.bad_values || sum.errors ? 1 : 0;
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: shmcache-demo [options]\n"
            "\n"
            "Forks worker processes that share one shmcache segment and serve simulated web\n"
            "requests for user profiles (Zipf-distributed keys). On a miss a worker computes the\n"
            "profile and stores it with a TTL; the report shows how many requests each worker\n"
            "served from profiles another worker computed, and the host-wide cache statistics.\n"
            "\n"
            "options:\n"
            "  -w, --workers N      worker processes (default 4, at most %d)\n"
            "  -r, --requests N     requests per worker (default 5000)\n"
            "  -k, --keys N         distinct user profiles (default 500)\n"
            "  -z, --zipf S         skew of key popularity, 0 = uniform (default 1.0)\n"
            "  -c, --compute-us N   cost of computing one profile on a miss, in us (default 1000)\n"
            "  -t, --ttl-ms N       TTL of a cached profile in ms, 0 = never expires (default "
            "60000)\n"
            "  -s, --size-mb N      segment size in MiB when this run creates it (default 8)\n"
            "  -n, --name NAME      segment name (default: shmcache-demo-<pid>, new every run)\n"
            "      --seed N         random seed (default 1)\n"
            "      --keep           keep the segment after the run (default: unlink it)\n"
            "  -h, --help           show this text\n"
            "\n"
            "Exit status: 0 on success, 1 if a worker failed or read a value that was not the\n"
            "one it asked for, 2 on bad usage.\n",
            MAX_WORKERS);
}

/* Parse a whole decimal number in [lo, hi]; exit with usage status 2 otherwise. */
static long long parse_num(const char *opt, const char *s, long long lo, long long hi) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "shmcache-demo: %s wants a number from %lld to %lld, not '%s'\n", opt, lo,
                hi, s);
        exit(2);
    }
    return v;
}

static void parse_args(int argc, char **argv, struct config *cfg) {
    enum { OPT_SEED = 256, OPT_KEEP };
    static const struct option longopts[] = {
        {"workers", required_argument, NULL, 'w'},
        {"requests", required_argument, NULL, 'r'},
        {"keys", required_argument, NULL, 'k'},
        {"zipf", required_argument, NULL, 'z'},
        {"compute-us", required_argument, NULL, 'c'},
        {"ttl-ms", required_argument, NULL, 't'},
        {"size-mb", required_argument, NULL, 's'},
        {"name", required_argument, NULL, 'n'},
        {"seed", required_argument, NULL, OPT_SEED},
        {"keep", no_argument, NULL, OPT_KEEP},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    char *end;
    while ((opt = getopt_long(argc, argv, "w:r:k:z:c:t:s:n:h", longopts, NULL)) != -1) {
        switch (opt) {
            case 'w': cfg->workers = (int)parse_num("--workers", optarg, 1, MAX_WORKERS); break;
            case 'r': cfg->requests = (long)parse_num("--requests", optarg, 1, 100000000); break;
            case 'k': cfg->keys = (int)parse_num("--keys", optarg, 1, MAX_KEYS); break;
            case 'c': cfg->compute_us = (long)parse_num("--compute-us", optarg, 0, 10000000); break;
            case 't': cfg->ttl_ms = (uint64_t)parse_num("--ttl-ms", optarg, 0, 1000000000); break;
            case 's': cfg->size_mb = (uint64_t)parse_num("--size-mb", optarg, 1, 1 << 20); break;
            case OPT_SEED: cfg->seed = (uint64_t)parse_num("--seed", optarg, 0, INT64_MAX); break;
            case OPT_KEEP: cfg->keep = 1; break;
            case 'z':
                errno = 0;
                cfg->zipf_s = strtod(optarg, &end);
                if (errno || end == optarg || *end || cfg->zipf_s < 0 || cfg->zipf_s > 10) {
                    fprintf(stderr, "shmcache-demo: --zipf wants a number from 0 to 10\n");
                    exit(2);
                }
                break;
            case 'n':
                if (!*optarg || strlen(optarg) >= sizeof cfg->name || strchr(optarg, '/')) {
                    fprintf(stderr, "shmcache-demo: --name wants 1 to %zu characters, no '/'\n",
                            sizeof cfg->name - 1);
                    exit(2);
                }
                snprintf(cfg->name, sizeof cfg->name, "%s", optarg);
                break;
            case 'h': usage(stdout); exit(0);
            default: usage(stderr); exit(2);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "shmcache-demo: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        exit(2);
    }
}

int main(int argc, char **argv) {
    struct config cfg = {
        .workers = 4,
        .requests = 5000,
        .keys = 500,
        .zipf_s = 1.0,
        .compute_us = 1000,
        .ttl_ms = 60000,
        .size_mb = 8,
        .seed = 1,
    };
    parse_args(argc, argv, &cfg);
    if (!cfg.name[0]) snprintf(cfg.name, sizeof cfg.name, "shmcache-demo-%ld", (long)getpid());

    double *cdf = zipf_cdf(cfg.keys, cfg.zipf_s);
    /* Results and the union of the keys asked for: anonymous shared memory inherited by fork. */
    size_t res_size = sizeof(struct worker_result) * (size_t)cfg.workers;
    size_t shared_size = res_size + (size_t)cfg.keys;
    void *shared =
        mmap(NULL, shared_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int start[2];
    if (!cdf || shared == MAP_FAILED || pipe(start) == -1) {
        perror("shmcache-demo: setup");
        return 1;
    }
    memset(shared, 0, shared_size);
    struct worker_result *res = shared;
    atomic_uchar *asked_any = (atomic_uchar *)((char *)shared + res_size);

    printf(
        "shmcache %s demo: %d worker processes, %ld requests each, %d user profiles "
        "(Zipf s=%.2f),\n%ld us to compute a profile on a miss, TTL %" PRIu64
        " ms, segment \"%s\"\n",
        shmc_version(), cfg.workers, cfg.requests, cfg.keys, cfg.zipf_s, cfg.compute_us, cfg.ttl_ms,
        cfg.name);
    fflush(stdout); /* nothing buffered may be written twice by the children */

    int forked = 0;
    for (int i = 0; i < cfg.workers; i++) {
        pid_t pid = fork();
        if (pid == -1) {
            perror("shmcache-demo: fork");
            break;
        }
        if (pid == 0) {
            close(start[1]);
            _exit(run_worker(&cfg, i, start[0], cdf, asked_any, &res[i]));
        }
        res[i].pid = pid;
        forked++;
    }
    double t0 = now_s();
    close(start[0]);
    close(start[1]); /* every worker's read returns: go */

    int failed = forked < cfg.workers;
    for (int i = 0; i < forked; i++) {
        int status;
        while (waitpid(res[i].pid, &status, 0) == -1 && errno == EINTR) {
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "shmcache-demo: worker %d (pid %ld) failed\n", i, (long)res[i].pid);
            failed = 1;
        }
    }
    double elapsed = now_s() - t0;

    int any_opened = 0;
    for (int i = 0; i < forked; i++) any_opened |= res[i].opened;
    if (any_opened) {
        long distinct_all = 0;
        for (int k = 0; k < cfg.keys; k++) distinct_all += atomic_load(&asked_any[k]);
        failed |= print_report(&cfg, res, distinct_all);
        printf("wall time %.2f s for %ld requests.\n", elapsed, cfg.requests * (long)cfg.workers);
    }

    if (cfg.keep) {
        printf("segment \"%s\" kept (/dev/shm/%s); run again with --name %s to reuse it.\n",
               cfg.name, cfg.name, cfg.name);
    } else if (any_opened) {
        int rc = shmc_unlink(cfg.name, 0);
        if (rc != SHMC_OK) {
            report_error("shmc_unlink", rc);
            failed = 1;
        }
    }
    munmap(shared, shared_size);
    free(cdf);
    return failed ? 1 : 0;
}
