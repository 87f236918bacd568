// value.cpp - see value.h.
#include "value.h"

namespace shmcache::cli {

namespace {

// fetch_value on one tier.
int fetch_from(shmc_cache* cache, std::string_view key, uint32_t tier, std::string* out,
               int64_t* ttl_left_ms) {
    out->resize(64 * 1024);
    // The value can be replaced by a larger one between two calls; each retry uses the size the
    // last call asked for, so a handful of rounds is enough unless someone is racing us on purpose.
    for (int round = 0; round < 8; ++round) {
        size_t len = 0;
        int rc = shmc_tget(cache, key.data(), key.size(), out->data(), out->size(), &len, nullptr,
                           ttl_left_ms, tier, 0, nullptr);
        if (rc == SHMC_OK) {
            out->resize(len);
            return rc;
        }
        if (rc != SHMC_E_BUFFER_TOO_SMALL) return rc;
        out->resize(len);
    }
    return SHMC_E_LOCK_TIMEOUT;
}

}  // namespace

int fetch_value(shmc_cache* cache, std::string_view key, uint32_t tiers, std::string* out,
                int64_t* ttl_left_ms, uint32_t* served_by) {
    int l1_rc = SHMC_E_NOTFOUND;
    if (tiers & SHMC_TIER_L1) {
        l1_rc = fetch_from(cache, key, SHMC_TIER_L1, out, ttl_left_ms);
        if (l1_rc == SHMC_OK) *served_by = SHMC_TIER_L1;
        // A lock timeout is a miss for a reader, as the library's own two-tier get treats it.
        if (!(tiers & SHMC_TIER_L2) || (l1_rc != SHMC_E_NOTFOUND && l1_rc != SHMC_E_LOCK_TIMEOUT))
            return l1_rc;
    }
    int rc = fetch_from(cache, key, SHMC_TIER_L2, out, ttl_left_ms);
    if (rc == SHMC_OK) *served_by = SHMC_TIER_L2;
    return rc == SHMC_E_NOTFOUND && l1_rc == SHMC_E_LOCK_TIMEOUT ? l1_rc : rc;
}

Decoded decode_value(std::string_view stored, std::string* why) {
    Decoded d;
    size_t len = 0;
    uint32_t ser = 0;
    int rc = shmc_decode(stored.data(), stored.size(), &ser, nullptr, 0, &len);
    if (rc == SHMC_OK || rc == SHMC_E_BUFFER_TOO_SMALL) {
        d.payload.resize(len);
        rc = shmc_decode(stored.data(), stored.size(), &ser, d.payload.data(), d.payload.size(),
                         &len);
    }
    if (rc != SHMC_OK) {
        if (why) *why = shmc_errmsg();
        d.payload.assign(stored);
        return d;
    }
    d.payload.resize(len);
    d.envelope = true;
    d.serializer = ser;
    d.compressed = stored.size() >= 2 && (static_cast<unsigned char>(stored[1]) & 0x10);
    return d;
}

int encode_value(uint32_t serializer, std::string_view payload, size_t compress_threshold,
                 std::string* out) {
    out->resize(shmc_encode_bound(payload.size()));
    size_t len = 0;
    int rc = shmc_encode(serializer, payload.data(), payload.size(), compress_threshold, 0,
                         out->data(), out->size(), &len);
    if (rc == SHMC_OK) out->resize(len);
    return rc;
}

}  // namespace shmcache::cli
