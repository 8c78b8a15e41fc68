#!/usr/bin/env bash
# The nginx configuration of docs/deploy.md, for real: nginx terminates TLS on a free loopback
# port in front of a release Tandem, and tests/proxy/client.py runs a wss:// session through
# it, checks /health, and checks that Tandem counts connections under the client's address
# (X-Forwarded-For from a trusted proxy), not nginx's.
#
#   bash tests/proxy/run.sh [path/to/tandem]     (default: <cargo target dir>/release/tandem)
#
# Needs python3, openssl and nginx. nginx is installed with apt-get when missing (with sudo
# when not root). A system nginx package may start its own service on port 80; this test does
# not use it. Everything else lives in a temporary directory, removed at the end. Exit 0 on
# success.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
deploy_doc="$root/docs/deploy.md"
ORIGIN=https://jellyfin.test
WAIT_STEPS=200 # polls of 0.05 s: 10 s for anything to come up

tmp=""
tandem_pid=""
nginx_pid=""

fail() {
  echo "proxy test: FAIL: $*" >&2
  for log in "$tmp/tandem.log" "$tmp/nginx/error.log"; do
    if [ -n "$tmp" ] && [ -s "$log" ]; then
      echo "--- last lines of ${log#"$tmp"/}:" >&2
      tail -n 20 "$log" >&2
    fi
  done
  exit 1
}

stop() { # pid: TERM, then wait at most 5 s, then KILL
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  stop "$nginx_pid"
  stop "$tandem_pid"
  if [ -n "$tmp" ]; then rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- prerequisites -------------------------------------------------------------------------
command -v python3 >/dev/null || fail "python3 not found"
command -v openssl >/dev/null || fail "openssl not found"

find_nginx() {
  command -v nginx 2>/dev/null && return 0
  local candidate
  for candidate in /usr/sbin/nginx /usr/local/sbin/nginx /usr/local/nginx/sbin/nginx; do
    if [ -x "$candidate" ]; then echo "$candidate" && return 0; fi
  done
  return 1
}

install_nginx() {
  command -v apt-get >/dev/null || fail "nginx not found and no apt-get: install nginx"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || fail "nginx not found; installing it needs root or sudo"
    sudo=(sudo)
  fi
  echo "proxy test: installing nginx (apt-get)"
  local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -qq)
  "${apt[@]}" install --no-install-recommends nginx-light >/dev/null 2>&1 ||
    "${apt[@]}" install --no-install-recommends nginx >/dev/null 2>&1 || {
    "${apt[@]}" update >/dev/null 2>&1 || true
    "${apt[@]}" install --no-install-recommends nginx-light >/dev/null 2>&1 ||
      "${apt[@]}" install --no-install-recommends nginx >/dev/null 2>&1 ||
      fail "apt-get could not install nginx-light or nginx"
  }
}

nginx=$(find_nginx) || {
  install_nginx
  nginx=$(find_nginx) || fail "nginx still not found after installing it"
}

tandem=${1:-}
if [ -z "$tandem" ]; then
  target_dir=${CARGO_TARGET_DIR:-}
  if [ -z "$target_dir" ] && command -v cargo >/dev/null; then
    target_dir=$(cd "$root" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])') || true
  fi
  tandem=${target_dir:-$root/target}/release/tandem
fi
[ -x "$tandem" ] || fail "no Tandem binary at $tandem: cargo build --release --bin tandem, or pass its path"

[ -f "$deploy_doc" ] || fail "$deploy_doc not found"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tandem-proxy.XXXXXX")
# nginx workers run as an unprivileged user when the master is root: let them through.
chmod 0711 "$tmp"
mkdir -m 0711 "$tmp/nginx"

wait_for() { # description, command...: poll until it succeeds, WAIT_STEPS × 0.05 s at most
  local what=$1 i
  shift
  for ((i = 0; i < WAIT_STEPS; i++)); do
    if "$@"; then return 0; fi
    sleep 0.05
  done
  fail "timed out waiting for $what"
}

alive() { kill -0 "$1" 2>/dev/null; }

