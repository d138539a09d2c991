#!/usr/bin/env bash
# Memory and start-up of fusebox, nginx and HAProxy (one worker thread each) in front of the
# same tfs-sim.
#
#   bench/memory_compare.sh [--connections N] [--requests N] [--starts N] [--out DIR]
#
# For each contender in turn (only one runs at a time, tfs-sim is shared):
#   - idle RSS: after start-up and one request;
#   - N idle keep-alive client connections (default 10000), each set up with one predict
#     request whose 200 answer was read (build/bin/idle_conns), then held idle: the RSS growth
#     divided by N is the cost of one idle connection; the connections are then closed;
#   - steady load: wrk (1 thread, 50 connections) until --requests predict requests (default
#     1000000) were answered; RSS after the first 10% (the warm-up) and at the end;
#   - start-up: --starts times (default 10), milliseconds from just before exec to the first 200
#     (build/bin/startup_probe): fusebox's /readyz on its admin port (the target), and for
#     every contender a model status request proxied to tfs-sim on its data port.
# RSS is VmRSS summed over the contender's processes (nginx: master and worker).
# Writes DIR/memory.tsv (one line per figure) and DIR/memory.md (tables, targets met or
# missed), and prints the tables. Small values (--connections 200 --requests 20000 --starts 2)
# make a seconds-long smoke run. Loopback only; every process it starts is stopped on exit.
# Binaries come from $BENCH_BIN (default build/bin, the release preset: make build).
# Needs nginx, haproxy, wrk, curl and python3 (scripts/install-deps.sh --bench).
set -euo pipefail
cd "$(dirname "$0")/.."
conns=10000 requests=1000000 starts=10 out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --connections | --requests | --starts | --out)
      [ $# -ge 2 ] || { echo "memory_compare.sh: $1 needs a value" >&2; exit 2; }
      case "$1" in
        --connections) conns=$2 ;; --requests) requests=$2 ;; --starts) starts=$2 ;;
        --out) out=$2 ;;
      esac
      shift 2 ;;
    *) echo "memory_compare.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
for n in "$conns" "$requests" "$starts"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "memory_compare.sh: not a positive integer: $n" >&2; exit 2; }
done
fail() { echo "memory_compare.sh: $*" >&2; exit 1; }

bin=${BENCH_BIN:-build/bin}
for b in tfs-sim fusebox idle_conns startup_probe; do
  [ -x "$bin/$b" ] || fail "$bin/$b is missing: run \`make build\` first (or set BENCH_BIN to a build's bin folder)"
done
for c in nginx haproxy wrk curl python3; do
  command -v "$c" >/dev/null || fail "$c is missing: run scripts/install-deps.sh --bench"
done

# Every held connection is a descriptor in idle_conns and one in the proxy (plus the upstream
# and wrk connections): raise the soft limit to the hard one, which must leave room.
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((conns + 512)) ] ||
  fail "--connections $conns needs more descriptors than ulimit -Hn ($(ulimit -Hn)) allows"

# Scratch files (configs, logs) in $work, kept only when it is also the output folder.
. bench/lib.sh
bench_workspace memory


"$bin/tfs-sim" --rest-port 0 --threads 1 >"$work/sim.port" 2>"$work/tfs-sim.log" &
started+=($!)
for _ in $(seq 200); do [ -s "$work/sim.port" ] && break; sleep 0.05; done
read -r sim_port <"$work/sim.port" || fail "tfs-sim did not report its port (see $work/tfs-sim.log)"

