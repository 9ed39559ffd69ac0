"""Grow a vocabulary with Lightning: the old rows stay exact, only the new ones train.

    python examples/lightning_expand.py --run runs/demo --epochs 2 --new-tokens 50
    python examples/lightning_expand.py --run runs/demo --data train.pt    (any dataset of the run)

1. Train a classifier on the run, its pretrained (fixed) rows kept exact by `EmbeddingConstraint`.
2. Grow the vocabulary by `--new-tokens` ids appended at the end (as `reindex build --vectors OLD_RUN`
   does), copy the trained model in, and train again on data that uses the new ids, keeping every
   old row exact. The script checks that invariant and exits non-zero if it fails.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from train_classifier import find_data, load_examples

from reindex.lightning import EmbeddingConstraint
from reindex.run import read_embedding


class Classifier(pl.LightningModule):
    """A plain model: nn.Embedding -> masked mean -> linear. Nothing in it knows about reindex."""

    def __init__(self, vocab_size: int, dim: int, *, padding_idx: int | None, lr: float = 0.01) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=padding_idx)
        self.head = nn.Linear(dim, 2)
        self.lr = lr

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        summed = (self.embed(ids) * mask.unsqueeze(-1)).sum(1)
        return self.head(summed / mask.sum(1, keepdim=True).clamp(min=1))

    def training_step(self, batch, batch_idx):
        ids, mask, labels = batch
        return F.cross_entropy(self(ids, mask), labels)

    def configure_optimizers(self):
        # AdamW's weight decay would move frozen rows under a gradient mask; it cannot here.
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=0.01)


def fit(model: Classifier, callback: EmbeddingConstraint, data: TensorDataset, epochs: int) -> None:
    trainer = pl.Trainer(max_epochs=epochs, callbacks=[callback], accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, DataLoader(data, batch_size=32, shuffle=True))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a run directory written by `reindex build`")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=50)
    parser.add_argument("--data", help="a dataset in sorted ids: a name under RUN/data/ or a path (default: the first)")
    parser.add_argument("--column", default="input_ids", help="the column or key holding the ids")
    args = parser.parse_args(argv)
    pl.seed_everything(0, verbose=False)

    tensors, metadata = read_embedding(args.run)
    fixed, trainable = torch.from_numpy(tensors["fixed"]), torch.from_numpy(tensors["trainable"])
    vocab_size, dim = fixed.shape[0] + trainable.shape[0], fixed.shape[1]
    pad = int(metadata["pad_id"]) if metadata.get("pad_id") else None
    ids, mask, labels = load_examples(find_data(args.run, args.data), column=args.column, pad_id=pad or 0,
                                      num_fixed=fixed.shape[0])

    # 1. The first vocabulary: the run's rows (sorted ids), pretrained ones kept exact.
    old = Classifier(vocab_size, dim, padding_idx=pad)
    with torch.no_grad():
        old.embed.weight.copy_(torch.cat([fixed, trainable]))
    fit(old, EmbeddingConstraint(old.embed, fixed), TensorDataset(ids, mask, labels), args.epochs)
    assert torch.equal(old.embed.weight[: fixed.shape[0]], fixed), "pretrained rows moved"

    # 2. The grown vocabulary: new ids appended; a fifth of the tokens become new ones.
    new = Classifier(vocab_size + args.new_tokens, dim, padding_idx=pad)
    with torch.no_grad():
        new.embed.weight[:vocab_size].copy_(old.embed.weight)
        new.head.load_state_dict(old.head.state_dict())
    before = new.embed.weight.detach().clone()
    grown = ids.clone()
    swap = (torch.rand(ids.shape) < 0.2) & mask.bool()
    grown[swap] = torch.randint(vocab_size, vocab_size + args.new_tokens, (int(swap.sum()),))
    fit(new, EmbeddingConstraint(new.embed, old.embed), TensorDataset(grown, mask, labels), args.epochs)

    weight = new.embed.weight.detach()
    exact = int((weight[:vocab_size] == old.embed.weight.detach()).all(dim=1).sum())
    moved = int((weight[vocab_size:] != before[vocab_size:]).any(dim=1).sum())
    print(f"old rows exact: {exact}/{vocab_size}; new rows trained: {moved}/{args.new_tokens}; "
          f"model still uses {type(new.embed).__name__}")
    if exact != vocab_size or moved == 0 or type(new.embed) is not nn.Embedding:
        raise SystemExit("vocabulary expansion broke its invariant")


if __name__ == "__main__":
    main()
