#!/usr/bin/env bash
# The HTTP server under load (issue 4): `clew serve --memory` on loopback, driven by wrk at concurrency 64 with
# the bench workload's own requests, for check, batch check (100 per call), filter (1,000 candidates) and lookup.
#
#   scripts/load_test.sh [--scale 1] [--shape default] [--port 8099] [--duration 20s] [--threads 2] [--conns 64]
#                        [--warmup 3s] [--timeout 30s] [--endpoints "check batch_check filter lookup"] [--bin PATH] [--out DIR]
#
# Steps: installs wrk (Debian) if missing; generates the workload with ../shared/bench/gen_workload.py when it is
# missing ($CLEW_BENCH_WORK/SHAPE-SCALE, default ../bench-work); builds the in-memory release binary when --bin is
# not given and $CARGO_TARGET_DIR/release/clew is missing (`cargo build --release --no-default-features --bin
# clew`); starts the server; loads the model and the tuples over HTTP (scripts/load_http.py load); writes the
# request bodies (load_http.py bodies); verifies every answer against answers_ref/ (load_http.py verify: all 20,000
# checks in batches and one by one, every filter and lookup); runs wrk for each endpoint (a short warm-up, then the
# measured run); verifies again (the batches, 1,000 single checks, filters, lookups); stops the server; prints the
# table. wrk's --timeout (default 30s here; wrk's own is 2s) only bounds a reply; a reply slower than it counts as a
# socket error. Everything lands in --out (default $CARGO_TARGET_DIR/load-runs/SHAPE-SCALE-TIMESTAMP): server.log,
# load.json, verify_{before,after}.json, wrk_ENDPOINT.txt, results.json, table.md.
#
# wrk and the server share the machine's cores: nothing is pinned. The exit status is non-zero when an answer
# disagrees with answers_ref/, or wrk saw a non-2xx reply or a socket error.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="${CLEW_SHARED_BENCH:-$REPO/../shared/bench}"
WORK_ROOT="${CLEW_BENCH_WORK:-$REPO/../bench-work}"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"

SCALE=1 SHAPE=default PORT=8099 DURATION=20s THREADS=2 CONNS=64 WARMUP=3s TIMEOUT=30s BIN="" OUT=""
ENDPOINTS="check batch_check filter lookup"
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) SCALE="$2"; shift ;;
    --shape) SHAPE="$2"; shift ;;
    --port) PORT="$2"; shift ;;
    --duration) DURATION="$2"; shift ;;
    --threads) THREADS="$2"; shift ;;
    --conns) CONNS="$2"; shift ;;
    --warmup) WARMUP="$2"; shift ;;
    --timeout) TIMEOUT="$2"; shift ;;
    --endpoints) ENDPOINTS="$2"; shift ;;
    --bin) BIN="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

if ! command -v wrk >/dev/null; then
  echo "== installing wrk"
  apt-get install -y wrk >/dev/null || { apt-get update -qq && apt-get install -y wrk >/dev/null; }
fi

W="$WORK_ROOT/$SHAPE-$SCALE"
if [ ! -f "$W/meta.json" ]; then
  echo "== generating $W"
  python3 "$SHARED/gen_workload.py" --out "$W" --scale "$SCALE" --shape "$SHAPE"
fi

if [ -z "$BIN" ]; then
  BIN="$TARGET/release/clew"
  if [ ! -x "$BIN" ]; then
    echo "== building $BIN (in-memory store only)"
    (cd "$REPO" && CARGO_TARGET_DIR="$TARGET" cargo build --release --no-default-features --bin clew)
  fi
fi

OUT="${OUT:-$TARGET/load-runs/$SHAPE-$SCALE-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
URL="http://127.0.0.1:$PORT"
PY="python3 $REPO/scripts/load_http.py"

if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  echo "port $PORT is already in use" >&2; exit 2
fi
echo "== starting $BIN serve --memory --listen 127.0.0.1:$PORT (log: $OUT/server.log)"
"$BIN" serve --memory --listen "127.0.0.1:$PORT" >"$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  kill -0 "$SERVER" 2>/dev/null || { cat "$OUT/server.log" >&2; exit 1; }
  sleep 0.1
done

echo "== loading $W over HTTP"
$PY load --url "$URL" --workload "$W" | tee "$OUT/load.json"
$PY bodies --workload "$W" --out "$OUT/bodies" >/dev/null
echo "== verifying every answer against answers_ref/ (before the load)"
STATUS=0
$PY verify --url "$URL" --workload "$W" --checks 20000 | tee "$OUT/verify_before.json" || STATUS=1

cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
HZ=$(getconf CLK_TCK)
: >"$OUT/runs.jsonl"
for e in $ENDPOINTS; do
  script="$REPO/scripts/load/$e.lua"
  bodies="$OUT/bodies/$e.jsonl"
  echo "== $e: warm-up $WARMUP, then wrk -t$THREADS -c$CONNS -d$DURATION --latency"
  wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" --timeout "$TIMEOUT" -s "$script" "$URL" -- "$bodies" >/dev/null
  up=$(uptime)
  c0=$(cpu_ticks)
  TIMEFORMAT='%U %S'
  { time wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --timeout "$TIMEOUT" --latency -s "$script" "$URL" -- "$bodies" \
      >"$OUT/wrk_$e.txt"; } 2>"$OUT/wrk_${e}_cpu.txt"
  c1=$(cpu_ticks)
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER/status")
  read -r wu ws <"$OUT/wrk_${e}_cpu.txt"
  line=$(grep '^LOADJSON ' "$OUT/wrk_$e.txt" | sed 's/^LOADJSON //')
  python3 - "$line" "$up" "$(( c1 - c0 ))" "$HZ" "$wu" "$ws" "$rss" >>"$OUT/runs.jsonl" <<'EOF'
import json, sys
r = json.loads(sys.argv[1])
r["name"] = r["endpoint"]
r["uptime"] = sys.argv[2].strip()
r["server_cpu_s"] = int(sys.argv[3]) / int(sys.argv[4])
r["wrk_cpu_s"] = float(sys.argv[5]) + float(sys.argv[6])
r["server_rss_kib"] = int(sys.argv[7])
print(json.dumps(r))
EOF
  grep -E 'Requests/sec|Non-2xx|Socket errors' "$OUT/wrk_$e.txt" || true
done

echo "== verifying every answer against answers_ref/ (after the load)"
$PY verify --url "$URL" --workload "$W" | tee "$OUT/verify_after.json" || STATUS=1

python3 - "$OUT" "$THREADS" "$CONNS" "$DURATION" <<'EOF' | tee "$OUT/table.md"
import json, sys
out, threads, conns, duration = sys.argv[1:]
runs = [json.loads(l) for l in open(f"{out}/runs.jsonl")]
targets = {"/v1/check": ("≥ 30,000 checks/s, p99 ≤ 5 ms", lambda r: r["items_per_s"] >= 30000 and r["lat_p99_us"] <= 5000),
           "/v1/batch-check": ("≥ 500,000 checks/s", lambda r: r["items_per_s"] >= 500000)}
unit = {"/v1/check": "checks/s", "/v1/batch-check": "checks/s", "/v1/filter": "candidates/s", "/v1/lookup": "lookups/s"}
ms = lambda us: f"{us / 1000:.2f}"
print(f"wrk -t{threads} -c{conns} -d{duration} --latency (wrk and the server share the cores)\n")
print("| endpoint | items/request | requests/s | decisions/s | p50 ms | p90 ms | p99 ms | max ms | non-2xx / socket errors | server CPU | wrk CPU | target | verdict |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---|")
for r in runs:
    t, ok = targets.get(r["endpoint"], ("", None))
    verdict = "" if ok is None else ("met" if ok(r) else "**missed**")
    errs = r["connect_err"] + r["read_err"] + r["write_err"] + r["timeouts"]
    cores = lambda s: f"{s / r['duration_s']:.2f} cores"
    print(f"| {r['endpoint']} | {r['items']:,} | {r['rps']:,.0f} | {r['items_per_s']:,.0f} {unit[r['endpoint']]} | "
          f"{ms(r['lat_p50_us'])} | {ms(r['lat_p90_us'])} | {ms(r['lat_p99_us'])} | {ms(r['lat_max_us'])} | "
          f"{r['non2xx']} / {errs} | {cores(r['server_cpu_s'])} | {cores(r['wrk_cpu_s'])} | {t} | {verdict} |")
print()
for r in runs:
    print(f"- {r['endpoint']}: {r['uptime']}; server RSS {r['server_rss_kib'] / 1024:.0f} MiB")
v = [json.load(open(f"{out}/verify_{k}.json")) for k in ("before", "after")]
for k, x in zip(("before", "after"), v):
    print(f"- verify {k}: {x['batch_checks']} checks in batches, {x['checks']} single checks, {x['filters']} filters, "
          f"{x['lookups']} lookups ({x['lookup_objects']:,} objects); disagreements {x['disagreements']}; "
          f"answered from cached subject bitmaps: {x['cache_hits']}")
json.dump({"runs": runs, "verify": v, "load": json.load(open(f"{out}/load.json"))}, open(f"{out}/results.json", "w"), indent=1)
EOF
for r in $(python3 -c "import json;[print(json.loads(l)['non2xx']+json.loads(l)['connect_err']+json.loads(l)['read_err']+json.loads(l)['write_err']+json.loads(l)['timeouts']) for l in open('$OUT/runs.jsonl')]"); do
  [ "$r" = 0 ] || STATUS=1
done
echo "results: $OUT"
exit "$STATUS"
