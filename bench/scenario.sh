#!/usr/bin/env bash
# The "bad day" scenario: three tfs-sim backends behind a proxy, an open-loop constant-rate load,
# and at --fault-at seconds one backend turns bad, in three variants:
#   a  it answers 3 s late          (tfs-sim fault {"latency_ms": 3000})
#   b  half of its answers are 503  (tfs-sim fault {"error_rate": 0.5, "error_status": 503})
#   c  it is killed                 (kill -9)
#
#   bench/scenario.sh [--seconds 60] [--fault-at 15] [--rate 200] [--variants a,b,c]
#                     [--contenders fusebox,nginx,haproxy] [--out DIR] [--smoke]
#
# Contenders (configurations in bench/contenders/scenario-*): fusebox with the settings its docs
# recommend against a failing replica, nginx (max_fails, fail_timeout, proxy_next_upstream,
# per-try timeouts) and HAProxy (model status checks, observe layer7, error-limit, on-error
# mark-down, retries, redispatch); fusebox-defaults (fusebox with every resilience setting at its
# default) can be added. Each variant x contender run starts everything fresh and tears it down
# afterwards: three tfs-sim (one thread each, --rest-port 0), the contender (one worker thread)
# in front of them, build/bin/openloop (bench/openloop.cc) sending --rate predicts per second for
# --seconds, every request recorded with its latency from its scheduled send time. The second
# backend (b1) turns bad. Evidence of where each upstream attempt went: the contender's own
# access log (nginx lists every attempt; HAProxy logs retries and redispatches; fusebox logs
# the attempts per request), each tfs-sim's request counter and the contender's per-backend
# attempt counters (fusebox's /metrics, HAProxy's stats), both sampled every 50 ms.
#
# Writes to DIR, per run, <variant>-<contender>.{csv,json,log,samples.tsv,meta.json} (and
# .fusebox.log with fusebox's breaker and health-check decisions), then scenario.tsv,
# scenario.md and one plot per variant (scenario-<variant>.png, with gnuplot), and prints
# the tables. --smoke: 6 s runs with the fault at 2 s, variant a only (unless --variants says
# otherwise), every contender: about 30 s, to keep the harness working; its figures mean nothing.
# Loopback only; every process it starts is stopped on exit.
# Binaries come from $BENCH_BIN (default build/bin, the release preset: make build).
# Needs curl and python3, nginx and haproxy for those contenders, gnuplot for the plots.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="" fault_at="" rate=200 variants="" contenders=fusebox,nginx,haproxy out="" smoke=0
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1; shift; continue ;;
    --seconds | --fault-at | --rate | --variants | --contenders | --out)
      [ $# -ge 2 ] || { echo "scenario.sh: $1 needs a value" >&2; exit 2; }
      case "$1" in
        --seconds) seconds=$2 ;; --fault-at) fault_at=$2 ;; --rate) rate=$2 ;;
        --variants) variants=$2 ;; --contenders) contenders=$2 ;; --out) out=$2 ;;
      esac
      shift 2 ;;
    *) echo "scenario.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ $smoke = 1 ]; then
  seconds=${seconds:-6} fault_at=${fault_at:-2} variants=${variants:-a}
else
  seconds=${seconds:-60} fault_at=${fault_at:-15} variants=${variants:-a,b,c}
fi
usage_error() { echo "scenario.sh: $*" >&2; exit 2; }
[[ $seconds =~ ^[1-9][0-9]*$ ]] || usage_error "--seconds needs a positive integer, not $seconds"
[[ $fault_at =~ ^[0-9]+(\.[0-9]+)?$ ]] || usage_error "--fault-at needs a number of seconds, not $fault_at"
awk -v f="$fault_at" -v s="$seconds" 'BEGIN { exit !(f > 0 && f + 1 < s) }' ||
  usage_error "--fault-at must be above 0 and at least 1 s before the end of the run (--seconds $seconds)"
if ! [[ $rate =~ ^[0-9]+(\.[0-9]+)?$ ]] || ! awk -v r="$rate" 'BEGIN { exit !(r >= 1 && r <= 20000) }'; then
  usage_error "--rate needs a number of requests per second from 1 to 20000, not $rate"
