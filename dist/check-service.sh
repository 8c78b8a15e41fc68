#!/usr/bin/env bash
# Checks dist/tandem.service with systemd-analyze: `verify` (syntax, directives, ExecStart
# executable) must be clean, and the offline `security` report is printed. Skips, exit 0,
# when systemd-analyze is absent.
#
#   bash dist/check-service.sh [path/to/tandem]   (ExecStart's binary for the check; default
#                                                   /usr/local/bin/tandem if present, else /bin/true)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
unit=$here/tandem.service

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "check-service: systemd-analyze not found, skipped (apt-get install systemd)"
  exit 0
fi

binary=${1:-/usr/local/bin/tandem}
[ -x "$binary" ] || binary=/bin/true
binary=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# verify checks that ExecStart's file exists: point it at one that does.
sed "s|^ExecStart=/usr/local/bin/tandem\$|ExecStart=$binary|" "$unit" >"$tmp/tandem.service"
grep -q "^ExecStart=$binary\$" "$tmp/tandem.service" || {
  echo "check-service: FAIL: no 'ExecStart=/usr/local/bin/tandem' line in $unit" >&2
  exit 1
}

# verify exits 0 on some problems (unknown keys are only warned about): any line naming the
# unit fails the check.
status=0
out=$(cd "$tmp" && systemd-analyze verify --man=no "$tmp/tandem.service" 2>&1) || status=$?
problems=$(grep -F 'tandem.service' <<<"$out" || true)
if [ "$status" -ne 0 ] || [ -n "$problems" ]; then
  echo "check-service: FAIL: systemd-analyze verify (exit $status):" >&2
  echo "$out" >&2
  exit 1
fi
echo "check-service: systemd-analyze verify: clean"

# The exposure score, for information (--offline needs systemd 250 or later).
if report=$(systemd-analyze security --offline=yes "$tmp/tandem.service" 2>/dev/null); then
  echo "check-service: $(tail -n 1 <<<"$report" | sed 's/^ *→ *//')"
fi
