/*
 * shmcache.h - the whole public contract of libshmcache.
 *
 * shmcache is a host-wide cache shared by every process on a machine through one named POSIX
 * shared-memory segment. Callers must not include or rely on any other header of this project.
 *
 * Conventions, stated once:
 * - Handles are opaque (`shmc_cache *`). Open one with shmc_open(), release it with shmc_close()
 *   (which accepts NULL). A handle is immutable after open, so one handle may be shared by any
 *   number of threads without extra locking.
 * - Data is passed as pointer + length. Keys and values are binary-safe (may contain NUL bytes).
 *   Nothing the library returns needs to be freed by the caller.
 * - Every call that can fail returns int: 0 on success, a negative SHMC_E_* code (values are pinned
 *   and never renumbered), or a positive errno value from the operating system. shmc_strerror()
 *   decodes both. shmc_errmsg() gives a longer, specific message for the last failure in the
 *   calling thread (for example both layout versions on a version mismatch).
 * - No C++ exception ever crosses this interface.
 * - Durations are milliseconds. A TTL of 0 means "never expires".
 * - fork(): a child may keep using a handle opened by its parent (gunicorn --preload), provided no
 *   thread of the parent was inside a shmcache call at the moment of fork. Nothing needs reopening.
 * - Lock waits are bounded (options.lock_timeout_ms). A call that would wait longer returns
 *   SHMC_E_LOCK_TIMEOUT; callers should treat that as a miss, never retry in a loop.
 * - A process killed at any instant (SIGKILL) leaves a segment that the next caller repairs
 *   before use; see docs/architecture.md.
 */
#ifndef SHMCACHE_SHMCACHE_H
#define SHMCACHE_SHMCACHE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* SHMC_API marks the exported symbols; everything else in the library is hidden. */
#if defined(SHMC_BUILDING_LIBRARY)
#define SHMC_API __attribute__((visibility("default")))
#else
#define SHMC_API
#endif

/* Library version. The soname follows SHMC_VERSION_MAJOR. */
#define SHMC_VERSION_MAJOR 0
#define SHMC_VERSION_MINOR 3
#define SHMC_VERSION_PATCH 0

/* Limits. Keys may be up to SHMC_MAX_KEY_LEN bytes. Values may be up to the segment's
 * max_value_len, reported by shmc_get_info(); it is never above SHMC_MAX_VALUE_LEN. */
#define SHMC_MAX_KEY_LEN 4096u
#define SHMC_MAX_VALUE_LEN (64u * 1024u * 1024u)

/* Error codes. Pinned values: never renumbered, only appended. */
#define SHMC_OK 0
#define SHMC_E_NOTFOUND -1         /* key absent or expired (a miss) */
#define SHMC_E_EXISTS -2           /* shmc_add: key already present */
#define SHMC_E_INVAL -3            /* a bad argument (NULL pointer, zero length, bad option) */
#define SHMC_E_KEY_TOO_LONG -4     /* key longer than SHMC_MAX_KEY_LEN; nothing stored */
#define SHMC_E_VALUE_TOO_LARGE -5  /* value above the segment's max_value_len; nothing stored */
#define SHMC_E_BUFFER_TOO_SMALL -6 /* shmc_get: *value_len was set to the size needed */
#define SHMC_E_LOCK_TIMEOUT -7     /* a stripe lock was not granted in time; treat as a miss */
#define SHMC_E_NOSPC -8            /* /dev/shm has no room for the segment (see shmc_errmsg) */
#define SHMC_E_VERSION -9          /* segment made by another layout version or ABI */
#define SHMC_E_CORRUPT -10         /* damage found that could not be repaired */
#define SHMC_E_BAD_PATTERN -11     /* malformed glob pattern */
#define SHMC_E_NOT_NUMBER -12      /* shmc_incr on a value that is not a decimal int64 */
#define SHMC_E_RANGE -13           /* shmc_incr would overflow int64 */
#define SHMC_E_PERM -14            /* segment owned by another user, or mode denies access */
#define SHMC_E_NOMEM -15           /* process memory exhausted */
#define SHMC_E_NO_SEGMENT -16      /* segment does not exist and SHMC_OPEN_NO_CREATE was given */
#define SHMC_E_BUSY -17            /* shmc_unlink: processes still attached (use force) */
#define SHMC_E_INIT_TIMEOUT -18    /* another process is still initializing the segment */
#define SHMC_E_INTERNAL -19        /* an internal error; the message says more */
#define SHMC_E_NO_ROOM -20         /* reserved: not returned by this version */

/* The opaque handle of an open cache. */
typedef struct shmc_cache shmc_cache;

/* Eviction strategies. Values are stored in the segment: pinned. */
typedef enum shmc_strategy {
    SHMC_STRATEGY_DEFAULT = 0, /* the engine's default: W-TinyLFU (S3-FIFO before it) */
    SHMC_STRATEGY_LRU = 1,     /* least recently used */
    SHMC_STRATEGY_LFU = 2,     /* least frequently used (sampled, with aging) */
    SHMC_STRATEGY_FIFO = 3,    /* first in, first out */
    SHMC_STRATEGY_TTL = 4,     /* soonest to expire first (sampled) */
    SHMC_STRATEGY_SIEVE = 5,   /* SIEVE (Zhang et al., NSDI 2024) */
    SHMC_STRATEGY_S3FIFO = 6,  /* S3-FIFO (Yang et al., SOSP 2023) */
    SHMC_STRATEGY_WTINYLFU = 7 /* W-TinyLFU: a FIFO window, then admission by a frequency sketch */
} shmc_strategy;

