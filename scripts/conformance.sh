#!/usr/bin/env bash
# Runs OpenFGA's conformance suite (shared/conformance/openfga) with a clew binary and prints
# passed/failed per folder. Usage: scripts/conformance.sh [CLEW_BIN] [SUITE_DIR]
#   */pass/              every assertion must hold
#   */expect_error/      every request must be rejected with the expected OpenFGA error code
#   */expect_write_error/ loading the tuples must be rejected
#   */multistage/        tuples from an earlier model are loaded as pre-existing graph data
set -uo pipefail
BIN="${1:-target/debug/clew}"
SUITE="${2:-../shared/conformance/openfga}"
status=0
total_pass=0
total_fail=0
declare -A kind_pass=() kind_total=()
for dir in "$SUITE"/*/*/; do
  dir="${dir%/}"
  kind="$(basename "$dir")"
  files=("$dir"/*.yaml)
  [ -e "${files[0]}" ] || continue
  case "$kind" in
    pass|expect_error) flags=() ;;
    expect_write_error) flags=(--expect-write-error) ;;
    multistage) flags=(--preexisting) ;;
    *) echo "unknown folder kind: $dir"; status=1; continue ;;
  esac
  out="$("$BIN" test --quiet "${flags[@]}" "${files[@]}" 2>&1)"
  code=$?
  summary="$(printf '%s\n' "$out" | tail -n 1)"
  printf '%-45s %4d files  %s\n' "${dir#"$SUITE"/}" "${#files[@]}" "$summary"
  if [ $code -ne 0 ]; then
    printf '%s\n' "$out" | grep -E '^FAIL' | head -n 20
    status=1
  fi
  p="$(printf '%s' "$summary" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed.*/\1/p')"
  f="$(printf '%s' "$summary" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed.*/\2/p')"
  if [ -z "$p" ] || [ -z "$f" ]; then
    echo "no summary line from $BIN for $dir"; status=1; continue
  fi
  total_pass=$((total_pass + p))
  total_fail=$((total_fail + f))
  for k in check list_objects list_users; do
    kp="$(printf '%s' "$summary" | sed -n "s/.*$k \([0-9]*\)\/\([0-9]*\).*/\1/p")"
    kt="$(printf '%s' "$summary" | sed -n "s/.*$k \([0-9]*\)\/\([0-9]*\).*/\2/p")"
    kind_pass[$k]=$(( ${kind_pass[$k]:-0} + ${kp:-0} ))
    kind_total[$k]=$(( ${kind_total[$k]:-0} + ${kt:-0} ))
  done
done
echo "conformance: $total_pass passed, $total_fail failed"
for k in check list_objects list_users; do
  echo "  $k: ${kind_pass[$k]:-0}/${kind_total[$k]:-0} passed"
done
exit $status
