"""What the bench summaries share (imported by bench/summarize_*.py, run from bench/)."""
import os


def machine_line():
    """How busy the machine was at the end of a run: its load average and core count."""
    try:
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
    except OSError:
        load = "?"
    return f"load average at the end {load} on {os.cpu_count()} cores"
