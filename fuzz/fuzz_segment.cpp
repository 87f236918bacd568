// fuzz_segment.cpp - attaching to a damaged or truncated segment, and using it.
//
// Once per process, four small segments (1 MiB; different stripe counts, strategies and entry
// limits) are created through the C ABI and filled until they evict, then fragmented (a third of
// the keys deleted, then large values that must be gathered from several free runs), and their
// bytes kept as pristine images. Every value is f(key): the key, a filler whose length depends on
// the key, and a checksum of both, and no key is ever written twice, so even a stale entry that
// damage brings back can only hold that same value.
//
// Per input: copy a pristine image, apply the input's edits (xor a byte, or write a 32-bit
// word: a small index, NIL, or the block of another entry) to the header, the stripe control
// blocks, the buckets, the free map, the blocks, entry headers or free runs, optionally truncate
// or extend it, write it to a fresh /dev/shm object and shmc_open it. The open must succeed or
// fail with SHMC_E_VERSION, SHMC_E_CORRUPT or SHMC_E_NO_SEGMENT. An open segment then goes
// through get (every key ever written), stats, info, set (new and existing keys), del, incr,
// touch, purge, scan, check, check again, and get again. Checked: no crash or sanitizer report
// (a wild access past the mapping faults); no call takes long (libFuzzer's -timeout); only the
// documented error codes; every hit returns a value in the set the model allows for its key (for
// a key of the image, f(key); after this input's writes, the last value written, or on a failed
// write the old or the new one); get never reports a length above max_value_len; scan reports
// only keys that were written; a key deleted or purged with success misses; the first check
// repairs everything (returns 0) and the second finds no damage; after them, the stripes' counts
// agree with check and scan, and a set succeeds and reads back.
//
// SHMC_FUZZ_VERBOSE=1 prints each edit in the engine's terms (stripe, structure, field, and the
// key of the entry it lands in) and each get that fails, to diagnose a reproducer.
//
// The bytes of each stripe's pthread mutex are never edited: glibc owns that structure and
// cannot validate it (a garbage robust mutex can hang or abort inside glibc), so "the segment is
// untrusted input" covers everything but the locks. See fuzz/README.md for the input layout.
#include <dirent.h>
#include <fcntl.h>
#include <shmcache/shmcache.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "fuzz_support.h"
#include "shm/layout.h"

namespace shm = shmcache::shm;

namespace {

constexpr uint64_t kSize = 1u << 20;
constexpr uint32_t kNumImages = 5;
const char kPrefix[] = "shmc-fuzz-seg-";

struct ImageConfig {
    uint32_t n_stripes;
    uint32_t strategy;
    uint64_t max_entries;
};
const ImageConfig kConfigs[kNumImages] = {
    {4, SHMC_STRATEGY_S3FIFO, 0},
    {1, SHMC_STRATEGY_LRU, 0},
    {2, SHMC_STRATEGY_SIEVE, 512},  // a limit leaves each stripe at least 256 entries
    {2, SHMC_STRATEGY_TTL, 0},
    {2, SHMC_STRATEGY_WTINYLFU, 600},
};

// The helpers that build and verify values carry no coverage instrumentation: they are the
// target's own bookkeeping (most of an input's time if instrumented), not code under test.
#define NO_COVERAGE __attribute__((no_sanitize("coverage")))

NO_COVERAGE uint64_t fnv1a(std::string_view s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
    return h;
}

// "<key>|<tag>|<filler>|<16 hex digits of the checksum of everything before>".
NO_COVERAGE std::string make_value(const std::string& key, const std::string& tag, size_t filler) {
    std::string v = key + "|" + tag + "|";
    const uint64_t h = fnv1a(key + tag);
    const size_t at = v.size();
    v.resize(at + filler);
    for (size_t i = 0; i < filler; ++i) v[at + i] = char('a' + (h >> (i % 57)) % 26);
    v += "|";
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)fnv1a(v));
    return v + hex;
}

