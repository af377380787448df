#!/usr/bin/env bash
# The bench workload served from a plain-vocabulary graph read through bindings, against the same
# workload as Clew tuples: load time, then every answer compared with answers_ref/, then the
# latency of SPARQL updates that change bound triples and axioms.
#
# Usage: scripts/bound_load_test.sh WORKLOAD_DIR [PORT]
#   (release build of clew in $CARGO_TARGET_DIR/release/clew; builds it if missing)
set -euo pipefail
W="${1:?workload dir}"
PORT="${2:-8093}"
T="${CARGO_TARGET_DIR:-target}"
BIN="$T/release/clew"
[ -x "$BIN" ] || cargo build --release --no-default-features --bin clew
OUT="$(mktemp -d)"
python3 scripts/bound_workload.py "$W" "$OUT"
URL="http://127.0.0.1:$PORT"

start() {
  "$BIN" serve --memory --listen "127.0.0.1:$PORT" --max-body-bytes 200000000 --request-timeout-ms 600000 \
    >"$OUT/stdout" 2>"$OUT/stderr" &
  PID=$!
  for _ in $(seq 1 100); do grep -q "listening" "$OUT/stdout" 2>/dev/null && break; sleep 0.1; done
}
stop() { kill -TERM "$PID"; wait "$PID" || true; }
post() { curl -sf -o /dev/null -w '%{time_total}' "$URL$1" -H "content-type: $2" --data-binary "@$3"; }
rss() { awk '/VmRSS/ {print $2 / 1024 " MiB"}' "/proc/$PID/status"; }

echo "== Clew tuples"
start
curl -sf "$URL/v1/model" -H 'content-type: application/json' \
  -d "$(python3 -c 'import json,sys; print(json.dumps({"dsl": open(sys.argv[1]).read()}))' "$W/model.fga")" >/dev/null
echo "import of tuples.jsonl: $(post '/v1/import' application/jsonl "$W/tuples.jsonl") s, RSS $(rss)"
python3 scripts/load_http.py verify --url "$URL" --workload "$W" --checks 2000 | tail -1
stop

echo "== the same workload as a plain-vocabulary graph, read through bindings"
start
curl -sf "$URL/v1/model" -H 'content-type: application/json' \
  -d "$(python3 -c 'import json,sys; print(json.dumps({"dsl": open(sys.argv[1]).read()}))' "$W/model.fga")" >/dev/null
echo "import of bindings.ttl: $(post '/v1/import?graph=https://bench.example.org/graph/bindings' text/turtle "$OUT/bindings.ttl") s"
echo "import of graph.nt: $(post '/v1/import?graph=https://bench.example.org/graph/data' application/n-triples "$OUT/graph.nt") s, RSS $(rss)"
echo "import of rest.jsonl (wildcards): $(post '/v1/import' application/jsonl "$OUT/rest.jsonl") s"
python3 scripts/load_http.py verify --url "$URL" --workload "$W" --checks 2000 | tail -1
upd() { curl -sf -o /dev/null -w '%{time_total}' "$URL/sparql" --data-urlencode "update=$1"; }
V="https://bench.example.org/vocab#"
B="https://bench.example.org/"
for i in 1 2 3 4 5; do
  a=$(upd "INSERT DATA { GRAPH <${B}graph/data> { <${B}group/g1> <${V}group_member> <${B}user/new$i> } }")
  d=$(upd "DELETE DATA { GRAPH <${B}graph/data> { <${B}group/g1> <${V}group_member> <${B}user/new$i> } }")
  echo "bound triple insert ${a}s, delete ${d}s"
done
# An axiom that makes a new property count as document#viewer (no triple of it yet), then one
# that re-reads every document#owner triple (100,051) as a sub-property of document#viewer.
echo "axiom on an unused property: $(upd "INSERT DATA { <${B}vocab#shared> <http://www.w3.org/2000/01/rdf-schema#subPropertyOf> <${V}document_viewer> }") s"
echo "axiom re-reading 100k triples: $(upd "INSERT DATA { <${V}document_owner> <http://www.w3.org/2000/01/rdf-schema#subPropertyOf> <${V}document_viewer> }") s"
echo "and removing it: $(upd "DELETE DATA { <${V}document_owner> <http://www.w3.org/2000/01/rdf-schema#subPropertyOf> <${V}document_viewer> }") s"
python3 scripts/load_http.py verify --url "$URL" --workload "$W" --checks 2000 | tail -1
stop
rm -rf "$OUT"