/* shmc_options.flags */
#define SHMC_OPEN_NO_CREATE 0x1u            /* attach only; SHMC_E_NO_SEGMENT if absent */
#define SHMC_OPEN_ALLOW_FOREIGN_OWNER 0x2u  /* attach to a segment owned by another user */
#define SHMC_OPEN_REPLACE_INCOMPATIBLE 0x4u /* on SHMC_E_VERSION, unlink and create anew */

/* Options for shmc_open. Always start from shmc_options_default(). The geometry fields
 * (size_bytes, max_entries, n_stripes, strategy, max_value_len) apply only when this call creates
 * the segment; attaching to an existing segment uses the geometry it was created with. */
typedef struct shmc_options {
    uint64_t size_bytes;      /* total segment size; default 64 MiB, minimum 1 MiB */
    uint64_t max_entries;     /* 0: limited by memory only; else at most this many entries */
    uint32_t n_stripes;       /* lock stripes, a power of two; default 64; under max_entries at
                                 most max_entries / 256 of them (a power of two, at least 1),
                                 but at least one per 32 MiB of size_bytes */
    uint32_t strategy;        /* a shmc_strategy */
    uint32_t lock_timeout_ms; /* bound on any lock wait; default 50 */
    uint32_t mode;            /* permission bits of a new segment; default 0600, 0660 for a group */
    uint32_t flags;           /* SHMC_OPEN_* */
    uint32_t max_value_len;   /* 0: default (1 MiB, lowered to fit a stripe) */
    uint8_t reserved[64];     /* zero; room to grow without breaking the ABI */
} shmc_options;

/* Host-wide figures, summed over stripes (or one stripe's, from shmc_stripe_stats). */
typedef struct shmc_stats {
    uint64_t hits;   /* lookups are counted per process and summed here; 0 per stripe */
    uint64_t misses; /* (a hit writes no shared cache line: docs/architecture.md) */
    uint64_t sets;
    uint64_t deletes;
    uint64_t evictions;
    uint64_t expirations;     /* expired entries reclaimed */
    uint64_t lock_recoveries; /* a lock holder died and its stripe was checked or rebuilt */
    uint64_t lock_timeouts;
    uint64_t entries;
    uint64_t bytes_used;     /* memory held by entries, overhead included */
    uint64_t bytes_capacity; /* memory available for entries */
    uint64_t bytes_data;     /* key and value bytes of live entries */
    uint64_t reserved[8];
} shmc_stats;

/* What shmc_get_info reports about a segment. */
typedef struct shmc_info {
    char name[256]; /* segment name, without the leading slash */
    uint32_t layout_version;
    uint32_t n_stripes;
    uint64_t size_bytes;
    uint64_t max_entries; /* 0: no entry limit */
    uint32_t max_key_len;
    uint32_t max_value_len;
    uint32_t strategy;   /* a shmc_strategy, resolved (never DEFAULT) */
    uint32_t block_size; /* allocation unit in bytes */
    uint32_t owner_uid;
    uint32_t mode;
    uint32_t attached; /* open handles of live processes (one per shmc_open) */
    uint32_t creator_pid;
    uint64_t created_unix_ms;
    uint64_t reserved[8];
} shmc_info;

/* What shmc_check found. */
typedef struct shmc_check_report {
    uint32_t stripes_checked;
    uint32_t stripes_damaged;  /* invariants broken when checked */
    uint32_t stripes_repaired; /* rebuilt; damaged - repaired are left as they were */
    uint32_t stripes_skipped;  /* lock not granted in time; not checked */
    uint64_t entries_checked;
    uint64_t entries_dropped; /* entries found invalid and removed */
    uint64_t reserved[4];
} shmc_check_report;

/* Version of the library actually loaded, as "MAJOR.MINOR.PATCH". */
SHMC_API const char *shmc_version(void);

/* Describe a return code (negative SHMC_E_*, positive errno, or 0). Never returns NULL. */
SHMC_API const char *shmc_strerror(int code);

/* A specific message for the last failed call in this thread ("" if none). Valid until the next
 * shmcache call in this thread. */
SHMC_API const char *shmc_errmsg(void);

/* Fill *opts with the defaults. */
SHMC_API void shmc_options_default(shmc_options *opts);

/* Open the segment called name, creating and initializing it if absent (unless
 * SHMC_OPEN_NO_CREATE). name NULL or "" means $SHMCACHE_NAME, then "shmcache". Any number of
 * processes may open the same name at once: exactly one initializes, the others wait for it (up
 * to 2 s) and attach; a half-initialized segment left by a dead initializer is initialized again.
 * opts NULL means defaults.
 * Errors: SHMC_E_INVAL, SHMC_E_NOSPC (with the size asked and what is free), SHMC_E_VERSION (both
 * versions named), SHMC_E_PERM, SHMC_E_NO_SEGMENT, SHMC_E_INIT_TIMEOUT, SHMC_E_CORRUPT (header
 * unreadable), SHMC_E_NOMEM, or an errno. */
SHMC_API int shmc_open(const char *name, const shmc_options *opts, shmc_cache **out);

/* Detach and free the handle. The segment stays for other processes. Accepts NULL. */
SHMC_API void shmc_close(shmc_cache *cache);

/* Remove the segment called name (see shmc_open for NULL). Refuses with SHMC_E_BUSY while other
 * processes are attached unless force is nonzero. Attached processes keep working on the removed
 * segment until they close it; new opens create a fresh one. Errors: SHMC_E_NO_SEGMENT,
 * SHMC_E_BUSY, SHMC_E_PERM, SHMC_E_VERSION (force unlinks anyway), or an errno. */
