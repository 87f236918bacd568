#!/usr/bin/env bash
# fuzz.sh - build the libFuzzer targets of fuzz/ with ASan+UBSan and run each for a bounded time.
#
# Sets up its own build directory (clang, -Dfuzzing=enabled, b_sanitize=address,undefined),
# installing clang and its runtime libraries with apt-get if they are missing. For each target it
# first replays fuzz/regressions/<target>/ (every reproducer of a past finding must pass), then
# fuzzes from a scratch copy of fuzz/corpus/<target>/ (the repository's corpus is only written
# with --update-corpus, which merges in the inputs that add coverage). One line per target:
#   fuzz <target>: ok (<execs> execs, <cov> cov)
#   fuzz <target>: FAIL (<reproducer>; log <log>)
# then "fuzz: N passed, N failed". Exits 1 if any target failed, 2 on a usage or build error.
# Crash inputs are kept in <build>/fuzz-artifacts/<target>/, logs in <build>/fuzz-logs/.
#
# Usage: scripts/fuzz.sh [--ci] [--seconds N] [--update-corpus] [target...]
#   --ci              20 seconds per target (unless --seconds is given)
#   --seconds N       fuzzing time per target (default 600)
#   --update-corpus   merge new coverage into fuzz/corpus/<target>/ afterwards
#   targets           any of: glob envelope ops segment warm_parse l2_parse (default: all)
# Environment: SHMC_FUZZ_BUILD_DIR (default build-fuzz in the repository), SHMC_FUZZ_ALLOW
# (known findings to skip, see fuzz/README.md).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
all_targets=(glob envelope ops segment warm_parse l2_parse)

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

seconds=""
ci=0
update=0
targets=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --ci) ci=1 ;;
        --seconds)
            [[ $# -ge 2 && "$2" =~ ^[0-9]+$ && "$2" -gt 0 ]] || { usage >&2; exit 2; }
            seconds=$2
            shift
            ;;
        --update-corpus) update=1 ;;
        -h | --help) usage; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
        *)
            if [[ ! " ${all_targets[*]} " =~ " $1 " ]]; then
                echo "fuzz.sh: unknown target '$1' (targets: ${all_targets[*]})" >&2
                exit 2
            fi
            targets+=("$1")
            ;;
    esac
    shift
