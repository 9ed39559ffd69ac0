"""Does `--init` matter? normal, mean and subwords on a small task on real text (gensim's Lee corpus).

    python -m benchmarks.bench_init            # 3 seeds, 400 steps
    python -m benchmarks.bench_init --quick    # 1 seed, 200 steps

Set-up (fixed seeds, into benchmarks/_work): gensim's `FastText` (skipgram, 32 dimensions, min_count
5, 30 epochs) trained on `lee_background.cor` and saved as a fastText `.bin`; the vocabulary is
every word of the corpus, so the 1,750 words with count >= 5 are fixed (their fastText vectors) and
the ~5,200 rarer words are trainable, started by `reindex build --init normal|mean|subwords`.

Task: skip-gram, predict each neighbour (within 2) of a word from its row (frozen fixed rows +
trainable rows -> linear over the whole vocabulary). A fifth of the trainable words is held out:
they are never an input in training, so they keep their starting rows, and the loss on their pairs
measures how good a start each init gives (the out-of-vocabulary case). Adam, lr 0.01, batch 512,
the same batches and head for every init. Reported, on pairs whose input is a trainable word: the
loss of the trained ones at step 0 and after N steps, the steps each init needs to reach the loss
`normal` ends at, and the held-out ones' loss after N steps.
"""
from __future__ import annotations

import argparse
import statistics
from collections import Counter
from pathlib import Path

import numpy as np

from .common import WORK

WINDOW = 2
EVERY = 10          # steps between two measurements of the probe loss
INITS = ("normal", "mean", "subwords")


def corpus() -> list[list[str]]:
    from gensim.test.utils import datapath
    from gensim.utils import simple_preprocess

    with open(datapath("lee_background.cor"), encoding="utf-8") as f:
        return [simple_preprocess(line) for line in f]


def prepare(sentences: list[list[str]]) -> tuple[Path, Path]:
    """(fastText model, vocabulary file), written once."""
    from gensim.models import FastText
    from gensim.models.fasttext import save_facebook_model

    WORK.mkdir(parents=True, exist_ok=True)
    model, vocab = WORK / "lee_fasttext_sg32d.bin", WORK / "lee_vocab.txt"
    if not model.exists():
        trained = FastText(vector_size=32, window=5, min_count=5, epochs=30, seed=1, workers=1, bucket=50_000,
                           min_n=3, max_n=6, sg=1)
        trained.build_vocab(corpus_iterable=sentences)
        trained.train(corpus_iterable=sentences, total_examples=len(sentences), epochs=30)
        save_facebook_model(trained, str(model.with_suffix(".tmp")))
        model.with_suffix(".tmp").rename(model)
    counts = Counter(w for s in sentences for w in s)
    vocab.write_text("<pad>\n" + "".join(w + "\n" for w, _ in counts.most_common()), encoding="utf-8")
    return model, vocab


