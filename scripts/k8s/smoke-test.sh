#!/usr/bin/env bash
# Smoke test of the test control plane: a pod asking for one nvidia.com/gpu is scheduled onto a kwok
# node and runs; a pod asking for more GPUs than any node has stays Pending, and the scheduler says
# why. Run by `make test`; fails loudly, never skips.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=$(mktemp -d /tmp/orrery-k8s-smoke.XXXXXX)
cleanup() {
  "$HERE/control-plane.sh" stop "$DIR" || true
  if [ "${KEEP_CONTROL_PLANE_LOGS:-0}" = 1 ]; then echo "logs kept in $DIR" >&2; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
"$HERE/control-plane.sh" start "$DIR" 2 2 >/dev/null
export KUBECONFIG="$DIR/kubeconfig"
K="$(cat "$DIR/bin-path")/kubectl"

pod() { # name, gpus
  cat <<POD | "$K" apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: $1, labels: {app: smoke}}
spec:
  restartPolicy: Never
  nodeSelector: {type: kwok}
  containers:
  - name: main
    image: orrery-worker:test
    resources:
      limits: {nvidia.com/gpu: "$2"}
POD
}

fail() { echo "SMOKE FAILED: $*" >&2; for f in "$DIR"/*.log; do echo "--- $f" >&2; tail -20 "$f" >&2; done; exit 1; }

pod gpu-one 1
pod gpu-too-many 3
end=$((SECONDS + 90))
until [ "$("$K" get pod gpu-one -o jsonpath='{.status.phase}')" = Running ]; do
  [ $SECONDS -lt $end ] || fail "pod gpu-one never ran: $("$K" get pod gpu-one -o wide 2>&1)"
  sleep 1
done
node=$("$K" get pod gpu-one -o jsonpath='{.spec.nodeName}')
echo "ok: pod gpu-one (1 nvidia.com/gpu) Running on $node"
until "$K" get events --field-selector involvedObject.name=gpu-too-many,reason=FailedScheduling -o jsonpath='{.items[*].message}' | grep -q 'Insufficient nvidia.com/gpu'; do
  [ $SECONDS -lt $end ] || fail "no FailedScheduling event for gpu-too-many: $("$K" get events 2>&1)"
  sleep 1
done
[ "$("$K" get pod gpu-too-many -o jsonpath='{.status.phase}')" = Pending ] || fail "gpu-too-many is not Pending"
echo "ok: pod gpu-too-many (3 nvidia.com/gpu) Pending: $("$K" get events --field-selector involvedObject.name=gpu-too-many,reason=FailedScheduling -o jsonpath='{.items[0].message}')"

# The CRDs generated from the Rust types: a real API server accepts the repo's spec as an
# Experiment and refuses a bad one, naming the field.
REPO=$(cd "$HERE/../.." && pwd)
"$K" apply -f "$REPO/charts/orrery/crds/" >/dev/null
"$K" wait --for condition=established crd/experiments.orrery.dev crd/trials.orrery.dev --timeout=60s >/dev/null
"$K" apply -f "$REPO/experiments/stability-cpu.yaml" >/dev/null || fail "experiments/stability-cpu.yaml was refused"
"$K" get experiments | grep -q stability-cpu || fail "kubectl get experiments does not list it"
echo "ok: experiments/stability-cpu.yaml applied as an Experiment; kubectl get experiments: $("$K" get experiments --no-headers | tr -s ' ')"
cat > "$DIR/bad.yaml" <<'BAD'
apiVersion: orrery.dev/v1alpha1
kind: Experiment
metadata: {name: bad}
spec:
  workload: stability
  model: {d_model: 64, heads: 5}
  training: {lr: -1}
BAD
if out=$("$K" apply -f "$DIR/bad.yaml" 2>&1); then fail "an invalid Experiment was accepted"; fi
echo "$out" | grep -q 'spec.training.lr' || fail "the refusal does not name spec.training.lr: $out"
echo "$out" | grep -q 'd_model must be divisible by heads' || fail "the CEL rule did not fire: $out"
echo "ok: invalid Experiment refused: $out"

# Objects written before the workload registry (an Experiment with its params, a Trial as the old
# operator wrote it) are still accepted by today's CRDs; params of the wrong range are refused.
"$K" create namespace orrery >/dev/null
"$K" apply -f "$REPO/operator/tests/data/" >/dev/null || fail "the v0 Experiment and Trial were refused"
"$K" get trial old-sweep-3 -n orrery -o jsonpath='{.spec.config.params.qk_layernorm}' | grep -q true \
  || fail "the v0 Trial lost its params"
sed 's/z_loss: 1.0e-4/z_loss: 2.0/; s/name: old-sweep,/name: old-sweep-bad,/' "$REPO/operator/tests/data/v0-experiment.yaml" > "$DIR/bad-params.yaml"
if out=$("$K" apply -f "$DIR/bad-params.yaml" 2>&1); then fail "params.z_loss 2.0 was accepted"; fi
echo "$out" | grep -q 'spec.params.z_loss' || fail "the refusal does not name spec.params.z_loss: $out"
echo "ok: v0 Experiment and Trial accepted by today's CRDs; a bad params value refused: $out"
echo "k8s control-plane smoke test: 5 passed, 0 failed"
