// segment.cpp - see segment.h.
//
// The messages are written for an operator at a shell prompt: they name the segment and the file
// under /dev/shm, and for the errors that have a known remedy (a segment from another version, a
// segment that is not there yet, a stripe held by a stopped process) they say what to do. The
// library's own shmc_errmsg() text is kept whenever it carries facts we do not have (both layout
// versions, the size asked and free on ENOSPC).
#include "segment.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "exit_codes.h"
#include "tiers.h"

namespace shmcache::cli {

std::string resolved_name(const Global& g) {
    if (g.name && !g.name->empty()) return *g.name;
    const char* env = std::getenv("SHMCACHE_NAME");
    if (env && *env) return env;
    return "shmcache";
}

void warn(const char* verb, const std::string& message) {
    std::fprintf(stderr, "shmcache-cli %s: %s\n", verb, message.c_str());
}

int exit_code_for(int rc) {
    switch (rc) {
        case SHMC_OK: return kExitOk;
        case SHMC_E_NOTFOUND: return kExitNotFound;
        case SHMC_E_KEY_TOO_LONG:
        case SHMC_E_VALUE_TOO_LARGE:
        case SHMC_E_BAD_PATTERN:
        case SHMC_E_INVAL: return kExitUsage;
        case SHMC_E_NO_SEGMENT: return kExitNoSegment;
        case SHMC_E_VERSION: return kExitVersion;
        case SHMC_E_CORRUPT: return kExitDamage;
        case SHMC_E_LOCK_TIMEOUT: return kExitLockTimeout;
        case SHMC_E_L2_UNAVAILABLE:
        case SHMC_E_L2_REPLY: return kExitL2;
        default: return kExitOther;
    }
}

int report(const Global& g, const char* verb, int rc, const std::string& what) {
    const std::string name = resolved_name(g);
    const std::string detail = shmc_errmsg();
    std::string msg;
    switch (rc) {
        case SHMC_E_NO_SEGMENT:
            msg = "no segment named '" + name + "' (/dev/shm/" + name +
                  " does not exist). It is created by the first process that opens it, or by "
                  "`shmcache-cli set` or `warm`; check --name or $SHMCACHE_NAME";
            break;
        case SHMC_E_VERSION:
            msg = detail.empty() ? "segment '" + name + "' was made by another layout version"
                                 : detail;
            // The library's text names both versions; add the command that fixes it from here.
            msg += ". To remove it: shmcache-cli --name " + name +
                   " destroy --force (a cache: only a cold start is lost)";
            break;
        case SHMC_E_PERM:
            msg = "permission denied on segment '" + name + "'" +
                  (detail.empty() ? "" : ": " + detail) +
                  " (run as the user that owns it; see docs/operations.md, Permissions)";
            break;
        case SHMC_E_LOCK_TIMEOUT:
            msg = (what.empty() ? std::string() : what + ": ") +
                  "a stripe lock was not granted in time: a process holds it (stopped or "
                  "descheduled?); try again";
            break;
        case SHMC_E_L2_UNAVAILABLE:
        case SHMC_E_L2_REPLY:
            // The library's message already says "Redis L2", names the endpoint and the cause
            // ("Redis L2: cannot connect to 127.0.0.1:6379 db 0: Connection refused").
            msg = (what.empty() ? std::string() : what + ": ") +
                  (detail.empty() ? std::string(shmc_strerror(rc)) : detail);
            if (rc == SHMC_E_L2_UNAVAILABLE)
                msg +=
                    " (is Redis up and reachable? see --redis or $SHMCACHE_REDIS_URL, and "
                    "--redis-timeout-ms)";
            break;
        default:
            msg = (what.empty() ? std::string() : what + ": ") + shmc_strerror(rc);
            if (!detail.empty() && detail != shmc_strerror(rc)) msg += ": " + detail;
            break;
    }
    warn(verb, msg);
    return exit_code_for(rc);
}

namespace {

// The segment part of open_or_create.
int open_or_create_l1(const Global& g, const char* verb, const CreateOptions& create,
                      Cache* cache) {
    const char* name = g.name ? g.name->c_str() : nullptr;
    shmc_options o;
    shmc_options_default(&o);
    // Try to attach first, so that we can tell the operator whether this call created the
    // segment. Losing a race to another creator between the two opens is harmless: the second
    // open then simply attaches.
    o.flags = SHMC_OPEN_NO_CREATE;
    int rc = shmc_open(name, &o, cache->out());
    if (rc == SHMC_OK) {
        shmc_info info;
        if ((create.size_given || create.stripes_given) &&
            shmc_get_info(cache->get(), &info) == SHMC_OK &&
            (info.size_bytes != create.size_mb << 20 || info.n_stripes != create.stripes))
            warn(verb, "segment '" + std::string(info.name) +
                           "' already exists: --size-mb and --stripes apply only when creating "
                           "it (it has " +
                           std::to_string(info.size_bytes >> 20) + " MiB, " +
                           std::to_string(info.n_stripes) + " stripes)");
        return 0;
    }
    if (rc != SHMC_E_NO_SEGMENT) return report(g, verb, rc);
    o.flags = 0;
    o.size_bytes = create.size_mb << 20;
    o.n_stripes = create.stripes;
    rc = shmc_open(name, &o, cache->out());
    if (rc != SHMC_OK) return report(g, verb, rc, "creating the segment");
    shmc_info info;
    if (shmc_get_info(cache->get(), &info) == SHMC_OK && info.creator_pid == uint32_t(getpid()))
        warn(verb, "created segment '" + std::string(info.name) + "' (" +
                       std::to_string(info.size_bytes >> 20) + " MiB, " +
                       std::to_string(info.n_stripes) + " stripes)");
    return 0;
}

}  // namespace

int open_existing(const Global& g, const char* verb, Cache* cache, uint32_t tiers) {
    shmc_options o;
    shmc_options_default(&o);
    o.flags |= SHMC_OPEN_NO_CREATE;
    const char* name = g.name ? g.name->c_str() : nullptr;
    int rc = shmc_open(name, &o, cache->out());
    if (rc != SHMC_OK) return report(g, verb, rc);
    return (tiers & SHMC_TIER_L2) ? attach_l2(g, verb, cache) : 0;
}

int open_or_create(const Global& g, const char* verb, const CreateOptions& create, Cache* cache,
                   uint32_t tiers) {
    if (int e = open_or_create_l1(g, verb, create, cache)) return e;
    return (tiers & SHMC_TIER_L2) ? attach_l2(g, verb, cache) : 0;
}

}  // namespace shmcache::cli
