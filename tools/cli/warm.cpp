// warm.cpp - the warm verb: load JSON Lines records into the cache, in batches.
//
// Records are read a batch at a time; every record of the batch is parsed (warm_parse.cpp),
// encoded into the value envelope and checked against the segment's max_value_len before the
// first of them is written. So a bad line never leaves a batch half-written: without --strict it
// is reported ("line N: reason") and skipped while the rest of its batch goes in; with --strict
// the run stops there and nothing of that batch is written (earlier batches stay: a cache has no
// transactions, and what was written is correct).
//
// A write can still fail once validated (a stripe lock held by a stopped process): that line is
// reported as not stored and counted as skipped; --strict stops the run after it.
//
// With the Redis L2 (tiers.h) each record is one shmc_tset to the tiers asked (both by default
// with --redis). A Redis failure stops the run whatever --strict says: every later record would
// fail the same way (or be refused at once by the library's circuit breaker) and land in L1
// alone, which is not what was asked. The summary says where it stopped.
//
// The summary goes to stdout at the end, always; bad lines and the progress bar go to stderr.
#include <shmcache/shmcache.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "commands.h"
#include "exit_codes.h"
#include "format.h"
#include "progress.h"
#include "tiers.h"
#include "ttl.h"
#include "value.h"
#include "warm_parse.h"

