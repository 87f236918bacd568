#!/bin/bash
# ab.sh - this tree's engine against an earlier commit's, side by side: get and set speed.
#
#   bench/ab.sh [--rounds N] [--build DIR] REV [bench_engine options...]
#
# Builds REV's libshmcache (release) in a temporary git worktree, then runs this tree's
# bench_engine (shmcache backend, 1 process unless the options say otherwise) N times (default
# 8) with each library in turn, alternating, so that both see the same state of a noisy host.
# bench_engine reaches the library only through the C ABI, which both builds have, and
# LD_LIBRARY_PATH outranks its RUNPATH, so one binary drives both. Prints a Markdown table: per
# library and operation, the median and the best of the rounds' throughput and p50, and the
# ratios this tree / REV (throughput: above 1 is faster; p50: below 1 is faster).
#
# Example (issue 15's "get/set latency no worse than before", on a hot set and on a large one):
#   bench/ab.sh 4dde6fd --keys 1000
#   bench/ab.sh 4dde6fd --keys 100000
# Run nothing else CPU-heavy meanwhile.
set -euo pipefail

rounds=8
build=build-rel
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; shift 2 ;;
        --build) build=$2; shift 2 ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || { sed -n '2,18p' "$0" >&2; exit 2; }
rev=$1; shift

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ -d "$build" ] || meson setup "$build" --buildtype=release >/dev/null
meson compile -C "$build" bench_engine lib/shmcache >/dev/null

tmp=$(mktemp -d)
cleanup() {
    git -C "$root" worktree remove --force "$tmp/old" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
git -C "$root" worktree add --detach "$tmp/old" "$rev" >/dev/null 2>&1 ||
    { echo "ab.sh: no such commit: $rev" >&2; exit 2; }
echo "ab.sh: building $rev's library ..." >&2
(cd "$tmp/old" && meson setup b --buildtype=release >/dev/null &&
    meson compile -C b lib/shmcache >/dev/null) ||
    { echo "ab.sh: $rev's library did not build" >&2; exit 1; }

new_lib="$root/$build/lib"
old_lib="$tmp/old/b/lib"
for i in $(seq 1 "$rounds"); do
    for side in new old; do
        lib=$new_lib
        [ $side = old ] && lib=$old_lib
        echo "ab.sh: round $i of $rounds, $side" >&2
        LD_LIBRARY_PATH=$lib "$build/bench/bench_engine" --backends shmcache --procs 1 \
            "$@" --json-file "$tmp/$side.$i.json" >/dev/null
    done
done

head=$(git -C "$root" rev-parse --short HEAD)
[ -n "$(git -C "$root" status --porcelain --untracked-files=no)" ] &&
    head="$head, with uncommitted changes"
/usr/bin/python3 - "$tmp" "$rounds" "$rev" "$head" "$*" <<'PY'
import json, statistics, sys
tmp, rounds, rev, head, args = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
rows = {}  # (side, processes, op) -> list of (ops_per_s, p50_ns)
for side in ("new", "old"):
    for i in range(1, rounds + 1):
        with open(f"{tmp}/{side}.{i}.json") as f:
            for r in json.load(f)["results"]:
                if r.get("ok"):
                    rows.setdefault((side, r["processes"], r["op"]), []).append(
                        (r["ops_per_s"] / 1e6, r["p50_ns"]))
print(f"`bench_engine {args}` (shmcache backend), {rounds} alternating rounds: this tree "
      f"({head}) against {rev}\n")
print("| library | processes | op | Mops/s median | Mops/s best | p50 ns median | p50 ns best |")
print("|---|---|---|---|---|---|---|")
keys = sorted({(p, op) for (_, p, op) in rows})
for side, name in (("new", f"this tree ({head})"), ("old", rev)):
    for p, op in keys:
        v = rows.get((side, p, op), [])
        if not v:
            continue
        t = [x[0] for x in v]
        l = [x[1] for x in v]
        print(f"| {name} | {p} | {op} | {statistics.median(t):.2f} | {max(t):.2f} | "
              f"{statistics.median(l):.0f} | {min(l):.0f} |")
print()
for p, op in keys:
    n, o = rows.get(("new", p, op)), rows.get(("old", p, op))
    if not n or not o:
        continue
    tm = statistics.median(x[0] for x in n) / statistics.median(x[0] for x in o)
    tb = max(x[0] for x in n) / max(x[0] for x in o)
    print(f"- {op}, {p} process(es): throughput this tree / {rev}: {tm:.3f}x median, "
          f"{tb:.3f}x best; p50 {statistics.median(x[1] for x in n):.0f} against "
          f"{statistics.median(x[1] for x in o):.0f} ns (medians)")
PY
