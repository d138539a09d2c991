#!/usr/bin/env python3
"""Medians over rounds, spread, ratios, CPU cost and targets of bench/proxy_compare.sh's runs.

    summarize_proxy.py PROXY_TSV SECONDS ALL_THREADS [PLOT_DATA]

Reads the TSV (header, then one line per run: workload, backend, body, connections, contender,
round, requests, seconds, requests/s, p50 ms, p99 ms, p99.9 ms, 4xx/5xx answers, socket errors,
CPU seconds of the proxy during the run or "-") and prints markdown: one table per backend, the
ratios of fusebox to the others, the proxies against the byte relay (the floor), and the issue's
targets, each marked met or missed. With
PLOT_DATA, also writes the medians and min-max for bench/plot_proxy.gp (one block per workload,
one row per contender).
"""
import collections
import statistics
import sys

from summary_common import machine_line

BACKENDS = {
    "sim": "tfs-sim (one thread)",
    "fixed": "fixed answer (nginx, one worker, `{\"predictions\": [2.5, 3.0, 4.5]}` to any POST)",
}
BODIES = {"small": "small (~100 B)", "64k": "64 KiB", "1m": "1 MiB"}
CONTENDERS = ["direct", "fusebox-1", "fusebox-all", "nginx", "haproxy", "relay"]
FUSEBOXES = ["fusebox-1", "fusebox-all"]
# Set against the relay (HAProxy in mode tcp, the floor), in this order.
OVER_RELAY = [("fusebox-1", "fusebox-1"), ("fusebox-all", "fusebox-all"), ("nginx", "nginx"),
              ("haproxy", "HAProxy")]
# Throughput and p99 targets for fusebox with one worker thread (the issue "Benchmarks").
SMALL_RPS_TARGET = 1.10  # at least this times nginx's and HAProxy's requests/s
LARGE_RPS_TARGET = 1.00  # large bodies: no worse than nginx


def ratio(a, b):
    return a / b if b else float("nan")


def fmt_ratio(x):
    return "–" if x != x else f"{x:.2f}"


def load(path):
    """workload -> {"backend", "body", "connections", "runs": contender -> [dict per round]}."""
    workloads = {}
    with open(path) as f:
        header = next(f).rstrip("\n").split("\t")
        for line in f:
            row = dict(zip(header, line.rstrip("\n").split("\t")))
            w = workloads.setdefault(row["workload"], {
                "backend": row["backend"], "body": row["body"],
                "connections": int(row["connections"]), "runs": collections.defaultdict(list)})
            w["runs"][row["contender"]].append({
                "requests": int(row["requests"]), "rps": float(row["requests_per_s"]),
                "p50": float(row["p50_ms"]), "p99": float(row["p99_ms"]),
                "p999": float(row["p999_ms"]), "http_errors": int(row["http_errors"]),
                "socket_errors": int(row["socket_errors"]),
                "cpu": None if row["cpu_s"] == "-" else float(row["cpu_s"])})
    return workloads


def medians(runs):
    # A run in which no request completed counts for throughput (0) but has no latencies.
    timed = [r for r in runs if r["requests"]] or runs
    m = {"rps": statistics.median(r["rps"] for r in runs)}
    m.update({k: statistics.median(r[k] for r in timed) for k in ("p50", "p99", "p999")})
    rps = [r["rps"] for r in runs]
    p99 = [r["p99"] for r in timed]
    m.update(rps_min=min(rps), rps_max=max(rps), p99_min=min(p99), p99_max=max(p99),
             spread=(max(rps) - min(rps)) / m["rps"] * 100 if m["rps"] else 0.0,
             p99_spread=(max(p99) - min(p99)) / m["p99"] * 100 if m["p99"] else 0.0,
             http_errors=sum(r["http_errors"] for r in runs),
             socket_errors=sum(r["socket_errors"] for r in runs))
    cpu = [r["cpu"] / r["requests"] * 1e5 for r in runs if r["cpu"] is not None and r["requests"]]
    m["cpu"] = statistics.median(cpu) if cpu else None
    return m


def label(w):
    return f"{BODIES.get(w['body'], w['body'])}, {w['connections']} conn."


def plot_title(w):
    backend = "tfs-sim" if w["backend"] == "sim" else "fixed answer"
    return f"{backend}: {label(w)}"


