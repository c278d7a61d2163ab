#!/usr/bin/env bash
# End-to-end on a real node: the control plane with a real kubelet (node.sh: containerd, runc, CNI,
# kube-proxy), Orrery's images imported into the node's containerd (scripts/images.sh builds them),
# the chart installed with those images into a namespace that enforces the `restricted` Pod
# Security Standard (the API and the operator run as Pods), then `kubectl apply` of a small CPU
# experiment whose trials train in real worker Pods and report to the API through its Service. One
# worker is killed mid-trial; its next Pod resumes from the checkpoint the first uploaded.
#
#   scripts/images.sh && scripts/k8s/e2e-node.sh     # from `make e2e-node`; needs root
#   IMAGES=target/images KEEP_CONTROL_PLANE_LOGS=1 scripts/k8s/e2e-node.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
IMAGES=${IMAGES:-$REPO/target/images}
TAG=${TAG:-$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -1)}
DIR=$(mktemp -d /tmp/orrery-node-e2e.XXXXXX)
NS=orrery
# No cluster DNS add-on here: the API's Service gets a fixed address, and the chart's api.url
# names it (how a cluster without DNS would be set up).
API_IP=10.96.200.200
API="http://$API_IP:8080"
PASSED=0
START=$SECONDS

cleanup() {
  "$HERE/control-plane.sh" stop "$DIR" >/dev/null 2>&1 || true
  if [ "${KEEP_CONTROL_PLANE_LOGS:-0}" = 1 ]; then echo "logs kept in $DIR" >&2; else rm -rf "$DIR"; fi
}
trap cleanup EXIT

