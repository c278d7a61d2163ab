#!/usr/bin/env bash
# The API's benchmarks (docs/benchmarks.md), release build, one run each:
#
#   scripts/bench-api.sh ingest   metric rows/s through the API on SQLite and PostgreSQL, against
#                                 raw multi-row INSERTs into the same database and an MLflow
#                                 tracking server's log_batch with the same rows
#   scripts/bench-api.sh reads    leaderboard pages and a 10,000-point history, p50/p95, with
#                                 100,000 trials and 10 million metric points stored
#   scripts/bench-api.sh          both
#
# The benchmarks themselves are api/tests/bench.rs (#[ignore]d tests); MLflow's side is
# scripts/bench/mlflow_ingest.py, run from a virtualenv in .orrery/bench-venv (created here, mlflow
# from PyPI). PostgreSQL is Debian's server started on a temporary folder with fsync on.
# ORRERY_BENCH_DB=sqlite|postgres runs one database only.
set -euo pipefail
cd "$(dirname "$0")/.."
MLFLOW=3.17.2
VENV=.orrery/bench-venv
which=${1:-all}
case "$which" in
  ingest) filter=ingest_throughput ;;
  reads) filter=reads_at_scale ;;
  all) filter= ;;
  *) echo "usage: $0 [ingest|reads]" >&2; exit 2 ;;
esac
if [ "$which" != reads ]; then
  if ! "$VENV/bin/python" -c "import mlflow; assert mlflow.__version__ == '$MLFLOW'" 2>/dev/null; then
    echo "==> installing mlflow==$MLFLOW into $VENV (once)"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --disable-pip-version-check -q "mlflow==$MLFLOW"
  fi
  export ORRERY_BENCH_PYTHON=$PWD/$VENV/bin/python
fi
export ORRERY_PG_DURABLE=1
echo "==> $(nproc) cores, $(date -u +%FT%TZ), $(git rev-parse --short HEAD)"
cargo test --release -p orrery-api --test bench -- --ignored --nocapture --test-threads 1 $filter
