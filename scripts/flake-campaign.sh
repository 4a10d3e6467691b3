#!/usr/bin/env bash
# The whole suite N times under CPU stress on every core (issue 20 item 6): a flake shows up here long
# before it shows up in CI. Runs on a fresh clone of HEAD (so a dirty work tree cannot hide or cause a
# failure), with the same `npm ci` CI does, each run under `stress-ng --cpu <cores>`; prints per run the
# failing tests' names (scripts/test-summary.mjs) and how many jitgate-* temp dirs it left in /tmp.
#
#   scripts/flake-campaign.sh [runs=10] [out=/tmp/jitgate-flake-campaign]
#
# Needs stress-ng (Debian: apt-get install stress-ng). Takes ~10 minutes per run on 2 cores.
set -euo pipefail
runs="${1:-10}"
out="${2:-/tmp/jitgate-flake-campaign}"
repo="$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)"
command -v stress-ng >/dev/null || { echo "flake-campaign: stress-ng is not installed (apt-get install stress-ng)" >&2; exit 2; }
rm -rf "$out" && mkdir -p "$out"
git clone -q "$repo" "$out/src"
cd "$out/src"
echo "flake-campaign: $(git rev-parse --short HEAD), $runs runs, reports in $out" >&2
npm ci --no-audit --no-fund >"$out/npm-ci.log" 2>&1
export CI=true PATH="$out/src/node_modules/.bin:$PATH"
cores="$(nproc)"
tmpdirs() { find /tmp -maxdepth 1 -name 'jitgate-*' -type d | wc -l; }
for n in $(seq 1 "$runs"); do
  before="$(tmpdirs)"
  stress-ng --cpu "$cores" --timeout 3600s >/dev/null 2>&1 &
  stress=$!
  start="$(date +%s)"
  set +e
  npx vitest run --reporter=json --outputFile.json="$out/run-$n.json" >"$out/run-$n.log" 2>&1
  rc=$?
  set -e
  kill "$stress" 2>/dev/null || true
  wait "$stress" 2>/dev/null || true
  echo "run $n/$runs: exit $rc, $(( $(date +%s) - start )) s, $(node "$out/src/scripts/test-summary.mjs" "$out/run-$n.json"), jitgate-* temp dirs in /tmp $before → $(tmpdirs)"
  node "$out/src/scripts/test-summary.mjs" "$out/run-$n.json" --failures
done
