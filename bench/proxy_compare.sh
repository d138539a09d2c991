#!/usr/bin/env bash
# Proxy overhead on the happy path: direct, fusebox, nginx and HAProxy, one worker thread each,
# proxying the same tfs-sim with the same wrk load, alternating, several rounds.
#
#   bench/proxy_compare.sh [--seconds N] [--rounds N] [--connections N] [--out DIR]
#
# Writes DIR/proxy.tsv (one line per run) and DIR/proxy.md (medians, spread, ratios), and
# prints the table. Loopback only; every process it starts is stopped on exit.
# Needs scripts/install-deps.sh --bench and a release build (make build).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=10 rounds=3 conns=50 out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --connections) conns=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "proxy_compare.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
bin=build/bin
work=$(mktemp -d -t fusebox-bench.XXXXXX)
out=${out:-$work}
mkdir -p "$out"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

coproc SIM { exec "$bin/tfs-sim" --rest-port 0 --threads 1; }
pids+=("$SIM_PID"); read -r sim_port <&"${SIM[0]}"

fb_http=$(free_port); fb_admin=$(free_port); ng_port=$(free_port); ha_port=$(free_port)
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

# nginx as its docs recommend for upstream keep-alive: HTTP/1.1 upstream, Connection cleared.
sed -e "s|@WORK@|$work|g" -e "s|@SIM_PORT@|$sim_port|g" -e "s|@PORT@|$ng_port|g" \
  bench/contenders/nginx.conf.in >"$work/nginx.conf"
nginx -c "$work/nginx.conf" -p "$work" & pids+=($!)
# HAProxy with one thread and connection reuse.
sed -e "s|@SIM_PORT@|$sim_port|g" -e "s|@PORT@|$ha_port|g" \
  bench/contenders/haproxy.cfg.in >"$work/haproxy.cfg"
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 & pids+=($!)

cat >"$work/predict.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"instances": [1.0, 2.0, 5.0]}'
wrk.headers["Content-Type"] = "application/json"
LUA

wait_up() {
  for _ in $(seq 100); do
    curl -fs -o /dev/null -XPOST "http://127.0.0.1:$1/v1/models/half_plus_two:predict" -d '{"instances":[1]}' && return
    sleep 0.05
  done
  echo "proxy_compare.sh: nothing answers on port $1" >&2; exit 1
}
for p in "$sim_port" "$fb_http" "$ng_port" "$ha_port"; do wait_up "$p"; done

: >"$out/proxy.tsv"
run() { # name port
  local text
  text=$(wrk -t1 -c"$conns" -d"${seconds}s" --latency -s "$work/predict.lua" \
    "http://127.0.0.1:$2/v1/models/half_plus_two:predict")
  echo "$text" >"$out/wrk-$1-$r.txt"
  local rps p50 p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$text")
  p50=$(awk '$1=="50%" {print $2}' <<<"$text"); p99=$(awk '$1=="99%" {print $2}' <<<"$text")
  errors=$(awk '/Non-2xx|Socket errors/ {n++} END {print n+0}' <<<"$text")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$r" "$rps" "$p50" "$p99" "$errors" | tee -a "$out/proxy.tsv"
}
for r in $(seq "$rounds"); do
  run direct "$sim_port"; run fusebox "$fb_http"; run nginx "$ng_port"; run haproxy "$ha_port"
done

python3 bench/summarize_proxy.py "$out/proxy.tsv" "$seconds" "$conns" | tee "$out/proxy.md"
