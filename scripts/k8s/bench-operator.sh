#!/usr/bin/env bash
# Benchmark (not a test): scheduling overhead of the operator at scale. 1,000 trials, parallelism
# 200, on 100 kwok nodes x 8 nvidia.com/gpu; kwok completes each trial Pod DELAY seconds after it
# starts. Reports the time from `kubectl apply` until every trial Pod was created and until the
# Experiment Succeeded, against the ideal of waves x delay (waves = trials / parallelism).
#
# The peer, measured first on the same control plane: Kubernetes' own Job controller running the
# same Pods (an Indexed Job, completions TRIALS, parallelism PAR, the same requests and annotations).
# Its overhead is what this simulated cluster costs any controller on this machine, so the
# operator's own share is the difference between the two.
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

# The peer: the same Pods as an Indexed Job in its own namespace (the operator is not running yet).
"$K" create namespace peer >/dev/null
cat > "$DIR/peer.yaml" <<JOB
apiVersion: batch/v1
kind: Job
metadata: {name: peer, namespace: peer}
spec:
  completions: $TRIALS
  parallelism: $PAR
  completionMode: Indexed
  backoffLimit: 0
  template:
    metadata:
      labels: {orrery.dev/trial: peer}
      annotations: {sim.orrery.dev/duration: ${DELAY}s}
    spec:
      restartPolicy: Never
      containers:
        - name: worker
          image: orrery/worker:bench
          resources:
            requests: {cpu: 100m, memory: 64Mi}
            limits: {memory: 64Mi, nvidia.com/gpu: 1}
JOB
echo "==> peer: Kubernetes Job controller, $TRIALS Pods, parallelism $PAR"
p0=$(now)
"$K" apply -f "$DIR/peer.yaml" >/dev/null
peer_created=""
while true; do
  if [ -z "$peer_created" ]; then
    n=$("$K" get pods -n peer --no-headers 2>/dev/null | wc -l)
    [ "$n" -ge "$TRIALS" ] && peer_created=$(now)
  fi
  done_=$("$K" get job peer -n peer -o jsonpath='{.status.conditions[?(@.type=="Complete")].status}{.status.conditions[?(@.type=="Failed")].status}')
  [ -n "$done_" ] && break
  sleep 1
done
p_done=$(now)
"$K" get pods -n peer -o json > "$DIR/peer-pods.json"
peer_succeeded=$("$K" get job peer -n peer -o jsonpath='{.status.succeeded}')
cpu_report > "$DIR/peer-cpu.txt"

echo "==> Orrery operator, $TRIALS trials, parallelism $PAR"
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
python3 - <<PY
import json, math, statistics
from datetime import datetime
trials, par, delay, d = $TRIALS, $PAR, $DELAY, "$DIR"
waves = math.ceil(trials / par)
ideal = waves * delay

def ts(s): return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
def stats(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return "n/a"
    return f"mean {statistics.mean(xs):.2f}s, median {xs[len(xs) // 2]:.0f}s, p90 {xs[int(len(xs) * 0.9)]:.0f}s, max {xs[-1]:.0f}s"

# Where the time goes, from the objects' own time stamps (1 s resolution): for each Pod, when its
# controller decided to start it (the Trial's creation; the Pod's own for the Job), its creation,
# the scheduler's binding, the start and the end of its container. A slot freed at the k-th end
# is refilled by the start decided (k + parallelism)-th.
def rows(pods_file, decided=None):
    out = []
    for p in json.load(open(pods_file))["items"]:
        st = p["status"]
        cond = {c["type"]: ts(c["lastTransitionTime"]) for c in st.get("conditions", []) if c.get("lastTransitionTime")}
        term = st["containerStatuses"][0]["state"].get("terminated", {}) if st.get("containerStatuses") else {}
        pod = ts(p["metadata"]["creationTimestamp"])
        out.append(dict(decided=decided[p["metadata"]["labels"]["orrery.dev/trial"]] if decided else pod, pod=pod,
                        bound=cond.get("PodScheduled"), started=ts(st["startTime"]) if st.get("startTime") else None,
                        ended=ts(term["finishedAt"]) if term.get("finishedAt") else None))
    return out

def report(title, t0, created, done, outcome, rs, decided_what):
    total = done - t0
    print(f"{title}: {outcome}")
    print(f"  apply -> all Pods created: {created - t0:.1f}s")
    print(f"  apply -> finished: {total:.1f}s; ideal {waves} waves x {delay:g}s = {ideal:.0f}s; overhead {100 * (total - ideal) / ideal:.1f}%")
    if decided_what:
        print(f"  {decided_what} -> Pod created:", stats([r["pod"] - r["decided"] for r in rs]))
    print("  Pod created -> bound by the scheduler:", stats([r["bound"] - r["pod"] for r in rs if r["bound"]]))
    print("  Pod created -> container running (kwok):", stats([r["started"] - r["pod"] for r in rs if r["started"]]))
    print("  container running -> ended (kwok):", stats([r["ended"] - r["started"] for r in rs if r["ended"] and r["started"]]))
    ends = sorted(r["ended"] for r in rs if r["ended"])
    starts = sorted(r["decided"] for r in rs)
    print(f"  slot freed -> next {decided_what or 'Pod'} created (the controller's reaction):",
          stats([starts[k + par] - ends[k] for k in range(min(len(starts) - par, len(ends)))]))
    by_start = sorted(rs, key=lambda r: r["decided"])
    for w in range(math.ceil(len(rs) / par)):
        wave = by_start[w * par:(w + 1) * par]
        ended = [r["ended"] for r in wave if r["ended"]]
        print(f"    wave {w + 1}: started {min(r['decided'] for r in wave) - t0:5.1f}..{max(r['decided'] for r in wave) - t0:5.1f}s, "
              f"ended {min(ended) - t0:5.1f}..{max(ended) - t0:5.1f}s")
    return 100 * (total - ideal) / ideal

print(f"{trials} trials, parallelism {par}, delay {delay:g}s, 100 kwok nodes x 8 GPUs")
peer = report("peer: Kubernetes Job controller", $p0, float("${peer_created:-nan}"), $p_done,
              f"Job finished, {'${peer_succeeded}' or 0} Pods succeeded", rows(f"{d}/peer-pods.json"), None)
decided = {t["metadata"]["name"]: ts(t["metadata"]["creationTimestamp"]) for t in json.load(open(f"{d}/trials.json"))["items"]}
ours = report("Orrery operator", $t0, float("${all_created:-nan}"), $t_done,
              f"experiment $phase ($progress), $pods Pods (one per trial)", rows(f"{d}/pods.json", decided), "Trial")
print(f"overhead: operator {ours:.1f}%, Job controller {peer:.1f}% on the same cluster; difference {ours - peer:+.1f} points")
PY
echo "CPU time by process after the peer (cumulative since the control plane started):"
sed 1d "$DIR/peer-cpu.txt"
cpu_report
