"""One CPU training step with a partly frozen embedding: SplitEmbedding against the usual designs.

    python -m benchmarks.bench_train            # vocabulary 75,000 x 300, 37,500 fixed, batch 256 x 75
    python -m benchmarks.bench_train --quick    # a small version, for a smoke run

Model: embedding -> mean over the sequence -> Linear(300, 2) -> cross-entropy. Contenders that share an
optimizer run interleaved (A B C A B C ...) in one group; each ratio is against a fully trainable
`nn.Embedding` with the same optimizer (forward-only: against a frozen `nn.Embedding` lookup).
MB = parameters + buffers + gradients + optimizer state after a step.
"""
from __future__ import annotations

import argparse
import gc
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.common import interleaved
from reindex.torch import SplitEmbedding


@dataclass
class Setup:
    vocab: int
    dim: int
    fixed: int
    batch: int
    seq: int


FULL = Setup(vocab=75_000, dim=300, fixed=37_500, batch=256, seq=75)
QUICK = Setup(vocab=7_500, dim=64, fixed=3_750, batch=32, seq=20)


class CopyDesign(nn.Module):
    """The forum's design: a fixed buffer and a trainable Parameter concatenated every forward."""

    def __init__(self, fixed: Tensor, trainable: Tensor, sparse: bool = False) -> None:
        super().__init__()
        self.register_buffer("fixed", fixed.clone())
        self.trainable = nn.Parameter(trainable.clone())
        self.sparse = sparse

    def forward(self, ids: Tensor) -> Tensor:
        return F.embedding(ids, torch.cat([self.fixed, self.trainable]), sparse=self.sparse)


def mask_design(weight: Tensor, num_fixed: int) -> nn.Embedding:
    """The gradient-mask hook: every row is a Parameter, the fixed rows' gradient is zeroed."""
    emb = nn.Embedding.from_pretrained(weight.clone(), freeze=False)
    mask = torch.ones(weight.shape[0], 1)
    mask[:num_fixed] = 0
    emb.weight.register_hook(lambda grad: grad * mask)
    return emb


class WhereDesign(nn.Module):
    """Two lookups (fixed, trainable) blended with `torch.where`: an alternative SplitEmbedding measured."""

    def __init__(self, fixed: Tensor, trainable: Tensor) -> None:
        super().__init__()
        self.register_buffer("fixed", fixed.clone())
        self.trainable = nn.Parameter(trainable.clone())

    def forward(self, ids: Tensor) -> Tensor:
        num_fixed = self.fixed.shape[0]
        is_trainable = (ids >= num_fixed).unsqueeze(-1)
        return torch.where(is_trainable, F.embedding((ids - num_fixed).clamp(min=0), self.trainable),
                           F.embedding(ids.clamp(max=num_fixed - 1), self.fixed))


class Model(nn.Module):
    def __init__(self, embed: nn.Module, dim: int) -> None:
        super().__init__()
        self.embed, self.head = embed, nn.Linear(dim, 2)

    def forward(self, ids: Tensor) -> Tensor:
        return self.head(self.embed(ids).mean(1))


@dataclass
class Contender:
    design: str
    optimizer: str
    model: Model
    optimizers: list[torch.optim.Optimizer]

    def step(self, ids: Tensor, labels: Tensor) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        F.cross_entropy(self.model(ids), labels).backward()
        for opt in self.optimizers:
            opt.step()

    def megabytes(self) -> float:
        tensors = [*self.model.parameters(), *self.model.buffers()]
        tensors += [p.grad for p in self.model.parameters() if p.grad is not None]
        tensors += [t for opt in self.optimizers for state in opt.state.values() for t in state.values()
                    if isinstance(t, Tensor)]
        return sum(_nbytes(t) for t in tensors) / 2**20


def _nbytes(t: Tensor) -> int:
    if t.is_sparse:
        return _nbytes(t._values()) + _nbytes(t._indices())
    return t.numel() * t.element_size()


