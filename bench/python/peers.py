"""peers.py - the caches bench_peers.py measures shmcache against, each behind get/set callables.

Every peer is built by a factory that returns a Peer: a name, a note for the table, and plain
get(key) / set(key, value) callables that do what an application would write by hand for that
cache (encode the key, serialize the value, decode on the way back). Callables rather than
adapter methods: an adapter's extra method call costs 50-100 ns, which is a third of an
in-process cache's whole get, so each peer pays exactly its own unavoidable Python and nothing
more.

Value handling follows where the value lives:
  - out of the process (redis-py, pymemcache, diskcache, lmdb, shmcache): the value object is
    serialized with the run's codec on set and deserialized on get, as it must be;
  - in the process (cachetools): the object itself is stored and returned, no codec, which is
    the advantage a private per-worker cache has and the reason it is the bar to meet.

The servers (redis-server, memcached) are started here on a free loopback port, and every
temporary directory lives on /dev/shm; Peer.close() stops and removes them.
"""
import contextlib
import json
import os
import pickle
import shutil
import socket
import subprocess
import tempfile
import time


class Peer:
    def __init__(self, name, get, set, close=lambda: None, note="", kind="", is_async=False):
        self.name = name
        self.get = get
        self.set = set
        self.close = close
        self.note = note
        self.kind = kind  # "shared by the host", "private to the process", "server"
        self.is_async = is_async  # get/set are coroutine functions, awaited in a running loop


# ---- codecs: (dumps, loads) for the values that leave the process --------------------------------

def codec(name):
    if name == "json":
        # Compact separators: what the shmcache package and most caching layers write.
        enc = json.JSONEncoder(separators=(",", ":")).encode
        return (lambda v: enc(v).encode()), json.loads
    if name == "pickle":
        return (lambda v: pickle.dumps(v, pickle.HIGHEST_PROTOCOL)), pickle.loads
    if name == "msgpack":
        import msgpack
        return msgpack.packb, msgpack.unpackb
    if name == "str":  # text values: UTF-8 on the wire, as every client does for a str
        return (lambda v: v.encode()), (lambda b: b.decode())
    raise ValueError(f"unknown serializer {name!r} (json, pickle, msgpack, str)")


# ---- servers -----------------------------------------------------------------------------------

def free_port():
    """A TCP port free on 127.0.0.1 right now (the server binds it a moment later; start_server
    retries on the rare collision)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port, proc, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        time.sleep(0.02)
    return False


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_server(argv_for_port, name):
    """Start a server on a free loopback port: (process, port). Raises with its output if it
    does not listen within 5 s after three ports."""
    err = ""
    for _ in range(3):
        port = free_port()
        proc = subprocess.Popen(argv_for_port(port), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        if _wait_port(port, proc):
            return proc, port
        _stop(proc)
        err = proc.stderr.read() if proc.stderr else ""
    raise RuntimeError(f"{name} did not start: {err.strip()}")


# ---- the peers ---------------------------------------------------------------------------------

def redis_py(dumps, loads):
    import redis
    tmp = tempfile.mkdtemp(prefix="shmcache-bench-redis-", dir="/dev/shm")
    proc, port = start_server(lambda p: [
        "redis-server", "--port", str(p), "--bind", "127.0.0.1", "--save", "", "--appendonly",
        "no", "--dir", tmp, "--loglevel", "warning"], "redis-server")
    r = redis.Redis(host="127.0.0.1", port=port)
    r.ping()
    rget, rset = r.get, r.set

    def close():
        r.close()
        _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)

    return Peer("redis-py", lambda k: loads(rget(k)), lambda k, v: rset(k, dumps(v)), close,
                f"redis-server on 127.0.0.1:{port}, one connection", "server")


def pymemcache(dumps, loads):
    from pymemcache.client.base import Client
    user = ["-u", "nobody"] if os.geteuid() == 0 else []  # memcached refuses to run as root
    proc, port = start_server(lambda p: [
        "memcached", "-l", "127.0.0.1", "-p", str(p), "-U", "0", "-m", "64"] + user,
        "memcached")
    c = Client(("127.0.0.1", port), no_delay=True)
    cget, cset = c.get, c.set

    def close():
        c.close()
        _stop(proc)

    # pymemcache's set defaults to noreply: it does not wait for the server, hence its set figure.
    return Peer("pymemcache", lambda k: loads(cget(k)), lambda k, v: cset(k, dumps(v)), close,
                f"memcached on 127.0.0.1:{port}; set is noreply (the client's default)", "server")


def diskcache_shm(dumps, loads):
    import diskcache
    tmp = tempfile.mkdtemp(prefix="shmcache-bench-diskcache-", dir="/dev/shm")
    c = diskcache.Cache(tmp)
    cget, cset = c.get, c.set

    def close():
        c.close()
        shutil.rmtree(tmp, ignore_errors=True)

    return Peer("diskcache", lambda k: loads(cget(k)), lambda k, v: cset(k, dumps(v)), close,
                "SQLite + files in a /dev/shm directory", "shared by the host")


def lmdb_shm(dumps, loads):
    import lmdb
    tmp = tempfile.mkdtemp(prefix="shmcache-bench-lmdb-", dir="/dev/shm")
    # The bench_engine settings: no fsync (a cache), writes through the map.
    env = lmdb.open(tmp, map_size=64 << 20, sync=False, metasync=False, writemap=True)
    begin = env.begin

    def get(k):
        with begin() as txn:
            return loads(txn.get(k.encode()))

    def set(k, v):
        with begin(write=True) as txn:
            txn.put(k.encode(), dumps(v))

    def close():
        env.close()
        shutil.rmtree(tmp, ignore_errors=True)

    return Peer("python-lmdb", get, set, close,
                "C extension; one read txn per get, one write txn per set; /dev/shm",
                "shared by the host")


def cachetools_ttl(entries, ttl):
    import cachetools
    c = cachetools.TTLCache(maxsize=entries, ttl=ttl)
    return Peer("cachetools.TTLCache", c.get, c.__setitem__, note="stores the object itself",
                kind="private to the process")


def cachetools_lru(entries):
    import cachetools
    c = cachetools.LRUCache(maxsize=entries)
    return Peer("cachetools.LRUCache", c.get, c.__setitem__,
                note="stores the object itself; no TTL", kind="private to the process")
