#!/usr/bin/env bash
# test.sh - build shmcache and run every test suite; the README's test command.
#
# Installs missing Debian packages (scripts/deps.sh), sets up or reconfigures a meson build
# directory, compiles, runs every suite, and ends with exactly one line
#
#     tests: N passed, N failed, N skipped
#
# summed over every suite run (skips included). Exits non-zero if anything failed,
# including the build (which counts as "tests: 0 passed, 1 failed"). A suite that runs no test at
# all counts as one failure: a test command that checked nothing must not look green. Nor does a
# skipped test: pytest runs with tests/pytest_plugins/skip_policy.py, which turns a skip into a
# failure unless its reason is one listed there as holding on CI; a meson test that skips (exit
# 77: the fault tests that need root) counts as failed when run as root, where nothing needs it.
#
# Usage: scripts/test.sh [--sanitize[=LIST]] [BUILD_DIR] [-- MESON_TEST_ARGS...]
#   BUILD_DIR defaults to $SHMC_BUILD_DIR, then "build" (relative to the repository root); with
#   --sanitize, to "build-asan" (or "build-tsan" for thread).
#   Anything after "--" is passed to `meson test` (for example --suite unit, or --repeat 3).
#   --sanitize[=LIST] (or SHMC_SANITIZE=LIST): build with meson's b_sanitize=LIST, one of
#   address,undefined (the default for a bare --sanitize), address, undefined, or thread; also
#   -Db_lundef=false, and -Doptimization=0 (1 for thread): under ASan+UBSan, -O0 compiles 2.5
#   times faster than -O1 and the tests take about as long; TSan code at -O0 runs twice as slow.
#     address/undefined: every meson suite, with ASAN_OPTIONS detect_leaks=1:halt_on_error=1 and
#       UBSAN_OPTIONS halt_on_error=1:print_stacktrace=1 (so a UBSan report fails the test), and
#       SHMC_TEST_LATENCY_MS=500: the crash tests' 250 ms bound on every operation, raised for
#       instrumented code only. Then pytest, with the ASan runtime and libstdc++ preloaded into
#       /usr/bin/python3 (the ctypes helpers load the instrumented libshmcache.so) and leaks
#       inside the interpreter itself suppressed; the CLI runs under ASan with leak checks on.
#     thread: only the `tsan` suite (the threads test and the Redis tier tests, see
#       tests/meson.build and tests/l2/meson.build), TSAN_OPTIONS
#       halt_on_error=1; only what it needs is compiled.
#   Values of ASAN_OPTIONS, UBSAN_OPTIONS, TSAN_OPTIONS and SHMC_TEST_LATENCY_MS already in the
#   environment win over these defaults.
#
# Suites: meson (every test registered with meson) and pytest (every test_*.py under tests/ and
# bindings/python/tests, run by /usr/bin/python3 with SHMCACHE_CLI and SHMCACHE_LIB pointing into
# BUILD_DIR). Adding a suite: write a function that runs it, finds its passed and failed counts,
# and calls `record SUITE PASSED FAILED`; then call it from main.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sanitize=${SHMC_SANITIZE:-}
build_dir=${SHMC_BUILD_DIR:-}
while [[ $# -gt 0 && "$1" != "--" ]]; do
    case "$1" in
        --sanitize) sanitize=address,undefined ;;
        --sanitize=*) sanitize=${1#--sanitize=} ;;
        -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "test.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) build_dir=$1 ;;
    esac
    shift
done
[[ "${1:-}" == "--" ]] && shift
meson_test_args=("$@")
case "$sanitize" in
    "" | none) sanitize="" ;;
    address,undefined | undefined,address) sanitize=address,undefined ;;
    address | undefined | thread) ;;
    *) echo "test.sh: --sanitize=$sanitize: use address,undefined, address, undefined or thread" >&2
       exit 2 ;;
esac
if [[ -z "$build_dir" ]]; then
    case "$sanitize" in
        "") build_dir=build ;;
        thread) build_dir=build-tsan ;;
        *) build_dir=build-asan ;;
    esac