NO_COVERAGE bool self_consistent(const std::string& key, const std::string& v) {
    if (v.size() < key.size() + 17 || v.compare(0, key.size() + 1, key + "|") != 0) return false;
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx",
             (unsigned long long)fnv1a(std::string_view(v).substr(0, v.size() - 16)));
    return v.compare(v.size() - 16, 16, hex) == 0;
}

std::string image_value(const std::string& key) {
    const size_t sizes[] = {20, 60, 150, 400, 1200, 3500, 9000};
    return make_value(key, "img", sizes[fnv1a(key) % 7]);
}

// Where things are in an image, for edits aimed at its structures.
struct Image {
    ImageConfig cfg;
    std::vector<uint8_t> bytes;
    shm::Geometry g;
    std::vector<std::string> keys;                     // every key ever written
    std::map<std::string, std::string> values;         // f(key) of each, plus "num" -> "41"
    std::vector<std::pair<uint32_t, uint32_t>> entries;  // (stripe, head block) of live entries
    std::vector<std::pair<uint32_t, uint32_t>> free_runs;  // (stripe, head block)
    uint64_t region(uint32_t stripe) const {
        return g.regions_offset + uint64_t(stripe) * g.region_bytes;
    }
    uint64_t ctl(uint32_t stripe) const {
        return g.stripes_offset + uint64_t(stripe) * sizeof(shm::StripeCtl);
    }
    uint64_t block(uint32_t stripe, uint32_t idx) const {
        return region(stripe) + g.blocks_off + uint64_t(idx) * shm::kBlockSize;
    }
};

std::string fresh_name() {
    static uint64_t n = 0;
    return kPrefix + std::to_string(getpid()) + "-" + std::to_string(n++);
}

shmc_options options_of(const ImageConfig& c) {
    shmc_options o;
    shmc_options_default(&o);
    o.size_bytes = kSize;
    o.n_stripes = c.n_stripes;
    o.strategy = c.strategy;
    o.max_entries = c.max_entries;
    o.lock_timeout_ms = 20;
    return o;
}

bool read_object(const std::string& name, std::vector<uint8_t>* out) {
    int fd = shm_open(("/" + name).c_str(), O_RDONLY, 0);
    if (fd < 0) return false;
    struct stat st {};
    fstat(fd, &st);
    out->resize(size_t(st.st_size));
    size_t got = 0;
    while (got < out->size()) {
        ssize_t r = pread(fd, out->data() + got, out->size() - got, off_t(got));
        if (r <= 0) break;
        got += size_t(r);
    }
    close(fd);
    return got == out->size();
}

bool write_object(const std::string& name, const std::vector<uint8_t>& bytes, size_t len) {
    int fd = shm_open(("/" + name).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) return false;
    size_t put = 0;
    while (put < len) {
        ssize_t w = pwrite(fd, bytes.data() + put, len - put, off_t(put));
        if (w <= 0) break;
        put += size_t(w);
    }
    close(fd);
    return put == len;
}

// Objects left by an earlier run of this target that died (a crash found): their pid is gone.
void remove_stale_objects() {
    DIR* d = opendir("/dev/shm");
    if (!d) return;
    while (dirent* e = readdir(d)) {
        if (strncmp(e->d_name, kPrefix, sizeof kPrefix - 1) != 0) continue;
        const int pid = atoi(e->d_name + sizeof kPrefix - 1);
        if (pid > 0 && kill(pid, 0) != 0 && errno == ESRCH) shm_unlink(("/" + std::string(e->d_name)).c_str());
    }
    closedir(d);
}

