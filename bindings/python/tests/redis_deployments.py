"""redis_deployments.py - production-shaped Redis for the tests, all on 127.0.0.1 random ports:
a TLS server with certificates made by openssl, and a Sentinel deployment (master, replica,
sentinel). Each keeps its files in a directory of its own and kills its processes on close().

Every server also listens on a plain port, through which the tests read and write Redis with
redis-py, as another service would.
"""
import os
import signal
import socket
import subprocess
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ping(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def make_certificates(directory):
    """ca.crt, server.crt/key (naming localhost and 127.0.0.1), client.crt/key."""
    script = """set -e
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=shmcache-test-ca \
  -keyout ca.key -out ca.crt
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
  -copy_extensions copyall -out server.crt
openssl req -newkey rsa:2048 -nodes -subj /CN=shmcache-client -keyout client.key -out client.csr
openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -out client.crt
"""
    subprocess.run(["/bin/sh", "-c", script], cwd=directory, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Server:
    """One redis-server (or sentinel) process on a free port."""

    def __init__(self, directory, args=(), config=None, sentinel=False):
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.proc = None
        for _ in range(5):
            self.port = free_port()
            argv = ["redis-server"]
            if config is not None:
                conf = os.path.join(self.dir, "redis.conf")
                with open(conf, "w") as f:
                    f.write(config)
                argv.append(conf)
            if sentinel:
                argv.append("--sentinel")
            argv += ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no", "--protected-mode", "no", "--dir", self.dir,
                     "--loglevel", "warning", "--logfile", os.path.join(self.dir, "redis.log")]
            argv += [a() if callable(a) else a for a in args]
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self.proc.poll() is None:
                if _ping(self.port):
                    return
                time.sleep(0.01)
            self.kill()
        raise RuntimeError("redis-server did not start")

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        if self.proc:
            self.proc.wait()


class TlsRedis(Server):
    """redis-server with a plain port and a TLS port that requires a client certificate."""

    def __init__(self, directory):
        os.makedirs(str(directory), exist_ok=True)
        make_certificates(str(directory))
        self.tls_port = free_port()
        super().__init__(directory, args=[
            "--tls-port", str(self.tls_port), "--tls-cert-file", "server.crt",
            "--tls-key-file", "server.key", "--tls-ca-cert-file", "ca.crt",
            "--tls-auth-clients", "yes"])

    def file(self, name):
        return os.path.join(self.dir, name)


class SentinelDeployment:
    """A master, a replica of it and one sentinel watching it as 'mymaster' (quorum 1,
    down-after-milliseconds 500)."""

    def __init__(self, directory):
        directory = str(directory)
        self.master = Server(os.path.join(directory, "master"))
        self.replica = Server(os.path.join(directory, "replica"),
                              args=["--replicaof", "127.0.0.1", str(self.master.port)])
        self.sentinel = Server(
            os.path.join(directory, "sentinel"), sentinel=True,
            config=(f"sentinel monitor mymaster 127.0.0.1 {self.master.port} 1\n"
                    "sentinel down-after-milliseconds mymaster 500\n"
                    "sentinel failover-timeout mymaster 5000\n"))
        self._wait(lambda: self.master.client().info("replication").get("slave0", {}).get(
            "state") == "online", "the replica to sync")
        self._wait(lambda: len(self.sentinel.client().execute_command(
            "SENTINEL", "REPLICAS", "mymaster")) >= 1, "the sentinel to see the replica")

    @property
    def url(self):
        return f"redis+sentinel://127.0.0.1:{self.sentinel.port}/mymaster/0"

    def reported_master_port(self):
        host, port = self.sentinel.client().execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")
        return int(port)

    @staticmethod
    def _wait(cond, what, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if cond():
                    return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.05)
        raise RuntimeError(f"timed out waiting for {what}")

    def wait_failed_over(self, timeout=20.0):
        self._wait(lambda: self.reported_master_port() == self.replica.port,
                   "the sentinel to promote the replica", timeout)

    def close(self):
        for s in (self.sentinel, self.replica, self.master):
            s.kill()
