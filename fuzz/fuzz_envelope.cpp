// fuzz_envelope.cpp - the value envelope (shmc_encode / shmc_decode).
//
// Input: one mode byte, then mode-specific fields (fuzz/README.md has the layout).
//  mode even - decode: the rest of the input is an envelope from an untrusted writer. Decoded
//    into buffers of exactly `cap` bytes (heap blocks of that size, so ASan sees any write past
//    cap) for several caps. Checked: only 0, SHMC_E_BAD_ENVELOPE or SHMC_E_BUFFER_TOO_SMALL;
//    a success fits in cap, never exceeds SHMC_MAX_VALUE_LEN, and gives the same bytes at every
//    cap; BUFFER_TOO_SMALL names a length above cap and within SHMC_MAX_VALUE_LEN for a zstd
//    frame; retrying with exactly that length succeeds (or the frame is reported damaged).
//    A decoded payload re-encodes and decodes to itself.
//  mode odd - round trip: serializer, threshold and level selectors, a repeat count, then the
//    payload (the rest, repeated so that large and compressible payloads occur). Encoded into a
//    buffer of exactly shmc_encode_bound(len) bytes, then decoded into exactly len bytes: the
//    payload and serializer come back; an uncompressed envelope is the payload behind two bytes;
//    a compressed one is smaller than that. Too small an output buffer gives
//    SHMC_E_BUFFER_TOO_SMALL and the length needed, and writes nothing past it.
#include <shmcache/shmcache.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_support.h"

