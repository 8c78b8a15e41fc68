#!/usr/bin/env bash
# Benchmark driver (used by `make bench`): builds the release server and benches/loadgen.rs,
# runs each benchmark row BENCH_RUNS times against fresh servers, prints a markdown table of
# medians and writes every raw JSON summary line to target/bench/results.jsonl.
#
#   bash benches/bench.sh [row...]
#     rows: rss idle rooms idle19k fanout burst slow logs size churn
#     default: every row but churn (and size, with BENCH_QUICK=1)
#   BENCH_QUICK=1        smoke run: hundreds of connections, seconds per scenario
#   BENCH_RUNS=N         runs per row (default 3, or 1 with BENCH_QUICK=1)
#   BENCH_SERVER=PATH    benchmark another server binary (it must honour PORT and listen on
#                        127.0.0.1); skips building tandem and the size row
#
# The server runs on CPU 0 and the generator on CPU 1 (when taskset and 2 CPUs exist).
# Everything stays on loopback; every loadgen run is bounded by its own --deadline.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=target/bench
RESULTS=$OUT/results.jsonl
mkdir -p "$OUT"
: >"$RESULTS"
: >"$OUT/loadgen.log"

QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then
    RUNS=${BENCH_RUNS:-1}
    IDLE=500 IDLE_BIG=950 IDLE_ROOMS=5 FAN_ROOMS=10 FAN_DUR=2 BURST=200
    SLOW=200 SLOW_ROOMS=5 SLOW_DUR=5 LOGS=200 FLOOR_CONNS=100 FLOOR_COUNT=20000
    CHURN_RATE=20 CHURN_DUR=3
    DEFAULT_ROWS="rss idle rooms idle19k fanout burst slow logs"
else
    RUNS=${BENCH_RUNS:-3}
    IDLE=10000 IDLE_BIG=19000 IDLE_ROOMS=50 FAN_ROOMS=100 FAN_DUR=10 BURST=1000
    SLOW=2000 SLOW_ROOMS=50 SLOW_DUR=30 LOGS=1000 FLOOR_CONNS=1000 FLOOR_COUNT=200000
    CHURN_RATE=50 CHURN_DUR=10
    DEFAULT_ROWS="rss idle rooms idle19k fanout burst slow logs size"
fi
ROWS=${*:-$DEFAULT_ROWS}

say() { echo "bench: $*" >&2; }
die() {
    say "$*"
    exit 1
}

# --- environment -------------------------------------------------------------------------

# 19,000 clients need 19,000 descriptors in each process; take what the hard limit allows.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
say "open files limit: $(ulimit -n)"

PIN_SERVER=() PIN_GEN=() READER_CPU=()
if command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
    PIN_SERVER=(taskset -c 0) PIN_GEN=(taskset -c 1) READER_CPU=(--reader-cpu 1)
fi

if [[ -n ${BENCH_SERVER:-} ]]; then
    SERVER=$BENCH_SERVER
else
    say "building the server (cargo build --release)"
    cargo build --release
    SERVER=target/release/tandem
fi
[[ -x $SERVER ]] || die "no server binary at $SERVER"

