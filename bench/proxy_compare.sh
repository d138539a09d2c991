#!/usr/bin/env bash
# REST proxy overhead on the happy path: direct access, fusebox (one worker thread and one per
# core), nginx (one worker), HAProxy (one thread) and, as the floor, a byte relay (HAProxy in
# mode tcp, one thread) in front of the same backends, with the same wrk load on each,
# alternating (the order rotates each round), several rounds.
#
#   bench/proxy_compare.sh [--seconds N] [--rounds N] [--connections LIST] [--workloads LIST]
#                          [--out DIR]
#
#   --seconds N         length of each wrk run (default 4: the full run takes about 10 minutes)
#   --rounds N          rounds; every round runs every workload on every contender (default 3)
#   --connections LIST  comma-separated wrk connection counts of the small-body workloads
#                       (default 50,500); the large bodies run at the first count
#   --workloads LIST    comma-separated shell patterns picking workloads by name (default all):
#                       sim-small-C, sim-64k-C, sim-1m-C, fixed-small-C, fixed-64k-C,
#                       fixed-1m-C (C: connections), e.g. --workloads 'sim-small-*,fixed-1m-*'
#   --out DIR           where results go (default: a fresh temporary folder)
#
# Backends: tfs-sim with one thread ("sim"), and nginx with one worker answering every POST
# with {"predictions": [2.5, 3.0, 4.5]} ("fixed", bench/contenders/nginx-backend.conf.in), so
# that the proxy rather than the model server sets the pace. Every proxy serves both.
# The relay (bench/contenders/haproxy-relay.cfg.in) parses nothing: what it adds over direct is
# the least any proxy can add here, and the report sets the others against it.
# Bodies: a small predict call (~100 B), and 64 KiB and 1 MiB of floats as valid predict JSON,
# generated once; every contender must answer each body it will get with a correct 200 before
# anything is measured.
# Figures per run come from a wrk Lua done() callback: requests, requests/s, p50, p99, p99.9,
# 4xx/5xx answers and socket errors; the CPU seconds of the proxy processes (nginx: master and
# worker) are read from /proc/<pid>/stat around each run.
# Writes DIR/proxy.tsv (one line per run), DIR/proxy.md (medians, spread, ratios, targets), the
# raw wrk outputs (DIR/wrk-proxy-*.txt), DIR/proxy-rps.png and DIR/proxy-p99.png, and prints
# the tables. Loopback only; every process it starts is stopped on exit.
# Binaries come from $BENCH_BIN (default build/bin, the release preset: make build).
# Needs nginx, haproxy, wrk, curl, gnuplot and python3 (scripts/install-deps.sh --bench).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=4 rounds=3 connections=50,500 patterns="*" out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds | --rounds | --connections | --workloads | --out)
      [ $# -ge 2 ] || { echo "proxy_compare.sh: $1 needs a value" >&2; exit 2; }
      case "$1" in
        --seconds) seconds=$2 ;; --rounds) rounds=$2 ;; --connections) connections=$2 ;;
        --workloads) patterns=$2 ;; --out) out=$2 ;;
      esac
      shift 2 ;;
    *) echo "proxy_compare.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
IFS=, read -r -a conn_counts <<<"$connections"
IFS=, read -r -a workload_patterns <<<"$patterns"
for n in "$seconds" "$rounds" "${conn_counts[@]}"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "proxy_compare.sh: not a positive integer: $n" >&2; exit 2; }
done
fail() { echo "proxy_compare.sh: $*" >&2; exit 1; }

bin=${BENCH_BIN:-build/bin}
for b in tfs-sim fusebox; do
  [ -x "$bin/$b" ] || fail "$bin/$b is missing: run \`make build\` first (or set BENCH_BIN to a build's bin folder)"
done
for tool in nginx haproxy wrk curl gnuplot python3; do
  command -v "$tool" >/dev/null || fail "$tool is missing: run scripts/install-deps.sh --bench"
done

