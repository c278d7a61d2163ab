#!/usr/bin/env bash
# Schemathesis against a running `orrery serve`: generated requests for every operation of
# /openapi.json (examples at the schema's edges, fuzzing, stateful sequences that follow the
# links between operations), checking that nothing answers 5xx and that every answer — status,
# content type, headers, body — is what the description says.
#
#   scripts/api-schemathesis.sh [ORRERY_BIN]       (default target/debug/orrery)
#
# The database is a fresh SQLite file with one experiment of the repo's CPU spec, so reads and
# writes reach real rows. The event streams are left out: they never end, by design.
# `positive_data_acceptance` is not checked: a YAML string or metric name can match the schema
# and still be refused by the spec's validation (422), which is right.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/debug/orrery}
ST=${ST:-$PWD/.venv/bin/st}
[ -x "$BIN" ] || { echo "error: $BIN not built (cargo build --bin orrery)" >&2; exit 2; }
[ -x "$ST" ] || { echo "error: $ST missing (make schemathesis-setup)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/orrery-st.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TOKEN=st-admin-$RANDOM$RANDOM
SERVER=
cleanup() {
  if [ -n "$SERVER" ]; then
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true   # its exit status (143) must not stop the cleanup
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

ORRERY_ADMIN_TOKEN=$TOKEN "$BIN" --database-url "sqlite://$WORK/st.db?mode=rwc" \
  serve --addr "127.0.0.1:$PORT" --artifacts "$WORK/artifacts" >"$WORK/serve.log" 2>&1 &
SERVER=$!
URL=http://127.0.0.1:$PORT
for _ in $(seq 100); do curl -sf "$URL/healthz" >/dev/null && break; sleep 0.1; done
curl -sf -X POST -H "Authorization: Bearer $TOKEN" --data-binary @experiments/stability-cpu.yaml \
  "$URL/api/v1/experiments" >/dev/null

cd "$WORK"   # schemathesis writes its cache here
set +e
"$ST" run "$URL/openapi.json" \
  -H "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection \
  --exclude-path-regex '/events$' \
  --max-examples "${ST_MAX_EXAMPLES:-50}" --request-timeout 10 --seed "${ST_SEED:-1}" \
  --no-color
rc=$?
set -e
if [ $rc -ne 0 ]; then
  echo "---- orrery serve log (last 40 lines) ----"
  tail -40 "$WORK/serve.log"
fi
exit $rc
