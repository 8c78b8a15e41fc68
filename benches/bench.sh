#!/usr/bin/env bash
# Benchmark driver (used by `make bench`): builds the release server and benches/loadgen.rs,
# runs each benchmark row BENCH_RUNS times against fresh servers, prints a markdown table of
# medians and writes every raw JSON summary line to target/bench/results.jsonl.
#
#   bash benches/bench.sh [row...]
#     rows: rss idle rooms idle19k fanout burst slow logs size churn attack v1 idle-v1
#     default: every row but churn (and size, with BENCH_QUICK=1; and v1, idle-v1 with
#     BENCH_SERVER)
#     v1: the fanout three ways per run, back to back, each against a fresh server (the
#         order rotates from run to run): every member OpenWatchParty, every member
#         StreamSync v1, and mixed rooms (5 + 5 members, hosts alternating between the
#         dialects); the table gives each against the OpenWatchParty one
#     idle-v1: the idle row with StreamSync v1 connections
#   BENCH_QUICK=1        smoke run: hundreds of connections, seconds per scenario
#   BENCH_RUNS=N         runs per row (default 3, or 1 with BENCH_QUICK=1)
#   BENCH_SERVER=PATH    benchmark another server binary (it must honour PORT and listen on
#                        127.0.0.1); skips building tandem and the size row
#   BENCH_ATTACKS="..."  attack row: which attacks (default ping-flood big roomlist slowloris hog)
#   BENCH_RSS_LIMIT_KIB  attack row: kill the server past this RSS (default 2 GiB)
#   CARGO_TARGET_DIR     honoured: binaries are looked up where cargo put them
#
# The server runs on CPU 0 and the generator on CPU 1 (when taskset and 2 CPUs exist).
# Everything stays on loopback; every loadgen run is bounded by its own --deadline.
#
# Per-address limits: every row but `attack` runs tandem with MAX_CONNECTIONS_PER_IP=0 and
# HANDSHAKES_PER_IP_PER_SEC=0 (unlimited), since the generator opens thousands of connections
# from a few loopback addresses. The attack row keeps the server's defaults: a canary party
# from 127.0.0.2 measures delivery latency while an attacker on 127.0.0.1 misbehaves
# (ping-flood big roomlist slowloris hog); the server is killed if its RSS passes 2 GiB.
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
    ATTACK_DUR=3 CANARY_DUR=2 HOG=500 ROOMLIST_HOSTS=300 SLOWLORIS=100
    DEFAULT_ROWS="rss idle rooms idle19k fanout burst slow logs attack v1 idle-v1"
else
    RUNS=${BENCH_RUNS:-3}
    IDLE=10000 IDLE_BIG=19000 IDLE_ROOMS=50 FAN_ROOMS=100 FAN_DUR=10 BURST=1000
    SLOW=2000 SLOW_ROOMS=50 SLOW_DUR=30 LOGS=1000 FLOOR_CONNS=1000 FLOOR_COUNT=200000
    CHURN_RATE=50 CHURN_DUR=10
    ATTACK_DUR=10 CANARY_DUR=8 HOG=2000 ROOMLIST_HOSTS=1000 SLOWLORIS=200
    DEFAULT_ROWS="rss idle rooms idle19k fanout burst slow logs size attack v1 idle-v1"
fi
# Another server need not speak StreamSync v1: with BENCH_SERVER its rows run only when named.
if [[ -n ${BENCH_SERVER:-} ]]; then
    DEFAULT_ROWS=${DEFAULT_ROWS/ v1 idle-v1/}
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

# Where cargo puts its output: CARGO_TARGET_DIR or a config file may move it from ./target.
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null ||
    true)
TARGET_DIR=${TARGET_DIR:-${CARGO_TARGET_DIR:-target}}

# Server settings for every row but `attack` (tandem only): no per-address limits.
UNLIMITED_ENV=()
if [[ -n ${BENCH_SERVER:-} ]]; then
    SERVER=$BENCH_SERVER
else
    say "building the server (cargo build --release)"
    cargo build --release
    SERVER=$TARGET_DIR/release/tandem
    UNLIMITED_ENV=(MAX_CONNECTIONS_PER_IP=0 HANDSHAKES_PER_IP_PER_SEC=0)
fi
LIMIT_ENV=("${UNLIMITED_ENV[@]}")
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
    LOADGEN=$(ls -t "$TARGET_DIR"/release/deps/loadgen-* 2>/dev/null | grep -v '\.d$' | head -n1 || true)
fi
[[ -x $LOADGEN ]] || die "cannot find the loadgen executable"

# --- server lifecycle ----------------------------------------------------------------------