# Workloads: name backend body connections. Large bodies run at the first connection count.
all_workloads=()
for c in "${conn_counts[@]}"; do all_workloads+=("sim-small-$c sim small $c"); done
all_workloads+=("sim-64k-${conn_counts[0]} sim 64k ${conn_counts[0]}")
all_workloads+=("sim-1m-${conn_counts[0]} sim 1m ${conn_counts[0]}")
for c in "${conn_counts[@]}"; do all_workloads+=("fixed-small-$c fixed small $c"); done
all_workloads+=("fixed-64k-${conn_counts[0]} fixed 64k ${conn_counts[0]}")
all_workloads+=("fixed-1m-${conn_counts[0]} fixed 1m ${conn_counts[0]}")
workloads=()
for w in "${all_workloads[@]}"; do
  for p in "${workload_patterns[@]}"; do
    # shellcheck disable=SC2053 # $p is a pattern on purpose
    if [[ ${w%% *} == $p ]]; then workloads+=("$w"); break; fi
  done
done
[ ${#workloads[@]} -gt 0 ] || fail "--workloads $patterns matches none of: $(printf '%s ' "${all_workloads[@]%% *}")"
max_conns=$(printf '%s\n' "${conn_counts[@]}" | sort -n | tail -1)

# Every process below inherits this limit: wrk holds one descriptor per connection, a proxy two
# (client and upstream side), plus listeners, logs and the backends' own.
want_fds=$((2 * max_conns + 1024))
[ $want_fds -ge 4096 ] || want_fds=4096
if [ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt $want_fds ]; then
  ulimit -Sn "$want_fds" 2>/dev/null ||
    fail "cannot raise the open-file limit to $want_fds (hard limit $(ulimit -Hn)): raise it, or use fewer --connections"
fi

# Scratch files (configs, bodies, port files) in $work, kept only when it is also the output folder.
. bench/lib.sh
bench_workspace proxy
# nginx and HAProxy cannot report a port: bind port 0, read the numbers, release them.
free_ports() { # count
  python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))' "$1"
}
read -r fixed_port ng_sim ng_fixed ha_sim ha_fixed relay_sim relay_fixed < <(free_ports 7)

# Request bodies, valid predict JSON: a small call of about 100 bytes, and floats filling
# exactly 64 KiB and 1 MiB (the last bytes are blanks inside the JSON).
python3 - "$work" <<'PY'
import os, sys
def body(size):
    values, length = [], len('{"instances": []}')
    while True:
        v = f"{(len(values) % 997) * 0.125 + 0.5:.3f}"
        extra = len(v) + (2 if values else 0)
        if length + extra > size:
            break
        values.append(v)
        length += extra
    text = '{"instances": [' + ", ".join(values) + "]}"
    return text[:-1] + " " * (size - len(text)) + "}"
for name, size in (("small", 100), ("64k", 64 * 1024), ("1m", 1024 * 1024)):
    text = body(size)
    assert len(text) == size, (name, len(text))
    with open(os.path.join(sys.argv[1], f"{name}.json"), "w") as f:
        f.write(text)
PY
# One wrk script per body: the body is read once per thread; done() prints the figures wrk's
# own summary lacks (p99.9, exact counts) as one tab-separated "result" line, latencies in us.
for body in small 64k 1m; do
  cat >"$work/$body.lua" <<LUA
local f = assert(io.open("$work/$body.json", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("result\t%d\t%.3f\t%.1f\t%.1f\t%.1f\t%d\t%d\n", summary.requests,
    summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), e.status, e.connect + e.read + e.write + e.timeout))
end
LUA
done

# Backends. tfs-sim keeps idle connections 300 s, as the nginx backend does (its default is
# 60 s): a round takes longer than a minute, and with 60 s its one thread would close the
# hundreds of connections a contender's 500-connection run left idle in the middle of a later
# run, stalling whichever contender runs then.
"$bin/tfs-sim" --rest-port 0 --threads 1 --idle-timeout 300s >"$work/sim.port" \
  2>"$out/proxy-tfs-sim.log" &