done
[[ ${#targets[@]} -eq 0 ]] && targets=("${all_targets[@]}")
[[ -z "$seconds" ]] && { [[ $ci -eq 1 ]] && seconds=20 || seconds=600; }

build=${SHMC_FUZZ_BUILD_DIR:-$root/build-fuzz}
[[ "$build" == /* ]] || build="$root/$build"

# Per target: the longest input, the time one input may take, and a dictionary if any.
declare -A max_len=([glob]=1024 [envelope]=8192 [ops]=2048 [segment]=512 [warm_parse]=8192
    [l2_parse]=512)
declare -A per_input_timeout=([glob]=10 [envelope]=10 [ops]=20 [segment]=20 [warm_parse]=10
    [l2_parse]=10)

# ---- toolchain ---------------------------------------------------------------------------------
apt_install() {
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || {
            echo "fuzz.sh: not root and no sudo; install as root: apt-get install $*" >&2
            exit 2
        }
        sudo=(sudo)
    fi
    echo "fuzz.sh: installing $*"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null &&
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "$@" >/dev/null ||
        { echo "fuzz.sh: apt-get install $* failed" >&2; exit 2; }
}

links_libfuzzer() {
    local probe
    probe=$(mktemp -d) || return 1
    printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) '`
           `'{ return 0; }\n' >"$probe/p.cpp"
    clang++ -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" >/dev/null 2>&1
    local rc=$?
    rm -rf "$probe"
    return $rc
}

command -v clang++ >/dev/null 2>&1 || apt_install clang
if ! links_libfuzzer; then
    major=$(clang --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -1)
    apt_install "libclang-rt-${major}-dev"
    links_libfuzzer || { echo "fuzz.sh: clang cannot link -fsanitize=fuzzer" >&2; exit 2; }
fi
"$root/scripts/deps.sh" >/dev/null || exit 2

# ---- build -------------------------------------------------------------------------------------
log_dir="$build/fuzz-logs"
if [[ ! -f "$build/meson-private/coredata.dat" ]]; then
    if ! out=$(CC=clang CXX=clang++ meson setup "$build" -Dfuzzing=enabled \
        -Db_sanitize=address,undefined -Db_lundef=false 2>&1); then
        echo "$out" >&2
        echo "fuzz.sh: meson setup failed" >&2
        exit 2
    fi
elif ! grep -q 'fuzz/fuzz_glob' "$build/build.ninja" 2>/dev/null; then
    meson configure "$build" -Dfuzzing=enabled >/dev/null || exit 2
fi
mkdir -p "$log_dir"
if ! out=$(meson compile -C "$build" "${targets[@]/#/fuzz_}" 2>&1); then
    echo "$out" | tail -40 >&2
    echo "fuzz.sh: build failed" >&2
    exit 2
fi

# ---- run ---------------------------------------------------------------------------------------
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
# The key lines of a failure report: what broke, and the sanitizer's verdict.
report_lines() {
    grep -m4 -A1 -E 'fuzz check failed|ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|runtime error' \
        "$1" | grep -v "^--$" | head -3 | sed 's/^/    /'
}

scratch=""
trap '[[ -n "$scratch" ]] && rm -rf "$scratch"' EXIT  # an interrupted run leaves no scratch corpus

passed=0
failed=0
for t in "${targets[@]}"; do
    bin="$build/fuzz/fuzz_$t"
    art="$build/fuzz-artifacts/$t"
    log="$log_dir/$t.log"
    mkdir -p "$art"
    : >"$log"

    # Reproducers of past findings first: each must pass.
    reg="$root/fuzz/regressions/$t"
    bad=""
    if [[ -d "$reg" ]] && compgen -G "$reg/*" >/dev/null; then
        for f in "$reg"/*; do
            if ! "$bin" -runs=1 -timeout="${per_input_timeout[$t]}" "$f" >>"$log" 2>&1; then
                bad=$f
                break
            fi
        done
    fi
    if [[ -n "$bad" ]]; then
        echo "fuzz $t: FAIL (regression $bad; log $log)"
        report_lines "$log"
        failed=$((failed + 1))
        continue
    fi

    scratch=$(mktemp -d "${TMPDIR:-/tmp}/shmc-fuzz-$t.XXXXXX")
    mkdir -p "$scratch/corpus"
    [[ -d "$root/fuzz/corpus/$t" ]] && cp "$root/fuzz/corpus/$t"/* "$scratch/corpus/" 2>/dev/null
    dict=()
    [[ -f "$root/fuzz/dicts/$t.dict" ]] && dict=("-dict=$root/fuzz/dicts/$t.dict")
    start=$(date +%s)
    "$bin" "$scratch/corpus" -max_total_time="$seconds" -timeout="${per_input_timeout[$t]}" \
        -max_len="${max_len[$t]}" -rss_limit_mb=4096 -artifact_prefix="$art/" \
        -print_final_stats=1 "${dict[@]}" >>"$log" 2>&1
    rc=$?
    took=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    if [[ $rc -eq 0 ]]; then
        echo "fuzz $t: ok (${execs:-?} execs, ${cov:-?} cov)"
        echo "fuzz.sh: $t ran ${took}s" >>"$log"
        passed=$((passed + 1))
        if [[ $update -eq 1 ]]; then
            mkdir -p "$root/fuzz/corpus/$t"
            "$bin" -merge=1 "$root/fuzz/corpus/$t" "$scratch/corpus" >>"$log" 2>&1 ||
                echo "fuzz $t: corpus merge failed (log $log)" >&2
        fi
    else
        crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        echo "fuzz $t: FAIL (${crash:-exit status $rc}; log $log)"
        report_lines "$log"
        failed=$((failed + 1))
    fi
    rm -rf "$scratch"
    scratch=""
done
echo "fuzz: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
