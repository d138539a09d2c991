#!/usr/bin/env python3
"""Medians over rounds, spread, ratios and CPU cost of bench/grpc_compare.sh's runs.

    summarize_grpc.py GRPC_TSV SECONDS CONCURRENCY CHANNELS RATE

Reads the TSV (header, then: workload, contender, round, requests, errors, seconds, requests/s,
p50 ms, p99 ms, p99.9 ms, CPU seconds of the proxy during the run or "-") and prints markdown
tables, what each proxy adds to p50 over direct (the relay's share being the floor) and a line
on noise.
"""
import collections
import statistics
import sys

from summary_common import machine_line

WORKLOADS = {"small": "3 floats", "1MiB": "262144 floats (1 MiB tensor)",
             "small-open": "3 floats, open loop"}
CONTENDERS = {
    "direct": "direct to tfs-sim",
    "fusebox": "fusebox (1 worker)",
    "nginx": "nginx `grpc_pass` (1 worker)",
    "relay": "relay: HAProxy `mode tcp` (1 thread)",
}


def ratio(a, b):
    return f"{a / b:.2f}" if b else "–"


def main(path, seconds, concurrency, channels, rate):
    # workload -> contender -> [dict per round]
    runs = collections.defaultdict(lambda: collections.defaultdict(list))
    with open(path) as f:
        next(f)  # header
        for line in f:
            w, c, rnd, requests, errors, secs, rps, p50, p99, p999, cpu = line.rstrip("\n").split("\t")
            runs[w][c].append({
                "round": int(rnd), "requests": int(requests), "errors": int(errors),
                "seconds": float(secs), "rps": float(rps), "p50": float(p50), "p99": float(p99),
                "p999": float(p999), "cpu": None if cpu == "-" else float(cpu)})
    missing = [f"{w}/{c}" for w in WORKLOADS for c in CONTENDERS if not runs[w][c]]
    if missing:
        sys.exit(f"summarize_grpc.py: no runs for {', '.join(missing)} in {path}")

    rounds = len(runs["small"]["fusebox"])
    print(f"gRPC Predict (half_plus_two, input as `tensor_content`), closed loop: {concurrency} calls "
          f"in flight on {channels} channel{'s' if int(channels) > 1 else ''} (`bench/grpc_load`), "
          f"{seconds}s per run, {rounds} alternating round{'s' if rounds > 1 else ''}; every answer "
          "verified. tfs-sim with one thread. The open-loop rows start calls at a fixed "
          f"{rate} calls/s whatever the answers do (the same load on every path; latency from each "
          "call's scheduled start). The relay is the floor: a byte relay that parses nothing (HTTP/2 "
          "passes through it untouched), so what it adds over direct is the least any proxy can add "
          "on this machine.\n")
    print("| tensor | path | req/s (median) | req/s min–max | p50 ms | p99 ms | p99.9 ms | errors "
          "| proxy CPU s / 100k req |")
    print("|---|---|---|---|---|---|---|---|---|")
    med = collections.defaultdict(dict)  # workload -> contender -> medians
    spreads = []
    for w, wlabel in WORKLOADS.items():
        for c, clabel in CONTENDERS.items():
            rs = runs[w][c]
            rps = [r["rps"] for r in rs]
            m = {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50", "p99", "p999")}
            cpu = [r["cpu"] / r["requests"] * 1e5 for r in rs if r["cpu"] is not None and r["requests"]]
            m["cpu"] = statistics.median(cpu) if cpu else None
            med[w][c] = m
            if m["rps"]:
                spreads.append(((max(rps) - min(rps)) / m["rps"] * 100, f"{w} {c}"))
            print(f"| {wlabel} | {clabel} | {m['rps']:.0f} | {min(rps):.0f}–{max(rps):.0f} "
                  f"| {m['p50']:.3f} | {m['p99']:.3f} | {m['p999']:.3f} "
                  f"| {sum(r['errors'] for r in rs)} "
                  f"| {'–' if m['cpu'] is None else format(m['cpu'], '.2f')} |")
    print()
    print("Ratios of the medians (throughput: higher is better for fusebox; latency: lower is better):\n")
    print("| tensor | fusebox/direct req/s | fusebox/direct p50 | fusebox/direct p99 "
          "| fusebox/nginx req/s | fusebox/nginx p50 | fusebox/nginx p99 | fusebox/nginx CPU per req "
          "| fusebox/relay req/s | nginx/relay req/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for w, wlabel in WORKLOADS.items():
        f, d, n, rl = med[w]["fusebox"], med[w]["direct"], med[w]["nginx"], med[w]["relay"]
        cpu = ratio(f["cpu"], n["cpu"]) if f["cpu"] is not None and n["cpu"] is not None else "–"
        print(f"| {wlabel} | {ratio(f['rps'], d['rps'])} | {ratio(f['p50'], d['p50'])} "
              f"| {ratio(f['p99'], d['p99'])} | {ratio(f['rps'], n['rps'])} "
              f"| {ratio(f['p50'], n['p50'])} | {ratio(f['p99'], n['p99'])} | {cpu} "
              f"| {ratio(f['rps'], rl['rps'])} | {ratio(n['rps'], rl['rps'])} |")
    print()
    for w, wlabel in WORKLOADS.items():
        d = med[w]["direct"]
        if not d["p50"]:
            continue
        added, nginx_added, relay_added = ((med[w][c]["p50"] / d["p50"] - 1) * 100
                                           for c in ("fusebox", "nginx", "relay"))
        if w.endswith("-open"):
            print(f"- **Equal load** ({wlabel}, {rate} calls/s): fusebox adds {added:+.0f}% to p50 "
                  f"over direct, nginx {nginx_added:+.0f}%, the relay (the floor) {relay_added:+.0f}% "
                  f"(target: fusebox <= +30%; **{'met' if added <= 30 else 'missed'}** in this run).")
        else:
            print(f"- {wlabel}, closed loop: fusebox adds {added:+.0f}% to p50 over direct, nginx "
                  f"{nginx_added:+.0f}%, the relay {relay_added:+.0f}%, at the same concurrency (a "
                  "slower path then also runs at a lower rate: this compares capacity, not equal "
                  "load).")
    print("- Client, tfs-sim and proxy share the machine's cores; tfs-sim answers in microseconds, "
          "so the proxy's own hop is most of what is measured.")
    print(noise_line(spreads, rounds))


def noise_line(spreads, rounds):
    """How much requests/s moved between rounds, and how busy the machine was."""
    machine = machine_line()
    if rounds < 2 or not spreads:
        return f"- Noise: one round only, so no spread was measured; {machine}."
    pct, where = max(spreads)
    return (f"- Noise: requests/s moved between rounds by up to {pct:.0f}% of the median "
            f"({where}; (max − min) / median); {machine}.")


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(__doc__ if len(args) != 5 else main(*args))
