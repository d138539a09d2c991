#!/usr/bin/env bash
# Runs the benchmarks and writes bench/results/<date>/report.md with the raw outputs beside it.
#   bench/run.sh               full run (about 35 minutes)
#   bench/run.sh --smoke       a short run that only proves the harness works (CI)
#   bench/run.sh --report DIR  writes DIR/report.md again from the outputs in DIR (after a
#                              step was re-run alone into DIR, e.g. bench/scenario.sh --out DIR/scenario)
# Figures are ratios against nginx/HAProxy/direct measured in the same run; see bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
smoke=0 report_only=""
case "${1:-}" in
  --smoke) smoke=1 ;;
  --report)
    [ -d "${2:-}" ] || { echo "bench/run.sh: --report needs a results folder" >&2; exit 2; }
    report_only=$2 ;;
  "") ;;
  *) echo "bench/run.sh: unknown option $1 (known: --smoke, --report DIR)" >&2; exit 2 ;;
esac
stamp=$(date -u +%Y-%m-%dT%H-%M-%SZ)
suffix="" note=""
if [ $smoke = 1 ]; then suffix=-smoke note=" (smoke run: figures are not meaningful)"; fi
out=bench/results/$stamp$suffix
if [ -n "$report_only" ]; then
  out=${report_only%/}
  stamp=$(basename "$out")
  [[ $stamp != *-smoke ]] || note=" (smoke run: figures are not meaningful)"
fi
grpc_bin=${BENCH_BIN:-build/bin} # where grpc_compare.sh takes tfs-sim, fusebox and grpc_load
for tool in grpc_load openloop idle_conns startup_probe; do
  [ -x "$grpc_bin/$tool" ] || {
    echo "bench/run.sh: $grpc_bin/$tool is missing: run \`make build\` first" >&2
    exit 1
  }
done
mkdir -p "$out"

if [ -n "$report_only" ]; then
  : # no step runs
elif [ $smoke = 1 ]; then
  micro_args=(--benchmark_min_time=0.01)
  # Every code path of the proxy matrix: both backends, two connection counts, a small and
  # both large bodies, every contender, one round of one second.
  proxy_args=(--seconds 1 --rounds 1 --connections 20,100
    --workloads 'sim-small-100,sim-64k-*,fixed-small-20,fixed-1m-*')
  cache_args=(--seconds 1 --rounds 1 --connections 20)
  grpc_args=(--seconds 1 --rounds 1)
  scenario_args=(--smoke)
  memory_args=(--connections 200 --requests 20000 --starts 2)
else
  micro_args=(--benchmark_min_time=0.2 --benchmark_repetitions=3 --benchmark_report_aggregates_only=true)
  proxy_args=(--seconds 4 --rounds 3 --connections 50,500) # about 10 minutes
  cache_args=(--seconds 10 --rounds 3 --connections 50)
  grpc_args=(--seconds 10 --rounds 3)
  scenario_args=(--seconds 60 --fault-at 15 --rate 200) # about 10 minutes
  memory_args=(--connections 10000 --requests 1000000 --starts 10) # 5 to 8 minutes
fi

run_steps() {
  echo "== micro-benchmarks"
  build/bin/micro_bench "${micro_args[@]}" --benchmark_out="$out/micro.json" \
    --benchmark_out_format=json | tee "$out/micro.txt"
  echo "== proxy overhead"
  bench/proxy_compare.sh "${proxy_args[@]}" --out "$out" >/dev/null
  echo "== cache tier"
  bench/cache_compare.sh "${cache_args[@]}" --out "$out" >/dev/null
  echo "== gRPC"
  bench/grpc_compare.sh "${grpc_args[@]}" --out "$out" >/dev/null
  echo "== memory and start-up"
  bench/memory_compare.sh "${memory_args[@]}" --out "$out" >/dev/null
  echo "== bad-day scenario"
  bench/scenario.sh "${scenario_args[@]}" --out "$out/scenario" >/dev/null
}
[ -n "$report_only" ] || run_steps

{
  echo "# fusebox benchmarks, $stamp$note"
  echo
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)."
  echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
  echo "## Proxy overhead"
  echo
  echo "REST predict direct and through fusebox (one worker thread and one per core), nginx, HAProxy and a byte relay (HAProxy in \`mode tcp\`, the floor), on two backends (\`bench/proxy_compare.sh\`)."
  echo
  cat "$out/proxy.md"
  echo
  echo "## Cache tier"
  echo
  echo "\`cache: first\` hits against the proxied path through the same fusebox (\`bench/cache_compare.sh\`)."
  echo
  cat "$out/cache.md"
  echo
  echo "## gRPC"
  echo
  echo "TF Serving's Predict over gRPC, direct and through fusebox, nginx and the byte relay (\`bench/grpc_compare.sh\`)."
  echo
  cat "$out/grpc.md"
  echo
  echo "## Memory and start-up"
  echo
  echo "RSS idle, per idle keep-alive connection and under steady load, and time to the first 200 (\`bench/memory_compare.sh\`)."
  echo
  cat "$out/memory.md"
  echo
  echo "## Bad day: one of three backends fails"
  echo
  echo "Open-loop load through fusebox, nginx and HAProxy while one of three \`tfs-sim\` backends"
  echo "turns slow, flaky or dead (\`bench/scenario.sh\`); raw records and plots in \`scenario/\`."
  echo
  sed 's|](scenario-\(.\)\.png)|](scenario/scenario-\1.png)|' "$out/scenario/scenario.md"
  echo
  echo "## Hot path (Google Benchmark, ns per operation)"
  echo
  echo "Medians of 3 repetitions in the full run; \`CPU\` is per operation and thread."
  echo
  echo '```'
  grep -E '^Benchmark' "$out/micro.txt" | head -1
  if grep -q '_median' "$out/micro.txt"; then grep -E '^BM_.*_median' "$out/micro.txt"; else grep -E '^BM_' "$out/micro.txt"; fi
  echo '```'
} >"$out/report.md"
echo "report: $out/report.md"
