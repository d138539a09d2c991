#!/usr/bin/env bash
# A first proxy-overhead comparison: fusebox vs nginx (and direct), one worker thread each,
# proxying the same tfs-sim, same wrk load, alternating, several rounds; prints medians.
#   bench/quick_compare.sh [seconds-per-run=10] [rounds=3] [connections=50]
# Loopback only; stops by itself. Needs: scripts/install-deps.sh --bench, make build.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}; rounds=${2:-3}; conns=${3:-50}
bin=build/bin
work=$(mktemp -d -t fusebox-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

coproc SIM { exec "$bin/tfs-sim" --rest-port 0 --threads 1; }
pids+=("$SIM_PID"); read -r sim_port <&"${SIM[0]}"

fb_http=$(free_port); fb_admin=$(free_port); ng_port=$(free_port)
cat >"$work/fusebox.yaml" <<YAML
server: {threads: 1}
listeners:
  http: {address: 127.0.0.1, port: $fb_http}
  admin: {address: 127.0.0.1, port: $fb_admin}
pools:
  sim: {endpoints: [{address: 127.0.0.1, port: $sim_port}]}
routes:
  - {name: half_plus_two, match: {model: half_plus_two}, pool: sim}
logging: {level: warn, access_log: false}
YAML
"$bin/fusebox" --config "$work/fusebox.yaml" >/dev/null 2>"$work/fusebox.log" & pids+=($!)

cat >"$work/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx-body;
  proxy_temp_path $work/nginx-proxy;
  upstream tfs { server 127.0.0.1:$sim_port; keepalive 128; }
  server {
    listen 127.0.0.1:$ng_port;
    location / {
      proxy_pass http://tfs;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
NGINX
nginx -c "$work/nginx.conf" -p "$work" & pids+=($!)

cat >"$work/predict.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"instances": [1.0, 2.0, 5.0]}'
wrk.headers["Content-Type"] = "application/json"
LUA

wait_up() { for _ in $(seq 100); do curl -fs -o /dev/null -XPOST "http://127.0.0.1:$1/v1/models/half_plus_two:predict" -d '{"instances":[1]}' && return; sleep 0.05; done; echo "port $1 not up" >&2; exit 1; }
wait_up "$sim_port"; wait_up "$fb_http"; wait_up "$ng_port"

run() { # name port -> prints "name rps p50 p99"
  local out; out=$(wrk -t1 -c"$conns" -d"${duration}s" --latency -s "$work/predict.lua" "http://127.0.0.1:$2/v1/models/half_plus_two:predict")
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out"); p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  echo "$1 $rps $p50 $p99" | tee -a "$work/results.txt"
}
for r in $(seq "$rounds"); do
  run direct "$sim_port"; run fusebox "$fb_http"; run nginx "$ng_port"
done
echo "--- medians over $rounds rounds (${duration}s each, $conns connections, 1 wrk thread)"
python3 - "$work/results.txt" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    name, rps, p50, p99 = line.split()
    rows[name].append(float(rps))
med = {k: statistics.median(v) for k, v in rows.items()}
for k, v in rows.items():
    spread = (max(v) - min(v)) / med[k] * 100
    print(f"{k:8s} median {med[k]:10.0f} req/s  (runs: {', '.join(f'{x:.0f}' for x in v)}; spread {spread:.0f}%)")
print(f"fusebox/nginx throughput ratio: {med['fusebox']/med['nginx']:.2f}")
print(f"fusebox/direct throughput ratio: {med['fusebox']/med['direct']:.2f}")
PY
