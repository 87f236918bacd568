// fuzz_ops.cpp - random operation sequences through the C ABI, checked against a model.
//
// One 1 MiB segment per configuration (1, 2 or 4 stripes x the seven strategies x with or
// without an entry limit: 24 entries on 1 stripe, so that inputs reach it, or 128 times the
// stripes on 2 and 4, which the limit makes 1 and 2 stripes of 256, see stripes_for_entry_limit;
// a limit that kept 4 stripes would be 1024, beyond the 256 keys of an input), opened on first
// use and kept for the whole run (cleared at the start of each input) so that an input costs
// its operations, not a segment creation. Each is unlinked right after opening: the mapping
// stays valid and nothing is left in /dev/shm if the run dies.
//
// The model is a map from key to what the cache may hold. A cache may evict at any time, so a
// key is either Absent (the cache must miss) or Maybe(value, flags, ttl) (the cache holds
// exactly that or nothing). What that allows is checked on every operation:
//  - a get that hits returns exactly the last value and flags set for that key, never another
//    key's or an older one, and a TTL left consistent with the one set; a miss turns the key
//    Absent: evicted keys never come back;
//  - add succeeds on an Absent key; set always succeeds (values within max_value_len always
//    fit after eviction); invalid arguments fail with their documented codes and change nothing;
//  - incr follows the decimal-int64 rules (NOT_NUMBER, RANGE) on a present key;
//  - del / purge / clear make keys Absent; purge and clear count no more than could be present;
//  - scan reports only keys the model allows, each once, with the right length, and the keys it
//    does not report are Absent from then on;
// and at the end of each input shmc_check returns 0 and reports no damage, and its entry count
// equals the entries scanned and counted by shmc_get_stats.
// No TTL is short enough to expire during a run: expiry by real time is not modelled.
//
// Input: a config byte, then operations, each an opcode byte and its fields (fuzz/README.md).
#include <shmcache/shmcache.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "fuzz_support.h"

