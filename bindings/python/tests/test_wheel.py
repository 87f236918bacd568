"""test_wheel.py - `pip install` of the package as a user gets it (issue 19), end to end.

From a clean copy of the repository (the files git tracks, as a clone has them; uncommitted edits
to tracked files included, untracked files not), in a temporary directory:

  1. `pip wheel --no-build-isolation --no-deps` builds the wheel through pyproject.toml
     (meson-python, release mode, only libshmcache and shmcache-cli compiled): a platform wheel
     (not pure), tagged for Linux;
  2. it is installed into a fresh venv outside the tree (`python3 -m venv
     --system-site-packages`: FastAPI, uvicorn and gunicorn come from Debian), and from there,
     with no PYTHONPATH, SHMCACHE_LIB, sanitizer preload or other inherited setting (every child
     runs with a minimal environment):
       - `import shmcache` loads the library inside the installed package, and one version is
         seen everywhere: shmcache.__version__ == library_version() == `shmcache-cli --version`
         == the wheel's metadata == the header's macros (scripts/version.sh);
       - a FastAPI app runs under gunicorn with two uvicorn workers on one segment: a value set
         through one worker is a hit through the other (the responses carry the serving pid);
       - `python3 -m shmcache.warm` writes records that the workers then serve;
       - `shmcache-cli` (on the venv's bin/) reads the segment's statistics and removes it;
  3. `pip uninstall -y shmcache` leaves the venv exactly as it was before the install.

1 to 2 minutes on 2 cores (111 s measured while other builds shared them), nearly all of it
compiling; with -s it prints the time of each phase. Under scripts/test.sh
--sanitize the same: the children's environment does not carry LD_PRELOAD or ASAN_OPTIONS, so
the wheel is an ordinary release build.
"""
import contextlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import textwrap
import time
import zipfile

