#!/usr/bin/env bash
# The web pages in a real browser: playwright-core (npm, web/package.json) driving Debian's chromium.
# Fills a database by real runs of web/tests/sweep.yaml and mixing.yaml, serves it with `orrery serve`, starts
# web/tests/live.yaml for the live-update test, then runs web/tests/pages.test.mjs.
# Screenshots go to $ORRERY_ARTIFACTS (default target/browser-artifacts); with
# UPDATE_SCREENSHOTS=1 the README's ones in docs/screenshots/ are replaced by them.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${ORRERY_BIN:-target/debug/orrery}
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
export ORRERY_ARTIFACTS=${ORRERY_ARTIFACTS:-$PWD/target/browser-artifacts}
[ -x "$BIN" ] || { echo "browser tests: $BIN not built (cargo build --bin orrery)" >&2; exit 1; }
[ -x "$CHROMIUM" ] || { echo "browser tests: no chromium at $CHROMIUM (make browser-tools installs Debian's)" >&2; exit 1; }

(cd web && npm ci --no-audit --no-fund --prefer-offline --loglevel=error)

T=$(mktemp -d /tmp/orrery-browser.XXXXXX)
pids=()
cleanup() {
  # SIGINT: `orrery run` stops its workers and marks their trials Cancelled (as Ctrl-C does).
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT

# Waits for a line matching $2 in file $1 (a server's address), printing the first match.
await_line() {
  for _ in $(seq 1 600); do
    if m=$(grep -m1 -oE "$2" "$1"); then echo "$m"; return 0; fi
    sleep 0.1
  done
  echo "browser tests: timed out waiting for '$2' in $1:" >&2; cat "$1" >&2; return 1
}

echo "==> browser tests: filling a database with a real run of web/tests/sweep.yaml"
if ! "$BIN" --db "$T/sweep.db" run web/tests/sweep.yaml --workdir "$T/runs" >"$T/sweep.log" 2>&1; then
  cat "$T/sweep.log" >&2; exit 1
fi
echo "==> browser tests: adding a real run of web/tests/mixing.yaml (the aioli panel)"
if ! "$BIN" --db "$T/sweep.db" run web/tests/mixing.yaml --workdir "$T/runs" >"$T/mixing.log" 2>&1; then
  cat "$T/mixing.log" >&2; exit 1
fi
"$BIN" --db "$T/sweep.db" serve --addr 127.0.0.1:0 --workdir "$T/runs" 2>"$T/serve.log" & pids+=($!)
export ORRERY_BASE
ORRERY_BASE=$(await_line "$T/serve.log" 'http://127\.0\.0\.1:[0-9]+')

echo "==> browser tests: starting web/tests/live.yaml to watch it run"
"$BIN" --db "$T/live.db" run web/tests/live.yaml --workdir "$T/live-runs" >"$T/live.log" 2>&1 & pids+=($!)
export ORRERY_LIVE
ORRERY_LIVE=$(await_line "$T/live.log" 'http://127\.0\.0\.1:[0-9]+/experiments/[0-9]+')

echo "==> browser tests: $CHROMIUM against $ORRERY_BASE and $ORRERY_LIVE"
node --test --test-concurrency=1 web/tests/pages.test.mjs
echo "==> browser tests: screenshots in $ORRERY_ARTIFACTS"
if [ "${UPDATE_SCREENSHOTS:-0}" = 1 ]; then
  mkdir -p docs/screenshots
  for s in experiments experiment trial compare; do cp "$ORRERY_ARTIFACTS/$s.png" docs/screenshots/; done
  echo "==> browser tests: docs/screenshots/ updated"
fi