say "building the load generator (cargo bench --bench loadgen --no-run)"
LOADGEN=$(cargo bench --bench loadgen --no-run --message-format=json | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "loadgen" and m.get("executable"):
        print(m["executable"])
' | tail -n1)
if [[ -z $LOADGEN ]]; then
    LOADGEN=$(ls -t target/release/deps/loadgen-* 2>/dev/null | grep -v '\.d$' | head -n1 || true)
fi
[[ -x $LOADGEN ]] || die "cannot find the loadgen executable"

# --- server lifecycle ----------------------------------------------------------------------

SERVER_PID="" SERVER_LOG="" URL="" SERVER_SEQ=0

# A free port below the ephemeral range (32768+): client sockets of earlier runs linger there
# in TIME_WAIT and would collide with a server binding 0.0.0.0.
free_port() {
    python3 -c '
import random, socket
for _ in range(200):
    port = random.randrange(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("0.0.0.0", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
'
}

# start_server [LOG_LEVEL]: a fresh server on a free port; sets SERVER_PID, SERVER_LOG, URL.
start_server() {
    local level=${1:-warn} attempt
    for attempt in 1 2 3 4 5; do
        try_start_server "$level" && return 0
        grep -q 'in use' "$SERVER_LOG" || die "server exited at startup; see $SERVER_LOG"
        say "port taken, retrying ($attempt)"
    done
    die "server could not find a free port; see $SERVER_LOG"
}

# try_start_server LEVEL: fails if the server exits at startup.
try_start_server() {
    local port i
    port=$(free_port)
    [[ -n $port ]] || die "no free port found"
    SERVER_SEQ=$((SERVER_SEQ + 1))
    SERVER_LOG=$OUT/server-$SERVER_SEQ.log
    env PORT=$port LOG_LEVEL=$1 MAX_CONNECTIONS=20000 ${BENCH_SERVER_ENV:-} "${PIN_SERVER[@]}" "$SERVER" \
        >/dev/null 2>"$SERVER_LOG" &
    SERVER_PID=$!
    URL=ws://127.0.0.1:$port/ws
    # Ready when it logs its address (`listening addr=...`, info level); otherwise, once the
    # port accepts a connection (probed after 0.3 s: a probe is one more connection).
    for i in $(seq 1 100); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            wait "$SERVER_PID" 2>/dev/null || true
            SERVER_PID=""
            return 1
        fi
        grep -q 'addr=' "$SERVER_LOG" && return 0
        if [[ $i -gt 3 ]] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    die "server did not start listening on port $port; see $SERVER_LOG"
}

stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
trap stop_server EXIT

# --- recording -----------------------------------------------------------------------------

# record ROW RUN LABEL JSON: appends the summary with its row, run and label to results.jsonl.
record() {
    python3 -c '
import json, sys
row, run, label, line = sys.argv[1:5]
try:
    d = json.loads(line)
except ValueError:
    d = {"error": "no JSON summary", "output": line[-200:]}
d.update(row=row, run=int(run), label=label)
print(json.dumps(d))
' "$@" >>"$RESULTS"
}

# gen ROW RUN LABEL loadgen-args...: runs the generator against the current server.
gen() {
    local row=$1 run=$2 label=$3 line
    shift 3
    say "$row run $run/$RUNS: $*"
    line=$("${PIN_GEN[@]}" "$LOADGEN" --url "$URL" --server-pid "$SERVER_PID" "$@" \
        2>>"$OUT/loadgen.log" | tail -n1) || true
    record "$row" "$run" "$label" "$line"
}

# --- rows ----------------------------------------------------------------------------------

row_rss() {
    local run rss anon
    for run in $(seq 1 "$RUNS"); do
        start_server
        sleep 1
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status")
        anon=$(awk '/^RssAnon:/ {print $2}' "/proc/$SERVER_PID/status")
        record rss "$run" "RSS at start" "{\"scenario\":\"rss\",\"rss_kib\":$rss,\"anon_kib\":$anon}"
        stop_server
    done
}

# fresh_runs ROW LABEL loadgen-args...: one fresh server per run.
fresh_runs() {
    local row=$1 label=$2 run
    shift 2
    for run in $(seq 1 "$RUNS"); do
        start_server
        gen "$row" "$run" "$label" "$@"
        stop_server
    done
}

row_fanout() {
    local run line
    start_server
    for run in $(seq 1 "$RUNS"); do
        gen fanout "$run" "fanout ${FAN_ROOMS}x10 @10 Hz" --scenario fanout \
            --rooms "$FAN_ROOMS" --members 10 --hz 10 --duration "$FAN_DUR"
        # The floor: this machine's CPU cost of one loopback write, measured in the same run.
        say "floor run $run/$RUNS"
        line=$("${PIN_SERVER[@]}" "$LOADGEN" --scenario floor --conns "$FLOOR_CONNS" \
            --frame-bytes 150,1000 --count "$FLOOR_COUNT" "${READER_CPU[@]}" \
            --paced-rate "$((FAN_ROOMS * 190))" --burst 9 \
            2>>"$OUT/loadgen.log" | tail -n1) || true
        record floor "$run" "loopback write floor" "$line"
    done
    stop_server
}

row_logs() {
    local run before after
    for run in $(seq 1 "$RUNS"); do
        start_server info
        before=$(wc -l <"$SERVER_LOG")
        gen logs-run "$run" "idle $LOGS at LOG_LEVEL=info" --scenario idle --conns "$LOGS"
        sleep 1
        after=$(wc -l <"$SERVER_LOG")
        record logs "$run" "log lines, $LOGS idle clients" \
            "{\"scenario\":\"logs\",\"conns\":$LOGS,\"log_lines\":$((after - before))}"
        stop_server
    done
}

row_size() {
    local bin=target/x86_64-unknown-linux-gnu/min/tandem
    say "static build (profile min)"
    if RUSTFLAGS='-C target-feature=+crt-static' cargo build --profile min \
        --target x86_64-unknown-linux-gnu && [[ -f $bin ]]; then
        ls -l "$bin" >&2
        record size 1 "static binary" "{\"scenario\":\"size\",\"bytes\":$(stat -c %s "$bin")}"
        # RSS at start of the binary a router or NAS would run.
        local run rss anon saved=$SERVER
        SERVER=$bin
        for run in $(seq 1 "$RUNS"); do
            start_server
            sleep 1
            rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status")
            anon=$(awk '/^RssAnon:/ {print $2}' "/proc/$SERVER_PID/status")
            record rss_static "$run" "RSS at start, static binary" \
                "{\"scenario\":\"rss\",\"rss_kib\":$rss,\"anon_kib\":$anon}"
            stop_server
        done
        SERVER=$saved
    else
        record size 1 "static binary" '{"scenario":"size","error":"build failed"}'
    fi
}

for row in $ROWS; do
    case $row in
    rss) row_rss ;;
    idle) fresh_runs idle "idle $IDLE" --scenario idle --conns "$IDLE" ;;
    rooms) fresh_runs rooms "idle $IDLE + $IDLE_ROOMS rooms" --scenario idle \
        --conns "$IDLE" --rooms "$IDLE_ROOMS" ;;
    idle19k) fresh_runs idle19k "idle $IDLE_BIG" --scenario idle --conns "$IDLE_BIG" ;;
    fanout) row_fanout ;;
    burst) fresh_runs burst "burst $BURST" --scenario burst --conns "$BURST" ;;
    slow) fresh_runs slow "slow $SLOW" --scenario slow --conns "$SLOW" \
        --rooms "$SLOW_ROOMS" --duration "$SLOW_DUR" ;;
    churn) fresh_runs churn "churn $CHURN_RATE/s" --scenario churn --rate "$CHURN_RATE" \
        --rooms 20 --members 5 --duration "$CHURN_DUR" ;;
    logs) row_logs ;;
    size) if [[ -z ${BENCH_SERVER:-} ]]; then row_size; fi ;;
    *) die "unknown row $row (rows: rss idle rooms idle19k fanout burst slow logs size churn)" ;;
    esac