fi
IFS=, read -r -a variant_list <<<"$variants"
IFS=, read -r -a contender_list <<<"$contenders"
[ ${#variant_list[@]} -gt 0 ] || usage_error "--variants is empty"
[ ${#contender_list[@]} -gt 0 ] || usage_error "--contenders is empty"
for v in "${variant_list[@]}"; do
  case "$v" in a | b | c) ;; *) usage_error "unknown variant '$v' (a: 3 s latency, b: 50% 503, c: killed)" ;; esac
done
for c in "${contender_list[@]}"; do
  case "$c" in fusebox | fusebox-defaults | nginx | haproxy) ;;
    *) usage_error "unknown contender '$c' (fusebox, fusebox-defaults, nginx, haproxy)" ;; esac
done
fail() { echo "scenario.sh: $*" >&2; exit 1; }

bin=${BENCH_BIN:-build/bin}
for b in tfs-sim openloop; do
  [ -x "$bin/$b" ] || fail "$bin/$b is missing: run \`make build\` first (or set BENCH_BIN to a build's bin folder)"
done
for c in "${contender_list[@]}"; do
  case "$c" in
    fusebox*) [ -x "$bin/fusebox" ] || fail "$bin/fusebox is missing: run \`make build\` first" ;;
    *) command -v "$c" >/dev/null || fail "$c is missing: run scripts/install-deps.sh --bench" ;;
  esac
done
for t in curl python3; do command -v $t >/dev/null || fail "$t is missing"; done