SHMC_API int shmc_unlink(const char *name, int force);

/* Copy the value of key into buf (capacity cap bytes). On success *value_len is its length; if
 * flags is not NULL, *flags gets the 32-bit flags stored with it; if ttl_left_ms is not NULL it
 * gets the remaining time to live (-1: never expires). If cap is too small, returns
 * SHMC_E_BUFFER_TOO_SMALL with *value_len set to the length needed (call again). buf may be NULL
 * when cap is 0. Errors: SHMC_E_NOTFOUND, SHMC_E_KEY_TOO_LONG, SHMC_E_INVAL,
 * SHMC_E_BUFFER_TOO_SMALL, SHMC_E_LOCK_TIMEOUT. */
SHMC_API int shmc_get(shmc_cache *cache, const void *key, size_t key_len, void *buf, size_t cap,
                      size_t *value_len, uint32_t *flags, int64_t *ttl_left_ms);

/* Store value under key with the given flags and TTL, replacing any previous value. Evicts
 * (expired entries first) to make room; a value within the limits always fits after eviction.
 * Errors: SHMC_E_KEY_TOO_LONG, SHMC_E_VALUE_TOO_LARGE, SHMC_E_INVAL, SHMC_E_LOCK_TIMEOUT. On any
 * error nothing is stored and the previous value, if any, is unchanged. */
SHMC_API int shmc_set(shmc_cache *cache, const void *key, size_t key_len, const void *value,
                      size_t value_len, uint32_t flags, uint64_t ttl_ms);

/* Like shmc_set, but only if key is absent (or expired): SHMC_E_EXISTS otherwise. */
SHMC_API int shmc_add(shmc_cache *cache, const void *key, size_t key_len, const void *value,
                      size_t value_len, uint32_t flags, uint64_t ttl_ms);

/* Remove key. Errors: SHMC_E_NOTFOUND, SHMC_E_KEY_TOO_LONG, SHMC_E_INVAL, SHMC_E_LOCK_TIMEOUT. */
SHMC_API int shmc_del(shmc_cache *cache, const void *key, size_t key_len);

/* Set a new TTL on an existing key (0: never expires). Errors as shmc_del. */
SHMC_API int shmc_touch(shmc_cache *cache, const void *key, size_t key_len, uint64_t ttl_ms);

/* Add delta to the decimal int64 stored under key, keeping its TTL and flags; *result (if not
 * NULL) gets the new value. Errors: SHMC_E_NOTFOUND, SHMC_E_NOT_NUMBER, SHMC_E_RANGE, and those of
 * shmc_del. */
SHMC_API int shmc_incr(shmc_cache *cache, const void *key, size_t key_len, int64_t delta,
                       int64_t *result);

/* Remove every key matching the glob pattern, one stripe at a time (no call holds more than one
 * stripe lock). Glob: `*` any run, `?` any byte, `[abc]`, `[a-z]`, `[!a]` or `[^a]` classes, `\`
 * escapes the next byte. *removed (if not NULL) gets the count. A stripe whose lock times out is
 * skipped and the call returns SHMC_E_LOCK_TIMEOUT after finishing the others.
 * Errors: SHMC_E_BAD_PATTERN, SHMC_E_INVAL, SHMC_E_LOCK_TIMEOUT. */
SHMC_API int shmc_purge(shmc_cache *cache, const void *pattern, size_t pattern_len,
                        uint64_t *removed);

/* Called by shmc_scan for each matching live key, with no lock held. Return 0 to go on, nonzero
 * to stop the scan. */
typedef int (*shmc_scan_fn)(const void *key, size_t key_len, size_t value_len, int64_t ttl_left_ms,
                            void *ctx);

/* Visit keys matching pattern (see shmc_purge), stripe by stripe. Keys seen are a snapshot per
 * stripe. Errors: as shmc_purge. */
SHMC_API int shmc_scan(shmc_cache *cache, const void *pattern, size_t pattern_len, shmc_scan_fn fn,
                       void *ctx);

/* Remove every entry, stripe by stripe. *removed (if not NULL) gets the count. */
SHMC_API int shmc_clear(shmc_cache *cache, uint64_t *removed);

/* Host-wide statistics (sum over stripes). */
SHMC_API int shmc_get_stats(shmc_cache *cache, shmc_stats *out);

/* Statistics of one stripe (0 <= stripe < n_stripes); hits and misses are 0 (host-wide only,
 * since layout version 6). Errors: SHMC_E_INVAL. */
SHMC_API int shmc_stripe_stats(shmc_cache *cache, uint32_t stripe, shmc_stats *out);

/* Geometry, ownership and attached processes. */
SHMC_API int shmc_get_info(shmc_cache *cache, shmc_info *out);

/* Verify every stripe's invariants (links, bounds, accounting, checksums); rebuild any stripe
 * found damaged. Returns 0 if the table is clean or was repaired, SHMC_E_CORRUPT if damage
 * remains, SHMC_E_LOCK_TIMEOUT if a stripe could not be checked. out may be NULL. */
SHMC_API int shmc_check(shmc_cache *cache, shmc_check_report *out);

/* Glob match as used by purge and scan: 1 on match, 0 on no match, SHMC_E_BAD_PATTERN. */
SHMC_API int shmc_glob_match(const void *pattern, size_t pattern_len, const void *str,
                             size_t str_len);

