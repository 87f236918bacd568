"""test_loading.py - how the package finds libshmcache: $SHMCACHE_LIB exactly, the copy inside
the package (the pip-installed wheel's) before the one `meson install` put beside the installed
package, a source checkout's build/, and one clear error listing every candidate when nothing
loads. Also where shmcache.__version__ comes from in each case (test_wheel.py installs the real
wheel)."""
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


def test_the_copy_inside_the_package_comes_first_and_the_version_is_the_installed_one(tmp_path):
    # An installed package as the wheel lays it out (libshmcache.so.0 beside the modules), with
    # an _install_paths.py whose LIBDIR also holds a library: the copy inside wins.
    real_lib = os.path.realpath(os.environ.get("SHMCACHE_LIB")
                                or os.path.join(REPO, "build", "lib", "libshmcache.so"))
    if not os.path.exists(real_lib):
        pytest.fail(f"no library to test with: {real_lib}")
    site = tmp_path / "site"
    shutil.copytree(os.path.join(PKG_ROOT, "shmcache"), site / "shmcache",
                    ignore=shutil.ignore_patterns("__pycache__", "_install_paths.py"))
    inside = site / "shmcache" / "libshmcache.so.0"
    inside.symlink_to(real_lib)
    libdir = tmp_path / "libdir"
    libdir.mkdir()
    (libdir / "libshmcache.so.0").symlink_to(real_lib)
    (site / "shmcache" / "_install_paths.py").write_text(
        f"VERSION = '9.8.7'\nLIBDIR = {str(libdir)!r}\n")
    code = PROBE + "; print(shmcache.__version__)"
    r = run_python(code, {}, pythonpath=str(site), cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    path, lib_version, version = r.stdout.splitlines()
    assert path == str(inside)
    assert version == "9.8.7"  # the generated file's, not the header's or the library's
    # Without the copy inside, LIBDIR's is next; without _install_paths.py, outside a source
    # tree, the version is the library's.
    inside.unlink()
    r = run_python(code, {}, pythonpath=str(site), cwd=str(tmp_path))
    assert r.returncode == 0 and r.stdout.splitlines()[0] == str(libdir / "libshmcache.so.0")
    (site / "shmcache" / "_install_paths.py").unlink()
    r = run_python(code, {"SHMCACHE_LIB": real_lib}, pythonpath=str(site), cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    _, lib_version, version = r.stdout.splitlines()
    assert version == lib_version


def test_a_source_checkout_reports_the_header_version():
    header = subprocess.run([os.path.join(REPO, "scripts", "version.sh")], capture_output=True,
                            text=True, check=True).stdout.strip()
    # The library of this run (scripts/test.sh's build directory need not be build/).
    lib = os.environ.get("SHMCACHE_LIB") or os.path.join(REPO, "build", "lib", "libshmcache.so")
    r = run_python("import shmcache; print(shmcache.__version__)", {"SHMCACHE_LIB": lib})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == header