Image build_image(const ImageConfig& cfg) {
    Image im;
    im.cfg = cfg;
    const std::string name = fresh_name();
    shmc_options o = options_of(cfg);
    o.lock_timeout_ms = 1000;
    shmc_cache* c = nullptr;
    int rc = shmc_open(name.c_str(), &o, &c);
    FUZZ_CHECK(rc == 0, "creating an image: " + std::string(shmc_errmsg()));
    auto set = [&](const std::string& k, uint64_t ttl) {
        const std::string v = image_value(k);
        FUZZ_CHECK(shmc_set(c, k.data(), k.size(), v.data(), v.size(), uint32_t(fnv1a(k)), ttl) ==
                       0,
                   "set while building an image");
        im.keys.push_back(k);
        im.values[k] = v;
    };
    // Fill until the stripes evict.
    shmc_stats st{};
    for (int i = 0; i < 20000; ++i) {
        set("k:" + std::to_string(i), i % 5 == 0 ? 1000000000ull : 0);
        shmc_get_stats(c, &st);
        if (st.evictions >= 8 * cfg.n_stripes) break;
    }
    // Fragment: delete a third of the keys, then store values larger than any hole.
    for (size_t i = 0; i < im.keys.size(); i += 3) shmc_del(c, im.keys[i].data(), im.keys[i].size());
    for (int j = 0; j < 3; ++j) {
        const std::string k = "big:" + std::to_string(j);
        const std::string v = make_value(k, "img", 12000);
        FUZZ_CHECK(shmc_set(c, k.data(), k.size(), v.data(), v.size(), 0, 0) == 0, "big set");
        im.keys.push_back(k);
        im.values[k] = v;
    }
    // A number for incr, and hits so that the policies' per-entry bits are not all zero.
    const std::string num = "num", numv = "41";
    FUZZ_CHECK(shmc_set(c, num.data(), num.size(), numv.data(), numv.size(), 0, 0) == 0, "num");
    im.values[num] = numv;
    for (size_t i = 1; i < im.keys.size(); i += 4) {
        size_t len = 0;
        if (shmc_get(c, im.keys[i].data(), im.keys[i].size(), nullptr, 0, &len, nullptr,
                     nullptr) != SHMC_E_BUFFER_TOO_SMALL)
            continue;  // deleted above, or evicted
        std::vector<char> full(len);
        shmc_get(c, im.keys[i].data(), im.keys[i].size(), full.data(), full.size(), &len, nullptr,
                 nullptr);
    }
    shmc_check_report r{};
    FUZZ_CHECK(shmc_check(c, &r) == 0 && r.stripes_damaged == 0, "image not clean");
    FUZZ_CHECK(read_object(name, &im.bytes) && im.bytes.size() == kSize, "reading the image");
    shmc_close(c);
    shmc_unlink(name.c_str(), 1);

    // Geometry and structures of the image, read as the engine would. The config's stripes must
    // be those the image was made with: an entry limit can lower them (stripes_for_entry_limit).
    FUZZ_CHECK(shm::stripes_for_entry_limit(cfg.n_stripes, cfg.max_entries, kSize) == cfg.n_stripes,
               "an image config whose entry limit lowers its stripes");
    const char* why = "";
    FUZZ_CHECK(shm::compute_geometry(kSize, cfg.max_entries, cfg.n_stripes, cfg.strategy, 0, &im.g,
                                     &why),
               why);
    for (uint32_t s = 0; s < cfg.n_stripes; ++s) {
        auto* buckets = reinterpret_cast<const uint32_t*>(im.bytes.data() + im.region(s));
        for (uint32_t b = 0; b < im.g.buckets_per_stripe; ++b)
            for (uint32_t idx = buckets[b]; idx != shm::kNil;) {
                im.entries.push_back({s, idx});
                idx = reinterpret_cast<const shm::EntryHeader*>(im.bytes.data() + im.block(s, idx))
                          ->bucket_next;
            }
        auto* ctl = reinterpret_cast<const shm::StripeCtl*>(im.bytes.data() + im.ctl(s));
        for (uint32_t k = 0; k < shm::kFreeClasses; ++k)
            for (uint32_t idx = ctl->free_heads[k]; idx != shm::kNil;) {
                im.free_runs.push_back({s, idx});
                idx = reinterpret_cast<const shm::FreeRun*>(im.bytes.data() + im.block(s, idx))
                          ->next;
            }
    }
    FUZZ_CHECK(!im.entries.empty() && !im.free_runs.empty(), "image has no entries or free runs");
    return im;
}

