# Orrery's build entry points. `make demo` and `make test` are what the README promises.
#
# libtorch comes from the pinned PyTorch wheel (torch==2.11.0, what tch 0.24 expects) installed into
# a project-local virtualenv; tch's build script finds it through LIBTORCH_USE_PYTORCH and the
# venv's python, and orrery-worker carries the torch lib/ folder in its rpath (worker/build.rs),
# so nothing needs exporting at run time.

VENV        := .venv
TORCH       := 2.11.0
TORCH_STAMP := $(VENV)/.torch-$(TORCH)
SCHEMATHESIS       := 4.32.5
SCHEMATHESIS_STAMP := $(VENV)/.schemathesis-$(SCHEMATHESIS)
MOTO               := 5.1.18
MOTO_STAMP         := $(VENV)/.moto-$(MOTO)

export LIBTORCH_USE_PYTORCH := 1
export VIRTUAL_ENV          := $(abspath $(VENV))
export PATH                 := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup build demo test fmt lint unit api-contract browser-tools browser k8s-tools e2e-k8s node-tools images e2e-node clean

setup: $(TORCH_STAMP)

$(TORCH_STAMP):
	@echo "==> Setting up libtorch: a virtualenv in $(VENV) with torch==$(TORCH) from PyPI."
	@echo "    The first time this downloads about 3 GB (pip caches it for later set-ups)."
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check --progress-bar on "torch==$(TORCH)" numpy
	@$(VENV)/bin/python -c "import torch; print('==> torch', torch.__version__, 'ready in', torch.__path__[0])"
	@touch $@

build: setup
	@echo "==> Building release binaries (first build compiles libtorch bindings and ~300 crates: several minutes)"
	cargo build --release --workspace --bins

demo: build
	@echo "==> Running experiments/stability-cpu.yaml (14 trials) with the local executor"
	./target/release/orrery run experiments/stability-cpu.yaml

fmt:
	cargo fmt --all -- --check

lint: setup
	cargo clippy --workspace --all-targets -- -D warnings

# The artifact store's S3 test runs against moto's S3 server (PyPI), in the same virtualenv.
$(MOTO_STAMP): $(TORCH_STAMP)
	$(VENV)/bin/pip install --disable-pip-version-check -q "moto[server]==$(MOTO)"
	@touch $@

unit: setup $(MOTO_STAMP)
	cargo test --workspace

# The API against its own OpenAPI description (/openapi.json): schemathesis (PyPI) generates
# requests for every operation; no 5xx, every answer as described (scripts/api-schemathesis.sh).
$(SCHEMATHESIS_STAMP): $(TORCH_STAMP)
	$(VENV)/bin/pip install --disable-pip-version-check -q "schemathesis==$(SCHEMATHESIS)"
	@touch $@

api-contract: setup $(SCHEMATHESIS_STAMP)
	cargo build --bin orrery
	scripts/api-schemathesis.sh

# The web pages in a real browser: Debian's chromium (installed here when missing: CI runs as
# root on Debian), driven by playwright-core from npm (web/package-lock.json; no browser
# download). scripts/browser-test.sh fills a database with a real run and serves it.
browser-tools:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -q chromium >/dev/null || \
	    { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; \
	  else echo "browser tests need Debian's chromium: sudo apt-get install chromium" >&2; exit 1; fi; }
	@chromium --version 2>/dev/null | head -1

browser: setup browser-tools
	cargo build --bin orrery --bin orrery-worker
	scripts/browser-test.sh

# The Kubernetes control plane for the e2e tests, built from Go modules into ~/.cache/orrery/k8s
# (first time on a machine: about 20 minutes on 2 cores; then cached).
k8s-tools:
	scripts/k8s/build-tools.sh

# A real control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok GPU nodes): pods
# requesting nvidia.com/gpu schedule or wait with the reason; the committed CRDs accept the repo's
# spec and refuse a bad one; then the operator's end-to-end scenarios with the chart installed.
e2e-k8s: k8s-tools setup
	cargo build --workspace --bins
	scripts/k8s/smoke-test.sh
	scripts/k8s/e2e-operator.sh

# What the real node and the images need from Debian (installed here when missing: CI runs as
# root on Debian): containerd, runc and the CNI plugins for the node, iptables for kube-proxy,
# buildah and mmdebstrap for the images, gcc and libc6-dev for the node's static sandbox program.
NODE_PACKAGES := containerd runc containernetworking-plugins iptables buildah mmdebstrap gcc libc6-dev
node-tools:
	@missing=$$(for p in $(NODE_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "==> installing $$missing (Debian)"; \
	    apt-get install -y -q $$missing >/dev/null || \
	    { apt-get update -q >/dev/null && apt-get install -y -q $$missing >/dev/null; }; \
	  else echo "the real-node test needs Debian's $$missing: sudo apt-get install $$missing" >&2; exit 1; fi; fi

# The three images (api, operator, worker) from the debug binaries make test builds anyway, as OCI
# archives in target/images (scripts/images.sh; rebuilt only when a binary changed).
images: setup node-tools
	cargo build --workspace --bins
	BIN_DIR=target/debug scripts/images.sh

# A real node beside the control plane: the chart with the images, real worker Pods, a killed
# worker resumed from its checkpoint (scripts/k8s/e2e-node.sh).
e2e-node: k8s-tools images
	scripts/k8s/e2e-node.sh

# Everything CI runs (.ci/run calls exactly this).
test: setup fmt lint unit api-contract browser e2e-k8s e2e-node

clean:
	cargo clean
	rm -rf .orrery
