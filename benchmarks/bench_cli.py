"""`reindex --help` start-up time, against `python -c pass`, in fresh processes (target: under 0.3 s).

    python -m benchmarks.bench_cli [--quick]

Shell completion (Typer's `--install-completion` / `--show-completion`) is on: this measures that
it costs `--help` nothing noticeable. Also times `reindex --version` and `reindex build --help`.
"""
from __future__ import annotations

import argparse
import subprocess
import sys

from .common import interleaved, print_table, rows_against

TARGET_S = 0.3
CONSOLE = "import sys; sys.argv[0] = 'reindex'; from reindex.cli import main; main()"  # as the console script


def _process(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    repeats = 5 if args.quick else 15
    medians = interleaved({
        "python -c pass": lambda: _process("-c", "pass"),
        "reindex --help": lambda: _process("-c", CONSOLE, "--help"),
        "reindex --version": lambda: _process("-c", CONSOLE, "--version"),
        "reindex build --help": lambda: _process("-c", CONSOLE, "build", "--help"),
    }, repeats=repeats)
    help_s = medians["reindex --help"]
    print_table(f"CLI start-up, medians of {repeats} fresh processes", rows_against(medians, "python -c pass"),
                baseline="python -c pass")
    verdict = "under" if help_s < TARGET_S else "OVER"
    print(f"\n`reindex --help`: {help_s:.3f} s, {verdict} the {TARGET_S} s target "
          f"({help_s - medians['python -c pass']:.3f} s above a bare interpreter).")
    return 0 if help_s < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
