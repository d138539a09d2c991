#!/usr/bin/env bash
# Cache tier on the happy path: throughput and latency of `cache: first` hits against the
# proxied path through the same fusebox (one worker thread), with direct tfs-sim access for
# reference. The same wrk load on each path, alternating, several rounds.
#
#   bench/cache_compare.sh [--seconds N] [--rounds N] [--connections N] [--out DIR]
#
# One tfs-sim (1 thread) serving the same model under two names, half_plus_two and plain; one
# fusebox with a route per name on the same pool: half_plus_two with cache {mode: first,
# ttl: 10m}, plain without cache. The cache is warmed with one request and must answer
# `X-Fusebox-Cache: hit` before anything is measured; afterwards the sim must not have seen a
# single half_plus_two request beyond the warm-up (every measured cached request was a hit).
# Writes DIR/cache.tsv (one line per run), DIR/cache.md (medians, spread, ratio) and the raw wrk
# outputs, and prints the table. Loopback only; every process it starts is stopped on exit.
# Needs wrk, curl, python3 and a release build (make build).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=10 rounds=3 conns=50 out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds | --rounds | --connections | --out)
      [ $# -ge 2 ] || { echo "cache_compare.sh: $1 needs a value" >&2; exit 2; }
      case "$1" in
        --seconds) seconds=$2 ;; --rounds) rounds=$2 ;; --connections) conns=$2 ;; --out) out=$2 ;;
      esac
      shift 2 ;;
    *) echo "cache_compare.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
for n in "$seconds" "$rounds" "$conns"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "cache_compare.sh: not a positive integer: $n" >&2; exit 2; }
done
fail() { echo "cache_compare.sh: $*" >&2; exit 1; }

bin=build/bin
work=$(mktemp -d -t fusebox-cache-bench.XXXXXX)
out=${out:-$work}
mkdir -p "$out"
pids=()
stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "$out" = "$work" ] || rm -rf "$work"
}
trap stop_all EXIT

coproc SIM { exec "$bin/tfs-sim" --rest-port 0 --threads 1 \
  --model half_plus_two:half_plus_two --model plain:half_plus_two 2>"$out/cache-tfs-sim.log"; }
pids+=("$SIM_PID")
read -r -t 10 sim_port <&"${SIM[0]}" || fail "tfs-sim did not report its port"

# Ephemeral ports for fusebox's listeners: bind port 0, read the number, release it.
read -r fb_http fb_admin < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
cat >"$work/fusebox.yaml" <<YAML
server: {threads: 1}
listeners:
  http: {address: 127.0.0.1, port: $fb_http}
  admin: {address: 127.0.0.1, port: $fb_admin}
pools:
  sim: {endpoints: [{address: 127.0.0.1, port: $sim_port}]}
routes:
  - {name: cached, match: {model: half_plus_two}, pool: sim, cache: {mode: first, ttl: 10m}}
  - {name: proxied, match: {model: plain}, pool: sim}
logging: {level: warn, access_log: false}
YAML
"$bin/fusebox" --config "$work/fusebox.yaml" >/dev/null 2>"$out/cache-fusebox.log" & pids+=($!)

body='{"instances": [1.0, 2.0, 5.0]}'
cat >"$work/predict.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
LUA

ready=0
for _ in $(seq 100); do
  if curl -fs -o /dev/null "http://127.0.0.1:$fb_admin/readyz"; then ready=1; break; fi
  sleep 0.05
done
[ $ready = 1 ] || fail "fusebox is not ready after 5 s (log: $out/cache-fusebox.log)"

cache_header() { # model: POSTs the body through fusebox, prints its X-Fusebox-Cache value
  curl -fsS -m 5 -o /dev/null -D - -H 'Content-Type: application/json' -d "$body" \
    "http://127.0.0.1:$fb_http/v1/models/$1:predict" |
    awk -F': *' 'tolower($1) == "x-fusebox-cache" {sub(/\r$/, "", $2); print $2}'
}
sim_count() { # requests the sim has answered for model half_plus_two
  curl -fsS -m 5 "http://127.0.0.1:$sim_port/sim/stats" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["requests_by_model"]["half_plus_two"])'
}
cache_header half_plus_two >/dev/null || fail "the warm-up request failed" # a miss that stores
state=$(cache_header half_plus_two) || fail "the cached route failed after warming"
[ "$state" = hit ] || fail "the cached route answered X-Fusebox-Cache: '${state:-<none>}', not hit, after warming"
state=$(cache_header plain) || fail "the route without cache failed"
[ -z "$state" ] || fail "the route without cache answered X-Fusebox-Cache: $state"
sim_before=$(sim_count) || fail "no stats from tfs-sim"

printf 'scenario\tround\trequests_per_s\tp50_ms\tp99_ms\terrors\n' >"$out/cache.tsv"
run() { # scenario port model
  local text
  text=$(timeout $((seconds + 30)) wrk -t1 -c"$conns" -d"${seconds}s" --latency \
    -s "$work/predict.lua" "http://127.0.0.1:$2/v1/models/$3:predict") ||
    fail "wrk failed or hung on $1"
  echo "$text" >"$out/wrk-cache-$1-$r.txt"
  # Latencies in ms whatever unit wrk chose; errors: non-2xx answers plus socket errors.
  awk -v name="$1" -v round="$r" '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0
                     if (v ~ /m$/) return v * 60000; if (v ~ /s$/) return v * 1000; return v + 0 }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx/ { errors += $NF }
    /Socket errors/ { for (i = 3; i <= NF; i++) errors += $i + 0 }
    END { printf "%s\t%s\t%s\t%.3f\t%.3f\t%d\n", name, round, rps, p50, p99, errors }
  ' <<<"$text" | tee -a "$out/cache.tsv"
}
# Alternating, and the order rotates each round so no path always runs first.
scenarios=("cache_hit $fb_http half_plus_two" "proxied $fb_http plain" "direct $sim_port plain")
for r in $(seq "$rounds"); do
  for i in 0 1 2; do
    # shellcheck disable=SC2086 # each entry is three words: scenario, port, model
    run ${scenarios[$(((i + r - 1) % 3))]}
  done
done

sim_after=$(sim_count) || fail "no stats from tfs-sim"
[ "$sim_after" = "$sim_before" ] ||
  fail "$((sim_after - sim_before)) cached-route requests reached tfs-sim during the runs: not all were hits"

python3 bench/summarize_cache.py "$out/cache.tsv" "$seconds" "$conns" | tee "$out/cache.md"