namespace {

constexpr uint32_t kNumConfigs = 3 * 7 * 2;

struct Config {
    uint32_t n_stripes;
    uint32_t strategy;
    uint64_t max_entries;
};

Config config_of(uint32_t c) {
    c %= kNumConfigs;
    static const uint32_t stripes[] = {1, 2, 4};
    const uint32_t n = stripes[c % 3];
    return Config{n, 1 + (c / 3) % 7, (c / 21) % 2 ? (n == 1 ? 24u : 128u * n) : 0u};
}

struct Seg {
    shmc_cache* cache = nullptr;
    uint32_t max_value_len = 0;
    std::unique_ptr<char[]> buf;  // exactly max_value_len bytes: ASan still sees overruns
};

Seg& segment(uint32_t c) {
    static Seg segs[kNumConfigs];
    Seg& s = segs[c % kNumConfigs];
    if (s.cache) return s;
    const Config cfg = config_of(c);
    shmc_options o;
    shmc_options_default(&o);
    o.size_bytes = 1u << 20;
    o.n_stripes = cfg.n_stripes;
    o.strategy = cfg.strategy;
    o.max_entries = cfg.max_entries;
    o.lock_timeout_ms = 1000;  // single-threaded: a lock is never held by anyone else
    const std::string name = "shmc-fuzz-ops-" + std::to_string(getpid()) + "-" + std::to_string(c);
    shmc_unlink(name.c_str(), 1);
    int rc = shmc_open(name.c_str(), &o, &s.cache);
    FUZZ_CHECK(rc == 0, "open " + name + ": " + shmc_errmsg());
    shmc_unlink(name.c_str(), 1);
    shmc_info info;
    FUZZ_CHECK(shmc_get_info(s.cache, &info) == 0, "info");
    s.max_value_len = info.max_value_len;
    s.buf.reset(new char[s.max_value_len]);
    return s;
}

// 256 keys: 16 special ones (short and long, glob-like bytes, a NUL, the longest allowed), then
// "n:0" to "n:239", enough to overflow the entry limit of the configurations that have one.
const std::vector<std::string>& keys() {
    static const std::vector<std::string> k = [] {
        std::vector<std::string> v = {
            "a", "b", "ab", "ba", "abc", "user:1", "user:2", "user:10", "item:1", "item:x", "[x]",
            "a*b", "\\z", std::string(300, 'L'), std::string(SHMC_MAX_KEY_LEN, 'M'),
            std::string("k\0z", 3)};
        for (int i = 0; v.size() < 256; ++i) v.push_back("n:" + std::to_string(i));
        return v;
    }();
    return k;
}

// Patterns for purge and scan; 0xff selects one built from the input instead.
const char* const kPatterns[] = {"*",     "a*",     "user:*", "user:?", "*1",      "[ab]",
                                 "[!a]*", "\\[x]",  "a\\*b",  "?",      "item:[a-z]", "L*",
                                 "M*",    "*z",     "[",      "\\",     "",        "k?z",
                                 "n:1*",  "n:?",    "n:[0-4]*"};

const uint64_t kTtls[] = {0, 0, 0, 1000000000ull, 1ull << 40, 1ull << 62, UINT64_MAX};

struct Entry {
    std::string value;
    uint32_t flags;
    uint64_t ttl;
};

// Per key: absent from the model means the cache must miss.
using Model = std::map<std::string, Entry>;

// Decimal int64 as the engine documents it for incr: 1 to 20 bytes, an optional '-', digits,
// within int64. Written without from_chars to stay independent of the engine's parser.
std::optional<int64_t> parse_int64(const std::string& v) {
    if (v.empty() || v.size() > 20) return std::nullopt;
    size_t i = 0;
    bool neg = v[0] == '-';
    if (neg) ++i;
    if (i == v.size()) return std::nullopt;
    __int128 acc = 0;
    for (; i < v.size(); ++i) {
        if (v[i] < '0' || v[i] > '9') return std::nullopt;
        acc = acc * 10 + (v[i] - '0');
        if (acc > (__int128(1) << 63)) return std::nullopt;
    }
    if (neg) acc = -acc;
    if (acc > std::numeric_limits<int64_t>::max() || acc < std::numeric_limits<int64_t>::min())
        return std::nullopt;
    return int64_t(acc);
}

struct Run {
    shmc_cache* c;
    uint32_t max_value_len;
    char* full_buf;  // max_value_len bytes, reused by gets at that cap
    Model model;
    uint64_t serial = 0;  // makes every value set in a run distinct

    // Not instrumented for coverage: the target's own bookkeeping, not code under test (and
    // most of an input's time if instrumented).
    __attribute__((no_sanitize("coverage"))) std::string make_value(size_t len, uint8_t seed) {
        std::string v(len, '\0');
        const uint64_t id = ++serial;
        std::memcpy(v.data(), &id, std::min<size_t>(len, 8));
        for (size_t i = 8; i < len; ++i) v[i] = char(uint8_t(seed + i * 131 + (i >> 9)));
        return v;
    }

    size_t value_size(uint8_t sel) const {
        const size_t sizes[] = {0,   1,    7,    8,     20,    55,    56,   57, 100,
                                200, 1000, 4000, 20000, 60000, 150000};
        if (sel % 17 == 15) return max_value_len;
        if (sel % 17 == 16) return size_t(max_value_len) + 1;
        return sizes[sel % 17];
    }

    void check_hit(const std::string& key, const std::string& got, uint32_t flags,
                   int64_t ttl_left) {
        auto it = model.find(key);
        FUZZ_CHECK(it != model.end(), "hit on a key the cache must not hold: " + fuzz::show(key));
        const Entry& e = it->second;
        FUZZ_CHECK(got == e.value, "key " + fuzz::show(key) + " returned " + fuzz::show(got) +
                                       ", last set " + fuzz::show(e.value));
        FUZZ_CHECK(flags == e.flags, "flags " + std::to_string(flags) + " != " +
                                         std::to_string(e.flags));
        check_ttl(key, e, ttl_left);
    }

