"""Run every benchmark: `python -m benchmarks [--quick] [--only remap,files]` (or `make bench`).

Each module `benchmarks/bench_*.py` exposes `main(argv=None)`; a missing or failing module is
reported and the others still run. The tables are Markdown, ready to paste into the README.
"""
from __future__ import annotations

import argparse
import importlib
import platform
import subprocess
import sys
import time
import traceback

MODULES = ("bench_remap", "bench_files", "bench_vectors", "bench_train", "bench_ray", "bench_memory", "bench_hf",
           "bench_hf_init",
           "bench_fasttext", "bench_init", "bench_cli", "bench_audit")


def describe_machine() -> str:
    """CPU, core count and library versions, as the README's results table quotes them."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = []
    for name in ("numpy", "torch", "pyarrow"):
        try:
            versions.append(f"{name} {importlib.import_module(name).__version__}")
        except ImportError:
            versions.append(f"{name} missing")
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cores} cores, {cpu}; Python {platform.python_version()}, {', '.join(versions)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (passed to every module)")
    parser.add_argument("--only", default="", help="comma-separated names, e.g. remap,files")
    args = parser.parse_args(argv)
    wanted = [m for m in MODULES if not args.only or m.removeprefix("bench_") in args.only.split(",")]
    print(f"# reindex benchmarks\n\nMachine: {describe_machine()}")
    print(f"Command: python -m benchmarks{' --quick' if args.quick else ''}"
          f"{' --only ' + args.only if args.only else ''}  (git {_commit()})")
    failed = []
    for name in wanted:
        print(f"\n## {name}")
        sys.stdout.flush()
        start = time.perf_counter()
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"benchmarks.{name}":
                print("(not present: skipped)")
                continue
            failed.append(name)
            traceback.print_exc()
            continue
        try:
            code = module.main(["--quick"] if args.quick else [])
            if code:
                failed.append(name)
                print(f"{name} exited with {code}")
        except (Exception, SystemExit) as e:  # one broken benchmark must not hide the others
            failed.append(name)
            print(f"{name} FAILED: {type(e).__name__}: {e}")
            traceback.print_exc()
        print(f"\n({name}: {time.perf_counter() - start:.0f} s)")
    if failed:
        print(f"\nFailed: {', '.join(failed)}")
    return 1 if failed else 0


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
