"""_monitor.py - enable_monitoring: a statistics line in the log every monitor_interval seconds.

The line goes to the "shmcache.monitor" logger at INFO (nothing is printed unless the
application configures logging). It is per process, like the manager: an asyncio task for
CacheManager (started by start(), on the loop that called it), a daemon thread for a
standalone SyncCacheManager. Neither survives fork(); a worker that wants the log line starts
its manager after the fork (the FastAPI lifespan does).

The most recent statistics are kept in `.last` for anyone who wants them without a new call.
"""
import asyncio
import logging
import threading

log = logging.getLogger("shmcache.monitor")


def describe(name, stats):
    l1, l2 = stats["l1_cache"], stats["l2_cache"]
    seg = stats["segment"]
    line = (f"shmcache[{name}]: L1 hit rate {l1['hit_rate']:.1%} ({l1['hits']} hits, "
            f"{l1['misses']} misses), {l1['size']} entries, {seg['bytes_used']} of "
            f"{seg['bytes_capacity']} bytes, {seg['evictions']} evictions, "
            f"{seg['lock_timeouts']} lock timeouts")
    if stats["l2_detail"].get("configured"):
        line += (f"; L2 {'connected' if l2['connected'] else 'NOT connected'}, hit rate "
                 f"{l2['hit_rate']:.1%}, {l2['errors']} errors")
    return line


class AsyncMonitor:
    def __init__(self, name, get_stats, interval):
        self._name, self._get_stats, self._interval = name, get_stats, interval
        self.last = None
        self._task = None

    @property
    def running(self):
        """True if the task runs on the current event loop. asyncio.run() cancels every task
        of its loop when it returns, and a forked child has no running parent loop at all: a
        manager started under one loop and used under another needs a new task."""
        task = self._task
        if task is None or task.done():
            return False
        try:
            return task.get_loop() is asyncio.get_running_loop()
        except RuntimeError:
            return False

    def start(self):
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name="shmcache-monitor")

    async def stop(self):
        task, self._task = self._task, None
        if task is None or task.done():
            return
        if task.get_loop() is not asyncio.get_running_loop():
            return  # another loop's task (dead loop, or the parent's before a fork): not ours
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    async def _run(self):
        while True:
            await asyncio.sleep(self._interval)
            try:
                self.last = await self._get_stats()
                log.info("%s", describe(self._name, self.last))
            except Exception:  # a monitor must never die of one bad reading
                log.exception("shmcache[%s]: reading statistics failed", self._name)


class ThreadMonitor:
    def __init__(self, name, get_stats, interval):
        self._name, self._get_stats, self._interval = name, get_stats, interval
        self.last = None
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"shmcache-monitor-{self._name}")
            self._thread.start()

    def stop(self):
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            thread.join(timeout=5)

    def _run(self):
        while not self._stop.wait(self._interval):
            try:
                self.last = self._get_stats()
                log.info("%s", describe(self._name, self.last))
            except Exception:
                log.exception("shmcache[%s]: reading statistics failed", self._name)