namespace shmcache::cli {

namespace {

struct Pending {
    uint64_t line;
    std::string key;
    std::string envelope;
    uint64_t ttl_ms;
    size_t payload_len;
};

struct Tally {
    uint64_t lines = 0, written = 0, skipped = 0, payload_bytes = 0, stored_bytes = 0;
};

// Reads lines of any length with getline(3), counting the bytes consumed for the progress bar.
class LineReader {
public:
    explicit LineReader(FILE* f) : f_(f) {}
    ~LineReader() { std::free(buf_); }
    LineReader(const LineReader&) = delete;
    LineReader& operator=(const LineReader&) = delete;
    // False at the end of input or on a read error (see error()).
    bool next(std::string_view* line) {
        ssize_t n = getline(&buf_, &cap_, f_);
        if (n < 0) return false;
        bytes_ += uint64_t(n);
        size_t len = size_t(n);
        if (len && buf_[len - 1] == '\n') --len;
        *line = std::string_view(buf_, len);
        return true;
    }
    bool error() const { return std::ferror(f_) != 0; }
    uint64_t bytes() const { return bytes_; }

private:
    FILE* f_;
    char* buf_ = nullptr;
    size_t cap_ = 0;
    uint64_t bytes_ = 0;
};

}  // namespace

int run_warm(const Global& g, const WarmOptions& o) {
    uint32_t tiers = 0;
    if (int e = resolve_tiers(g, "warm", o.tier, &tiers)) return e;
    uint64_t default_ttl_ms = 0;
    if (!ttl_to_ms(o.ttl_seconds, &default_ttl_ms)) {
        warn("warm", "--ttl must be between 0 and 100 years, in seconds");
        return kExitUsage;
    }
    FILE* in = stdin;
    const bool from_stdin = o.input == "-";
    if (!from_stdin && !(in = std::fopen(o.input.c_str(), "r"))) {
        warn("warm", "cannot open " + o.input + ": " + std::strerror(errno));
        return kExitUsage;
    }
    struct Closer {
        FILE* f;
        bool own;
        ~Closer() {
            if (own) std::fclose(f);
        }
    } closer{in, !from_stdin};
    if (from_stdin && is_tty(0))
        warn("warm", "reading JSON Lines records from the terminal; end with Ctrl-D");

    // A regular file of known size gives the progress bar a percentage and an ETA.
    uint64_t total = 0;
    struct stat st {};
    if (fstat(fileno(in), &st) == 0 && S_ISREG(st.st_mode)) {
        const off_t pos = ftello(in);
        total = uint64_t(st.st_size) - uint64_t(pos > 0 ? pos : 0);
    }

    Cache cache;
    if (int e = open_or_create(g, "warm", o.create, &cache, tiers)) return e;
    shmc_info info{};
    if (int rc = shmc_get_info(cache.get(), &info)) return report(g, "warm", rc);
    // The largest value every tier asked accepts (Redis itself takes far more than the library).
    const size_t max_value = tiers & SHMC_TIER_L1 ? info.max_value_len : SHMC_MAX_VALUE_LEN;

    Progress bar(o.progress && is_tty(2), total);
    const auto bad_line = [&](uint64_t line, const std::string& why) {
        bar.clear();
        // The reason may quote bytes of the line (the JSON parser's "last read"): escape them.
        std::fprintf(stderr, "line %llu: %s\n", (unsigned long long)line,
                     escape_bytes(why).c_str());
    };

    const auto start = std::chrono::steady_clock::now();
    LineReader reader(in);
    Tally t;
    std::vector<Pending> batch;
    batch.reserve(size_t(std::min<uint64_t>(o.batch_size, 100000)));
    bool stop = false;
    int write_rc = SHMC_OK;
    bool l2_failed = false;
    uint64_t stopped_at = 0;

    const auto flush_batch = [&] {
        for (const Pending& p : batch) {
            int rc = shmc_tset(cache.get(), p.key.data(), p.key.size(), p.envelope.data(),
                               p.envelope.size(), 0, p.ttl_ms, p.ttl_ms, tiers);
            if (rc == SHMC_E_L2_UNAVAILABLE || rc == SHMC_E_L2_REPLY) {
                bar.clear();
                report(g, "warm", rc, strf("line %llu", (unsigned long long)p.line));
                ++t.skipped;
                stop = l2_failed = true;
                write_rc = rc;
                stopped_at = p.line;
                break;
            }
            if (rc != SHMC_OK) {
                const std::string detail = shmc_errmsg();
                bad_line(p.line,
                         std::string("not stored: ") + shmc_strerror(rc) +
                             (detail.empty() || detail == shmc_strerror(rc) ? std::string()
                                                                            : ": " + detail));
                ++t.skipped;
                if (o.strict) {
                    stop = true;
                    write_rc = rc;
                    stopped_at = p.line;
                    break;
                }
                continue;
            }
            ++t.written;
            t.payload_bytes += p.payload_len;
            t.stored_bytes += p.envelope.size();
        }
        batch.clear();
        bar.update(t.written, reader.bytes());
    };

    std::string_view line;
    WarmRecord rec;
    std::string why;
    while (!stop && reader.next(&line)) {
        ++t.lines;
        bar.update(t.written, reader.bytes());  // at most 10 redraws a second
        const WarmLine kind = parse_warm_line(line, &rec, &why);
        if (kind == WarmLine::kBlank) continue;
        Pending p;
        if (kind == WarmLine::kRecord) {
            int rc = encode_value(rec.serializer, rec.payload, o.compress_threshold, &p.envelope);
            if (rc != SHMC_OK) {
                why = std::string("cannot encode the value: ") + shmc_strerror(rc);
            } else if (p.envelope.size() > max_value) {
                why = strf("value is %zu bytes once encoded (%zu before), over %s of %zu bytes",
                           p.envelope.size(), rec.payload.size(),
                           tiers & SHMC_TIER_L1 ? "this segment's max_value_len"
                                                : "the library's SHMC_MAX_VALUE_LEN",
                           max_value);
            } else {
                p.line = t.lines;
                p.key = std::move(rec.key);
                p.ttl_ms = rec.ttl_ms.value_or(default_ttl_ms);
                p.payload_len = rec.payload.size();
                batch.push_back(std::move(p));
                if (batch.size() >= o.batch_size) flush_batch();
                continue;
            }
        }
        bad_line(t.lines, why);
        ++t.skipped;
        if (o.strict) {
            stop = true;
            stopped_at = t.lines;
            batch.clear();  // nothing of the batch holding a bad line is written
        }
    }
    if (!stop) flush_batch();
    const bool read_error = !stop && reader.error();
    bar.update(t.written, reader.bytes(), true);
    bar.clear();

    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf(
        "warm: %s written%s, %s skipped, %s lines read; %s of values (%s stored); "
        "%.2f s, %s records/s\n",
        with_commas(t.written).c_str(), g.redis ? (" to " + tier_text(tiers)).c_str() : "",
        with_commas(t.skipped).c_str(), with_commas(t.lines).c_str(),
        human_bytes(t.payload_bytes).c_str(), human_bytes(t.stored_bytes).c_str(), secs,
        with_commas(uint64_t(secs > 0 ? double(t.written) / secs : 0)).c_str());
    if (l2_failed)
        std::printf(
            "warm: stopped at line %llu: Redis failed (above); the records before it were "
            "written, that one %s, those after it were not\n",
            (unsigned long long)stopped_at, tiers & SHMC_TIER_L1 ? "to L1 only" : "nowhere");
    else if (stop && write_rc != SHMC_OK)
        std::printf(
            "warm: stopped at line %llu (--strict): it could not be stored; the records "
            "before it were written, those after it were not\n",
            (unsigned long long)stopped_at);
    else if (stop)
        std::printf("warm: stopped at line %llu (--strict); nothing of its batch was written\n",
                    (unsigned long long)stopped_at);
    std::fflush(stdout);
    if (read_error) {
        warn("warm", "read error on " + (from_stdin ? std::string("stdin") : o.input) + ": " +
                         std::strerror(errno));
        return kExitOther;
    }
    if (write_rc != SHMC_OK) return exit_code_for(write_rc);
    return t.skipped ? kExitSkipped : kExitOk;
}

}  // namespace shmcache::cli
