# Shared by control-plane.sh and node.sh (sourced; each defines its own `say`).

# A free TCP port on loopback.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND every 0.5 s; says so and fails on timeout.
wait_for() {
  local what=$1 secs=$2; shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || { say "timed out after ${secs}s waiting for $what"; return 1; }
    sleep 0.5
  done
}
