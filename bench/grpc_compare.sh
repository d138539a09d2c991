#!/usr/bin/env bash
# gRPC proxy overhead on the happy path: TF Serving's Predict straight to tfs-sim, through
# fusebox (one worker thread), through nginx (grpc_pass, one worker) and, as the floor, through
# a byte relay (HAProxy in mode tcp, one thread, which passes HTTP/2 untouched), with the same
# load (bench/grpc_load.cc) on each, alternating, several rounds; small (3 floats) and 1 MiB
# (262144 floats) tensors in a closed loop, small ones in an open loop at --rate calls/s.
#
#   bench/grpc_compare.sh [--seconds N] [--rounds N] [--concurrency N] [--channels N] [--rate N]
#                         [--out DIR]
#
# One tfs-sim (1 thread, --grpc-port 0); fusebox with listeners.grpc on port 0 and one pool
# endpoint with grpc_port; nginx from bench/contenders/nginx-grpc.conf.in; the relay from
# bench/contenders/haproxy-relay.cfg.in (its relay_sim listener only). Every contender must
# answer a verified Predict before anything is measured, and every measured answer is verified
# by grpc_load (status OK, output length, first value). CPU seconds of fusebox, nginx (master
# and worker) and the relay are read from /proc/<pid>/stat around each run.
# Writes DIR/grpc.tsv (one line per run), DIR/grpc.md (medians, spread, ratios, CPU per 100k
# requests) and the raw grpc_load JSON lines (DIR/grpc-load.jsonl), and prints the table.
# Loopback only; every process it starts is stopped on exit.
# Binaries come from $BENCH_BIN (default build/bin, the release preset: make build).
# Needs nginx, haproxy and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=10 rounds=3 concurrency=50 channels=1 rate=2000 out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds | --rounds | --concurrency | --channels | --rate | --out)
      [ $# -ge 2 ] || { echo "grpc_compare.sh: $1 needs a value" >&2; exit 2; }
      case "$1" in
        --seconds) seconds=$2 ;; --rounds) rounds=$2 ;; --concurrency) concurrency=$2 ;;
        --channels) channels=$2 ;; --rate) rate=$2 ;; --out) out=$2 ;;
      esac
      shift 2 ;;
    *) echo "grpc_compare.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
for n in "$seconds" "$rounds" "$concurrency" "$channels" "$rate"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "grpc_compare.sh: not a positive integer: $n" >&2; exit 2; }
done
fail() { echo "grpc_compare.sh: $*" >&2; exit 1; }

bin=${BENCH_BIN:-build/bin}
for b in tfs-sim fusebox grpc_load; do
  [ -x "$bin/$b" ] || fail "$bin/$b is missing: run \`make build\` first (or set BENCH_BIN to a build's bin folder)"
done
for tool in nginx haproxy python3; do
  command -v "$tool" >/dev/null || fail "$tool is missing: run scripts/install-deps.sh --bench"
done

# Scratch files (configs, port files) in $work, kept only when it is also the output folder.
. bench/lib.sh
bench_workspace grpc

"$bin/tfs-sim" --rest-port 0 --grpc-port 0 --threads 1 >"$work/sim.ports" 2>"$out/grpc-tfs-sim.log" &
started+=($!)
wait_lines "$work/sim.ports" 2 tfs-sim
{ read -r sim_rest; read -r sim_grpc; } <"$work/sim.ports"

cat >"$work/fusebox.yaml" <<YAML
server: {threads: 1}
listeners:
  http: {address: 127.0.0.1, port: 0}
  admin: {address: 127.0.0.1, port: 0}
  grpc: {address: 127.0.0.1, port: 0}
pools:
  sim: {endpoints: [{address: 127.0.0.1, port: $sim_rest, grpc_port: $sim_grpc}]}
routes:
  - {name: half_plus_two, match: {model: half_plus_two}, pool: sim}
logging: {level: warn, access_log: false}
YAML
"$bin/fusebox" --config "$work/fusebox.yaml" >"$work/fusebox.out" 2>"$out/grpc-fusebox.log" &
fusebox_pid=$!
started+=("$fusebox_pid")
wait_lines "$work/fusebox.out" 1 "fusebox (log: $out/grpc-fusebox.log)"
fb_grpc=$(sed -n '1s/.* grpc=[^ ]*:\([0-9][0-9]*\).*/\1/p' "$work/fusebox.out")
[ -n "$fb_grpc" ] || fail "no grpc= in fusebox's first line: $(head -1 "$work/fusebox.out")"

ng_port=$(free_port)
sed -e "s|@WORK@|$work|g" -e "s|@SIM_GRPC_PORT@|$sim_grpc|g" -e "s|@PORT@|$ng_port|g" \
  bench/contenders/nginx-grpc.conf.in >"$work/nginx-grpc.conf"
