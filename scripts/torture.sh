#!/usr/bin/env bash
# torture.sh - the SIGKILL torture test, for as long as you like: the crash suite's random-kill,
# crash-points and hot-key-race cases in a loop, each run with a fresh seed, with running totals.
#
# random-kill: 8 processes under a verified mixed load, one SIGKILLed every 0-8 ms and respawned
# (500 kills a run): kills land anywhere, inside or outside a lock, during open and close.
# crash-points: workers SIGKILL themselves at a random crash point inside a dirty (locked,
# half-written) section, ~170 times per eviction strategy, while 3 survivors run verified ops.
# hot-key-race: lock-free readers check every byte of 4 hot keys (and that no value older than
# the last finished write comes back) while writers overwrite, delete and evict them and are
# SIGKILLed at random instants and at crash points, and a checker rebuilds stripes.
# Every run checks what the crash tests check: no corrupt value, no error the contract does not
# allow, no op slower than the bound (250 ms, or $SHMC_TEST_LATENCY_MS), shmc_check clean at the
# end, no memory lost for good (refill), every dead lock holder recovered.
#
# Prints one line per run, then the totals:
#   torture: R runs in M min: K kills, N recoveries, max op X ms, F failed
# and for each failure its case, seed and the command that replays it. Logs of failed runs are
# kept (path printed). Exits 1 if any run failed, 2 on a usage or build error.
#
# Usage: scripts/torture.sh [--minutes N] [--build DIR] [--case random-kill|crash-points|hot-key-race]...
#   --minutes N   how long to keep starting runs (default 10; the last run finishes after)
#   --build DIR   meson build directory to build crash_test in (default: build); a sanitizer
#                 build works too (scripts/test.sh --sanitize makes build-asan)
#   --case C      only this case (repeatable; default both, alternating)
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

minutes=10
build=build
cases=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --minutes)
            [[ $# -ge 2 && "$2" =~ ^[0-9]+$ && "$2" -gt 0 ]] || { usage >&2; exit 2; }
            minutes=$2
            shift
            ;;
        --build)
            [[ $# -ge 2 ]] || { usage >&2; exit 2; }
            build=$2
            shift
            ;;
        --case)
            [[ $# -ge 2 && ( "$2" == random-kill || "$2" == crash-points ||
                "$2" == hot-key-race ) ]] ||
                { usage >&2; exit 2; }
            cases+=("$2")
            shift
            ;;
        -h | --help) usage; exit 0 ;;
        *) echo "torture.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
[[ ${#cases[@]} -eq 0 ]] && cases=(random-kill crash-points hot-key-race)
[[ "$build" == /* ]] || build="$root/$build"

cd "$root" || exit 2
"$root/scripts/deps.sh" >/dev/null || { echo "torture.sh: scripts/deps.sh failed" >&2; exit 2; }
if [[ ! -f "$build/meson-private/coredata.dat" ]]; then
    meson setup "$build" >/dev/null || { echo "torture.sh: meson setup $build failed" >&2; exit 2; }
fi
meson compile -C "$build" tests/crash_test >/dev/null ||
    { echo "torture.sh: building crash_test in $build failed" >&2; exit 2; }
bin="$build/tests/crash_test"
logs=$(mktemp -d "${TMPDIR:-/tmp}/shmc-torture.XXXXXX")

runs=0 kills=0 recoveries=0 failed=0
max_op=0
failures=()
start=$(date +%s)
deadline=$((start + minutes * 60))
echo "torture: ${cases[*]} for $minutes min, $bin; logs of failed runs in $logs"

# A fresh 63-bit seed per run (the tests take any uint64; this keeps it printable everywhere).
new_seed() { echo $(( $(od -An -N8 -tu8 /dev/urandom) & 0x7fffffffffffffff )); }

# max A B for decimal numbers with a fractional part.
fmax() { awk -v a="$1" -v b="$2" 'BEGIN { print (b + 0 > a + 0) ? b : a }'; }

i=0
while [[ $(date +%s) -lt $deadline ]]; do
    c=${cases[$((i % ${#cases[@]}))]}
    i=$((i + 1))
    seed=$(new_seed)
    log="$logs/run-$i-$c-$seed.log"
    t0=$(date +%s)
    SHMC_TEST_SEED=$seed timeout 600 "$bin" "$c" >"$log" 2>&1
    rc=$?
    runs=$((runs + 1))
    # Each "kills=K recoveries=R" pair is one segment's count (crash-points has one per strategy).
    k=0 r=0
    while read -r kk rr; do
        k=$((k + kk))
        r=$((r + rr))
    done < <(grep -oE 'kills=[0-9]+ recoveries=[0-9]+' "$log" | sed 's/kills=//; s/recoveries=//')
    # hot-key-race: "kills=K crash_point_deaths=D (armed A) recoveries=R" per strategy.
    while read -r kk dd rr; do
        k=$((k + kk + dd))
        r=$((r + rr))
    done < <(grep -oE 'kills=[0-9]+ crash_point_deaths=[0-9]+ \(armed [0-9]+\) recoveries=[0-9]+' \
        "$log" | sed -E 's/kills=([0-9]+) crash_point_deaths=([0-9]+) \(armed [0-9]+\) recoveries=([0-9]+)/\1 \2 \3/')
    m=0
    for v in $(grep -oE 'max_(op|read)=[0-9.]+ms' "$log" | sed -E 's/max_(op|read)=//; s/ms//'); do
        m=$(fmax "$m" "$v")
    done
    kills=$((kills + k))
    recoveries=$((recoveries + r))
    max_op=$(fmax "$max_op" "$m")
    if [[ $rc -eq 0 ]] && grep -q "^PASS crash/$c" "$log"; then
        verdict=PASS
        rm -f "$log"
    else
        verdict="FAIL (exit $rc; log $log)"
        failed=$((failed + 1))
        failures+=("$c seed=$seed: SHMC_TEST_SEED=$seed $bin $c   (log $log)")
    fi
    printf 'run %d %-12s seed=%s kills=%d recoveries=%d max_op=%sms %ds %s\n' \
        "$i" "$c" "$seed" "$k" "$r" "$m" $(($(date +%s) - t0)) "$verdict"
done

elapsed=$(($(date +%s) - start))
printf 'torture: %d runs in %d min %d s: %d kills, %d recoveries, max op %s ms, %d failed\n' \
    "$runs" $((elapsed / 60)) $((elapsed % 60)) "$kills" "$recoveries" "$max_op" "$failed"
for f in "${failures[@]}"; do echo "  failed: $f"; done
[[ $failed -eq 0 ]] && rmdir "$logs" 2>/dev/null
[[ $failed -eq 0 ]]
