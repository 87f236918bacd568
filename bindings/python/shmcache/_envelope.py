"""_envelope.py - the library's value envelope (shmc_encode / shmc_decode) from Python.

Every value this package stores is wrapped by the C library itself: a 2-byte header (magic
0xC5, serializer id, a "zstd" bit) and the payload, compressed with zstd when it is at least the
threshold long and compression makes it smaller. Because the C code does it, shmcache-cli and any
other reader decode exactly what Python wrote, and the reverse.

The one thing done here is the uncompressed envelope, which the header defines as the two header
bytes followed by the payload as is: when no compression can apply (threshold 0, or a payload
shorter than the threshold) encode_into() concatenates them itself, which costs a tenth of the
foreign call (tests/test_hotpath.py checks the bytes are shmc_encode's). Compression, and
every check on the way back in, stay in the library.

encode_into()/decode_from() work in this thread's reusable buffers (see _buffers) and are what
the hot path uses; encode()/decode() return fresh bytes for everyone else (tests, tools).
"""
from . import _buffers
from ._ffi import (E_BAD_ENVELOPE, E_BUFFER_TOO_SMALL, ENVELOPE_MAGIC, OK, hot, raise_for,
                   size_t_of, u32_of)

_shmc_encode = hot.shmc_encode
_shmc_decode = hot.shmc_decode
# Header of an uncompressed envelope, by serializer id (0-15; the zstd bit clear).
HEADERS = tuple(bytes((ENVELOPE_MAGIC, ser)) for ser in range(16))


def encode_into(serializer, payload, threshold):
    """Wrap payload: (envelope, length), the envelope being bytes, or byref() of this thread's
    "work" buffer, valid until this thread's next encode or decode (either can be passed to an
    _ffi.hot function). threshold 0: no compression."""
    return _wrap(serializer, payload, threshold)[:2]


def _wrap(serializer, payload, threshold):
    """encode_into() and, for an envelope left in a buffer, a memoryview of that buffer."""
    n = len(payload)
    if (not threshold or n < threshold) and 0 <= serializer < 16:
        return HEADERS[serializer] + payload, n + 2, None
    ref, _, view, cap, out, out_ref, *_ = _buffers.slot("work", n + 2)
    while True:
        rc = _shmc_encode(u32_of(serializer), payload, size_t_of(n),
                          size_t_of(threshold), 0, ref, cap, out_ref)
        if rc == OK:
            return ref, out.value, view
        if rc != E_BUFFER_TOO_SMALL:
            raise_for(rc)
        # Compression may need a little more than the payload (zstd's bound); out says how much.
        ref, _, view, cap, out, out_ref, *_ = _buffers.slot("work", out.value)


def decode_from(src, length):
    """Unwrap length bytes at src (bytes or a byref): (OK, serializer, payload bytes), or
    (SHMC_E_BAD_ENVELOPE, None, None) for bytes that are not a valid envelope."""
    st = _buffers.state()
    ref, _, view, cap, out, out_ref, *_ = _buffers.slot("work")
    while True:
        rc = _shmc_decode(src, size_t_of(length), st.u32_ref, ref, cap, out_ref)
        if rc == OK:
            return OK, st.u32.value, view[:out.value].tobytes()
        if rc == E_BUFFER_TOO_SMALL:
            ref, _, view, cap, out, out_ref, *_ = _buffers.slot("work", out.value)
            continue
        if rc == E_BAD_ENVELOPE:
            return rc, None, None
        raise_for(rc)


def encode(serializer, payload, threshold=0):
    """The envelope of payload as bytes."""
    env, n, view = _wrap(serializer, payload, threshold)
    return env if view is None else view[:n].tobytes()


def decode(data):
    """(serializer, payload) of an envelope; BadEnvelopeError if data is not one."""
    rc, serializer, payload = decode_from(data, len(data))
    if rc != OK:
        raise_for(rc)
    return serializer, payload
