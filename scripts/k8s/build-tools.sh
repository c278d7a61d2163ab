#!/usr/bin/env bash
# Builds the Kubernetes control plane used by Orrery's end-to-end tests from Go modules (no Docker,
# no downloads outside the Go module proxy): kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl, and for the real node kubelet and kube-proxy (k8s.io/kubernetes), etcd (go.etcd.io/etcd/server/v3), kwok (sigs.k8s.io/kwok) and helm.
#
# Binaries land in $ORRERY_K8S_CACHE/<versions>/bin (default ~/.cache/orrery/k8s); a finished build is
# reused, so only the first run on a machine pays (see README for timings). Prints the bin folder.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.34.4}
ETCD_VERSION=${ETCD_VERSION:-v3.6.5}
KWOK_VERSION=${KWOK_VERSION:-v0.7.0}
HELM_VERSION=${HELM_VERSION:-v3.19.0}
CACHE=${ORRERY_K8S_CACHE:-$HOME/.cache/orrery/k8s}
ROOT="$CACHE/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-helm-$HELM_VERSION"
BIN="$ROOT/bin"
TOOLS=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy etcd kwok helm)
KUBE=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)

say() { echo "==> [k8s-tools] $*" >&2; }

all_built() {
  for t in "${TOOLS[@]}"; do [ -x "$BIN/$t" ] || return 1; done
}

command -v go >/dev/null || { say "Go is needed to build the test control plane (Go >= 1.24; Debian: golang-go)"; exit 1; }

if all_built; then
  echo "$BIN"
  exit 0
fi
mkdir -p "$BIN" "$ROOT/src"
export GOFLAGS=-mod=mod
export CGO_ENABLED=0

timed() { # name, command...
  local name=$1; shift
  if [ -x "$BIN/$name" ]; then return 0; fi
  local start=$SECONDS
  say "building $name (first time on this machine: several minutes)"
  "$@"
  say "built $name in $((SECONDS - start))s"
}

# --- k8s.io/kubernetes: its go.mod requires every staging module (k8s.io/api, client-go, ...) at
# v0.0.0 and replaces them with local folders; a consumer must map each to the published v0.X.Y.
build_kube() {
  local src="$ROOT/src/kubernetes"
  mkdir -p "$src"
  cd "$src"
  if [ ! -f go.mod ]; then
    go mod init orrery.dev/k8s-tools >/dev/null 2>&1
    local minor=${K8S_VERSION#v1.}
    local gomod
    gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    {
      echo "require k8s.io/kubernetes $K8S_VERSION"
      echo "replace ("
      grep -E '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$gomod" | awk -v v="v0.$minor" '{print "\t" $1 " => " $1 " " v}'
      echo ")"
    } >> go.mod
  fi
  # Rewritten when it lacks a command (a cache made before kubelet and kube-proxy were added).
  local c stale=0
  for c in "${KUBE[@]}"; do grep -qF "cmd/$c\"" tools.go 2>/dev/null || stale=1; done
  if [ "$stale" = 1 ]; then
    {
      printf '//go:build tools\n\npackage tools\n\nimport (\n'
      for c in "${KUBE[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"; done
      printf ')\n'
    } > tools.go
    say "resolving k8s.io/kubernetes $K8S_VERSION modules"
    go mod tidy -e >/dev/null 2>&1 || true
  fi
  for c in "${KUBE[@]}"; do
    timed "$c" go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${K8S_VERSION#v1.}" -o "$BIN/$c" "k8s.io/kubernetes/cmd/$c"
  done
}

build_etcd() {
  local src="$ROOT/src/etcd"
  mkdir -p "$src"
  cd "$src"
  if [ ! -f go.mod ]; then
    go mod init orrery.dev/etcd >/dev/null 2>&1
    cat > main.go <<'GO'
// etcd, as the upstream binary: its main only calls etcdmain.Main.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1
    go mod tidy >/dev/null 2>&1
  fi
  timed etcd go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" .
}

build_kwok() {
  timed kwok env GOBIN="$BIN" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
}

build_helm() {
  timed helm env GOBIN="$BIN" go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

total=$SECONDS
build_etcd
build_kwok
build_kube
build_helm
all_built || { say "some tools are missing in $BIN"; exit 1; }
say "all tools built in $((SECONDS - total))s into $BIN"
echo "$BIN"