    void check_ttl(const std::string& key, const Entry& e, int64_t ttl_left) {
        if (e.ttl == 0) {
            FUZZ_CHECK(ttl_left == -1, "no TTL set but ttl_left " + std::to_string(ttl_left));
        } else {
            FUZZ_CHECK(ttl_left > 0 && uint64_t(ttl_left) <= e.ttl,
                       "key " + fuzz::show(key) + " TTL " + std::to_string(e.ttl) +
                           " ms set, ttl_left " + std::to_string(ttl_left));
        }
    }

    void get(const std::string& key, uint8_t capsel) {
        auto it = model.find(key);
        const size_t want = it == model.end() ? 0 : it->second.value.size();
        size_t cap;
        switch (capsel % 4) {
            case 0: cap = max_value_len; break;
            case 1: cap = want; break;
            case 2: cap = want ? want - 1 : 0; break;
            default: cap = 0; break;
        }
        // Exactly cap bytes, so that ASan sees any write past cap.
        std::unique_ptr<char[]> own(cap == max_value_len ? nullptr : new char[cap ? cap : 1]);
        char* buf = cap == max_value_len ? full_buf : own.get();
        size_t len = 12345;
        uint32_t flags = 7;
        int64_t ttl = -7;
        int rc = shmc_get(c, key.data(), key.size(), cap ? buf : nullptr, cap, &len, &flags, &ttl);
        if (rc == SHMC_E_NOTFOUND) {
            model.erase(key);  // evicted (or never there): it must stay away
            return;
        }
        FUZZ_CHECK(it != model.end(), "get hit (rc " + std::to_string(rc) +
                                          ") on a key the cache must not hold: " + fuzz::show(key));
        if (rc == SHMC_E_BUFFER_TOO_SMALL) {
            FUZZ_CHECK(cap < want && len == want, "BUFFER_TOO_SMALL: cap " + std::to_string(cap) +
                                                      ", value " + std::to_string(want) +
                                                      ", reported " + std::to_string(len));
            return;
        }
        FUZZ_CHECK(rc == 0, "get rc " + std::to_string(rc) + ": " + shmc_errmsg());
        FUZZ_CHECK(len <= cap, "length " + std::to_string(len) + " over cap");
        check_hit(key, std::string(buf, len), flags, ttl);
    }

    void store(const std::string& key, const std::string& value, uint32_t flags, uint64_t ttl,
               bool add) {
        int rc = add ? shmc_add(c, key.data(), key.size(), value.data(), value.size(), flags, ttl)
                     : shmc_set(c, key.data(), key.size(), value.data(), value.size(), flags, ttl);
        if (value.size() > max_value_len) {
            FUZZ_CHECK(rc == SHMC_E_VALUE_TOO_LARGE, "oversized value: rc " + std::to_string(rc));
            return;  // nothing stored; the previous value, if any, stays
        }
        if (add && rc == SHMC_E_EXISTS) {
            FUZZ_CHECK(model.count(key), "add says EXISTS for a key the cache must not hold: " +
                                             fuzz::show(key));
            return;
        }
        FUZZ_CHECK(rc == 0, std::string(add ? "add" : "set") + " rc " + std::to_string(rc) +
                                ": " + shmc_errmsg());
        model[key] = Entry{value, flags, ttl};
    }

    void del(const std::string& key) {
        int rc = shmc_del(c, key.data(), key.size());
        if (rc == 0)
            FUZZ_CHECK(model.count(key), "del removed a key the cache must not hold");
        else
            FUZZ_CHECK(rc == SHMC_E_NOTFOUND, "del rc " + std::to_string(rc));
        model.erase(key);
    }