fail() {
  echo "E2E (real node) FAILED: $*" >&2
  "$K" get experiments,trials,pods -n $NS -o wide >&2 2>&1 || true
  "$K" get events -n $NS --sort-by=.lastTimestamp 2>/dev/null | tail -20 >&2 || true
  for f in "$DIR"/kubelet.log "$DIR"/containerd.log; do
    [ -f "$f" ] && { echo "--- $f" >&2; grep -iE 'error|fail' "$f" | tail -15 >&2 || true; }
  done
  for f in $(find "$DIR/pod-logs" -name '*.log' 2>/dev/null); do
    echo "--- $f" >&2; tail -15 "$f" >&2
  done
  exit 1
}
# Any other command that fails says where, with the same diagnostics.
trap 'fail "line $LINENO: a command failed"' ERR
ok() { PASSED=$((PASSED + 1)); echo "ok: $* ($((SECONDS - START)) s)"; }
wait_until() { # SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2; shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || fail "timed out after ${secs}s waiting for $what"
    sleep 1
  done
}
jp() { "$K" get -n $NS "$1" -o jsonpath="$2" 2>/dev/null; }
api() { curl -sf --max-time 10 "$API/api/v1/$1"; }
# A Pod's log as the kubelet wrote it (the node's podLogsDir).
pod_log() { cat "$DIR"/pod-logs/${NS}_"$1"_*/*/*.log 2>/dev/null; }

for t in api operator worker; do
  [ -s "$IMAGES/orrery-$t.tar" ] || { echo "missing $IMAGES/orrery-$t.tar: run scripts/images.sh (make images) first" >&2; exit 1; }
done

"$HERE/control-plane.sh" start "$DIR" 0 0 --real-node >/dev/null
export KUBECONFIG="$DIR/kubeconfig"
TOOLS=$(cat "$DIR/bin-path")
K="$TOOLS/kubectl"
"$HERE/node.sh" import "$DIR" "$IMAGES"/orrery-{api,operator,worker}.tar
ok "a real node (kubelet, containerd, runc, CNI bridge, kube-proxy) joined the control plane; the three images loaded into its containerd from their archives (no registry)"

# --- the chart, with the images, under the restricted Pod Security Standard ----------------------
"$K" create namespace $NS >/dev/null
"$K" label namespace $NS pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/enforce-version=latest >/dev/null
# The test cluster has no storage provisioner: a volume on the node's disk for the API's claim.
mkdir -p "$DIR/volumes/db"
chown 65532:65532 "$DIR/volumes/db"
cat <<PV | "$K" apply -f - >/dev/null
apiVersion: v1
kind: PersistentVolume
metadata: {name: orrery-test-db}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: $DIR/volumes/db, type: Directory}
PV
"$TOOLS/helm" install orrery "$REPO/charts/orrery" -n $NS \
  --set images.api.tag="$TAG" --set images.operator.tag="$TAG" --set images.worker.tag="$TAG" \
  --set images.pullPolicy=Never --set database.sqlite.size=1Gi \
  --set api.clusterIP=$API_IP --set api.url=$API >/dev/null || fail "helm install"
# As the README has a user wait for it: both Deployments available (the operator's standby
# replica included).
timeout 180 "$K" -n $NS rollout status deploy/orrery-api deploy/orrery-operator >/dev/null \
  || fail "the API and operator Deployments did not roll out in 180 s"
wait_until 30 "the API through its Service ($API)" curl -sf --max-time 5 "$API/readyz"
for c in api operator; do
  got=$("$K" get pods -n $NS -l app.kubernetes.io/component=$c \
    -o jsonpath='{range .items[*]}{.spec.nodeName} {.status.containerStatuses[0].image}{"\n"}{end}' | sort -u)
  [ "$got" = "orrery-node localhost/orrery-$c:$TAG" ] \
    || fail "the $c Pods run, on nodes and images: $got; expected localhost/orrery-$c:$TAG on orrery-node"
done
ok "helm install with the built images: the API (SQLite on a volume claim) and the operator (2 replicas) roll out as Pods, admitted under the restricted standard; the API answers through its Service"

# --- an experiment: 4 trials, parallelism 2, real workers ------------------------------------------
# Long enough (about 20 s per trial on one thread here) that a worker can be killed between its
# first checkpoint and its last step.
cat > "$DIR/nodes.yaml" <<SPEC
apiVersion: orrery.dev/v1alpha1
kind: Experiment
metadata: {name: on-node}
spec:
  workload: stability
  model: {preset: tiny}
  training: {steps: 2000, batch_size: 8, log_every: 100, eval_every: 1000, eval_batches: 1, checkpoint_every: 500}
  parallelism: 2
  retry: {maxRestarts: 1}
  resources: {cpu: 500m, memory: 1Gi}
  search:
    kind: grid
    space:
      training.lr: {values: [0.003, 0.001, 0.0003, 0.0001]}
SPEC
"$K" apply -n $NS -f "$DIR/nodes.yaml" >/dev/null || fail "kubectl apply of the experiment"
wait_until 60 "the API to know the experiment" bash -c "[ -n \"\$('$K' get -n $NS experiment/on-node -o jsonpath='{.status.apiExperimentId}')\" ]"
EXP=$(jp experiment/on-node '{.status.apiExperimentId}')

# Wait for a trial whose newest checkpoint in the API is its first (step 500 of 2000), then kill
# its worker process: far enough from the end that the kill lands mid-trial.
victim=""
end=$((SECONDS + 240))
while [ -z "$victim" ]; do
  [ $SECONDS -lt $end ] || fail "no trial was seen between its first and second checkpoint in 240 s"
  for id in $(api "experiments/$EXP/trials" | python3 -c 'import json,sys; print(" ".join(str(t["id"]) for t in json.load(sys.stdin)))' 2>/dev/null); do
    listed=$(api "trials/$id/artifacts" || true)
    if grep -q '"checkpoint-500"' <<<"$listed" && ! grep -q '"checkpoint-1000"' <<<"$listed"; then victim=$id; break; fi
  done
  sleep 0.5
done
pod=$("$K" get pods -n $NS -l orrery.dev/experiment=on-node -o json \
  | python3 -c "import json,sys
for p in json.load(sys.stdin)['items']:
    env={e['name']:e.get('value') for e in p['spec']['containers'][0]['env']}
    if env.get('ORRERY_TRIAL_ID')=='$victim' and p['status'].get('phase')=='Running': print(p['metadata']['name'])")
[ -n "$pod" ] || fail "trial $victim uploaded a checkpoint but has no running Pod (it finished too fast to be killed)"
cid=$(jp "pod/$pod" '{.status.containerStatuses[0].containerID}') || fail "no container id for $pod"
ctr --address "$DIR/containerd.sock" -n k8s.io tasks kill -s SIGKILL "${cid#containerd://}" >/dev/null \
  || fail "could not kill the worker of $pod"
ok "trial $victim uploaded its first checkpoint from Pod $pod; its worker process was killed (SIGKILL)"

wait_until 600 "experiment on-node to succeed" bash -c "[ \"\$('$K' get -n $NS experiment/on-node -o jsonpath='{.status.phase}')\" = Succeeded ]"
pods=$("$K" get pods -n $NS -l orrery.dev/experiment=on-node -o jsonpath='{range .items[*]}{.metadata.name} {.spec.nodeName} {.status.phase}{"\n"}{end}')
[ "$(wc -l <<<"$pods")" = 5 ] || fail "expected 5 worker Pods (4 trials, one retried): $pods"
[ "$(grep -c ' orrery-node Succeeded$' <<<"$pods")" = 4 ] && [ "$(grep -c ' orrery-node Failed$' <<<"$pods")" = 1 ] \
  || fail "expected 4 Succeeded and 1 Failed Pod on orrery-node: $pods"
summary=$(api "experiments/$EXP/trials" | python3 -c 'import json,sys
ts=json.load(sys.stdin)
print(len(ts), sorted({t["phase"] for t in ts}), sum(t["attempts"] for t in ts))')
[ "$summary" = "4 ['Succeeded'] 5" ] || fail "the API's trials (count, phases, attempts): $summary"
for id in $(api "experiments/$EXP/trials" | python3 -c 'import json,sys; print(" ".join(str(t["id"]) for t in json.load(sys.stdin)))'); do
  steps=$(api "trials/$id/metrics?name=train/loss" | python3 -c 'import json,sys; print(",".join(str(p["step"]) for p in json.load(sys.stdin)))')
  [ "$steps" = "$(seq -s, 100 100 2000)" ] || fail "trial $id's train/loss steps in the API: $steps"
done
ok "experiment on-node Succeeded: 4 trials at parallelism 2 in 5 real worker Pods on orrery-node; every logged train/loss step in the API, once"

resumed=$(api "trials/$victim/metrics?name=sys/resumed_from_step" | python3 -c 'import json,sys; print(",".join(str(int(p["value"])) for p in json.load(sys.stdin)))')
case "$resumed" in 0,500|0,1000) ;; *) fail "trial $victim's starts (sys/resumed_from_step): $resumed; expected 0 then a checkpoint's step" ;; esac
retry_pod=$("$K" get pods -n $NS -l orrery.dev/experiment=on-node,orrery.dev/attempt=2 -o jsonpath='{.items[0].metadata.name}')
grep -q "downloaded the newest checkpoint from the API" < <(pod_log "$retry_pod") \
  || fail "the retry Pod $retry_pod did not download the checkpoint: $(pod_log "$retry_pod" | tail -5)"
grep -q "resumed from checkpoint" < <(pod_log "$retry_pod") || fail "the retry Pod $retry_pod did not resume"
ok "the killed trial's next Pod ($retry_pod) downloaded the checkpoint from the API and resumed at step ${resumed#0,}"

echo "e2e (real node): $PASSED checks passed in $((SECONDS - START)) s"
