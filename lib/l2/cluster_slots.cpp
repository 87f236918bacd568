// cluster_slots.cpp - see cluster_slots.h.
#include "cluster_slots.h"

#include <array>
#include <charconv>
#include <strings.h>

namespace shmcache::l2 {

namespace {

constexpr std::array<uint16_t, 256> make_table() {
    std::array<uint16_t, 256> t{};
    for (unsigned i = 0; i < 256; ++i) {
        uint16_t c = uint16_t(i << 8);
        for (int b = 0; b < 8; ++b)
            c = (c & 0x8000) ? uint16_t((c << 1) ^ 0x1021) : uint16_t(c << 1);
        t[i] = c;
    }
    return t;
}
constexpr std::array<uint16_t, 256> kTable = make_table();

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

bool parse_int(std::string_view s, int* out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
    return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

uint16_t crc16_xmodem(std::string_view data) {
    uint16_t crc = 0;
    for (unsigned char ch : data) crc = uint16_t((crc << 8) ^ kTable[((crc >> 8) ^ ch) & 0xff]);
    return crc;
}

std::string_view hashed_part(std::string_view key) {
    const size_t open = key.find('{');
    if (open == std::string_view::npos) return key;
    const size_t close = key.find('}', open + 1);
    if (close == std::string_view::npos || close == open + 1) return key;  // none, or "{}"
    return key.substr(open + 1, close - open - 1);
}

int key_slot(std::string_view key) { return crc16_xmodem(hashed_part(key)) & (kClusterSlots - 1); }

int command_slot(const std::vector<std::string_view>& argv) {
    if (argv.size() < 2) return -1;
    const std::string_view name = argv[0];
    if (iequals(name, "PING") || iequals(name, "PUBLISH") || iequals(name, "ECHO")) return -1;
    if (iequals(name, "EVAL") || iequals(name, "EVALSHA")) {
        int numkeys = 0;
        if (argv.size() < 4 || !parse_int(argv[2], &numkeys) || numkeys < 1) return -1;
        return key_slot(argv[3]);
    }
    return key_slot(argv[1]);
}

Redirect parse_redirect(std::string_view err) {
    Redirect r;
    auto word = [&](std::string_view w) {
        return err.size() >= w.size() && err.substr(0, w.size()) == w &&
               (err.size() == w.size() || err[w.size()] == ' ');
    };
    if (word("TRYAGAIN") || word("CLUSTERDOWN")) {
        r.kind = Redirect::kTryAgain;
        return r;
    }
    const bool moved = word("MOVED");
    if (!moved && !word("ASK")) return r;
    std::string_view rest = err.substr(moved ? 6 : 4);
    const size_t sp = rest.find(' ');
    if (sp == std::string_view::npos || !parse_int(rest.substr(0, sp), &r.slot) || r.slot < 0 ||
        r.slot >= kClusterSlots)
        return Redirect{};
    std::string_view hp = rest.substr(sp + 1);
    const size_t colon = hp.rfind(':');
    if (colon == std::string_view::npos || !parse_int(hp.substr(colon + 1), &r.to.port) ||
        r.to.port <= 0 || r.to.port > 65535)
        return Redirect{};
    std::string_view host = hp.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    r.to.host = std::string(host);
    r.kind = moved ? Redirect::kMoved : Redirect::kAsk;
    return r;
}

}  // namespace shmcache::l2