std::vector<Image>& images() {
    static std::vector<Image> v = [] {
        remove_stale_objects();
        std::vector<Image> out;
        for (auto& c : kConfigs) {
            out.push_back(build_image(c));
            if (getenv("SHMC_FUZZ_VERBOSE"))
                fprintf(stderr, "image %zu: %u stripes, %zu entries, %zu free runs, %zu keys\n",
                        out.size() - 1, c.n_stripes, out.back().entries.size(),
                        out.back().free_runs.size(), out.back().keys.size());
        }
        return out;
    }();
    return v;
}

bool in_mutex(const Image& im, uint64_t off, uint64_t len) {
    if (off + len <= im.g.stripes_offset) return false;
    const uint64_t rel = off - std::min(off, im.g.stripes_offset);
    const uint64_t first = rel / sizeof(shm::StripeCtl);
    const uint64_t last = (off + len - 1 - im.g.stripes_offset) / sizeof(shm::StripeCtl);
    for (uint64_t s = first; s <= last && s < im.cfg.n_stripes; ++s) {
        const uint64_t m0 = im.ctl(uint32_t(s)), m1 = m0 + sizeof(pthread_mutex_t);
        if (off < m1 && m0 < off + len) return true;
    }
    return false;
}

// For $SHMC_FUZZ_VERBOSE: where byte `at` of an image is, in the engine's terms.
std::string where(const Image& im, uint64_t at) {
    char buf[160];
    if (at < shm::kHeaderBytes) {
        snprintf(buf, sizeof buf, "header +%llu", (unsigned long long)at);
    } else if (at < im.g.stripes_offset) {
        snprintf(buf, sizeof buf, "process counters +%llu",
                 (unsigned long long)(at - im.g.counters_offset));
    } else if (at < im.g.regions_offset) {
        const uint64_t rel = at - im.g.stripes_offset;
        const uint64_t f = rel % sizeof(shm::StripeCtl);
        static const struct {
            size_t off;
            const char* name;
        } fields[] = {
            {offsetof(shm::StripeCtl, dirty), "dirty"},
            {offsetof(shm::StripeCtl, stats), "stats"},
            {offsetof(shm::StripeCtl, free_blocks), "free_blocks"},
            {offsetof(shm::StripeCtl, entries), "entries"},
            {offsetof(shm::StripeCtl, used_blocks), "used_blocks"},
            {offsetof(shm::StripeCtl, free_heads), "free_heads"},
            {offsetof(shm::StripeCtl, q_head), "q_head"},
            {offsetof(shm::StripeCtl, q_tail), "q_tail"},
            {offsetof(shm::StripeCtl, q_entries), "q_entries"},
            {offsetof(shm::StripeCtl, q_blocks), "q_blocks"},
            {offsetof(shm::StripeCtl, sieve_hand), "sieve_hand"},
            {offsetof(shm::StripeCtl, ghost_clock), "ghost_clock"},
            {offsetof(shm::StripeCtl, min_expiry_lb), "min_expiry_lb"},
            {offsetof(shm::StripeCtl, data_bytes), "data_bytes"},
            {offsetof(shm::StripeCtl, rng), "rng"},
            {sizeof(shm::StripeCtl), "padding"},
        };
        const char* name = "mutex";
        size_t base = 0;
        for (auto& fl : fields)
            if (f >= fl.off) name = fl.name, base = fl.off;
        snprintf(buf, sizeof buf, "stripe %llu ctl +%llu (%s +%llu)",
                 (unsigned long long)(rel / sizeof(shm::StripeCtl)), (unsigned long long)f, name,
                 (unsigned long long)(f - base));
    } else {
        const uint64_t rel = at - im.g.regions_offset;
        const uint64_t s = rel / im.g.region_bytes, r = rel % im.g.region_bytes;
        if (r < im.g.ghost_off)
            snprintf(buf, sizeof buf, "stripe %llu bucket %llu +%llu", (unsigned long long)s,
                     (unsigned long long)(r / 4), (unsigned long long)(r % 4));
        else if (r < im.g.blocks_off)
            snprintf(buf, sizeof buf, "stripe %llu %s +%llu", (unsigned long long)s,
                     r < im.g.freemap_off ? "ghost" : "free map",
                     (unsigned long long)(r - (r < im.g.freemap_off ? im.g.ghost_off
                                                                    : im.g.freemap_off)));
        else
            snprintf(buf, sizeof buf, "stripe %llu block %llu +%llu", (unsigned long long)s,
                     (unsigned long long)((r - im.g.blocks_off) / shm::kBlockSize),
                     (unsigned long long)((r - im.g.blocks_off) % shm::kBlockSize));
    }
    return buf;
}

