#!/usr/bin/env python3
"""Summarizes bench/scenario.sh runs: scenario.tsv, scenario.md and one plot per variant.

    summarize_scenario.py DIR [--variants a,b,c] [--contenders fusebox,nginx,haproxy]
                          [--fault-at 15]

Reads, per run, DIR/<variant>-<contender>.csv (every client request, from build/bin/openloop),
.json (openloop's summary, with its start time), .meta.json (the fault time, the bad backend and
how the contender names the backends), .log (the contender's access log), .fusebox.log
(fusebox's decisions) and .samples.tsv (each tfs-sim's request counter and the contender's
per-backend attempt counters, every 50 ms). Writes DIR/scenario.tsv (one line per run),
DIR/scenario.md (a table per variant, targets set against the figures),
DIR/timeline-<variant>-<contender>.tsv (per second: p99, max, errors, attempts on the bad
backend) and, when gnuplot is installed, DIR/scenario-<variant>.png (bench/plot_scenario.gp).
Prints scenario.md.

Upstream attempts (amplification) come from the contender's own access log: nginx lists every
attempt and its backend ($upstream_addr), HAProxy logs the retries of each request, fusebox the
attempts of each request. The attempts on the bad backend after the fault come from nginx's log
and from fusebox's and HAProxy's own per-backend counters (fusebox_upstream_requests_total,
HAProxy's per-server stot), sampled every 50 ms.

Isolation time: from the fault to the last attempt the bad backend received before a quiet
second (no attempt for 1 s, or none until the end of the run). Later single attempts after such
a pause are the proxies' periodic probes of a failed server (nginx after fail_timeout, a
half-open breaker), not regular traffic; more than 5 attempts within a second after it mean the
backend was let back in (reported, and a missed target). For variants a and b the times come
from the bad backend's own request counter (taken on arrival), for c (the backend is dead) from
nginx's log or the contender's counters (an increase is placed in the middle of its 50 ms
interval, or at the contender's logged ejection when that falls in the same interval). The
ejection time is when the contender logged taking the backend out (fusebox's
breaker or health check, HAProxy's "is DOWN").
"""

import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
from datetime import datetime

QUIET_MS = 1000  # a pause this long ends "regular traffic" to the bad backend
PROBE_BURST = 5  # more attempts than this within a second after that pause: traffic again
VARIANT_TITLES = {
    "a": "one backend answers 3 s late",
    "b": "one backend answers 503 to half the requests",
    "c": "one backend is killed",
}
# The targets (for fusebox).
ISOLATION_TARGET_MS = {"a": 1000, "b": 1000, "c": 100}
AMPLIFICATION_TARGET = 1.2
SLOW_MAX_TARGET_MS = 1000  # variant a: no request above 1 s
SLOW_P99_TARGET_MS = 50  # variant a: client p99


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def read_requests(path):
    rows = []
    with open(path) as f:
        for r in csv.DictReader(f):
            latency = float(r["latency_ms"]) if r["latency_ms"] else float("nan")
            lag = float(r["send_lag_ms"]) if r.get("send_lag_ms") else 0.0
            rows.append((float(r["scheduled_ms"]), latency, int(r["status"]), r["error"], lag))
    return rows


def parse_iso_ms(text):
    # 2026-11-27T19:20:36.477594Z
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