nginx -c "$work/nginx-grpc.conf" -p "$work" -e "$work/nginx-grpc.err" &
nginx_pid=$!
started+=("$nginx_pid")

# The relay's listener for tfs-sim, pointed at its gRPC port; the fixed backend's listener (the
# template's last section, for bench/proxy_compare.sh) is cut off.
relay_port=$(free_port)
sed -e '/^listen relay_fixed$/,$d' -e "s|@PORT_SIM@|$relay_port|g" -e "s|@SIM_PORT@|$sim_grpc|g" \
  bench/contenders/haproxy-relay.cfg.in >"$work/haproxy-relay.cfg"
! grep -n '@[A-Z_]*@' "$work/haproxy-relay.cfg" || fail "placeholders left in $work/haproxy-relay.cfg"
haproxy -f "$work/haproxy-relay.cfg" -db >"$out/grpc-haproxy-relay.log" 2>&1 &
relay_pid=$!
started+=("$relay_pid")

# A contender is up when grpc_load's warm-up call (a verified Predict) succeeds.
wait_up() { # name port
  for _ in $(seq 100); do
    timeout 15 "$bin/grpc_load" --target "127.0.0.1:$2" --concurrency 1 --seconds 0.01 \
      >/dev/null 2>"$work/wait-$1.err" && return
    sleep 0.1
  done
  fail "$1 does not answer Predict on port $2: $(tail -1 "$work/wait-$1.err")"
}
wait_up direct "$sim_grpc"
wait_up fusebox "$fb_grpc"
wait_up nginx "$ng_port"
wait_up relay "$relay_port"

# CPU seconds (user + system) used so far by PIDs and their children processes (nginx's worker).
clk_tck=$(getconf CLK_TCK)
cpu_seconds() { # pid...
  local all=("$@") p
  for p in "$@"; do
    for c in /proc/"$p"/task/*/children; do read -r -a kids <"$c" || true; all+=("${kids[@]}"); done
  done
  for p in "${all[@]}"; do cat "/proc/$p/stat" 2>/dev/null || true; done |
    awk -v tck="$clk_tck" '{ sub(/^.*\) /, ""); t += $12 + $13 } END { printf "%.2f", t / tck }'
}

printf 'workload\tcontender\tround\trequests\terrors\tseconds\trequests_per_s\tp50_ms\tp99_ms\tp999_ms\tcpu_s\n' \
  >"$out/grpc.tsv"
: >"$out/grpc-load.jsonl"
run() { # workload floats contender port [pid...]
  local workload=$1 floats=$2 contender=$3 port=$4 before="" after="" cpu=- json load_args
  shift 4
  # The -open workloads run at a fixed call rate (open loop): the same load on every contender.
  load_args=(--concurrency "$concurrency")
  [[ $workload != *-open ]] || load_args=(--rate "$rate")
  [ $# -eq 0 ] || before=$(cpu_seconds "$@")
  json=$(timeout $((seconds + 60)) "$bin/grpc_load" --target "127.0.0.1:$port" --floats "$floats" \
    "${load_args[@]}" --channels "$channels" --seconds "$seconds" \
    2>"$work/load.err") || fail "grpc_load failed on $contender ($workload): $(tail -1 "$work/load.err")"
  [ $# -eq 0 ] || { after=$(cpu_seconds "$@"); cpu=$(awk -v a="$after" -v b="$before" 'BEGIN { printf "%.2f", a - b }'); }
  echo "$json" >>"$out/grpc-load.jsonl"
  python3 -c '
import json, sys
d = json.loads(sys.argv[1])
print("\t".join([*sys.argv[2:5], str(d["requests"]), str(d["errors"]), str(d["seconds"]),
                 str(d["rps"]), str(d["p50_ms"]), str(d["p99_ms"]), str(d["p999_ms"]), sys.argv[5]]))
' "$json" "$workload" "$contender" "$r" "$cpu" | tee -a "$out/grpc.tsv"
}
# Alternating, and the order rotates each round so no contender always runs first.
contenders=("direct $sim_grpc" "fusebox $fb_grpc $fusebox_pid" "nginx $ng_port $nginx_pid"
  "relay $relay_port $relay_pid")
n=${#contenders[@]}
for workload in "small 3" "1MiB 262144" "small-open 3"; do
  for r in $(seq "$rounds"); do
    for ((i = 0; i < n; i++)); do
      # shellcheck disable=SC2086 # words: workload floats, then contender port [pid]
      run $workload ${contenders[$(((i + r - 1) % n))]}
    done
  done
done

python3 bench/summarize_grpc.py "$out/grpc.tsv" "$seconds" "$concurrency" "$channels" "$rate" |
  tee "$out/grpc.md"
