#!/usr/bin/env bash
# A real Kubernetes control plane on loopback for tests: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and kwok (simulated nodes that advertise nvidia.com/gpu and move pods through their
# lifecycle). No Docker. kwok plays the nodes; with --real-node, a real one joins them too (a
# kubelet, kube-proxy and containerd: node.sh), and the API server listens on that node's address.
#
#   control-plane.sh start DIR [NODES] [GPUS_PER_NODE] [--real-node]   # prints `export KUBECONFIG=…`
#   control-plane.sh stop DIR
#
# Binaries come from build-tools.sh (built once per machine, then cached). Ports are picked free.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
say() { echo "==> [control-plane] $*" >&2; }

# shellcheck source=lib.sh
. "$HERE/lib.sh"

start() {
  local dir=$1 nodes=${2:-2} gpus=${3:-2} real=${4:-}
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  # The API server's address: loopback, or the real node's own (Pods cannot reach loopback).
  local addr=127.0.0.1
  if [ "$real" = --real-node ]; then
    addr=$("$HERE/node.sh" net-up "$dir")
    touch "$dir/real-node"
  fi
  local bin
  bin=$("$HERE/build-tools.sh")
  echo "$bin" > "$dir/bin-path"
  local etcd_port peer_port api_port
  etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port)

  say "keys and credentials in $dir"
  openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
  openssl rsa -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
  local token
  token=$(openssl rand -hex 16)
  echo "$token,admin,admin,system:masters" > "$dir/tokens.csv"
  if [ "$real" = --real-node ]; then
    echo "$(openssl rand -hex 16),system:node:orrery-node,node-orrery,system:nodes" >> "$dir/tokens.csv"
    echo "$(openssl rand -hex 16),system:kube-proxy,kube-proxy" >> "$dir/tokens.csv"
  fi
  cat > "$dir/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: orrery-test
  cluster: {server: "https://$addr:$api_port", insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: "$token"}
contexts:
- name: orrery-test
  context: {cluster: orrery-test, user: admin, namespace: default}
current-context: orrery-test
KC

  say "starting etcd on 127.0.0.1:$etcd_port"
  "$bin/etcd" --data-dir "$dir/etcd" --name test \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "test=http://127.0.0.1:$peer_port" --log-level warn \
    > "$dir/etcd.log" 2>&1 &
  echo $! > "$dir/etcd.pid"

  say "starting kube-apiserver on https://$addr:$api_port"
  local kubelet_client=()
  if [ "$real" = --real-node ]; then
    # For logs and exec: the API server calls the kubelet with a client certificate (node.sh).
    kubelet_client=(--kubelet-client-certificate "$dir/node-pki/apiserver-kubelet-client.crt"
      --kubelet-client-key "$dir/node-pki/apiserver-kubelet-client.key"
      --kubelet-preferred-address-types InternalIP)
  fi
  "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address "$addr" --advertise-address "$addr" --secure-port "$api_port" "${kubelet_client[@]}" \
    --cert-dir "$dir/certs" \
    --token-auth-file "$dir/tokens.csv" \
    --authorization-mode Node,RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$dir/sa.pub" --service-account-signing-key-file "$dir/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --allow-privileged \
    > "$dir/kube-apiserver.log" 2>&1 &
  echo $! > "$dir/kube-apiserver.pid"
  export KUBECONFIG="$dir/kubeconfig"
  wait_for "the API server to be ready" 120 "$bin/kubectl" get --raw /readyz

  say "starting kube-controller-manager and kube-scheduler"
  "$bin/kube-controller-manager" --kubeconfig "$dir/kubeconfig" --authentication-kubeconfig "$dir/kubeconfig" \
    --authorization-kubeconfig "$dir/kubeconfig" --leader-elect=false \
    --service-account-private-key-file "$dir/sa.key" --root-ca-file "$dir/certs/apiserver.crt" \
    --controllers '*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route' \
    --secure-port 0 > "$dir/kube-controller-manager.log" 2>&1 &
  echo $! > "$dir/kube-controller-manager.pid"
  "$bin/kube-scheduler" --kubeconfig "$dir/kubeconfig" --authentication-kubeconfig "$dir/kubeconfig" \
    --authorization-kubeconfig "$dir/kubeconfig" --leader-elect=false --secure-port 0 \
    > "$dir/kube-scheduler.log" 2>&1 &
  echo $! > "$dir/kube-scheduler.pid"

  say "starting kwok"
  "$bin/kwok" --kubeconfig "$dir/kubeconfig" --config "$HERE/kwok-stages.yaml" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --cidr 10.244.0.0/16 --node-ip 10.0.0.1 \
    > "$dir/kwok.log" 2>&1 &
  echo $! > "$dir/kwok.pid"

  wait_for "the default service account" 60 "$bin/kubectl" get serviceaccount default
  say "creating $nodes kwok nodes with $gpus nvidia.com/gpu each"
  for i in $(seq 0 $((nodes - 1))); do
    cat <<NODE | "$bin/kubectl" apply -f - >/dev/null
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {type: kwok, kubernetes.io/hostname: kwok-node-$i, orrery.dev/gpu: "true"}
spec: {}
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110", nvidia.com/gpu: "$gpus"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110", nvidia.com/gpu: "$gpus"}
NODE
  done
  wait_for "kwok nodes to be Ready" 60 \
    bash -c "[ \$('$bin/kubectl' get nodes --no-headers 2>/dev/null | grep -c ' Ready') -eq $nodes ]"
  if [ "$real" = --real-node ]; then
    "$HERE/node.sh" start "$dir"
  fi
  say "control plane up: export KUBECONFIG=$dir/kubeconfig"
  echo "export KUBECONFIG=$dir/kubeconfig"
}

# True while the pid stored for component $2 in folder $1 is still that component (not a reused pid).
alive() {
  local pid
  pid=$(cat "$1/$2.pid" 2>/dev/null) || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "/$2 "
}

stop() {
  local dir=$1
  if [ -f "$dir/real-node" ]; then
    "$HERE/node.sh" stop "$dir" || true
  fi
  for c in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    if alive "$dir" "$c"; then
      kill "$(cat "$dir/$c.pid")" 2>/dev/null || true
    fi
  done
  for c in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    for _ in $(seq 1 20); do alive "$dir" "$c" || break; sleep 0.25; done
    if alive "$dir" "$c"; then
      kill -9 "$(cat "$dir/$c.pid")" 2>/dev/null || true
    fi
    rm -f "$dir/$c.pid"
  done
  say "stopped the control plane in $dir"
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  *) echo "usage: $0 start DIR [NODES] [GPUS_PER_NODE] [--real-node] | stop DIR" >&2; exit 2 ;;
esac
