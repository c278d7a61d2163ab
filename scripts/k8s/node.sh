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
# reach it (the `kubernetes` Service) from the Pods' bridge (orrery-cni0, 10.213.0.0/16). Service
# addresses (10.96.0.0/16) are routed to orrery0, never to the machine's default route, and Pods
# cannot forward out of their bridge (no masquerading, a FORWARD drop). One real node runs on a
# machine at a time.
#
# What it changes on the machine, and puts back at `stop`: the kubelet's kernel settings
# (vm.overcommit_memory, kernel.panic, kernel.panic_on_oops, kernel.keys.*) and ip_forward, saved
# before it starts; its iptables and ip6tables rules (KUBE-*, one FORWARD rule); the bridges; the
# Pods' network namespaces, cgroups and CNI cache entries. A run killed before `stop` is cleaned up
# by the next `net-up`.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
NODE_NAME=orrery-node
NODE_IP=10.99.0.1
NODE_BRIDGE=orrery0
POD_BRIDGE=orrery-cni0
POD_CIDR=10.213.0.0/16
# control-plane.sh's --service-cluster-ip-range.
SERVICE_CIDR=10.96.0.0/16
CNI_NETWORK=orrery-test
CACHE=${ORRERY_K8S_CACHE:-$HOME/.cache/orrery/k8s}
# Image layers persist here between runs: the worker image (about 4 GB) is unpacked once per change.
STORE=${ORRERY_NODE_STORE:-$CACHE/containerd}
# The folder of the node that runs (or ran, if it was killed) here, and the kernel settings it found.
OWNER="$CACHE/node-owner"
SYSCTL_SAVED="$CACHE/node-sysctl.saved"
SYSCTLS=(vm.overcommit_memory kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys
  kernel.keys.root_maxbytes net.ipv4.ip_forward)
say() { echo "==> [node] $*" >&2; }
die() { say "$*"; exit 1; }
# shellcheck source=lib.sh
. "$HERE/lib.sh"

