#!/usr/bin/env bash
# A real node for the test control plane: containerd and runc (Debian's), the CNI plugins (a
# bridge), a kubelet and kube-proxy built from k8s.io/kubernetes (build-tools.sh). Pods on it are
# real processes in their own namespaces; kwok's simulated nodes beside it are untouched (kwok
# manages only nodes annotated kwok.x-k8s.io/node=fake).
#
#   node.sh net-up DIR             # the node's address and the API server's kubelet client
#                                  # certificate; before the API server, which binds there
#   node.sh start DIR              # containerd, sandbox image, kubelet, kube-proxy; node Ready
#   node.sh import DIR FILE.tar…   # OCI archives into the node's image store (no registry)
#   node.sh stop DIR               # all of it, with the iptables rules and bridges it made
#
# control-plane.sh calls these (`start DIR NODES GPUS --real-node`); DIR is its folder (tokens,
# kubeconfig, the node's client certificate authority). Needs root and Debian's containerd, runc,
# containernetworking-plugins, iptables, buildah and gcc (`make node-tools` installs them).
#
# Networking: tests here may only talk to loopback or to hosts they made. The node's address is
# 10.99.0.1 on a bridge of its own (orrery0, no ports), so the API server can bind there and Pods
# reach it (the `kubernetes` Service) from the CNI bridge (cni0, 10.88.0.0/16); nothing is sent
# to the machine's own interfaces. Only one real node runs on a machine at a time.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
NODE_NAME=orrery-node
NODE_IP=10.99.0.1
NODE_BRIDGE=orrery0
POD_CIDR=10.88.0.0/16
CACHE=${ORRERY_K8S_CACHE:-$HOME/.cache/orrery/k8s}
# Image layers persist here between runs: the worker image (about 4 GB) is unpacked once per change.
STORE=${ORRERY_NODE_STORE:-$CACHE/containerd}
SANDBOX_IMAGE=localhost/orrery-pause:1
say() { echo "==> [node] $*" >&2; }
die() { say "$*"; exit 1; }
# shellcheck source=lib.sh
. "$HERE/lib.sh"

need() {
  [ "$(id -u)" = 0 ] || die "a real node needs root (containerd, mounts, iptables)"
  local missing=()
  for c in containerd containerd-shim-runc-v2 runc ctr iptables buildah gcc ip; do
    command -v "$c" >/dev/null || missing+=("$c")
  done
  [ -x /usr/lib/cni/bridge ] || missing+=("/usr/lib/cni/bridge")
  [ ${#missing[@]} = 0 ] || die "missing ${missing[*]}: run 'make node-tools' (Debian: containerd runc containernetworking-plugins iptables buildah gcc)"
}

net_up() {
  need
  if ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
    if pgrep -f -- "--hostname-override $NODE_NAME" >/dev/null; then
      die "a real node ($NODE_NAME) runs here already: one real-node test at a time"
    fi
    # An earlier run ended without stopping its node (killed): clear what it left.
    say "removing the network an earlier, unstopped node left ($NODE_BRIDGE, cni0, iptables rules)"
    clean_network
  fi
  ip link add "$NODE_BRIDGE" type bridge
  ip addr add "$NODE_IP/32" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
  node_pki
  echo "$NODE_IP"
}

# The sandbox ("pause") image: images/pause/pause.c, static, alone in an image; cached by its hash.
sandbox_archive() {
  local src="$REPO/images/pause/pause.c" sum out
  sum=$(sha256sum "$src" | cut -c1-12)
  out="$CACHE/pause-$sum.tar"
  if [ ! -s "$out" ]; then
    say "building the sandbox image from images/pause/pause.c"
    local tmp c
    tmp=$(mktemp -d)
    gcc -static -O2 -o "$tmp/pause" "$src"
    c=$(buildah from scratch)
    buildah copy --quiet "$c" "$tmp/pause" /pause >/dev/null
    buildah config --entrypoint '["/pause"]' --user 65535:65535 "$c"
    buildah commit --quiet "$c" "$SANDBOX_IMAGE" >/dev/null
    buildah rm "$c" >/dev/null
    mkdir -p "$CACHE"
    buildah push --quiet "$SANDBOX_IMAGE" "oci-archive:$out.partial:$SANDBOX_IMAGE" >/dev/null
    mv "$out.partial" "$out"
    rm -rf "$tmp"
  fi
  echo "$out"
}

ctr_() { ctr --address "$DIR/containerd.sock" -n k8s.io "$@"; }

import() {
  local f
  for f in "$@"; do
    local start=$SECONDS
    # Already there (same name, same manifest digest): skip reading gigabytes again.
    local index name digest
    index=$(tar -xOf "$f" index.json 2>/dev/null || true)
    name=$(sed -n 's/.*"org.opencontainers.image.ref.name":"\([^"]*\)".*/\1/p' <<<"$index")
    digest=$(sed -n 's/.*"digest":"\(sha256:[0-9a-f]*\)".*/\1/p' <<<"$index")
    if [ -n "$name" ] && [ -n "$digest" ] && ctr_ images ls "name==$name" 2>/dev/null | grep -qF "$digest"; then
      say "$(basename "$f"): $name is there already"
      continue
    fi
    ctr_ images import "$f" >/dev/null || die "ctr images import $f failed"
    say "imported $(basename "$f") in $((SECONDS - start))s"
  done
}

# A client certificate for the API server's calls to the kubelet (logs, exec), and the authority
# the kubelet trusts for them: the kubelet asks the API server whether each caller may (Webhook).
node_pki() {
  local pki="$DIR/node-pki"
  mkdir -p "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=orrery-test-node-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" \
    -keyout "$pki/apiserver-kubelet-client.key" -out "$pki/client.csr" 2>/dev/null
  openssl x509 -req -in "$pki/client.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 2 -out "$pki/apiserver-kubelet-client.crt" 2>/dev/null
}

kubeconfig_for() { # user token file
  local server
  server=$(sed -n 's/.*server: "\(.*\)".*/\1/p' "$DIR/kubeconfig")
  cat > "$3" <<KC
apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "$server", insecure-skip-tls-verify: true}}]
users: [{name: $1, user: {token: "$2"}}]
contexts: [{name: test, context: {cluster: test, user: $1}}]
current-context: test
KC
}

