"""Hugging Face tokenizers as --vocab, model checkpoints as --vectors, and --init pieces, through the CLI.

The tokenizers are trained by the `tokenizers` library on gensim's bundled Lee corpus; the models are
tiny Llamas built from a config (nothing is downloaded).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from reindex.errors import ReindexError
from reindex.run import load_run
from reindex.vocab import read_vocab

ADDED = ["covid", "hello world"]     # plain added tokens (raw text, as users pass to add_tokens)
SPECIAL = ["<|extra|>"]               # an added special token


def lee_corpus() -> Path:
    import gensim

    return Path(gensim.__file__).parent / "test" / "test_data" / "lee_background.cor"


def train_bpe(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train([str(lee_corpus())], trainer)
    return tok


def tiny_llama(vocab_size: int, *, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2)
    return LlamaForCausalLM(config)


def save_fast(tok, directory: Path) -> None:
    from transformers import PreTrainedTokenizerFast

    PreTrainedTokenizerFast(tokenizer_object=tok).save_pretrained(str(directory))


@pytest.fixture(scope="module")
def hf(tmp_path_factory) -> dict:
    """old: a BPE (400) and a Llama over it; new: a bigger BPE (460) of the same text + added tokens."""
    root = tmp_path_factory.mktemp("hf")
    old = train_bpe(400)
    (root / "old").mkdir()
    old.save(str(root / "old" / "tokenizer.json"))
    new = train_bpe(460)
    new.add_tokens(ADDED)
    new.add_special_tokens(SPECIAL)
    (root / "new").mkdir()
    new.save(str(root / "new" / "tokenizer.json"))
    save_fast(new, root / "new_dir")
    model = tiny_llama(old.get_vocab_size())
    for name, shard in [("model", None), ("sharded", "8KB")]:
        model.save_pretrained(str(root / name), **({} if shard is None else {"max_shard_size": shard}))
        save_fast(old, root / name)
    model.save_pretrained(str(root / "no_tokenizer"))
    weight = model.get_input_embeddings().weight.detach().numpy().copy()
    head = model.get_output_embeddings().weight.detach().numpy().copy()
    return {"root": root, "old": old, "new": new, "weight": weight, "head": head}


def original_order(run_path: Path) -> tuple[list[str], np.ndarray]:
    """(tokens, merged weight) of a run, both in original-id order."""
    run = load_run(run_path)
    order = np.argsort(run.sorted_to_original)
    return [run.tokens[s] for s in order.tolist()], run.weight(order="original")


# --- --vocab: a tokenizer -------------------------------------------------------------------------

def tokenizer_ids(tok) -> list[str]:
    by_id = {i: t for t, i in tok.get_vocab(with_added_tokens=True).items()}
    return [by_id[i] for i in range(len(by_id))]


@pytest.mark.parametrize("form", ["tokenizer.json", "renamed.json", "save_pretrained dir", "vocab.json+merges dir"])
def test_vocab_is_the_tokenizers_own_ids_added_tokens_included(hf, tmp_path, form):
    new = hf["new"]
    if form == "tokenizer.json":
        path = hf["root"] / "new" / "tokenizer.json"
    elif form == "renamed.json":
        path = tmp_path / "my_tokenizer.json"
        new.save(str(path))
    elif form == "save_pretrained dir":
        path = hf["root"] / "new_dir"
    else:  # the slow GPT-2 layout: the model's vocab.json + merges.txt, added tokens in added_tokens.json
        path = tmp_path / "slow"
        path.mkdir()
        new.model.save(str(path))
        base = new.get_vocab_size(with_added_tokens=False)
        (path / "added_tokens.json").write_text(json.dumps({t: base + i for i, t in enumerate(ADDED + SPECIAL)}))
    vocab = read_vocab(path)
    assert vocab.tokens == tokenizer_ids(new)
    assert [vocab.tokens.index(t) for t in ADDED + SPECIAL] == [new.token_to_id(t) for t in ADDED + SPECIAL]
    assert vocab.format == "tokenizer"


def test_directory_with_only_tokenizer_config_reads_as_transformers_does(cli, hf, tmp_path):
    """vocab.json + merges.txt + tokenizer_config.json (no tokenizer.json): the ids AutoTokenizer gives."""
    from transformers import AutoTokenizer

    new, path = hf["new"], tmp_path / "slow"
    path.mkdir()
    new.model.save(str(path))
    added = {str(new.token_to_id(t)): {"content": t, "special": t in SPECIAL} for t in ADDED + SPECIAL}
    (path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GPT2Tokenizer",
                                                            "added_tokens_decoder": added}))
    expected = {i: t for t, i in AutoTokenizer.from_pretrained(str(path)).get_vocab().items()}
    vocab = read_vocab(path)
    assert vocab.tokens == [expected[i] for i in range(len(expected))]
    assert vocab.tokens[:len(tokenizer_ids(new))] == tokenizer_ids(new)   # GPT-2 adds <|endoftext|> after them
    code, _, err = cli("build", "--vocab", path, "--vectors", hf["root"] / "model", "--out", tmp_path / "run", "-q")
    assert code == 0 and "warn" not in err.lower(), err
    assert load_run(tmp_path / "run").vocab_size == len(expected)


def test_vocab_json_still_reads_as_token_to_id(hf, tmp_path):
    """A plain vocab.json (token -> id) is not mistaken for a tokenizer."""
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps({"model": 1, "added_tokens": 0}))
    vocab = read_vocab(path)
    assert (vocab.tokens, vocab.format) == (["added_tokens", "model"], "json")


def test_tokenizer_with_a_hole_in_its_ids_is_refused(cli, hf, tmp_path):
    from tokenizers import Tokenizer, models

    tok = Tokenizer(models.WordLevel({"a": 0, "b": 2, "[UNK]": 3}, unk_token="[UNK]"))
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    with pytest.raises(ReindexError, match=r"assigns no token to id 1 \(ids must be exactly 0\.\.3, 1 missing\)"):
        read_vocab(path)
    code, _, err = cli("build", "--vocab", path, "--vectors", hf["root"] / "model", "--out", tmp_path / "run")
    assert code == 1
    assert err.strip().count("\n") == 0 and str(path) in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_malformed_tokenizer_is_one_line_naming_it(cli, hf, tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text('{"version": "1.0", "added_tokens": [], "model": {"type": "Nope"}}')
    code, err = one_line_error(cli, "build", "--vocab", path, "--vectors", hf["root"] / "model",
                               "--out", tmp_path / "run")
    assert code == 1 and err.startswith(f"reindex: error: {path}: cannot read the tokenizer: ")
    assert not (tmp_path / "run").exists()


def test_directory_without_tokenizer_is_refused(hf, tmp_path):
    with pytest.raises(ReindexError, match="is a directory"):
        read_vocab(tmp_path)


# --- --vectors: a Hugging Face checkpoint ---------------------------------------------------------

@pytest.mark.parametrize("where", ["model", "model/model.safetensors", "sharded",
                                   "sharded/model.safetensors.index.json"])
def test_model_rows_are_the_models_embedding(cli, hf, tmp_path, where):
    vectors = hf["root"] / where
    code, _, err = cli("build", "--vocab", hf["root"] / "old" / "tokenizer.json", "--vectors", vectors,
                       "--out", tmp_path / "run", "-q")
    assert code == 0, err
    tokens, weight = original_order(tmp_path / "run")
    assert tokens == tokenizer_ids(hf["old"])
    np.testing.assert_array_equal(weight, hf["weight"])
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["counts"]["vectors_format"] == "hf-model"
    assert manifest["counts"]["vectors_key"] == "model.embed_tokens.weight"
    assert manifest["inputs"]["vectors"]["path"] == str(vectors)


def test_vectors_key_picks_another_tensor(cli, hf, tmp_path):
    code, _, err = cli("build", "--vocab", hf["root"] / "old" / "tokenizer.json", "--vectors", hf["root"] / "model",
                       "--vectors-key", "lm_head.weight", "--out", tmp_path / "run", "-q")
    assert code == 0, err
    np.testing.assert_array_equal(original_order(tmp_path / "run")[1], hf["head"])
    assert not np.array_equal(hf["head"], hf["weight"])  # untied: the key did choose


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_checkpoints_become_float32(cli, hf, tmp_path, dtype):
    model = tiny_llama(hf["old"].get_vocab_size()).to(getattr(torch, dtype))
    model.save_pretrained(str(tmp_path / "m"))
    save_fast(hf["old"], tmp_path / "m")
    code, _, err = cli("build", "--vocab", hf["root"] / "old", "--vectors", tmp_path / "m", "--out",
                       tmp_path / "run", "-q")
    assert code == 0, err
    expected = model.get_input_embeddings().weight.detach().float().numpy()
    weight = original_order(tmp_path / "run")[1]
    assert weight.dtype == np.float32
    np.testing.assert_array_equal(weight, expected)


def test_only_the_embedding_tensor_is_read(hf, tmp_path, monkeypatch):
    """Every row read comes from the one embedding key, and only its rows that have a token; the rest of
    the checkpoint is never loaded (nor read through safetensors' loader, which would load whole tensors)."""
    import safetensors

    from reindex.checkpoint.tensors import RowReader
    from reindex.commands.build import build

    reads: list[tuple[str, int, int]] = []
    real_read = RowReader.read

    def record(self, tensor, start, stop, out):
        reads.append((tensor.key, start, stop))
        return real_read(self, tensor, start, stop, out)

    def refuse(*args, **kwargs):
        raise AssertionError("safe_open loads tensors; rows are read by RowReader")

    monkeypatch.setattr(RowReader, "read", record)
    monkeypatch.setattr(safetensors, "safe_open", refuse)
    build(vocab=hf["root"] / "new", vectors=hf["root"] / "sharded", out=tmp_path / "run")
    assert [key for key, _, _ in reads] == ["model.embed_tokens.weight"] and reads[0][1] == 0


def test_holes_in_the_models_tokenizer_leave_rows_unnamed(cli, hf, tmp_path):
    """A tokenizer that skips an id: that row of the checkpoint has no token and is not used."""
    from tokenizers import Tokenizer, models

    words = {w: i for i, w in enumerate(["[UNK]", "the", "cat", "sat", "on", "mat"])}
    del words["cat"]   # id 2 has no token
    model = tiny_llama(6)
    model.save_pretrained(str(tmp_path / "m"))
    Tokenizer(models.WordLevel(words, unk_token="[UNK]")).save(str(tmp_path / "m" / "tokenizer.json"))
    (tmp_path / "vocab.txt").write_text("mat\nthe\ncat\n")
    code, _, err = cli("build", "--vocab", tmp_path / "vocab.txt", "--vectors", tmp_path / "m",
                       "--out", tmp_path / "run", "-q")
    assert code == 0, err
    run = load_run(tmp_path / "run")
    assert (run.num_fixed, run.num_trainable) == (2, 1)
    weight = model.get_input_embeddings().weight.detach().numpy()
    np.testing.assert_array_equal(run.weight(order="original")[:2], weight[[5, 1]])


def one_line_error(cli, *args) -> tuple[int, str]:
    code, out, err = cli(*args)
    errors = [line for line in err.splitlines() if line.startswith("reindex: error: ")]
    assert len(errors) == 1 and err.endswith(errors[0] + "\n"), err   # progress notes may come before it
    assert "Traceback" not in err
    return code, errors[0]


def test_model_without_tokenizer_is_refused(cli, hf, tmp_path):
    path = hf["root"] / "no_tokenizer"
    code, err = one_line_error(cli, "build", "--vocab", hf["root"] / "new", "--vectors", path, "--out", tmp_path / "r")
    assert code == 1 and str(path) in err and "no tokenizer next to the model" in err
    assert "tokenizer.save_pretrained" in err
    assert not (tmp_path / "r").exists()


def test_missing_vectors_key_is_refused(cli, hf, tmp_path):
    code, err = one_line_error(cli, "build", "--vocab", hf["root"] / "new", "--vectors", hf["root"] / "sharded",
                               "--vectors-key", "model.nope.weight", "--out", tmp_path / "r")
    assert code == 2 and "'model.nope.weight' is not a tensor" in err and "model.embed_tokens.weight" in err
    assert not (tmp_path / "r").exists()


def test_ambiguous_and_absent_embedding_names_are_refused(cli, hf, tmp_path):
    from safetensors.numpy import save_file

    for name, keys, code_expected, message in [
        ("two", ["encoder.embed_tokens.weight", "decoder.embed_tokens.weight"], 2,
         "several tensors look like the input embedding: decoder.embed_tokens.weight, encoder.embed_tokens.weight"),
        ("none", ["layers.0.weight"], 1, "no tensor named like an input embedding")]:
        directory = tmp_path / name
        directory.mkdir()
        save_file({k: np.zeros((400, 4), np.float32) for k in keys}, str(directory / "model.safetensors"))
        hf["old"].save(str(directory / "tokenizer.json"))
        code, err = one_line_error(cli, "build", "--vocab", hf["root"] / "old", "--vectors", directory,
                                   "--out", tmp_path / "r")
        assert code == code_expected and message in err and str(directory) in err and "--vectors-key" in err
        assert not (tmp_path / "r").exists()


def test_tokenizer_larger_than_the_embedding_is_refused(cli, hf, tmp_path):
    model = tiny_llama(100)
    model.save_pretrained(str(tmp_path / "m"))
    save_fast(hf["old"], tmp_path / "m")
    code, err = one_line_error(cli, "build", "--vocab", hf["root"] / "old", "--vectors", tmp_path / "m",
                               "--out", tmp_path / "r")
    assert code == 1 and "the tokenizer has ids up to 399 but 'model.embed_tokens.weight' has 100 rows" in err


def test_vectors_key_needs_a_model(cli, hf, tmp_path, small):
    code, err = one_line_error(cli, "build", "--vocab", small["vocab"], "--vectors", small["vectors"],
                               "--vectors-key", "wte.weight", "--out", tmp_path / "r")
    assert code == 2 and "--vectors-key goes with a Hugging Face model" in err


# --- --init pieces --------------------------------------------------------------------------------

def expected_piece_rows(hf, texts: list[str]) -> np.ndarray:
    """Computed apart from reindex: the old tokenizer's pieces, the old model's rows, their mean."""
    rows = []
    for text in texts:
        ids = hf["old"].encode(text, add_special_tokens=False).ids
        rows.append(hf["weight"][ids].astype(np.float64).mean(axis=0))
    return np.array(rows, dtype=np.float32)


def test_init_pieces_is_the_mean_of_the_old_pieces_rows(cli, hf, tmp_path):
    code, _, err = cli("build", "--vocab", hf["root"] / "new" / "tokenizer.json", "--vectors", hf["root"] / "model",
                       "--init", "pieces", "--out", tmp_path / "run", "-q")
    assert code == 0, err
    run = load_run(tmp_path / "run")
    new, old_vocab = hf["new"], hf["old"].get_vocab(with_added_tokens=True)
    trainable_ids = run.sorted_to_original[run.num_fixed:]
    fresh = [i for i in range(new.get_vocab_size()) if new.id_to_token(i) not in old_vocab]
    assert sorted(trainable_ids.tolist()) == fresh and len(fresh) > len(ADDED + SPECIAL)
    # Added tokens are split as the text they are; tokens of the new model as the text they decode to.
    texts = [new.decode([i], skip_special_tokens=False) for i in trainable_ids.tolist()]
    assert set(ADDED + SPECIAL) <= set(texts) and any(t.startswith(" ") for t in texts)
    np.testing.assert_allclose(run.trainable, expected_piece_rows(hf, texts), rtol=1e-6, atol=1e-7)
    covid = run.trainable[texts.index("covid")]
    assert len(hf["old"].encode("covid").ids) > 1 and not np.allclose(covid, run.trainable[texts.index("hello world")])


def test_init_pieces_needs_a_model(cli, small, tmp_path):
    code, err = one_line_error(cli, "build", "--vocab", small["vocab"], "--vectors", small["vectors"],
                               "--init", "pieces", "--out", tmp_path / "r")
    assert code == 2 and "--init pieces needs a Hugging Face model as --vectors" in err
    assert not (tmp_path / "r").exists()


# --- each input through every command that reads the run ---------------------------------------

def lee_dataset(tok, path: Path, lines: int = 40) -> list[list[int]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    text = lee_corpus().read_text(encoding="utf-8").splitlines()[:lines]
    ids = [e.ids + [tok.token_to_id("covid")] for e in tok.encode_batch(text)]
    pq.write_table(pa.table({"input_ids": pa.array(ids, type=pa.list_(pa.int32()))}), path)
    return ids


@pytest.mark.parametrize("vocab, vectors, init", [
    ("new/tokenizer.json", "model", "pieces"),
    ("new_dir", "sharded", "normal"),
    ("new_dir", "sharded/model.safetensors.index.json", "pieces"),
])
def test_round_trip_through_every_command(cli, hf, tmp_path, vocab, vectors, init):
    import pyarrow.parquet as pq

    ids = lee_dataset(hf["new"], tmp_path / "train.parquet")
    run = tmp_path / "run"
    code, _, err = cli("build", "--vocab", hf["root"] / vocab, "--vectors", hf["root"] / vectors, "--init", init,
                       "--out", run, tmp_path / "train.parquet", "-q")
    assert code == 0, err
    loaded = load_run(run)
    built = pq.read_table(run / "data" / "train.parquet").column("input_ids").to_pylist()
    assert built == [loaded.to_sorted(np.array(row)).tolist() for row in ids]

    assert cli("remap", run, tmp_path / "train.parquet", "--out", tmp_path / "enc")[0] == 0
    assert pq.read_table(tmp_path / "enc" / "train.parquet").column("input_ids").to_pylist() == built
    assert cli("invert", run, run / "data" / "train.parquet", "--out", tmp_path / "dec")[0] == 0
    assert pq.read_table(tmp_path / "dec" / "train.parquet").column("input_ids").to_pylist() == ids

    assert cli("export", run, "--out", tmp_path / "e.safetensors")[0] == 0
    from safetensors.numpy import load_file

    exported = load_file(str(tmp_path / "e.safetensors"))["weight"]
    new, old_vocab = hf["new"], hf["old"].get_vocab(with_added_tokens=True)
    for i in range(new.get_vocab_size()):   # every old token's row is the model's own row
        token = new.id_to_token(i)
        if token in old_vocab:
            np.testing.assert_array_equal(exported[i], hf["weight"][old_vocab[token]])
    if init == "pieces":
        covid = new.token_to_id("covid")
        np.testing.assert_allclose(exported[covid], expected_piece_rows(hf, ["covid"])[0], rtol=1e-6, atol=1e-7)

    code, out, err = cli("verify", run)
    assert (code, out.strip()) == (0, f"{run}: ok"), err
    code, out, _ = cli("inspect", run, "--json")
    summary = json.loads(out)
    assert code == 0 and (summary["vocab"], summary["trainable"]) == (new.get_vocab_size(), loaded.num_trainable)


def test_readers_import_nothing_heavy():
    code = ("import sys, reindex.vocab.tokenizer, reindex.vectors.hf_model, reindex.vocab, reindex.commands.match; "
            "print(sorted(m for m in ('tokenizers', 'transformers', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_pad_token_of_a_tokenizer_gets_sorted_id_zero(cli, hf, tmp_path):
    code, _, err = cli("build", "--vocab", hf["root"] / "new_dir", "--vectors", hf["root"] / "model", "--pad", "<pad>",
                       "--init", "pieces", "--out", tmp_path / "run", "-q")
    assert code == 0, err
    run = load_run(tmp_path / "run")
    assert run.sorted_to_original[0] == hf["new"].token_to_id("<pad>") and run.tokens[0] == "<pad>"
    np.testing.assert_array_equal(run.fixed[0], np.zeros(run.dim, np.float32))
    old_ids = [hf["old"].token_to_id(t) for t in run.tokens[1:run.num_fixed]]
    np.testing.assert_array_equal(run.fixed[1:], hf["weight"][old_ids])


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"tok": "7"}', "[" * 100_000])
def test_a_malformed_added_tokens_json_is_one_line(cli, hf, tmp_path, text):
    path = tmp_path / "slow"
    path.mkdir()
    hf["new"].model.save(str(path))
    (path / "added_tokens.json").write_text(text)
    code, _, err = cli("build", "--vocab", path, "--vectors", hf["root"] / "model", "--out", tmp_path / "run")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "added_tokens.json" in err, err
    assert "Traceback" not in err and not (tmp_path / "run").exists()