need() {
  [ "$(id -u)" = 0 ] || die "a real node needs root (containerd, mounts, iptables)"
  local missing=()
  for c in containerd containerd-shim-runc-v2 runc ctr iptables ip6tables buildah gcc ip openssl pgrep sysctl; do
    command -v "$c" >/dev/null || missing+=("$c")
  done
  [ -x /usr/lib/cni/bridge ] || missing+=("/usr/lib/cni/bridge")
  [ ${#missing[@]} = 0 ] || die "missing ${missing[*]}: run 'make node-tools' (Debian: containerd runc containernetworking-plugins iptables buildah gcc libc6-dev)"
  # A Pod reaches another on its bridge through a Service only if bridged traffic passes iptables.
  [ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null)" = 1 ] \
    || die "Services between Pods need br_netfilter with net.bridge.bridge-nf-call-iptables=1 (modprobe br_netfilter)"
}

net_up() {
  need
  mkdir -p "$CACHE"
  if [ -f "$OWNER" ]; then
    local old
    old=$(cat "$OWNER")
    pgrep -f -- "$NODE_IP" >/dev/null && die "a real node runs here already (its folder: $old): one at a time"
    say "the node of $old was never stopped (its run was killed?): stopping what it left"
    (DIR=$old; mkdir -p "$DIR"; stop)
  elif iptables -t nat -S KUBE-SERVICES >/dev/null 2>&1; then
    die "this machine has Service rules (iptables KUBE-SERVICES) of a kube-proxy that is not the test node's; the test node would clash with it"
  fi
  echo "$DIR" > "$OWNER"
  local k
  for k in "${SYSCTLS[@]}"; do echo "$k=$(sysctl -n "$k")"; done > "$SYSCTL_SAVED"
  ip link add "$NODE_BRIDGE" type bridge
  ip addr add "$NODE_IP/32" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
  ip route add "$SERVICE_CIDR" dev "$NODE_BRIDGE"
  iptables -I FORWARD 1 -i "$POD_BRIDGE" ! -o "$POD_BRIDGE" -m comment --comment "$CNI_NETWORK: Pods stay on their bridge" -j DROP
  node_pki
  echo "$NODE_IP"
}

# The sandbox ("pause") image: images/pause/pause.c, static, alone in an image; cached by its hash.
sandbox_archive() {
  local src="$REPO/images/pause/pause.c" out
  out="$CACHE/pause-$PAUSE_SUM.tar"
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

# Tagged by the source's hash, so a changed pause.c is a new image even in a store that keeps the old.
PAUSE_SUM=$(sha256sum "$REPO/images/pause/pause.c" | cut -c1-12)
SANDBOX_IMAGE=localhost/orrery-pause:$PAUSE_SUM

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
{"cniVersion": "1.0.0", "name": "$CNI_NETWORK", "plugins": [
  {"type": "bridge", "bridge": "$POD_BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": "$DIR/cni-ipam"}},
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
  import "$pause"

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
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--config $DIR/"
}

stop_component() {
  alive "$1" || { rm -f "$DIR/$1.pid"; return 0; }
  kill "$(cat "$DIR/$1.pid")" 2>/dev/null || true
  for _ in $(seq 1 40); do alive "$1" || break; sleep 0.25; done
  alive "$1" && kill -9 "$(cat "$DIR/$1.pid")" 2>/dev/null || true
  rm -f "$DIR/$1.pid"
}

# What the node leaves in the machine's network: Pods' namespaces, iptables rules, bridges.
clean_network() {
  local ns ipt table rule chain
  # Pods' network namespaces (containerd names them cni-*) holding an address of the Pods' range.
  for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^cni-/ {print $1}'); do
    if ip -n "$ns" -4 addr 2>/dev/null | grep -qF " ${POD_CIDR%.*.*}."; then ip netns delete "$ns" 2>/dev/null || true; fi
  done
  rm -f /var/lib/cni/results/"$CNI_NETWORK"-* /var/lib/cni/results/cni-loopback-*
  # The rules of kube-proxy and the kubelet (KUBE-*; net-up refused to start beside another
  # kube-proxy, so they are this node's) and the FORWARD rule: the jumps, then the chains.
  for ipt in iptables ip6tables; do
    for table in filter nat mangle; do
      # xargs splits the rule as iptables -S quotes it (comments have spaces).
      while read -r rule; do
        xargs "$ipt" -t "$table" <<<"${rule/#-A/-D}" 2>/dev/null || true
      done < <("$ipt" -t "$table" -S 2>/dev/null | grep -E '^-A [A-Z]+ .*-j KUBE-' | grep -v '^-A KUBE-' || true)
      for chain in $("$ipt" -t "$table" -S 2>/dev/null | sed -n 's/^-N \(KUBE-.*\)/\1/p'); do
        "$ipt" -t "$table" -F "$chain" 2>/dev/null || true
      done
      for chain in $("$ipt" -t "$table" -S 2>/dev/null | sed -n 's/^-N \(KUBE-.*\)/\1/p'); do
        "$ipt" -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
  while iptables -D FORWARD -i "$POD_BRIDGE" ! -o "$POD_BRIDGE" -m comment --comment "$CNI_NETWORK: Pods stay on their bridge" -j DROP 2>/dev/null; do :; done
  ip link delete "$POD_BRIDGE" 2>/dev/null || true
  ip link delete "$NODE_BRIDGE" 2>/dev/null || true
}

stop() {
  local bin="" m t p k v
  [ -f "$DIR/bin-path" ] && bin=$(cat "$DIR/bin-path")
  # Pods first, through the kubelet, as on a cluster: each sandbox is torn down (CNI DEL frees its
  # namespace and address, its cgroups go). Cordoned, so no replacement lands meanwhile.
  if alive kubelet && [ -n "$bin" ]; then
    "$bin/kubectl" --kubeconfig "$DIR/kubeconfig" cordon "$NODE_NAME" >/dev/null 2>&1 || true
    "$bin/kubectl" --kubeconfig "$DIR/kubeconfig" delete pods -A --field-selector "spec.nodeName=$NODE_NAME" \
      --grace-period=1 --timeout=60s >/dev/null 2>&1 || true
  fi
  stop_component kube-proxy
  stop_component kubelet
  # End every container and sandbox left (a Pod the kubelet did not get to), then containerd.
  if alive containerd; then
    for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true; done
    sleep 1
    for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$t" >/dev/null 2>&1 || true; done
    for t in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers delete "$t" >/dev/null 2>&1 || true; done
  fi
  stop_component containerd
  # A run that was killed leaves its processes without pid files: they name the folder.
  pkill -9 -f -- "--config $DIR/" 2>/dev/null || true
  pkill -9 -f -- "-address $DIR/containerd.sock" 2>/dev/null || true
  # Whatever still runs in the Pods' cgroups, then the cgroups themselves (deepest first).
  for p in $(cat /sys/fs/cgroup/pids/kubepods/cgroup.procs /sys/fs/cgroup/pids/kubepods/*/cgroup.procs \
      /sys/fs/cgroup/pids/kubepods/*/*/cgroup.procs /sys/fs/cgroup/pids/kubepods/*/*/*/cgroup.procs 2>/dev/null); do
    kill -9 "$p" 2>/dev/null || true
  done
  find /sys/fs/cgroup/*/kubepods -depth -type d -exec rmdir {} + 2>/dev/null || true
  # Mounts the kubelet and containerd made (Secret volumes are tmpfs, sandboxes' /dev/shm,
  # overlay roots): unmounted deepest first, so the folder can be removed.
  for m in $(awk -v d="$DIR/" -v s="$STORE/" 'index($2, d) == 1 || index($2, s) == 1 {print $2}' /proc/self/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  clean_network
  # The kernel settings as they were before the kubelet and the bridge plugin changed them.
  if [ -f "$SYSCTL_SAVED" ]; then
    while IFS='=' read -r k v; do sysctl -qw "$k=$v" 2>/dev/null || true; done < "$SYSCTL_SAVED"
    rm -f "$SYSCTL_SAVED"
  fi
  [ "$(cat "$OWNER" 2>/dev/null)" = "$DIR" ] && rm -f "$OWNER"
  say "node stopped"
}

case "${1:-}" in
  net-up) mkdir -p "${2:?DIR}"; DIR=$(cd "$2" && pwd); net_up ;;
  start) DIR=$(cd "${2:?DIR}" && pwd); start ;;
  import) DIR=$(cd "${2:?DIR}" && pwd); shift 2; import "$@" ;;
  stop) DIR=$(cd "${2:?DIR}" && pwd); stop ;;
  *) echo "usage: $0 net-up DIR | start DIR | import DIR FILE.tar... | stop DIR" >&2; exit 2 ;;
esac
