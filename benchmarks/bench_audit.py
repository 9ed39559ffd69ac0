"""`reindex audit` on a Llama-3-8B-shaped pair against reading both pairs of tensors with safetensors.

    python -m benchmarks.bench_audit [--quick] [--keep]

The pair: an input embedding and an untied head of 128,256 x 4,096 bfloat16 (1 GB each) in BASE
and in TUNED (4 GB in all), written chunk by chunk into a temporary folder (`REINDEX_BENCH_DIR`,
else benchmarks/_work) and deleted afterwards unless `--keep`. TUNED differs in its last 256 rows
(added tokens, trained) and in 64 old rows moved by one bfloat16 step; the audit names those rows
with `--expect-trainable ids:FILE` so it exits 0, as in CI.
Targets: audit at most 1.5x the plain read, peak RSS under 300 MB. Both are timed in this process,
interleaved (the plain read: `safe_open(..., "pt").get_tensor(key).clone()` for the four tensors,
so every byte lands in memory as audit's reads do), and each as a fresh process for its peak RSS
and its wall time with imports. A third row reads both files' bytes and nothing else: the floor.
`--quick`: 32,064 rows (a Phi-3-sized vocabulary).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from .common import WORK, Row, interleaved, peak_rss_of, print_table

ROWS, DIM, ADDED, DRIFTED = 128_256, 4_096, 256, 64
TARGET_RATIO, TARGET_PEAK = 1.5, 300e6
KEYS = ("model.embed_tokens.weight", "lm_head.weight")
PLAIN = """
import sys
from safetensors import safe_open
for path in sys.argv[1:]:
    with safe_open(path, framework="pt") as f:
        for key in f.keys():
            f.get_tensor(key).clone()
"""


def write_checkpoint(path: Path, *, rows: int, seed: int, tuned: bool) -> None:
    """A model.safetensors of two bfloat16 [rows, DIM] tensors, generated 4,096 rows at a time."""
    chunk = 4_096
    header: dict = {}
    offset = 0
    for key in KEYS:
        size = rows * DIM * 2
        header[key] = {"dtype": "BF16", "shape": [rows, DIM], "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text)
        for index, _ in enumerate(KEYS):
            rng = np.random.default_rng([seed, index])
            for lo in range(0, rows, chunk):
                block = (rng.standard_normal((min(chunk, rows - lo), DIM), dtype=np.float32)
                         .view(np.uint32) >> 16).astype(np.uint16)   # bfloat16 bits
                if tuned:
                    _train(block, lo, rows)
                f.write(block.tobytes())


def _train(block: np.ndarray, lo: int, rows: int) -> None:
    """TUNED's rows: the added ones rewritten, a few old ones moved by one step of their last bit."""
    ids = np.arange(lo, lo + block.shape[0])
    block[ids >= rows - ADDED] ^= 0x0100
    block[(ids % (rows // DRIFTED) == 7) & (ids < rows - ADDED)] ^= 0x0001


def expected_ids(path: Path, rows: int) -> Path:
    ids = list(range(rows - ADDED, rows)) + [i for i in range(rows - ADDED) if i % (rows // DRIFTED) == 7]
    path.write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    return path


def raw_read(*paths: Path) -> None:
    """The floor: every byte of both files read into one reused 16 MB buffer, nothing decoded."""
    buffer = memoryview(bytearray(16 << 20))
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buffer):
                pass


def plain_read(*paths: Path) -> None:
    from safetensors import safe_open

    for path in paths:
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():
                f.get_tensor(key).clone()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_audit", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32,064 rows instead of 128,256")
    parser.add_argument("--keep", action="store_true", help="keep the generated pair")
    args = parser.parse_args(argv)
    rows = 32_064 if args.quick else ROWS
    work = WORK / "audit"
    need = 4 * rows * DIM * 2
    free = shutil.disk_usage(WORK.parent if not WORK.exists() else WORK).free
    if free < 1.5 * need:
        print(f"skipped: {need / 1e9:.1f} GB needed, {free / 1e9:.1f} GB free under {WORK}")
        return 0
    try:
        return run(work, rows, args.quick)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def run(work: Path, rows: int, quick: bool) -> int:
    from reindex.audit import audit

    base, tuned = work / "base" / "model.safetensors", work / "tuned" / "model.safetensors"
    for path, is_tuned in ((base, False), (tuned, True)):
        if not path.exists():
            write_checkpoint(path, rows=rows, seed=0, tuned=is_tuned)
    ids = expected_ids(work / "expected.txt", rows)
    spec = [f"ids:{ids}"]
    report = audit(base.parent, tuned.parent, expect=spec)
    changed = [int(m.changes.changed.shape[0]) for m in report.matrices if m.changes is not None]
    assert report.exit_code == 0 and changed == [ADDED + DRIFTED, ADDED + DRIFTED], changed
    medians = interleaved({"reindex.audit.audit": lambda: audit(base.parent, tuned.parent, expect=spec),
                           "safetensors get_tensor().clone(), 4 tensors": lambda: plain_read(base, tuned),
                           "raw": lambda: raw_read(base, tuned)},
                          repeats=2 if quick else 3)
    cli_s, cli_peak = peak_rss_of([sys.executable, "-m", "reindex", "audit", "-q", str(base.parent),
                                   str(tuned.parent), "--expect-trainable", spec[0]])
    plain_s, plain_peak = peak_rss_of([sys.executable, "-c", PLAIN, str(base), str(tuned)])
    baseline = "safetensors get_tensor().clone(), 4 tensors"
    ratio = medians["reindex.audit.audit"] / medians[baseline]
    print_table(f"audit of {rows:,} x {DIM:,} bf16 embedding + head, BASE vs TUNED ({4 * rows * DIM * 2 / 1e9:.1f} GB)",
                [Row("reindex.audit.audit (in process)", medians["reindex.audit.audit"], ratio),
                 Row(f"{baseline} (in process)", medians[baseline], 1.0),
                 Row("both files read raw, 16 MB at a time (in process; the floor)", medians["raw"],
                     medians["raw"] / medians[baseline]),
                 Row("reindex audit -q (process)", cli_s, cli_s / plain_s, f"peak RSS {cli_peak / 1e6:.0f} MB"),
                 Row("safetensors read (process)", plain_s, 1.0, f"peak RSS {plain_peak / 1e6:.0f} MB")],
                baseline="the plain read")
    ok = ratio <= TARGET_RATIO and cli_peak < TARGET_PEAK
    print(f"\naudit / plain read {ratio:.2f} (target <= {TARGET_RATIO}); peak RSS {cli_peak / 1e6:.0f} MB "
          f"(target < {TARGET_PEAK / 1e6:.0f} MB): {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
