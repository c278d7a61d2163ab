#!/usr/bin/env bash
# The worker's training throughput against PyTorch eager on the same model, batch, optimizer and
# threads, measured side by side (docs/benchmarks.md, "Worker training throughput").
#
#   scripts/bench-worker.sh                 CPU, 2 threads: the `small` and `tiny` presets, probes on
#                                           and off, REPS (5) alternating repetitions; the median
#   DEVICE=cuda scripts/bench-worker.sh     on a GPU (gpu-check.sh calls it): the same, plus the
#                                           GPT-2-small shape in bf16 with its MFU
#
# Both sides time their own training loop, the same way: the wall time of STEPS − 3 steps after 3
# untimed warm-up steps (start-up, data generation and the evaluations before and after the loop
# are outside it; log steps are inside). The worker (target/release/orrery-worker; built here
# unless NO_BUILD=1) runs a trial with `--config` for STEPS steps and prints its pace when the last
# step is taken ("training pace ... ms_per_step=…"); the peer is scripts/bench/torch_gpt.py with
# the torch of $PYTHON (default: the project's .venv; on a GPU machine, its python3). The two
# alternate, REPS times, so each repetition's ratio comes from one stretch of time on a machine
# whose speed drifts. Results: a table on stdout and $OUT/bench-worker.json.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cpu}
THREADS=${THREADS:-2}
REPS=${REPS:-5}
STEPS=${STEPS:-80}
WARMUP=3
OUT=${OUT:-.orrery/bench-worker}
PYTHON=${PYTHON:-$PWD/.venv/bin/python}
W=target/release/orrery-worker
mkdir -p "$OUT"
if [ "${NO_BUILD:-0}" != 1 ]; then
  make -s build >/dev/null
fi
[ -x "$W" ] || { echo "missing $W (build it with make build, or carry it)" >&2; exit 1; }
echo "==> $(nproc) cores, $THREADS threads, device $DEVICE, $(date -u +%FT%TZ), $(git rev-parse --short HEAD 2>/dev/null || echo '?')"

# Cases: name, layers, d_model, heads, seq_len, batch, precision, log_every. "small" is the
# issue's configuration (the `small` preset: 4 layers, d 128, 4 heads, T 128; B 32).
CASES=(
  "small 4 128 4 128 32 fp32 10"
  "small-no-probes 4 128 4 128 32 fp32 1000000"
  "tiny 2 64 4 64 32 fp32 10"
)
if [ "$DEVICE" != cpu ]; then
  CASES=(
    "small 4 128 4 128 32 bf16 10"
    "gpt2-small 12 768 12 1024 16 bf16 10"
    "gpt2-small-no-probes 12 768 12 1024 16 bf16 1000000"
  )
fi

config() { # name layers d heads T B precision log_every steps → JSON on stdout
  "$PYTHON" - "$@" <<'PY'
import json, sys
_, layers, d, heads, t, b, precision, log_every, steps = sys.argv[1:]
print(json.dumps({
  "workload": "stability",
  "objective": {"metric": "eval/loss", "goal": "minimize"},
  "model": {"layers": int(layers), "d_model": int(d), "heads": int(heads), "seq_len": int(t), "mlp_ratio": 4},
  "data": {"corpus": "builtin:multidomain", "seed": 0},
  "training": {"steps": int(steps), "batch_size": int(b), "lr": 1e-3, "warmup_steps": 2,
               "beta1": 0.9, "beta2": 0.95, "grad_clip": 1.0, "eval_every": 1000000,
               "eval_batches": 1, "log_every": min(int(log_every), int(steps)),
               "checkpoint_every": 0, "seed": 0,
               **({} if precision == "fp32" else {"precision": precision})},
  "params": {"qk_layernorm": False, "z_loss": 0.0, "mup_simple": False},
}))
PY
}

worker_ms() { # case-args... → ms/step of the worker's loop (its "training pace" line)
  local dir
  dir=$(mktemp -d "$OUT/run.XXXX")
  config "$@" "$STEPS" > "$dir/config.json"
  "$W" --config "$dir/config.json" --workdir "$dir/work" --device "$DEVICE" --threads "$THREADS" \
    > "$dir/stdout" 2> "$dir/stderr" || { echo "worker failed:" >&2; tail -5 "$dir/stderr" >&2; exit 1; }
  local ms
  ms=$(grep -o 'ms_per_step="\?[0-9.]*' "$dir/stderr" | tail -1 | grep -o '[0-9.]*$' || true)
  [ -n "$ms" ] || { echo "no training pace line in the worker's log:" >&2; tail -5 "$dir/stderr" >&2; exit 1; }
  rm -rf "$dir"
  echo "$ms"
}