SERVER_PID="" SERVER_LOG="" URL="" SERVER_SEQ=0
# SERVER_VMEM_KIB: when set, the server's address space is capped (ulimit -v) at that size.
SERVER_VMEM_KIB=""

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
    # STATE_FILE empty: no state file, so a server neither restores the rooms and seats the
    # previous one saved (each row and run starts empty) nor writes one during the runs.
    (
        if [[ -n $SERVER_VMEM_KIB ]]; then ulimit -v "$SERVER_VMEM_KIB"; fi
        exec env PORT=$port LOG_LEVEL=$1 MAX_CONNECTIONS=20000 STATE_FILE= "${LIMIT_ENV[@]}" \
            ${BENCH_SERVER_ENV:-} "${PIN_SERVER[@]}" "$SERVER"
    ) >/dev/null 2>"$SERVER_LOG" &
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

# The v1 row: per run, the fanout in each dialect mix back to back, so the three CPU figures
# of a run share the machine's state; the order rotates per run. Each gets a fresh server:
# nothing a previous party left behind (seats kept for a reconnect, timers) runs in its window.
row_v1() {
    local run i mix
    local mixes=(owp v1 mixed)
    declare -A what=([owp]="every member OpenWatchParty" [v1]="every member v1"
        [mixed]="mixed rooms, 5 OpenWatchParty + 5 v1")
    for run in $(seq 1 "$RUNS"); do
        for i in 0 1 2; do
            mix=${mixes[$(((run - 1 + i) % 3))]}
            start_server
            gen "v1:$mix" "$run" "fanout ${FAN_ROOMS}x10 @10 Hz, ${what[$mix]}" --scenario fanout \
                --dialect "$mix" --rooms "$FAN_ROOMS" --members 10 --hz 10 --duration "$FAN_DUR"
            stop_server
        done
    done
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
    local bin=$TARGET_DIR/x86_64-unknown-linux-gnu/min/tandem
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

# --- attack row --------------------------------------------------------------------------

ATTACKS=${BENCH_ATTACKS:-ping-flood big roomlist slowloris hog}
RSS_LIMIT_KIB=${BENCH_RSS_LIMIT_KIB:-$((2 * 1024 * 1024))}

# sample_rss PID FILE: every 100 ms, the largest VmRSS seen so far (KiB) into FILE; past
# RSS_LIMIT_KIB the server is killed and its RSS written to FILE.killed.
sample_rss() {
    local pid=$1 file=$2 peak=0 rss
    while rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) && [[ -n $rss ]]; do
        if ((rss > peak)); then
            peak=$rss
            echo "$peak" >"$file"
        fi
        if ((rss > RSS_LIMIT_KIB)); then
            echo "$rss" >"$file.killed"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
}

# attack_args KIND: the attacker's flags beyond --attack.
attack_args() {
    case $1 in
    roomlist) echo "--attackers $ROOMLIST_HOSTS --lobby 50 --rate 5" ;;
    slowloris) echo "--attackers $SLOWLORIS" ;;
    hog) echo "--attackers $HOG" ;;
    *) echo "" ;;
    esac
}

# attack_run RUN KIND: a fresh server with its default per-address limits, the canary party
# (4 rooms x 4 members at 10 Hz, from 127.0.0.2) and, unless KIND is none, the attacker (from
# 127.0.0.1, starting 0.5 s after the canary and outlasting its measured window) plus a
# newcomer party (1 room x 2, from 127.0.0.3) set up in the middle of the attack.
attack_run() {
    local run=$1 kind=$2 dir=$OUT/attack canary_pid attacker_pid="" sampler_pid hwm="" alive=1
    mkdir -p "$dir"
    rm -f "$dir/rss" "$dir/rss.killed" "$dir/canary" "$dir/attacker" "$dir/newcomer"
    LIMIT_ENV=() SERVER_VMEM_KIB=$((4 * 1024 * 1024))
    start_server
    LIMIT_ENV=("${UNLIMITED_ENV[@]}") SERVER_VMEM_KIB=""
    sample_rss "$SERVER_PID" "$dir/rss" &
    sampler_pid=$!
    say "attack run $run/$RUNS: canary, attack $kind"
    "${PIN_GEN[@]}" "$LOADGEN" --url "$URL" --server-pid "$SERVER_PID" --scenario fanout \
        --rooms "${CANARY_ROOMS:-4}" --members 4 --hz 10 --duration "$CANARY_DUR" --source-ip 127.0.0.2 \
        --deadline $((CANARY_DUR + 30)) >"$dir/canary" 2>>"$OUT/loadgen.log" &
    canary_pid=$!
    if [[ $kind != none ]]; then
        sleep 0.5
        # shellcheck disable=SC2046 # attack_args is a list of flags
        nice -n 19 "${PIN_GEN[@]}" "$LOADGEN" --url "$URL" --scenario attack --attack "$kind" \
            --duration "$ATTACK_DUR" --source-ip 127.0.0.1 --deadline $((ATTACK_DUR + 30)) \
            $(attack_args "$kind") >"$dir/attacker" 2>>"$OUT/loadgen.log" &
        attacker_pid=$!
        sleep "$(python3 -c "print(min(1.5, $ATTACK_DUR / 2))")"
        "${PIN_GEN[@]}" "$LOADGEN" --url "$URL" --scenario fanout --rooms 1 --members 2 \
            --hz 10 --duration 0.5 --source-ip 127.0.0.3 --deadline 20 \
            >"$dir/newcomer" 2>>"$OUT/loadgen.log" || true
    fi
    wait "$canary_pid" || true
    [[ -z $attacker_pid ]] || wait "$attacker_pid" || true
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || true)
    else
        alive=0
    fi
    kill "$sampler_pid" 2>/dev/null || true
    wait "$sampler_pid" 2>/dev/null || true
    python3 - "$run" "$kind" "$dir" "${hwm:-}" "$alive" >>"$RESULTS" <<'PY'