port_open() { # port: something accepts on 127.0.0.1:port
  python3 - "$1" <<'EOF'
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
except OSError:
    sys.exit(1)
EOF
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- certificate ---------------------------------------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$tmp/key.pem" -out "$tmp/cert.pem" >/dev/null 2>&1 ||
  fail "openssl could not make a self-signed certificate"

# --- Tandem on 127.0.0.1, a free port ------------------------------------------------------
# One connection per client address, so a second one from the same client is refused (429):
# that shows which address Tandem counted it under.
(
  cd "$tmp"
  exec env HOST=127.0.0.1 PORT=0 STATE_FILE= TRUSTED_PROXIES=127.0.0.1 \
    ALLOWED_ORIGINS="$ORIGIN" MAX_CONNECTIONS_PER_IP=1 LOG_LEVEL=debug LOG_FORMAT=text \
    "$tandem" 2>"$tmp/tandem.log"
) &
tandem_pid=$!

tandem_listening() {
  alive "$tandem_pid" || fail "tandem exited at start"
  grep -q 'event=listening addr=127\.0\.0\.1:[0-9]' "$tmp/tandem.log"
}
wait_for "tandem's startup line" tandem_listening
tandem_port=$(sed -n 's/.*event=listening addr=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/tandem.log" | head -n 1)
echo "proxy test: tandem $("$tandem" --version 2>/dev/null || true) on 127.0.0.1:$tandem_port"

# --- nginx: the documented server block, ports and paths substituted -----------------------
nginx_port=$(free_port)
block=$(awk '
  /tests\/proxy\/run.sh runs the next nginx block/ { armed = 1; next }
  armed && /^```nginx$/ { inside = 1; next }
  inside && /^```$/ { exit }
  inside { print }
' "$deploy_doc")
[ -n "$block" ] || fail "no nginx block after the test marker in docs/deploy.md"

site=$(printf '%s\n' "$block" | sed \
  -e "s|^\([[:space:]]*\)listen 3000 ssl;|\1listen 127.0.0.1:$nginx_port ssl;|" \
  -e '/^[[:space:]]*listen \[::\]:3000 ssl;/d' \
  -e "s|/etc/ssl/tandem/fullchain.pem|$tmp/cert.pem|" \
  -e "s|/etc/ssl/tandem/privkey.pem|$tmp/key.pem|" \
  -e "s|http://127.0.0.1:3001;|http://127.0.0.1:$tandem_port;|")
for expected in "listen 127.0.0.1:$nginx_port ssl;" "ssl_certificate     $tmp/cert.pem;" \
  "ssl_certificate_key $tmp/key.pem;" "proxy_pass http://127.0.0.1:$tandem_port;"; do
  grep -qF -- "$expected" <<<"$site" ||
    fail "docs/deploy.md's nginx block changed shape: could not substitute '$expected'"
done
if grep -qE '(:|listen )300[01]\b|/etc/ssl' <<<"$site"; then
  fail "docs/deploy.md's nginx block has a port or path this test does not substitute"
fi
printf '%s\n' "$site" >"$tmp/nginx/tandem.conf"

# Temporary paths of the modules this nginx has (the compiled-in ones may not be writable).
temp_paths=""
for module in client_body proxy fastcgi uwsgi scgi; do
  if [ "$module" = client_body ] || ! "$nginx" -V 2>&1 | grep -q -- "--without-http_${module}_module"; then
    temp_paths+="    ${module}_temp_path $tmp/nginx/${module}_temp;"$'\n'
  fi
done
cat >"$tmp/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log info;
events { worker_connections 64; }
http {
    access_log $tmp/nginx/access.log;
$temp_paths    include $tmp/nginx/tandem.conf;
}
EOF

nginx_args=(-p "$tmp/nginx/" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log")
"$nginx" -t -q "${nginx_args[@]}" 2>"$tmp/nginx/test.log" ||
  fail "nginx rejects the configuration: $(cat "$tmp/nginx/test.log")"
"$nginx" "${nginx_args[@]}" 2>>"$tmp/nginx/error.log" &
nginx_pid=$!

nginx_listening() {
  alive "$nginx_pid" || fail "nginx exited at start"
  port_open "$nginx_port"
}
wait_for "nginx on 127.0.0.1:$nginx_port" nginx_listening
echo "proxy test: $("$nginx" -v 2>&1 | sed 's/^nginx version: //') with TLS on 127.0.0.1:$nginx_port"

# --- the session ---------------------------------------------------------------------------
python3 "$here/client.py" --port "$nginx_port" --cafile "$tmp/cert.pem" --name localhost \
  --origin "$ORIGIN" || fail "the wss:// session through nginx failed"

# Tandem's side: the refusal names the client's address, never the proxy's.
refused() { grep -q 'event=refused reason=address_limit address=127\.0\.0\.2 ' "$tmp/tandem.log"; }
wait_for "tandem's address_limit line for 127.0.0.2" refused
if grep -q 'event=refused reason=address_limit address=127\.0\.0\.1 ' "$tmp/tandem.log"; then
  fail "tandem counted a connection under the proxy's address 127.0.0.1"
fi
if grep -q 'address=127\.0\.0\.3 ' "$tmp/tandem.log"; then
  fail "tandem refused 127.0.0.3"
fi
echo "proxy test: tandem log: $(grep -o 'event=refused reason=address_limit address=127\.0\.0\.2 [^ ]* [^ ]*' "$tmp/tandem.log" | head -n 1)"

# --- stop: Tandem exits 0 on SIGTERM -------------------------------------------------------
stop "$nginx_pid"
nginx_pid=""
kill -TERM "$tandem_pid"
exited() { ! alive "$tandem_pid"; }
wait_for "tandem to exit after SIGTERM" exited
status=0
wait "$tandem_pid" || status=$?
tandem_pid=""
[ "$status" -eq 0 ] || fail "tandem exited $status after SIGTERM"
echo "proxy test: PASS (nginx TLS -> tandem: wss session, /health, X-Forwarded-For attribution)"
