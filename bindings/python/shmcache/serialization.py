"""serialization.py - Python values <-> (serializer id, payload bytes), safely.

What is written:
  * str -> SHMC_SER_STR (UTF-8), bytes-like -> SHMC_SER_RAW, whatever the serializer, so the CLI
    and other languages read text and bytes as they are;
  * everything else with the configured serializer: "json" (the default; datetime, date, time,
    timedelta (as an ISO 8601 duration, "P1DT2H3.5S"), UUID, Decimal, set, Enum, dataclasses
    and pydantic models are converted, anything else is a TypeError), "msgpack" (same
    conversions), or "pickle", which is signed: the payload is HMAC-SHA256(pickle_secret,
    pickled) followed by the pickled bytes.

What is read: any serializer id, whatever this process writes, except that a pickle payload is
unpickled only by a codec configured with serializer="pickle" and its secret, and only after
the signature has been verified with hmac.compare_digest. Anyone who can write to the segment or
to Redis could otherwise make every reader run code of their choosing. A refused or damaged
value raises UndecodableValue, which the managers turn into a miss.

JSON conversions are one way: a datetime comes back as its ISO string, a Decimal as a string, a
set as a list. Use pickle (with a secret) when the exact types must survive.
"""
import dataclasses
import datetime
import decimal
import enum
import hashlib
import hmac
import json
import json.encoder
import pickle
import uuid

from ._ffi import SER_JSON, SER_MSGPACK, SER_PICKLE, SER_RAW, SER_STR

_SIG_LEN = 32  # HMAC-SHA256
_JSON_DECODER = json.JSONDecoder()
_json_decode = _JSON_DECODER.decode  # on str: skips json.loads' encoding detection
_json_scan = _JSON_DECODER.scan_once  # the C scanner decode() itself runs, without its regexes


def _json_loads(text):
    """json.loads(text) for a str, faster on the compact JSON this package writes: the
    decoder's own scanner at index 0, then the full decode() only when the value is not all of
    the text (surrounding whitespace, trailing garbage) or does not start one (it then raises
    the same JSONDecodeError json.loads would)."""
    try:
        value, end = _json_scan(text, 0)
    except StopIteration:
        return _json_decode(text)
    if end != len(text):
        return _json_decode(text)
    return value


class UndecodableValue(Exception):
    """A stored value this codec will not or cannot turn back into an object.

    `.reason` is one of "unsigned-pickle" (pickle refused: this codec does not trust pickle),
    "bad-signature" (signed with another secret, or tampered with), "damaged" (the payload does
    not parse), "unsupported" (a serializer this process cannot read, e.g. msgpack missing).
    """

    def __init__(self, reason, detail):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def _timedelta_iso(td):
    """An ISO 8601 duration for td, exact to the microsecond: days, then hours, minutes and
    seconds, with a leading "-" for a negative duration ("-PT1S")."""
    sign = ""
    if td < datetime.timedelta(0):
        sign, td = "-", -td
    minutes, s = divmod(td.seconds, 60)
    h, m = divmod(minutes, 60)
    out = [sign, "P"]
    if td.days:
        out.append(f"{td.days}D")
    if h or m or s or td.microseconds or not td.days:
        out.append("T")
        if h:
            out.append(f"{h}H")
        if m:
            out.append(f"{m}M")
        if s or td.microseconds or not (h or m):
            out.append(f"{s}.{td.microseconds:06d}".rstrip("0").rstrip(".") + "S")
    return "".join(out)