start() {
  need
  local bin
  bin=$(cat "$DIR/bin-path")
  for b in kubelet kube-proxy; do [ -x "$bin/$b" ] || die "no $bin/$b: run make k8s-tools"; done
  ip addr show "$NODE_BRIDGE" 2>/dev/null | grep -q "$NODE_IP" || die "no $NODE_IP on $NODE_BRIDGE: node.sh net-up DIR comes first"
  local pause
  pause=$(sandbox_archive)

  mkdir -p "$DIR/cni" "$STORE" "$DIR/pod-logs"
  cat > "$DIR/cni/10-orrery.conflist" <<CNI
{"cniVersion": "1.0.0", "name": "orrery-test", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": "$DIR/cni-ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "loopback"}
]}
CNI
  # restrict_oom_score_adj: this machine's container lacks CAP_SYS_RESOURCE, so the sandbox's
  # oom_score_adj of -998 would make runc fail ('can't get final child's PID from pipe: EOF').
  cat > "$DIR/containerd.toml" <<TOML
version = 2
root = "$STORE"
state = "$DIR/containerd-state"
[grpc]
  address = "$DIR/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  sandbox_image = "$SANDBOX_IMAGE"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$DIR/cni"
TOML
  say "starting containerd (images in $STORE)"
  containerd --config "$DIR/containerd.toml" > "$DIR/containerd.log" 2>&1 &
  echo $! > "$DIR/containerd.pid"
  wait_for "containerd" 30 ctr_ version || die "containerd did not start: $(tail -5 "$DIR/containerd.log")"
  ctr_ images check "name==$SANDBOX_IMAGE" 2>/dev/null | grep -q complete || import "$pause"

  local node_token proxy_token
  node_token=$(sed -n 's/^\([^,]*\),system:node:.*/\1/p' "$DIR/tokens.csv")
  proxy_token=$(sed -n 's/^\([^,]*\),system:kube-proxy,.*/\1/p' "$DIR/tokens.csv")
  [ -n "$node_token" ] && [ -n "$proxy_token" ] || die "no node or kube-proxy token in $DIR/tokens.csv (control-plane.sh start ... --real-node makes them)"
  kubeconfig_for "system:node:$NODE_NAME" "$node_token" "$DIR/kubelet.kubeconfig"
  kubeconfig_for system:kube-proxy "$proxy_token" "$DIR/kube-proxy.kubeconfig"

  cat > "$DIR/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$DIR/containerd.sock
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $DIR/node-pki/ca.crt}
authorization: {mode: Webhook}
# This machine: cgroup v1 without systemd, swap on, a shared disk.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
enforceNodeAllocatable: []
localStorageCapacityIsolation: false
evictionHard: {}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# No cluster DNS add-on, and Pods must not inherit the machine's resolvers.
resolvConf: ""
podLogsDir: $DIR/pod-logs
serializeImagePulls: false
YAML
  say "starting kubelet as node $NODE_NAME ($NODE_IP)"
  "$bin/kubelet" --config "$DIR/kubelet.yaml" --kubeconfig "$DIR/kubelet.kubeconfig" \
    --root-dir "$DIR/kubelet" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" \
    --node-labels "orrery.dev/node=real" > "$DIR/kubelet.log" 2>&1 &
  echo $! > "$DIR/kubelet.pid"

  cat > "$DIR/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $DIR/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
