"""One small dataset of ids in each format reindex reads, for tests that cover every format as a class."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

KINDS = ("npy", "pt", "safetensors", "parquet", "arrow", "hf", "text")
SUFFIX = {"npy": ".npy", "pt": ".pt", "safetensors": ".safetensors", "parquet": ".parquet", "arrow": ".arrow",
          "hf": "", "text": ".txt"}


def write_dataset(kind: str, folder: Path, ids: np.ndarray, *, stem: str = "input_ids",
                  tokens: Sequence[str] = ()) -> Path:
    """`ids` (2-D, original ids) as `folder/<stem><suffix>`; text needs `tokens` (original-id order)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (stem + SUFFIX[kind])
    if kind == "npy":
        np.save(path, ids)
    elif kind == "pt":
        import torch

        torch.save({"input_ids": torch.from_numpy(ids)}, path)
    elif kind == "safetensors":
        from safetensors.numpy import save_file

        save_file({"input_ids": np.ascontiguousarray(ids)}, str(path))
    elif kind == "text":
        path.write_text("".join(" ".join(tokens[i] for i in row) + "\n" for row in ids.tolist()), encoding="utf-8")
    else:
        table = pa.table({"input_ids": pa.array(ids.tolist(), pa.list_(pa.int64()))})
        if kind == "parquet":
            pq.write_table(table, path)
        elif kind == "arrow":
            import pyarrow.feather as feather

            feather.write_feather(table, path)
        else:
            import datasets

            datasets.Dataset(table).save_to_disk(str(path))
    return path


def build_small_run(root: Path) -> Path:
    """`root/run`, built from the worked example's vocabulary and vectors (conftest) by the CLI."""
    from typer.testing import CliRunner

    from reindex.cli import app

    from conftest import VECTORS, VOCAB, write_glove

    (root / "vocab.txt").write_text("".join(t + "\n" for t in VOCAB), encoding="utf-8")
    write_glove(root / "vectors.txt", VECTORS)
    result = CliRunner().invoke(app, ["build", "--vocab", str(root / "vocab.txt"), "--vectors",
                                      str(root / "vectors.txt"), "--out", str(root / "run"), "-q"])
    assert result.exit_code == 0, result.stderr
    return root / "run"
