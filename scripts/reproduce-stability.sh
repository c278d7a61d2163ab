#!/usr/bin/env bash
# Reproduces the stability paper (Wortsman et al., arXiv 2309.14322) at CPU scale in one command and
# writes the report: docs/reproductions/stability.md, stability.json and the PNG plots beside them.
#
#   scripts/reproduce-stability.sh            # run the four CPU specs, then write the report
#   scripts/reproduce-stability.sh --report   # only rewrite the report from the last runs' database
#
# The runs are experiments/stability/{qk-layernorm,z-loss,combined,width}-cpu.yaml (114 trials),
# each with the local executor, into a fresh SQLite database (.orrery/reproductions/stability.db);
# 38–42 minutes on a 2-core machine (docs/reproductions/stability.md has the last run's). Debug
# binaries: the same build `make test` makes, and the time goes into libtorch's kernels, which are
# optimised either way.
set -euo pipefail
cd "$(dirname "$0")/.."

DB=.orrery/reproductions/stability.db
WORKDIR=.orrery/reproductions/runs
OUT=docs/reproductions
SPECS=(qk-layernorm z-loss combined width)

make --no-print-directory setup
export VIRTUAL_ENV=$PWD/.venv PATH=$PWD/.venv/bin:$PATH LIBTORCH_USE_PYTORCH=1
cargo build --workspace --bins
ORRERY=./target/debug/orrery

if [[ "${1:-}" != "--report" ]]; then
    rm -rf "$DB" "$DB-wal" "$DB-shm" "$WORKDIR"
    mkdir -p "$(dirname "$DB")"
    started=$(date +%s)
    for s in "${SPECS[@]}"; do
        echo "==> $(date -u +%H:%M:%S) experiments/stability/$s-cpu.yaml"
        "$ORRERY" --db "$DB" run "experiments/stability/$s-cpu.yaml" --workdir "$WORKDIR" --top 5
    done
    echo "==> all four experiments ran in $(( $(date +%s) - started )) s"
fi

"$ORRERY" --db "$DB" report stability --out "$OUT"
