// main.cpp - shmcache-cli: argument parsing and dispatch to the verbs (commands.h).
//
// This is the only file that includes CLI11 (slow to compile, and nothing the verbs need): it
// turns the command line into the option structs of commands.h and calls one run_* function,
// whose return value is the exit status. A parse error exits with 2, like every other usage
// error, so scripts see one status for "you called it wrong".
//
// --name may be given before or after the verb (subcommands fall through to the top level).
// When it is not given, the library resolves the name ($SHMCACHE_NAME, then "shmcache"), so the
// CLI finds the same segment the application does.
//
// --redis, --redis-prefix and --redis-timeout-ms work the same way, and fall back to
// $SHMCACHE_REDIS_URL and $SHMCACHE_REDIS_PREFIX (never to a plain $REDIS_URL: a variable meant
// for some other program must not turn an L1 purge into a purge of Redis). They are read here,
// not by CLI11, so that "given on the command line" and "from the environment" stay apart.
#include <shmcache/shmcache.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>
#include <string>

#include "commands.h"
#include "exit_codes.h"

using namespace shmcache::cli;

namespace {

constexpr const char* kSegmentFooter =
    "Exit codes: 0 success, 3 no such segment, 4 segment of another version, 6 lock timeout,\n"
    "7 other error, 2 usage error. `shmcache-cli --help` lists them all.";

constexpr const char* kKeyFooter =
    "Exit codes: 0 success, 1 key not found, 3 no such segment, 4 segment of another version,\n"
    "6 lock timeout, 7 other error, 8 Redis L2 unavailable (with --redis), 2 usage error.";

constexpr const char* kTierFooter =
    "Exit codes: 0 success, 3 no such segment, 4 segment of another version, 6 lock timeout,\n"
    "7 other error, 8 Redis L2 unavailable (with --redis), 2 usage error.";

constexpr const char* kTierHelp =
    "l1 (this host's shared memory), l2 (Redis) or both; default: both with --redis, l1 without";

// For a URL's query: everything but unreserved characters and '/' (paths stay readable).
std::string percent_encode(const std::string& s) {
    static const char hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char ch : s) {
        if (std::isalnum(ch) || std::strchr("-._~/", ch)) {
            out.push_back(char(ch));
        } else {
            out.push_back('%');
            out.push_back(hex[ch >> 4]);
            out.push_back(hex[ch & 15]);
        }
    }
    return out;
}

std::string version_text() {
    return std::string("shmcache-cli ") + std::to_string(SHMC_VERSION_MAJOR) + "." +
           std::to_string(SHMC_VERSION_MINOR) + "." + std::to_string(SHMC_VERSION_PATCH) +
           " (libshmcache " + shmc_version() + ")";
}

CLI::App* verb(CLI::App& app, const char* name, const char* what, const char* footer) {
    CLI::App* sub = app.add_subcommand(name, what);
    sub->fallthrough();
    sub->footer(footer);
    return sub;
}

void add_create_options(CLI::App* sub, CreateOptions* c) {
    auto* size = sub->add_option("--size-mb", c->size_mb,
                                 "segment size in MiB, used only if this command creates the "
                                 "segment (default 64)")
                     ->type_name("MIB")
                     ->check(CLI::Range(uint64_t(1), uint64_t(1) << 20).description(""));
    auto* stripes = sub->add_option("--stripes", c->stripes,
                                    "lock stripes (a power of two), used only if this command "
                                    "creates the segment (default 64)")
                        ->type_name("N")
                        ->check(CLI::Range(1u, 1u << 16).description(""));
    // Remember whether they were given, to warn when an existing segment ignores them.
    sub->callback([c, size, stripes] {
        c->size_given = size->count() > 0;
        c->stripes_given = stripes->count() > 0;
    });
}