/* ---- Value envelope ------------------------------------------------------------------------
 * Values written by shmcache's own tools and bindings are wrapped in a small self-describing
 * envelope, so that any reader decodes what any writer wrote (the CLI's warm command, the Python
 * package, and later the Redis tier): 2 bytes of header, then the payload.
 *   byte 0: 0xC5 (SHMC_ENVELOPE_MAGIC)
 *   byte 1: bits 0-3 serializer id (SHMC_SER_*), bit 4 set if the payload is a zstd frame,
 *           bits 5-7 zero (a reader refuses a value with any of them set).
 * The engine itself stores opaque bytes and never looks inside. */
#define SHMC_ENVELOPE_MAGIC 0xC5u
#define SHMC_ENVELOPE_HEADER 2u

/* Serializer ids. Pinned. */
#define SHMC_SER_RAW 0u    /* bytes as given */
#define SHMC_SER_JSON 1u   /* UTF-8 JSON text */
#define SHMC_SER_PICKLE 2u /* Python pickle, signed (bindings only; never decoded unless enabled) \
                            */
#define SHMC_SER_MSGPACK 3u
#define SHMC_SER_STR 4u /* UTF-8 text */

#define SHMC_E_BAD_ENVELOPE -21 /* not an envelope, unknown bits, or a damaged zstd frame */

/* Largest envelope shmc_encode can produce for len payload bytes. */
SHMC_API size_t shmc_encode_bound(size_t len);

/* Wrap payload in an envelope with the given serializer. If compress_threshold is nonzero and
 * len >= compress_threshold, the payload is compressed with zstd (at level) and kept compressed
 * only if that is smaller: an incompressible value is stored raw, never larger. level 0 means the
 * zstd default. *out_len gets the envelope length. Errors: SHMC_E_INVAL (serializer > 15),
 * SHMC_E_BUFFER_TOO_SMALL (cap below shmc_encode_bound(len); *out_len set to the bound). */
SHMC_API int shmc_encode(uint32_t serializer, const void *payload, size_t len,
                         size_t compress_threshold, int level, void *out, size_t cap,
                         size_t *out_len);

/* Unwrap an envelope: *serializer gets its id, *out_len the payload length. If cap is too small,
 * SHMC_E_BUFFER_TOO_SMALL with *out_len set to the length needed. Payloads that decompress to
 * more than SHMC_MAX_VALUE_LEN are refused. Errors: SHMC_E_BAD_ENVELOPE, SHMC_E_INVAL,
 * SHMC_E_BUFFER_TOO_SMALL. */
SHMC_API int shmc_decode(const void *envelope, size_t len, uint32_t *serializer, void *out,
                         size_t cap, size_t *out_len);

/* ---- Tiers: Redis as L2 behind the shared L1 ------------------------------------------------
 * A handle may have a Redis tier attached (shmc_l2_attach). The shmc_t* calls then take a tier
 * mask: SHMC_TIER_L1, SHMC_TIER_L2 or SHMC_TIER_BOTH. The plain calls above (shmc_get, shmc_set,
 * ...) always act on L1 only. See docs/l2.md for the semantics, the outage behaviour and the
 * cross-host staleness bound. Summary:
 * - Get with BOTH: an L1 hit returns at once; on an L1 miss an L2 hit is copied into L1 with
 *   TTL = min(fill_ttl_ms, what remains of the L2 TTL), marked SHMC_FLAG_FROM_L2.
 * - Set with BOTH writes L2 and then L1 (the L1 copy marked SHMC_FLAG_FROM_L2). Every host's
 *   subscriber learns of every change to the namespace in Redis, by anyone (Redis 6+ CLIENT
 *   TRACKING in BCAST mode), and drops its L1 copy; where tracking is refused, shmcache's own
 *   writes publish invalidations instead. Delete and purge act on the tiers asked for.
 * - An SHMC_FLAG_FROM_L2 entry is served only while this host's invalidation link is vouched
 *   for by its heartbeat (link_lease_ms), and is dropped (in O(1), lazily) by every new
 *   subscription, FLUSHALL or FLUSHDB. If the Redis half of a BOTH set fails, the L1 half is
 *   kept as an L1-only entry for at most outage_write_ttl_ms.
 * - Values are opaque bytes in both tiers; flags are kept in L1 only (an L2 hit has flags 0 plus
 *   SHMC_FLAG_FROM_L2). Use the value envelope (below) for self-describing, compressed values.
 * - No L2 call waits longer than command_timeout_ms. After breaker_threshold consecutive
 *   failures a per-process circuit breaker fails L2 calls at once for breaker_cooldown_ms, then
 *   lets one call try. L2 writes that fail are dropped and counted, never queued.
 * - Connections are per process, opened lazily (so a handle opened before fork works in the
 *   children), at most max_connections at once. */
#define SHMC_E_L2_UNAVAILABLE -22    /* Redis unreachable, timed out, or circuit breaker open */
#define SHMC_E_L2_NOT_CONFIGURED -23 /* an L2 tier was asked of a handle without one */
#define SHMC_E_L2_REPLY -24          /* Redis answered with an error (see shmc_errmsg) */

#define SHMC_TIER_L1 1u
#define SHMC_TIER_L2 2u
#define SHMC_TIER_BOTH 3u

/* Or'ed into shmc_tget's tiers with SHMC_TIER_BOTH by a caller that has just missed L1 with
 * shmc_get (a fast path that reads L1 inline and goes to Redis off its event loop): the L1
 * lookup is skipped, so the miss is not counted twice, and an L2 hit still fills L1. */
