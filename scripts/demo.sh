#!/usr/bin/env bash
# Starts fusebox with simulated TF Serving backends on loopback and shows a prediction through
# it. Run by `make demo` after the build. Interactive: keeps serving until Ctrl-C. Otherwise
# (no terminal, or DEMO_EXIT=1) it stops by itself after the demonstration.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/bin
http_port=${FUSEBOX_HTTP_PORT:-8080}
admin_port=${FUSEBOX_ADMIN_PORT:-9901}
export FUSEBOX_HTTP_PORT=$http_port FUSEBOX_ADMIN_PORT=$admin_port
logdir=$(mktemp -d -t fusebox-demo.XXXXXX)
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 0' INT TERM

for port in 8501 8502 8511 "$http_port" "$admin_port"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "demo: port $port on 127.0.0.1 is already in use; stop what uses it (or set FUSEBOX_HTTP_PORT / FUSEBOX_ADMIN_PORT)" >&2
    exit 1
  fi
done

echo "== starting simulated TF Serving replicas (tfs-sim) on 127.0.0.1:8501, :8502 and :8511"
"$bin/tfs-sim" --rest-port 8501 --model half_plus_two >"$logdir/sim1.log" 2>&1 & pids+=($!)
"$bin/tfs-sim" --rest-port 8502 --model half_plus_two >"$logdir/sim2.log" 2>&1 & pids+=($!)
"$bin/tfs-sim" --rest-port 8511 --model light:half_plus_three >"$logdir/sim3.log" 2>&1 & pids+=($!)

echo "== starting fusebox with config/fusebox.yaml (logs: $logdir/fusebox.log)"
"$bin/fusebox" --config config/fusebox.yaml >"$logdir/fusebox.out" 2>"$logdir/fusebox.log" & pids+=($!)

ready=""
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$admin_port/readyz" >/dev/null 2>&1; then ready=yes; break; fi
  if ! kill -0 "${pids[-1]}" 2>/dev/null; then break; fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "demo: fusebox did not become ready; its log:" >&2
  cat "$logdir/fusebox.log" >&2
  exit 1
fi

run() {
  local shown=() arg
  for arg in "$@"; do
    if [[ $arg =~ [^A-Za-z0-9_./:=-] ]]; then shown+=("'$arg'"); else shown+=("$arg"); fi
  done
  echo
  echo "\$ ${shown[*]}"
  "$@"
  echo
}
run curl -s -XPOST "localhost:$http_port/v1/models/half_plus_two:predict" -d '{"instances":[1.0,2.0,5.0]}'
run curl -s "localhost:$http_port/v1/models/half_plus_two"
run curl -s -XPOST "localhost:$http_port/v1/models/light:predict" -d '{"instances":[1.0,2.0,5.0]}'
run curl -s "localhost:$admin_port/readyz"
echo
echo "fusebox serves on http://127.0.0.1:$http_port (admin: http://127.0.0.1:$admin_port/metrics)"
if [ -t 0 ] && [ "${DEMO_EXIT:-0}" != 1 ]; then
  echo "Press Ctrl-C to stop the demo."
  wait "${pids[-1]}"
else
  echo "Stopping the demo (non-interactive run)."
fi