def _to_jsonable(obj):
    """json/msgpack `default=` hook: the documented conversions, TypeError for the rest."""
    if isinstance(obj, (datetime.datetime, datetime.date, datetime.time)):
        return obj.isoformat()
    if isinstance(obj, datetime.timedelta):
        return _timedelta_iso(obj)  # _returns parses it back
    if isinstance(obj, uuid.UUID):
        return str(obj)
    if isinstance(obj, decimal.Decimal):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        try:
            return sorted(obj)  # stable bytes for equal sets
        except TypeError:
            return list(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if hasattr(obj, "model_dump") and callable(obj.model_dump):  # pydantic 2
        return obj.model_dump()
    if hasattr(obj, "dict") and callable(obj.dict) and hasattr(obj, "__fields__"):  # pydantic 1
        return obj.dict()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        raise TypeError("bytes inside a JSON value cannot be stored; store bytes on their own, "
                        "or use serializer='msgpack' or 'pickle'")
    raise TypeError(f"a {type(obj).__name__} cannot be stored as JSON (supported: JSON types, "
                    "datetime, date, time, timedelta, UUID, Decimal, set, Enum, dataclasses, "
                    "pydantic models); convert it, or use serializer='pickle' with a pickle_secret")


# Writing JSON. json.dumps() with keyword arguments builds a JSONEncoder on every call, and
# JSONEncoder.encode() then runs some Python of its own before the C encoder it makes; together
# about a third of encoding a small dict. _json_dumps() makes that C encoder itself, with the
# arguments encode() would give it for these settings (compact separators, ensure_ascii=False,
# allow_nan=False, check_circular: a fresh markers dict per call, which also makes it safe to
# call from several threads at once). c_make_encoder is CPython's private helper, so its use is
# checked once here against JSONEncoder on a probe value, and JSONEncoder is used instead if it
# is missing or answers differently.
_JSON_ENCODER = json.JSONEncoder(default=_to_jsonable, ensure_ascii=False,
                                 separators=(",", ":"), allow_nan=False)
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_encode_basestring = json.encoder.encode_basestring


def _json_dumps_c(value):
    return "".join(_c_make_encoder({}, _to_jsonable, _encode_basestring, None, ":", ",", False,
                                   False, False)(value, 0))


def _pick_json_dumps():
    probe = {"k": [1, 2.5, None, True, "é\n\"", {"x": []}], "d": decimal.Decimal("1.5")}
    try:
        if _c_make_encoder is not None and _json_dumps_c(probe) == _JSON_ENCODER.encode(probe):
            return _json_dumps_c
    except Exception:  # a changed private signature: use the public encoder
        pass
    return _JSON_ENCODER.encode


_json_dumps = _pick_json_dumps()  # value -> compact JSON text (str)


class Codec:
    """Encodes with one serializer; decodes every serializer it can do safely."""

    def __init__(self, serializer="json", pickle_secret=None):
        if serializer not in ("json", "msgpack", "pickle"):
            raise ValueError(f"unknown serializer {serializer!r}")
        if serializer == "pickle" and not pickle_secret:
            raise ValueError("serializer='pickle' needs a pickle_secret")
        self.name = serializer
        self._json_encode = _json_dumps
        self._secret = pickle_secret.encode() if isinstance(pickle_secret, str) else pickle_secret
        self._trust_pickle = serializer == "pickle"
        try:
            import msgpack
            self._msgpack = msgpack
            self._msgpack_unpackb = msgpack.unpackb
            # A Packer per call, as packb() makes, without packb's own Python frame. Not one
            # shared Packer: _to_jsonable may run user code (model_dump) that stores a value
            # too, re-entering a shared Packer in the middle of its buffer.
            self._msgpack_packer = msgpack.Packer
        except ImportError:
            self._msgpack = self._msgpack_unpackb = self._msgpack_packer = None
        if serializer == "msgpack" and self._msgpack is None:
            raise ValueError("serializer='msgpack' needs the msgpack module")

    # ---- writing -------------------------------------------------------------------------------
    def dumps(self, value):
        """(serializer id, payload bytes). TypeError/ValueError if value cannot be stored."""
        if isinstance(value, str):
            return SER_STR, value.encode("utf-8")
        if isinstance(value, (bytes, bytearray, memoryview)):
            return SER_RAW, bytes(value)
        if self.name == "json":
            # allow_nan=False: NaN/Infinity are not JSON, and other readers (the CLI) refuse them.
            return SER_JSON, self._json_encode(value).encode("utf-8")
        if self.name == "msgpack":
            return SER_MSGPACK, self._msgpack_packer(default=_to_jsonable,
                                                     use_bin_type=True).pack(value)
        pickled = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        return SER_PICKLE, self._sign(pickled) + pickled

    def _sign(self, data):
        return hmac.new(self._secret, data, hashlib.sha256).digest()

    # ---- reading -------------------------------------------------------------------------------
    def loads(self, serializer, payload):
        """The value of a decoded envelope, or UndecodableValue. payload is bytes, or a
        memoryview of them (the hot path decodes straight from its receive buffer: nothing
        here keeps a reference to the view or runs user code before copying out of it)."""
        if serializer == SER_JSON:
            try:
                return _json_loads(str(payload, "utf-8"))
            except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                raise UndecodableValue("damaged", f"JSON that does not parse: {e}") from None
            except RecursionError:  # nested deeper than this interpreter decodes
                raise UndecodableValue("damaged", "JSON nested too deep to decode") from None
        if serializer == SER_STR:
            try:
                return str(payload, "utf-8")
            except UnicodeDecodeError as e:
                raise UndecodableValue("damaged", f"text that is not UTF-8: {e}") from None
        if serializer == SER_RAW:
            return bytes(payload)  # the same object when payload is bytes already
        if serializer == SER_MSGPACK:
            if self._msgpack is None:
                raise UndecodableValue("unsupported", "msgpack value; the msgpack module is "
                                       "not installed")
            try:
                return self._msgpack_unpackb(payload, raw=False, strict_map_key=False)
            except Exception as e:  # msgpack raises several unrelated types on bad input
                raise UndecodableValue("damaged", f"msgpack that does not parse: {e}") from None
        if serializer == SER_PICKLE:
            # Copied first: unpickling runs code (a class's __setstate__) that may use the cache
            # in this thread and so overwrite the buffer a view points into.
            return self._unpickle(bytes(payload))
        raise UndecodableValue("unsupported", f"unknown serializer id {serializer}")

    def _unpickle(self, payload):
        if not self._trust_pickle:
            raise UndecodableValue("unsigned-pickle", "a pickled value, and this cache is not "
                                   "configured to unpickle (serializer='pickle' + pickle_secret)")
        sig, data = payload[:_SIG_LEN], payload[_SIG_LEN:]
        if len(sig) != _SIG_LEN or not hmac.compare_digest(sig, self._sign(data)):
            raise UndecodableValue("bad-signature", "a pickled value whose signature does not "
                                   "match this cache's pickle_secret")
        try:
            return pickle.loads(data)
        except Exception as e:  # signed by us: a class or module this process does not have
            raise UndecodableValue("unsupported", f"signed pickle that does not load: {e!r}") from None