sim_pid=$!
started+=("$sim_pid")
wait_lines "$work/sim.port" 1 tfs-sim
read -r sim_port <"$work/sim.port"
sed -e "s|@WORK@|$work|g" -e "s|@ERROR_LOG@|$out/proxy-nginx-backend.log|g" -e "s|@PORT@|$fixed_port|g" \
  bench/contenders/nginx-backend.conf.in >"$work/nginx-backend.conf"
nginx -c "$work/nginx-backend.conf" -p "$work" -e "$out/proxy-nginx-backend.log" &
fixed_pid=$!
started+=("$fixed_pid")

# fusebox twice: one worker thread, and one per core. The limits that matter here are spelled
# out (they are fusebox's defaults): bodies up to 64 MiB each way, 10000 client connections,
# 1024 upstream connections per backend, no per-connection request limit. Idle upstream
# connections are kept 300 s (fusebox's default is 60 s), as nginx's upstream keepalive_timeout
# here: a round takes longer than a minute, and with the default fusebox alone would open its
# upstream connections afresh at the start of every 500-connection run. Active health checks
# are off, as nginx and HAProxy have none here: a 1 MiB workload keeps the one tfs-sim thread
# busy for seconds, a probe waits behind it beyond its 1 s timeout, and fusebox would take its
# only backend out of rotation and answer 503 for a while.
# start_fusebox sets fb_pid and fb_port.
ncpu=$(nproc)
start_fusebox() { # name threads
  cat >"$work/$1.yaml" <<YAML
server: {threads: $2}
listeners:
  http:
    address: 127.0.0.1
    port: 0
    max_request_body: 64MiB
    max_connections: 10000
    max_requests_per_connection: 0
  admin: {address: 127.0.0.1, port: 0}
pools:
  sim:
    endpoints: [{address: 127.0.0.1, port: $sim_port}]
    max_connections_per_backend: 1024
    idle_connection_timeout: 300s
    max_response_body: 64MiB
    health_check: {enabled: false}
  fixed:
    endpoints: [{address: 127.0.0.1, port: $fixed_port}]
    max_connections_per_backend: 1024
    idle_connection_timeout: 300s
    max_response_body: 64MiB
    health_check: {enabled: false}
routes:
  - {name: half_plus_two, match: {model: half_plus_two}, pool: sim}
  - {name: fixed, match: {model: fixed}, pool: fixed}
logging: {level: warn, access_log: false}
YAML
  "$bin/fusebox" --config "$work/$1.yaml" >"$work/$1.out" 2>"$out/proxy-$1.log" &
  fb_pid=$!
  started+=("$fb_pid")
  wait_lines "$work/$1.out" 1 "$1 (log: $out/proxy-$1.log)"
  fb_port=$(sed -n '1s/.* http=[^ ]*:\([0-9][0-9]*\) .*/\1/p' "$work/$1.out")
  [ -n "$fb_port" ] || fail "no http= in $1's first line: $(head -1 "$work/$1.out")"
}
start_fusebox fusebox-1 1
fusebox_1_pid=$fb_pid fusebox_1_port=$fb_port
start_fusebox fusebox-all "$ncpu"
fusebox_all_pid=$fb_pid fusebox_all_port=$fb_port

subst=(-e "s|@WORK@|$work|g" -e "s|@SIM_PORT@|$sim_port|g" -e "s|@FIXED_PORT@|$fixed_port|g")
sed "${subst[@]}" -e "s|@ERROR_LOG@|$out/proxy-nginx.log|g" -e "s|@PORT_SIM@|$ng_sim|g" \
  -e "s|@PORT_FIXED@|$ng_fixed|g" bench/contenders/nginx.conf.in >"$work/nginx-proxy.conf"
nginx -c "$work/nginx-proxy.conf" -p "$work" -e "$out/proxy-nginx.log" &
nginx_pid=$!
started+=("$nginx_pid")
# HAProxy twice: as an HTTP proxy, and as the relay (mode tcp). start_haproxy sets ha_pid.
start_haproxy() { # name port-sim port-fixed
  sed "${subst[@]}" -e "s|@PORT_SIM@|$2|g" -e "s|@PORT_FIXED@|$3|g" \
    "bench/contenders/$1.cfg.in" >"$work/$1.cfg"
  haproxy -f "$work/$1.cfg" -db >"$out/proxy-$1.log" 2>&1 &
  ha_pid=$!
  started+=("$ha_pid")
}
start_haproxy haproxy "$ha_sim" "$ha_fixed"
haproxy_pid=$ha_pid
start_haproxy haproxy-relay "$relay_sim" "$relay_fixed"
relay_pid=$ha_pid

