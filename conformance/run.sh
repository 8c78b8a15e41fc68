#!/usr/bin/env bash
# WebSocket conformance: the Autobahn cases (kosoku, from PyPI) against examples/echo.rs.
#
#   bash conformance/run.sh [all|full|production]     (default: all)
#
#   full        every case but compression (12.*, 13.*), echo with its raised limits;
#               fails if any case is not OK / NON-STRICT / INFORMATIONAL.
#   production  echo with `--production` (64 KiB limit), a subset (9.1.*, 9.2.*, some
#               9.3-9.6, a few ordinary cases); fails unless every over-limit case ends with
#               close code 1009 and every other case passes.
#
# Builds the example (release), creates .venv at the repo root and installs kosoku if
# missing, serves on a free loopback port, stops the endpoint afterwards. Reports:
# conformance/reports/<run>/ (index.html, summary.json). Exit 0 only if every run passed.
#
# Environment: KOSOKU_VERSION (default 0.1.0), CONFORMANCE_TIMEOUT (per run, s, default 900).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WHAT=${1:-all}
case $WHAT in
  all) RUNS=(full production) ;;
  full | production) RUNS=("$WHAT") ;;
  -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
  *) echo "usage: $0 [all|full|production]" >&2; exit 2 ;;
esac
KOSOKU_VERSION=${KOSOKU_VERSION:-0.1.0}
RUN_TIMEOUT=${CONFORMANCE_TIMEOUT:-900}
REPORTS=$ROOT/conformance/reports

# ----- build -----
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck disable=SC1091
  source "$HOME/.cargo/env"
fi
echo "== building examples/echo (release)"
cargo build --release --example echo
ECHO_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/echo
[ -x "$ECHO_BIN" ] || { echo "conformance: $ECHO_BIN not built" >&2; exit 2; }

# ----- kosoku -----
VENV=$ROOT/.venv
PY=$VENV/bin/python
if [ ! -x "$PY" ]; then
  echo "== creating $VENV"
  python3 -m venv "$VENV" || {
    echo "conformance: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2
    exit 2
  }
fi
if ! "$PY" -c 'import kosoku' >/dev/null 2>&1; then
  echo "== installing kosoku==$KOSOKU_VERSION"
  "$PY" -m pip install --quiet --disable-pip-version-check "kosoku==$KOSOKU_VERSION"
fi

# ----- the endpoint -----
ECHO_PID=
stop_echo() {
  if [ -n "$ECHO_PID" ] && kill -0 "$ECHO_PID" 2>/dev/null; then
    kill "$ECHO_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$ECHO_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$ECHO_PID" 2>/dev/null || true
    wait "$ECHO_PID" 2>/dev/null || true
  fi
  ECHO_PID=
}
trap stop_echo EXIT
trap 'stop_echo; exit 130' INT TERM

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# start_echo LOG [ARGS...]: serves on a free loopback port, sets PORT; retries if the port
# was taken in between.
start_echo() {
  local log=$1; shift
  for _ in 1 2 3; do
    PORT=$(free_port)
    PORT=$PORT "$ECHO_BIN" "$@" >"$log" 2>&1 &
    ECHO_PID=$!
    for _ in $(seq 100); do
      if grep -q "echo listening" "$log" 2>/dev/null; then return 0; fi
      kill -0 "$ECHO_PID" 2>/dev/null || break
      sleep 0.1
    done
    stop_echo
  done
  echo "conformance: the echo endpoint did not start:" >&2
  cat "$log" >&2
  return 1
}

# ----- the runs -----
STATUS=0
SUMMARY=()
for run in "${RUNS[@]}"; do
  out=$REPORTS/$run
  rm -rf "$out"
  mkdir -p "$out"
  args=()
  [ "$run" = production ] && args=(--production)
  start_echo "$out/echo.log" "${args[@]}"
  echo "== $run: echo ${args[*]} on 127.0.0.1:$PORT"
  started=$(date +%s)
  rc=0
  timeout -k 10 "$RUN_TIMEOUT" "$PY" "$ROOT/conformance/driver.py" \
    "ws://127.0.0.1:$PORT/ws" --mode "$run" --outdir "$out" \
    --timeout "$((RUN_TIMEOUT - 15))" || rc=$?
  if ! kill -0 "$ECHO_PID" 2>/dev/null; then
    echo "conformance: the echo endpoint died during the $run run:" >&2
    tail -20 "$out/echo.log" >&2
    [ "$rc" -ne 0 ] || rc=1
  fi
  stop_echo
  SUMMARY+=("$run: exit $rc in $(($(date +%s) - started)) s")
  [ "$rc" -eq 0 ] || STATUS=1
done

echo "== conformance summary"
printf '   %s\n' "${SUMMARY[@]}"
# Last line: the plain closing line CI reads ('N passed, N failed' over all runs).
"$PY" - "${RUNS[@]/#/$REPORTS/}" <<'PY' || STATUS=1
import json, sys
passed = failed = 0
for run in sys.argv[1:]:
    try:
        s = json.load(open(run + "/summary.json"))
    except OSError:
        failed += 1  # the run produced no summary: count it as a failure
        continue
    failed += len(s["problems"])
    passed += s["cases"] - len(s["problems"])
print(f"conformance: {passed} passed, {failed} failed")
PY
exit "$STATUS"