// For $SHMC_FUZZ_VERBOSE: " (entry <key>)" if byte `at` is in the header of a live entry.
std::string entry_at(const Image& im, uint64_t at) {
    for (auto [s, idx] : im.entries) {
        const uint64_t b = im.block(s, idx);
        if (at < b || at >= b + shm::kEntryHeader) continue;
        const auto* e = reinterpret_cast<const shm::EntryHeader*>(im.bytes.data() + b);
        const size_t n = std::min<size_t>(
            {e->key_len, 32, im.bytes.size() - std::min<size_t>(im.bytes.size(), b + shm::kEntryHeader)});
        return " (entry " +
               fuzz::show(std::string_view(
                   reinterpret_cast<const char*>(im.bytes.data() + b + shm::kEntryHeader), n)) +
               ")";
    }
    return "";
}

// One edit: [area][kind][offset: 3 bytes][value].
void apply_edit(const Image& im, std::vector<uint8_t>& b, fuzz::Reader& in) {
    const uint8_t area = in.u8(), kind = in.u8();
    const uint32_t off = in.u24();
    const uint8_t val = in.u8();
    const uint32_t ns = im.cfg.n_stripes;
    const uint32_t s = off % ns;
    uint64_t at;
    switch (area % 9) {
        case 0: at = off % 256; break;                  // header fields
        case 1: at = off % shm::kHeaderBytes; break;    // header page (attach table)
        case 2: {                                       // stripe control block, past the mutex
            const uint64_t span = sizeof(shm::StripeCtl) - sizeof(pthread_mutex_t);
            at = im.ctl(s) + sizeof(pthread_mutex_t) + (off / ns) % span;
            break;
        }
        case 3: at = im.region(s) + (off / ns) % (uint64_t(im.g.buckets_per_stripe) * 4); break;
        case 4:                                         // ghost table and free map
            at = im.region(s) + im.g.ghost_off + (off / ns) % (im.g.blocks_off - im.g.ghost_off);
            break;
        case 5:
            at = im.region(s) + im.g.blocks_off +
                 (off / ns) % (uint64_t(im.g.blocks_per_stripe) * shm::kBlockSize);
            break;
        case 6: {                                       // an entry header
            auto [es, idx] = im.entries[off % im.entries.size()];
            at = im.block(es, idx) + (off / im.entries.size()) % shm::kEntryHeader;
            break;
        }
        case 7: {                                       // a free run's head or tail tag
            auto [fs, idx] = im.free_runs[off % im.free_runs.size()];
            const auto* f = reinterpret_cast<const shm::FreeRun*>(im.bytes.data() + im.block(fs, idx));
            const uint32_t n = f->nblocks ? f->nblocks : 1;
            at = (off / im.free_runs.size()) % 2 ? im.block(fs, idx) + (off >> 12) % 16
                                                 : im.block(fs, idx + n - 1) + shm::kBlockSize - 4;
            break;
        }
        default: at = off % b.size(); break;            // anywhere
    }
    static const bool verbose = getenv("SHMC_FUZZ_VERBOSE") != nullptr;
    uint32_t word;
    switch (kind % 5) {
        case 0:  // flip bits of one byte
            if (at < b.size() && !in_mutex(im, at, 1)) {
                b[at] ^= val ? val : 1;
                if (verbose)
                    fprintf(stderr, "edit: %s ^= 0x%02x%s\n", where(im, at).c_str(), val ? val : 1,
                            entry_at(im, at).c_str());
            }
            return;
        case 1: word = val; break;                       // a small index or length
        case 2: word = shm::kNil; break;
        case 3: word = im.entries[val % im.entries.size()].second; break;  // another entry
        default: word = uint32_t(val) << 24 | uint32_t(val) * 0x010101u; break;
    }
    at &= ~uint64_t(3);
    if (at + 4 <= b.size() && !in_mutex(im, at, 4)) {
        uint32_t old;
        std::memcpy(&old, &b[at], 4);
        std::memcpy(&b[at], &word, 4);
        if (verbose)
            fprintf(stderr, "edit: %s: u32 0x%x -> 0x%x%s\n", where(im, at).c_str(), old, word,
                    entry_at(im, at).c_str());
    }
}

