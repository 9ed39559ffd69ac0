"""In-memory remap of 1,000,000 x 75 int64 ids (600 MB), vocabulary 75,000, half fixed.

    python -m benchmarks.bench_remap [--quick]

`reindex.mapping.remap` (the library call behind `Run.to_sorted`) against `clone()` of the same
tensor, `copy_` into a preallocated one, the PyTorch forum's `clone().apply_(dict.get)`, `np.take`,
`torch.take` and `perm[X]`. Contenders run interleaved (A B C A B C ...); medians; ratios to clone().
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from .common import interleaved, print_table, rows_against

ROWS, COLS, VOCAB = 1_000_000, 75, 75_000
SEED = 0


def forum_permutation(is_fixed: list[bool]) -> dict[int, int]:
    """The forum answer's `original_to_sorted`: two lists and a dict."""
    vocab = len(is_fixed)
    fixed_to_original = [i for i in range(vocab) if is_fixed[i]]
    trained_to_original = [i for i in range(vocab) if not is_fixed[i]]
    return {o: n for n, o in enumerate(fixed_to_original + trained_to_original)}


def bench_permutation(is_fixed: np.ndarray, *, repeats: int) -> None:
    from reindex.mapping import build_permutation, invert_permutation

    as_list = is_fixed.tolist()
    medians = interleaved({
        "forum lists + dict": lambda: forum_permutation(as_list),
        "reindex build_permutation + invert_permutation": lambda: invert_permutation(build_permutation(is_fixed)),
    }, repeats=repeats * 4)
    print_table(f"Build original_to_sorted, V = {VOCAB:,}, half fixed", rows_against(medians, "forum lists + dict"),
                baseline="forum lists + dict")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats; the forum recipe once")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args(argv)
    import torch

    from reindex.mapping import build_permutation, invert_permutation, remap

    torch.set_num_threads(args.threads)
    repeats = 3 if args.quick else 7
    rng = np.random.default_rng(SEED)
    is_fixed = rng.random(VOCAB) < 0.5
    ids = rng.integers(0, VOCAB, (ROWS, COLS), dtype=np.int64)
    X = torch.from_numpy(ids)
    table = invert_permutation(build_permutation(is_fixed))          # original_to_sorted, int64
    perm64 = torch.from_numpy(table)
    out32 = torch.empty(X.shape, dtype=torch.int32)
    out64 = torch.empty(X.shape, dtype=torch.int64)
    expected = table[ids]
    assert np.array_equal(remap(X, table).numpy(), expected)
    assert np.array_equal(remap(X, table, dtype=torch.int32).numpy(), expected)
    assert np.array_equal(remap(ids, table, dtype=np.int32), expected)

    contenders = {
        "clone()": lambda: X.clone(),
        "copy_ into preallocated": lambda: out64.copy_(X),
        "reindex remap, int32 out": lambda: remap(X, table, dtype=torch.int32),
        "reindex remap, int64 out": lambda: remap(X, table),
        "reindex remap, out= int32": lambda: remap(X, table, out=out32),
        "reindex remap, out= int64": lambda: remap(X, table, out=out64),
        "reindex remap, numpy in, int32 out": lambda: remap(ids, table, dtype=np.int32),
        "reindex remap, numpy in, int64 out": lambda: remap(ids, table),
        "np.take(perm64, X64)": lambda: np.take(table, ids),
        "torch.take(perm64, X64)": lambda: torch.take(perm64, X),
        "perm64[X64]": lambda: perm64[X],
    }
    medians = interleaved(contenders, repeats=repeats)

    forum_table = forum_permutation(is_fixed.tolist())
    forum_runs = []
    for _ in range(1 if args.quick else 2):
        start = time.perf_counter()
        forum_out = X.clone().apply_(forum_table.get)
        forum_runs.append(time.perf_counter() - start)
    assert np.array_equal(forum_out.numpy(), expected)
    medians["forum clone().apply_(dict.get)"] = statistics.median(forum_runs)
    del forum_out

    base, forum = medians["clone()"], medians["forum clone().apply_(dict.get)"]
    notes = {name: f"{forum / s:,.0f}x faster than the forum" for name, s in medians.items()
             if name.startswith("reindex")}
    notes["forum clone().apply_(dict.get)"] = f"{len(forum_runs)} run(s)"
    notes["reindex remap, int32 out"] += "; target <= 1.0x clone(): " + ("met" if medians[
        "reindex remap, int32 out"] <= base else "NOT met")
    notes["reindex remap, int64 out"] += "; target <= 1.5x clone(): " + ("met" if medians[
        "reindex remap, int64 out"] <= 1.5 * base else "NOT met")
    print_table(f"Remap {ROWS:,} x {COLS} int64 ids, V = {VOCAB:,}, torch threads = {args.threads}",
                rows_against(medians, "clone()", notes), baseline="clone()")
    bench_permutation(is_fixed, repeats=repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
