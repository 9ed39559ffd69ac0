"""Shared benchmark plumbing: interleaved A B A B timing, medians, peak memory, one table."""
from __future__ import annotations

import gc
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

WORK = Path(os.environ.get("REINDEX_BENCH_DIR", Path(__file__).parent / "_work"))


@dataclass
class Row:
    name: str
    seconds: float          # median
    ratio: float | None = None
    note: str = ""


def interleaved(contenders: dict[str, Callable[[], object]], *, repeats: int = 5,
                warmup: int = 1, cpu: dict[str, float] | None = None) -> dict[str, float]:
    """Run each contender `repeats` times, in rounds A B C, C A B, ..., return median seconds.

    Each round runs the contenders in another (seeded) order, so that no contender always follows
    the same one: what one leaves behind (a fragmented heap, memory the kernel must compact before
    it can hand out huge pages for numpy's next large array) would otherwise bias its successor.
    `cpu`, when given, gets each contender's median CPU seconds (all of the process's threads), which
    move far less than wall seconds when threads share few cores.
    """
    import random

    times: dict[str, list[float]] = {name: [] for name in contenders}
    used: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(warmup):
        for fn in contenders.values():
            fn()
    for round_ in range(repeats):
        order = list(contenders.items())
        random.Random(round_).shuffle(order)
        for name, fn in order:
            gc.collect()
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            used[name].append(time.process_time() - start_cpu)
            times[name].append(time.perf_counter() - start)
    if cpu is not None:
        cpu.update({name: statistics.median(ts) for name, ts in used.items()})
    return {name: statistics.median(ts) for name, ts in times.items()}


def rows_against(medians: dict[str, float], baseline: str, notes: dict[str, str] | None = None) -> list[Row]:
    """Rows with each median's ratio to the `baseline` contender."""
    base = medians[baseline]
    return [Row(name, s, s / base, (notes or {}).get(name, "")) for name, s in medians.items()]


def print_table(title: str, rows: list[Row], *, baseline: str = "") -> None:
    """A Markdown table, so the output pastes straight into the README."""
    print(f"\n### {title}\n")
    print(f"| contender | median s | ratio{(' to ' + baseline) if baseline else ''} | note |")
    print("|---|---:|---:|---|")
    for r in rows:
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}"
        print(f"| {r.name} | {r.seconds:.4f} | {ratio} | {r.note} |")
    sys.stdout.flush()


_WAIT4 = """
import os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
_, status, usage = os.wait4(proc.pid, 0)
elapsed = time.perf_counter() - start
sys.stderr.write(proc.stderr.read().decode(errors="replace")[-2000:])
print(os.waitstatus_to_exitcode(status), elapsed, usage.ru_maxrss * 1024)
"""


def peak_rss_of(cmd: list[str]) -> tuple[float, int]:
    """Run a command; return (seconds, peak resident bytes of that command).

    Linux counts a child's resident memory before exec in its ru_maxrss, so a child forked from this
    (possibly large) process would report at least this process's size: a small interpreter in
    between forks the command instead.
    """
    proc = subprocess.run([sys.executable, "-c", _WAIT4, *cmd], capture_output=True, text=True)
    code, elapsed, peak = proc.stdout.split()
    if int(code) != 0:
        raise RuntimeError(f"{cmd} failed: {proc.stderr[-2000:]}")
    return float(elapsed), int(peak)


def self_peak_rss() -> int:
    """Peak resident bytes of this process so far (Linux ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
