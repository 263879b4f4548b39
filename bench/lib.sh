# Shared by the bench scripts (sourced, never run): a free port, a scratch directory with the
# background processes to stop on exit, and the wait for a server to answer.

# A TCP port free on 127.0.0.1 now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# DATA: a new scratch directory; PIDS: processes started in the background (append with
# `PIDS+=($!)`). Both go when the script exits, however it exits.
bench_scratch() {
  DATA=$(mktemp -d)
  PIDS=()
  trap bench_cleanup EXIT
}
bench_cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DATA"
}

# Waits up to 10 s for fnbox serve on 127.0.0.1:PORT to answer /healthz; fails loudly if not.
wait_healthy() {
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$1/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "${0##*/}: fnbox serve on port $1 did not answer /healthz within 10 s" >&2
  return 1
}
