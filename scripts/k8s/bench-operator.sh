#!/usr/bin/env bash
# Benchmark (not a test): scheduling overhead of the operator at scale. 1,000 trials, parallelism
# 200, on 100 kwok nodes x 8 nvidia.com/gpu; kwok completes each trial Pod DELAY seconds after it
# starts. Reports the time from `kubectl apply` until every trial Pod was created and until the
# Experiment Succeeded, against the ideal of waves x delay (waves = trials / parallelism).
#
#   scripts/k8s/bench-operator.sh [TRIALS] [PARALLELISM] [DELAY_SECONDS]     # defaults 1000 200 10
#   ORRERY_BIN_DIR=target/release scripts/k8s/bench-operator.sh   # default: target/debug
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BIN_DIR=${ORRERY_BIN_DIR:-$REPO/target/debug}
TRIALS=${1:-1000} PAR=${2:-200} DELAY=${3:-10}
NODES=100 GPUS=8 NS=default
DIR=$(mktemp -d /tmp/orrery-k8s-bench.XXXXXX)
# CPU seconds each process used: on a small machine the simulated cluster competes with the
# operator for the same cores, and this says who used them.
cpu_report() {
  local pids="${OP_PID:-} ${API_PID:-}"
  for c in etcd kube-apiserver kube-scheduler kube-controller-manager kwok; do
    pids="$pids $(cat "$DIR/$c.pid" 2>/dev/null || true)"
  done
  echo "CPU time by process (user+system):"
  ps -o comm=,time= -p "$(echo $pids | tr -s ' ' ',')" 2>/dev/null | sed 's/^/  /' || true
}
cleanup() {
  kill ${OP_PID:-} ${API_PID:-} 2>/dev/null || true
  "$HERE/control-plane.sh" stop "$DIR" >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
now() { date +%s.%N; }

"$HERE/control-plane.sh" start "$DIR" $NODES $GPUS >/dev/null
export KUBECONFIG="$DIR/kubeconfig"
K="$(cat "$DIR/bin-path")/kubectl"
"$K" apply -f "$REPO/charts/orrery/crds/" >/dev/null
"$K" wait --for condition=established crd/experiments.orrery.dev crd/trials.orrery.dev --timeout=60s >/dev/null

API_PORT=$(free_port)
export ORRERY_ADMIN_TOKEN=bench-admin-token ORRERY_API_TOKEN=bench-admin-token
"$BIN_DIR/orrery" --db "$DIR/orrery.db" serve --addr "127.0.0.1:$API_PORT" > "$DIR/api.log" 2>&1 &
API_PID=$!
RUST_LOG=warn "$BIN_DIR/orrery-operator" --api-url "http://127.0.0.1:$API_PORT" --namespace $NS \
  --listen "127.0.0.1:$(free_port)" > "$DIR/operator.log" 2>&1 &
OP_PID=$!
sleep 3

cat > "$DIR/bench.yaml" <<SPEC
apiVersion: orrery.dev/v1alpha1
kind: Experiment
metadata: {name: bench}
spec:
  workload: stability
  model: {preset: tiny}
  training: {steps: 10}
  parallelism: $PAR
  resources: {cpu: 100m, memory: 64Mi, gpu: 1}
  search: {seeds: $TRIALS}
  kubernetes: {podAnnotations: {sim.orrery.dev/duration: ${DELAY}s}}
SPEC
t0=$(now)
"$K" apply -f "$DIR/bench.yaml" >/dev/null
all_created=""
while true; do
  phase=$("$K" get experiment bench -o jsonpath='{.status.phase}')
  if [ -z "$all_created" ]; then
    pods=$("$K" get pods -l orrery.dev/experiment=bench --no-headers 2>/dev/null | wc -l)
    [ "$pods" -ge "$TRIALS" ] && all_created=$(now)
  fi
  [ "$phase" = Succeeded ] || [ "$phase" = Failed ] && break
  sleep 1
done
t_done=$(now)
progress=$("$K" get experiment bench -o jsonpath='{.status.progress}')
"$K" get pods -l orrery.dev/experiment=bench -o json > "$DIR/pods.json"
"$K" get trials -l orrery.dev/experiment=bench -o json > "$DIR/trials.json"
pods=$("$K" get pods -l orrery.dev/experiment=bench --no-headers | wc -l)
python3 - "$t0" "$all_created" "$t_done" "$TRIALS" "$PAR" "$DELAY" "$phase" "$progress" "$pods" "$DIR" <<'PY'
import math, sys
t0, created, done = float(sys.argv[1]), float(sys.argv[2] or "nan"), float(sys.argv[3])
trials, par, delay = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
waves = math.ceil(trials / par)
ideal = waves * delay
total = done - t0
print(f"trials {trials}, parallelism {par}, delay {delay:g}s, 100 kwok nodes x 8 GPUs")
print(f"experiment {sys.argv[7]} ({sys.argv[8]}), {sys.argv[9]} Pods (one per trial)")
print(f"apply -> all Pods created: {created - t0:.1f}s")
print(f"apply -> Succeeded: {total:.1f}s; ideal {waves} waves x {delay:g}s = {ideal:.0f}s; overhead {100 * (total - ideal) / ideal:.1f}%")

# Where the time goes, from the objects' own time stamps (1 s resolution): for each trial, its
# Trial and Pod creation, the scheduler's binding, the start and the end of its container. A slot
# freed at the k-th end is refilled by the trial started (k + parallelism)-th.
import json, statistics
from datetime import datetime
def ts(s): return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
d = sys.argv[10]
trials = {t["metadata"]["name"]: ts(t["metadata"]["creationTimestamp"]) for t in json.load(open(f"{d}/trials.json"))["items"]}
rows = []
for p in json.load(open(f"{d}/pods.json"))["items"]:
    st = p["status"]
    cond = {c["type"]: ts(c["lastTransitionTime"]) for c in st.get("conditions", []) if c.get("lastTransitionTime")}
    term = st["containerStatuses"][0]["state"].get("terminated", {})
    rows.append(dict(trial=trials[p["metadata"]["labels"]["orrery.dev/trial"]], pod=ts(p["metadata"]["creationTimestamp"]),
                     bound=cond.get("PodScheduled"), started=ts(st["startTime"]) if st.get("startTime") else None,
                     ended=ts(term["finishedAt"]) if term.get("finishedAt") else None))
def med(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "n/a"
    xs.sort()
    return f"mean {statistics.mean(xs):.2f}s, median {xs[len(xs) // 2]:.0f}s, p90 {xs[int(len(xs) * 0.9)]:.0f}s, max {xs[-1]:.0f}s"
print("Trial created -> Pod created:", med([r["pod"] - r["trial"] for r in rows]))
print("Pod created -> bound by the scheduler:", med([r["bound"] - r["pod"] for r in rows if r["bound"]]))
print("Pod created -> container running (kwok):", med([r["started"] - r["pod"] for r in rows if r["started"]]))
print("container running -> ended:", med([r["ended"] - r["started"] for r in rows if r["ended"] and r["started"]]))
ends = sorted(r["ended"] for r in rows if r["ended"])
starts = sorted(r["trial"] for r in rows)
print("slot freed -> next Trial created (operator):", med([starts[k + par] - ends[k] for k in range(len(starts) - par)]))
for w in range(math.ceil(len(rows) / par)):
    wave = sorted(rows, key=lambda r: r["trial"])[w * par:(w + 1) * par]
    print(f"  wave {w + 1}: Trials created {min(r['trial'] for r in wave) - t0:5.1f}..{max(r['trial'] for r in wave) - t0:5.1f}s, "
          f"ended {min(r['ended'] for r in wave) - t0:5.1f}..{max(r['ended'] for r in wave) - t0:5.1f}s")
PY
cpu_report
