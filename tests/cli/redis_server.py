"""redis_server.py - a real redis-server of the tests' own, for the CLI's L2 tests.

RedisServer starts `redis-server` on a free 127.0.0.1 port, without persistence (--save '',
--appendonly no) and with its files in a directory of its own, and waits until it answers PING.
stop()/cont() send SIGSTOP/SIGCONT: the server then hangs with its connections open, as a stuck
Redis does, which is what the CLI's timeouts are for. close() kills it and removes its files.

PING is sent over a raw socket in RESP, so starting a server needs nothing but the standard
library; the tests read and write Redis data with redis-py (client()).
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time


def free_port():
    """A port nothing listens on right now (the kernel's pick; another process may take it
    before redis-server binds it, hence the retries in RedisServer)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resp_command(port, *args, timeout=0.5):
    """Send one command in RESP and return the raw reply bytes (b"" if nothing answered)."""
    req = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        req += b"$%d\r\n%s\r\n" % (len(a), a)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(req)
            return s.recv(65536)
    except OSError:
        return b""


class RedisServer:
    """A redis-server process of the tests' own."""

    def __init__(self, start_timeout=5.0):
        self.dir = tempfile.mkdtemp(prefix="shmc-cli-redis-")
        self.proc = None
        self.port = None
        try:
            for _ in range(5):
                if self._start(free_port(), start_timeout):
                    return
            raise RuntimeError("redis-server did not start on any of 5 ports (is the "
                               "redis-server package installed?)")
        except BaseException:
            self.close()
            raise

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def _start(self, port, timeout):
        self.port = port
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "no", "--dir", self.dir,
             "--logfile", os.path.join(self.dir, "redis.log"), "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:  # exited: the port was taken meanwhile
                self.proc = None
                return False
            if resp_command(port, "PING").startswith(b"+PONG"):
                return True
            time.sleep(0.01)
        self._kill()
        return False

    def client(self):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def stop(self):
        """SIGSTOP: the server keeps its socket open and answers nothing."""
        self.proc.send_signal(signal.SIGSTOP)

    def cont(self):
        self.proc.send_signal(signal.SIGCONT)

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a stopped process takes SIGKILL too; be tidy
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def close(self):
        self._kill()
        shutil.rmtree(self.dir, ignore_errors=True)
