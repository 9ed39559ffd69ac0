"""The Lightning callback: kept rows exact from the first step to the end, user's model class unchanged."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

pytest.importorskip("lightning")
import lightning.pytorch as pl  # noqa: E402

from reindex.errors import ReindexError  # noqa: E402
from reindex.lightning import EmbeddingConstraint  # noqa: E402
from reindex.torch import SplitEmbedding, SplitLinear  # noqa: E402

OLD, NEW, DIM = 10, 16, 4


class Classifier(pl.LightningModule):
    def __init__(self, vocab_size: int, *, optimizer: str = "adamw", sparse: bool = False) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, DIM, sparse=sparse)
        self.head = nn.Linear(DIM, 2)
        self.optimizer = optimizer
        self.seen: list[torch.Tensor] = []   # the merged weight after each step, in the ids' order

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(ids).mean(1))

    def training_step(self, batch, batch_idx):
        ids, labels = batch
        return F.cross_entropy(self(ids), labels)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        embed = self.embed
        weight = embed.merged_weight(order=embed.input) if isinstance(embed, SplitEmbedding) else embed.weight
        self.seen.append(weight.detach().clone())

    def configure_optimizers(self):
        if self.optimizer == "sgd":   # SGD takes the sparse embedding gradient and the dense head's
            return torch.optim.SGD(self.parameters(), lr=0.5)
        return torch.optim.AdamW(self.parameters(), lr=0.05, weight_decay=0.01)


def loader(vocab_size: int, *, batches: int = 6) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab_size, (batches * 4, 5), generator=g)
    ids[:, 0] = torch.arange(batches * 4) % vocab_size     # every row, old and new, is used
    labels = torch.randint(0, 2, (batches * 4,), generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(ids, labels), batch_size=4)


def fit(model: pl.LightningModule, callback: EmbeddingConstraint, *, steps: int = 6) -> None:
    trainer = pl.Trainer(max_steps=steps, callbacks=[callback], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(model, loader(model.embed.num_embeddings))


def test_old_rows_exact_from_first_step_to_the_end():
    torch.manual_seed(0)
    old = nn.Embedding(OLD, DIM)
    model = Classifier(NEW)
    embed = model.embed
    before = embed.weight.detach().clone()
    fit(model, EmbeddingConstraint(model.embed, old))
    assert model.embed is embed and type(model.embed) is nn.Embedding      # the user's module, back
    assert len(model.seen) == 6
    for step, weight in enumerate(model.seen):
        assert torch.equal(weight[:OLD], old.weight.detach()), f"old rows differ after step {step + 1}"
    assert torch.equal(model.embed.weight[:OLD].detach(), old.weight.detach())
    assert (model.embed.weight[OLD:].detach() != before[OLD:]).any(dim=1).all()   # new rows trained
    assert torch.equal(model.embed.weight.detach(), model.seen[-1])


def test_optimizer_holds_no_state_for_old_rows():
    model = Classifier(NEW)
    callback = EmbeddingConstraint("embed", torch.randn(OLD, DIM))
    states: list[list[torch.Size]] = []

    class Spy(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            optimizer = trainer.optimizers[0]
            states.append([p.shape for group in optimizer.param_groups for p in group["params"]])

    trainer = pl.Trainer(max_steps=2, callbacks=[callback, Spy()], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(model, loader(NEW))
    assert states[0] == [torch.Size([NEW - OLD, DIM]), torch.Size([2, DIM]), torch.Size([2])]


def test_rows_by_index_and_sparse_gradients():
    torch.manual_seed(0)
    model = Classifier(NEW, optimizer="sgd", sparse=True)
    keep = torch.tensor([1, 5, 11, 14])
    before = model.embed.weight.detach().clone()
    callback = EmbeddingConstraint(model.embed, rows=keep)
    trainer = pl.Trainer(max_steps=4, callbacks=[callback], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(model, loader(NEW))
    assert callback_saw_sparse(model)
    for weight in model.seen:
        assert torch.equal(weight[keep], before[keep])
    others = torch.ones(NEW, dtype=torch.bool)
    others[keep] = False
    assert (model.embed.weight.detach()[others] != before[others]).any(dim=1).all()


def callback_saw_sparse(model: Classifier) -> bool:
    return len(model.seen) == 4 and model.embed.sparse


def test_checkpoint_during_fit_keeps_the_plain_embedding_layout_and_resumes(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    old = torch.randn(OLD, DIM)
    model = Classifier(NEW)
    saver = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=2, save_top_k=-1)
    trainer = pl.Trainer(max_steps=2, callbacks=[EmbeddingConstraint(model.embed, old), saver], logger=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(model, loader(NEW))
    (path,) = tmp_path.glob("*.ckpt")
    state = torch.load(path, weights_only=True)["state_dict"]
    assert {"embed.weight", "head.weight", "head.bias"} == set(state)
    fresh = Classifier.load_from_checkpoint(path, vocab_size=NEW)      # no callback needed to load
    assert torch.equal(fresh.embed.weight, model.embed.weight)
    # Resuming goes through the SplitEmbedding again, from the plain layout.
    resumed = Classifier(NEW)
    trainer = pl.Trainer(max_steps=4, callbacks=[EmbeddingConstraint(resumed.embed, old)], logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu")
    trainer.fit(resumed, loader(NEW), ckpt_path=path)
    assert len(resumed.seen) == 2
    assert torch.equal(resumed.embed.weight[:OLD].detach(), old)
    assert not torch.equal(resumed.embed.weight, model.embed.weight)


def test_refuses_a_constraint_wider_than_the_embedding():
    model = Classifier(NEW)
    with pytest.raises(ReindexError, match=r"the constraint has shape \[20, 4\] but the embedding \[16, 4\]"):
        fit(model, EmbeddingConstraint(model.embed, torch.zeros(20, DIM)))


def test_refuses_an_embedding_outside_the_module():
    model = Classifier(NEW)
    with pytest.raises(ReindexError, match="not inside Classifier"):
        fit(model, EmbeddingConstraint(nn.Embedding(NEW, DIM), torch.zeros(OLD, DIM)))


class TiedLanguageModel(Classifier):
    """Next-token prediction with an output layer tied to the embedding (as GPT-2 does)."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__(vocab_size)
        self.out = nn.Linear(DIM, vocab_size, bias=False)
        self.out.weight = self.embed.weight
        self.heads_seen: list[bool] = []

    def training_step(self, batch, batch_idx):
        ids, _ = batch
        self.heads_seen.append(isinstance(self.out, SplitLinear) and self.out.rows is self.embed)
        logits = self.out(self.embed(ids[:, :-1]))
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


def test_tied_output_layer_trains_only_the_new_rows_and_stays_tied(tmp_path):
    torch.manual_seed(0)
    old = torch.randn(OLD, DIM)
    model = TiedLanguageModel(NEW)
    embed, out, weight = model.embed, model.out, model.embed.weight
    before = weight.detach().clone()
    fit(model, EmbeddingConstraint(model.embed, old))
    assert model.heads_seen == [True] * 6                      # one SplitLinear on the embedding's rows
    assert model.embed is embed and model.out is out and model.out.weight is model.embed.weight is weight
    for weight_seen in model.seen:
        assert torch.equal(weight_seen[:OLD], old)
    assert (weight.detach()[OLD:] != before[OLD:]).any(dim=1).all()


def test_needs_exactly_one_of_constraint_and_rows():
    with pytest.raises(ReindexError, match="exactly one of"):
        EmbeddingConstraint("embed")