#define SHMC_TGET_AFTER_L1_MISS 0x100u

/* Reserved flag bit: set by the library on L1 entries that mirror L2 (filled from L2, or written
 * to both tiers). They are served only while the host's invalidation link is live, and dropped
 * when cross-host invalidations may have been lost (docs/l2.md, "Coherence"). */
#define SHMC_FLAG_FROM_L2 0x80000000u

/* shmc_l2_options.flags */
#define SHMC_L2_NO_SUBSCRIBE 0x1u /* this process never becomes the host's invalidation subscriber */
#define SHMC_L2_NO_PUBLISH 0x2u   /* do not publish invalidations (single-host deployments) */
#define SHMC_L2_NO_TRACKING 0x4u  /* the subscriber does not ask Redis for CLIENT TRACKING: only
                                     shmcache's own published invalidations (publish mode) */

/* shmc_l2_stats.invalidation_mode */
#define SHMC_INVAL_NONE 0u     /* no subscription has been made yet on this host */
#define SHMC_INVAL_PUBLISH 1u  /* shmcache's own PUBLISH messages (tracking refused or disabled) */
#define SHMC_INVAL_TRACKING 2u /* Redis CLIENT TRACKING BCAST: every write, by anyone */

/* Options for shmc_l2_attach. Always start from shmc_l2_options_default(). Strings are copied. */
typedef struct shmc_l2_options {
    const char *url;           /* required: redis://[[user]:password@]host[:port][/db],
                                  rediss://... (TLS: ?ssl_ca_certs=&ssl_certfile=&ssl_keyfile=
                                  &ssl_server_name=&ssl_cert_reqs=), unix:///path.sock[?db=N],
                                  redis+sentinel://host:port,.../mastername[/db]
                                  [?sentinel_password=], redis+cluster://host:port,...;
                                  see docs/l2.md */
    const char *key_prefix;    /* namespace: the L2 key is prefix + separator + key; NULL or "":
                                  none. Also scopes purge and the invalidation channel. */
    const char *key_separator; /* NULL: ":" */
    uint32_t connect_timeout_ms;  /* default 250 */
    uint32_t command_timeout_ms;  /* default 100: the bound on any one L2 call */
    uint32_t max_connections;     /* per process; default 16 */
    uint32_t retry_on_timeout;    /* nonzero: retry a failed command once on a fresh connection,
                                     within the same command_timeout_ms budget */
    uint32_t breaker_threshold;   /* consecutive failures that open the breaker; default 3 */
    uint32_t breaker_cooldown_ms; /* how long an open breaker fails calls at once; default 1000 */
    uint32_t flags;               /* SHMC_L2_* */
    uint32_t outage_write_ttl_ms; /* a BOTH set whose Redis write failed keeps its L1 copy, as an
                                     L1-only entry, for at most this long; default (0) 1000 */
    uint32_t link_lease_ms;       /* the staleness bound when the invalidation link fails: L1
                                     copies of L2 values stop being served this long after the
                                     last answered heartbeat; default (0) 1000, 50..60000 */
    uint32_t reserved32;
    const char *tracking_prefix;  /* tracking mode watches only the keys that start with the
                                     namespace and then this (BCAST PREFIX), for callers that put
                                     their own namespace inside the keys (the Python package);
                                     NULL or "": the whole namespace */
    uint8_t reserved[48];
} shmc_l2_options;

/* L2 figures. Counters are host-wide (kept in the segment, summed over every process of the
 * host) and start at zero when the segment is created; connected and breaker_open are this
 * process's view. */
typedef struct shmc_l2_stats {
    uint32_t configured;   /* 1 if this handle has an L2 */
    uint32_t connected;    /* 1 if this process's last L2 call succeeded */
    uint32_t breaker_open; /* 1 if this process's breaker is open now */
    uint32_t subscribed;   /* 1 if some process of this host holds a live invalidation subscription */
    uint32_t subscriber_pid; /* that process (0: none) */
    uint32_t invalidation_mode; /* SHMC_INVAL_*: how the host's last subscription learns of writes */
    uint64_t hits;
    uint64_t misses;
    uint64_t sets;
    uint64_t deletes;
    uint64_t errors;            /* failed L2 calls (timeouts, connection errors, error replies) */
    uint64_t timeouts;          /* of which: command or connect timeouts */
    uint64_t dropped_writes;    /* writes not sent (breaker open or failed) */
    uint64_t breaker_opens;     /* times a breaker opened */
    uint64_t fills;             /* L2 hits copied into L1 */
    uint64_t invalidations_sent;
    uint64_t invalidations_applied; /* keys (or patterns) dropped from L1 by the subscriber */
    uint64_t resyncs;           /* epoch bumps: every L1 copy of an L2 value made before is
                                   dropped (new subscription, FLUSHALL/FLUSHDB, lost message) */
    uint64_t resync_dropped;    /* always 0 since coherence v2: copies are dropped lazily */
    uint64_t reserved[8];
} shmc_l2_stats;

/* Fill *opts with the defaults (url NULL). */
SHMC_API void shmc_l2_options_default(shmc_l2_options *opts);

/* Give the handle a Redis tier. Call once, right after shmc_open and before the handle is shared
 * between threads. Does not connect (the first L2 call does): a Redis that is down is not an
 * error here. Errors: SHMC_E_INVAL (bad URL or option, see shmc_errmsg), SHMC_E_EXISTS (already
 * attached). */
