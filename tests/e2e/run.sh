#!/usr/bin/env bash
# make e2e: the party page in real Chromium against a real Tandem (tests/e2e/run.mjs).
# Installs what a bare Debian machine lacks: chromium and ffmpeg with apt-get (sudo when not
# root), playwright-core from npm (the version in package-lock.json; it drives Debian's
# Chromium and downloads no browser), then builds a release Tandem and a 60 s VP8/WebM test
# clip (ffmpeg testsrc) and runs the test. Screenshots and the report: target/e2e/.
#
#   bash tests/e2e/run.sh [--bench]     (--bench: only the sync figure, E2E_SYNC_SECONDS long)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

need=()
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || need+=(chromium)
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  echo "e2e: installing ${need[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y "${need[@]}" >/dev/null 2>&1 ||
    { $sudo apt-get update >/dev/null && $sudo apt-get install -y "${need[@]}" >/dev/null; }
fi

if [ ! -f tests/e2e/node_modules/playwright-core/package.json ]; then
  (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
fi

target_dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
target_dir=${target_dir:-target}
cargo build --release --bin tandem
export TANDEM_BIN="$target_dir/release/tandem"
export E2E_OUT="${E2E_OUT:-$target_dir/e2e}"
mkdir -p "$E2E_OUT"
clip="$E2E_OUT/clip.webm"
if [ ! -s "$clip" ]; then
  echo "e2e: making the test clip ($clip)"
  ffmpeg -loglevel error -y -f lavfi -i testsrc=duration=60:size=640x360:rate=30 \
    -c:v libvpx -deadline realtime -cpu-used 8 -b:v 800k -g 30 -an "$clip"
fi
export E2E_CLIP="$clip"
rm -f "$E2E_OUT/state.json"
exec node tests/e2e/run.mjs "$@"
