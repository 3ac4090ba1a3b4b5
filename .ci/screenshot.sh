#!/usr/bin/env bash
# Opens the console under a private Xvfb display with a throwaway data dir and saves
# a screenshot to shots/console.png (needs imagemagick for `import`).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-shots/console.png}
mkdir -p "$(dirname "$out")"
data=$(mktemp -d)
display=:${SCREENSHOT_DISPLAY:-77}
(cd ui && npm run --silent build)
cargo build --quiet
Xvfb "$display" -screen 0 1280x800x24 >/dev/null 2>&1 &
xvfb=$!
trap 'kill $app $xvfb 2>/dev/null || true; rm -rf "$data"' EXIT
sleep 1
DISPLAY=$display target/debug/firebreak --data-dir "$data" ${SCREENSHOT_ARGS:-} &
app=$!
sleep "${SCREENSHOT_WAIT:-8}"
DISPLAY=$display import -window root "$out"
echo "saved $out"
