// exit_codes.h - the exit statuses of shmcache-cli, one table for every verb.
//
// Scripts and cron jobs branch on these, so they are part of the tool's contract: pinned, listed
// in `shmcache-cli --help` and in docs/cli.md, and never renumbered. A status says what the
// caller can do about it (run again later, create the segment, destroy an old segment, check
// Redis), which is why a missing segment, a version mismatch, a lock timeout and a Redis outage
// each get their own.
#ifndef SHMCACHE_CLI_EXIT_CODES_H
#define SHMCACHE_CLI_EXIT_CODES_H

namespace shmcache::cli {

enum ExitCode : int {
    kExitOk = 0,
    kExitNotFound = 1,     // get/del/ttl: no such key
    kExitSkipped = 1,      // warm: some lines were skipped (same status, other verb)
    kExitUsage = 2,        // bad option or argument (also: key too long, bad pattern, bad JSON)
    kExitNoSegment = 3,    // the segment does not exist
    kExitVersion = 4,      // the segment was made by another layout version
    kExitDamage = 5,       // check: damage found and not repaired
    kExitLockTimeout = 6,  // a stripe lock was not granted in time
    kExitOther = 7,        // anything else (permissions, /dev/shm full, segment in use, ...)
    kExitL2 = 8,           // the Redis L2 was unreachable, timed out or answered an error
};

// The table printed after `shmcache-cli --help`, and in docs/cli.md.
inline constexpr const char* kExitCodesHelp =
    "Exit codes:\n"
    "  0  success\n"
    "  1  key not found (get, del, ttl); some lines skipped (warm)\n"
    "  2  usage error: bad option or argument (key too long, malformed pattern, invalid JSON,\n"
    "     value over the segment's max_value_len)\n"
    "  3  the segment does not exist\n"
    "  4  the segment was made by another layout version (destroy --force removes it)\n"
    "  5  check: damage found and not repaired\n"
    "  6  a stripe lock was not granted in time (a process holds it; try again)\n"
    "  7  any other error (permissions, /dev/shm full, segment in use, ...)\n"
    "  8  the Redis L2 is unavailable (unreachable, timed out) or answered with an error;\n"
    "     the message names the endpoint. Only with --redis.\n";

}  // namespace shmcache::cli

#endif
