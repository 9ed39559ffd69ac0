"""`reindex --help` start-up time, against `python -c pass`, in fresh processes (target: under 0.3 s).

    python -m benchmarks.bench_cli [--quick]

Shell completion (Typer's `--install-completion` / `--show-completion`) is on: this measures that
it costs `--help` nothing noticeable. Also times `reindex --version` and `reindex build --help`.
Wall seconds and CPU seconds (user + system of the child) are both printed: on a shared, loaded
machine the wall clock mostly measures the wait for a core, so the target is checked on both and
the verdict says which held.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys

from .common import interleaved, print_table, rows_against

TARGET_S = 0.3
CONSOLE = "import sys; sys.argv[0] = 'reindex'; from reindex.cli import main; main()"  # as the console script


CPU: dict[str, list[float]] = {}


def _process(name: str, *args: str) -> subprocess.CompletedProcess:
    """Run a fresh interpreter; record the child's CPU seconds (user + system) under `name`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, *args], capture_output=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.setdefault(name, []).append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    repeats = 5 if args.quick else 15
    commands = {"python -c pass": ("-c", "pass"), "reindex --help": ("-c", CONSOLE, "--help"),
                "reindex --version": ("-c", CONSOLE, "--version"),
                "reindex build --help": ("-c", CONSOLE, "build", "--help")}
    medians = interleaved({name: (lambda n=name, a=args: _process(n, *a)) for name, args in commands.items()},
                          repeats=repeats)
    cpu = {name: statistics.median(times[-repeats:]) for name, times in CPU.items()}
    rows = rows_against(medians, "python -c pass", notes={n: f"CPU {cpu[n]:.3f} s" for n in cpu})
    print_table(f"CLI start-up, medians of {repeats} fresh processes (wall; CPU in the note)", rows,
                baseline="python -c pass")
    wall, cpu_s = medians["reindex --help"], cpu["reindex --help"]
    print(f"\n`reindex --help`: {wall:.3f} s wall ({'under' if wall < TARGET_S else 'OVER'} the {TARGET_S} s target), "
          f"{cpu_s:.3f} s CPU ({'under' if cpu_s < TARGET_S else 'OVER'}); a bare interpreter: "
          f"{medians['python -c pass']:.3f} s wall, {cpu['python -c pass']:.3f} s CPU.")
    return 0 if cpu_s < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