fi
[[ "$build_dir" == /* ]] || build_dir="$root/$build_dir"
# Shown after each suite's name, so that the counts of a sanitizer run are not taken for those of
# a plain one.
tag=${sanitize:+ [sanitize=$sanitize]}

total_passed=0
total_failed=0
total_skipped=0

# record SUITE PASSED FAILED [NOTE] [SKIPPED]: add one suite's counts to the totals and print them.
record() {
    total_passed=$((total_passed + $2))
    total_failed=$((total_failed + $3))
    total_skipped=$((total_skipped + ${5:-0}))
    echo "suite $1: $2 passed, $3 failed${4:+ ($4)}"
}

# finish: print the one summary line and exit with its verdict. Always the last output.
finish() {
    echo "tests: $total_passed passed, $total_failed failed, $total_skipped skipped"
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

# Every test registered with meson, all suites (under TSan: the tsan suite, already built).
suite_meson() {
    local log="$build_dir/meson-logs/test-sh-summary.txt"
    local rc ok xfail fail xpass timeout skipped passed failed args=()
    [[ "$sanitize" == thread ]] && args=(--no-rebuild --suite tsan)
    meson test -C "$build_dir" --print-errorlogs "${args[@]}" "${meson_test_args[@]}" 2>&1 |
        tee "$log"
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
        record "meson$tag" "$passed" 1 "meson test exited with status $rc"
    elif [[ $((passed + failed)) -eq 0 ]]; then
        record "meson$tag" 0 1 "no test ran"
    elif [[ $skipped -gt 0 && $(id -u) -eq 0 ]]; then
        # As root every skip reason (needs root) is gone: a skip here hides a broken test.
        record "meson$tag" "$passed" $((failed + skipped)) "$skipped skipped as root: counted as failed"
    else
        record "meson$tag" "$passed" "$failed" "$skipped skipped" "$skipped"
    fi
}

# pytest_count LINE WORD: the number before WORD on pytest's summary line (0 if absent).
pytest_count() {
    local n
    n=$(grep -oE "[0-9]+ $2([^a-z]|$)" <<<"$1" | grep -oE '^[0-9]+' | tail -n 1)
    echo "${n:-0}"
}

# With ASan, the environment pytest needs: python3 is not instrumented, but the ctypes helpers
# load the instrumented libshmcache.so, so the ASan runtime must come first in the process
# (LD_PRELOAD), and libstdc++ with it (the runtime's __cxa_throw interceptor looks it up at
# start, and python3 does not link it: without it the first C++ throw aborts). The interpreter's
# own allocations that live until exit are not our leaks: suppressed by module name. The CLI
# (an instrumented executable) keeps full leak checking. Prints nothing if no ASan runtime is
# linked (undefined alone needs no preload).
asan_python_env() {
    local lib="$build_dir/lib/libshmcache.so" asan cxx supp="$build_dir/lsan-python.supp"
    asan=$(ldd "$lib" 2>/dev/null | awk '/libasan\.so/ {print $3; exit}')
    [[ -n "$asan" ]] || return 0
    cxx=$(ldd "$lib" 2>/dev/null | awk '/libstdc\+\+\.so/ {print $3; exit}')
    printf 'leak:python3\nleak:libpython3\n' >"$supp"
    echo "LD_PRELOAD=$asan${cxx:+ $cxx}"
    echo "LSAN_OPTIONS=suppressions=$supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
}

# Every Python test: the CLI's (tests/cli) and, once it exists, the Python package's. A tree with
# no test_*.py at all expects none; otherwise collecting nothing (pytest's status 5) is a failure.
suite_pytest() {
    local dirs=() d log rc line passed failed env=()
    if [[ "$sanitize" == thread ]]; then
        echo "suite pytest$tag: not run (the TSan run covers the threads test only)"
        return
    fi
    for d in tests bindings/python/tests; do
        [[ -d "$d" && -n $(find "$d" -name 'test_*.py' -print -quit) ]] && dirs+=("$d")
    done
    if [[ ${#dirs[@]} -eq 0 ]]; then
        echo "suite pytest: no Python tests in this tree, none expected"
        return
    fi
    log="$build_dir/meson-logs/test-sh-pytest.txt"
    [[ -n "$sanitize" ]] && mapfile -t env < <(asan_python_env)
    run_pytest() {
        env "${env[@]}" SHMCACHE_CLI="$build_dir/tools/cli/shmcache-cli" \
            SHMCACHE_LIB="$build_dir/lib/libshmcache.so" PYTHONDONTWRITEBYTECODE=1 \
            PYTHONPATH="$root/tests/pytest_plugins${PYTHONPATH:+:$PYTHONPATH}" \
            /usr/bin/python3 -m pytest -q -rs -p no:cacheprovider -p skip_policy "${dirs[@]}" \
            2>&1 | tee "$log"
        rc=${PIPESTATUS[0]}
        # The summary is the last line naming a count: "3 failed, 49 passed, 1 error in 4.61s".
        line=$(grep -E '[0-9]+ (passed|failed|errors?|xfailed|xpassed)' "$log" | tail -n 1)
        passed=$(( $(pytest_count "$line" passed) + $(pytest_count "$line" xfailed) ))
        failed=$(( $(pytest_count "$line" failed) + $(pytest_count "$line" error) + \
                   $(pytest_count "$line" errors) + $(pytest_count "$line" xpassed) ))
    }
    run_pytest
    # LeakSanitizer's exit-time check stops every thread of the interpreter with a ptrace
    # tracer, which sometimes crashes itself ("Tracer caught signal 11 ... LeakSanitizer has
    # encountered a fatal error") when a thread is ending at that instant: no leak was
    # reported, every test passed, yet the status is not 0. That is a fault of the tool, and the
    # suite is run once more; a leak report, a failed test or a second crash counts as usual.
    if [[ -n "$sanitize" && $rc -ne 0 && $rc -ne 5 && $failed -eq 0 && $passed -gt 0 ]] &&
        grep -q 'LeakSanitizer has encountered a fatal error' "$log" &&
        ! grep -q 'LeakSanitizer: detected memory leaks' "$log"; then
        echo "suite pytest$tag: LeakSanitizer's tracer crashed at exit after $passed tests" \
            "passed (no leak reported): running the suite once more"
        run_pytest
    fi
    if [[ $rc -eq 5 ]]; then
        record "pytest$tag" 0 1 "no test collected from ${dirs[*]}"
    elif [[ $rc -ne 0 && $failed -eq 0 ]]; then
        record "pytest$tag" "$passed" 1 "pytest exited with status $rc"
    elif [[ $((passed + failed)) -eq 0 ]]; then
        record "pytest$tag" 0 1 "no test ran"
    else
        record "pytest$tag" "$passed" "$failed" "$(pytest_count "$line" skipped) skipped" \
            "$(pytest_count "$line" skipped)"
    fi
}

# The sanitizer runtimes' options (see the header); the caller's own settings come last and win.
export_sanitizer_env() {
    export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
    export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
    export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
    export SHMC_TEST_LATENCY_MS=${SHMC_TEST_LATENCY_MS:-500}
}

main() {
    local setup_args=() targets=()
    cd "$root" || abort "cd $root"
    "$root/scripts/deps.sh" || abort "installing dependencies (scripts/deps.sh)"
    if [[ -n "$sanitize" ]]; then
        setup_args=("-Db_sanitize=$sanitize" -Db_lundef=false -Doptimization=0)
        [[ "$sanitize" == thread ]] && setup_args[2]=-Doptimization=1
        export_sanitizer_env
    fi
    if [[ -f "$build_dir/meson-private/coredata.dat" ]]; then
        meson setup --reconfigure "$build_dir" "${setup_args[@]}" ||
            abort "meson setup --reconfigure $build_dir"
    else
        meson setup "$build_dir" "${setup_args[@]}" || abort "meson setup $build_dir"
    fi
    # Under TSan only the executables of the tsan suite are built (whatever tests/ registers
    # there): the rest of the tree is not run in that build.
    if [[ "$sanitize" == thread ]]; then
        mapfile -t targets < <(meson introspect --tests "$build_dir" | /usr/bin/python3 -c '
import json, os, sys
root = sys.argv[1]
for t in json.load(sys.stdin):
    if "tsan" in t["suite"] or any(s.endswith(":tsan") for s in t["suite"]):
        print(os.path.relpath(t["cmd"][0], root))' "$build_dir")
        [[ ${#targets[@]} -gt 0 ]] || abort "no test in the tsan suite"
    fi
    meson compile -C "$build_dir" "${targets[@]}" || abort "build (meson compile -C $build_dir)"

    suite_meson
    suite_pytest
    finish
}

main