from gunicorn_support import HttpError, free_port, request
from shmc_test_support import REPO

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's: meson-python, pip and venv are its packages
# What the children inherit, and nothing else: no PYTHONPATH, SHMCACHE_*, LD_PRELOAD, ASan or
# compiler settings of the test run. PATH is the system's, so meson, ninja and the compilers are
# Debian's (meson-python runs `meson`).
KEPT_ENV = ("HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "LOGNAME")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

APP = textwrap.dedent('''
    import os

    from fastapi import FastAPI

    import shmcache
    from shmcache import CacheConfig, create_cache_manager
    from shmcache.fastapi import add_cache_routes, cache_lifespan

    cache = create_cache_manager(CacheConfig.from_env())
    app = FastAPI(lifespan=cache_lifespan(cache))
    add_cache_routes(app, cache)  # /health/cache; also installs the lifespan on FastAPI 0.92


    @app.get("/whoami")
    async def whoami():
        return {"pid": os.getpid(), "library": shmcache.library_path,
                "package": shmcache.__file__}


    @app.put("/kv/{key}")
    async def put(key: str, value: dict):
        await cache.set(key, value, ttl=300)
        return {"pid": os.getpid()}


    @app.get("/kv/{key}")
    async def get(key: str):
        return {"pid": os.getpid(), "value": await cache.get(key)}
''')

WARM_SOURCE = textwrap.dedent('''
    def records():
        return [("warmed:%d" % i, {"n": i}) for i in range(50)]
''')


def child_env(**extra):
    env = {k: os.environ[k] for k in KEPT_ENV if k in os.environ}
    env.update(PATH=SYSTEM_PATH, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    env.update(extra)
    return env


def run(argv, timeout=120, **kw):
    """argv in the minimal environment; fails the test with its output unless it exits 0."""
    kw.setdefault("env", child_env())
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    assert r.returncode == 0, (f"{' '.join(map(str, argv))}: exit {r.returncode}\n"
                               f"{r.stdout[-4000:]}\n{r.stderr[-6000:]}")
    return r


def copy_tracked_files(dest):
    """The files git tracks, copied with their modes (scripts/version.sh must stay executable):
    what a clone holds, without build directories, caches or anything untracked."""
    out = subprocess.run(["git", "-C", REPO, "ls-files", "-z"], capture_output=True,
                         check=True, timeout=60, env=child_env()).stdout
    copied = 0
    for rel in out.decode().split("\0"):
        src = os.path.join(REPO, rel)
        if not rel or not os.path.isfile(src):  # tracked, but deleted in the working tree
            continue
        os.makedirs(os.path.join(dest, os.path.dirname(rel)), exist_ok=True)
        shutil.copy2(src, os.path.join(dest, rel), follow_symlinks=False)
        copied += 1
    assert copied > 0, "git ls-files listed nothing"


def tree(root):
    """Every path under root (files, directories, links), relative: a venv's contents."""
    paths = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            paths.add(os.path.relpath(os.path.join(dirpath, name), root))
    return paths


def header_version():
    return subprocess.run([os.path.join(REPO, "scripts", "version.sh")], capture_output=True,
                          text=True, check=True, timeout=30, env=child_env()).stdout.strip()


class Gunicorn:
    """gunicorn from the venv's interpreter, two uvicorn workers, in a session of its own."""

    def __init__(self, python, app_dir, env, log_path):
        self.port = free_port()
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [python, "-m", "gunicorn", "app:app", "--worker-class",
             "uvicorn.workers.UvicornWorker", "--workers", "2", "--bind",
             f"127.0.0.1:{self.port}", "--graceful-timeout", "3"],
            cwd=app_dir, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-8000:]

    def wait_workers(self, n=2, timeout=60.0):
        """{pid: /whoami} once n workers have answered."""
        deadline = time.monotonic() + timeout
        seen = {}
        while len(seen) < n:
            assert self.proc.poll() is None, f"gunicorn exited:\n{self.log()}"
            assert time.monotonic() < deadline, f"{len(seen)} of {n} workers answered:\n" \
                                                f"{self.log()}"
            try:
                request(self.port, "GET", "/health/cache", timeout=2)
                who = request(self.port, "GET", "/whoami", timeout=2)
                seen[who["pid"]] = who
            except (OSError, HttpError, http.client.HTTPException):
                time.sleep(0.1)
        return seen

    def get_until(self, path, predicate, tries=400):
        last = None
        for _ in range(tries):
            last = request(self.port, "GET", path)
            if predicate(last):
                return last
        raise AssertionError(f"GET {path}: nothing satisfied the test in {tries} tries: {last}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._log.close()


def test_pip_wheel_install_run_and_uninstall(tmp_path, shm_name):
    started = time.monotonic()
    phases = []

    def phase(name):
        phases.append(f"{name} {time.monotonic() - started:.0f} s")
    src, dist, venv, app_dir = (tmp_path / d for d in ("src", "dist", "venv", "app"))
    copy_tracked_files(src)

    # ---- 1. the wheel ----------------------------------------------------------------------
    run([SYSTEM_PYTHON, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
         "--no-index", "-w", str(dist), str(src)], timeout=600)
    phase("wheel built")
    [wheel] = list(dist.glob("shmcache-*.whl"))
    version = header_version()
    machine = platform.machine()
    assert wheel.name == f"shmcache-{version}-py3-none-linux_{machine}.whl", wheel.name
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(f"shmcache-{version}.dist-info/METADATA").decode()
        wheel_info = z.read(f"shmcache-{version}.dist-info/WHEEL").decode()
    assert "Root-Is-Purelib: false" in wheel_info  # a platform wheel
    assert re.search(rf"^Version: {re.escape(version)}$", meta, re.M)
    assert "Classifier: Operating System :: POSIX :: Linux" in meta
    assert re.search(r"^Summary: .*glibc's robust", meta, re.M)  # what it needs of the host
    package = [n for n in names if "/shmcache/" in n or n.startswith("shmcache/")]
    assert any(n.endswith("/shmcache/libshmcache.so.0") for n in package), names
    assert any(n.endswith("/scripts/shmcache-cli") for n in names), names
    assert not [n for n in names if "__pycache__" in n or n.endswith((".in", ".pyc"))], names
    assert not [n for n in names if n.endswith((".h", ".pc", ".md")) or "shmcache-demo" in n]

    # ---- 2. a fresh venv, outside the tree -------------------------------------------------
    run([SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", str(venv)])
    python, bindir = str(venv / "bin" / "python3"), venv / "bin"
    before = tree(venv)
    run([python, "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)])
    cli = shutil.which("shmcache-cli", path=f"{bindir}:{SYSTEM_PATH}")
    assert cli == str(bindir / "shmcache-cli"), cli  # on the venv's PATH

    probe = run([python, "-c", "import importlib.metadata, json, shmcache; print(json.dumps("
                 "[shmcache.__version__, shmcache.library_version(), shmcache.library_path, "
                 "shmcache.__file__, importlib.metadata.version('shmcache')]))"],
                cwd=tmp_path)
    pkg_version, lib_version, lib_path, init_path, dist_version = json.loads(probe.stdout)
    site = os.path.dirname(os.path.dirname(init_path))
    assert site.startswith(str(venv) + os.sep), init_path  # not the source tree's package
    assert lib_path == os.path.join(site, "shmcache", "libshmcache.so.0")  # the copy inside
    cli_version = run([cli, "--version"]).stdout.strip()
    assert cli_version == f"shmcache-cli {version} (libshmcache {version})", cli_version
    assert pkg_version == lib_version == dist_version == version, \
        (pkg_version, lib_version, dist_version, version)

    phase("installed")
    app_dir.mkdir()
    (app_dir / "app.py").write_text(APP)
    (app_dir / "warm_source.py").write_text(WARM_SOURCE)
    env = child_env(SHMCACHE_NAME=shm_name, SHMCACHE_SIZE="8M")
    g = Gunicorn(python, app_dir, env, str(tmp_path / "gunicorn.log"))
    try:
        workers = g.wait_workers()
        assert len(workers) == 2
        for who in workers.values():  # each worker loaded the venv's package and library
            assert who["library"] == lib_path and who["package"] == init_path, who
        for pid in workers:
            with open(f"/proc/{pid}/maps") as f:
                assert any(line.rstrip().endswith("/dev/shm/" + shm_name) for line in f), pid

        # A value set through one worker is a hit through the other.
        writer = request(g.port, "PUT", "/kv/shared", {"from": "one worker"})["pid"]
        other = g.get_until("/kv/shared", lambda r: r["pid"] != writer)
        assert other["pid"] in workers and other["value"] == {"from": "one worker"}, other

        # The host-level warm script, from the venv, then read back through the workers.
        warm = run([python, "-m", "shmcache.warm", "warm_source:records", "--config-from-env"],
                   cwd=app_dir, env=env)
        assert warm.stdout.startswith("warm: 50 written, 0 skipped"), warm.stdout
        for pid in workers:
            r = g.get_until("/kv/warmed:49", lambda r, p=pid: r["pid"] == p)
            assert r["value"] == {"n": 49}, r

        stats = json.loads(run([cli, "--name", shm_name, "stats", "--json"]).stdout)
        # 51 keys; a hit for /kv/shared and one per worker for /kv/warmed:49 at least.
        assert stats["entries"] >= 51 and stats["hits"] >= 3, stats
    except Exception:
        print("gunicorn log:\n" + g.log())
        raise
    finally:
        g.stop()
    phase("served")
    run([cli, "--name", shm_name, "destroy"])
    assert not os.path.exists(f"/dev/shm/{shm_name}")

    # ---- 3. uninstall: nothing left behind -------------------------------------------------
    run([python, "-m", "pip", "uninstall", "-y", "shmcache"])
    after = tree(venv)
    assert after == before, (f"left behind: {sorted(after - before)}; "
                             f"removed: {sorted(before - after)}")
    phase("uninstalled")
    print("test_wheel: " + ", ".join(phases))  # shown with -s, or -rA
