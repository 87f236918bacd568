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
# Suites: meson (every test registered with meson) and pytest (every test_*.py under tests/ and
# bindings/python/tests, run by /usr/bin/python3 with SHMCACHE_CLI and SHMCACHE_LIB pointing into
# BUILD_DIR). Adding a suite: write a function that runs it, finds its passed and failed counts,
# and calls `record SUITE PASSED FAILED`; then call it from main.
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

# pytest_count LINE WORD: the number before WORD on pytest's summary line (0 if absent).
pytest_count() {
    local n
    n=$(grep -oE "[0-9]+ $2([^a-z]|$)" <<<"$1" | grep -oE '^[0-9]+' | tail -n 1)
    echo "${n:-0}"
}

# Every Python test: the CLI's (tests/cli) and, once it exists, the Python package's. A tree with
# no test_*.py at all expects none; otherwise collecting nothing (pytest's status 5) is a failure.
suite_pytest() {
    local dirs=() d log rc line passed failed
    for d in tests bindings/python/tests; do
        [[ -d "$d" && -n $(find "$d" -name 'test_*.py' -print -quit) ]] && dirs+=("$d")
    done
    if [[ ${#dirs[@]} -eq 0 ]]; then
        echo "suite pytest: no Python tests in this tree, none expected"
        return
    fi
    log="$build_dir/meson-logs/test-sh-pytest.txt"
    SHMCACHE_CLI="$build_dir/tools/cli/shmcache-cli" \
        SHMCACHE_LIB="$build_dir/lib/libshmcache.so" PYTHONDONTWRITEBYTECODE=1 \
        /usr/bin/python3 -m pytest -q -p no:cacheprovider "${dirs[@]}" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    # The summary is the last line naming a count: "3 failed, 49 passed, 1 error in 4.61s".
    line=$(grep -E '[0-9]+ (passed|failed|errors?|xfailed|xpassed)' "$log" | tail -n 1)
    passed=$(( $(pytest_count "$line" passed) + $(pytest_count "$line" xfailed) ))
    failed=$(( $(pytest_count "$line" failed) + $(pytest_count "$line" error) + \
               $(pytest_count "$line" errors) + $(pytest_count "$line" xpassed) ))
    if [[ $rc -eq 5 ]]; then
        record pytest 0 1 "no test collected from ${dirs[*]}"
    elif [[ $rc -ne 0 && $failed -eq 0 ]]; then
        record pytest "$passed" 1 "pytest exited with status $rc"
    elif [[ $((passed + failed)) -eq 0 ]]; then
        record pytest 0 1 "no test ran"
    else
        record pytest "$passed" "$failed" "$(pytest_count "$line" skipped) skipped"
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
    suite_pytest
    finish
}

main
