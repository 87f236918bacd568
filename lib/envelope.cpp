// envelope.cpp - see envelope.h and the envelope section of shmcache.h.
//
// Decoding treats its input as untrusted (it may come from another host through Redis): the
// header's reserved bits must be zero, the zstd frame must declare its content size, and that
// size is checked against SHMC_MAX_VALUE_LEN and the caller's buffer before anything is
// decompressed, so a small hostile frame cannot make us allocate or write without bound.
#include "envelope.h"

#include <shmcache/shmcache.h>
#include <zstd.h>

#include <cstring>

#include "shm/errors.h"

namespace shmcache {

namespace {
constexpr uint8_t kCompressed = 0x10;
constexpr uint8_t kSerMask = 0x0f;
}  // namespace

size_t envelope_bound(size_t len) {
    // Saturates instead of wrapping: no payload that large can be encoded anyway.
    if (len > SHMC_MAX_VALUE_LEN) return SIZE_MAX;
    return SHMC_ENVELOPE_HEADER + std::max(len, ZSTD_compressBound(len));
}

int envelope_encode(uint32_t serializer, const void* payload, size_t len, size_t threshold,
                    int level, void* out, size_t cap, size_t* out_len) {
    if (serializer > kSerMask || (!payload && len) || !out_len)
        return shm::fail(SHMC_E_INVAL, "bad serializer id %u or NULL argument", serializer);
    if (len > SHMC_MAX_VALUE_LEN)  // also keeps the size arithmetic below from wrapping
        return shm::fail(SHMC_E_INVAL, "payload of %zu bytes is over SHMC_MAX_VALUE_LEN", len);
    const size_t raw = SHMC_ENVELOPE_HEADER + len;
    const bool try_zstd = threshold && len >= threshold;
    const size_t need = try_zstd ? envelope_bound(len) : raw;
    if (!out || cap < need) {
        *out_len = need;
        return SHMC_E_BUFFER_TOO_SMALL;
    }
    auto* o = static_cast<uint8_t*>(out);
    o[0] = SHMC_ENVELOPE_MAGIC;
    if (try_zstd) {
        size_t z = ZSTD_compress(o + SHMC_ENVELOPE_HEADER, cap - SHMC_ENVELOPE_HEADER, payload, len,
                                 level ? level : ZSTD_CLEVEL_DEFAULT);
        if (!ZSTD_isError(z) && z < len) {  // keep it only if it is smaller
            o[1] = uint8_t(serializer | kCompressed);
            *out_len = SHMC_ENVELOPE_HEADER + z;
            return 0;
        }
    }
    o[1] = uint8_t(serializer);
    if (len) std::memcpy(o + SHMC_ENVELOPE_HEADER, payload, len);
    *out_len = raw;
    return 0;
}

int envelope_decode(const void* env, size_t len, uint32_t* serializer, void* out, size_t cap,
                    size_t* out_len) {
    if (!env || !out_len) return shm::fail(SHMC_E_INVAL, "NULL argument");
    const auto* e = static_cast<const uint8_t*>(env);
    if (len < SHMC_ENVELOPE_HEADER || e[0] != SHMC_ENVELOPE_MAGIC || (e[1] & 0xe0))
        return shm::fail(SHMC_E_BAD_ENVELOPE, "not a shmcache value envelope");
    const uint8_t* body = e + SHMC_ENVELOPE_HEADER;
    const size_t blen = len - SHMC_ENVELOPE_HEADER;
    if (serializer) *serializer = e[1] & kSerMask;
    if (!(e[1] & kCompressed)) {
        *out_len = blen;
        if (cap < blen || (!out && blen)) return SHMC_E_BUFFER_TOO_SMALL;
        if (blen) std::memcpy(out, body, blen);
        return 0;
    }
    const unsigned long long size = ZSTD_getFrameContentSize(body, blen);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN ||
        size > SHMC_MAX_VALUE_LEN)
        return shm::fail(SHMC_E_BAD_ENVELOPE, "damaged or oversized zstd frame in envelope");
    *out_len = size_t(size);
    if (cap < size || (!out && size)) return SHMC_E_BUFFER_TOO_SMALL;
    const size_t got = ZSTD_decompress(out, cap, body, blen);
    if (ZSTD_isError(got) || got != size)
        return shm::fail(SHMC_E_BAD_ENVELOPE, "damaged zstd frame in envelope");
    return 0;
}

}  // namespace shmcache
