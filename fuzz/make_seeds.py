#!/usr/bin/env python3
"""make_seeds.py - write the hand-made seed inputs of fuzz/corpus/<target>/.

Each seed is a few fields in the order the target reads them (fuzz/README.md has the layouts),
named for what it exercises. Run it again after changing a layout; it rewrites only the seeds it
knows (files named seed-*), never what a fuzzing run merged in (--update-corpus).

Usage: fuzz/make_seeds.py   (needs the zstd command for the compressed envelope seed)
"""
import os
import struct
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# glob: [pattern length][pattern][subject]
def glob(name, pattern, subject):
    write("glob", name, bytes([len(pattern)]) + pattern + subject)


glob("star", b"*", b"anything")
glob("prefix", b"user:*", b"user:42")
glob("question", b"a?c", b"abc")
glob("range", b"[a-c]x", b"bx")
glob("negated", b"[!a]*", b"bcd")
glob("escape", b"\\*lit", b"*lit")
glob("bracket-member", b"[]]", b"]")
glob("unclosed", b"[ab", b"a")
glob("trailing-backslash", b"a\\", b"a")
glob("backtrack", b"*a*b*c", b"xxaxxbxxc")
glob("binary", b"k?z", b"k\x00z")

# envelope: mode byte; even = decode the rest, odd = round trip [ser][threshold][level][reps]
write("envelope", "raw", b"\x00\xc5\x00hello")
write("envelope", "json", b"\x00\xc5\x01{\"a\":1}")
write("envelope", "reserved-bits", b"\x00\xc5\xe0x")
write("envelope", "short", b"\x00\xc5")
with tempfile.TemporaryDirectory() as tmp:
    src = os.path.join(tmp, "v")
    with open(src, "wb") as f:
        f.write(b"compress me " * 40)
    # From a file, zstd records the content size in the frame header, as the decoder requires.
    frame = subprocess.run(["zstd", "-q", "-c", src], check=True, capture_output=True).stdout
write("envelope", "zstd", b"\x00\xc5\x13" + frame)
write("envelope", "zstd-truncated", b"\x00\xc5\x10" + frame[: len(frame) // 2])
write("envelope", "roundtrip", b"\x01\x01\x01\x00\x03payload payload")
write("envelope", "roundtrip-large", b"\x01\x04\x01\x01\x0fabcabcabc")
write("envelope", "roundtrip-bad-ser", b"\x01\x20\x00\x00\x00xyz")

# ops: [config] then operations: [opcode][key] and fields (fuzz/README.md)
SET, ADD, SETNUM, GET, DEL, TOUCH, INCR, PURGE, SCAN, CLEAR, INVALID, VERIFY, FILL = (
    0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13)


def op_set(key, size_sel, ttl_sel=0, seed=1, add=False):
    return bytes([ADD if add else SET, key, size_sel, 0, ttl_sel, seed])


write("ops", "set-get-del",
      b"\x00" + op_set(0, 4) + bytes([GET, 0, 0, DEL, 0, GET, 0, 0]))
write("ops", "add-twice",
      b"\x05" + op_set(1, 3, add=True) + op_set(1, 5, add=True) + bytes([GET, 1, 1]))
write("ops", "incr",
      b"\x03" + bytes([SETNUM, 5, 0, 0, 0, INCR, 5, 0, 5, GET, 5, 0,
                       SETNUM, 6, 12, 0, 0, INCR, 6, 1, GET, 6, 0]))
write("ops", "purge-scan",
      b"\x01" + op_set(5, 4) + op_set(6, 4) + op_set(7, 4) + op_set(8, 4)
      + bytes([PURGE, 0, 2, SCAN, 0, 0, GET, 5, 0, GET, 8, 0]))
write("ops", "evict-by-count", b"\x12" + bytes([FILL, 0, 200, VERIFY, 0]))
write("ops", "large-values",
      b"\x02" + op_set(13, 14) + op_set(14, 15) + op_set(15, 16) + op_set(2, 13)
      + bytes([GET, 13, 0, GET, 14, 2, GET, 2, 1]))
write("ops", "ttl-touch",
      b"\x04" + op_set(3, 6, ttl_sel=3) + bytes([TOUCH, 3, 4, GET, 3, 0, TOUCH, 3, 0, GET, 3, 0]))
write("ops", "invalid-args", b"\x00" + bytes([INVALID, 0, 0, INVALID, 0, 3, INVALID, 0, 7]))
write("ops", "clear", b"\x07" + op_set(0, 4) + bytes([CLEAR, 0, 0, GET, 0, 0]))


# segment: [image][flags][truncation: 3 bytes] then edits [area][kind][offset: 3 bytes][value]
def seg(name, image, flags, trunc, edits):
    data = bytes([image, flags]) + struct.pack("<I", trunc)[:3]
    for area, kind, off, val in edits:
        data += bytes([area, kind]) + struct.pack("<I", off)[:3] + bytes([val])
    write("segment", name, data)


seg("pristine", 0, 0, 0, [])
seg("bad-magic", 0, 0, 0, [(0, 0, 0, 1)])
seg("init-not-ready-recreate", 1, 1, 0, [(0, 0, 24, 2)])       # init_state READY -> NONE
seg("size-bytes", 2, 0, 0, [(0, 0, 50, 1)])                     # size_bytes + 64 KiB
seg("truncated-half", 0, 2, 512 * 1024, [])
seg("truncated-tail", 1, 2 | (1 << 2), 100, [])
seg("extended", 2, 2 | (2 << 2), 4000, [])
seg("entry-value-len", 0, 0, 0, [(6, 0, 0x000105, 0x40)])       # an entry's value_len
seg("entry-next-extent", 3, 0, 0, [(6, 3, 0x000034, 7)])        # ext.next -> another entry
seg("bucket-nil", 1, 0, 0, [(3, 2, 0x000010, 0)])
seg("ctl-entries", 0, 0, 0, [(2, 1, 0x000200, 3)])              # a stripe's counters
seg("free-run", 2, 0, 0, [(7, 3, 0x000001, 5), (7, 0, 0x000002, 0x80)])
seg("free-map", 3, 0, 0, [(4, 0, 0x000400, 0xff)])
seg("blocks", 1, 0, 0, [(5, 0, 0x001234, 0x10), (5, 1, 0x004321, 9)])

# warm_parse: one line
lines = {
    "json-value": b'{"key": "user:1", "value": {"name": "a", "n": [1, 2.5, null, true]}, "ttl": 60}',
    "b64": b'{"key": "img", "value_b64": "aGVsbG8="}',
    "b64-unpadded": b'{"key": "img", "value_b64": "aGVsbG8"}',
    "b64-trailing-bits": b'{"key": "img", "value_b64": "aGVsbG9="}',
    "text": '{"key": "t", "text": "h\u00e9llo", "ttl": null}'.encode(),
    "ttl-fraction": b'{"key": "t", "text": "x", "ttl": 0.001}',
    "blank": b"   \t\r",
    "empty-key": b'{"key": "", "text": "x"}',
    "two-values": b'{"key": "k", "text": "x", "value": 1}',
    "huge-number": b'{"key": "k", "value": 1e999}',
    "not-json": b"key=value",
    "crlf": b'{"key": "k", "value": [1, 2]}\r',
}
for name, line in lines.items():
    write("warm_parse", name, line)
