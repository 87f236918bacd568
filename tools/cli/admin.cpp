// admin.cpp - the verbs about the segment as a whole: check, info, destroy.
//
// `destroy` calls shmc_unlink directly, without opening the segment first: opening would add
// this process to the attach table the library counts, and would fail on a segment of another
// layout version, which is exactly the one an operator most needs to remove. With --force it
// opens briefly (when it can) only to say how many processes keep the old memory mapped.
#include <pwd.h>
#include <shmcache/shmcache.h>
#include <signal.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "exit_codes.h"
#include "format.h"

namespace shmcache::cli {

namespace {

using json = nlohmann::ordered_json;

std::string user_name(uint32_t uid) {
    struct passwd pw, *res = nullptr;
    char buf[4096];
    if (getpwuid_r(uid, &pw, buf, sizeof buf, &res) == 0 && res) return res->pw_name;
    return "?";
}

bool pid_running(uint32_t pid) { return pid && (kill(pid_t(pid), 0) == 0 || errno == EPERM); }

std::string local_time(uint64_t unix_ms) {
    std::time_t t = std::time_t(unix_ms / 1000);
    std::tm tm{};
    char buf[64];
    if (!localtime_r(&t, &tm) || !std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %Z", &tm))
        return std::to_string(unix_ms) + " ms since the epoch";
    return buf;
}

std::string age(uint64_t unix_ms) {
    const double now =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    const double s = now - double(unix_ms) / 1000;
    if (s < -5) return "in the future: the clock was set back";
    if (s < 1) return "just now";
    if (s < 120) return strf("%.0f s ago", s);
    if (s < 7200) return strf("%.0f min ago", s / 60);
    if (s < 2 * 86400) return strf("%.1f h ago", s / 3600);
    return strf("%.1f days ago", s / 86400);
}

}  // namespace

int run_check(const Global& g, bool as_json) {
    Cache cache;
    if (int e = open_existing(g, "check", &cache)) return e;
    shmc_check_report r{};
    const int rc = shmc_check(cache.get(), &r);
    if (rc != SHMC_OK && rc != SHMC_E_CORRUPT && rc != SHMC_E_LOCK_TIMEOUT)
        return report(g, "check", rc);
    const uint32_t left = r.stripes_damaged - r.stripes_repaired;
    std::string verdict;
    if (rc == SHMC_E_CORRUPT)
        verdict = strf("DAMAGE REMAINS in %u stripe(s)", left);
    else if (rc == SHMC_E_LOCK_TIMEOUT)
        verdict = strf(
            "incomplete: %u stripe(s) not checked (lock not granted in time); run "
            "check again",
            r.stripes_skipped);
    else if (r.stripes_damaged)
        verdict = strf("repaired: %u stripe(s) rebuilt", r.stripes_repaired);
    else
        verdict = "clean";
    if (as_json) {
        json j;
        j["stripes_checked"] = r.stripes_checked;
        j["stripes_damaged"] = r.stripes_damaged;
        j["stripes_repaired"] = r.stripes_repaired;
        j["stripes_skipped"] = r.stripes_skipped;
        j["entries_checked"] = r.entries_checked;
        j["entries_dropped"] = r.entries_dropped;
        j["result"] = rc == SHMC_E_CORRUPT        ? "damaged"
                      : rc == SHMC_E_LOCK_TIMEOUT ? "incomplete"
                      : r.stripes_damaged         ? "repaired"
                                                  : "clean";
        std::printf("%s\n", j.dump(2).c_str());
    } else {
        Table t({false, true});
        t.row({"stripes checked", with_commas(r.stripes_checked)});
        t.row({"stripes damaged", with_commas(r.stripes_damaged)});
        t.row({"stripes repaired", with_commas(r.stripes_repaired)});
        t.row({"stripes skipped", with_commas(r.stripes_skipped)});
        t.row({"entries checked", with_commas(r.entries_checked)});
        t.row({"entries dropped", with_commas(r.entries_dropped)});
        std::printf("%sresult: %s\n", t.render().c_str(), verdict.c_str());
    }
    if (rc == SHMC_E_CORRUPT) return kExitDamage;
    if (rc == SHMC_E_LOCK_TIMEOUT) return kExitLockTimeout;
    return kExitOk;
}

int run_info(const Global& g, bool as_json) {
    Cache cache;
    if (int e = open_existing(g, "info", &cache)) return e;
    shmc_info i{};
    shmc_stats s{};
    int rc = shmc_get_info(cache.get(), &i);
    if (rc == SHMC_OK) rc = shmc_get_stats(cache.get(), &s);
    if (rc != SHMC_OK) return report(g, "info", rc);
    // This command's own handle is one of i.attached; report the others.
    const uint32_t others = i.attached ? i.attached - 1 : 0;
    if (as_json) {
        json j;
        j["name"] = i.name;
        j["path"] = std::string("/dev/shm/") + i.name;
        j["layout_version"] = i.layout_version;
        j["library_version"] = shmc_version();
        j["size_bytes"] = i.size_bytes;
        j["n_stripes"] = i.n_stripes;
        j["block_size"] = i.block_size;
        j["bytes_capacity"] = s.bytes_capacity;
        j["max_entries"] = i.max_entries;
        j["max_key_len"] = i.max_key_len;
        j["max_value_len"] = i.max_value_len;
        j["strategy"] = strategy_name(i.strategy);
        j["owner_uid"] = i.owner_uid;
        j["owner"] = user_name(i.owner_uid);
        j["mode"] = strf("%04o", i.mode);
        j["attached_others"] = others;
        j["creator_pid"] = i.creator_pid;
        j["creator_running"] = pid_running(i.creator_pid);
        j["created_unix_ms"] = i.created_unix_ms;
        std::printf("%s\n", j.dump(2).c_str());
        return kExitOk;
    }
    Table t;
    t.row({"segment", strf("%s (/dev/shm/%s)", i.name, i.name)});
    t.row({"layout version", std::to_string(i.layout_version)});
    t.row({"library version", shmc_version()});
    t.row({"size", strf("%s (%llu bytes)", human_bytes(i.size_bytes).c_str(),
                        (unsigned long long)i.size_bytes)});
    t.row({"stripes", std::to_string(i.n_stripes)});
    t.row({"block size", strf("%u bytes", i.block_size)});
    t.row({"capacity", human_bytes(s.bytes_capacity) + " for entries"});
    t.row({"max entries",
           i.max_entries ? with_commas(i.max_entries) : std::string("no limit (memory only)")});
    t.row({"max key", strf("%u bytes", i.max_key_len)});
    t.row({"max value",
           strf("%s (%u bytes)", human_bytes(i.max_value_len).c_str(), i.max_value_len)});
    t.row({"strategy", strategy_name(i.strategy)});
    t.row({"owner",
           strf("uid %u (%s), mode %04o", i.owner_uid, user_name(i.owner_uid).c_str(), i.mode)});
    t.row({"attached", strf("%u other handle(s) (this command not counted)", others)});
    t.row({"creator pid",
           strf("%u (%s)", i.creator_pid, pid_running(i.creator_pid) ? "running" : "exited")});
    t.row({"created", local_time(i.created_unix_ms) + " (" + age(i.created_unix_ms) + ")"});
    std::printf("%s", t.render().c_str());
    return kExitOk;
}

int run_destroy(const Global& g, bool force) {
    const std::string name = resolved_name(g);
    const char* arg = g.name ? g.name->c_str() : nullptr;
    uint32_t others = 0;
    if (force) {
        shmc_options o;
        shmc_options_default(&o);
        o.flags = SHMC_OPEN_NO_CREATE;
        shmc_cache* c = nullptr;
        shmc_info i{};
        if (shmc_open(arg, &o, &c) == SHMC_OK && shmc_get_info(c, &i) == SHMC_OK && i.attached)
            others = i.attached - 1;
        shmc_close(c);
    }
    const int rc = shmc_unlink(arg, force ? 1 : 0);
    if (rc == SHMC_E_BUSY) {
        warn("destroy", std::string(shmc_errmsg()) +
                            ". Stop them first, or use --force: they keep using the old memory "
                            "until they exit, and new opens get a new segment");
        return kExitOther;
    }
    if (rc == SHMC_E_VERSION) {
        warn("destroy", std::string(shmc_errmsg()) + " (destroy --force)");
        return kExitVersion;
    }
    if (rc != SHMC_OK) return report(g, "destroy", rc);
    std::printf("destroyed segment '%s'\n", name.c_str());
    if (others)
        std::printf(
            "%u handle(s) were still attached: those processes keep the old memory until "
            "they exit\n",
            others);
    return kExitOk;
}

}  // namespace shmcache::cli
