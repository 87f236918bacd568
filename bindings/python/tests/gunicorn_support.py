"""gunicorn_support.py - the example FastAPI app under real gunicorn, for test_gunicorn.py.

Gunicorn runs `python3 -m gunicorn fastapi_app.app:app` with uvicorn workers on a free loopback
port, with a segment name and a SQLite file of its own, in a session of its own (so that a
hung worker can be killed with its master and nothing else). The app is configured only through
the environment, exactly as scripts/demo.sh runs it.

Requests go on a fresh connection each ("Connection: close"): the kernel hands each new
connection to whichever worker accepts first, so repeating a request reaches the other workers
within a few tries, which is how the tests make a value computed by one worker be served by
another.
"""
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
PYTHON = "/usr/bin/python3"  # Debian's: the interpreter that has fastapi, uvicorn, gunicorn


def lib_path():
    return os.environ.get("SHMCACHE_LIB") or os.path.join(ROOT, "build", "lib", "libshmcache.so")


def cli_path():
    return os.environ.get("SHMCACHE_CLI") or os.path.join(ROOT, "build", "tools", "cli",
                                                          "shmcache-cli")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def segment_exists(name):
    return os.path.exists(os.path.join("/dev/shm", name))


def destroy_segment(name):
    """Remove a test segment; force: workers killed by a test cannot have detached."""
    import shmcache

    shmcache.destroy_segment(name, force=True)


class HttpError(RuntimeError):
    pass


def request(port, method, path, body=None, timeout=10.0):
    """One request on a fresh connection; the decoded JSON body. Non-200 raises HttpError."""
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Connection": "close"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        con.request(method, path, body=data, headers=headers)
        resp = con.getresponse()
        payload = resp.read()
        if resp.status != 200:
            raise HttpError(f"{method} {path}: HTTP {resp.status}: {payload[:300]!r}")
        return json.loads(payload)
    finally:
        con.close()


class Gunicorn:
    """One gunicorn master and its workers serving fastapi_app.app:app."""

    def __init__(self, tmp_path, segment, workers=2, preload=False, env=None, app=None,
                 extra_pythonpath=()):
        self.segment = segment
        self.workers = workers
        self.port = free_port()
        self.log_path = os.path.join(tmp_path, f"gunicorn-{self.port}.log")
        self.env = dict(os.environ)
        self.env.pop("REDIS_URL", None)  # L1 only unless the test says otherwise
        self.env.update({
            "PYTHONPATH": os.pathsep.join([*extra_pythonpath,
                                           os.path.join(ROOT, "bindings", "python"),
                                           os.path.join(ROOT, "examples")]),
            "SHMCACHE_LIB": lib_path(),
            "SHMCACHE_NAME": segment,
            "EXAMPLE_DB": os.path.join(tmp_path, f"users-{self.port}.sqlite"),
            "PYTHONDONTWRITEBYTECODE": "1",
        })
        self.env.update(env or {})
        self.argv = [PYTHON, "-m", "gunicorn", app or "fastapi_app.app:app",
                     "--worker-class", "uvicorn.workers.UvicornWorker",
                     "--workers", str(workers), "--bind", f"127.0.0.1:{self.port}",
                     "--graceful-timeout", "3", "--log-level", "info"]
        if preload:
            self.argv.append("--preload")
        self.proc = None

    # ---- life cycle ----

    def start(self, timeout=30.0):
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=30.0):
        """Until /health/cache answers and every worker has served a request."""
        deadline = time.monotonic() + timeout
        seen = set()
        while len(seen) < self.workers:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with status {self.proc.returncode}:\n"
                                   + self.log())
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn not ready in {timeout:.0f} s ({len(seen)} of "
                                   f"{self.workers} workers answered):\n" + self.log())
            try:
                request(self.port, "GET", "/health/cache", timeout=2)
                seen.add(request(self.port, "GET", "/whoami", timeout=2)["pid"])
            except (OSError, HttpError, http.client.HTTPException):
                time.sleep(0.1)
        return seen

    def stop(self):
        """TERM the master (workers finish and close the cache); KILL the session after 10 s."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        # Workers outlive a master that was killed or hung: the session holds only our processes.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._log.close()

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-8000:]

    # ---- workers ----

    def worker_pids(self):
        """Pids of the master's live children (gunicorn's workers), from /proc."""
        pids = set()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            # Fields after the command name, which is in parentheses and may contain spaces.
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[1]) == self.proc.pid and fields[0] != "Z":
                pids.add(int(entry))
        return pids

    def maps_segment(self, pid):
        """True if process pid has the test segment mapped."""
        with open(f"/proc/{pid}/maps") as f:
            return any(line.rstrip().endswith("/dev/shm/" + self.segment) for line in f)

    # ---- requests ----

    def get(self, path, **kw):
        return request(self.port, "GET", path, **kw)

    def put(self, path, body):
        return request(self.port, "PUT", path, body)

    def get_until(self, path, predicate, tries=400):
        """GET path on fresh connections until predicate(response) holds; that response.
        Fails the test (AssertionError) after `tries`."""
        last = None
        for _ in range(tries):
            last = self.get(path)
            if predicate(last):
                return last
        raise AssertionError(f"GET {path}: no response satisfied the condition in {tries} tries;"
                             f" last: {last}")


@contextlib.contextmanager
def running(tmp_path, segment, **kw):
    """A started Gunicorn, always stopped and its segment always removed."""
    g = Gunicorn(tmp_path, segment, **kw)
    try:
        g.start()
        yield g
    except Exception:
        if g.proc is not None:
            sys.stderr.write("gunicorn log:\n" + g.log())
        raise
    finally:
        g.stop()
        destroy_segment(segment)