// What the model allows a get of a key to return: a miss, or for a key of the image its value
// f(key), unless this input wrote or removed the key: then one of the values in `changed`.
struct Model {
    const Image& im;
    std::map<std::string, std::set<std::string>> changed;

    bool allows(const std::string& key, const std::string& v) const {
        auto it = changed.find(key);
        if (it != changed.end()) return it->second.count(v) > 0;
        auto iv = im.values.find(key);
        return iv != im.values.end() && iv->second == v;
    }
    // The set of values allowed for key, from now on changed by the caller.
    std::set<std::string>& edit(const std::string& key) {
        auto it = changed.find(key);
        if (it != changed.end()) return it->second;
        auto& vs = changed[key];
        auto iv = im.values.find(key);
        if (iv != im.values.end()) vs.insert(iv->second);
        return vs;
    }
    template <class Fn>
    void for_each_key(Fn&& fn) {
        for (auto& [k, v] : im.values) fn(k);
        for (auto& [k, vs] : changed)
            if (!im.values.count(k)) fn(k);
    }

    void check_get(shmc_cache* c, const std::string& key, uint32_t max_value_len) {
        static std::vector<char> buf(SHMC_MAX_VALUE_LEN);  // one buffer: an input makes ~1000 gets
        size_t len = 0;
        int rc = shmc_get(c, key.data(), key.size(), buf.data(), max_value_len, &len, nullptr,
                          nullptr);
        static const bool verbose = getenv("SHMC_FUZZ_VERBOSE") != nullptr;
        if (verbose && rc != 0 && rc != SHMC_E_NOTFOUND)
            fprintf(stderr, "get %s: rc %d (%s)\n", fuzz::show(key).c_str(), rc, shmc_errmsg());
        if (rc == SHMC_E_NOTFOUND || rc == SHMC_E_CORRUPT || rc == SHMC_E_LOCK_TIMEOUT) return;
        // A value above the segment's limit never exists: a damaged length must not be passed
        // on as the size to allocate (cap is max_value_len).
        FUZZ_CHECK(rc != SHMC_E_BUFFER_TOO_SMALL,
                   "get " + fuzz::show(key) + " with cap max_value_len (" +
                       std::to_string(max_value_len) + "): BUFFER_TOO_SMALL, length " +
                       std::to_string(len));
        FUZZ_CHECK(rc == 0, "get rc " + std::to_string(rc) + ": " + shmc_errmsg());
        const std::string v(buf.data(), len);
        // (Allowed values are self-consistent by construction; the check says which way not.)
        FUZZ_CHECK(allows(key, v), "get " + fuzz::show(key) + " returned " +
                                       (self_consistent(key, v)
                                            ? "a value of its own that it must not hold now: "
                                            : "another key's or a torn value: ") +
                                       fuzz::show(v));
    }
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    images();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::Reader in(data, size);
    const Image& im = images()[in.u8() % kNumImages];
    const uint8_t flags = in.u8();
    const uint32_t tval = in.u24();
    std::vector<uint8_t> b = im.bytes;
    for (int n = 0; !in.empty() && n < 64; ++n) apply_edit(im, b, in);
    size_t len = b.size();
    if (flags & 2) {
        switch ((flags >> 2) & 3) {
            case 0: len = tval % kSize; break;
            case 1: len = kSize - 1 - tval % 8192; break;
            case 2: len = kSize + 1 + tval % 8192; break;
            default: len = tval % 8192; break;
        }
        b.resize(std::max(len, b.size()), 0);
    }

