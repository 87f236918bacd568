"""_version.py - shmcache.__version__, from the one place the version is defined.

The version is the SHMC_VERSION_MAJOR/MINOR/PATCH macros of lib/include/shmcache/shmcache.h:
scripts/version.sh reads them into meson's project version, which is the library's
shmc_version(), `shmcache-cli --version`, the wheel's metadata (pyproject.toml: dynamic
version, from meson) and, here, the package's version:
  1. an installed package (the wheel, or `meson install`): VERSION in the generated
     _install_paths.py (bindings/python/_install_paths.py.in);
  2. a source checkout (bindings/python on PYTHONPATH): the header's macros, read from the tree
     around the package;
  3. otherwise (the package copied out of its tree): the loaded library's shmc_version().
"""
import os
import re


def _from_header(package_dir):
    repo = os.path.dirname(os.path.dirname(os.path.dirname(package_dir)))
    header = os.path.join(repo, "lib", "include", "shmcache", "shmcache.h")
    try:
        with open(header) as f:
            text = f.read()
    except OSError:
        return None
    parts = [re.search(rf"^#define SHMC_VERSION_{p} (\d+)", text, re.M)
             for p in ("MAJOR", "MINOR", "PATCH")]
    if not all(parts):
        return None
    return ".".join(m.group(1) for m in parts)


def package_version():
    try:
        from ._install_paths import VERSION
        return VERSION
    except ImportError:
        pass
    version = _from_header(os.path.dirname(os.path.abspath(__file__)))
    if version:
        return version
    from ._ffi import library_version
    return library_version()


__version__ = package_version()