def optimizer(name: str, model: Model, embedding_params: list[nn.Parameter]) -> list[torch.optim.Optimizer]:
    """`name` over the whole model; SparseAdam takes only sparse gradients, so the head gets Adam."""
    if name == "Adam":
        return [torch.optim.Adam(model.parameters(), lr=1e-3)]
    if name == "Adam(fused=True)":
        return [torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)]
    if name == "AdamW":
        return [torch.optim.AdamW(model.parameters(), lr=1e-3)]
    if name == "SGD":
        return [torch.optim.SGD(model.parameters(), lr=0.1)]
    if name == "SparseAdam":
        return [torch.optim.SparseAdam(embedding_params, lr=1e-3), torch.optim.Adam(model.head.parameters(), lr=1e-3)]
    raise ValueError(name)


def make(design: str, opt: str, weight: Tensor, s: Setup) -> Contender:
    fixed, trainable = weight[: s.fixed], weight[s.fixed:]
    embed: nn.Module = {
        "nn.Embedding": lambda: nn.Embedding.from_pretrained(weight.clone(), freeze=False),
        "nn.Embedding(sparse=True)": lambda: nn.Embedding.from_pretrained(weight.clone(), freeze=False, sparse=True),
        "copy design": lambda: CopyDesign(fixed, trainable),
        "gradient-mask design": lambda: mask_design(weight, s.fixed),
        "two embeddings + where": lambda: WhereDesign(fixed, trainable),
        "SplitEmbedding": lambda: SplitEmbedding(fixed, trainable),
        "SplitEmbedding(sparse=True)": lambda: SplitEmbedding(fixed, trainable, sparse=True),
    }[design]()
    model = Model(embed, s.dim)
    return Contender(design, opt, model, optimizer(opt, model, [p for p in embed.parameters()]))


GROUPS: dict[str, list[tuple[str, str]]] = {
    "Adam": [("nn.Embedding", "Adam"), ("copy design", "Adam"), ("gradient-mask design", "Adam"),
             ("two embeddings + where", "Adam"), ("SplitEmbedding", "Adam")],
    "Adam(fused=True)": [("nn.Embedding", "Adam(fused=True)"), ("SplitEmbedding", "Adam(fused=True)")],
    "SGD": [("nn.Embedding", "SGD"), ("copy design", "SGD"), ("gradient-mask design", "SGD"),
            ("two embeddings + where", "SGD"), ("SplitEmbedding", "SGD")],
    "SparseAdam": [("nn.Embedding(sparse=True)", "SparseAdam"), ("SplitEmbedding(sparse=True)", "SparseAdam")],
    "sparse SGD": [("nn.Embedding(sparse=True)", "SGD"), ("SplitEmbedding(sparse=True)", "SGD")],
}


def run_group(contenders: list[Contender], ids: Tensor, labels: Tensor, repeats: int) -> dict[str, float]:
    fns: dict[str, Callable[[], object]] = {
        f"{c.design}|{c.optimizer}": (lambda c=c: c.step(ids, labels)) for c in contenders}
    return interleaved(fns, repeats=repeats, warmup=2)


def forward_only(weight: Tensor, s: Setup, ids: Tensor, repeats: int) -> dict[str, float]:
    frozen = nn.Embedding.from_pretrained(weight.clone(), freeze=True)
    split = SplitEmbedding(weight[: s.fixed], weight[s.fixed:])

    def lookup(module: nn.Module) -> Callable[[], object]:
        def run() -> object:
            with torch.no_grad():
                return module(ids)
        return run

    return interleaved({"frozen nn.Embedding": lookup(frozen), "SplitEmbedding": lookup(split)},
                       repeats=repeats * 4, warmup=3)