    const std::string name = fresh_name();
    FUZZ_CHECK(write_object(name, b, len), "writing /dev/shm/" + name + ": " + strerror(errno));
    shmc_options o = options_of(im.cfg);
    if (!(flags & 1)) o.flags |= SHMC_OPEN_NO_CREATE;
    shmc_cache* c = nullptr;
    int rc = shmc_open(name.c_str(), &o, &c);
    if (rc != 0) {
        shm_unlink(("/" + name).c_str());
        FUZZ_CHECK(rc == SHMC_E_VERSION || rc == SHMC_E_CORRUPT || rc == SHMC_E_NO_SEGMENT,
                   "open rc " + std::to_string(rc) + ": " + shmc_errmsg());
        return 0;
    }
    shm_unlink(("/" + name).c_str());  // the mapping stays; nothing is left behind

    shmc_info info{};
    FUZZ_CHECK(shmc_get_info(c, &info) == 0, "info");
    FUZZ_CHECK(info.max_value_len <= SHMC_MAX_VALUE_LEN && info.n_stripes == im.cfg.n_stripes,
               "info disagrees with the image");
    shmc_stats st{};
    FUZZ_CHECK(shmc_get_stats(c, &st) == 0, "stats");
    for (uint32_t s = 0; s < info.n_stripes; ++s)
        FUZZ_CHECK(shmc_stripe_stats(c, s, &st) == 0, "stripe stats");

    Model m{im, {}};
    m.for_each_key([&](const std::string& k) { m.check_get(c, k, info.max_value_len); });

    // Writes. A failed write may leave the old value, the new one, or nothing.
    auto write = [&](const std::string& k, const std::string& tag, size_t filler) {
        const std::string v = make_value(k, tag, filler);
        int wrc = shmc_set(c, k.data(), k.size(), v.data(), v.size(), 0, 0);
        if (v.size() > info.max_value_len) {  // a damaged header may lower the limit, consistently
            FUZZ_CHECK(wrc == SHMC_E_VALUE_TOO_LARGE, "set over the limit: rc " + std::to_string(wrc));
            return;
        }
        FUZZ_CHECK(wrc == 0 || wrc == SHMC_E_CORRUPT || wrc == SHMC_E_LOCK_TIMEOUT,
                   "set rc " + std::to_string(wrc) + ": " + shmc_errmsg());
        auto& vs = m.edit(k);
        if (wrc == 0) vs.clear();
        vs.insert(v);
    };
    write("new:0", "n", 50);
    write("new:1", "n", 700);
    write("new:2", "n", 5000);
    write(im.keys[1], "over", 300);
    write(im.keys[im.keys.size() / 2], "over", 30);
    for (size_t i = 2; i < im.keys.size(); i += 97) {
        int drc = shmc_del(c, im.keys[i].data(), im.keys[i].size());
        FUZZ_CHECK(drc == 0 || drc == SHMC_E_NOTFOUND || drc == SHMC_E_CORRUPT ||
                       drc == SHMC_E_LOCK_TIMEOUT,
                   "del rc " + std::to_string(drc));
        if (drc == 0 || drc == SHMC_E_NOTFOUND) m.edit(im.keys[i]).clear();
    }
    int64_t result = 0;
    int irc = shmc_incr(c, "num", 3, 1, &result);
    FUZZ_CHECK(irc == 0 || irc == SHMC_E_NOTFOUND || irc == SHMC_E_CORRUPT ||
                   irc == SHMC_E_LOCK_TIMEOUT,
               "incr rc " + std::to_string(irc));
    if (irc == 0) {
        FUZZ_CHECK(result == 42, "incr of 41 gave " + std::to_string(result));
        m.edit("num") = {"42"};
    } else if (irc == SHMC_E_CORRUPT) {
        m.edit("num").insert("42");
    }
    shmc_touch(c, im.keys[4].data(), im.keys[4].size(), 1000000000ull);

    const std::string pat = "k:1*";
    uint64_t removed = 0;
    int prc = shmc_purge(c, pat.data(), pat.size(), &removed);
    FUZZ_CHECK(prc == 0 || prc == SHMC_E_CORRUPT || prc == SHMC_E_LOCK_TIMEOUT,
               "purge rc " + std::to_string(prc));
    if (prc == 0) {
        std::vector<std::string> purged;
        m.for_each_key([&](const std::string& k) {
            if (shmc_glob_match(pat.data(), pat.size(), k.data(), k.size()) == 1) purged.push_back(k);
        });
        for (auto& k : purged) m.edit(k).clear();
    }

