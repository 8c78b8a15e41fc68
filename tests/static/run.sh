#!/usr/bin/env bash
# `make test-static`: the static binary is static (ldd/file say so) and serves a WebSocket
# session when run from an empty directory with an empty environment.
set -euo pipefail
bin=${1:?usage: run.sh path/to/tandem}
bin=$(realpath "$bin")
fail() { echo "test-static: FAIL: $*" >&2; exit 1; }

if command -v ldd >/dev/null; then
    out=$(ldd "$bin" 2>&1 || true)
    case $out in
        *"not a dynamic executable"*|*"statically linked"*) ;;
        *) fail "ldd says it is dynamic: $out" ;;
    esac
fi
if command -v file >/dev/null; then
    out=$(file "$bin")
    case $out in
        *"statically linked"*|*"static-pie linked"*) ;;
        *) fail "file says: $out" ;;
    esac
fi

dir=$(mktemp -d)
log=$dir/log
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
cd "$dir"
# An empty environment; only the port is chosen (0: any free one), on the command line.
env -i "$bin" --port 0 --host 127.0.0.1 2>"$log" &
pid=$!
addr=
for _ in $(seq 1 200); do
    addr=$(grep -o 'addr=[0-9.:]*' "$log" | head -n1 | cut -d= -f2 || true)
    [[ -n $addr ]] && break
    kill -0 "$pid" 2>/dev/null || fail "exited: $(cat "$log")"
    sleep 0.05
done
[[ -n $addr ]] || fail "no listening line: $(cat "$log")"

python3 - "$addr" <<'PY'
import base64, json, os, socket, struct, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=5)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall(("GET /ws HTTP/1.1\r\nHost: x\r\nOrigin: http://localhost:8096\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
buf = b""
while b"\r\n\r\n" not in buf:
    chunk = s.recv(4096)
    if not chunk:
        sys.exit("closed during the handshake")
    buf += chunk
head, buf = buf.split(b"\r\n\r\n", 1)
assert head.startswith(b"HTTP/1.1 101"), head
def frame():
    global buf
    while True:
        if len(buf) >= 2:
            n, off = buf[1] & 0x7F, 2
            if n == 126:
                n, off = struct.unpack(">H", buf[2:4])[0], 4
            if len(buf) >= off + n:
                data, buf = buf[off:off + n], buf[off + n:]
                return json.loads(data)
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("closed")
        buf += chunk
def send(obj):
    data, mask = json.dumps(obj).encode(), os.urandom(4)
    n = len(data)
    header = bytes([0x81, 0x80 | n]) if n < 126 else bytes([0x81, 0x80 | 126]) + struct.pack(">H", n)
    s.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))
hello = frame(); assert hello["type"] == "client_hello", hello
assert frame()["type"] == "room_list"
send({"type": "create_room", "payload": {"name": "static"}})
state = frame(); assert state["type"] == "room_state", state
assert state["payload"]["host_id"] == hello["payload"]["client_id"], state
print("test-static: session ok, room", state["room"])
PY

kill -TERM "$pid"
wait "$pid" || fail "exit status $?"
[[ -f tandem-state.json ]] || fail "no state file in the working directory"
echo "test-static: ok ($(stat -c %s "$bin") bytes)"