torch_ms() { # name layers d heads T B precision log_every → ms/step
  local _ layers d heads t b precision log_every
  read -r _ layers d heads t b precision log_every <<< "$*"
  "$PYTHON" scripts/bench/torch_gpt.py --layers "$layers" --d-model "$d" --heads "$heads" \
    --seq-len "$t" --batch-size "$b" --dtype "$precision" --device "$DEVICE" --threads "$THREADS" \
    --warmup "$WARMUP" --steps $((STEPS - WARMUP)) --log-every "$log_every" > "$OUT/torch.json"
  "$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["ms_per_step"])' "$OUT/torch.json"
}

results="$OUT/samples.tsv"
: > "$results"
for c in "${CASES[@]}"; do
  read -r name _ <<< "$c"
  for rep in $(seq "$REPS"); do
    # The two alternate which goes first, so neither always runs on a warmer machine.
    if [ $((rep % 2)) = 1 ]; then
      wms=$(worker_ms $c); p=$(torch_ms $c)
    else
      p=$(torch_ms $c); wms=$(worker_ms $c)
    fi
    printf '%s\t%s\t%s\t%s\n' "$name" "$rep" "$wms" "$p" >> "$results"
    printf '  %-22s rep %s: worker %7.1f ms/step, pytorch %7.1f ms/step\n' "$name" "$rep" "$wms" "$p"
  done
done

"$PYTHON" - "$results" "$OUT/bench-worker.json" "$DEVICE" "${CASES[@]}" <<'PY'
import json, statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
device = sys.argv[3]
cases = {c.split()[0]: c.split() for c in sys.argv[4:]}
# Peak dense bf16 FLOP/s of the GPU, for MFU: PEAK_TFLOPS, default 989 (H100 and H200 SXM
# without sparsity).
import os
peak = float(os.environ.get("PEAK_TFLOPS", "989")) * 1e12 if device != "cpu" else None
out = []
print()
print(f"| case | worker ms/step | PyTorch ms/step | worker tokens/s | PyTorch tokens/s | worker / PyTorch (medians) | per repetition: median (range) |" + (" worker MFU | PyTorch MFU |" if peak else ""))
print("|---|---|---|---|---|---|---|" + ("---|---|" if peak else ""))
for name, spec in cases.items():
    _, layers, d, heads, t, b, precision, _ = spec
    layers, d, t, b = int(layers), int(d), int(t), int(b)
    w = statistics.median(float(r[2]) for r in rows if r[0] == name)
    p = statistics.median(float(r[3]) for r in rows if r[0] == name)
    # Each repetition's own ratio (one stretch of time), and their spread.
    per_rep = sorted(float(r[3]) / float(r[2]) for r in rows if r[0] == name)
    tokens = b * t
    n = 12 * layers * d * d + 2 * 256 * d + t * d + (2 * layers + 1) * d
    fpt = 6 * n + 12 * layers * d * t
    wt, pt = tokens / (w / 1000), tokens / (p / 1000)
    rec = {"case": name, "precision": precision, "worker_ms": w, "pytorch_ms": p,
           "worker_tokens_per_s": wt, "pytorch_tokens_per_s": pt, "ratio": wt / pt,
           "ratio_per_rep": per_rep}
    spread = f"{per_rep[0]:.2f}–{per_rep[-1]:.2f}"
    line = f"| {name} ({precision}) | {w:.1f} | {p:.1f} | {wt:,.0f} | {pt:,.0f} | **{wt / pt:.2f}×** | {statistics.median(per_rep):.2f}× ({spread}) |"
    if peak:
        rec["worker_mfu"], rec["pytorch_mfu"] = wt * fpt / peak, pt * fpt / peak
        line += f" {100 * rec['worker_mfu']:.1f} % | {100 * rec['pytorch_mfu']:.1f} % |"
    out.append(rec)
    print(line)
if "small" in cases and "small-no-probes" in cases:
    w = next(r for r in out if r["case"] == "small")["worker_ms"]
    q = next(r for r in out if r["case"] == "small-no-probes")["worker_ms"]
    print(f"\nprobes every 10 steps cost {w / q:.2f}× the step time without them")
json.dump(out, open(sys.argv[2], "w"), indent=1)
PY