namespace {

// A heap block of exactly n bytes (ASan red zones right after it). n may be 0.
struct Exact {
    std::unique_ptr<uint8_t[]> p;
    size_t n;
    explicit Exact(size_t size) : p(new uint8_t[size ? size : 1]), n(size) {}
    uint8_t* data() { return n ? p.get() : nullptr; }
};

std::string sv(const uint8_t* p, size_t n) { return std::string(reinterpret_cast<const char*>(p), n); }

void decode_case(const std::string& env) {
    // Reference decode at a generous cap.
    const size_t big = 1u << 20;
    Exact full(big);
    uint32_t ser = 99;
    size_t len = 0;
    int rc = shmc_decode(env.data(), env.size(), &ser, full.data(), full.n, &len);
    FUZZ_CHECK(rc == 0 || rc == SHMC_E_BAD_ENVELOPE || rc == SHMC_E_BUFFER_TOO_SMALL,
               "decode rc " + std::to_string(rc));
    const bool compressed = env.size() >= 2 && (uint8_t(env[1]) & 0x10);
    std::string payload;
    if (rc == 0) {
        FUZZ_CHECK(len <= big && len <= SHMC_MAX_VALUE_LEN, "decoded length " + std::to_string(len));
        FUZZ_CHECK(ser <= 15, "serializer " + std::to_string(ser));
        payload = sv(full.data(), len);
        if (!compressed) FUZZ_CHECK(payload == env.substr(2), "raw payload altered");
    } else if (rc == SHMC_E_BUFFER_TOO_SMALL) {
        FUZZ_CHECK(len > big, "BUFFER_TOO_SMALL at cap " + std::to_string(big) + " with length " +
                                  std::to_string(len));
        FUZZ_CHECK(!compressed || len <= SHMC_MAX_VALUE_LEN,
                   "a frame declaring " + std::to_string(len) + " bytes was not refused");
    }

    // The same at other caps: exact, one short, zero, small.
    const size_t caps[] = {len, len ? len - 1 : 0, 0, 7};
    for (size_t cap : caps) {
        if (cap > big) continue;
        Exact buf(cap);
        size_t got = 0;
        int rc2 = shmc_decode(env.data(), env.size(), nullptr, buf.data(), cap, &got);
        if (rc == SHMC_E_BAD_ENVELOPE && rc2 == SHMC_E_BUFFER_TOO_SMALL) {
            // A frame whose damage shows only when decompressed: its header is fine, so a small
            // cap is refused before decompression. Legitimate, and it must still name a length
            // within bounds.
            FUZZ_CHECK(got <= SHMC_MAX_VALUE_LEN && got > cap, "length " + std::to_string(got));
            continue;
        }
        if (rc == 0) {
            if (cap >= len) {
                FUZZ_CHECK(rc2 == 0, "decode at cap " + std::to_string(cap) + " rc " +
                                         std::to_string(rc2) + " after success at a larger cap");
                FUZZ_CHECK(got == len && sv(buf.data(), got) == payload, "bytes differ by cap");
            } else {
                FUZZ_CHECK(rc2 == SHMC_E_BUFFER_TOO_SMALL && got == len,
                           "cap " + std::to_string(cap) + " below " + std::to_string(len) +
                               ": rc " + std::to_string(rc2) + " length " + std::to_string(got));
            }
        } else if (rc == SHMC_E_BAD_ENVELOPE) {
            FUZZ_CHECK(rc2 == SHMC_E_BAD_ENVELOPE, "rc " + std::to_string(rc2));
        } else {  // BUFFER_TOO_SMALL at 1 MiB: any smaller cap says the same
            FUZZ_CHECK(rc2 == SHMC_E_BUFFER_TOO_SMALL && got == len, "rc " + std::to_string(rc2));
        }
    }

    // A decoded payload survives a re-encode.
    if (rc == 0) {
        const size_t bound = shmc_encode_bound(payload.size());
        Exact enc(bound);
        size_t elen = 0;
        int erc = shmc_encode(ser, payload.data(), payload.size(), 1, 1, enc.data(), bound, &elen);
        FUZZ_CHECK(erc == 0 && elen <= bound, "re-encode rc " + std::to_string(erc));
        Exact back(payload.size());
        size_t blen = 0;
        uint32_t ser2 = 99;
        int drc = shmc_decode(enc.data(), elen, &ser2, back.data(), back.n, &blen);
        FUZZ_CHECK(drc == 0 && ser2 == ser && sv(back.data(), blen) == payload,
                   "re-encoded payload did not decode to itself, rc " + std::to_string(drc));
    }
}

void round_trip_case(fuzz::Reader& in) {
    const uint32_t ser = in.u8();  // above 15 must be refused
    const uint8_t tsel = in.u8();
    const uint8_t lsel = in.u8();
    const uint8_t reps = in.u8();
    const std::string_view chunk = in.rest();
    std::string payload;
    const size_t times = chunk.empty() ? 0 : 1 + (reps % 16 == 15 ? size_t(reps) * 256 : reps % 16);
    for (size_t i = 0; i < times && payload.size() < (1u << 20); ++i) payload += chunk;
    const size_t len = payload.size();

    const size_t thresholds[] = {0, 1, 16, 64, 4096, len, len + 1, len ? len - 1 : 0};
    const size_t threshold = thresholds[tsel % 8];
    const int levels[] = {0, 1, 3, -1, -5, 5};
    const int level = levels[lsel % 6];

    const size_t bound = shmc_encode_bound(len);
    FUZZ_CHECK(bound >= len + SHMC_ENVELOPE_HEADER, "bound " + std::to_string(bound));
    Exact enc(bound);
    size_t elen = 0;
    int rc = shmc_encode(ser, payload.data(), len, threshold, level, enc.data(), bound, &elen);
    if (ser > 15) {
        FUZZ_CHECK(rc == SHMC_E_INVAL, "serializer " + std::to_string(ser) + " accepted");
        return;
    }
    FUZZ_CHECK(rc == 0, "encode rc " + std::to_string(rc));
    FUZZ_CHECK(elen >= SHMC_ENVELOPE_HEADER && elen <= bound, "length " + std::to_string(elen));
    FUZZ_CHECK(enc.data()[0] == SHMC_ENVELOPE_MAGIC, "magic");
    const bool compressed = enc.data()[1] & 0x10;
    FUZZ_CHECK((enc.data()[1] & 0xef) == ser, "header byte " + std::to_string(enc.data()[1]));
    if (threshold == 0 || len < threshold) {
        FUZZ_CHECK(!compressed && elen == len + SHMC_ENVELOPE_HEADER,
                   "compressed below the threshold");
    }
    if (compressed) FUZZ_CHECK(elen < len + SHMC_ENVELOPE_HEADER, "compressed but not smaller");
    if (!compressed) FUZZ_CHECK(sv(enc.data() + 2, elen - 2) == payload, "raw envelope altered");

    Exact out(len);
    size_t olen = 0;
    uint32_t ser2 = 99;
    rc = shmc_decode(enc.data(), elen, &ser2, out.data(), len, &olen);
    FUZZ_CHECK(rc == 0, "decode of a fresh envelope rc " + std::to_string(rc));
    FUZZ_CHECK(ser2 == ser && olen == len && sv(out.data(), olen) == payload,
               "round trip altered the payload (" + std::to_string(len) + " bytes, threshold " +
                   std::to_string(threshold) + ", level " + std::to_string(level) + ")");

    // Too small an output buffer: refused with the size needed, nothing written past it.
    if (len > 0) {
        const size_t small = len / 2;
        Exact tiny(small);
        size_t need = 0;
        rc = shmc_encode(ser, payload.data(), len, threshold, level, tiny.data(), small, &need);
        FUZZ_CHECK(rc == SHMC_E_BUFFER_TOO_SMALL && need > small,
                   "encode into " + std::to_string(small) + " bytes: rc " + std::to_string(rc));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::Reader in(data, size);
    const uint8_t mode = in.u8();
    if (mode % 2 == 0) {
        decode_case(std::string(in.rest()));
    } else {
        round_trip_case(in);
    }
    return 0;
}
