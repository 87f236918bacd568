#!/usr/bin/env bash
# demo.sh - build shmcache and run its demo; the README's main command.
#
# Installs missing Debian packages (scripts/deps.sh), sets up or reconfigures a meson build
# directory and compiles everything. Then it serves the example FastAPI app
# (examples/fastapi_app) with real gunicorn and uvicorn workers on a free loopback port, all
# opening one demo segment, drives traffic at it (scripts/demo_traffic.py) and prints what the
# shared cache did: per worker, how many responses carried a profile another worker computed,
# profiles computed against requests, the host-wide L1 hit rate, and an invalidation seen by
# every worker. With REDIS_URL set, the workers also use that Redis as L2 and the report says so.
# Stops gunicorn, removes the demo segment and exits 0; on failure prints gunicorn's log.
#
# Usage: scripts/demo.sh [--workers N] [TRAFFIC_ARGS...]   the Python demo (default 4 workers)
#        scripts/demo.sh --c [C_DEMO_ARGS...]               the C demo (build/tools/shmcache-demo,
#                                                           its --help lists the options)
#   TRAFFIC_ARGS go to scripts/demo_traffic.py: --requests N (2000), --users N (200),
#   --concurrency N (8), --zipf S (1.0), --json OUT.
#   The build directory is $SHMC_BUILD_DIR, else "build" (relative to the repository root).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${SHMC_BUILD_DIR:-build}
[[ "$build_dir" == /* ]] || build_dir="$root/$build_dir"
python=/usr/bin/python3 # Debian's: the one that sees python3-fastapi, gunicorn, ... (no pip)

workers=4
c_demo=
traffic_args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --c) c_demo=1; shift; break ;;
        --workers) workers=$2; shift 2 ;;
        --workers=*) workers=${1#--workers=}; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) traffic_args+=("$1"); shift ;;
    esac
done

cd "$root"
"$root/scripts/deps.sh"
setup=(meson setup "$build_dir")
[[ -f "$build_dir/meson-private/coredata.dat" ]] && setup+=(--reconfigure)
# Quiet unless it fails: the demo's report is what the reader came for.
if ! log=$("${setup[@]}" 2>&1); then
    echo "$log" >&2
    exit 1
fi
meson compile -C "$build_dir"
echo
if [[ -n "$c_demo" ]]; then
    exec "$build_dir/tools/shmcache-demo" "$@"
fi

segment="shmcache-demo-py-$$"
scratch=$(mktemp -d /tmp/shmcache-demo.XXXXXX)
gunicorn_log="$scratch/gunicorn.log"
gunicorn_pid=
driver_pid=
port=$("$python" -c \
    'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# The app reads its configuration from the environment (CacheConfig.from_env).
app_env=(env PYTHONPATH="$root/bindings/python:$root/examples${PYTHONPATH:+:$PYTHONPATH}"
         SHMCACHE_LIB="$build_dir/lib/libshmcache.so" SHMCACHE_NAME="$segment"
         EXAMPLE_DB="$scratch/users.sqlite")

# Stop the traffic, then gunicorn (TERM: workers finish their requests and close the cache;
# KILL after 10 s); remove the demo's segment and scratch files. Runs on every exit.
cleanup() {
    local rc=$? i
    if [[ -n "$driver_pid" ]] && kill -0 "$driver_pid" 2>/dev/null; then
        kill -TERM "$driver_pid" 2>/dev/null || true
        wait "$driver_pid" 2>/dev/null || true
    fi
    if [[ -n "$gunicorn_pid" ]] && kill -0 "$gunicorn_pid" 2>/dev/null; then
        kill -TERM "$gunicorn_pid" 2>/dev/null || true
        for i in $(seq 100); do
            kill -0 "$gunicorn_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$gunicorn_pid" 2>/dev/null || true
        wait "$gunicorn_pid" 2>/dev/null || true
    fi
    # force: a worker killed during the demo cannot have detached itself.
    "${app_env[@]}" "$python" -c \
        'import shmcache, sys; shmcache.destroy_segment(sys.argv[1], force=True)' "$segment" ||
        true
    if [[ $rc -ne 0 && $rc -ne 130 && -s "$gunicorn_log" ]]; then
        echo "demo.sh: failed; gunicorn's log:" >&2
        sed 's/^/    /' "$gunicorn_log" >&2
    fi
    rm -rf "$scratch"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -n "${REDIS_URL:-}" ]]; then
    tiers="L1 (shared memory) + L2 (Redis at $REDIS_URL)"
else
    tiers="L1 only (shared memory; set REDIS_URL=redis://... to add Redis as L2)"
fi
echo "shmcache Python demo: gunicorn, $workers uvicorn workers of examples/fastapi_app on" \
    "127.0.0.1:$port, segment \"$segment\", $tiers"
echo

"${app_env[@]}" "$python" -m gunicorn fastapi_app.app:app \
    --worker-class uvicorn.workers.UvicornWorker --workers "$workers" \
    --bind "127.0.0.1:$port" --graceful-timeout 5 --log-level info >"$gunicorn_log" 2>&1 &
gunicorn_pid=$!

# In the background and waited for, so that a TERM or INT sent to this script runs the cleanup
# at once rather than after the traffic (bash defers traps while a foreground command runs).
"$python" "$root/scripts/demo_traffic.py" --url "http://127.0.0.1:$port" --workers "$workers" \
    --server-pid "$gunicorn_pid" ${REDIS_URL:+--l2} "${traffic_args[@]}" &
driver_pid=$!
wait "$driver_pid"