# Contenders: name, port for the sim backend, port for the fixed one, processes to charge CPU to.
contenders=(
  "direct $sim_port $fixed_port"
  "fusebox-1 $fusebox_1_port $fusebox_1_port $fusebox_1_pid"
  "fusebox-all $fusebox_all_port $fusebox_all_port $fusebox_all_pid"
  "nginx $ng_sim $ng_fixed $nginx_pid"
  "haproxy $ha_sim $ha_fixed $haproxy_pid"
  "relay $relay_sim $relay_fixed $relay_pid"
)
url() { # backend port: the same path through every contender
  if [ "$1" = sim ]; then echo "http://127.0.0.1:$2/v1/models/half_plus_two:predict"
  else echo "http://127.0.0.1:$2/v1/models/fixed:predict"; fi
}
post() { # url body answer-file: prints the HTTP status
  curl -sS -m 10 -o "$3" -w '%{http_code}' -H 'Content-Type: application/json' -H 'Expect:' \
    --data-binary "@$work/$2.json" "$1" 2>>"$work/curl.err" || true
}

# Up: every contender answers the small body on both backends (10 s at most).
for c in "${contenders[@]}"; do
  read -r name port_sim port_fixed _ <<<"$c"
  for target in "sim $port_sim" "fixed $port_fixed"; do
    # shellcheck disable=SC2086 # words: backend port
    u=$(url $target)
    for _ in $(seq 200); do
      [ "$(post "$u" small "$work/answer")" = 200 ] && continue 2
      sleep 0.05
    done
    fail "$name does not answer 200 on $u: $(head -c 300 "$work/answer" 2>/dev/null)"
  done
done

# Correct answers to every (backend, body) pair that will be measured, through every contender:
# tfs-sim must compute 0.5 x + 2 for each float, the fixed backend answer its fixed JSON.
checked=" " answers=()
for w in "${workloads[@]}"; do
  read -r _ backend body _ <<<"$w"
  [[ $checked == *" $backend/$body "* ]] && continue
  checked+="$backend/$body "
  for c in "${contenders[@]}"; do
    read -r name port_sim port_fixed _ <<<"$c"
    port=$port_sim
    [ "$backend" = sim ] || port=$port_fixed
    answer="$work/answer-$name-$backend-$body.json"
    status=$(post "$(url "$backend" "$port")" "$body" "$answer")
    [ "$status" = 200 ] || fail "$name answered $status to the $body body for the $backend backend: $(head -c 300 "$answer")"
    answers+=("$name" "$backend" "$work/$body.json" "$answer")
  done
done
python3 - "${answers[@]}" <<'PY' || fail "wrong answers: see above"
import json, sys
args, wrong = sys.argv[1:], 0
for name, backend, request, answer in zip(*[iter(args)] * 4):
    got = json.load(open(answer))
    if backend == "fixed":
        ok = got == {"predictions": [2.5, 3.0, 4.5]}
    else:
        xs = json.load(open(request))["instances"]
        ys = got.get("predictions", []) if isinstance(got, dict) else []
        ok = len(ys) == len(xs) and all(abs(y - (0.5 * x + 2)) < 1e-3 for x, y in zip(xs, ys))
    if not ok:
        wrong += 1
        print(f"{name}: wrong answer to {request} ({backend} backend): {open(answer).read(300)}",
              file=sys.stderr)
sys.exit(1 if wrong else 0)
PY

