"""_envelope.py - the library's value envelope (shmc_encode / shmc_decode) from Python.

Every value this package stores is wrapped by the C library itself: a 2-byte header (magic
0xC5, serializer id, a "zstd" bit) and the payload, compressed with zstd when it is at least the
threshold long and compression makes it smaller. Because the C code does it, shmcache-cli and any
other reader decode exactly what Python wrote, and the reverse; nothing here re-implements the
format.

encode_into()/decode_from() work in this thread's reusable buffers (see _buffers) and are what
the hot path uses; encode()/decode() return fresh bytes for everyone else (tests, tools).
"""
import ctypes

from . import _buffers
from ._ffi import E_BAD_ENVELOPE, E_BUFFER_TOO_SMALL, OK, lib, raise_for

_byref = ctypes.byref
_string_at = ctypes.string_at


def encode_into(serializer, payload, threshold):
    """Wrap payload; returns (buffer, length) in this thread's "work" buffer.

    The buffer is valid until this thread's next encode or decode. threshold 0: no compression.
    """
    st = _buffers.state()
    n = len(payload)
    buf = _buffers.buffer("work", n + 2)
    while True:
        rc = lib.shmc_encode(serializer, payload, n, threshold, 0, buf, len(buf),
                             _byref(st.size))
        if rc == OK:
            return buf, st.size.value
        if rc != E_BUFFER_TOO_SMALL:
            raise_for(rc)
        # Compression may need a little more than the payload (zstd's bound); size says how much.
        buf = _buffers.buffer("work", st.size.value)


def decode_from(src, length):
    """Unwrap length bytes at src (bytes or a ctypes buffer): (OK, serializer, payload bytes),
    or (SHMC_E_BAD_ENVELOPE, None, None) for bytes that are not a valid envelope."""
    st = _buffers.state()
    buf = _buffers.buffer("work")
    while True:
        rc = lib.shmc_decode(src, length, _byref(st.u32), buf, len(buf), _byref(st.size))
        if rc == OK:
            return OK, st.u32.value, _string_at(buf, st.size.value)
        if rc == E_BUFFER_TOO_SMALL:
            buf = _buffers.buffer("work", st.size.value)
            continue
        if rc == E_BAD_ENVELOPE:
            return rc, None, None
        raise_for(rc)


def encode(serializer, payload, threshold=0):
    """The envelope of payload as bytes."""
    buf, n = encode_into(serializer, payload, threshold)
    return _string_at(buf, n)


def decode(data):
    """(serializer, payload) of an envelope; BadEnvelopeError if data is not one."""
    rc, serializer, payload = decode_from(data, len(data))
    if rc != OK:
        raise_for(rc)
    return serializer, payload
