// base64.h - standard base64 (RFC 4648, section 4): strict decoding for warm's value_b64, and
// encoding for `get --json`, whose output is a warm record.
//
// Strict because a warm file is checked before anything is written: a value that decodes
// "somehow" (stray characters skipped, bad padding accepted) would put bytes in the cache that
// nobody wrote. Padding may be omitted; whitespace, the URL-safe alphabet and non-zero trailing
// bits are refused.
#ifndef SHMCACHE_CLI_BASE64_H
#define SHMCACHE_CLI_BASE64_H

#include <string>
#include <string_view>

namespace shmcache::cli {

// Decode `in` into *out. False (and *why says where) on any character outside the alphabet,
// misplaced padding, an impossible length, or non-zero bits after the last byte.
bool base64_decode(std::string_view in, std::string* out, std::string* why);

// Encode `in`, padded: what base64_decode reads back.
std::string base64_encode(std::string_view in);

}  // namespace shmcache::cli

#endif