# Configurations on fixed free ports (start-up is timed to the first answer, so nothing can be
# read from the contender first). The client-side idle timeouts are far above the time the
# connections are held, and each contender accepts the N connections plus the load's.
maxconn=$((conns + 1000))
# HAProxy insists on two descriptors per connection (client and server side) within its limit,
# so under a tight `ulimit -Hn` it holds fewer idle connections: the report says how many.
nofile=$(ulimit -n)
[ "$nofile" != unlimited ] || nofile=1048576
ha_maxconn=$(((nofile - 64) / 2))
[ "$ha_maxconn" -le "$maxconn" ] || ha_maxconn=$maxconn
held() { # contender: how many idle connections it is given
  if [ "$1" = haproxy ] && [ $((ha_maxconn - 100)) -lt "$conns" ]; then echo $((ha_maxconn - 100)); else echo "$conns"; fi
}
write_configs() { # http_port admin_port nginx_port haproxy_port spare_port
  cat >"$work/fusebox.yaml" <<YAML
server: {threads: 1}
drain: {timeout: 0s}
listeners:
  http: {address: 127.0.0.1, port: $1, idle_timeout: 600s, max_connections: $maxconn}
  admin: {address: 127.0.0.1, port: $2}
pools:
  sim: {endpoints: [{address: 127.0.0.1, port: $sim_port}]}
routes:
  - {name: half_plus_two, match: {model: half_plus_two}, pool: sim}
logging: {level: warn, access_log: false}
YAML
  # The templates of bench/proxy_compare.sh, with both listeners in front of tfs-sim (only the
  # first one is used here), the idle timeouts raised and room for the connections. HAProxy
  # would refuse to start when it cannot raise its descriptor limit to twice maxconn (a client
  # and a server side each), which idle client connections do not need: it gets the limit
  # this script has.
  local fill=(-e "s|@WORK@|$work|g" -e "s|@SIM_PORT@|$sim_port|g" -e "s|@FIXED_PORT@|$sim_port|g"
    -e "s|@PORT_FIXED@|$5|g" -e "s|@ERROR_LOG@|$out/memory-nginx-error.log|g")
  sed "${fill[@]}" -e "s/@PORT@\|@PORT_SIM@/$3/g" \
    -e "s|worker_connections [0-9]*;|worker_connections $maxconn;|" \
    -e "s|keepalive_timeout [^;]*;|keepalive_timeout 600s;|" \
    bench/contenders/nginx.conf.in >"$work/nginx.conf"
  grep -q 'keepalive_timeout' "$work/nginx.conf" ||
    sed -i "s|^http {|http {\n  keepalive_timeout 600s;|" "$work/nginx.conf"
  sed "${fill[@]}" -e "s/@PORT@\|@PORT_SIM@/$4/g" \
    -e "s|maxconn [0-9]*|maxconn $ha_maxconn|" -e "s|timeout client .*|timeout client 600s|" \
    -e "s|timeout http-keep-alive .*|timeout http-keep-alive 600s|" \
    -e "s|^global\$|global\n  ulimit-n $(ulimit -n)|" \
    bench/contenders/haproxy.cfg.in >"$work/haproxy.cfg"
  ! grep -n '@[A-Z_]*@' "$work/nginx.conf" "$work/haproxy.cfg" ||
    fail "placeholders left in the contenders' configurations (see above)"
}

# Command line of a contender (as an array named by $2).
cmd=()
# shellcheck disable=SC2034 # `into` is a name reference: it assigns the caller's array
contender_cmd() { # name array
  local -n into=$2
  case "$1" in
    fusebox) into=("$bin/fusebox" --config "$work/fusebox.yaml") ;;
    nginx) into=(nginx -c "$work/nginx.conf" -p "$work" -e "$work/nginx.err") ;;
    haproxy) into=(haproxy -f "$work/haproxy.cfg" -db) ;;
  esac
}