def pairs(run, sentences: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """(input word, context word) sorted-id pairs, every neighbour within WINDOW (skip-gram)."""
    position = {t: i for i, t in enumerate(run.tokens)}
    inputs, outputs = [], []
    for sentence in sentences:
        ids = [position[w] for w in sentence]
        for i, word in enumerate(ids):
            for j in range(max(0, i - WINDOW), min(len(ids), i + WINDOW + 1)):
                if j != i:
                    inputs.append(word)
                    outputs.append(ids[j])
    return np.array(inputs, dtype=np.int64), np.array(outputs, dtype=np.int64)


def split_by_word(inputs: np.ndarray, *, num_fixed: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(held-out pairs, training pairs): a fifth of the trainable words is an input only in held-out pairs.

    Those words' rows never get a gradient, so the held-out loss measures their starting rows alone.
    """
    trainable = np.unique(inputs[inputs >= num_fixed])
    unseen = np.random.default_rng(seed).choice(trainable, size=len(trainable) // 5, replace=False)
    held = np.isin(inputs, unseen)
    return np.flatnonzero(held), np.flatnonzero(~held)


def train(run_dir: Path, inputs: np.ndarray, outputs: np.ndarray, *, steps: int, seed: int
          ) -> tuple[list[float], float]:
    """(loss on the trained trainable words' pairs, every EVERY steps; final loss on the held-out pairs)."""
    import torch
    import torch.nn.functional as F

    from reindex.torch import SplitEmbedding

    torch.manual_seed(seed)
    embed = SplitEmbedding.from_run(run_dir)
    head = torch.nn.Linear(embed.embedding_dim, embed.num_embeddings)
    optimizer = torch.optim.Adam([*embed.parameters(), *head.parameters()], lr=0.01)
    held, rest = split_by_word(inputs, num_fixed=embed.num_fixed, seed=seed)
    rng = np.random.default_rng(seed + 1)
    seen = rest[inputs[rest] >= embed.num_fixed]
    probe = rng.choice(seen, size=min(len(seen), 5000), replace=False)
    x, y = torch.from_numpy(inputs), torch.from_numpy(outputs)

    def loss_on(rows: np.ndarray) -> float:
        with torch.no_grad():
            return F.cross_entropy(head(embed(x[rows])), y[rows]).item()

    curve = [loss_on(probe)]
    for step, batch in enumerate(rng.choice(rest, size=(steps, 512)), 1):
        loss = F.cross_entropy(head(embed(x[batch])), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % EVERY == 0:
            curve.append(loss_on(probe))
    return curve, loss_on(held)


def steps_to(curve: list[float], target: float) -> int | None:
    """First step at which the probe loss is at most `target`."""
    below = np.flatnonzero(np.array(curve) <= target)
    return int(below[0]) * EVERY if len(below) else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 seed, 200 steps")
    args = parser.parse_args(argv)
    seeds, steps = ((0,), 200) if args.quick else ((0, 1, 2), 400)

    import torch

    from reindex.commands.build import build
    from reindex.run import load_run

    torch.set_num_threads(1)
    sentences = corpus()
    model, vocab = prepare(sentences)
    results: dict[str, list[tuple[list[float], float]]] = {init: [] for init in INITS}
    for seed in seeds:
        for init in INITS:
            run_dir = WORK / f"lee_run_{init}"
            build(vocab=vocab, vectors=model, out=run_dir, pad="<pad>", init=init, seed=seed, force=True)
            run = load_run(run_dir)
            inputs, outputs = pairs(run, sentences)
            results[init].append(train(run_dir, inputs, outputs, steps=steps, seed=seed))
    print(f"\n### --init on gensim's Lee corpus: {run.num_fixed:,} fixed and {run.num_trainable:,} trainable words, "
          f"{len(inputs):,} skip-gram pairs; {steps} steps, mean over seeds {list(seeds)}\n")
    print(f"| --init | trained rare words: loss at step 0 | ... after {steps} steps | "
          f"steps to normal's loss at {steps} | held-out rare words (rows = their start): loss after {steps} steps |")
    print("|---|---:|---:|---:|---:|")
    for init in INITS:
        start = statistics.mean(curve[0] for curve, _ in results[init])
        final = statistics.mean(curve[-1] for curve, _ in results[init])
        held = statistics.mean(h for _, h in results[init])
        reached = [steps_to(curve, normal[-1]) for (curve, _), (normal, _) in zip(results[init], results["normal"])]
        shown = "/".join("never" if r is None else str(r) for r in reached)
        print(f"| {init} | {start:.3f} | {final:.3f} | {shown} | {held:.3f} |")
    print(f"\n(cross-entropy over the {run.vocab_size:,}-word vocabulary; losses on pairs whose input is a rare "
          f"(trainable) word; steps to reach: one figure per seed, measured every {EVERY} steps)")


if __name__ == "__main__":
    main()
