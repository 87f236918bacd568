#!/usr/bin/env bash
# test.sh - build shmcache and run every test suite; the README's test command.
#
# Installs missing Debian packages (scripts/deps.sh), sets up or reconfigures a meson build
# directory, compiles, runs every suite, and ends with exactly one line
#
#     tests: N passed, N failed
#
# summed over every suite run. Exits non-zero if anything failed, including the build (which counts
# as "tests: 0 passed, 1 failed"). A suite that runs no test at all counts as one failure: a test
# command that checked nothing must not look green.
#
# Usage: scripts/test.sh [BUILD_DIR] [-- MESON_TEST_ARGS...]
#   BUILD_DIR defaults to $SHMC_BUILD_DIR, then "build" (relative to the repository root).
#   Anything after "--" is passed to `meson test` (for example --suite unit, or --repeat 3).
#
# Adding a suite (for example pytest, once bindings/python exists): write a function that runs
# it, finds its passed and failed counts (pytest's last line: "N passed, M failed, K errors in
# ..."; errors count as failed), and calls `record SUITE PASSED FAILED`; then call it from main.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${SHMC_BUILD_DIR:-build}
if [[ $# -gt 0 && "$1" != "--" ]]; then
    build_dir=$1
    shift
fi
[[ "${1:-}" == "--" ]] && shift
meson_test_args=("$@")
[[ "$build_dir" == /* ]] || build_dir="$root/$build_dir"

total_passed=0
total_failed=0

# record SUITE PASSED FAILED [NOTE]: add one suite's counts to the totals and print them.
record() {
    total_passed=$((total_passed + $2))
    total_failed=$((total_failed + $3))
    echo "suite $1: $2 passed, $3 failed${4:+ ($4)}"
}

# finish: print the one summary line and exit with its verdict. Always the last output.
finish() {
    echo "tests: $total_passed passed, $total_failed failed"
    [[ $total_failed -eq 0 ]] && exit 0
    exit 1
}

# abort STEP: a step before the tests failed; that is one failure and nothing passed.
abort() {
    echo "test.sh: $1 failed" >&2
    total_passed=0
    total_failed=1
    finish
}

# meson_count LOG LABEL: the number on meson's summary line "LABEL: N" (0 if absent).
meson_count() {
    local n
    n=$(sed -n "s/^$2:[[:space:]]*\([0-9][0-9]*\).*/\1/p" "$1" | tail -n 1)
    echo "${n:-0}"
}

# Every test registered with meson, all suites.
suite_meson() {
    local log="$build_dir/meson-logs/test-sh-summary.txt"
    local rc ok xfail fail xpass timeout skipped passed failed
    meson test -C "$build_dir" --print-errorlogs "${meson_test_args[@]}" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    ok=$(meson_count "$log" 'Ok')
    xfail=$(meson_count "$log" 'Expected Fail')
    fail=$(meson_count "$log" 'Fail')
    xpass=$(meson_count "$log" 'Unexpected Pass')
    timeout=$(meson_count "$log" 'Timeout')
    skipped=$(meson_count "$log" 'Skipped')
    passed=$((ok + xfail))
    failed=$((fail + xpass + timeout))
    if [[ $rc -ne 0 && $failed -eq 0 ]]; then
        record meson "$passed" 1 "meson test exited with status $rc"
    elif [[ $((passed + failed)) -eq 0 ]]; then
        record meson 0 1 "no test ran"
    else
        record meson "$passed" "$failed" "$skipped skipped"
    fi
}

main() {
    cd "$root" || abort "cd $root"
    "$root/scripts/deps.sh" || abort "installing dependencies (scripts/deps.sh)"
    if [[ -f "$build_dir/meson-private/coredata.dat" ]]; then
        meson setup --reconfigure "$build_dir" || abort "meson setup --reconfigure $build_dir"
    else
        meson setup "$build_dir" || abort "meson setup $build_dir"
    fi
    meson compile -C "$build_dir" || abort "build (meson compile -C $build_dir)"

    suite_meson
    finish
}

main
