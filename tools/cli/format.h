// format.h - the small output helpers every verb shares: sizes, counts, durations, escaping of
// binary keys and values, and aligned text tables.
//
// Keys and values are bytes. Printing them raw on a terminal can move the cursor, change the
// character set or hide a newline inside a key, so anything a human reads goes through
// escape_bytes() or hex_dump(); only an explicit request (get --raw, or a pipe) gets the bytes.
#ifndef SHMCACHE_CLI_FORMAT_H
#define SHMCACHE_CLI_FORMAT_H

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace shmcache::cli {

bool is_tty(int fd);

// 1536 -> "1.5 KiB"; below 1 KiB: "512 B".
std::string human_bytes(uint64_t n);

// 1234567 -> "1,234,567".
std::string with_commas(uint64_t n);

// 0.4 -> "0.40 s", 75 -> "1:15", 4000 -> "1:06:40".
std::string human_seconds(double s);

// A printf into a std::string.
std::string strf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// Valid, printable UTF-8 is kept; control bytes, backslash and invalid UTF-8 become C escapes
// (\n, \t, \\, \xNN). The result is one line, and unambiguous.
std::string escape_bytes(std::string_view bytes);

// True when the bytes are valid UTF-8 (any code point, controls included).
bool is_utf8(std::string_view bytes);

// True when every byte is printable ASCII, tab, newline or valid multi-byte UTF-8.
bool is_text(std::string_view bytes);

// An xxd-style dump of at most `max` bytes, then a line saying how many were left out.
std::string hex_dump(std::string_view bytes, size_t max);

// "S3-FIFO", "LRU", ...; "strategy N" for an unknown id.
std::string strategy_name(uint32_t strategy);

// "json", "str", "raw", "pickle", "msgpack"; "serializer N" for an unknown id.
std::string serializer_name(uint32_t serializer);

// Write all of `bytes` to a stdio stream; false on a write error.
bool write_all(FILE* f, std::string_view bytes);

// A text table: columns padded to their widest cell; columns marked numeric are right-aligned.
class Table {
public:
    explicit Table(std::vector<bool> numeric = {}) : numeric_(std::move(numeric)) {}
    void row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
    // Every row as one string, lines ending with `eol` ("\n", or "\x1b[K\n" to erase leftovers
    // when redrawing a terminal in place).
    std::string render(const char* eol = "\n") const;

private:
    std::vector<bool> numeric_;
    std::vector<std::vector<std::string>> rows_;
};

}  // namespace shmcache::cli

#endif
