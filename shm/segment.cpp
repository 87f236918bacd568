// segment.cpp - see segment.h and docs/architecture.md ("Creation and concurrent starters").
//
// The flock on the object is what makes concurrent starts safe: the initializer holds it
// exclusively from creation until the header says READY, and the kernel drops it if the
// initializer dies. An opener that holds the lock (shared) and still sees a segment that is not
// READY therefore knows the initializer is dead, and initializes it again itself.
#include "shm/segment.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "shm/clock.h"
#include "shm/errors.h"
#include "shm/stripe.h"
#include "shm/stripe_lock.h"

namespace bip = boost::interprocess;

namespace shmcache::shm {

namespace {

constexpr uint32_t kInitWaitMs = 2000;

bool pid_alive(int pid) { return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM); }

// Takes a flock, polling until the deadline (flock itself cannot time out).
bool flock_until(int fd, int op, uint64_t deadline_ms) {
    for (;;) {
        if (flock(fd, op | LOCK_NB) == 0) return true;
        if (errno != EWOULDBLOCK && errno != EINTR) return false;
        if (monotonic_ms() >= deadline_ms) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

int nospc_error(const std::string& name, uint64_t size) {
    struct statvfs vfs {};
    unsigned long long free_bytes = 0;
    if (statvfs("/dev/shm", &vfs) == 0)
        free_bytes = (unsigned long long)vfs.f_bavail * vfs.f_frsize;
    return fail(SHMC_E_NOSPC,
                "no room in /dev/shm for segment '%s': asked for %llu bytes, %llu bytes free "
                "(enlarge /dev/shm, e.g. docker --shm-size, or lower size_bytes)",
                name.c_str(), (unsigned long long)size, free_bytes);
}

// Writes the header and every stripe of a freshly reserved object, publishing READY last.
int initialize(uint8_t* base, const Geometry& g, const shmc_options& o) {
    auto* h = reinterpret_cast<SegmentHeader*>(base);
    h->init_state.store(kInitRunning, std::memory_order_relaxed);
    h->magic = kMagic;
    h->layout_version = kLayoutVersion;
    h->header_bytes = kHeaderBytes;
    h->abi_fingerprint = abi_fingerprint();
    h->creator_pid = getpid();
    h->created_unix_ms = unix_ms();
    h->owner_uid = geteuid();
    h->mode = o.mode;
    h->size_bytes = g.size_bytes;
    h->max_entries = g.max_entries;
    h->n_stripes = g.n_stripes;
    h->strategy = g.strategy;
    h->max_value_len = g.max_value_len;
    h->blocks_per_stripe = g.blocks_per_stripe;
    h->buckets_per_stripe = g.buckets_per_stripe;
    h->ghost_per_stripe = g.ghost_per_stripe;
    h->steer_per_stripe = g.steer_per_stripe;
    h->expected_per_stripe = g.expected_per_stripe;
    h->stripes_offset = g.stripes_offset;
    h->regions_offset = g.regions_offset;
    h->region_bytes = g.region_bytes;
    for (auto& slot : h->attach) slot.pid.store(0, std::memory_order_relaxed);
    // A segment re-initialized after its first initializer died may hold old bytes here.
    std::memset(base + g.counters_offset, 0, kProcessCountersBytes);
    h->entry_limit.count.store(0, std::memory_order_relaxed);  // every stripe starts empty
    h->entry_limit.recount.store(0, std::memory_order_relaxed);
    h->entry_limit.retry_after_ms.store(0, std::memory_order_relaxed);
    for (uint32_t i = 0; i < g.n_stripes; ++i) {
        auto* ctl = reinterpret_cast<StripeCtl*>(base + g.stripes_offset) + i;
        std::memset(static_cast<void*>(ctl), 0, sizeof *ctl);
        if (int rc = stripe_lock_init(&ctl->mutex))
            return fail(rc, "cannot initialize a robust process-shared mutex: %s", strerror(rc));
        ctl->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t(i) << 32 | i);
        reset_stripe(stripe_ref(base, g, i));
    }
    h->init_state.store(kInitReady, std::memory_order_release);
    return 0;
}

// Checks a READY header against this build and recomputes its geometry.
int validate(const std::string& name, const SegmentHeader* h, uint64_t file_size, Geometry* g) {
    if (h->magic != kMagic)
        return fail(SHMC_E_VERSION, "'%s' is not a shmcache segment (bad magic)", name.c_str());
    if (h->layout_version != kLayoutVersion || h->abi_fingerprint != abi_fingerprint())
        return fail(
            SHMC_E_VERSION,
            "segment '%s' has layout version %u (fingerprint %016llx); this library "
            "(shmcache %s) uses layout version %u (fingerprint %016llx). Destroy the "
            "segment (shmcache-cli destroy --force) or open with SHMC_OPEN_REPLACE_INCOMPATIBLE",
            name.c_str(), h->layout_version, (unsigned long long)h->abi_fingerprint,
            library_version(), kLayoutVersion, (unsigned long long)abi_fingerprint());
    const char* why = "";
    if (!compute_geometry(h->size_bytes, h->max_entries, h->n_stripes, h->strategy,
                          h->max_value_len, g, &why))
        return fail(SHMC_E_CORRUPT, "segment '%s' header has impossible geometry: %s", name.c_str(),
                    why);
    if (g->blocks_per_stripe != h->blocks_per_stripe ||
        g->buckets_per_stripe != h->buckets_per_stripe ||
        g->ghost_per_stripe != h->ghost_per_stripe || g->steer_per_stripe != h->steer_per_stripe ||
        g->expected_per_stripe != h->expected_per_stripe ||
        g->regions_offset != h->regions_offset || g->region_bytes != h->region_bytes ||
        g->stripes_offset != h->stripes_offset || g->max_value_len != h->max_value_len ||
        g->size_bytes > file_size)
        return fail(SHMC_E_CORRUPT,
                    "segment '%s' header disagrees with its own geometry or size (%llu bytes "
                    "mapped); refusing to use it",
                    name.c_str(), (unsigned long long)file_size);
    return 0;
}

int map_error(const bip::interprocess_exception& e, const std::string& name, const char* what) {
    int err = e.get_native_error();
    if (e.get_error_code() == bip::not_found_error || err == ENOENT)
        return fail(SHMC_E_NO_SEGMENT, "segment '%s' does not exist", name.c_str());
    if (err == EACCES || err == EPERM)
        return fail(SHMC_E_PERM, "permission denied to %s segment '%s' (see docs/operations.md)",
                    what, name.c_str());
    if (err == ENOSPC) return fail(SHMC_E_NOSPC, "no room in /dev/shm for '%s'", name.c_str());
    return fail(err > 0 ? err : SHMC_E_INTERNAL, "cannot %s segment '%s': %s", what, name.c_str(),
                e.what());
}

}  // namespace

int resolve_name(const char* name, std::string* out) {
    if (!name || !*name) name = getenv("SHMCACHE_NAME");
    if (!name || !*name) name = "shmcache";
    if (*name == '/') ++name;
    size_t n = strlen(name);
    if (n == 0 || n > 200 || strchr(name, '/'))
        return fail(SHMC_E_INVAL, "bad segment name '%s': 1 to 200 characters, no '/'", name);
    *out = name;
    return 0;
}

int Segment::fd() const { return shm_.get_mapping_handle().handle; }

int Segment::open(const std::string& name, const shmc_options& o, std::unique_ptr<Segment>* out) {
    std::unique_ptr<Segment> seg(new Segment());
    seg->name_ = name;
    const uint64_t deadline = monotonic_ms() + kInitWaitMs;
    const bool may_create = !(o.flags & SHMC_OPEN_NO_CREATE);
    Geometry want{};
    const char* why = "";
    if (may_create && !compute_geometry(o.size_bytes, o.max_entries, o.n_stripes, o.strategy,
                                        o.max_value_len, &want, &why))
        return fail(SHMC_E_INVAL, "cannot create segment '%s': %s", name.c_str(), why);
    const mode_t mode = o.mode ? o.mode & 0777 : 0600;

    for (int attempt = 0;; ++attempt) {
        if (monotonic_ms() >= deadline)
            return fail(SHMC_E_INIT_TIMEOUT,
                        "segment '%s' is still being initialized by another process after %u ms",
                        name.c_str(), kInitWaitMs);
        bool created = false;
        try {
            if (may_create) {
                try {
                    bip::permissions perm(mode);
                    bip::shared_memory_object s(bip::create_only, name.c_str(), bip::read_write,
                                                perm);
                    seg->shm_.swap(s);
                    created = true;
                } catch (const bip::interprocess_exception& e) {
                    if (e.get_error_code() != bip::already_exists_error) throw;
                }
            }
            if (!created) {
                bip::shared_memory_object s(bip::open_only, name.c_str(), bip::read_write);
                seg->shm_.swap(s);
            }
        } catch (const bip::interprocess_exception& e) {
            int rc = map_error(e, name, created ? "create" : "open");
            if (rc == SHMC_E_NO_SEGMENT && may_create) continue;  // unlinked meanwhile: retry
            return rc;
        }
        const int fd = seg->fd();
        struct stat st {};
        if (fstat(fd, &st) != 0)
            return fail(errno, "fstat '%s': %s", name.c_str(), strerror(errno));
        if (!created && st.st_uid != geteuid() && !(o.flags & SHMC_OPEN_ALLOW_FOREIGN_OWNER))
            return fail(SHMC_E_PERM,
                        "segment '%s' is owned by uid %u, not by this process (uid %u); "
                        "pass SHMC_OPEN_ALLOW_FOREIGN_OWNER to share it",
                        name.c_str(), unsigned(st.st_uid), unsigned(geteuid()));
        if (created) fchmod(fd, mode);  // the umask must not narrow the mode asked for

        // Exclusive while creating; shared while checking that someone finished.
        if (!flock_until(fd, created ? LOCK_EX : LOCK_SH, deadline)) continue;
        uint64_t size = uint64_t(st.st_size);
        auto ready = [&](uint64_t sz) {
            if (sz < kHeaderBytes) return false;
            bip::mapped_region probe(seg->shm_, bip::read_only, 0, kHeaderBytes);
            auto* h = static_cast<const SegmentHeader*>(probe.get_address());
            return h->init_state.load(std::memory_order_acquire) == kInitReady;
        };
        if (fstat(fd, &st) == 0) size = uint64_t(st.st_size);
        if (!ready(size)) {
            // Either we created it, or its initializer died half-way (we hold the flock, so it
            // no longer does). Initialize under the exclusive lock, re-checking after upgrade.
            if (!may_create) {
                flock(fd, LOCK_UN);
                return fail(SHMC_E_NO_SEGMENT, "segment '%s' exists but was never initialized",
                            name.c_str());
            }
            if (!created && !flock_until(fd, LOCK_EX, deadline)) continue;
            if (fstat(fd, &st) == 0) size = uint64_t(st.st_size);
            if (!ready(size)) {
                if (ftruncate(fd, 0) != 0) {  // drop whatever a dead initializer left
                    int e = errno;
                    flock(fd, LOCK_UN);
                    return fail(e, "cannot reset segment '%s': %s", name.c_str(), strerror(e));
                }
                int rc = posix_fallocate(fd, 0, off_t(want.size_bytes));
                if (rc != 0) {
                    if (rc == ENOSPC || rc == EFBIG) {
                        bip::shared_memory_object::remove(name.c_str());
                        flock(fd, LOCK_UN);
                        return nospc_error(name, want.size_bytes);
                    }
                    bip::shared_memory_object::remove(name.c_str());  // leave nothing behind
                    flock(fd, LOCK_UN);
                    return fail(rc, "cannot reserve %llu bytes for '%s': %s",
                                (unsigned long long)want.size_bytes, name.c_str(), strerror(rc));
                }
                size = want.size_bytes;
                try {
                    bip::mapped_region r(seg->shm_, bip::read_write, 0, size);
                    shmc_options eff = o;
                    eff.mode = mode;
                    if (int irc = initialize(static_cast<uint8_t*>(r.get_address()), want, eff)) {
                        flock(fd, LOCK_UN);
                        return irc;
                    }
                } catch (const bip::interprocess_exception& e) {
                    flock(fd, LOCK_UN);
                    return map_error(e, name, "map");
                }
            }
        }
        flock(fd, LOCK_UN);
        if (fstat(fd, &st) == 0) size = uint64_t(st.st_size);
        try {
            bip::mapped_region r(seg->shm_, bip::read_write, 0, size);
            seg->region_.swap(r);
        } catch (const bip::interprocess_exception& e) {
            return map_error(e, name, "map");
        }
        seg->base_ = static_cast<uint8_t*>(seg->region_.get_address());
        int rc = validate(name, seg->header(), size, &seg->g_);
        if (rc == SHMC_E_VERSION && (o.flags & SHMC_OPEN_REPLACE_INCOMPATIBLE) && may_create &&
            attempt < 3) {
            // Explicitly asked for: processes still attached keep the old object until they
            // close it; this open and every later one get a new segment.
            bip::mapped_region none;
            seg->region_.swap(none);
            bip::shared_memory_object::remove(name.c_str());
            continue;
        }
        if (rc) return rc;
        seg->register_process();
        *out = std::move(seg);
        return 0;
    }
}

void Segment::register_process() {
    const int pid = getpid();
    if (slot_pid_ == pid) return;
    auto& slots = header()->attach;
    slot_ = -1;
    for (uint32_t i = 0; i < kAttachSlots && slot_ < 0; ++i) {
        int32_t cur = slots[i].pid.load(std::memory_order_relaxed);
        if ((cur == 0 || (cur != pid && !pid_alive(cur))) &&
            slots[i].pid.compare_exchange_strong(cur, pid))
            slot_ = int(i);
    }
    slot_pid_ = pid;  // with no free slot the process still works; it is just not counted
}

uint32_t Segment::attached() const {
    uint32_t n = 0;
    for (auto& slot : header()->attach)
        if (pid_alive(slot.pid.load(std::memory_order_relaxed))) ++n;
    return n;
}

Segment::~Segment() {
    if (base_ && slot_ >= 0 && slot_pid_ == getpid()) {
        int32_t me = slot_pid_;
        header()->attach[slot_].pid.compare_exchange_strong(me, 0);
    }
}

int Segment::unlink(const std::string& name, bool force) {
    try {
        bip::shared_memory_object s(bip::open_only, name.c_str(), bip::read_only);
        struct stat st {};
        int fd = s.get_mapping_handle().handle;
        if (fstat(fd, &st) == 0 && uint64_t(st.st_size) >= kHeaderBytes) {
            bip::mapped_region r(s, bip::read_only, 0, kHeaderBytes);
            auto* h = static_cast<const SegmentHeader*>(r.get_address());
            bool readable = h->magic == kMagic && h->layout_version == kLayoutVersion &&
                            h->abi_fingerprint == abi_fingerprint();
            if (!readable && !force)
                return fail(SHMC_E_VERSION,
                            "segment '%s' was made by another layout version (%u, this library "
                            "uses %u); its users cannot be counted: use force to remove it",
                            name.c_str(), h->layout_version, kLayoutVersion);
            if (readable && !force) {
                uint32_t others = 0;
                for (auto& slot : h->attach) {
                    int pid = slot.pid.load(std::memory_order_relaxed);
                    if (pid != getpid() && pid_alive(pid)) ++others;
                }
                if (others)
                    return fail(SHMC_E_BUSY,
                                "segment '%s' is in use by %u other process(es); use force to "
                                "remove it anyway",
                                name.c_str(), others);
            }
        }
    } catch (const bip::interprocess_exception& e) {
        return map_error(e, name, "open");
    }
    if (!bip::shared_memory_object::remove(name.c_str())) {
        const int e = errno;
        if (e == EACCES || e == EPERM)  // like every other permission failure
            return fail(SHMC_E_PERM, "permission denied to remove segment '%s'", name.c_str());
        return fail(e ? e : SHMC_E_INTERNAL, "cannot remove segment '%s': %s", name.c_str(),
                    strerror(e));
    }
    return 0;
}

}  // namespace shmcache::shm
