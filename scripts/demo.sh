#!/usr/bin/env bash
# demo.sh - build shmcache and run its demo; the README's main command.
#
# Installs missing Debian packages (scripts/deps.sh), sets up or reconfigures a meson build
# directory, compiles everything, and runs tools/shmcache-demo: several worker processes share one cache
# segment and the report shows how many requests each served from values another worker computed.
#
# Usage: scripts/demo.sh [DEMO_ARGS...]      (scripts/demo.sh --help lists the demo's options)
#   The build directory is $SHMC_BUILD_DIR, else "build" (relative to the repository root).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${SHMC_BUILD_DIR:-build}
[[ "$build_dir" == /* ]] || build_dir="$root/$build_dir"

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
exec "$build_dir/tools/shmcache-demo" "$@"
