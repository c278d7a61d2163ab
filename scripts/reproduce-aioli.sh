#!/usr/bin/env bash
# Reproduces Aioli (Chen et al., arXiv 2411.05735) at CPU scale in one command and writes the report:
# docs/reproductions/aioli.md and aioli.json.
#
#   scripts/reproduce-aioli.sh            # run the five CPU specs, then write the report
#   scripts/reproduce-aioli.sh --report   # only rewrite the report from the last runs' database
#
# The runs are experiments/aioli/{grid,unrestricted,restricted,one-hot,dml}-cpu.yaml (62 trials),
# each with the local executor, into a fresh SQLite database (.orrery/reproductions/aioli.db); the
# grid runs first because dml trains at the optimum of the mixing law fitted on it. About 30 minutes
# on a 2-core machine (docs/reproductions/aioli.md has the last run's). Release binaries (`make
# build`): the tiny model's steps are short enough for the worker's own code to show in debug.
set -euo pipefail
cd "$(dirname "$0")/.."

DB=.orrery/reproductions/aioli.db
WORKDIR=.orrery/reproductions/aioli-runs
OUT=docs/reproductions
SPECS=(grid unrestricted restricted one-hot dml)

make --no-print-directory build
ORRERY=./target/release/orrery

if [[ "${1:-}" != "--report" ]]; then
    rm -rf "$DB" "$DB-wal" "$DB-shm" "$WORKDIR"
    mkdir -p "$(dirname "$DB")"
    started=$(date +%s)
    for s in "${SPECS[@]}"; do
        echo "==> $(date -u +%H:%M:%S) experiments/aioli/$s-cpu.yaml"
        "$ORRERY" --db "$DB" run "experiments/aioli/$s-cpu.yaml" --workdir "$WORKDIR" --top 5
    done
    echo "==> all five experiments ran in $(( $(date +%s) - started )) s"
fi

"$ORRERY" --db "$DB" report aioli --out "$OUT"
