#!/usr/bin/env python3
"""Tables of bench/memory_compare.sh's figures, set against the targets, as markdown.

usage: summarize_memory.py memory.tsv CONNECTIONS REQUESTS STARTS
"""
import collections
import statistics
import sys

# Targets (issue "Benchmarks"): what one idle keep-alive connection may cost, how fast fusebox
# must be ready, and how much RSS may still grow under steady load after the warm-up (1% absorbs
# page-granular noise; a leak of even a few bytes per request shows up far above it).
MAX_KIB_PER_CONNECTION = 1.0
MAX_READY_MS = 100.0
MAX_GROWTH_PCT = 1.0

path, conns, requests, starts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
one = {}  # (contender, metric) -> value
many = collections.defaultdict(list)  # (contender, metric) -> values (start-up times)
order = []
with open(path) as f:
    next(f)  # header
    for line in f:
        contender, metric, value, _unit = line.rstrip("\n").split("\t")
        if contender not in order:
            order.append(contender)
        if metric.startswith("startup_"):
            many[(contender, metric)].append(float(value))
        else:
            one[(contender, metric)] = float(value)


def verdict(ok):
    return "met" if ok else "**missed**"


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


print(f"One worker thread per contender, in front of the same tfs-sim; RSS is VmRSS summed over "
      f"the contender's processes. Idle keep-alive connections ({conns} asked), each set up with "
      f"one answered predict request, then held idle; then at least {requests} predict requests "
      f"under wrk (50 connections), RSS after the first 10% (warm-up) and at the end.\n")
if conns < 2000:
    print(f"With only {conns} connections the per-connection figure is dominated by fixed costs "
          f"(heap growth, per-request buffers): use 10000 to judge it.\n")
print("| contender | RSS idle | idle connections | RSS with them | KiB per idle connection "
      "| RSS after they closed | requests | RSS after warm-up | RSS at the end | growth after warm-up |")
print("|---|---|---|---|---|---|---|---|---|---|")
for c in order:
    g = one.get((c, "rss_growth_after_warmup"), 0)
    print(f"| {c} | {mib(one[(c, 'rss_idle')])} | {one[(c, 'idle_connections')]:.0f} "
          f"| {mib(one[(c, 'rss_with_idle_connections')])} "
          f"| {one[(c, 'kib_per_idle_connection')]:.2f} | {mib(one[(c, 'rss_after_connections_closed')])} "
          f"| {one[(c, 'requests')]:.0f} | {mib(one[(c, 'rss_after_warmup')])} | {mib(one[(c, 'rss_after_requests')])} "
          f"| {g:+.0f} KiB ({one[(c, 'rss_growth_after_warmup_pct')]:+.2f}%) |")
print()

print(f"Start-up: milliseconds from just before exec to the first 200, {starts} starts each "
      f"(a fresh connection per poll; polled every 0.2 ms while refused, 1 ms while not ready).\n")
print("| contender | answer awaited | median ms | max ms |")
print("|---|---|---|---|")
labels = {"startup_ready_ms": "`GET /readyz` (admin port) 200",
          "startup_first_proxied_200_ms": "first proxied 200 (`GET /v1/models/half_plus_two`)"}
for (c, metric), values in many.items():
    print(f"| {c} | {labels.get(metric, metric)} | {statistics.median(values):.1f} | {max(values):.1f} |")
print()

print("Targets (fusebox):\n")
print("| target | figure | verdict |")
print("|---|---|---|")
if ("fusebox", "kib_per_idle_connection") in one:
    k = one[("fusebox", "kib_per_idle_connection")]
    refs = ", ".join(f"{c} {one[(c, 'kib_per_idle_connection')]:.2f}" for c in order
                     if c != "fusebox" and (c, "kib_per_idle_connection") in one)
    print(f"| <= {MAX_KIB_PER_CONNECTION:g} KiB RSS per idle keep-alive connection | {k:.2f} KiB"
          f"{f' ({refs})' if refs else ''} | {verdict(k <= MAX_KIB_PER_CONNECTION)} |")
if ("fusebox", "startup_ready_ms") in many:
    ready = many[("fusebox", "startup_ready_ms")]
    print(f"| ready (`/readyz` 200) in <= {MAX_READY_MS:g} ms (median of the starts) "
          f"| median {statistics.median(ready):.1f} ms, max {max(ready):.1f} ms "
          f"| {verdict(statistics.median(ready) <= MAX_READY_MS)} |")
if ("fusebox", "rss_growth_after_warmup_pct") in one:
    pct = one[("fusebox", "rss_growth_after_warmup_pct")]
    g = one[("fusebox", "rss_growth_after_warmup")]
    print(f"| no RSS growth after warm-up (<= {MAX_GROWTH_PCT:g}%) | {g:+.0f} KiB ({pct:+.2f}%) "
          f"| {verdict(pct <= MAX_GROWTH_PCT)} |")