import json, os, sys
run, kind, d, hwm, alive = sys.argv[1:6]

def last_json(name):
    path = os.path.join(d, name)
    if not os.path.exists(path):
        return None
    lines = [l for l in open(path).read().splitlines() if l.strip()]
    if not lines:
        return {"error": "no output"}
    try:
        return json.loads(lines[-1])
    except ValueError:
        return {"error": "no JSON summary", "output": lines[-1][-200:]}

def read_int(name):
    try:
        return int(open(os.path.join(d, name)).read().split()[0])
    except (OSError, ValueError, IndexError):
        return None

out = last_json("canary") or {"error": "no canary output"}
sampled, killed = read_int("rss"), read_int("rss.killed")
peaks = [v for v in (sampled, int(hwm) if hwm else None, killed) if v is not None]
out.update(
    row="attack", run=int(run), attack=kind,
    label="canary, no attack" if kind == "none" else f"canary under {kind}",
    server_rss_peak_kib=max(peaks) if peaks else None,
    server_rss_sampled_peak_kib=sampled, server_vmhwm_kib=int(hwm) if hwm else None,
    server_killed_at_kib=killed, server_alive=alive == "1",
    attacker=last_json("attacker"), newcomer=last_json("newcomer"),
)
print(json.dumps(out))
PY
    stop_server
}

row_attack() {
    local run kind
    for run in $(seq 1 "$RUNS"); do
        for kind in none $ATTACKS; do
            attack_run "$run" "$kind"
        done
    done
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
    attack) row_attack ;;
    v1) row_v1 ;;
    idle-v1) fresh_runs idle-v1 "idle $IDLE, v1" --scenario idle --conns "$IDLE" --dialect v1 ;;
    *) die "unknown row $row (rows: rss idle rooms idle19k fanout burst slow logs size churn attack v1 idle-v1)" ;;
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
for row in ("idle", "rooms", "idle-v1"):
    add(row, f"{fmt(med(row, 'kib_per_conn_rss'), ' KiB/conn', 2)} (VmRSS), "
             f"{fmt(med(row, 'kib_per_conn_anon'), ' KiB/conn', 2)} (RssAnon); "
             f"held {fmt(med(row, 'held'))}")
add("idle19k", f"held {fmt(med('idle19k', 'held'))}, ping answered within 1 s "
               f"{fmt(med('idle19k', 'ping_within_1s'))}, ping max {fmt(med('idle19k', 'ping_max_us'), ' µs')}")
for row in ("idle", "idle-v1"):
    if row in rows:
        lines.append(f"| {label(row)} disconnecting at once | busy {fmt(med(row, 'close_busy_s'), ' s', 3)}, "
                     f"server CPU {fmt(med(row, 'close_cpu_s'), ' s', 3)} | {len(rows[row])} |")
cpu, floor = med("fanout", "server_cpu_us_per_delivery"), med("floor", "cpu_us_per_write_150")
paced = med("floor", "cpu_us_per_write_paced_150")
add("fanout", f"{fmt(cpu, ' µs', 2)} CPU/delivery, floor {fmt(floor, ' µs', 2)}/write (150 B), "
              f"ratio {ratio(cpu, floor)}; paced floor {fmt(paced, ' µs', 2)}/write, ratio {ratio(cpu, paced)}; "
              f"p99 {fmt(med('fanout', 'p99_us'), ' µs')}; "
              f"delivered {fmt(med('fanout', 'delivered'))}/{fmt(med('fanout', 'expected'))}")
# The v1 row: each mix against the OpenWatchParty fanout of the same runs, as the ratio of the
# medians and the median of the per-run ratios.
def per_run(row, key):
    return {d["run"]: d[key] for d in rows.get(row, []) if isinstance(d.get(key), (int, float))}

