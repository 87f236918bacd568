"""_telemetry.py - this process's counters and its log discipline.

Counters: what this manager did in this process (the segment's own counters are host-wide and
come from shmc_get_stats). They are reported under get_stats()["process"].

Logging: a cache must not flood the log when Redis goes away at 5,000 requests per second.
Conditions that come and go (Redis unavailable, lock timeouts) are logged once when they start
and once when they end (`state()`); isolated events (a damaged value, a refused pickle) at most
once per kind per minute (`event()`), with the running count in the message. Everything is
counted whether or not it is logged.
"""
import itertools
import logging
import os
import threading
import time

log = logging.getLogger("shmcache")

COUNTERS = (
    "hits_l1", "hits_l2", "misses", "sets", "set_errors", "deletes", "purges",
    "lock_timeouts", "l2_unavailable", "l2_reply_errors", "l2_dropped_writes",
    "bad_envelopes", "rejected_pickles", "bad_signatures", "undecodable", "warmed",
    # Calls of a single-flight function that waited for another coroutine of this process on
    # the same key (see _flight): stampedes avoided that the host's counters do not see.
    "flight_joined",
)


def count_value(counter):
    """The next value an itertools.count will give, from its repr "count(N)" (pickling, the
    other way to read it, is deprecated for itertools from Python 3.12)."""
    return int(repr(counter)[6:-1])


class Counters:
    """One itertools.count per counter: next() on it is a single C call, atomic under the GIL,
    so counting costs no lock and loses nothing. add(name, n) with n > 1 (warming's batch
    totals) goes to a small locked table instead of n next() calls.

    A count cannot be reset or read directly: its value is read with count_value(), and a fork
    does not replace the counts (the hot path holds them) but records the parent's values as
    the child's zero.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._counts = {name: itertools.count() for name in COUNTERS}
        self._bulk = dict.fromkeys(COUNTERS, 0)
        self._base = dict.fromkeys(COUNTERS, 0)

    def counter(self, name):
        """The itertools.count behind name: next() on it adds 1 (for hot paths to hold)."""
        return self._counts[name]

    def add(self, name, n=1):
        if n == 1:
            next(self._counts[name])
        elif n:
            with self._lock:
                self._bulk[name] += n

    def _raw(self):
        with self._lock:
            bulk = dict(self._bulk)
        return {name: count_value(c) + bulk[name] for name, c in self._counts.items()}

    def snapshot(self):
        raw = self._raw()
        out = {name: raw[name] - self._base[name] for name in COUNTERS}
        # Every get ends as exactly one of these, so the total costs no counter of its own.
        out["gets"] = out["hits_l1"] + out["hits_l2"] + out["misses"]
        return out

    def after_fork_in_child(self):
        # Another thread of the parent may have held the lock at fork; the child's copy of it
        # would stay locked forever. The child starts its own counts from zero.
        self._lock = threading.Lock()
        self._base = self._raw()


class LogDiscipline:
    """State transitions logged once; events rate-limited per kind."""

    EVENT_INTERVAL = 60.0

    def __init__(self, segment_name):
        self._where = f"shmcache[{segment_name}]"
        self._lock = threading.Lock()
        self._failing = {}  # condition -> True while failing
        self._last_event = {}  # kind -> monotonic time of the last log line
        self._event_counts = {}

    def state(self, condition, failing, detail=""):
        """Record whether condition is failing now; log only when that changes."""
        with self._lock:
            was = self._failing.get(condition, False)
            if was == failing:
                return
            self._failing[condition] = failing
        if failing:
            log.warning("%s: %s (pid %d): %s; treating as a miss, serving on", self._where,
                        condition, os.getpid(), detail or "failing")
        else:
            log.info("%s: %s: recovered (pid %d)", self._where, condition, os.getpid())

    def is_failing(self, condition):
        return self._failing.get(condition, False)

    def event(self, kind, message, level=logging.WARNING):
        now = time.monotonic()
        with self._lock:
            self._event_counts[kind] = count = self._event_counts.get(kind, 0) + 1
            last = self._last_event.get(kind)
            if last is not None and now - last < self.EVENT_INTERVAL:
                return
            self._last_event[kind] = now
        log.log(level, "%s: %s (%d so far in pid %d)", self._where, message, count, os.getpid())

    def after_fork_in_child(self):
        self._lock = threading.Lock()
        self._failing = {}
        self._last_event = {}
        self._event_counts = {}
