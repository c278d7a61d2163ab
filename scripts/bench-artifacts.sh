#!/usr/bin/env bash
# Artifact throughput (docs/benchmarks.md): a 100 MB artifact uploaded to and downloaded from
# `orrery serve` (release build, SQLite, artifacts in a local folder on the same disk) with curl,
# against a plain `cp` of the same file on the same disk, as the peer. Alternating repetitions;
# prints each one's seconds and MB/s, then the medians and the ratios (API / cp, in throughput).
#
#   scripts/bench-artifacts.sh            # 100 MB, 5 repetitions
#   MB=500 REPS=3 scripts/bench-artifacts.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${MB:-100}
REPS=${REPS:-5}
BIN=target/release/orrery
[ "${NO_BUILD:-0}" = 1 ] || cargo build --release --bin orrery -q
[ -x "$BIN" ] || { echo "missing $BIN: cargo build --release --bin orrery" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/orrery-bench-art.XXXXXX")
SERVER=
cleanup() {
  [ -n "$SERVER" ] && { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; }
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TOKEN=bench-$RANDOM$RANDOM
ORRERY_ADMIN_TOKEN=$TOKEN "$BIN" --db "$WORK/o.db" serve --addr "127.0.0.1:$PORT" \
  --artifacts "$WORK/artifacts" >"$WORK/serve.log" 2>&1 &
SERVER=$!
URL=http://127.0.0.1:$PORT
for _ in $(seq 100); do curl -sf "$URL/healthz" >/dev/null && break; sleep 0.1; done
AUTH="Authorization: Bearer $TOKEN"
curl -sf -X POST -H "$AUTH" --data-binary @experiments/stability-cpu.yaml "$URL/api/v1/experiments" >/dev/null
TRIAL=$(curl -sf -H "$AUTH" "$URL/api/v1/experiments/1/trials" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')

echo "==> $(nproc) cores, $(date -u +%FT%TZ), $(git rev-parse --short HEAD 2>/dev/null || echo '?'), a ${MB} MB file, ${REPS} repetitions"
head -c "$((MB * 1000000))" /dev/urandom > "$WORK/model.bin"
DIGEST="sha-256=:$(openssl dgst -sha256 -binary "$WORK/model.bin" | base64 -w0):"
SHA=$(sha256sum "$WORK/model.bin" | cut -d' ' -f1)

secs() { # command... → wall seconds
  local t0 t1
  t0=$(date +%s.%N); "$@"; t1=$(date +%s.%N)
  python3 -c "print(f'{$t1 - $t0:.3f}')"
}
up() { curl -sf -o /dev/null -X PUT -H "$AUTH" -H "Content-Digest: $DIGEST" \
  -H "Content-Type: application/octet-stream" -T "$WORK/model.bin" "$URL/api/v1/trials/$TRIAL/artifacts/model"; }
down() { curl -sf -H "$AUTH" -o "$WORK/down.bin" "$URL/api/v1/trials/$TRIAL/artifacts/model"; }
# Neither side syncs to disk (object_store's local store does not fsync either).
copy() { cp "$WORK/model.bin" "$WORK/copy.bin"; }

: > "$WORK/samples.tsv"
for rep in $(seq "$REPS"); do
  if [ $((rep % 2)) = 1 ]; then
    u=$(secs up); d=$(secs down); c=$(secs copy)
  else
    c=$(secs copy); d=$(secs down); u=$(secs up)
  fi
  [ "$(sha256sum "$WORK/down.bin" | cut -d' ' -f1)" = "$SHA" ] || { echo "the download differs from the upload" >&2; exit 1; }
  rm -f "$WORK/down.bin" "$WORK/copy.bin"
  printf '%s\t%s\t%s\n' "$u" "$d" "$c" >> "$WORK/samples.tsv"
  printf '  rep %s: upload %ss, download %ss, cp %ss\n' "$rep" "$u" "$d" "$c"
done
python3 - "$WORK/samples.tsv" "$MB" <<'PY'
import statistics, sys
rows = [list(map(float, l.split("\t"))) for l in open(sys.argv[1]).read().splitlines()]
mb = float(sys.argv[2])
up, down, cp = (statistics.median(r[i] for r in rows) for i in range(3))
print()
print("| operation | median seconds | MB/s | throughput against cp |")
print("|---|---|---|---|")
for name, s in (("upload through the API (PUT, SHA-256 checked)", up), ("download through the API (GET)", down), ("cp of the same file (the peer)", cp)):
    print(f"| {name} | {s:.3f} | {mb / s:,.0f} | {cp / s:.2f}× |")
PY