    void touch(const std::string& key, uint64_t ttl) {
        int rc = shmc_touch(c, key.data(), key.size(), ttl);
        auto it = model.find(key);
        if (rc == SHMC_E_NOTFOUND) {
            if (it != model.end()) model.erase(it);
            return;
        }
        FUZZ_CHECK(rc == 0, "touch rc " + std::to_string(rc));
        FUZZ_CHECK(it != model.end(), "touch found a key the cache must not hold");
        it->second.ttl = ttl;
    }

    void incr(const std::string& key, int64_t delta) {
        int64_t result = 0;
        int rc = shmc_incr(c, key.data(), key.size(), delta, &result);
        auto it = model.find(key);
        if (rc == SHMC_E_NOTFOUND) {
            if (it != model.end()) model.erase(it);
            return;
        }
        FUZZ_CHECK(it != model.end(), "incr (rc " + std::to_string(rc) +
                                          ") found a key the cache must not hold");
        const auto cur = parse_int64(it->second.value);
        if (!cur) {
            FUZZ_CHECK(rc == SHMC_E_NOT_NUMBER, "incr on " + fuzz::show(it->second.value) +
                                                    ": rc " + std::to_string(rc));
            return;
        }
        int64_t next;
        if (__builtin_add_overflow(*cur, delta, &next)) {
            FUZZ_CHECK(rc == SHMC_E_RANGE, "incr overflow: rc " + std::to_string(rc));
            return;
        }
        FUZZ_CHECK(rc == 0 && result == next, "incr " + fuzz::show(it->second.value) + " + " +
                                                  std::to_string(delta) + ": rc " +
                                                  std::to_string(rc) + " result " +
                                                  std::to_string(result));
        it->second.value = std::to_string(next);  // flags and TTL are kept
    }

    bool matches(std::string_view pat, const std::string& key) {
        return shmc_glob_match(pat.data(), pat.size(), key.data(), key.size()) == 1;
    }

    void purge(std::string_view pat) {
        const bool valid = shmc_glob_match(pat.data(), pat.size(), "", 0) != SHMC_E_BAD_PATTERN;
        uint64_t removed = 999999;
        int rc = shmc_purge(c, pat.data(), pat.size(), &removed);
        if (!valid) {
            FUZZ_CHECK(rc == SHMC_E_BAD_PATTERN, "purge of a bad pattern: rc " + std::to_string(rc));
            return;
        }
        FUZZ_CHECK(rc == 0, "purge rc " + std::to_string(rc));
        uint64_t could = 0;
        for (auto it = model.begin(); it != model.end();) {
            if (matches(pat, it->first)) {
                ++could;
                it = model.erase(it);
            } else {
                ++it;
            }
        }
        FUZZ_CHECK(removed <= could, "purge " + fuzz::show(pat) + " removed " +
                                         std::to_string(removed) + ", at most " +
                                         std::to_string(could) + " could be present");
    }

    struct ScanCtx {
        std::vector<std::pair<std::string, std::pair<size_t, int64_t>>> seen;
    };
    static int scan_cb(const void* key, size_t klen, size_t vlen, int64_t ttl, void* ctx) {
        static_cast<ScanCtx*>(ctx)->seen.push_back(
            {std::string(static_cast<const char*>(key), klen), {vlen, ttl}});
        return 0;
    }

