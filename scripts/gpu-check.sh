#!/usr/bin/env bash
# The GPU check, for a lent GPU machine. Builds nothing: carry target/release (built here with
# `make build`) and run it from the repository root, e.g. through the device tool with
#   carry: ["target/release/orrery", "target/release/orrery-worker"]
# It uses the torch libraries of the machine's python3 (torch 2.11.0, the version tch 0.24 binds),
# runs every GPU spec under experiments/ briefly on cuda (in the order their sources need), checks
# what each measured (succeeded, every trial's worker on CUDA by its provenance, a finite best
# objective) and prints a short table, then the worker's
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

printf '%-26s %-8s %8s %8s  %s\n' spec state seconds trials "best objective / what was wrong" > "$OUT/table.txt"
# Every GPU spec under experiments/ (sub-folders too), briefly: a tenth of the steps, one seed;
# in the order their sources need (dml's from_experiment, model.init_from's experiment), since a
# spec that takes from another's experiment must run after it.
python3 - "$OUT" <<'PY' > "$OUT/order.txt"
import glob, os, re, sys
out = sys.argv[1]
specs = sorted(glob.glob("experiments/**/*-gpu.yaml", recursive=True))
name = lambda t: re.search(r"^metadata:\s*\{?\s*name:\s*([\w.-]+)", t, re.M).group(1)
texts = {p: open(p).read() for p in specs}
names = {name(t): p for p, t in texts.items()}
needs = {p: {names[m] for m in re.findall(r"(?:from_experiment|experiment):\s*([\w.-]+)", t) if m in names and names[m] != p} for p, t in texts.items()}
done = []
while len(done) < len(specs):
    ready = [p for p in specs if p not in done and needs[p] <= set(done)]
    done.append((ready or [p for p in specs if p not in done])[0])
for p in done:
    text = texts[p]
    text = re.sub(r"^(    (?:steps|warmup_steps|eval_every|checkpoint_every|reference_steps|proxy_steps): )(\d+)", lambda m: m.group(1) + str(max(1, int(m.group(2)) // 10)), text, flags=re.M)
    text = re.sub(r"^(    seeds: )\d+", r"\g<1>1", text, flags=re.M)
    short = os.path.join(out, p.replace("/", "_"))
    open(short, "w").write(text)
    print(p, short, name(texts[p]))
PY
while read -r spec short name; do
  start=$SECONDS
  state=ok
  "$B/orrery" --db "$OUT/gpu.db" run "$short" --device "${DEVICE:-cuda}" --workdir "$OUT/runs" > "$OUT/$name.log" 2>&1 || state=failed
  # What it measured, not only its exit code: the experiment succeeded, every trial ran on CUDA
  # (its worker's provenance says so) and the best objective is a finite number.
  verdict=$(python3 - "$OUT/gpu.db" "$name" "${DEVICE:-cuda}" <<'PY'
import json, math, sqlite3, sys
db, name, device = sys.argv[1:]
c = sqlite3.connect(db)
row = c.execute("select id, phase from experiments where name = ? order by id desc limit 1", (name,)).fetchone()
if not row:
    print("0 not registered"); sys.exit()
exp, phase = row
trials = c.execute("select phase, provenance_json from trials where experiment_id = ?", (exp,)).fetchall()
done = sum(p in ("Succeeded", "Diverged", "EarlyStopped") for p, _ in trials)
wrong = []
if phase != "Succeeded":
    wrong.append(f"experiment {phase}")
devices = {json.loads(p)["device"].split(" ")[0] if p else "unreported" for _, p in trials}
if device.startswith("cuda") and devices != {d for d in devices if d.startswith("cuda")}:
    wrong.append("ran on " + ",".join(sorted(devices)))
print(done, "; ".join(wrong))
PY
)
  trials=${verdict%% *}; wrong=${verdict#* }
  [ "$wrong" = "$verdict" ] && wrong=""
  best=$("$B/orrery" --db "$OUT/gpu.db" show "$name" --json 2>/dev/null | python3 -c 'import json,math,sys; b=json.load(sys.stdin); r=[x["objective"] for x in b["rows"] if x["rank"] == 1]; print(r[0] if r and isinstance(r[0], (int, float)) and math.isfinite(r[0]) else "none")' || echo none)
  [ "$best" = none ] && wrong="${wrong:+$wrong; }no finite best objective"
  [ -n "$wrong" ] && [ "$state" = ok ] && state=wrong
  printf '%-26s %-8s %8d %8s  %s\n' "${spec#experiments/}" "$state" $((SECONDS - start)) "$trials" "${wrong:-$best}" >> "$OUT/table.txt"
done < "$OUT/order.txt"
cat "$OUT/table.txt"

echo
echo "==> the worker against PyTorch eager on this GPU (scripts/bench-worker.sh)"
DEVICE=${DEVICE:-cuda} NO_BUILD=1 PYTHON=python3 OUT="$OUT/bench" REPS=${BENCH_REPS:-3} \
  scripts/bench-worker.sh | tee "$OUT/bench.txt"
