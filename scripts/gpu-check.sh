#!/usr/bin/env bash
# The GPU check, for a lent GPU machine. Builds nothing: carry target/release (built here with
# `make build`) and run it from the repository root, e.g. through the device tool with
#   carry: ["target/release/orrery", "target/release/orrery-worker"]
# It uses the torch libraries of the machine's python3 (torch 2.11.0, the version tch 0.24 binds),
# runs each workload's GPU spec briefly on cuda and prints a short table, then the worker's
# throughput against PyTorch eager on the same GPU (scripts/bench-worker.sh: bf16, the `small`
# preset and the GPT-2-small shape with its MFU). Results go to $OUT (or ./gpu-check-out). Sized
# for 8 minutes of device time (BENCH_REPS=1 halves the benchmark's part).
set -euo pipefail
OUT=${OUT:-gpu-check-out}
mkdir -p "$OUT"
TORCH_LIB=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
python3 -c 'import torch; print("torch", torch.__version__, "| cuda available:", torch.cuda.is_available(), "|", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")'
B=target/release
for bin in orrery orrery-worker; do
  [ -x "$B/$bin" ] || { echo "missing $B/$bin: build it with 'make build' and carry it" >&2; exit 1; }
done

printf '%-14s %-10s %8s %8s  %s\n' workload state seconds trials "best objective" > "$OUT/table.txt"
for spec in experiments/*-gpu.yaml; do
  name=$(basename "$spec" -gpu.yaml)
  # Briefly: a tenth of the steps, one seed.
  short="$OUT/$name-short.yaml"
  python3 - "$spec" "$short" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
text = re.sub(r"^(    (?:steps|warmup_steps|eval_every|checkpoint_every): )(\d+)", lambda m: m.group(1) + str(max(1, int(m.group(2)) // 10)), text, flags=re.M)
text = re.sub(r"^(    seeds: )\d+", r"\g<1>1", text, flags=re.M)
open(sys.argv[2], "w").write(text)
PY
  start=$SECONDS
  state=ok
  "$B/orrery" --db "$OUT/gpu.db" run "$short" --device "${DEVICE:-cuda}" --workdir "$OUT/runs" > "$OUT/$name.log" 2>&1 || state=failed
  best=$("$B/orrery" --db "$OUT/gpu.db" show "$name-gpu" --json 2>/dev/null | python3 -c 'import json,sys; b=json.load(sys.stdin); r=b["rows"]; print(r[0]["objective"] if r else "-")' || echo -)
  trials=$(grep -c "^trial .* Succeeded\|^trial .* Diverged" "$OUT/$name.log" || true)
  printf '%-14s %-10s %8d %8s  %s\n' "$name" "$state" $((SECONDS - start)) "$trials" "$best" >> "$OUT/table.txt"
done
cat "$OUT/table.txt"

echo
echo "==> the worker against PyTorch eager on this GPU (scripts/bench-worker.sh)"
DEVICE=${DEVICE:-cuda} NO_BUILD=1 PYTHON=python3 OUT="$OUT/bench" REPS=${BENCH_REPS:-3} \
  scripts/bench-worker.sh | tee "$OUT/bench.txt"