# CPU time (user + system, in clock ticks) used so far by PIDs and their children processes
# (nginx's worker). One awk for all: this runs several times per run.
clk_tck=$(getconf CLK_TCK)
cpu_ticks() { # pid...
  local files=() p c kid kids
  for p in "$@"; do
    files+=("/proc/$p/stat")
    for c in /proc/"$p"/task/*/children; do
      read -r -a kids <"$c" || true
      for kid in "${kids[@]}"; do files+=("/proc/$kid/stat"); done
    done
  done
  awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { print t + 0 }' "${files[@]}" 2>/dev/null || echo 0
}

# After a run, requests wrk left behind may still be under way (tfs-sim spends tens of ms of
# CPU on each 1 MiB body): wait until backends and proxies are idle (one clock tick at most
# over 100 ms), at most 30 s, so that the next run does not share the machine with them.
settle() {
  local pids=("$sim_pid" "$fixed_pid" "$fusebox_1_pid" "$fusebox_all_pid" "$nginx_pid" "$haproxy_pid"
    "$relay_pid")
  local before after i
  before=$(cpu_ticks "${pids[@]}")
  for ((i = 0; i < 300; i++)); do
    sleep 0.1
    after=$(cpu_ticks "${pids[@]}")
    [ $((after - before)) -gt 1 ] || return 0
    before=$after
  done
}

printf 'workload\tbackend\tbody\tconnections\tcontender\tround\trequests\tseconds\trequests_per_s\tp50_ms\tp99_ms\tp999_ms\thttp_errors\tsocket_errors\tcpu_s\n' \
  >"$out/proxy.tsv"
run() { # workload backend body connections contender port-sim port-fixed [pid...]
  local workload=$1 backend=$2 body=$3 conns=$4 contender=$5 port=$6 before=0 cpu=- text raw
  [ "$backend" = sim ] || port=$7
  shift 7
  raw="$out/wrk-proxy-$workload-$contender-$r.txt"
  [ $# -eq 0 ] || before=$(cpu_ticks "$@")
  text=$(timeout $((seconds + 60)) wrk -t1 -c"$conns" -d"${seconds}s" --timeout 10s --latency \
    -s "$work/$body.lua" "$(url "$backend" "$port")" 2>&1) || {
    echo "$text" >"$raw"
    fail "wrk failed or hung on $contender ($workload): see $raw"
  }
  [ $# -eq 0 ] || cpu=$(($(cpu_ticks "$@") - before))
  echo "$text" >"$raw"
  awk -F'\t' -v w="$workload" -v b="$backend" -v body="$body" -v c="$conns" -v who="$contender" \
    -v r="$r" -v cpu="$cpu" -v tck="$clk_tck" '
    $1 == "result" {
      printf "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%.3f\t%.1f\t%.3f\t%.3f\t%.3f\t%d\t%d\t%s\n", w, b, body, c,
        who, r, $2, $3, ($3 > 0 ? $2 / $3 : 0), $4 / 1000, $5 / 1000, $6 / 1000, $7, $8,
        (cpu == "-" ? "-" : sprintf("%.2f", cpu / tck))
      found = 1
    }
    END { if (!found) exit 1 }' <<<"$text" | tee -a "$out/proxy.tsv" ||
    fail "no result line from wrk on $contender ($workload): see $raw"
  settle
}
# Alternating: within a round every workload runs on every contender in turn, and the order
# rotates with the round and the workload so no contender always runs first or last.
n=${#contenders[@]}
for ((r = 1; r <= rounds; r++)); do
  for wi in "${!workloads[@]}"; do
    for ((i = 0; i < n; i++)); do
      # shellcheck disable=SC2086 # words: workload backend body connections, then contender ports [pid]
      run ${workloads[$wi]} ${contenders[$(((i + r - 1 + wi) % n))]}
    done
  done
done

python3 bench/summarize_proxy.py "$out/proxy.tsv" "$seconds" "$ncpu" "$out/proxy-plot.dat" |
  tee "$out/proxy.md"
gnuplot -e "data='$out/proxy-plot.dat'; out='$out'" bench/plot_proxy.gp >"$work/gnuplot.log" 2>&1 ||
  fail "gnuplot failed: $(tail -3 "$work/gnuplot.log")"
