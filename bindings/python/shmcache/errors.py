"""errors.py - the exceptions of the shmcache package.

Every failure of the C library is a negative SHMC_E_* code (pinned values, see shmcache.h) or a
positive errno. One exception class per code that a caller may want to catch on its own; each
carries `.code` (the int the library returned) and `.message` (shmc_errmsg(), the specific text
of the failing call, or shmc_strerror() when the library gave none).

Several classes also derive from the matching builtin (ValueError, PermissionError,
TimeoutError, ...) so that code which already catches those keeps working.

ShmcacheLoadError is different: it is raised when the shared library itself cannot be loaded, at
import time, and lists every path that was tried with the reason each failed.
"""


class ShmcacheError(Exception):
    """Base class: a call into libshmcache failed. `.code` is the library's return code."""

    code = None

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self):
        return f"{self.message} (code {self.code})"

    def __reduce__(self):  # picklable (multiprocessing), despite the two-argument constructor
        return (make_error, (self.code, self.message))


class NotFoundError(ShmcacheError, KeyError):
    """SHMC_E_NOTFOUND: the key is absent or expired. The managers report a miss instead."""

    def __str__(self):  # KeyError would repr() the message
        return ShmcacheError.__str__(self)


class KeyExistsError(ShmcacheError):
    """SHMC_E_EXISTS."""


class InvalidArgumentError(ShmcacheError, ValueError):
    """SHMC_E_INVAL: a bad argument or option (shmc_errmsg names it)."""


class KeyTooLongError(ShmcacheError, ValueError):
    """SHMC_E_KEY_TOO_LONG: the key (namespace included) is over 4096 bytes; nothing stored."""


class ValueTooLargeError(ShmcacheError, ValueError):
    """SHMC_E_VALUE_TOO_LARGE: the encoded value is over the segment's max_value_len."""


class BufferTooSmallError(ShmcacheError):
    """SHMC_E_BUFFER_TOO_SMALL: internal; the package grows its buffers and retries."""


class LockTimeoutError(ShmcacheError, TimeoutError):
    """SHMC_E_LOCK_TIMEOUT: a stripe lock was not granted in time (a stopped process holds it)."""


class NoSpaceError(ShmcacheError, OSError):
    """SHMC_E_NOSPC: /dev/shm has no room for the segment; the message gives both sizes."""


class VersionMismatchError(ShmcacheError):
    """SHMC_E_VERSION: the segment was made by another layout version; the message names both."""


class CorruptSegmentError(ShmcacheError):
    """SHMC_E_CORRUPT: damage that could not be repaired."""


class BadPatternError(ShmcacheError, ValueError):
    """SHMC_E_BAD_PATTERN: a malformed glob pattern."""


class NotANumberError(ShmcacheError, ValueError):
    """SHMC_E_NOT_NUMBER."""


class NumberRangeError(ShmcacheError, OverflowError):
    """SHMC_E_RANGE."""


class SegmentPermissionError(ShmcacheError, PermissionError):
    """SHMC_E_PERM: the segment belongs to another user, or its mode denies access."""


class OutOfMemoryError(ShmcacheError, MemoryError):
    """SHMC_E_NOMEM: the process ran out of memory."""


class NoSegmentError(ShmcacheError, FileNotFoundError):
    """SHMC_E_NO_SEGMENT: no segment of that name."""


class SegmentBusyError(ShmcacheError):
    """SHMC_E_BUSY: other processes are attached (unlink with force)."""


class InitTimeoutError(ShmcacheError, TimeoutError):
    """SHMC_E_INIT_TIMEOUT: another process is still initializing the segment."""


class InternalError(ShmcacheError):
    """SHMC_E_INTERNAL: a defect in the library; the message says more."""


class BadEnvelopeError(ShmcacheError, ValueError):
    """SHMC_E_BAD_ENVELOPE: stored bytes that are not a valid value envelope."""


class L2UnavailableError(ShmcacheError, ConnectionError):
    """SHMC_E_L2_UNAVAILABLE: Redis unreachable, timed out, or the circuit breaker is open."""


class L2NotConfiguredError(ShmcacheError):
    """SHMC_E_L2_NOT_CONFIGURED: an L2 tier was asked of a cache without one."""


class L2ReplyError(ShmcacheError):
    """SHMC_E_L2_REPLY: Redis answered with an error."""


class ShmcacheOSError(ShmcacheError, OSError):
    """A positive errno returned by the library (an operating-system failure)."""


class ShmcacheLoadError(ImportError):
    """libshmcache could not be loaded. `.tried` lists (path, reason) for every candidate."""

    def __init__(self, tried):
        self.tried = list(tried)
        lines = [f"  {path}: {reason}" for path, reason in self.tried]
        super().__init__(
            "cannot load libshmcache; tried:\n" + "\n".join(lines) +
            "\nBuild it (meson compile -C build), install it (meson install), or set "
            "SHMCACHE_LIB to the path of libshmcache.so.")


# Code -> class. Codes not listed (none today) get the base class.
_BY_CODE = {
    -1: NotFoundError,
    -2: KeyExistsError,
    -3: InvalidArgumentError,
    -4: KeyTooLongError,
    -5: ValueTooLargeError,
    -6: BufferTooSmallError,
    -7: LockTimeoutError,
    -8: NoSpaceError,
    -9: VersionMismatchError,
    -10: CorruptSegmentError,
    -11: BadPatternError,
    -12: NotANumberError,
    -13: NumberRangeError,
    -14: SegmentPermissionError,
    -15: OutOfMemoryError,
    -16: NoSegmentError,
    -17: SegmentBusyError,
    -18: InitTimeoutError,
    -19: InternalError,
    -21: BadEnvelopeError,
    -22: L2UnavailableError,
    -23: L2NotConfiguredError,
    -24: L2ReplyError,
}


def error_class(code):
    """The exception class for a library return code (nonzero)."""
    if code > 0:
        return ShmcacheOSError
    return _BY_CODE.get(code, ShmcacheError)


def make_error(code, message):
    cls = error_class(code)
    err = cls(code, message)
    if cls is ShmcacheOSError or issubclass(cls, OSError):
        # OSError's own attributes: errno only for a real errno (positive codes).
        err.errno = code if code > 0 else None
        err.strerror = message
    return err