SHMC_API int shmc_l2_attach(shmc_cache *cache, const shmc_l2_options *opts);

/* Get key from the tiers in the mask (see the summary above). On a hit, *served_by (if not NULL)
 * gets SHMC_TIER_L1 or SHMC_TIER_L2. fill_ttl_ms caps the TTL of the L1 copy of an L2 hit (0: the
 * L2 TTL alone). Errors: those of shmc_get, SHMC_E_L2_UNAVAILABLE or SHMC_E_L2_REPLY when L1 (if
 * asked) missed and L2 could not answer (treat as a miss), SHMC_E_L2_NOT_CONFIGURED. A
 * SHMC_E_BUFFER_TOO_SMALL after an L2 hit has already filled L1, so the retry hits L1. */
SHMC_API int shmc_tget(shmc_cache *cache, const void *key, size_t key_len, void *buf, size_t cap,
                       size_t *value_len, uint32_t *flags, int64_t *ttl_left_ms, uint32_t tiers,
                       uint64_t fill_ttl_ms, uint32_t *served_by);

/* shmc_read: shmc_tget's arguments and results in one structure, for callers that pay per
 * argument (an FFI such as Python's ctypes spends about 25 ns converting each one: four here
 * instead of eleven). The in fields are read at each call, so one structure per thread can be
 * reused; set buf and cap once, and tiers and fill_ttl_ms when they change. */
typedef struct shmc_read {
    void *buf;              /* in: where the value is copied (may be NULL when cap is 0) */
    size_t cap;             /* in: its capacity in bytes */
    size_t value_len;       /* out: the value's length (the length needed on BUFFER_TOO_SMALL) */
    uint32_t tiers;         /* in: SHMC_TIER_* mask (0 means SHMC_TIER_L1), may carry
                             * SHMC_TGET_AFTER_L1_MISS */
    uint32_t served_by;     /* out: SHMC_TIER_L1 or SHMC_TIER_L2, on success */
    uint64_t fill_ttl_ms;   /* in: as shmc_tget's */
    uint32_t flags;         /* out: the value's flags */
    uint32_t reserved32;
    int64_t ttl_left_ms;    /* out: as shmc_get's */
    uint8_t reserved[32];
} shmc_read;

/* Get key as shmc_tget does (an L1 read, with tiers L1, is shmc_get itself; the Redis tier needs
 * shmc_l2_attach), with the buffer, the mask and the results in *r. Same return codes as
 * shmc_tget; SHMC_E_INVAL for r NULL. Since 0.3.0. */
SHMC_API int shmc_read_into(shmc_cache *cache, const void *key, size_t key_len, shmc_read *r);

/* Set key in the tiers in the mask, with separate TTLs (0: never expires). L2 is written first.
 * Returns 0 if every tier asked was written; otherwise the first error, with the other tiers still
 * attempted (an L2 outage returns SHMC_E_L2_UNAVAILABLE with L1 written and the L2 write counted
 * as dropped). */
SHMC_API int shmc_tset(shmc_cache *cache, const void *key, size_t key_len, const void *value,
                       size_t value_len, uint32_t flags, uint64_t l1_ttl_ms, uint64_t l2_ttl_ms,
                       uint32_t tiers);

/* Delete key from the tiers in the mask (L2 first, then L1). Returns 0 if it was removed from
 * any tier, SHMC_E_NOTFOUND if from none, or the first error (the other tiers still attempted). */
SHMC_API int shmc_tdel(shmc_cache *cache, const void *key, size_t key_len, uint32_t tiers);

/* Purge keys matching pattern (glob of shmc_purge) from the tiers in the mask. On L2: SCAN with
 * MATCH in the handle's namespace and batched UNLINK, never KEYS. removed_l1 / removed_l2 (either
 * may be NULL) get the counts. Errors: SHMC_E_BAD_PATTERN, those of shmc_purge, L2 errors. */
SHMC_API int shmc_tpurge(shmc_cache *cache, const void *pattern, size_t pattern_len,
                         uint32_t tiers, uint64_t *removed_l1, uint64_t *removed_l2);

/* One PING to Redis on one of the handle's connections, bounded by command_timeout_ms: 0 if Redis
 * answered, SHMC_E_L2_UNAVAILABLE (or SHMC_E_L2_REPLY) if not, SHMC_E_L2_NOT_CONFIGURED without an
 * L2. Counts no lookup (health checks and start-up probes use it so that they do not change the
 * hit/miss figures), but updates what every call does: the connected flag and the circuit
 * breaker. While the breaker is open it fails at once without a round trip. Since 0.3.0. */
SHMC_API int shmc_l2_ping(shmc_cache *cache);

/* L2 figures. On a handle without an L2, configured, connected and breaker_open are 0 and the
 * host-wide counters are still reported (other processes of the host may use L2). */
SHMC_API int shmc_l2_get_stats(shmc_cache *cache, shmc_l2_stats *out);

