#!/usr/bin/env python3
"""Medians, spread and ratios of bench/proxy_compare.sh's runs, as a markdown table."""
import collections
import statistics
import sys

path, seconds, conns = sys.argv[1], sys.argv[2], sys.argv[3]
runs = collections.defaultdict(list)
for line in open(path):
    name, _round, rps, p50, p99, errors = line.rstrip("\n").split("\t")
    runs[name].append((float(rps), p50, p99, int(errors)))

med = {name: statistics.median(r[0] for r in rs) for name, rs in runs.items()}
print(f"Happy path, REST predict (~30 B body), {conns} connections, {seconds}s per run, "
      f"{len(next(iter(runs.values())))} alternating rounds, one worker thread per proxy.\n")
print("| contender | req/s (median) | runs | spread | p50 / p99 of the median run | runs with errors |")
print("|---|---|---|---|---|---|")
for name, rs in runs.items():
    values = [r[0] for r in rs]
    spread = (max(values) - min(values)) / med[name] * 100 if med[name] else 0
    mid = sorted(rs, key=lambda r: r[0])[len(rs) // 2]
    print(f"| {name} | {med[name]:.0f} | {', '.join(f'{v:.0f}' for v in values)} | {spread:.0f}% "
          f"| {mid[1]} / {mid[2]} | {sum(1 for r in rs if r[3])} |")
print()
for other in ("nginx", "haproxy", "direct"):
    if other in med and "fusebox" in med and med[other]:
        print(f"- fusebox/{other} throughput: {med['fusebox'] / med[other]:.2f}")
