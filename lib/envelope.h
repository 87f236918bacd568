// envelope.h - the value envelope of shmcache.h (serializer id + optional zstd), in C++.
#ifndef SHMCACHE_LIB_ENVELOPE_H
#define SHMCACHE_LIB_ENVELOPE_H

#include <cstddef>
#include <cstdint>

namespace shmcache {

size_t envelope_bound(size_t len);
int envelope_encode(uint32_t serializer, const void* payload, size_t len, size_t threshold,
                    int level, void* out, size_t cap, size_t* out_len);
int envelope_decode(const void* env, size_t len, uint32_t* serializer, void* out, size_t cap,
                    size_t* out_len);

}  // namespace shmcache

#endif