# Scratch files (configs, port files) in $work, kept only when it is also the output folder.
work=$(mktemp -d -t fusebox-scenario.XXXXXX)
[ -n "$out" ] || out=$work
mkdir -p "$out"
out=$(cd "$out" && pwd)
started=() # the processes of the current run: stopped by their ids on exit
on_exit() {
  local rc=$?
  [ ${#started[@]} -eq 0 ] || kill "${started[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ "$out" = "$work" ]; then return; fi
  if [ $rc -ne 0 ]; then
    echo "scenario.sh: scratch files (logs of the failed run) kept in $work" >&2
  else
    rm -rf "$work"
  fi
}
trap on_exit EXIT

. bench/lib.sh # wait_lines, free_port
body='{"instances": [1.0, 2.0, 5.0]}'
predict() { # port: prints the HTTP status of one predict through it (000 when nothing answered)
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 -d "$body" \
    "http://127.0.0.1:$1/v1/models/half_plus_two:predict" || true
}
# Stops the processes of one run (by id) and waits for them.
stop() {
  local p
  for p in "$@"; do kill "$p" 2>/dev/null || true; done
  for p in "$@"; do wait "$p" 2>/dev/null || true; done
}

# Samples, every 50 ms, each tfs-sim's own request counter (/sim/stats "requests": client
# traffic only, since checks carry a fusebox-health-check User-Agent and count as probes) and the
# contender's per-backend attempt counters (fusebox: fusebox_upstream_requests_total from its
# /metrics; HAProxy: each server's stot, sessions sent to it, failed connections included).
# Lines: unix_ms, source (sim or proxy), backend index, count. A source that does not answer
# (a killed backend) is skipped.
cat >"$work/sampler.py" <<'PY'
import json, re, sys, time, urllib.request
out, kind, proxy_port, names, sims = sys.argv[1:4] + [sys.argv[4].split(","), sys.argv[5:]]
metric = re.compile(r'^fusebox_upstream_requests_total\{[^}]*backend="([^"]+)"[^}]*\} (\S+)')

def get(url):
    with urllib.request.urlopen(url, timeout=0.2) as r:
        return r.read().decode()

def proxy_counts():
    counts = [0] * len(names)
    if kind.startswith("fusebox"):
        for line in get(f"http://127.0.0.1:{proxy_port}/metrics").splitlines():
            m = metric.match(line)
            if m and m.group(1) in names:
                counts[names.index(m.group(1))] += int(float(m.group(2)))
    elif kind == "haproxy":
        rows = get(f"http://127.0.0.1:{proxy_port}/stats;csv").splitlines()
        head = rows[0].lstrip("# ").split(",")
        for row in rows[1:]:
            f = dict(zip(head, row.split(",")))
            if f.get("pxname") == "tfs" and f.get("svname") in names:
                counts[names.index(f["svname"])] = int(f["stot"] or 0)
    else:
        return None
    return counts

with open(out, "w", buffering=1) as f:
    f.write("unix_ms\tsource\tbackend\tcount\n")
    next_at = time.time()
    while True:
        for i, port in enumerate(sims):
            try:
                n = json.loads(get(f"http://127.0.0.1:{port}/sim/stats"))["requests"]
                f.write(f"{time.time() * 1000:.1f}\tsim\t{i}\t{n}\n")
            except Exception:
                pass
        try:
            counts = proxy_counts()
            now = time.time() * 1000
            for i, n in enumerate(counts or []):
                f.write(f"{now:.1f}\tproxy\t{i}\t{n}\n")
        except Exception:
            pass
        next_at += 0.05
        time.sleep(max(0.0, next_at - time.time()))
PY

bad=1 # the backend that turns bad: b1, the second of three
run_one() { # variant contender
  local variant=$1 contender=$2 run="$work/run" name="$out/$1-$2"
  rm -rf "$run" && mkdir -p "$run"
  local sims=() ports=() i port stats_port pid
  for i in 0 1 2; do
    "$bin/tfs-sim" --rest-port 0 --threads 1 >"$run/sim$i.port" 2>"$run/sim$i.log" &
    sims+=($!)
    started+=($!)
  done
  for i in 0 1 2; do
    wait_lines "$run/sim$i.port" 1 "tfs-sim $i"
    ports+=("$(head -1 "$run/sim$i.port")")
  done
  local subst=(-e "s|@WORK@|$run|g" -e "s|@PORT0@|${ports[0]}|g" -e "s|@PORT1@|${ports[1]}|g"
    -e "s|@PORT2@|${ports[2]}|g")
  local names=("127.0.0.1:${ports[0]}" "127.0.0.1:${ports[1]}" "127.0.0.1:${ports[2]}")
  : >"$run/proxy.log"
  case "$contender" in
    fusebox)
      sed "${subst[@]}" bench/contenders/scenario-fusebox.yaml.in >"$run/fusebox.yaml" ;;
    fusebox-defaults)
      # Every resilience setting at its default: only the backends, one thread and the logs.
      cat >"$run/fusebox.yaml" <<YAML
server: {threads: 1}
listeners:
  http: {address: 127.0.0.1, port: 0}
  admin: {address: 127.0.0.1, port: 0}
pools:
  sim:
    endpoints:
      - {address: 127.0.0.1, port: ${ports[0]}}
      - {address: 127.0.0.1, port: ${ports[1]}}
      - {address: 127.0.0.1, port: ${ports[2]}}
routes:
  - {name: half_plus_two, match: {model: half_plus_two}, pool: sim}
logging: {level: info, access_log: true, file: $run/fusebox.log, access_log_file: $run/proxy.log}
YAML
      ;;
  esac
  case "$contender" in
    fusebox*)
      "$bin/fusebox" --config "$run/fusebox.yaml" >"$run/fusebox.out" 2>"$run/fusebox.err" &
      pid=$!
      started+=("$pid")
      wait_lines "$run/fusebox.out" 1 "fusebox (see $run/fusebox.err)"
      port=$(sed -n '1s/.* http=[^ ]*:\([0-9][0-9]*\).*/\1/p' "$run/fusebox.out")
      stats_port=$(sed -n '1s/.* admin=[^ ]*:\([0-9][0-9]*\).*/\1/p' "$run/fusebox.out")
      if [ -z "$port" ] || [ -z "$stats_port" ]; then
        fail "no http= or admin= in fusebox's first line: $(head -1 "$run/fusebox.out")"
      fi ;;
    nginx)
      port=$(free_port) stats_port=0
      sed "${subst[@]}" -e "s|@PORT@|$port|g" bench/contenders/scenario-nginx.conf.in >"$run/nginx.conf"
      nginx -c "$run/nginx.conf" -p "$run" -e "$run/nginx.err" &
      pid=$!
      started+=("$pid") ;;
    haproxy)
      port=$(free_port) stats_port=$(free_port)
      sed "${subst[@]}" -e "s|@PORT@|$port|g" -e "s|@STATS_PORT@|$stats_port|g" \
        bench/contenders/scenario-haproxy.cfg.in >"$run/haproxy.cfg"
      haproxy -f "$run/haproxy.cfg" -db >"$run/proxy.log" 2>"$run/haproxy.err" &
      pid=$!
      started+=("$pid")
      names=(b0 b1 b2) ;;
  esac
  local up=""
  for _ in $(seq 100); do
    [ "$(predict "$port")" = 200 ] && { up=1; break; }
    sleep 0.1
  done
  [ -n "$up" ] || fail "$contender does not answer a predict on port $port (logs in $run)"
  for i in 0 1 2; do curl -sf -X POST -o /dev/null "http://127.0.0.1:${ports[$i]}/sim/stats/reset"; done
  python3 "$work/sampler.py" "$name.samples.tsv" "$contender" "$stats_port" \
    "$(IFS=,; echo "${names[*]}")" "${ports[@]}" &
  local sampler=$!
  started+=("$sampler")
  sleep 1 # the first health checks settle, the sampler is running
  "$bin/openloop" --target "127.0.0.1:$port" --rate "$rate" --seconds "$seconds" --timeout 10 \
    --out-csv "$name.csv" >"$name.json" 2>"$run/openloop.err" &
  local load=$!
  started+=("$load")
  sleep "$fault_at"
  local fault_ms fault
  fault_ms=$(date +%s%3N)
  case "$variant" in
    a) fault='{"latency_ms": 3000}' ;;
    b) fault='{"error_rate": 0.5, "error_status": 503}' ;;
    c) fault="" ;;
  esac
  if [ -n "$fault" ]; then
    curl -sf -o /dev/null -d "$fault" "http://127.0.0.1:${ports[$bad]}/sim/faults" ||
      fail "tfs-sim on port ${ports[$bad]} refused the fault $fault"
  else
    # Reaped at once, with the shell's "Killed" notice silenced.
    { kill -9 "${sims[$bad]}" && wait "${sims[$bad]}"; } 2>/dev/null || true
  fi
  wait "$load" || fail "openloop failed on $contender (variant $variant): $(tail -1 "$run/openloop.err")"
  sleep 0.3 # a last sample or two
  stop "$sampler"
  stop "$pid" "${sims[@]}"
  started=()
  cp "$run/proxy.log" "$name.log"
  [ ! -f "$run/fusebox.log" ] || cp "$run/fusebox.log" "$name.fusebox.log"
  python3 - "$name.meta.json" "$variant" "$contender" "$bad" "$fault_ms" "$seconds" "$rate" \
    "${names[@]}" <<'PY'
import json, sys
path, variant, contender, bad, fault_ms, seconds, rate = sys.argv[1:8]
json.dump({"variant": variant, "contender": contender, "bad_backend": int(bad),
           "fault_unix_ms": int(fault_ms), "seconds": float(seconds), "rate": float(rate),
           "backend_names": sys.argv[8:]}, open(path, "w"))
PY
  python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print("%s %-16s %d requests, %d errors, p99 %.1f ms, max %.1f ms"
      % (sys.argv[2], sys.argv[3], d["requests"], d["errors"], d["p99_ms"], d["max_ms"]))' \
    "$name.json" "$variant" "$contender"
}

echo "scenario: ${seconds} s runs at $rate/s, fault at ${fault_at} s; output in $out" >&2
for v in "${variant_list[@]}"; do
  for c in "${contender_list[@]}"; do
    run_one "$v" "$c" >&2
  done
done
python3 bench/summarize_scenario.py "$out" --variants "$variants" --contenders "$contenders" \
  --fault-at "$fault_at"