done

# --- table ---------------------------------------------------------------------------------

python3 - "$RESULTS" <<'PY'
import json, statistics, sys

rows = {}
for line in open(sys.argv[1]):
    d = json.loads(line)
    rows.setdefault(d["row"], []).append(d)

def med(row, key):
    vals = [d[key] for d in rows.get(row, []) if isinstance(d.get(key), (int, float))]
    return statistics.median(vals) if vals else None

def fmt(v, unit="", digits=1):
    if v is None:
        return "n/a"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.{digits}f}{unit}"
    return f"{int(v):,}{unit}"

def label(row):
    return rows[row][0].get("label", row)

def ratio(a, b, digits=1):
    return fmt(a / b, "x", digits) if a is not None and b else "n/a"

lines = []
def add(row, text):
    if row in rows:
        errors = [d["error"] for d in rows[row] if "error" in d]
        note = f" (errors: {'; '.join(errors)})" if errors else ""
        lines.append(f"| {label(row)} | {text}{note} | {len(rows[row])} |")

add("rss", f"VmRSS {fmt(med('rss', 'rss_kib'))} KiB, RssAnon {fmt(med('rss', 'anon_kib'))} KiB")
for row in ("idle", "rooms"):
    add(row, f"{fmt(med(row, 'kib_per_conn_rss'), ' KiB/conn', 2)} (VmRSS), "
             f"{fmt(med(row, 'kib_per_conn_anon'), ' KiB/conn', 2)} (RssAnon); "
             f"held {fmt(med(row, 'held'))}")
