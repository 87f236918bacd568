#!/usr/bin/env bash
# deps.sh - install the Debian packages shmcache needs to build, test and run its demo.
#
# The package list lives here and only here; scripts/test.sh, scripts/demo.sh and .ci/run call
# this script. Packages are checked with dpkg-query first, so on a machine that has them all this
# does nothing (no apt-get update, no root needed). Otherwise it installs the missing ones, through
# sudo when not run as root.
#
# Usage: scripts/deps.sh [--list]     (--list prints the package list and exits)
set -euo pipefail

PACKAGES=(
    meson ninja-build pkg-config g++   # build
    libboost-dev libxxhash-dev         # engine (Boost.Interprocess, XXH3)
    libhiredis-dev libzstd-dev zstd    # Redis L2 and value compression
    libssl-dev openssl                 # TLS to Redis (rediss://); tests: certificates made with openssl
    redis-server redis-tools           # tests: a real Redis on a random loopback port, redis-cli
    libspdlog-dev libfmt-dev           # logging
    doctest-dev                        # unit tests
    liblmdb-dev                        # bench/: LMDB as a peer
    libcli11-dev nlohmann-json3-dev    # shmcache-cli: argument parsing, JSON
    python3-mesonpy python3-pip python3-venv   # `pip install .` (pyproject.toml: meson-python,
                                       # built without isolation) into a venv; tests: test_wheel.py
    python3-pytest python3-prometheus-client   # CLI tests (tests/cli), Prometheus parser
    python3-pytest-asyncio             # tests: every `async def` test (without it pytest skips them)
    python3-pydantic                   # Python package: pydantic models as cached return types
    python3-msgpack                    # Python package: optional msgpack serializer
    python3-fastapi python3-uvicorn python3-httptools python3-uvloop gunicorn python3-httpx
                                       # Python package: FastAPI integration, demo and tests
    python3-redis python3-diskcache python3-cachetools python3-pymemcache python3-lmdb memcached
                                       # bench/python: the Python-level peers
    wrk python3-matplotlib             # bench/: end-to-end load, plots
)

if [[ "${1:-}" == "--list" ]]; then
    printf '%s\n' "${PACKAGES[@]}"
    exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "installed" ]]; then
        missing+=("$pkg")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "deps: all ${#PACKAGES[@]} packages installed"
    exit 0
fi

echo "deps: installing ${missing[*]}"
sudo=()
if [[ $(id -u) -ne 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "deps: not root and no sudo; install as root: apt-get install ${missing[*]}" >&2
        exit 1
    fi
    sudo=(sudo)
fi
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