def attempts_from_log(contender, path, names, bad, window):
    """Upstream attempts as (unix_ms, backend index or None), from the contender's log.

    Only requests answered within window (unix ms) count: the warm-up before the load is left out.
    HAProxy and fusebox log only the backend of the last attempt: the earlier ones are put on the
    bad backend, which is right for the count, not necessarily for the backend (the per-backend
    figures come from their counters instead).
    """
    index = {n: i for i, n in enumerate(names)}
    attempts = []
    with open(path, errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            if contender == "nginx":
                # $msec $request_time $status "$upstream_addr" "$upstream_status"
                # "$upstream_response_time"
                try:
                    head, addrs, _, _, _, times, _ = line.split('"')
                    end_s, request_time, _ = head.split()
                except ValueError:
                    continue
                end = float(end_s) * 1000
                if not window[0] <= end <= window[1]:
                    continue
                t = end - float(request_time) * 1000
                addr_list = [a.strip() for a in addrs.replace(" : ", ", ").split(",") if a.strip()]
                time_list = [x.strip() for x in times.replace(" : ", ", ").split(",")]
                for k, a in enumerate(addr_list):
                    if a in index:  # else the group's name: no server was available, no attempt
                        attempts.append((t, index[a]))
                    took = time_list[k] if k < len(time_list) else "-"
                    t += float(took) * 1000 if took not in ("-", "") else 0
            elif contender == "haproxy":
                # <ISO time> %Ts.%ms %Ta %ST %s %rc %tsc
                parts = line.split()[1:]
                if len(parts) != 6:
                    continue  # server state changes and other messages
                try:
                    start = float(parts[0]) * 1000
                    retries = int(parts[4].lstrip("+"))
                    total = float(parts[1])
                except ValueError:
                    continue
                if not window[0] <= start + total <= window[1]:
                    continue
                for _ in range(retries):
                    attempts.append((start, bad))
                server = parts[3]
                if server not in ("<NOSRV>", "-"):
                    attempts.append((start, index.get(server)))
            else:  # fusebox's JSON access log
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if e.get("type") != "access":
                    continue
                end = parse_iso_ms(e["ts"])
                if not window[0] <= end <= window[1]:
                    continue
                start = end - float(e.get("duration_ms", 0))
                n = int(e.get("attempts", 0))
                backend = e.get("backend") or ""
                for _ in range(max(0, n - 1)):
                    attempts.append((start, bad))
                if n > 0:
                    attempts.append((start, index.get(backend, bad if not backend else None)))
    return attempts


def read_samples(path):
    """{(source, backend index): [(unix_ms, count)]} from the 50 ms sampler."""
    series = {}
    if not os.path.exists(path):
        return series
    with open(path) as f:
        for r in csv.DictReader(f, delimiter="\t"):
            key = (r["source"], int(r["backend"]))
            series.setdefault(key, []).append((float(r["unix_ms"]), int(r["count"])))
    return series


def increments(series):
    """[(unix_ms, n)]: n attempts between two samples, placed at the middle of the interval."""
    events = []
    for (t0, c0), (t1, c1) in zip(series, series[1:]):
        if c1 > c0:
            events.append(((t0 + t1) / 2, c1 - c0))
    return events


def sample_intervals(series):
    """[(t0, t1)]: the sampling intervals in which a counter increased."""
    return [(t0, t1) for (t0, c0), (t1, c1) in zip(series, series[1:]) if c1 > c0]


def ejection_time(contender, base, name, fault):
    """When the contender itself took the bad backend out, from its log (unix ms), or None."""
    if contender.startswith("fusebox"):
        path = base + ".fusebox.log"
        marks = (f"backend={name} closed -> open", f"backend={name} healthy -> unhealthy",
                 f"backend={name} unknown -> unhealthy")
        parse = lambda line: (parse_iso_ms(json.loads(line)["ts"]), json.loads(line).get("msg", ""))
    elif contender == "haproxy":
        path = base + ".log"
        marks = (f"Server tfs/{name} is DOWN",)
        parse = lambda line: (parse_iso_ms(line.split(" ", 1)[0]), line)
    else:
        return None  # nginx logs no such decision with a usable time
    if not os.path.exists(path):
        return None
    with open(path, errors="replace") as f:
        for line in f:
            if not any(m in line for m in marks):
                continue
            try:
                t, _ = parse(line)
            except (ValueError, KeyError, IndexError):
                continue
            if t >= fault:
                return t
    return None


def isolation(times, fault, end):
    """(isolation ms after the fault or None, attempts before it, attempts after it).

    times: sorted unix ms of activity on the bad backend. The last activity before the first
    pause of QUIET_MS (or the end of the run) is the isolation point.
    """
    after = [t for t in times if t >= fault]
    if not after:
        return 0.0, 0, 0
    prev = fault
    for k, t in enumerate(after):
        if t - prev >= QUIET_MS:
            return prev - fault, k, len(after) - k
        prev = t
    if end - prev >= QUIET_MS:
        return prev - fault, len(after), 0
    return None, len(after), 0


def summarize_run(out, variant, contender):
    base = os.path.join(out, f"{variant}-{contender}")
    summary = json.load(open(base + ".json"))
    meta = json.load(open(base + ".meta.json"))
    rows = read_requests(base + ".csv")
    start = float(summary["start_unix_ms"])
    fault = float(meta["fault_unix_ms"])
    seconds = meta["seconds"]
    bad = meta["bad_backend"]
    end = start + seconds * 1000
    window = (start, end + summary.get("timeout_s", 10) * 1000 + 1000)

    latencies = sorted(r[1] for r in rows if not math.isnan(r[1]))
    errors = sum(1 for r in rows if r[3])
    n = len(rows)

    attempts = attempts_from_log(contender, base + ".log", meta["backend_names"], bad, window)
    samples = read_samples(base + ".samples.tsv")
    # Attempts the contender sent to the bad backend: nginx's log lists each one; fusebox and
    # HAProxy count them per backend (sampled).
    if contender == "nginx":
        bad_events = [(t, 1) for t, b in attempts if b == bad]
    else:
        bad_events = increments(samples.get(("proxy", bad), []))
    # When it stopped getting regular traffic: in a and b from its own request counter, in c
    # (it is dead) from the contender's attempts.
    # (fusebox counts an attempt when it ends: a 300 ms timeout shows 300 ms late, so where the
    # backend is alive its own count, taken on arrival, is the better clock.)
    if variant in ("a", "b") and samples.get(("sim", bad)):
        activity = increments(samples[("sim", bad)])
        source = "tfs-sim counter"
    else:
        activity = sorted(bad_events)
        source = "proxy log" if contender == "nginx" else "proxy counter"
    iso, _, _ = isolation([t for t, _ in activity], fault, end)
    ejected = ejection_time(contender, base, meta["backend_names"][bad], fault)
    if source == "proxy counter" and iso is not None and ejected is not None:
        # The counters say in which 50 ms the last attempt was made; when the contender logged
        # taking the backend out within that interval, that logged time is the precise one.
        for t0, t1 in sample_intervals(samples.get(("proxy", bad), [])):
            if t0 <= fault + iso <= t1 and t0 <= ejected <= t1:
                iso = ejected - fault
    bad_after_fault = sum(n for t, n in bad_events if t >= fault)
    # After the isolation point only probes are expected: a few attempts now and then (nginx one
    # per fail_timeout, a half-open breaker half_open_max_calls). More than PROBE_BURST within a
    # second means the bad backend was let back into regular traffic.
    later = [(t, n) for t, n in activity if iso is not None and t > fault + iso + 30]
    bad_after_isolation = sum(n for _, n in later)
    readmitted = None
    for t, _ in later:
        if sum(n for u, n in later if t <= u < t + 1000) > PROBE_BURST:
            readmitted = t - fault
            break
    backend_requests = None
    sims = [samples.get(("sim", i)) for i in range(len(meta["backend_names"]))]
    if variant in ("a", "b") and all(sims):
        backend_requests = sum(s[-1][1] for s in sims)

    # Per second of the schedule.
    per_second = []
    for s in range(int(math.ceil(seconds))):
        in_s = [r for r in rows if s * 1000 <= r[0] < (s + 1) * 1000]
        lat = sorted(r[1] for r in in_s if not math.isnan(r[1]))
        bad_s = sum(n for t, n in bad_events if start + s * 1000 <= t < start + (s + 1) * 1000)
        per_second.append({
            "second": s, "requests": len(in_s), "errors": sum(1 for r in in_s if r[3]),
            "p99_ms": percentile(lat, 0.99), "max_ms": lat[-1] if lat else float("nan"),
            "bad_attempts": bad_s, "max_send_lag_ms": max((r[4] for r in in_s), default=0.0)})
    worst_p99 = max((p["p99_ms"] for p in per_second if p["requests"]), default=float("nan"))

    result = {
        "variant": variant, "contender": contender, "requests": n, "ok": n - errors,
        "errors": errors, "success_pct": 100.0 * (n - errors) / n if n else float("nan"),
        "errors_by_kind": summary.get("errors_by_kind", {}),
        "p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99),
        "max_ms": latencies[-1] if latencies else float("nan"),
        "worst_second_p99_ms": worst_p99,
        "over_1s": sum(1 for x in latencies if x > 1000),
        "isolation_ms": iso, "isolation_source": source,
        "ejected_ms": None if ejected is None else ejected - fault,
        "bad_attempts_after_fault": bad_after_fault,
        "bad_attempts_after_isolation": bad_after_isolation,
        "readmitted_ms": readmitted,
        "upstream_attempts": len(attempts),
        "amplification": len(attempts) / n if n else float("nan"),
        "backend_requests": backend_requests,
        "fault_offset_s": (fault - start) / 1000, "max_send_lag_ms": summary.get("max_send_lag_ms"),
        "per_second": per_second,
    }
    result["missed"] = missed_targets(result)
    return result


def missed_targets(r):
    missed = []
    target = ISOLATION_TARGET_MS[r["variant"]]
    if r["isolation_ms"] is None or r["isolation_ms"] > target:
        missed.append(f"isolation > {target} ms")
    if r["readmitted_ms"] is not None:
        missed.append("bad backend back in rotation")
    if r["errors"]:
        missed.append("client errors")
    if r["amplification"] > AMPLIFICATION_TARGET:
        missed.append(f"amplification > {AMPLIFICATION_TARGET}x")
    if r["variant"] == "a":
        if r["max_ms"] > SLOW_MAX_TARGET_MS:
            missed.append("a request > 1 s")
        if r["p99_ms"] > SLOW_P99_TARGET_MS:
            missed.append(f"p99 > {SLOW_P99_TARGET_MS} ms")
    return missed


def ms(x, digits=1):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}f}"


