#!/usr/bin/env bash
# Builds Orrery's images (orrery-api, orrery-operator, orrery-worker) from images/Containerfile
# without a Docker daemon or a registry: a Debian 12 root file system made by mmdebstrap from
# Debian's packages is the base, buildah builds each target on it (no RUN steps, so no container
# runtime is needed), and each image is written as an OCI archive that
# `ctr -n k8s.io images import` (a node without a registry) or `podman load` reads.
#
#   make build && scripts/images.sh            # all three: target/images/orrery-*.tar
#   scripts/images.sh --stage                  # only the build context (for docker/podman build)
#
# Needs (Debian): buildah, mmdebstrap; run as root (buildah's storage in /var/lib/containers and
# mmdebstrap's chroot). TAG (default: the workspace version), OUT (default: target/images), VENV (the
# virtualenv with the pinned torch wheel, default: .venv), BIN_DIR (the binaries, default
# target/release). The base file system is cached in OUT.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
OUT=${OUT:-target/images}
VENV=${VENV:-.venv}
BIN_DIR=${BIN_DIR:-target/release}
TAG=${TAG:-$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)}
export BUILDAH_ISOLATION=chroot

for b in orrery orrery-operator orrery-worker; do
  [ -x "$BIN_DIR/$b" ] || { echo "missing $BIN_DIR/$b: run 'make build' first" >&2; exit 1; }
done
site=$("$VENV/bin/python" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))')
[ -d "$site/nvidia" ] || { echo "no CUDA libraries beside torch in $site (the pinned wheel brings them)" >&2; exit 1; }

# --- the build context: binaries and libtorch as the wheel lays them out (hard links, no copies) ---
ctx="$OUT/context"
rm -rf "$ctx"
mkdir -p "$ctx/bin" "$ctx/torch"
# Debug information stays behind (a debug build's binaries are mostly that); symbols stay, so a
# panic's backtrace still names functions.
for b in orrery orrery-operator orrery-worker; do
  strip --strip-debug -o "$ctx/bin/$b" "$BIN_DIR/$b" 2>/dev/null || cp "$BIN_DIR/$b" "$ctx/bin/"
done
cp -al "$site/torch/lib" "$ctx/torch/lib" 2>/dev/null || cp -a "$site/torch/lib" "$ctx/torch/lib"
cp -al "$site/nvidia" "$ctx/nvidia" 2>/dev/null || cp -a "$site/nvidia" "$ctx/nvidia"
# Python's leftovers are not libraries.
find "$ctx/torch" "$ctx/nvidia" \( -name '__pycache__' -o -name '*.py' -o -name include \) -prune -exec rm -rf {} +
echo "==> build context in $ctx ($(du -sh "$ctx" | cut -f1))"
[ "${1:-}" = --stage ] && exit 0

for tool in buildah mmdebstrap; do
  command -v $tool >/dev/null || { echo "needs $tool (Debian: apt-get install buildah mmdebstrap)" >&2; exit 1; }
done

# --- the base: Debian 12, essential packages, libstdc++ and CA certificates; no docs -------------
base_tar="$OUT/debian-bookworm-base.tar"
if [ ! -s "$base_tar" ]; then
  echo "==> base root file system (mmdebstrap, Debian 12)"
  mmdebstrap --quiet --format=tar --variant=essential --include=libstdc++6,ca-certificates \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' bookworm "$OUT/base-partial.tar"
  mv "$OUT/base-partial.tar" "$base_tar"
fi

# --- the three images --------------------------------------------------------------------------
# Nothing to do when the archives were built from this very context (tag, binaries, libraries by
# name and size, base, Containerfile): the stamp beside them says which.
base_sum=$(sha256sum "$base_tar" | cut -c1-12)
sum=$( { echo "$TAG"; echo "$base_sum"; sha256sum images/Containerfile "$ctx"/bin/*; (cd "$ctx" && find torch nvidia -type f -printf '%P %s\n' | sort); } | sha256sum | cut -c1-16)
stamp="$OUT/images.stamp"
if [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ] && [ -s "$OUT/orrery-api.tar" ] && [ -s "$OUT/orrery-operator.tar" ] && [ -s "$OUT/orrery-worker.tar" ]; then
  echo "==> images up to date ($stamp)"
  exit 0
fi
rm -f "$stamp"
# The base as an image, named by its file's hash (a new base file is a new base image).
base=localhost/orrery-base:bookworm-$base_sum
if ! buildah inspect --type image "$base" >/dev/null 2>&1; then
  c=$(buildah from scratch)
  buildah add --quiet "$c" "$base_tar" / >/dev/null
  buildah commit --quiet "$c" "$base" >/dev/null
  buildah rm "$c" >/dev/null
fi
for target in api operator worker; do
  image="localhost/orrery-$target:$TAG"
  echo "==> $image"
  # --layers: each COPY is cached by its content, so a rebuild after a code change makes only the
  # binary's layer again, and a node that has the libtorch layers (digests unchanged) keeps them.
  buildah build --quiet --layers --build-arg "BASE=$base" -f images/Containerfile \
    --target "$target" -t "$image" "$ctx" >/dev/null
  rm -f "$OUT/orrery-$target.tar"
  buildah push --quiet "$image" "oci-archive:$OUT/orrery-$target.tar:$image" >/dev/null
done
buildah rmi --prune >/dev/null 2>&1 || true
echo "$sum" > "$stamp"
buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' | grep 'orrery-\(api\|operator\|worker\)' | sort
ls -l "$OUT"/orrery-*.tar | awk '{print $NF": "$5" bytes"}'