    // Returns how many keys the scan reported.
    size_t scan(std::string_view pat) {
        const bool valid = shmc_glob_match(pat.data(), pat.size(), "", 0) != SHMC_E_BAD_PATTERN;
        ScanCtx ctx;
        int rc = shmc_scan(c, pat.data(), pat.size(), scan_cb, &ctx);
        if (!valid) {
            FUZZ_CHECK(rc == SHMC_E_BAD_PATTERN, "scan of a bad pattern: rc " + std::to_string(rc));
            return 0;
        }
        FUZZ_CHECK(rc == 0, "scan rc " + std::to_string(rc));
        std::set<std::string> seen;
        for (auto& [key, vt] : ctx.seen) {
            FUZZ_CHECK(seen.insert(key).second, "scan reported twice: " + fuzz::show(key));
            FUZZ_CHECK(matches(pat, key), "scan " + fuzz::show(pat) + " reported " + fuzz::show(key));
            auto it = model.find(key);
            FUZZ_CHECK(it != model.end(), "scan reported a key the cache must not hold: " +
                                              fuzz::show(key));
            FUZZ_CHECK(vt.first == it->second.value.size(),
                       "scan length " + std::to_string(vt.first) + " for " + fuzz::show(key) +
                           ", value has " + std::to_string(it->second.value.size()));
            check_ttl(key, it->second, vt.second);
        }
        // Single-threaded, so the scan is exact: what it did not report is not there.
        for (auto it = model.begin(); it != model.end();) {
            if (matches(pat, it->first) && !seen.count(it->first))
                it = model.erase(it);
            else
                ++it;
        }
        return ctx.seen.size();
    }

    void clear() {
        uint64_t removed = 0;
        FUZZ_CHECK(shmc_clear(c, &removed) == 0, "clear");
        FUZZ_CHECK(removed <= model.size(), "clear removed " + std::to_string(removed) +
                                                " of at most " + std::to_string(model.size()));
        model.clear();
    }

    // Arguments the C ABI must refuse, changing nothing.
    void invalid(uint8_t which, const std::string& key) {
        const std::string too_long(SHMC_MAX_KEY_LEN + 1, 'x');
        size_t len = 0;
        char b[8];
        int rc;
        switch (which % 8) {
            case 0:
                rc = shmc_set(c, too_long.data(), too_long.size(), "v", 1, 0, 0);
                FUZZ_CHECK(rc == SHMC_E_KEY_TOO_LONG, "rc " + std::to_string(rc));
                break;
            case 1:
                rc = shmc_get(c, too_long.data(), too_long.size(), b, sizeof b, &len, nullptr,
                              nullptr);
                FUZZ_CHECK(rc == SHMC_E_KEY_TOO_LONG, "rc " + std::to_string(rc));
                break;
            case 2:
                rc = shmc_set(c, key.data(), 0, "v", 1, 0, 0);
                FUZZ_CHECK(rc == SHMC_E_INVAL, "empty key: rc " + std::to_string(rc));
                break;
            case 3:
                rc = shmc_set(c, key.data(), key.size(), nullptr, 5, 0, 0);
                FUZZ_CHECK(rc == SHMC_E_INVAL, "NULL value: rc " + std::to_string(rc));
                break;
            case 4:
                rc = shmc_get(c, key.data(), key.size(), nullptr, 5, &len, nullptr, nullptr);
                FUZZ_CHECK(rc == SHMC_E_INVAL, "NULL buffer: rc " + std::to_string(rc));
                break;
            case 5:
                rc = shmc_get(c, key.data(), key.size(), b, sizeof b, nullptr, nullptr, nullptr);
                FUZZ_CHECK(rc == SHMC_E_INVAL, "NULL value_len: rc " + std::to_string(rc));
                break;
            case 6:
                rc = shmc_del(c, nullptr, 3);
                FUZZ_CHECK(rc == SHMC_E_INVAL, "NULL key: rc " + std::to_string(rc));
                break;
            default:
                rc = shmc_purge(c, nullptr, 2, nullptr);
                FUZZ_CHECK(rc == SHMC_E_INVAL, "NULL pattern: rc " + std::to_string(rc));
                break;
        }
    }