/* ---- Single flight: one computation per key per host -----------------------------------------
 * When a hot key is missing or expires, every process would recompute it at once (a stampede).
 * shmc_fetch gives exactly one caller on the host the lease to compute a missing key; the others
 * wait for its value (bounded) instead of computing too. See docs/stampede.md.
 *
 *   shmc_fetch_result r;
 *   shmc_fetch(c, key, klen, buf, cap, &opts, &r);
 *   switch (r.outcome) {
 *   case SHMC_FETCH_HIT: case SHMC_FETCH_STALE:           use buf; done
 *   case SHMC_FETCH_STALE_REFRESH: case SHMC_FETCH_EARLY_REFRESH:
 *                                                         use buf, then recompute as below
 *   case SHMC_FETCH_COMPUTE: case SHMC_FETCH_COMPUTE_UNLEASED:
 *       compute; on success shmc_fetch_complete(c, key, klen, v, vlen, 0, ms, &opts, r.lease);
 *                on failure shmc_fetch_abandon(c, key, klen, r.lease);
 *   }
 *
 * - Leases live in the segment (8 per stripe). A waiter polls (50 us, doubling to 2 ms) for the
 *   value, the lease's release, its owner's death (then it takes the lease over at once: within a
 *   few ms of the death) or its deadline (lease_ms after the grant: the bound for a hung owner).
 *   A waiter that waited wait_ms, or that finds every lease slot of its stripe taken, computes
 *   without a lease (SHMC_FETCH_COMPUTE_UNLEASED).
 * - Stale-while-revalidate: a value stored by shmc_fetch_complete with stale_ttl_ms stays
 *   servable that long after its TTL. shmc_fetch then returns it at once: to one caller with the
 *   lease to refresh it (SHMC_FETCH_STALE_REFRESH), to the others as SHMC_FETCH_STALE. Every other
 *   call (shmc_get, shmc_tget, scan, ...) treats a stale value as absent.
 * - XFetch (probabilistic early refresh, Vattani et al., VLDB 2015): with xfetch_beta > 0, a hit
 *   whose remaining TTL is short compared with its recorded compute time may be given the lease
 *   to refresh early (SHMC_FETCH_EARLY_REFRESH), so hot keys rarely expire at all.
 * - With an L2 (tiers SHMC_TIER_BOTH): an L1 miss asks Redis before computing; with
 *   SHMC_FETCH_L2_LOCK the lease owner also takes a lock in Redis (SET NX PX lease_ms) so that one
 *   host computes for all, and the other hosts wait (bounded) for the value to appear in Redis.
 * - Event loops: with SHMC_FETCH_NO_WAIT the call never blocks: what L1 alone settles is
 *   returned at once, anything else as SHMC_FETCH_BUSY with nothing taken (then call again
 *   without the flag, in a thread). A BUSY call counts nothing in shmc_stats: the call that
 *   follows it counts the lookup.
 * - A lease belongs to the process that received it: complete or abandon it from that process
 *   (any thread). A caller holding a lease must not fetch the same key again before completing
 *   it: it would wait for itself until the deadline. */

/* shmc_fetch_result.outcome. Pinned values. */
#define SHMC_FETCH_HIT 1              /* a fresh value is in buf */
#define SHMC_FETCH_STALE 2            /* a stale value is in buf; another caller (or host) is
                                         refreshing it, or no lease slot was free */
#define SHMC_FETCH_STALE_REFRESH 3    /* a stale value is in buf and this caller holds the lease:
                                         serve it, then recompute and complete (or abandon) */
#define SHMC_FETCH_EARLY_REFRESH 4    /* a fresh value is in buf and XFetch gave this caller the
                                         lease: serve it, then recompute and complete (or abandon) */
#define SHMC_FETCH_COMPUTE 5          /* no value; this caller holds the lease: compute, then
                                         complete or abandon */
#define SHMC_FETCH_COMPUTE_UNLEASED 6 /* no value and no lease (waited wait_ms, no free lease slot,
                                         or the stripe lock timed out): compute and complete with
                                         lease 0 */
#define SHMC_FETCH_BUSY 7             /* only with SHMC_FETCH_NO_WAIT: settling this fetch needs a
                                         wait or a Redis round trip; nothing was taken: call again
                                         without the flag (off the event loop) */

/* shmc_fetch_options.flags */
#define SHMC_FETCH_L2_LOCK 0x1u /* also take a cross-host lock in Redis (needs SHMC_TIER_BOTH) */
#define SHMC_FETCH_NO_WAIT 0x2u /* never block: settle from L1 alone what needs neither a wait
                                   for another caller nor Redis (a fresh hit, a stale value, a
                                   free lease with L1 only), else return SHMC_FETCH_BUSY. For
                                   event loops: try inline, call again without it in a thread */

/* The policy of one cached computation, given to shmc_fetch and shmc_fetch_complete alike.
 * Always start from shmc_fetch_options_default(). */
typedef struct shmc_fetch_options {
    uint32_t tiers;        /* SHMC_TIER_L1 (default) or SHMC_TIER_BOTH */
    uint32_t flags;        /* SHMC_FETCH_* */
    uint64_t ttl_ms;       /* complete: how long a value stays fresh; 0: never expires */
    uint64_t stale_ttl_ms; /* complete: how long after ttl_ms it may still be served stale by
                              shmc_fetch; 0: none; below 2^32 (49 days) */
    uint64_t l2_ttl_ms;    /* complete, BOTH: TTL of the Redis copy; 0: never expires */
    uint64_t fill_ttl_ms;  /* fetch, BOTH: caps the freshness of an L1 copy of an L2 hit; 0: the
                              L2 TTL alone */
    uint32_t lease_ms;     /* how long a lease owner may compute before others take over; also
                              the PX of the Redis lock. Default 5000; 1 to 3600000 */
    uint32_t wait_ms;      /* how long a waiter waits for another caller's value before computing
                              itself; 0 (default): 2 x lease_ms, enough to outlast one dead or
                              hung owner and its successor's computation */
    double xfetch_beta;    /* XFetch eagerness: 0 (default) off, 1.0 the paper's choice, above 1
                              earlier refreshes */
    uint8_t reserved[64];  /* zero */
} shmc_fetch_options;

