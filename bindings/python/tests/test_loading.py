"""test_loading.py - how the package finds libshmcache: $SHMCACHE_LIB exactly, the copy
`meson install` put beside the installed package, a source checkout's build/, and one clear
error listing every candidate when nothing loads."""
import os
import shutil
import subprocess
import sys

import pytest

from shmc_test_support import PKG_ROOT, REPO

PROBE = "import shmcache; print(shmcache.library_path); print(shmcache.library_version())"


def run_python(code, env_changes, pythonpath=PKG_ROOT, cwd=None):
    env = {k: v for k, v in os.environ.items() if k not in ("SHMCACHE_LIB", "PYTHONPATH")}
    env.update({k: v for k, v in env_changes.items() if v is not None})
    env["PYTHONPATH"] = pythonpath
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60, cwd=cwd)


def test_shmcache_lib_that_does_not_exist_is_the_only_candidate_and_is_named(tmp_path):
    missing = str(tmp_path / "nope" / "libshmcache.so")
    r = run_python(PROBE, {"SHMCACHE_LIB": missing})
    assert r.returncode != 0
    assert "ShmcacheLoadError: cannot load libshmcache; tried:" in r.stderr
    assert f"{missing}: no such file" in r.stderr
    assert "build/lib" not in r.stderr  # an explicit choice is never silently replaced


def test_the_error_is_an_importerror_with_the_reasons(tmp_path):
    not_a_lib = tmp_path / "libshmcache.so"
    not_a_lib.write_text("not an ELF file")
    libc = "libc.so.6"
    code = ("import sys\ntry:\n    import shmcache\nexcept ImportError as e:\n"
            "    print(type(e).__name__, e.tried)\n    sys.exit(3)\n")
    r = run_python(code, {"SHMCACHE_LIB": str(not_a_lib)})
    assert r.returncode == 3 and "ShmcacheLoadError" in r.stdout
    assert "invalid ELF header" in r.stdout or "file too short" in r.stdout
    r = run_python(code, {"SHMCACHE_LIB": libc})
    assert r.returncode == 3 and "not a usable libshmcache (missing shmc_open" in r.stdout


def test_a_source_checkout_finds_build_lib(tmp_path):
    # A checkout of our own: the package copied to <tmp>/bindings/python/shmcache and the
    # library at <tmp>/build/lib, wherever this run's library was built (CI uses build-ci/).
    real_lib = os.path.realpath(os.environ.get("SHMCACHE_LIB")
                                or os.path.join(REPO, "build", "lib", "libshmcache.so"))
    if not os.path.exists(real_lib):
        pytest.fail(f"no library to test with: {real_lib}")
    pkg = tmp_path / "bindings" / "python"
    shutil.copytree(os.path.join(PKG_ROOT, "shmcache"), pkg / "shmcache",
                    ignore=shutil.ignore_patterns("__pycache__", "_install_paths.py"))
    built = tmp_path / "build" / "lib" / "libshmcache.so.0"
    built.parent.mkdir(parents=True)
    built.symlink_to(real_lib)
    r = run_python(PROBE, {}, pythonpath=str(pkg), cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == str(built)


def _build_dir():
    lib = os.environ.get("SHMCACHE_LIB") or os.path.join(REPO, "build", "lib", "libshmcache.so")
    build = os.path.dirname(os.path.dirname(os.path.abspath(lib)))
    if not os.path.exists(os.path.join(build, "meson-private", "coredata.dat")):
        pytest.skip(f"not a meson build tree: {build} (scripts/test.sh always passes one)")
    return build


def test_meson_install_installs_a_package_that_loads_its_own_library(tmp_path):
    build = _build_dir()
    dest = tmp_path / "root"
    r = subprocess.run(["meson", "install", "-C", build, "--no-rebuild", "--quiet",
                        "--destdir", str(dest), "--tags", "runtime,python-runtime"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    [paths_file] = list(dest.rglob("shmcache/_install_paths.py"))
    package_dir = paths_file.parent
    assert {"__init__.py", "_ffi.py", "fastapi.py", "warm.py"} <= set(os.listdir(package_dir))
    libdir = open(paths_file).read().split("LIBDIR = ")[1].strip().strip("'")
    staged_libdir = str(dest) + libdir
    assert os.path.exists(os.path.join(staged_libdir, "libshmcache.so.0"))
    # Point the staged package at the staged library (a real install needs no edit: LIBDIR is
    # where the library went), then import it with no SHMCACHE_LIB and no source tree around.
    paths_file.write_text(f"LIBDIR = {staged_libdir!r}\n")
    r = run_python(PROBE, {}, pythonpath=str(package_dir.parent), cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == os.path.join(staged_libdir, "libshmcache.so.0")
    shutil.rmtree(dest)
