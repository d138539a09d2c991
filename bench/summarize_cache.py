#!/usr/bin/env python3
"""Medians over rounds, spread and the cache-hit/proxied ratio of bench/cache_compare.sh's runs.

    summarize_cache.py CACHE_TSV SECONDS CONNECTIONS

Reads the TSV (header, then: scenario, round, requests/s, p50 ms, p99 ms, errors) and prints a
markdown table and a line on noise.
"""
import collections
import statistics
import sys

from summary_common import machine_line

LABELS = {
    "cache_hit": "cache hit (`cache: first`)",
    "proxied": "proxied (no cache)",
    "direct": "direct to tfs-sim",
}


def main(path, seconds, conns):
    runs = collections.defaultdict(dict)  # scenario -> round -> (rps, p50, p99, errors)
    with open(path) as f:
        next(f)  # header
        for line in f:
            scenario, rnd, rps, p50, p99, errors = line.rstrip("\n").split("\t")
            runs[scenario][int(rnd)] = (float(rps), float(p50), float(p99), int(errors))
    missing = [s for s in LABELS if not runs.get(s)]
    if missing:
        sys.exit(f"summarize_cache.py: no runs for {', '.join(missing)} in {path}")

    rounds = len(runs["cache_hit"])
    print(f"REST predict (~30 B body, the same for every request), {conns} connections, "
          f"{seconds}s per run, {rounds} alternating round{'s' if rounds > 1 else ''}; "
          "fusebox with one worker thread, tfs-sim with one thread.\n")
    print("| path | req/s (median) | req/s min–max | p50 ms (median) | p99 ms (median) | errors |")
    print("|---|---|---|---|---|---|")
    median_rps, spreads = {}, {}
    for scenario, label in LABELS.items():
        values = list(runs[scenario].values())
        rps = [v[0] for v in values]
        median_rps[scenario] = statistics.median(rps)
        spreads[scenario] = (max(rps) - min(rps)) / median_rps[scenario] * 100 if median_rps[scenario] else 0
        print(f"| {label} | {median_rps[scenario]:.0f} | {min(rps):.0f}–{max(rps):.0f} "
              f"| {statistics.median(v[1] for v in values):.3f} "
              f"| {statistics.median(v[2] for v in values):.3f} | {sum(v[3] for v in values)} |")
    print()

    hit, proxied = runs["cache_hit"], runs["proxied"]
    per_round = [hit[r][0] / proxied[r][0] for r in sorted(hit) if r in proxied and proxied[r][0]]
    if median_rps["proxied"]:
        line = f"- cache hit / proxied throughput: **{median_rps['cache_hit'] / median_rps['proxied']:.2f}**"
        if len(per_round) > 1:
            line += f" (per round {min(per_round):.2f}–{max(per_round):.2f})"
        print(line)
    if median_rps["direct"]:
        print(f"- cache hit / direct throughput: {median_rps['cache_hit'] / median_rps['direct']:.2f}; "
              f"proxied / direct: {median_rps['proxied'] / median_rps['direct']:.2f}")
    machine = machine_line()
    if rounds > 1:
        noise = ", ".join(f"{LABELS[s].split(' (')[0]} {spreads[s]:.0f}%" for s in LABELS)
        print(f"- Noise: requests/s moved between rounds by (max − min) / median = {noise}; "
              f"{machine}.")
    else:
        print(f"- Noise: one round only, so no spread was measured; {machine}.")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