def write_timeline(out, r):
    path = os.path.join(out, f"timeline-{r['variant']}-{r['contender']}.tsv")
    with open(path, "w") as f:
        f.write("second\tp99_ms\tmax_ms\terrors\trequests\tbad_attempts\tmax_send_lag_ms\n")
        for p in r["per_second"]:
            if not p["requests"]:
                continue
            f.write(f"{p['second']}\t{p['p99_ms']:.3f}\t{p['max_ms']:.3f}\t{p['errors']}\t"
                    f"{p['requests']}\t{p['bad_attempts']}\t{p['max_send_lag_ms']:.3f}\n")


def plot(out, variant, contenders, fault_at):
    if not shutil.which("gnuplot"):
        return None
    png = os.path.join(out, f"scenario-{variant}.png")
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plot_scenario.gp")
    args = (f"dir='{out}'; variant='{variant}'; contenders='{' '.join(contenders)}'; "
            f"fault={fault_at}; out='{png}'; title='Variant {variant}: {VARIANT_TITLES[variant]}'")
    res = subprocess.run(["gnuplot", "-e", args, script], capture_output=True, text=True)
    if res.returncode != 0:
        print(f"summarize_scenario.py: gnuplot failed: {res.stderr.strip()}", file=sys.stderr)
        return None
    return png


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--variants", default="a,b,c")
    ap.add_argument("--contenders", default="fusebox,nginx,haproxy")
    ap.add_argument("--fault-at", type=float, default=15)
    args = ap.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    contenders = [c for c in args.contenders.split(",") if c]

    results = []
    for v in variants:
        for c in contenders:
            if not os.path.exists(os.path.join(args.dir, f"{v}-{c}.json")):
                print(f"summarize_scenario.py: no run {v}-{c} in {args.dir}", file=sys.stderr)
                continue
            r = summarize_run(args.dir, v, c)
            write_timeline(args.dir, r)
            results.append(r)
    if not results:
        sys.exit("summarize_scenario.py: nothing to summarize")

    cols = ["variant", "contender", "requests", "ok", "errors", "success_pct", "p50_ms", "p99_ms",
            "max_ms", "worst_second_p99_ms", "over_1s", "isolation_ms", "isolation_source",
            "ejected_ms", "bad_attempts_after_fault", "bad_attempts_after_isolation",
            "readmitted_ms", "upstream_attempts",
            "amplification", "backend_requests", "fault_offset_s", "max_send_lag_ms", "missed"]
    with open(os.path.join(args.dir, "scenario.tsv"), "w") as f:
        f.write("\t".join(cols) + "\n")
        for r in results:
            vals = []
            for k in cols:
                x = r[k]
                if k == "missed":
                    x = ";".join(x) if x else "none"
                elif x is None:
                    x = "-"
                elif isinstance(x, float):
                    x = f"{x:.3f}"
                vals.append(str(x))
            f.write("\t".join(vals) + "\n")

    first = results[0]
    lines = [
        f"Open-loop load at {first['requests'] / (first['per_second'][-1]['second'] + 1):.0f} "
        f"requests/s for {len(first['per_second'])} s, three tfs-sim backends; at "
        f"{args.fault_at:g} s one of them turns bad (`bench/scenario.sh`). Latency counts from "
        "each request's scheduled send time, so stalls are not hidden by a waiting client.",
        "",
        "Targets (fusebox): bad backend isolated within 1 s (a, b) or 100 ms (c); no client error; "
        "upstream attempts at most 1.2x the client requests; in a, no request above 1 s and "
        "p99 at most 50 ms.",
        "",
        "*Isolated after*: from the fault to the last attempt the bad backend got before a pause "
        "of 1 s (single probes after such a pause, as nginx's after `fail_timeout` or a half-open "
        "breaker's, are not regular traffic); `never` when it kept getting traffic; `back at` "
        "when, after that pause, it got more than 5 attempts within a second again (the proxy let "
        "it back in while it was still bad). In a and b it "
        "comes from the backend's own request counter, in c from the proxy: nginx's access log "
        "(every attempt), fusebox's and HAProxy's per-backend attempt counters, sampled every "
        "50 ms (+-25 ms; the logged ejection when it falls in the interval of the last "
        "attempt). *Ejected after*: when the proxy logged taking the backend "
        "out (fusebox: breaker open or health check failed; HAProxy: server DOWN; nginx logs no "
        "such event). *Attempts on bad backend*: sent to it after the fault. *Attempts*: all "
        "upstream attempts from the proxy's access log, and their ratio to client requests "
        "(amplification).",
    ]
    for v in variants:
        rs = [r for r in results if r["variant"] == v]
        if not rs:
            continue
        lines += ["", f"### Variant {v}: {VARIANT_TITLES[v]}", "",
                  "| contender | success | errors | p50 ms | p99 ms | max ms | worst 1-s p99 ms "
                  "| > 1 s | isolated after ms | ejected after ms | attempts on bad backend | "
                  "attempts | amplification | targets |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in rs:
            iso = "never" if r["isolation_ms"] is None else ms(r["isolation_ms"], 0)
            if r["readmitted_ms"] is not None:
                iso += f", back at {r['readmitted_ms'] / 1000:.1f} s"
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(r["errors_by_kind"].items()))
            errs = f"{r['errors']}" + (f" ({kinds})" if kinds else "")
            verdict = "met" if not r["missed"] else "missed: " + ", ".join(r["missed"])
            lines.append(
                f"| {r['contender']} | {r['success_pct']:.2f}% | {errs} | {ms(r['p50_ms'])} | "
                f"{ms(r['p99_ms'])} | {ms(r['max_ms'], 0)} | {ms(r['worst_second_p99_ms'], 0)} | "
                f"{r['over_1s']} | {iso} | {ms(r['ejected_ms'], 0)} | "
                f"{r['bad_attempts_after_fault']} | "
                f"{r['upstream_attempts']} | {r['amplification']:.3f}x | {verdict} |")
        png = plot(args.dir, v, [r["contender"] for r in rs], args.fault_at)
        if png:
            lines += ["", f"![variant {v}]({os.path.basename(png)})"]
    late = [f"{r['variant']}-{r['contender']} {r['max_send_lag_ms']:.0f} ms" for r in results
            if (r["max_send_lag_ms"] or 0) > 10]
    if late:
        lines += ["", "Note: the load generator itself sent requests late (the machine was busy; "
                  "the delay is part of those requests' latency; per second in "
                  "`timeline-*.tsv`): " + ", ".join(late) + "."]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.dir, "scenario.md"), "w") as f:
        f.write(text)
    print(text, end="")


if __name__ == "__main__":
    main()