nodePortAddresses: ["$NODE_IP/32"]
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:$(free_port)
metricsBindAddress: 127.0.0.1:$(free_port)
# Leave the machine's conntrack sysctls alone (not writable in this container).
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
  say "starting kube-proxy"
  "$bin/kube-proxy" --config "$DIR/kube-proxy.yaml" > "$DIR/kube-proxy.log" 2>&1 &
  echo $! > "$DIR/kube-proxy.pid"

  # kube-proxy programs the Services' rules (the `kubernetes` Service first) or has exited.
  wait_for "kube-proxy's Service rules" 60 bash -c "iptables -t nat -S KUBE-SERVICES | grep -q default/kubernetes" \
    || die "kube-proxy did not program the Services: $(grep -v '^I' "$DIR/kube-proxy.log" | tail -5)"
  wait_for "node $NODE_NAME to be Ready" 120 bash -c \
    "'$bin/kubectl' --kubeconfig '$DIR/kubeconfig' get node $NODE_NAME --no-headers | grep -q ' Ready'" \
    || die "node $NODE_NAME is not Ready: $(tail -5 "$DIR/kubelet.log")"
  say "node $NODE_NAME Ready"
}

alive() { # component
  local pid
  pid=$(cat "$DIR/$1.pid" 2>/dev/null) || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "$1 "
}

stop_component() {
  alive "$1" || { rm -f "$DIR/$1.pid"; return 0; }
  kill "$(cat "$DIR/$1.pid")" 2>/dev/null || true
  for _ in $(seq 1 40); do alive "$1" || break; sleep 0.25; done
  alive "$1" && kill -9 "$(cat "$DIR/$1.pid")" 2>/dev/null || true
  rm -f "$DIR/$1.pid"
}

# What the node leaves in the machine's network: the sandboxes' namespaces, iptables rules, bridges.
clean_network() {
  local ns table rule chain
  # The sandboxes' network namespaces (containerd names them cni-*; only this node makes them).
  for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^cni-/ {print $1}'); do ip netns delete "$ns" 2>/dev/null || true; done
  # The iptables rules of kube-proxy, the kubelet (KUBE-*) and the CNI plugins (CNI-*): the jumps
  # to their chains, then the chains.
  for table in filter nat mangle; do
    while read -r rule; do
      eval "iptables -t $table ${rule/#-A/-D}" 2>/dev/null || true
    done < <(iptables -t "$table" -S 2>/dev/null | grep -E '^-A [A-Z]+ .*-j (KUBE|CNI)-' | grep -vE '^-A (KUBE|CNI)-' || true)
    for chain in $(iptables -t "$table" -S 2>/dev/null | sed -n 's/^-N \(\(KUBE\|CNI\)-.*\)/\1/p'); do
      iptables -t "$table" -F "$chain" 2>/dev/null || true
    done
    for chain in $(iptables -t "$table" -S 2>/dev/null | sed -n 's/^-N \(\(KUBE\|CNI\)-.*\)/\1/p'); do
      iptables -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
  ip link delete cni0 2>/dev/null || true
  ip link delete "$NODE_BRIDGE" 2>/dev/null || true
}

stop() {
  stop_component kube-proxy
  stop_component kubelet
  # The kubelet is gone: end every container and sandbox it left, then containerd.
  if alive containerd; then
    local t
    for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true; done
    sleep 1
    for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$t" >/dev/null 2>&1 || true; done
    for t in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers delete "$t" >/dev/null 2>&1 || true; done
  fi
  stop_component containerd
  pkill -f "containerd-shim-runc-v2 -namespace k8s.io -id .* -address $DIR/containerd.sock" 2>/dev/null || true
  # Mounts the kubelet and containerd made (Secret volumes are tmpfs, sandboxes' /dev/shm,
  # overlay roots): unmounted deepest first, so the folder can be removed.
  local m
  for m in $(awk -v d="$DIR/" -v s="$STORE/" 'index($2, d) == 1 || index($2, s) == 1 {print $2}' /proc/self/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  clean_network
  say "node stopped"
}

case "${1:-}" in
  net-up) mkdir -p "${2:?DIR}"; DIR=$(cd "$2" && pwd); net_up ;;
  start) DIR=$(cd "${2:?DIR}" && pwd); start ;;
  import) DIR=$(cd "${2:?DIR}" && pwd); shift 2; import "$@" ;;
  stop) DIR=$(cd "${2:?DIR}" && pwd); stop ;;
  *) echo "usage: $0 net-up DIR | start DIR | import DIR FILE.tar... | stop DIR" >&2; exit 2 ;;
esac