/* What shmc_fetch found and what the caller should do (outcome). */
typedef struct shmc_fetch_result {
    uint32_t outcome;    /* SHMC_FETCH_* */
    uint32_t flags;      /* flags stored with the value (outcomes with a value) */
    uint64_t value_len;  /* length of the value in buf; with SHMC_E_BUFFER_TOO_SMALL, needed */
    uint64_t lease;      /* nonzero: this caller holds the lease; pass it to complete/abandon */
    int64_t ttl_left_ms; /* freshness left: ms (HIT, EARLY_REFRESH), -1 never expires, 0 stale
                            or no value */
    uint32_t served_by;  /* SHMC_TIER_L1 or SHMC_TIER_L2 (outcomes with a value), else 0 */
    uint32_t waited_ms;  /* time spent waiting for another caller's computation */
    uint64_t reserved[4];
} shmc_fetch_result;

/* Host-wide single-flight figures: counters kept in the segment since it was created, plus the
 * leases held now. */
typedef struct shmc_flight_stats {
    uint64_t leases_granted;     /* leases given (misses, stale and early refreshes, takeovers) */
    uint64_t waits;              /* fetches that waited for another caller's computation */
    uint64_t stampedes_avoided;  /* of those, served by that computation (no work of their own) */
    uint64_t lease_timeouts;     /* of those, gave up after wait_ms and computed unleased */
    uint64_t takeovers;          /* leases taken from an owner that died or overran lease_ms */
    uint64_t stale_served;       /* stale values returned (STALE and STALE_REFRESH) */
    uint64_t early_refreshes;    /* XFetch: fresh hits that were given the lease to refresh */
    uint64_t unleased;           /* fetches that found every lease slot of their stripe taken */
    uint64_t abandoned;          /* leases given back by shmc_fetch_abandon */
    uint64_t l2_locks;           /* cross-host Redis locks taken */
    uint64_t l2_lock_busy;       /* fetches that found another host's Redis lock held (a miss
                                    then waits for its value in Redis; a refresh is left to it) */
    uint64_t l2_served;          /* misses served the value another host computed meanwhile */
    uint64_t leases_held;        /* now: leases whose owner lives and whose deadline is ahead */
    uint64_t leases_reclaimable; /* now: leases of dead owners or past their deadline (the next
                                    caller that wants one takes it) */
    uint64_t lease_slots;        /* lease slots in the segment (16 per stripe) */
    uint64_t reserved[8];
} shmc_flight_stats;

/* Fill *opts with the defaults: L1 only, no TTL, no stale window, lease 5000 ms, wait 2 x lease,
 * XFetch off. */
SHMC_API void shmc_fetch_options_default(shmc_fetch_options *opts);

/* Look key up for a cached computation and say what the caller should do (see above). opts NULL
 * means defaults. out->outcome tells whether buf holds a value and whether the caller holds the
 * lease (out->lease nonzero). A value that does not fit cap gives SHMC_E_BUFFER_TOO_SMALL with
 * out->value_len set and no lease taken: call again with a larger buffer. Waits only on a miss
 * while another caller (of the host, or with SHMC_FETCH_L2_LOCK of another host) computes it, at
 * most wait_ms, plus with BOTH the Redis round trips (each within command_timeout_ms). A stripe
 * lock timeout gives SHMC_FETCH_COMPUTE_UNLEASED, not an error. L2 failures count as L2 misses.
 * Errors: SHMC_E_INVAL (bad option, see shmc_errmsg),
 * SHMC_E_KEY_TOO_LONG, SHMC_E_BUFFER_TOO_SMALL, SHMC_E_L2_NOT_CONFIGURED, SHMC_E_CORRUPT. */
SHMC_API int shmc_fetch(shmc_cache *cache, const void *key, size_t key_len, void *buf, size_t cap,
                        const shmc_fetch_options *opts, shmc_fetch_result *out);

/* Store the value computed after shmc_fetch and release the lease (0: none held) in one step, so
 * that waiters see the value at once. Fresh for opts->ttl_ms, then stale for opts->stale_ttl_ms;
 * compute_ms is recorded for XFetch. With BOTH, Redis is written first (SET PX l2_ttl_ms and an
 * invalidation, as shmc_tset) and the Redis lock released. A lease taken over meanwhile is left
 * to its new owner; the value is stored all the same. The lease is released even when the store
 * fails. Errors: those of shmc_tset (with BOTH: SHMC_E_L2_UNAVAILABLE means L1 was written and
 * the L2 write dropped). */
SHMC_API int shmc_fetch_complete(shmc_cache *cache, const void *key, size_t key_len,
                                 const void *value, size_t value_len, uint32_t flags,
                                 uint32_t compute_ms, const shmc_fetch_options *opts,
                                 uint64_t lease);

/* Give the lease back without a value (the computation failed): a waiter takes it over and
 * computes. Releases the Redis lock too, if one was taken. lease 0 does nothing. Errors:
 * SHMC_E_INVAL, SHMC_E_KEY_TOO_LONG, SHMC_E_LOCK_TIMEOUT (the lease then ends at its deadline). */
SHMC_API int shmc_fetch_abandon(shmc_cache *cache, const void *key, size_t key_len,
                                uint64_t lease);

/* The host's single-flight figures. */
SHMC_API int shmc_flight_get_stats(shmc_cache *cache, shmc_flight_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* SHMCACHE_SHMCACHE_H */