owp_runs = per_run("v1:owp", "server_cpu_us_per_delivery")
for mix in ("owp", "v1", "mixed"):
    row = f"v1:{mix}"
    cpu = med(row, "server_cpu_us_per_delivery")
    text = f"{fmt(cpu, ' µs', 2)} CPU/delivery"
    if mix != "owp":
        runs = per_run(row, "server_cpu_us_per_delivery")
        ratios = [runs[r] / owp_runs[r] for r in sorted(runs) if owp_runs.get(r)]
        text += (f" ({ratio(cpu, med('v1:owp', 'server_cpu_us_per_delivery'), 2)} OpenWatchParty's; "
                 f"per run {', '.join(f'{x:.2f}x' for x in ratios) or 'n/a'})")
    add(row, f"{text}; p99 {fmt(med(row, 'p99_us'), ' µs')}; "
             f"delivered {fmt(med(row, 'delivered'))}/{fmt(med(row, 'expected'))}")
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

if lines:
    print("| figure | median | runs |")
    print("| --- | --- | --- |")
    print("\n".join(lines))

# The attack row: one line per attack, medians over runs; outcomes from the last run.
def mib(kib):
    return "n/a" if kib is None else f"{kib / 1024:,.1f} MiB"

def top(counts, n=4):
    items = sorted((counts or {}).items(), key=lambda kv: -kv[1])
    more = f", +{len(items) - n} more" if len(items) > n else ""
    return ", ".join(f"{k} {v:,}" for k, v in items[:n]) + more

def attacker_outcome(a):
    if not a:
        return "n/a"
    if "error" in a:
        return f"error: {a['error']}"
    http = {k: v for k, v in (a.get("http_status") or {}).items() if k != "101"}
    text = (f"{a.get('ws_opened', 0):,} WebSockets of {a.get('dials', 0):,} dials "
            f"(peak {a.get('peak_open', 0):,} open); sent {a.get('sent', 0):,} {a.get('sent_unit', '')}, "
            f"{a.get('bytes_sent', 0) / 1e6:,.1f} MB; ended: {top(a.get('ended'))}")
    if http:
        text += f"; HTTP {top(http)}"
    if a.get("server_errors"):
        text += f"; server errors: {top(a['server_errors'], 2)}"
    if a.get("dial_failed"):
        text += f"; dial failed {a['dial_failed']:,} ({a.get('first_dial_error')})"
    return text

def newcomer(n):
    if not n:
        return "-"
    if "error" in n:
        return f"error: {n['error']}"
    ok = n.get("rooms") == 1 and n.get("expected") and n.get("delivered") == n.get("expected")
    if ok:
        p99 = n.get("p99_us")
        return f"ok (p99 {fmt(p99 / 1000 if p99 is not None else None, ' ms', 2)})"
    why = top(n.get("conns_lost")) or top(n.get("server_errors")) or n.get("first_dial_error") or ""
    return f"failed: rooms {n.get('rooms')}, delivered {n.get('delivered')}/{n.get('expected')} {why}".strip()

attack = rows.get("attack", [])
if attack:
    kinds = []
    for d in attack:
        if d.get("attack") not in kinds:
            kinds.append(d.get("attack"))
    def amed(kind, key):
        vals = [d[key] for d in attack if d.get("attack") == kind and isinstance(d.get(key), (int, float))]
        return statistics.median(vals) if vals else None
    idle = amed("none", "p99_us")
    print()
    print("| attack | canary p99 | × idle | canary delivered | server CPU | server peak RSS | newcomer | attacker outcome | runs |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for kind in kinds:
        runs = [d for d in attack if d.get("attack") == kind]
        last = runs[-1]
        p99 = amed(kind, "p99_us")
        peak = amed(kind, "server_rss_peak_kib")
        server = ""
        if last.get("server_killed_at_kib"):
            server = f" (server killed at {mib(last['server_killed_at_kib'])})"
        elif not last.get("server_alive", True):
            server = " (server exited)"
        errors = "; ".join(d["error"] for d in runs if "error" in d)
        canary = fmt(p99 / 1000 if p99 is not None else None, " ms", 2)
        canary += f" (errors: {errors})" if errors else ""
        print(f"| {kind} | {canary} | {ratio(p99, idle, 2) if kind != 'none' else '1x'} | "
              f"{fmt(amed(kind, 'delivered'))}/{fmt(amed(kind, 'expected'))} | "
              f"{fmt(amed(kind, 'server_cpu_pct'), ' %')} | {mib(peak)}{server} | "
              f"{newcomer(last.get('newcomer')) if kind != 'none' else '-'} | "
              f"{attacker_outcome(last.get('attacker')) if kind != 'none' else 'no attacker'} | {len(runs)} |")
print(f"\nraw results: {sys.argv[1]}")
PY
