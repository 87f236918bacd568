// commands.h - the verbs of shmcache-cli: one options struct and one run function per verb.
//
// main.cpp is the only file that knows about argument parsing (CLI11); it fills these structs
// and calls run_*. Each run_* returns the process exit status (exit_codes.h) and prints its own
// messages. Keeping CLI11 out of the verb files keeps them quick to compile and easy to call
// from a test or a fuzzer.
//
// `tier` fields hold --tier as given ("l1", "l2", "both") or "" for the default, which depends
// on whether a Redis URL was given: resolve_tiers() in tiers.h turns them into a mask.
#ifndef SHMCACHE_CLI_COMMANDS_H
#define SHMCACHE_CLI_COMMANDS_H

#include <cstdint>
#include <optional>
#include <string>

#include "segment.h"

namespace shmcache::cli {

// stats.cpp
struct StatsOptions {
    bool json = false;
    bool prometheus = false;
    bool per_stripe = false;
    double watch_seconds = 0;  // 0: print once
    uint64_t count = 0;        // with --watch: stop after this many refreshes (0: until Ctrl-C)
};
int run_stats(const Global& g, const StatsOptions& o);

// kv.cpp
struct GetOptions {
    std::string key;
    bool raw = false;
    bool json = false;  // one JSON object: a warm record plus the tier that served it
    std::string tier;
};
int run_get(const Global& g, const GetOptions& o);

struct SetOptions {
    std::string key;
    std::string value;
    double ttl_seconds = 0;
    std::optional<double> l2_ttl_seconds;  // --l2-ttl; unset: ttl_seconds in L2 too
    bool json = false;
    uint64_t compress_threshold = 1024;
    std::string tier;
    CreateOptions create;
};
int run_set(const Global& g, const SetOptions& o);

struct DelOptions {
    std::string key;
    std::string tier;
};
int run_del(const Global& g, const DelOptions& o);

struct TtlOptions {
    std::string key;
    bool ms = false;
    std::string tier;
};
int run_ttl(const Global& g, const TtlOptions& o);

// keys.cpp
struct KeysOptions {
    std::string pattern;
    uint64_t limit = 1000;  // 0: no limit
    bool long_format = false;
};
int run_keys(const Global& g, const KeysOptions& o);

struct PurgeOptions {
    std::string pattern;
    bool dry_run = false;
    std::string tier;
};
int run_purge(const Global& g, const PurgeOptions& o);

// admin.cpp
int run_check(const Global& g, bool json);
int run_info(const Global& g, bool json);
int run_destroy(const Global& g, bool force);

// warm.cpp
struct WarmOptions {
    std::string input = "-";  // a file, or "-" for stdin
    uint64_t batch_size = 1000;
    bool strict = false;
    double ttl_seconds = 0;  // for records without "ttl"
    uint64_t compress_threshold = 1024;
    bool progress = true;  // --no-progress turns the bar off even on a terminal
    std::string tier;
    CreateOptions create;
};
int run_warm(const Global& g, const WarmOptions& o);

}  // namespace shmcache::cli

#endif
