"""_warming.py - warm_cache(): data sources, batches, and the report.

A data source is any of:
  * a callable (sync or async) returning one of the below (a coroutine is awaited);
  * an iterable or async iterable (a list, a generator, an async generator, a cursor);
  * a mapping {key: value}.
It yields records: (key, value), (key, value, ttl_seconds), or a mapping
{"key": ..., "value": ..., "ttl": ...} (the record format of `shmcache-cli warm`). ttl None or
absent: the call's ttl, else the tiers' defaults.

Records are taken warming_batch_size at a time; each batch is written with one call into the
cache (off the event loop when Redis is involved), and the event loop gets a turn between
batches, so warming at start-up does not stall requests being served. A record whose key or
value cannot be stored (too long, too large, not serializable) is skipped, counted and logged,
as shmcache-cli warm skips a bad line; a malformed record (not a pair, triple or mapping) stops
the run with TypeError, because that is a bug in the source rather than bad data.
"""
import collections.abc
import dataclasses
import inspect
import time

from ._telemetry import log


@dataclasses.dataclass
class WarmReport:
    written: int = 0
    skipped: int = 0
    batches: int = 0
    seconds: float = 0.0

    @property
    def records(self):
        return self.written + self.skipped

    def summary(self):
        rate = self.records / self.seconds if self.seconds > 0 else 0.0
        return (f"warm: {self.written} written, {self.skipped} skipped, {self.records} records "
                f"in {self.batches} batches; {self.seconds:.2f} s, {rate:.0f} records/s")


def _record(item, index):
    """(key, value, ttl) of one record."""
    if isinstance(item, collections.abc.Mapping):
        if "key" not in item or "value" not in item:
            raise TypeError(f"warm record {index}: a mapping record needs 'key' and 'value' "
                            f"(and optionally 'ttl'), got keys {sorted(map(str, item))}")
        return item["key"], item["value"], item.get("ttl")
    if isinstance(item, (tuple, list)) and len(item) in (2, 3):
        return item[0], item[1], item[2] if len(item) == 3 else None
    raise TypeError(f"warm record {index}: expected (key, value), (key, value, ttl) or "
                    f"{{'key': ..., 'value': ..., 'ttl': ...}}, got {type(item).__name__}")


def _is_async_iterable(obj):
    return hasattr(obj, "__aiter__")


async def _resolve_async(source):
    if callable(source) and not isinstance(source, collections.abc.Iterable) and \
            not _is_async_iterable(source):
        source = source()
    if inspect.isawaitable(source):
        source = await source
    return source


def _resolve_sync(source):
    if callable(source) and not isinstance(source, collections.abc.Iterable) and \
            not _is_async_iterable(source):
        source = source()
    if inspect.isawaitable(source) or _is_async_iterable(source):
        if inspect.iscoroutine(source):
            source.close()  # do not leave a "never awaited" coroutine behind
        raise TypeError("an async data source needs the async CacheManager.warm_cache()")
    return source


def _items(source):
    if isinstance(source, collections.abc.Mapping):
        return iter(source.items())
    if isinstance(source, (str, bytes)) or not isinstance(source, collections.abc.Iterable):
        raise TypeError("a warm data source must be a callable, an iterable, an async iterable "
                        f"or a mapping, got {type(source).__name__}")
    return iter(source)


async def abatches(source, size):
    """Async generator of lists of (key, value, ttl), size at a time."""
    source = await _resolve_async(source)
    batch, index = [], 0
    if _is_async_iterable(source):
        async for item in source:
            batch.append(_record(item, index))
            index += 1
            if len(batch) >= size:
                yield batch
                batch = []
    else:
        for item in _items(source):
            batch.append(_record(item, index))
            index += 1
            if len(batch) >= size:
                yield batch
                batch = []
    if batch:
        yield batch


def batches(source, size):
    """Generator of lists of (key, value, ttl), size at a time (sync sources only)."""
    batch = []
    for index, item in enumerate(_items(_resolve_sync(source))):
        batch.append(_record(item, index))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def store_batch(core, batch, tiers, default_ttl):
    """Write one batch; (written, skipped). Runs in whatever thread the caller chose."""
    written = skipped = 0
    for key, value, ttl in batch:
        try:
            stored = core.store(core.keys.key(key), value,
                                default_ttl if ttl is None else ttl, tiers)
        except (TypeError, ValueError) as e:  # key/value too long or large, not serializable
            core.logs.event("warm-skip", f"warm: record {key!r} skipped: {e}")
            stored = False
        if stored:
            written += 1
        else:
            skipped += 1
    core.counters.add("warmed", written)
    return written, skipped


class WarmClock:
    """Times a warm run and logs its summary."""

    def __init__(self):
        self.report = WarmReport()
        self._start = time.monotonic()

    def add(self, written, skipped):
        self.report.written += written
        self.report.skipped += skipped
        self.report.batches += 1

    def finish(self, name):
        self.report.seconds = time.monotonic() - self._start
        log.info("shmcache[%s]: %s", name, self.report.summary())
        return self.report
