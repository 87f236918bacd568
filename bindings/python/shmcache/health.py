"""health.py - health_check(): is the cache usable from this process, and is Redis reachable.

    {"status": "healthy" | "degraded" | "unhealthy",
     "segment": name, "pid": pid,
     "l1": {"ok": bool, "entries", "bytes_used", "bytes_capacity", "lock_timeouts"} or
           {"ok": False, "error": "..."},
     "l2": {"configured": bool, "connected": bool, "breaker_open": bool, "subscribed": bool}}

unhealthy: the segment cannot be opened or read (the service runs without a cache).
degraded: L1 works but a configured Redis tier is not reachable from this process (gets fall
back to L1 and the computation; writes reach L1 only).

L1 is checked by reading the segment's statistics and geometry, which takes every stripe's
counters but no lock: a health check must not disturb the cache or wait on it. Redis is checked
with one lookup of a key nobody uses ("__shmcache_health__" in the namespace), bounded by
redis_command_timeout, so the answer is about Redis now, not at this process's last call; it
counts as one L2 miss. While the circuit breaker is open no probe is sent: Redis is degraded.
"""
import os

from .errors import ShmcacheError


def check_health(core):
    report = {"status": "healthy", "segment": core.config.shm_name, "pid": os.getpid()}
    try:
        st, _info, _, _ = core.raw_figures(with_l2=False)
        report["l1"] = {"ok": True, "entries": st.entries, "bytes_used": st.bytes_used,
                        "bytes_capacity": st.bytes_capacity, "lock_timeouts": st.lock_timeouts}
    except ShmcacheError as e:
        report["l1"] = {"ok": False, "error": str(e)}
    if core.config.l2_enabled:
        l2 = {"configured": True, "connected": False, "breaker_open": False, "subscribed": False}
        if report["l1"]["ok"]:
            try:
                st2 = core.probe_l2()
                l2.update(connected=bool(st2.connected), breaker_open=bool(st2.breaker_open),
                          subscribed=bool(st2.subscribed))
            except ShmcacheError as e:
                l2["error"] = str(e)
        report["l2"] = l2
    else:
        report["l2"] = {"configured": False, "connected": False}
    if not report["l1"]["ok"]:
        report["status"] = "unhealthy"
    elif report["l2"]["configured"] and not report["l2"]["connected"]:
        report["status"] = "degraded"
    return report