def main(path, seconds, all_threads, plot_data=None):
    workloads = load(path)
    if not workloads:
        sys.exit(f"summarize_proxy.py: no runs in {path}")
    for name, w in workloads.items():
        missing = [c for c in CONTENDERS if not w["runs"][c]]
        if missing:
            sys.exit(f"summarize_proxy.py: no runs of {', '.join(missing)} for {name} in {path}")
    rounds = max(len(rs) for w in workloads.values() for rs in w["runs"].values())
    med = {name: {c: medians(w["runs"][c]) for c in CONTENDERS} for name, w in workloads.items()}

    print(f"REST predict (`POST /v1/models/{{model}}:predict`), `wrk` with one thread and keep-alive "
          f"connections (closed loop), {seconds}s per run, {rounds} round{'s' if rounds > 1 else ''}; "
          "in each round every workload runs on every contender in turn, the order rotating. "
          f"Contenders: direct to the backend; fusebox with one worker thread (`fusebox-1`) and with "
          f"{all_threads} (`fusebox-all`, one per core); nginx with one worker (upstream keep-alive); "
          "HAProxy with one thread (`http-reuse always`); `relay`, HAProxy in `mode tcp` with one "
          "thread, a byte relay that parses nothing; fusebox without active health checks, as "
          "the others run none. Every contender answered each body with a correct 200 before the "
          "runs.\n")
    for backend, blabel in BACKENDS.items():
        names = [n for n, w in workloads.items() if w["backend"] == backend]
        if not names:
            continue
        print(f"### Backend: {blabel}\n")
        print("| workload | contender | req/s (median) | req/s min–max | spread | p50 ms | p99 ms "
              "| p99.9 ms | 4xx/5xx | socket errors | proxy CPU s / 100k req |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for n in names:
            for c in CONTENDERS:
                m = med[n][c]
                print(f"| {label(workloads[n])} | {c} | {m['rps']:.0f} | {m['rps_min']:.0f}–{m['rps_max']:.0f} "
                      f"| {m['spread']:.0f}% | {m['p50']:.3f} | {m['p99']:.3f} | {m['p999']:.3f} "
                      f"| {m['http_errors']} | {m['socket_errors']} "
                      f"| {'–' if m['cpu'] is None else format(m['cpu'], '.2f')} |")
        print()

    print("### Ratios of the medians\n")
    print("Throughput: above 1 is better for fusebox; p99: below 1 is better.\n")
    print("| backend | workload | fusebox | /nginx req/s | /nginx p99 | /HAProxy req/s | /HAProxy p99 "
          "| /direct req/s | /direct p99 | /nginx CPU per req |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n, w in workloads.items():
        for f in FUSEBOXES:
            m, ng, ha, d = med[n][f], med[n]["nginx"], med[n]["haproxy"], med[n]["direct"]
            cpu = ratio(m["cpu"], ng["cpu"]) if m["cpu"] is not None and ng["cpu"] else float("nan")
            print(f"| {w['backend']} | {label(w)} | {f} | {fmt_ratio(ratio(m['rps'], ng['rps']))} "
                  f"| {fmt_ratio(ratio(m['p99'], ng['p99']))} | {fmt_ratio(ratio(m['rps'], ha['rps']))} "
                  f"| {fmt_ratio(ratio(m['p99'], ha['p99']))} | {fmt_ratio(ratio(m['rps'], d['rps']))} "
                  f"| {fmt_ratio(ratio(m['p99'], d['p99']))} | {fmt_ratio(cpu)} |")
    print()
    print_floor(workloads, med)

    print("### Targets (fusebox with one worker thread)\n")
    print(f"Small bodies: throughput >= {SMALL_RPS_TARGET:.2f}x nginx's and HAProxy's, p99 <= nginx's. "
          "Large bodies: no worse than nginx (throughput >= nginx's, p99 <= nginx's). A miss within "
          "the noise is marked: the gap is smaller than the larger of the two contenders' spreads "
          "(max − min over the rounds, of requests/s or p99). A run with errors fails its targets.\n")
    print("| backend | workload | target | fusebox-1 / other | result |")
    print("|---|---|---|---|---|")
    met, missed, unmeasured = [], [], []
    for n, w in workloads.items():
        f, ng, ha = med[n]["fusebox-1"], med[n]["nginx"], med[n]["haproxy"]
        target = SMALL_RPS_TARGET if w["body"] == "small" else LARGE_RPS_TARGET
        checks = [(f"req/s >= {target:.2f}x nginx", "rps", ng, target, ">=")]
        if w["body"] == "small":
            checks.append((f"req/s >= {target:.2f}x HAProxy", "rps", ha, target, ">="))
        checks.append(("p99 <= nginx's", "p99", ng, 1.0, "<="))
        errors = f["http_errors"] + f["socket_errors"]
        for text, key, other, goal, op in checks:
            value = ratio(f[key], other[key])
            spread = max(f["spread" if key == "rps" else "p99_spread"],
                         other["spread" if key == "rps" else "p99_spread"])
            if not (f["rps"] and other["rps"]):
                result = "not measured: no request completed"
                unmeasured.append(n)
            elif errors:
                result = f"**missed**: {errors} errors"
                missed.append(f"{n} ({text})")
            elif value >= goal if op == ">=" else value <= goal:
                result = "**met**"
                met.append(n)
            else:
                gap = abs(value / goal - 1) * 100
                noise = f" (by {gap:.0f}%, within the {spread:.0f}% spread)" if gap <= spread else ""
                result = f"**missed**{noise}"
                missed.append(f"{n} ({text})")
            print(f"| {w['backend']} | {label(w)} | {text} | {fmt_ratio(value)} | {result} |")
    print()
    total = len(met) + len(missed)
    if missed:
        print(f"**In this run fusebox with one worker thread missed {len(missed)} of {total} targets:** "
              f"{'; '.join(missed)}.\n")
    elif total:
        print(f"**In this run fusebox with one worker thread met all {total} targets.**\n")
    if unmeasured:
        print(f"No request completed on some contender in {', '.join(sorted(set(unmeasured)))}: "
              "runs too short for these bodies.\n")

    if plot_data:
        write_plot_data(plot_data, workloads, med)
        print("![requests/s per contender and workload](proxy-rps.png)\n")
        print("![p99 per contender and workload](proxy-p99.png)\n")
    print("- Closed loop: at the same connection count a slower path also runs at a lower rate, so "
          "the latency ratios compare equal concurrency, not equal request rate. Client, backend and "
          "proxy share the machine's cores, so a proxy's own CPU use slows the others.")
    print("- 4xx/5xx counts answers with a status of 400 or more (wrk's \"Non-2xx or 3xx\"); socket "
          "errors are wrk's connect, read, write and timeout errors (10 s timeout). With fewer "
          "than 1000 requests in a run (large bodies) p99.9 is the slowest request.")
    print(noise_line(med, rounds))


def print_floor(workloads, med):
    """The proxies' throughput against the relay's, and how near the relay itself came to nginx."""
    print("### The floor: a byte relay\n")
    print("The relay is the floor: it copies bytes between each client connection and the backend "
          "and parses nothing, so what it costs over direct access is the least any proxy can add "
          "on this machine, mostly the kernel's work for a second loopback TCP hop. It is not a "
          "usable gateway (no routing, no HTTP, one upstream connection per client connection). "
          "Throughput ratios: above 1 is faster than the relay.\n")
    print("| backend | workload | relay req/s | relay/direct | "
          + " | ".join(f"{name}/relay" for _, name in OVER_RELAY) + " |")
    print("|---|---|---|---|" + "---|" * len(OVER_RELAY))
    over_nginx = []
    for n, w in workloads.items():
        relay = med[n]["relay"]
        cells = [fmt_ratio(ratio(med[n][c]["rps"], relay["rps"])) for c, _ in OVER_RELAY]
        print(f"| {w['backend']} | {label(w)} | {relay['rps']:.0f} "
              f"| {fmt_ratio(ratio(relay['rps'], med[n]['direct']['rps']))} | {' | '.join(cells)} |")
        if w["body"] == "small" and med[n]["nginx"]["rps"]:
            over_nginx.append(ratio(relay["rps"], med[n]["nginx"]["rps"]))
    print()
    if over_nginx:
        lo, hi = min(over_nginx), max(over_nginx)
        span = f"{lo:.2f}x" if len(over_nginx) == 1 else f"{lo:.2f}x to {hi:.2f}x"
        print(f"On small bodies the relay itself reached {span} nginx's throughput in this run; the "
              f"target asks {SMALL_RPS_TARGET:.2f}x of fusebox, which also parses, routes and "
              "records every request.\n")


def write_plot_data(path, workloads, med):
    """One block per workload (two blank lines apart), one row per contender."""
    with open(path, "w") as f:
        f.write("# title contender rps_median rps_min rps_max p99_median p99_min p99_max\n")
        for i, (n, w) in enumerate(workloads.items()):
            if i:
                f.write("\n\n")
            for c in CONTENDERS:
                m = med[n][c]
                f.write(f"\"{plot_title(w)}\" {c} {m['rps']:.1f} {m['rps_min']:.1f} {m['rps_max']:.1f} "
                        f"{m['p99']:.3f} {m['p99_min']:.3f} {m['p99_max']:.3f}\n")


def noise_line(med, rounds):
    """How much requests/s moved between rounds, and how busy the machine was."""
    machine = machine_line()
    if rounds < 2:
        return f"- Noise: one round only, so no spread was measured; {machine}."
    pct, where = max((m["spread"], f"{n} {c}") for n, ms in med.items() for c, m in ms.items())
    typical = statistics.median(m["spread"] for ms in med.values() for m in ms.values())
    return (f"- Noise: requests/s moved between rounds by {typical:.0f}% of the median in a typical "
            f"case and up to {pct:.0f}% ({where}; (max − min) / median); {machine}.")


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(__doc__ if len(args) not in (3, 4) else main(*args))
