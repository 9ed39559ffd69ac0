"""A small run directory written by hand with reindex.run's writers (no `reindex build` needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from reindex.io.jsonfile import write_json
from reindex.mapping import build_permutation, invert_permutation
from reindex.run import EMBEDDING_FILE, MANIFEST_FILE, VOCAB_FILE, write_embedding, write_vocab


def make_run(out: Path, *, vocab_size: int = 40, num_fixed: int = 15, dim: int = 8, rows: int = 64,
             seq: int = 12, seed: int = 0) -> dict:
    """Write RUN/{embedding.safetensors, vocab.txt, manifest.json, data/train.parquet}; return its arrays."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    is_fixed = np.zeros(vocab_size, dtype=bool)
    is_fixed[rng.choice(np.arange(1, vocab_size), num_fixed - 1, replace=False)] = True
    sorted_to_original = build_permutation(is_fixed, pad=0)   # pad first, a fixed zero row
    weight = rng.standard_normal((vocab_size, dim)).astype(np.float32)   # original order
    weight[0] = 0
    merged = weight[sorted_to_original]
    tokens = [f"tok{i}" for i in range(vocab_size)]
    out.mkdir(parents=True)
    write_embedding(out / EMBEDDING_FILE, fixed=merged[:num_fixed], trainable=merged[num_fixed:],
                    sorted_to_original=sorted_to_original, metadata={"pad_id": "0"})
    write_vocab(out / VOCAB_FILE, [tokens[o] for o in sorted_to_original.tolist()])
    write_json(out / MANIFEST_FILE, {"format": "reindex.run", "format_version": 1})
    original_ids = rng.integers(1, vocab_size, (rows, seq))
    sorted_ids = invert_permutation(sorted_to_original)[original_ids].astype(np.int32)
    labels = (original_ids % 2).sum(axis=1) > seq // 2          # learnable from the ids alone
    (out / "data").mkdir()
    pq.write_table(pa.table({"input_ids": pa.array(list(sorted_ids), type=pa.list_(pa.int32())),
                             "label": pa.array(labels.astype(np.int8))}), out / "data" / "train.parquet")
    return {"weight": weight, "sorted_to_original": sorted_to_original, "tokens": tokens,
            "num_fixed": num_fixed, "original_ids": original_ids}
