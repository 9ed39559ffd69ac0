"""Make the small sample inputs in data/ (deterministic: same bytes every run).

    python data/make_samples.py

- vocab.txt       3,000 tokens, `token<TAB>count`, most frequent first; `<pad>` and `<unk>` first
- vectors.txt     GloVe-style text, 32 dimensions: ~85% of the vocabulary (some only in lowercase),
                  plus 500 words that are not in the vocabulary
- train.parquet   400 sequences: `input_ids` list<int32> (original ids, Zipf-distributed), `label` int8
- train.pt        the same as a dict {"input_ids": int64 [400, 24], "label": int64 [400]}, 24 ids each
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
SYLLABLES = ["ka", "to", "ri", "mo", "ne", "sa", "lu", "pe", "di", "go", "ve", "zi", "ba", "fu", "che", "tha"]
VOCAB_SIZE, DIM, EXTRA, ROWS, LENGTH = 3000, 32, 500, 400, 24


def words(rng: np.random.Generator, count: int) -> list[str]:
    seen: dict[str, None] = {}
    while len(seen) < count:
        n = int(rng.integers(1, 4))
        seen["".join(SYLLABLES[i] for i in rng.integers(0, len(SYLLABLES), n))] = None
    return list(seen)


def main() -> None:
    rng = np.random.default_rng(2026)
    pool = words(rng, VOCAB_SIZE + EXTRA)
    # A few capitalised tokens whose vector exists only in lowercase (for --lowercase-fallback),
    # and words that naive loaders turn into NaN.
    body = pool[: VOCAB_SIZE - 2]
    for i in range(40, 400, 40):
        body[i] = body[i].capitalize()
    body[10:14] = ["nan", "null", "NA", "None"]
    vocab = ["<pad>", "<unk>"] + body
    counts = (1_000_000 / np.arange(1, VOCAB_SIZE + 1) ** 1.1).astype(np.int64) + 1
    (HERE / "vocab.txt").write_text("".join(f"{t}\t{c}\n" for t, c in zip(vocab, counts)), encoding="utf-8")

    has_vector = rng.random(VOCAB_SIZE) < 0.85
    has_vector[:2] = False
    listed = [t.lower() if t[0].isupper() else t for t, keep in zip(vocab, has_vector) if keep]
    listed += pool[VOCAB_SIZE - 2:]
    order = rng.permutation(len(listed))
    matrix = rng.normal(0.0, 0.4, (len(listed), DIM)).astype(np.float32)
    with open(HERE / "vectors.txt", "w", encoding="utf-8", newline="\n") as f:
        for row, i in enumerate(order.tolist()):
            f.write(listed[i] + " " + " ".join(f"{v:.5f}" for v in matrix[row]) + "\n")

    # Zipf-distributed ids over the vocabulary (not the pad), so coverage statistics mean something.
    ranks = rng.zipf(1.2, (ROWS, LENGTH)).clip(max=VOCAB_SIZE - 2) + 1
    ids = ranks.astype(np.int64)
    labels = (ids[:, 0] % 2).astype(np.int64)
    import pyarrow as pa
    import pyarrow.parquet as pq

    lengths = rng.integers(8, LENGTH + 1, ROWS)
    sequences = pa.array([row[:n].tolist() for row, n in zip(ids, lengths)], type=pa.list_(pa.int32()))
    table = pa.table({"input_ids": sequences, "label": pa.array(labels.astype(np.int8))})
    pq.write_table(table, HERE / "train.parquet", row_group_size=100)
    import torch

    torch.save({"input_ids": torch.from_numpy(ids), "label": torch.from_numpy(labels)}, HERE / "train.pt")


if __name__ == "__main__":
    main()