    // Scan reports only keys that were written (a damaged entry must not show up as a key
    // nobody wrote, or as an empty one).
    std::vector<std::string> scanned;
    auto collect = [](const void* key, size_t klen, size_t, int64_t, void* ctx) {
        static_cast<std::vector<std::string>*>(ctx)->emplace_back(static_cast<const char*>(key),
                                                                  klen);
        return 0;
    };
    int src = shmc_scan(c, "*", 1, collect, &scanned);
    FUZZ_CHECK(src == 0 || src == SHMC_E_CORRUPT || src == SHMC_E_LOCK_TIMEOUT,
               "scan rc " + std::to_string(src));
    for (auto& k : scanned)
        FUZZ_CHECK(im.values.count(k) || m.changed.count(k),
                   "scan reported a key nobody wrote: " + fuzz::show(k) + " (" +
                       std::to_string(k.size()) + " bytes)");

    // Keys deleted or purged with success must miss now (before any repair).
    for (auto& [k, vs] : m.changed)
        if (vs.empty()) {
            char one[1];
            size_t vlen = 0;
            int grc = shmc_get(c, k.data(), k.size(), one, 0, &vlen, nullptr, nullptr);
            FUZZ_CHECK(grc != 0 && grc != SHMC_E_BUFFER_TOO_SMALL,
                       "key " + fuzz::show(k) + " deleted or purged with success, still there");
        }

    // Rebuild recomputes everything check verifies, so even the first check ends clean.
    shmc_check_report r1{}, r2{};
    int c1 = shmc_check(c, &r1);
    FUZZ_CHECK(c1 == 0, "first check rc " + std::to_string(c1) + ": " + shmc_errmsg());
    int c2 = shmc_check(c, &r2);
    FUZZ_CHECK(c2 == 0 && r2.stripes_damaged == 0 && r2.stripes_skipped == 0,
               "second check rc " + std::to_string(c2) + ", " + std::to_string(r2.stripes_damaged) +
                   " stripes damaged, " + std::to_string(r2.stripes_skipped) + " skipped: " +
                   shmc_errmsg());

    m.for_each_key([&](const std::string& k) { m.check_get(c, k, info.max_value_len); });

    // Checked, the stripes agree with themselves: the counters with the entries, the queues
    // (what scan walks) with the hash chains (what check walks). Scan skips expired entries
    // (a damaged expiry may have passed), so it may see fewer.
    FUZZ_CHECK(shmc_get_stats(c, &st) == 0 && st.entries == r2.entries_checked,
               "after check: stats count " + std::to_string(st.entries) + " entries, check " +
                   std::to_string(r2.entries_checked));
    scanned.clear();
    FUZZ_CHECK(shmc_scan(c, "*", 1, collect, &scanned) == 0 && scanned.size() <= st.entries,
               "after check: scan saw " + std::to_string(scanned.size()) + " of " +
                   std::to_string(st.entries) + " entries");

    // A checked segment works: a set succeeds and reads back.
    const std::string k = "after-check", v = make_value(k, "ac", 123);
    rc = shmc_set(c, k.data(), k.size(), v.data(), v.size(), 0, 0);
    FUZZ_CHECK(rc == 0, "set after check rc " + std::to_string(rc) + ": " + shmc_errmsg());
    std::vector<char> buf(v.size());
    size_t glen = 0;
    rc = shmc_get(c, k.data(), k.size(), buf.data(), buf.size(), &glen, nullptr, nullptr);
    FUZZ_CHECK(rc == 0 && std::string(buf.data(), glen) == v,
               "get after set after check rc " + std::to_string(rc));
    FUZZ_CHECK(shmc_get_stats(c, &st) == 0 && st.bytes_used <= st.bytes_capacity,
               "stats after check");
    shmc_close(c);
    return 0;
}
