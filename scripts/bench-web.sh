#!/usr/bin/env bash
# The experiment page at 10,000 trials (issue 5's goal: time to interactive ≤ 1 s, re-sort ≤ 200 ms).
# Seeds an SQLite file through the API benchmarks' seeding (api/tests/bench.rs, web_bench_database),
# serves it with `orrery serve` and measures in Debian's chromium (web/tests/bench.mjs).
# Usage: scripts/bench-web.sh [TRIALS]   (RELEASE=1: release builds of the server and the seeding;
# default: the debug builds `make test` leaves, a pessimistic server)
set -euo pipefail
cd "$(dirname "$0")/.."
export VIRTUAL_ENV=$PWD/.venv PATH=$PWD/.venv/bin:$PATH LIBTORCH_USE_PYTORCH=1
TRIALS=${1:-10000}
PROFILE=(); DIR=debug
if [ "${RELEASE:-0}" = 1 ]; then PROFILE=(--release); DIR=release; fi
BIN=target/$DIR/orrery
cargo build "${PROFILE[@]}" --bin orrery
(cd web && npm ci --no-audit --no-fund --prefer-offline --loglevel=error)

T=$(mktemp -d /tmp/orrery-bench-web.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$T"' EXIT
echo "==> seeding $TRIALS trials into $T/web.db"
ORRERY_WEB_BENCH_DB=$T/web.db ORRERY_BENCH_SCALE_TRIALS=$TRIALS \
  cargo test "${PROFILE[@]}" -p orrery-api --test bench -- --ignored --exact web_bench_database --nocapture 2>&1 | grep -E "web benchmark|seeding"
"$BIN" --db "$T/web.db" serve --addr 127.0.0.1:0 2>"$T/serve.log" & pid=$!
for _ in $(seq 100); do grep -q http "$T/serve.log" && break; sleep 0.1; done
BASE=$(grep -m1 -oE 'http://127\.0\.0\.1:[0-9]+' "$T/serve.log")
echo "==> $(chromium --version 2>/dev/null | head -1); server: $BIN"
node web/tests/bench.mjs "$BASE/experiments/1" "${RUNS:-10}" "${SORTS:-40}"