add("idle19k", f"held {fmt(med('idle19k', 'held'))}, ping answered within 1 s "
               f"{fmt(med('idle19k', 'ping_within_1s'))}, ping max {fmt(med('idle19k', 'ping_max_us'), ' µs')}")
if "idle" in rows:
    lines.append(f"| {label('idle')} disconnecting at once | busy {fmt(med('idle', 'close_busy_s'), ' s', 3)}, "
                 f"server CPU {fmt(med('idle', 'close_cpu_s'), ' s', 3)} | {len(rows['idle'])} |")
cpu, floor = med("fanout", "server_cpu_us_per_delivery"), med("floor", "cpu_us_per_write_150")
paced = med("floor", "cpu_us_per_write_paced_150")
add("fanout", f"{fmt(cpu, ' µs', 2)} CPU/delivery, floor {fmt(floor, ' µs', 2)}/write (150 B), "
              f"ratio {ratio(cpu, floor)}; paced floor {fmt(paced, ' µs', 2)}/write, ratio {ratio(cpu, paced)}; "
              f"p99 {fmt(med('fanout', 'p99_us'), ' µs')}; "
              f"delivered {fmt(med('fanout', 'delivered'))}/{fmt(med('fanout', 'expected'))}")
add("burst", f"max connect→hello {fmt(med('burst', 'max_us'), ' µs')}, p99 {fmt(med('burst', 'p99_us'), ' µs')}, "
             f"over 900 ms {fmt(med('burst', 'over_900ms'))}")
add("slow", f"RSS start {fmt(med('slow', 'rss_start_kib'))} KiB, peak {fmt(med('slow', 'rss_peak_kib'))} KiB, "
            f"5 s after {fmt(med('slow', 'rss_after_5s_kib'))} KiB (ratio {fmt(med('slow', 'rss_after_ratio'), 'x', 2)}); "
            f"evicted {fmt(med('slow', 'evicted'))}, first at {fmt(med('slow', 'first_evict_s'), ' s', 2)}; "
            f"kernel send queue peak {fmt(med('slow', 'server_sendq_peak_kib'))} KiB")
add("churn", f"{fmt(med('churn', 'cycles_per_s'))} cycles/s, errors {fmt(med('churn', 'errors'))}, "
             f"join p99 {fmt(med('churn', 'join_p99_us'), ' µs')}")
add("logs", f"{fmt(med('logs', 'log_lines'))} lines")
add("size", f"{fmt(med('size', 'bytes'))} bytes")
add("rss_static", f"VmRSS {fmt(med('rss_static', 'rss_kib'))} KiB, RssAnon {fmt(med('rss_static', 'anon_kib'))} KiB")

print("| figure | median | runs |")
print("| --- | --- | --- |")
print("\n".join(lines))
print(f"\nraw results: {sys.argv[1]}")
PY
