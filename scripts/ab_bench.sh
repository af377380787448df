#!/usr/bin/env bash
# A/B of two clew-bench binaries on one workload, alternated N times in one session (this VM's
# speed drifts by up to 2x within minutes, so only alternated runs compare). Prints every p50 of
# both sides, their medians and minimums, and the ratio of the medians.
#
#   scripts/ab_bench.sh N PHASES PATTERN BIN_A... -- BIN_B...
#
# PHASES: clew-bench --phases (e.g. check, filter, batch); PATTERN: the log line whose "p50 X µs"
# is compared (e.g. "check warm", "filter warm"). Each side is a command, so an environment can be
# given with env: `scripts/ab_bench.sh 8 check "check warm" old/clew-bench -- env X=1 new/clew-bench`.
# The workload is $CLEW_BENCH_WORK/default-1 (default ../bench-work/default-1).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
W="${CLEW_BENCH_WORK:-$REPO/../bench-work}/default-1"
N=$1 PH=$2 PAT=$3
shift 3
A=() B=() side=A
for a in "$@"; do
  if [ "$a" = "--" ]; then side=B; continue; fi
  if [ $side = A ]; then A+=("$a"); else B+=("$a"); fi
done
[ ${#A[@]} -gt 0 ] && [ ${#B[@]} -gt 0 ] || { sed -n '2,11p' "$0"; exit 2; }
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
p50() { "$@" run --workload "$W" --phases "$PH" --no-index-memory --out "$OUT/x" 2>&1 \
  | grep -E "$PAT" | sed -E 's/.*p50 ([0-9.]+) ?µs.*/\1/' | head -1; }
for _ in $(seq 1 "$N"); do
  echo "A $(p50 "${A[@]}")"
  echo "B $(p50 "${B[@]}")"
done | python3 -c '
import sys, statistics as st
d = {"A": [], "B": []}
for line in sys.stdin:
    k, v = line.split()
    d[k].append(float(v))
for k in "AB":
    print(k, "median", st.median(d[k]), "min", min(d[k]), d[k])
print("B/A median", round(st.median(d["B"]) / st.median(d["A"]), 3))
'
