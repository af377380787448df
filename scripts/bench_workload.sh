#!/usr/bin/env bash
# One bench workload on Clew (and, with --peers, on SpiceDB and Oxigraph-SPARQL in the same session), then a
# side-by-side table with ratios.
#
#   scripts/bench_workload.sh [SHAPE] [SCALE] [--peers | --peers-only] [--max-depth N] [--spicedb-budget S]
#                             [--spicedb-max-checks N] [--oxigraph-budget S] [--no-spicedb] [--no-oxigraph]
#                             [--run-dir DIR] [-- CLEW-BENCH ARGS...]
#
# SHAPE: default | deep | wide | hotuser (default: default); SCALE: e.g. 0.01, 1, 10 (default: 1).
# The workload is $CLEW_BENCH_WORK/SHAPE-SCALE (default ../bench-work next to the repository); it is generated
# with ../shared/bench/gen_workload.py when missing. Each run gets its own directory (default
# $CARGO_TARGET_DIR/bench-runs/SHAPE-SCALE-TIMESTAMP) holding symlinks to the workload's inputs, so the answers
# and results of every engine land there and never in the shared workload:
#   answers_clew/ (results_clew.json, timings.json, answers), results_spicedb.json + answers/,
#   results_oxigraph.json + answers_oxigraph/, comparison.md.
# --peers-only reruns the peers in an existing --run-dir (Clew's answers stay). --spicedb-max-checks N passes
# --max-checks N to run_spicedb.py: its bulk phase sends the answered checks 100 per call, and on a loaded
# machine a 100-check call of the uncached embedded SpiceDB can exceed the library's RPC deadline, which
# aborts run_spicedb.py without results.
# Heavy steps run under `nice -n $NICE` (default 10): the machine is shared with other builds.
# Exit status: clew-bench's (non-zero when an answer disagrees with answers_ref/ or a write was not visible).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="${CLEW_SHARED_BENCH:-$REPO/../shared/bench}"
WORK_ROOT="${CLEW_BENCH_WORK:-$REPO/../bench-work}"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
NICE="${NICE:-10}"

SHAPE="" SCALE="" PEERS=0 CLEW=1 SPICEDB=1 OXIGRAPH=1 MAX_DEPTH="" SP_BUDGET=600 SP_MAX_CHECKS=0 OX_BUDGET=600
RUN="" EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --peers) PEERS=1 ;;
    --peers-only) PEERS=1; CLEW=0 ;;
    --no-spicedb) SPICEDB=0 ;;
    --no-oxigraph) OXIGRAPH=0 ;;
    --spicedb-max-checks) SP_MAX_CHECKS="$2"; shift ;;
    --max-depth) MAX_DEPTH="$2"; shift ;;
    --spicedb-budget) SP_BUDGET="$2"; shift ;;
    --oxigraph-budget) OX_BUDGET="$2"; shift ;;
    --run-dir) RUN="$2"; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) if [ -z "$SHAPE" ]; then SHAPE="$1"; elif [ -z "$SCALE" ]; then SCALE="$1"; else echo "extra argument $1" >&2; exit 2; fi ;;
  esac
  shift
done
SHAPE="${SHAPE:-default}"
SCALE="${SCALE:-1}"
if [ -z "$MAX_DEPTH" ]; then
  # The deep shape's longest chains need more than OpenFGA's 25 (SpiceDB's dispatch depth is 50).
  if [ "$SHAPE" = deep ]; then MAX_DEPTH=50; else MAX_DEPTH=25; fi
fi

W="$WORK_ROOT/$SHAPE-$SCALE"
if [ ! -f "$W/meta.json" ]; then
  [ -f "$SHARED/gen_workload.py" ] || { echo "no workload $W and no $SHARED/gen_workload.py to make one" >&2; exit 2; }
  echo "== generating $W"
  nice -n "$NICE" python3 "$SHARED/gen_workload.py" --out "$W" --scale "$SCALE" --shape "$SHAPE"
fi

echo "== building clew-bench (release, --no-default-features)"
(cd "$REPO" && CARGO_TARGET_DIR="$TARGET" nice -n "$NICE" cargo build --release --no-default-features --bin clew-bench)

RUN="${RUN:-$TARGET/bench-runs/$SHAPE-$SCALE-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$RUN"
for f in model.fga schema.zed names.json meta.json tuples.jsonl checks.jsonl lookups.jsonl filters.jsonl \
         subjects.jsonl answers_ref; do
  [ -e "$W/$f" ] && ln -sfn "$(cd "$(dirname "$W/$f")" && pwd)/$(basename "$f")" "$RUN/$f"
done
{
  echo "machine: $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')," \
       "$(free -g | awk '/Mem:/{print $2}') GiB"
  echo "rustc: $(rustc -V)"
  echo "workload: $W (max depth $MAX_DEPTH)"
  echo "started: $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$RUN/session.txt"

la() { echo "$1: $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RUN/session.txt"; }
status=0
if [ "$CLEW" = 1 ]; then
  echo "== clew-bench"
  la "clew-bench start"
  nice -n "$NICE" "$TARGET/release/clew-bench" run --workload "$RUN" --out "$RUN/answers_clew" \
    --max-depth "$MAX_DEPTH" "${EXTRA[@]}" || status=$?
  la "clew-bench end"
fi

if [ "$PEERS" = 1 ]; then
  [ -f "$SHARED/run_spicedb.py" ] || { echo "no $SHARED/run_spicedb.py" >&2; exit 2; }
  if [ "$SPICEDB" = 1 ]; then
    echo "== SpiceDB (budget ${SP_BUDGET}s, max checks ${SP_MAX_CHECKS})"
    la "spicedb start (budget ${SP_BUDGET}s, max checks ${SP_MAX_CHECKS})"
    nice -n "$NICE" python3 "$SHARED/run_spicedb.py" --workload "$RUN" --budget-s "$SP_BUDGET" \
      --max-checks "$SP_MAX_CHECKS" --results "$RUN/results_spicedb.json" 2>&1 | tee "$RUN/spicedb.log" || true
    [ -f "$RUN/results_spicedb.json" ] || la "spicedb FAILED (no results_spicedb.json; see spicedb.log)"
    la "spicedb end"
  fi
  if [ "$OXIGRAPH" = 1 ]; then
    echo "== Oxigraph-SPARQL (budget ${OX_BUDGET}s)"
    la "oxigraph start (budget ${OX_BUDGET}s)"
    nice -n "$NICE" python3 "$SHARED/run_oxigraph_sparql.py" --workload "$RUN" --budget-s "$OX_BUDGET" \
      --results "$RUN/results_oxigraph.json" 2>&1 | tee "$RUN/oxigraph.log" || true
    la "oxigraph end"
  fi
fi
echo "finished: $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RUN/session.txt"

echo "== comparison ($RUN/comparison.md)"
python3 "$REPO/scripts/bench_compare.py" "$RUN" --json "$RUN/comparison.json" | tee "$RUN/comparison.md"
exit "$status"