# VmRSS in KiB of PID and all its descendants.
rss_kib() { # pid
  local all=("$1") i=0 p c kids
  while [ $i -lt ${#all[@]} ]; do
    p=${all[$i]}
    for c in /proc/"$p"/task/*/children; do
      read -r -a kids <"$c" 2>/dev/null || true
      all+=("${kids[@]}")
    done
    i=$((i + 1))
  done
  for p in "${all[@]}"; do cat "/proc/$p/status" 2>/dev/null || true; done |
    awk '/^VmRSS:/ { kib += $2 } END { print kib + 0 }'
}

predict() { # port
  curl -fsS -o /dev/null -XPOST "http://127.0.0.1:$1/v1/models/half_plus_two:predict" \
    -H 'Content-Type: application/json' -d '{"instances": [1.0, 2.0, 5.0]}'
}

wait_up() { # port what
  for _ in $(seq 200); do
    predict "$1" 2>/dev/null && return
    sleep 0.05
  done
  fail "$2 does not answer a predict on port $1"
}

cat >"$work/predict.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"instances": [1.0, 2.0, 5.0]}'
wrk.headers["Content-Type"] = "application/json"
LUA

# Runs wrk until at least N more answered requests; echoes how many it counted. A 1 s probe
# run measures the rate, the rest runs in chunks sized from it (so 1M requests need no more
# than a few chunks), and any error is fatal: RSS under failing requests would mean nothing.
load() { # port n what
  local port=$1 goal=$2 what=$3 done=0 seconds=1 text n errors rate
  while [ "$done" -lt "$goal" ]; do
    text=$(timeout $((seconds + 30)) wrk -t1 -c50 -d"${seconds}s" -s "$work/predict.lua" \
      "http://127.0.0.1:$port/v1/models/half_plus_two:predict") || fail "wrk failed on $what"
    echo "$text" >>"$out/memory-wrk-$what.txt"
    errors=$(awk '/Non-2xx|Socket errors/ {n++} END {print n+0}' <<<"$text")
    [ "$errors" = 0 ] || fail "wrk saw errors on $what: $(grep -E 'Non-2xx|Socket errors' <<<"$text")"
    n=$(awk '/requests in/ {print $1}' <<<"$text")
    done=$((done + n))
    rate=$((n / seconds + 1))
    seconds=$(((goal - done) / rate + 1))
    [ "$seconds" -le 60 ] || seconds=60
  done
  echo "$done"
}

printf 'contender\tmetric\tvalue\tunit\n' >"$out/memory.tsv"
emit() { printf '%s\t%s\t%s\t%s\n' "$@" | tee -a "$out/memory.tsv"; }

ports=()
for _ in 1 2 3 4 5; do ports+=("$(free_port)"); done
write_configs "${ports[@]}"
data_port() { case "$1" in fusebox) echo "${ports[0]}" ;; nginx) echo "${ports[2]}" ;; haproxy) echo "${ports[3]}" ;; esac; }

for name in fusebox nginx haproxy; do
  contender_cmd "$name" cmd
  port=$(data_port "$name")
  "${cmd[@]}" >"$out/memory-$name.log" 2>&1 &
  pid=$!
  started+=("$pid")
  wait_up "$port" "$name"
  sleep 0.5 # let start-up work (health checks, worker spawn) settle
  idle=$(rss_kib "$pid")
  emit "$name" rss_idle "$idle" KiB

  # Idle keep-alive connections: set up, held, measured, closed.
  n=$(held "$name")
  coproc HOLD { exec "$bin/idle_conns" --port "$port" --connections "$n" --max-seconds 300 \
    2>"$work/idle_conns.err"; }
  # shellcheck disable=SC2153 # HOLD_PID is set by coproc
  hold_pid=$HOLD_PID
  started+=("$hold_pid")
  read -r -t 240 word reported <&"${HOLD[0]}" ||
    fail "idle_conns could not hold $n connections to $name: $(cat "$work/idle_conns.err")"
  [ "$word $reported" = "open $n" ] || fail "idle_conns said: $word $reported"
  sleep 1 # let every deferred free and timer settle
  with=$(rss_kib "$pid")
  echo check >&"${HOLD[1]}"
  read -r -t 60 word still <&"${HOLD[0]}" || fail "idle_conns stopped answering"
  [ "$still" = "$n" ] || fail "$name closed $((n - still)) of $n idle connections"
  hold_in=${HOLD[1]}
  exec {hold_in}>&- # end of stdin: idle_conns closes everything and exits
  wait "$hold_pid" 2>/dev/null || true
  emit "$name" rss_with_idle_connections "$with" KiB
  emit "$name" idle_connections "$n" count
  emit "$name" kib_per_idle_connection \
    "$(awk -v a="$with" -v b="$idle" -v n="$n" 'BEGIN { printf "%.3f", (a - b) / n }')" KiB
  sleep 1
  emit "$name" rss_after_connections_closed "$(rss_kib "$pid")" KiB

  # Steady load: warm-up, then the rest of the requests.
  warm=$((requests / 10))
  [ "$warm" -ge 1 ] || warm=1
  warm_done=$(load "$port" "$warm" "$name")
  after_warm=$(rss_kib "$pid")
  rest_done=$(load "$port" $((requests - warm_done > 0 ? requests - warm_done : 1)) "$name")
  at_end=$(rss_kib "$pid")
  emit "$name" requests "$((warm_done + rest_done))" count
  emit "$name" rss_after_warmup "$after_warm" KiB
  emit "$name" rss_after_requests "$at_end" KiB
  emit "$name" rss_growth_after_warmup "$((at_end - after_warm))" KiB
  emit "$name" rss_growth_after_warmup_pct \
    "$(awk -v a="$at_end" -v b="$after_warm" 'BEGIN { printf "%.2f", 100 * (a - b) / b }')" "%"

  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done

# Start-up: exec to the first 200, --starts times each. The contender runs alone.
startup() { # name metric port path
  local i ms
  for i in $(seq "$starts"); do
    contender_cmd "$1" cmd
    ms=$(timeout 30 "$bin/startup_probe" --port "$3" --path "$4" --timeout 10 \
      --log "$out/memory-startup-$1.log" -- "${cmd[@]}") || fail "$1 did not start (see $out/memory-startup-$1.log)"
    emit "$1" "$2" "$ms" ms
  done
}
startup fusebox startup_ready_ms "${ports[1]}" /readyz
for name in fusebox nginx haproxy; do
  startup "$name" startup_first_proxied_200_ms "$(data_port "$name")" /v1/models/half_plus_two
done

python3 bench/summarize_memory.py "$out/memory.tsv" "$conns" "$requests" "$starts" |
  tee "$out/memory.md"
