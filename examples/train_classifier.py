"""Train a tiny classifier on a run directory with plain PyTorch, training only the trainable rows.

    reindex build --vocab data/vocab.txt --vectors data/vectors.txt --pad '<pad>' --out runs/demo data/train.pt
    python examples/train_classifier.py --run runs/demo --epochs 3                    # the run's first dataset
    python examples/train_classifier.py --run runs/demo --data train.pt --column input_ids

`--data` is any dataset of the run (a name under RUN/data/, or a path to a file in sorted ids, in any
format reindex writes); its ids are already sorted ids, so the embedding needs no lookup table.
Labels come from a `label` column (Parquet, Arrow) or key (.pt), or are made up (is the first token
trainable?).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pyarrow.feather as feather
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from torch import nn

from reindex.commands.totext import rows_of
from reindex.datasets.plan import detect_format, is_hf_dataset
from reindex.run import read_embedding
from reindex.torch import SplitEmbedding


class Classifier(nn.Module):
    """embedding -> mean over the non-pad positions -> linear."""

    def __init__(self, embed: SplitEmbedding, num_classes: int) -> None:
        super().__init__()
        self.embed = embed
        self.head = nn.Linear(embed.embedding_dim, num_classes)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        summed = (self.embed(ids) * mask.unsqueeze(-1)).sum(1)
        return self.head(summed / mask.sum(1, keepdim=True).clamp(min=1))


def find_data(run: Path, data: str | None) -> Path:
    """The dataset to train on: `data` as a path or a name under RUN/data/, else the run's first."""
    if data is not None:
        return Path(data) if Path(data).exists() else run / "data" / data
    listed = json.loads((run / "manifest.json").read_text()).get("datasets") or []
    if listed:
        return run / listed[0]["output"]
    found = sorted(p for p in (run / "data").rglob("*") if p.is_file() or is_hf_dataset(p))
    if not found:
        raise SystemExit(f"{run} holds no dataset: pass --data FILE (in sorted ids)")
    return found[0]


def load_examples(path: Path, *, column: str, pad_id: int,
                  num_fixed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids [N, L] padded with pad_id, mask [N, L], labels [N]) from a dataset in any format."""
    kind = detect_format(path)
    flat, offsets = rows_of(path, kind, column)
    lengths = np.diff(offsets)
    ids = np.full((len(lengths), max(int(lengths.max()), 1)), pad_id, dtype=np.int64)
    mask = np.arange(ids.shape[1]) < lengths[:, None]
    ids[mask] = flat
    labels = None
    if kind in ("parquet", "arrow"):
        table = pq.read_table(path) if kind == "parquet" else feather.read_table(path)
        if "label" in table.column_names:
            labels = table.column("label").to_numpy().astype(np.int64)
    elif kind == "pt":
        loaded = torch.load(path, weights_only=True)
        if isinstance(loaded, dict) and "label" in loaded:
            labels = loaded["label"].numpy().astype(np.int64)
    if labels is None:
        labels = (ids[:, 0] >= num_fixed).astype(np.int64)
    return torch.from_numpy(ids), torch.from_numpy(mask).float(), torch.from_numpy(labels)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a run directory written by `reindex build`")
    parser.add_argument("--data", help="a dataset in sorted ids: a name under RUN/data/ or a path (default: the first)")
    parser.add_argument("--column", default="input_ids", help="the column or key holding the ids")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--sparse", action="store_true", help="sparse embedding gradient, SparseAdam")
    parser.add_argument("--save", type=Path, help="write the trained rows here (reindex export --weights)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)

    embed = SplitEmbedding.from_run(args.run, sparse=args.sparse)
    pad_id = embed.padding_idx if embed.padding_idx is not None else 0
    data = find_data(args.run, args.data)
    ids, mask, labels = load_examples(data, column=args.column, pad_id=pad_id, num_fixed=embed.num_fixed)
    model = Classifier(embed, num_classes=int(labels.max()) + 1)
    if args.sparse:  # SparseAdam takes only sparse gradients: the head gets its own optimizer
        optimizers = [torch.optim.SparseAdam([embed.trainable], lr=args.lr),
                      torch.optim.AdamW(model.head.parameters(), lr=args.lr)]
    else:  # weight decay is safe here: the fixed rows are not parameters, so AdamW never sees them
        optimizers = [torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)]
    print(f"{args.run}: {len(labels)} examples from {data.name}, {embed}")

    for epoch in range(args.epochs):
        order = torch.randperm(len(labels))
        total, correct = 0.0, 0
        for start in range(0, len(order), args.batch_size):
            batch = order[start:start + args.batch_size]
            logits = model(ids[batch], mask[batch])
            loss = F.cross_entropy(logits, labels[batch])
            for opt in optimizers:
                opt.zero_grad()
            loss.backward()
            for opt in optimizers:
                opt.step()
            total += float(loss.detach()) * len(batch)
            correct += int((logits.argmax(1) == labels[batch]).sum())
        print(f"epoch {epoch + 1}: loss {total / len(labels):.4f}, train accuracy {correct / len(labels):.3f}")

    tensors, _ = read_embedding(args.run)
    unchanged = int((embed.fixed == torch.from_numpy(tensors["fixed"])).all(dim=1).sum())
    moved = int((embed.trainable.detach() != torch.from_numpy(tensors["trainable"])).any(dim=1).sum())
    print(f"fixed rows unchanged: {unchanged}/{embed.num_fixed}; trainable rows moved: {moved}/{embed.num_trainable}")
    if unchanged != embed.num_fixed:
        raise SystemExit("a fixed row moved")
    if args.save:
        embed.save_trainable(args.save)
        print(f"wrote {args.save}")


if __name__ == "__main__":
    main()