def drift(weight: Tensor, s: Setup, ids: Tensor, labels: Tensor, steps: int = 10) -> list[str]:
    """How many fixed rows change in `steps` steps, per design and optimizer."""
    lines = []
    for name, make_opt in [("AdamW (weight decay 0.01)", lambda p: torch.optim.AdamW(p, lr=1e-3)),
                           ("Adam(weight_decay=0.01)", lambda p: torch.optim.Adam(p, lr=1e-3, weight_decay=0.01)),
                           ("SGD(momentum=0.9, weight_decay=0.01)",
                            lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01))]:
        for design, embed in [("gradient-mask design", lambda: mask_design(weight, s.fixed)),
                              ("SplitEmbedding", lambda: SplitEmbedding(weight[: s.fixed], weight[s.fixed:]))]:
            model = Model(embed(), s.dim)
            c = Contender(design, name, model, [make_opt(model.parameters())])
            for _ in range(steps):
                c.step(ids, labels)
            if isinstance(model.embed, SplitEmbedding):
                after = model.embed.fixed
            else:
                after = model.embed.weight.detach()[: s.fixed]
            changed = (after != weight[: s.fixed]).any(dim=1)
            max_change = float((after - weight[: s.fixed]).abs().max())
            lines.append(f"| {design} | {name} | {int(changed.sum()):,} of {s.fixed:,} | {max_change:.1e} |")
            del model, c
            gc.collect()
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats (smoke run)")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per contender (default 15, quick 3)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    s = QUICK if args.quick else FULL
    repeats = args.repeats or (3 if args.quick else 15)
    torch.manual_seed(0)
    weight = torch.randn(s.vocab, s.dim)
    ids = torch.randint(0, s.vocab, (s.batch, s.seq))
    labels = torch.randint(0, 2, (s.batch,))
    print(f"vocabulary {s.vocab:,} x {s.dim}, {s.fixed:,} fixed, batch {s.batch} x {s.seq}, "
          f"{torch.get_num_threads()} threads, median of {repeats} interleaved steps, torch {torch.__version__}")

    print("\n| design | optimizer | ms/step | ratio | MB |\n|---|---|---:|---:|---:|")
    ratios: dict[tuple[str, str], float] = {}
    for group in GROUPS.values():
        contenders = [make(design, opt, weight, s) for design, opt in group]
        medians = run_group(contenders, ids, labels, repeats)
        base = medians[f"{contenders[0].design}|{contenders[0].optimizer}"]
        for c in contenders:
            ms = medians[f"{c.design}|{c.optimizer}"] * 1000
            ratios[(c.design, c.optimizer)] = ms / 1000 / base
            print(f"| {c.design} | {c.optimizer} | {ms:.1f} | {ms / 1000 / base:.2f} | {c.megabytes():.0f} |", flush=True)
        del contenders
        gc.collect()
    forward = forward_only(weight, s, ids, repeats)
    for name, seconds in forward.items():
        ratio = seconds / forward["frozen nn.Embedding"]
        ratios[(name, "forward")] = ratio
        print(f"| {name} (forward only, no grad) | - | {seconds * 1000:.2f} | {ratio:.2f} | 0 |")

    print("\nTargets (ratio against nn.Embedding with the same optimizer):")
    for label, key, target in [("dense Adam", ("SplitEmbedding", "Adam"), 0.6),
                               ("dense SGD", ("SplitEmbedding", "SGD"), 0.75),
                               ("sparse SparseAdam", ("SplitEmbedding(sparse=True)", "SparseAdam"), 1.05),
                               ("sparse SGD", ("SplitEmbedding(sparse=True)", "SGD"), 1.05),
                               ("forward only", ("SplitEmbedding", "forward"), 1.2)]:
        got = ratios[key]
        print(f"- {label}: {got:.2f} (target <= {target}) {'met' if got <= target else 'MISSED'}")

    print("\nFixed rows changed after 10 steps:\n\n| design | optimizer | changed rows | max change |\n|---|---|---:|---:|")
    for line in drift(weight, s, ids, labels):
        print(line, flush=True)


if __name__ == "__main__":
    main()