void add_tier_option(CLI::App* sub, std::string* tier) {
    sub->add_option("--tier", *tier, kTierHelp)
        ->type_name("TIER")
        ->check(CLI::IsMember({"l1", "l2", "both"}).description(""));
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "shmcache-cli: look at and manage a shmcache segment (the host-wide shared-memory cache)\n"
        "from the command line. Values are read and written in the value envelope that the\n"
        "library's bindings use. See docs/cli.md.",
        "shmcache-cli"};
    app.footer(kExitCodesHelp);
    app.require_subcommand(1);
    app.set_version_flag("--version", version_text(), "print the CLI and library versions");

    Global g;
    std::string name;
    auto* name_opt = app.add_option("-n,--name", name,
                                    "segment name (default: $SHMCACHE_NAME, then \"shmcache\"); "
                                    "the segment is /dev/shm/NAME")
                         ->type_name("NAME");
    std::string redis_url, redis_prefix;
    uint32_t redis_timeout_ms = RedisOptions{}.timeout_ms;
    auto* redis_opt = app.add_option("--redis", redis_url,
                                     "Redis URL of the L2 tier: redis://[[user]:password@]host"
                                     "[:port][/db], rediss://... (TLS), unix:///path, "
                                     "redis+sentinel://host:port,.../master[/db] or "
                                     "redis+cluster://host:port,... (default: "
                                     "$SHMCACHE_REDIS_URL; \"\" for none)")
                          ->type_name("URL");
    // TLS files and names; added to the URL's query (docs/l2.md, "TLS"), which needs rediss://.
    std::vector<std::pair<const char*, std::string>> tls_params{
        {"ssl_ca_certs", ""}, {"ssl_certfile", ""}, {"ssl_keyfile", ""}, {"ssl_server_name", ""}};
    app.add_option("--redis-tls-ca", tls_params[0].second,
                   "PEM file of the CAs that may sign the Redis server's certificate")
        ->type_name("FILE");
    app.add_option("--redis-tls-cert", tls_params[1].second,
                   "client certificate (PEM) for Redis servers that require one")
        ->type_name("FILE");
    app.add_option("--redis-tls-key", tls_params[2].second,
                   "the client certificate's key (PEM; default: in the certificate file)")
        ->type_name("FILE");
    app.add_option("--redis-tls-server-name", tls_params[3].second,
                   "name the server's certificate must carry (default: the URL's host)")
        ->type_name("NAME");
    auto* prefix_opt = app.add_option("--redis-prefix", redis_prefix,
                                      "L2 namespace: Redis keys are PREFIX:KEY (default: "
                                      "$SHMCACHE_REDIS_PREFIX, else none)")
                           ->type_name("PREFIX");
    auto* timeout_opt =
        app.add_option("--redis-timeout-ms", redis_timeout_ms,
                       "bound on each Redis call, connecting included (default 1000)")
            ->type_name("MS")
            ->check(CLI::Range(1u, 60000u).description(""));

    // stats
    StatsOptions stats_o;
    auto* stats = verb(app, "stats",
                       "host-wide statistics, L1, single flight and L2: a table, JSON, "
                       "Prometheus text, or a live view with --watch",
                       "Exit codes: 0 success (also when Redis does not answer: the output says\n"
                       "so), 3 no such segment, 4 segment of another version, 7 other error,\n"
                       "2 usage error.");
    auto* s_json = stats->add_flag("--json", stats_o.json, "print one JSON object");
    auto* s_prom = stats->add_flag("--prometheus", stats_o.prometheus,
                                   "print the Prometheus text exposition format");
    auto* s_watch = stats
                        ->add_option("--watch", stats_o.watch_seconds,
                                     "redraw every SECONDS, with per-second rates (Ctrl-C stops)")
                        ->type_name("SECONDS")
                        ->check(CLI::PositiveNumber);
    stats->add_option("--count", stats_o.count, "with --watch: stop after N refreshes")
        ->type_name("N")
        ->needs(s_watch);
    auto* s_stripe =
        stats->add_flag("--per-stripe", stats_o.per_stripe, "add a table with one row per stripe");
    s_json->excludes(s_prom);
    s_watch->excludes(s_json)->excludes(s_prom);
    s_stripe->excludes(s_prom);

    // get
    GetOptions get_o;
    auto* get =
        verb(app, "get", "print the value of KEY (decoded from the value envelope)", kKeyFooter);
    get->add_option("key", get_o.key, "the key")->type_name("KEY")->required();
    auto* g_raw =
        get->add_flag("--raw", get_o.raw, "write the stored bytes exactly, envelope included");
    get->add_flag("--json", get_o.json,
                  "print one JSON object: a warm record (key, value/text/value_b64, ttl) plus "
                  "tier, serializer, compressed, stored_bytes")
        ->excludes(g_raw);
    add_tier_option(get, &get_o.tier);

    // set
    SetOptions set_o;
    auto* set = verb(app, "set",
                     "store VALUE under KEY as text, or as JSON with --json "
                     "(creates the segment if absent)",
                     kTierFooter);
    set->add_option("key", set_o.key, "the key")->type_name("KEY")->required();
    set->add_option("value", set_o.value, "the value (text; JSON with --json)")
        ->type_name("VALUE")
        ->required();
    set->add_option("--ttl", set_o.ttl_seconds,
                    "seconds to live, in every tier written (default 0: never expires)")
        ->type_name("SECONDS")
        ->check(CLI::NonNegativeNumber);
    set->add_option("--l2-ttl", set_o.l2_ttl_seconds,
                    "seconds to live in Redis, when it should differ from --ttl")
        ->type_name("SECONDS")
        ->check(CLI::NonNegativeNumber);
    add_tier_option(set, &set_o.tier);
    set->add_flag("--json", set_o.json, "VALUE is JSON: validate it and store it as JSON");
    set->add_option("--compress-threshold", set_o.compress_threshold,
                    "compress values of at least BYTES with zstd (default 1024, 0 = never)")
        ->type_name("BYTES");
    add_create_options(set, &set_o.create);

    // del
    DelOptions del_o;
    auto* del = verb(app, "del", "remove KEY", kKeyFooter);
    del->add_option("key", del_o.key, "the key")->type_name("KEY")->required();
    add_tier_option(del, &del_o.tier);

    // ttl
    TtlOptions ttl_o;
    auto* ttl = verb(app, "ttl",
                     "print the seconds KEY has left to live (rounded up), or "
                     "\"no expiry\"",
                     kKeyFooter);
    ttl->add_option("key", ttl_o.key, "the key")->type_name("KEY")->required();
    ttl->add_flag("--ms", ttl_o.ms, "print milliseconds instead");
    add_tier_option(ttl, &ttl_o.tier);

    // keys
    KeysOptions keys_o;
    auto* keys =
        verb(app, "keys", "list the L1 keys matching a glob PATTERN, one per line (escaped)",
             kSegmentFooter);
    keys->add_option("pattern", keys_o.pattern,
                     "glob: * ? [abc] [a-z] [!a], \\ escapes (quote it for the shell)")
        ->type_name("PATTERN")
        ->required();
    keys->add_option("--limit", keys_o.limit, "list at most N keys (default 1000, 0 = no limit)")
        ->type_name("N");
    keys->add_flag("-l,--long", keys_o.long_format, "also print value size and TTL left");

    // purge
    PurgeOptions purge_o;
    auto* purge =
        verb(app, "purge", "remove every key matching a glob PATTERN and print how many, per tier",
             kTierFooter);
    purge
        ->add_option("pattern", purge_o.pattern,
                     "glob: * ? [abc] [a-z] [!a], \\ escapes (quote it for the shell)")
        ->type_name("PATTERN")
        ->required();
    purge->add_flag("--dry-run", purge_o.dry_run,
                    "list the matching keys and remove nothing (L1 only: needs --tier l1 when "
                    "--redis is given)");
    add_tier_option(purge, &purge_o.tier);

    // check
    bool check_json = false;
    auto* check = verb(app, "check", "verify every stripe and rebuild damaged ones",
                       "Exit codes: 0 clean or repaired, 5 damage remains, 6 some stripes could\n"
                       "not be checked (lock timeout), 3 no such segment, 4 segment of another\n"
                       "version, 7 other error, 2 usage error.");
    check->add_flag("--json", check_json, "print the report as JSON");

    // info
    bool info_json = false;
    auto* info = verb(app, "info", "layout, geometry, limits, owner, mode and attached processes",
                      kSegmentFooter);
    info->add_flag("--json", info_json, "print one JSON object");

    // destroy
    bool destroy_force = false;
    auto* destroy = verb(app, "destroy",
                         "remove the segment (refuses while processes are "
                         "attached, unless --force)",
                         "Exit codes: 0 removed, 3 no such segment, 4 segment of another version\n"
                         "(use --force), 7 processes attached (use --force) or other error,\n"
                         "2 usage error.");
    destroy->add_flag("--force", destroy_force,
                      "remove it even while processes are attached, or if it was made by "
                      "another version (attached processes keep the old memory until they exit)");

    // warm
    WarmOptions warm_o;
    auto* warm =
        verb(app, "warm",
             "load JSON Lines records from FILE (or stdin) into the cache "
             "(creates the segment if absent)",
             "Records, one JSON object per line:\n"
             "  {\"key\": \"K\", \"value\": <any JSON>, \"ttl\": SECONDS}   stored as JSON\n"
             "  {\"key\": \"K\", \"value_b64\": \"<base64>\"}   stored as bytes\n"
             "  {\"key\": \"K\", \"text\": \"...\"}   stored as text\n"
             "\"ttl\" (seconds, 0 = never) is optional in each; blank lines are skipped.\n"
             "Exit codes: 0 every record written, 1 some lines skipped, 2 usage error\n"
             "(or unreadable FILE), 3/4/6/7 as for the other verbs, 8 Redis L2 unavailable\n"
             "(with --redis; the run stops there).");
    warm->add_option("file", warm_o.input, "input file, or - for stdin (the default)")
        ->type_name("FILE");
    warm->add_option("--batch-size", warm_o.batch_size,
                     "records validated together before any of them is written (default 1000)")
        ->type_name("N")
        ->check(CLI::Range(uint64_t(1), uint64_t(1) << 32).description(""));
    warm->add_flag("--strict", warm_o.strict,
                   "stop at the first bad line; nothing of its batch is written");
    warm->add_option("--ttl", warm_o.ttl_seconds,
                     "seconds to live for records without \"ttl\" (default 0: never expires)")
        ->type_name("SECONDS")
        ->check(CLI::NonNegativeNumber);
    warm->add_option("--compress-threshold", warm_o.compress_threshold,
                     "compress values of at least BYTES with zstd (default 1024, 0 = never)")
        ->type_name("BYTES");
    bool no_progress = false;
    warm->add_flag("--no-progress", no_progress, "no progress bar, even on a terminal");
    add_tier_option(warm, &warm_o.tier);
    add_create_options(warm, &warm_o.create);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? kExitOk : kExitUsage;
    }
    if (name_opt->count()) {
        if (name.empty()) {
            std::fprintf(stderr, "shmcache-cli: --name must not be empty\n");
            return kExitUsage;
        }
        g.name = name;
    }
    if (!redis_opt->count())
        if (const char* env = std::getenv("SHMCACHE_REDIS_URL")) redis_url = env;
    if (!prefix_opt->count())
        if (const char* env = std::getenv("SHMCACHE_REDIS_PREFIX")) redis_prefix = env;
    for (const auto& [param, value] : tls_params) {
        if (value.empty()) continue;
        if (redis_url.empty()) {
            std::fprintf(stderr, "shmcache-cli: --redis-tls-* options need --redis rediss://...\n");
            return kExitUsage;
        }
        redis_url += (redis_url.find('?') == std::string::npos ? "?" : "&") + std::string(param) +
                     "=" + percent_encode(value);
    }
    if (!redis_url.empty()) {
        g.redis = RedisOptions{redis_url, redis_prefix, redis_timeout_ms};
    } else if (prefix_opt->count() || timeout_opt->count()) {
        std::fprintf(stderr,
                     "shmcache-cli: --redis-prefix and --redis-timeout-ms need --redis URL (or "
                     "$SHMCACHE_REDIS_URL)\n");
        return kExitUsage;
    }
    if (*keys && redis_opt->count())
        std::fprintf(stderr,
                     "shmcache-cli keys: note: lists this host's L1 only (the library has no "
                     "call that lists Redis keys)\n");
    warm_o.progress = !no_progress;

    if (*stats) return run_stats(g, stats_o);
    if (*get) return run_get(g, get_o);
    if (*set) return run_set(g, set_o);
    if (*del) return run_del(g, del_o);
    if (*ttl) return run_ttl(g, ttl_o);
    if (*keys) return run_keys(g, keys_o);
    if (*purge) return run_purge(g, purge_o);
    if (*check) return run_check(g, check_json);
    if (*info) return run_info(g, info_json);
    if (*destroy) return run_destroy(g, destroy_force);
    if (*warm) return run_warm(g, warm_o);
    return kExitUsage;  // unreachable: require_subcommand(1)
}