    // The cache agrees with itself and with the model: check, scan and stats.
    void verify(bool full) {
        shmc_check_report r{};
        int rc = shmc_check(c, &r);
        FUZZ_CHECK(rc == 0 && r.stripes_damaged == 0 && r.entries_dropped == 0,
                   "check rc " + std::to_string(rc) + ", " + std::to_string(r.stripes_damaged) +
                       " stripes damaged, " + std::to_string(r.entries_dropped) +
                       " entries dropped: " + shmc_errmsg());
        const size_t scanned = scan("*");
        shmc_stats st{};
        FUZZ_CHECK(shmc_get_stats(c, &st) == 0, "stats");
        FUZZ_CHECK(st.entries == scanned && r.entries_checked == scanned,
                   "entries: stats " + std::to_string(st.entries) + ", check " +
                       std::to_string(r.entries_checked) + ", scan " + std::to_string(scanned));
        FUZZ_CHECK(st.bytes_used <= st.bytes_capacity, "bytes used over capacity");
        if (full) {
            std::vector<std::string> ks;
            for (auto& [k, e] : model) ks.push_back(k);
            for (auto& k : ks) get(k, 0);
        }
    }
};

std::string number_value(fuzz::Reader& in) {
    static const char* const odd[] = {
        "0", "-0", "007", "+5", " 5", "5 ", "", "-", "--1", "0x10", "99999999999999999999",
        "-9223372036854775808", "9223372036854775807", "9223372036854775808",
        "000000000000000000001", "00000000000000000001", "1e3", "-1"};
    const uint8_t sel = in.u8();
    if (sel < 64) return odd[sel % (sizeof odd / sizeof *odd)];
    if (sel < 160) return std::to_string(int64_t(int8_t(in.u8())));
    return std::to_string(int64_t(in.u64()));
}

int64_t delta_of(fuzz::Reader& in) {
    const uint8_t sel = in.u8();
    switch (sel % 4) {
        case 0: return int8_t(in.u8());
        case 1: return std::numeric_limits<int64_t>::max();
        case 2: return std::numeric_limits<int64_t>::min();
        default: return int64_t(in.u64());
    }
}

std::string pattern_of(fuzz::Reader& in) {
    const uint8_t sel = in.u8();
    const size_t n = sizeof kPatterns / sizeof *kPatterns;
    if (sel < 0xf0) return kPatterns[sel % n];
    return std::string(in.bytes(in.u8() % 16));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::Reader in(data, size);
    Seg& seg = segment(in.u8());
    Run run{seg.cache, seg.max_value_len, seg.buf.get(), {}};
    FUZZ_CHECK(shmc_clear(run.c, nullptr) == 0, "clear at start");

    const auto& ks = keys();
    for (int ops = 0; !in.empty() && ops < 256; ++ops) {
        const uint8_t op = in.u8();
        const std::string& key = ks[in.u8() % ks.size()];
        switch (op % 14) {
            case 0:
            case 1: {  // set or add a value of a chosen size
                const size_t len = run.value_size(in.u8());
                const uint32_t flags = in.u8() < 128 ? 0 : in.u32();
                const uint64_t ttl = kTtls[in.u8() % 7];
                run.store(key, run.make_value(len, in.u8()), flags, ttl, op % 14 == 1);
                break;
            }
            case 2: {  // set a number (or something that looks like one)
                const std::string v = number_value(in);
                const uint32_t flags = in.u8();
                const uint64_t ttl = kTtls[in.u8() % 7];
                run.store(key, v, flags, ttl, false);
                break;
            }
            case 3:
            case 4: run.get(key, in.u8()); break;
            case 5: run.del(key); break;
            case 6: run.touch(key, kTtls[in.u8() % 7]); break;
            case 7: run.incr(key, delta_of(in)); break;
            case 8: run.purge(pattern_of(in)); break;
            case 9: run.scan(pattern_of(in)); break;
            case 10:
                if (in.u8() % 8 == 0) run.clear();
                break;
            case 11: run.invalid(in.u8(), key); break;
            case 12: run.verify(false); break;
            default: {  // fill: many small sets, to make the stripes evict
                const uint8_t n = in.u8();
                for (uint32_t i = 0; i < n; ++i)
                    run.store(ks[16 + (i * 7 + key.size()) % 240], run.make_value(200 + i * 16, 0),
                              0, 0, false);
                break;
            }
        }
    }
    run.verify(true);
    return 0;
}
