"""reindex.audit against a row-by-row numpy comparison, on tiny Llama (untied) and GPT-2 (tied) models."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _audit_models import WORDS, nudge, pair, save, tensors, truth, write_tokenizer

from reindex.audit import audit
from reindex.errors import ReindexError, UsageError

from _hf_models import VOCAB, tiny_model

pytest.importorskip("transformers")

EMB = {"llama": "model.embed_tokens.weight", "gpt2": "transformer.wte.weight"}


def _changed(report, name="embedding") -> tuple[list[int], dict[int, float]]:
    matrix = next(m for m in report.matrices if m.name == name)
    rows = matrix.changes.changed.tolist()
    return sorted(rows), dict(zip(rows, matrix.changes.change.tolist(), strict=False))


def _check(report, base: Path, tuned: Path, key: str, name: str = "embedding", **kwargs) -> list[int]:
    expected, change = truth(tensors(base)[key], tensors(tuned)[key], **kwargs)
    rows, found = _changed(report, name)
    assert rows == expected
    assert found == pytest.approx(change, rel=1e-6)
    return rows


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_changed_rows_match_a_row_by_row_comparison(tmp_path, family):
    base, tuned = pair(tmp_path, family)
    report = audit(base, tuned)
    assert _check(report, base, tuned, EMB[family]) == [3, 7, 40]
    head = report.matrices[1]
    if family == "llama":
        assert _check(report, base, tuned, "lm_head.weight", "head") == [9]
        assert head.tied == ""
    else:
        assert head.tied == "both" and head.changes is None
    assert report.exit_code == 3
    assert report.matched_by == "id"


def test_changes_sorted_largest_first_with_tokens(tmp_path):
    model = tiny_model("llama")
    base = save(model, tmp_path / "base")
    nudge(model, [3], by=0.001)
    nudge(model, [50], by=0.3)
    tuned = save(model, tmp_path / "tuned")
    embedding = audit(base, tuned).matrices[0]
    assert embedding.changes.changed.tolist() == [50, 3]
    assert audit(base, tuned).token(50) == "w50"
    assert embedding.changes.identical == VOCAB - 2


def test_expected_rows_give_exit_0_and_unexpected_ones_3(tmp_path):
    base, tuned = pair(tmp_path, "llama")
    ids = tmp_path / "ids.txt"
    ids.write_text("3\n7\n40\n# the head row\n9\n", encoding="utf-8")
    assert audit(base, tuned, expect=[f"ids:{ids}"]).exit_code == 0
    report = audit(base, tuned, expect=["w3", "w7", "w9"])
    assert report.exit_code == 3
    assert report.matrices[0].unexpected.tolist() == [40]
    assert report.matrices[1].unexpected.tolist() == []


def test_expected_row_that_never_changed_warns(tmp_path):
    base, tuned = pair(tmp_path, "llama")
    report = audit(base, tuned, expect=["w3", "w7", "w40", "w9", "w11"])
    assert report.exit_code == 0
    assert report.warnings[0] == ("embedding: 2 expected row(s) did not change at all (e.g. id 9 'w9'): "
                                  "were they trained?")
    assert report.matrices[0].never_changed.tolist() == [9, 11]


def test_tolerance_is_an_absolute_bound_in_the_tuned_dtype(tmp_path):
    model = tiny_model("llama")
    base = save(model, tmp_path / "base")
    nudge(model, [3], by=1e-4)
    nudge(model, [4], by=0.1)
    tuned = save(model, tmp_path / "tuned")
    report = audit(base, tuned, tolerance=1e-3)
    _check(report, base, tuned, EMB["llama"], tolerance=1e-3)
    assert report.matrices[0].changes.changed.tolist() == [4]
    assert report.matrices[0].changes.within_tolerance == 1
    assert audit(base, tuned, tolerance=1.0).exit_code == 0


def test_resized_vocabulary_reports_rows_only_in_tuned(tmp_path):
    model = tiny_model("llama")
    base = save(model, tmp_path / "base")
    model.resize_token_embeddings(VOCAB + 4)
    nudge(model, [5, VOCAB + 1])
    tuned = save(model, tmp_path / "tuned", added=("<a>", "<b>", "<c>", "<d>"))
    report = audit(base, tuned, expect=["added"])
    embedding, head = report.matrices
    assert embedding.only_in_tuned == 4 and head.only_in_tuned == 4
    assert _check(report, base, tuned, EMB["llama"]) == [5]
    assert embedding.changes.compared == VOCAB
    assert report.expected.tolist() == [VOCAB, VOCAB + 1, VOCAB + 2, VOCAB + 3]
    assert report.exit_code == 3   # row 5 moved, and it is not one of the added tokens


@pytest.mark.parametrize("dtypes", [(None, torch.bfloat16), (torch.bfloat16, None), (torch.float16, torch.bfloat16)])
def test_mixed_dtypes_compare_in_the_coarser_one(tmp_path, dtypes):
    model = tiny_model("llama")
    base = save(model, tmp_path / "base", dtype=dtypes[0])
    model = model.float()
    nudge(model, [3, 60], by=0.25)
    nudge(model, [8], by=1e-6)   # below bfloat16's resolution: no change once rounded
    tuned = save(model, tmp_path / "tuned", dtype=dtypes[1])
    report = audit(base, tuned)
    rows = _check(report, base, tuned, EMB["llama"])
    # float16 -> float32 (+1e-6) -> bfloat16 may land on the other side of a bfloat16 tie: row 8 may move
    assert rows == [3, 60] or (dtypes[0] == torch.float16 and rows == [3, 8, 60])
    assert report.matrices[0].compared_in == "BF16"
    assert any("compared after rounding both to BF16" in note for note in report.notes)


def test_unchanged_model_in_another_dtype_is_unchanged(tmp_path):
    model = tiny_model("gpt2")
    base = save(model, tmp_path / "base")
    tuned = save(model, tmp_path / "tuned", dtype=torch.bfloat16)
    report = audit(base, tuned)
    assert report.exit_code == 0
    assert report.matrices[0].changes.identical == VOCAB


def test_sharded_checkpoint_and_its_index(tmp_path):
    model = tiny_model("llama")
    base = save(model, tmp_path / "base")
    nudge(model, [1, 2])
    nudge(model, [90], head=True)
    tuned = save(model, tmp_path / "tuned", shard="4KB")
    index = tuned / "model.safetensors.index.json"
    files = set(json.loads(index.read_text())["weight_map"].values())
    assert len(files) > 2
    for target in (tuned, index):
        report = audit(base, target)
        assert report.tuned_kind == "sharded"
        assert _check(report, base, tuned, EMB["llama"]) == [1, 2]
        assert _check(report, base, tuned, "lm_head.weight", "head") == [90]


def test_slices_of_any_size_give_the_same_rows(tmp_path):
    base, tuned = pair(tmp_path, "llama", embedding_rows=(0, 31, 32, 95))
    whole = audit(base, tuned)
    for slice_bytes in (1, 64 * 4 * 3, 10**9):
        report = audit(base, tuned, slice_bytes=slice_bytes)
        assert report.matrices[0].changes.changed.tolist() == whole.matrices[0].changes.changed.tolist()
        assert report.matrices[1].changes.changed.tolist() == [9]


def test_tied_base_untied_tune_compares_the_head_with_the_base_embedding(tmp_path):
    model = tiny_model("gpt2")
    base = save(model, tmp_path / "base")
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(model.transformer.wte.weight.detach().clone())
    nudge(model, [12], head=True)
    tuned = save(model, tmp_path / "tuned")
    head = audit(base, tuned).matrices[1]
    assert head.tied == "BASE"
    assert head.changes.changed.tolist() == [12]


def test_gemma_stored_rows_are_compared(tmp_path):
    model = tiny_model("gemma")
    base = save(model, tmp_path / "base")
    nudge(model, [17], by=0.125)
    tuned = save(model, tmp_path / "tuned")
    report = audit(base, tuned)
    assert _check(report, base, tuned, "model.embed_tokens.weight") == [17]
    assert report.matrices[0].changes.change.tolist() == [pytest.approx(0.125, rel=1e-3)]  # not scaled by sqrt(d)
    assert report.matrices[1].tied == "both"


def test_different_tokenizer_matches_by_token(tmp_path):
    model = tiny_model("llama")
    base = save(model, tmp_path / "base")
    words = list(reversed(WORDS[:-1])) + ["new"]   # row i of TUNED is w(94-i); w95 is gone, "new" came
    with torch.no_grad():
        weight = model.model.embed_tokens.weight
        weight[:VOCAB - 1] = weight[:VOCAB - 1].flip(0).clone()
        weight[words.index("w10")] += 1.0
    tuned = save(model, tmp_path / "tuned", tokens=words)
    report = audit(base, tuned)
    assert report.matched_by == "token"
    assert report.tokens_only_in_base == ["w95"] and report.tokens_only_in_tuned == ["new"]
    assert report.matrices[0].changes.changed.tolist() == [words.index("w10")] == [84]
    assert report.token(84) == "w10"
    assert report.matrices[0].changes.compared == VOCAB - 1


def test_reindex_run_as_base_and_tuned(tmp_path):
    from reindex.run import load_run

    from _runs import make_run

    data = make_run(tmp_path / "run")
    run = load_run(tmp_path / "run")
    weight = run.weight()
    assert np.array_equal(weight, data["weight"])
    report = audit(tmp_path / "run", tmp_path / "run", expect=[f"run:{tmp_path / 'run'}"])
    assert report.exit_code == 0 and report.matrices[0].changes.identical == run.vocab_size
    assert report.matrices[1].changes is None
    assert report.expected.tolist() == sorted(run.sorted_to_original[run.num_fixed:].tolist())


def test_run_against_a_model_of_its_vocabulary(tmp_path):
    from reindex.run import load_run

    from _runs import make_run

    make_run(tmp_path / "run", vocab_size=VOCAB, dim=16)
    run = load_run(tmp_path / "run")
    model = tiny_model("llama")
    with torch.no_grad():
        model.model.embed_tokens.weight.copy_(torch.from_numpy(run.weight()))
        model.model.embed_tokens.weight[run.sorted_to_original[run.num_fixed]] += 1   # a trainable row
    tuned = save(model, tmp_path / "tuned", tokens=[f"tok{i}" for i in range(VOCAB)])
    report = audit(tmp_path / "run", tuned, expect=[f"run:{tmp_path / 'run'}"])
    assert report.matched_by == "id"
    assert report.matrices[0].changes.changed.tolist() == [int(run.sorted_to_original[run.num_fixed])]
    assert report.exit_code == 0


def _peft_adapter(tmp_path: Path, family: str, config) -> tuple[Path, Path, torch.nn.Module]:
    peft = pytest.importorskip("peft")
    model = tiny_model(family)
    base = save(model, tmp_path / "base")
    tuned = peft.get_peft_model(model, config)
    return base, tmp_path / "adapter", tuned


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_peft_trainable_tokens_adapter(tmp_path, family):
    peft = pytest.importorskip("peft")
    base, adapter, tuned = _peft_adapter(tmp_path, family, peft.TrainableTokensConfig(token_indices=[31, 5, 30]))
    deltas = [p for n, p in tuned.named_parameters() if "trainable_tokens_delta" in n]
    with torch.no_grad():
        deltas[0][0] += 0.5    # id 31
        deltas[0][2] += 0.25   # id 30
    tuned.save_pretrained(adapter)
    merged = tuned.merge_and_unload()
    report = audit(base, adapter, expect=["w5", "w30", "w31"])
    assert report.tuned_kind == "peft-adapter"
    assert report.matrices[0].changes.changed.tolist() == [31, 30]
    expected, _ = truth(tensors(base)[EMB[family]], merged.get_input_embeddings().weight.detach())
    assert expected == [30, 31]
    assert report.matrices[1].tied == ("both" if family == "gpt2" else "")
    assert report.exit_code == 0
    warnings = ["embedding: 1 expected row(s) did not change at all (e.g. id 5 'w5'): were they trained?"]
    if family == "llama":   # PEFT trains the embedding's rows only: the untied head's never move
        warnings.append("head: 3 expected row(s) did not change at all (e.g. id 5 'w5'): were they trained?")
    assert report.warnings == warnings


def test_peft_lora_with_trainable_token_indices(tmp_path):
    peft = pytest.importorskip("peft")
    config = peft.LoraConfig(target_modules=["q_proj"], trainable_token_indices=[7])
    base, adapter, tuned = _peft_adapter(tmp_path, "llama", config)
    with torch.no_grad():
        next(p for n, p in tuned.named_parameters() if "trainable_tokens_delta" in n)[0] -= 1.0
    tuned.save_pretrained(adapter)
    report = audit(base, adapter)
    assert report.matrices[0].changes.changed.tolist() == [7]
    assert report.matrices[0].changes.change.tolist() == [pytest.approx(1.0, abs=1e-6)]
    assert report.matrices[1].changes.changed.tolist() == []


def _error(exc, *args, **kwargs) -> str:
    with pytest.raises(exc) as caught:
        audit(*args, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_errors_name_the_file(tmp_path):
    base, tuned = pair(tmp_path, "llama")
    assert _error(ReindexError, tmp_path / "nope", tuned) == f"{tmp_path / 'nope'}: no such file or directory"
    (tmp_path / "empty").mkdir()
    assert _error(ReindexError, tmp_path / "empty", tuned) == (
        f"{tmp_path / 'empty'}: no model.safetensors, model.safetensors.index.json or reindex run here "
        "(save the model with model.save_pretrained(DIR), or pass a run directory)")
    assert _error(UsageError, base, tuned, key="nope") == (
        f"{base}: --key 'nope' is not a tensor here (found e.g. model.embed_tokens.weight) (pass one of its keys)")
    assert _error(UsageError, base, tuned, expect=["zzz"]) == (
        f"{tuned / 'tokenizer.json'}: --expect-trainable: token 'zzz' is not in TUNED's tokenizer (1 missing) "
        "(name tokens exactly as the tokenizer stores them, e.g. 'Ġcat')")
    ids = tmp_path / "ids.txt"
    ids.write_text("3\nseven\n", encoding="utf-8")
    assert _error(ReindexError, base, tuned, expect=[f"ids:{ids}"]) == (
        f"{ids}:2: 'seven' is not a row id (0..95) (write one id per line)")
    assert _error(UsageError, base, tuned, tolerance=-1) == "--tolerance must be a number >= 0, got -1"


def test_truncated_file_and_other_dimension(tmp_path):
    base, tuned = pair(tmp_path, "llama")
    data = (tuned / "model.safetensors").read_bytes()
    (tuned / "model.safetensors").write_bytes(data[:-100])
    message = _error(ReindexError, base, tuned)
    assert message.startswith(f"{tuned / 'model.safetensors'}: tensor ")
    assert message.endswith("(the file is truncated; copy it again)")
    other = tiny_model("gpt2")
    other.transformer.wte = torch.nn.Embedding(VOCAB, 8)
    other.lm_head = torch.nn.Linear(8, VOCAB, bias=False)
    other.config.n_embd = 8
    save(other, tmp_path / "other")
    assert _error(ReindexError, base, tmp_path / "other") == (
        f"{tmp_path / 'other'}: embedding: BASE rows have 16 values (model.embed_tokens.weight) but TUNED rows 8 "
        "(transformer.wte.weight) (audit a fine-tune of this BASE)")


def test_adapter_as_base_is_a_usage_error(tmp_path):
    peft = pytest.importorskip("peft")
    base, adapter, tuned = _peft_adapter(tmp_path, "llama", peft.TrainableTokensConfig(token_indices=[1]))
    tuned.save_pretrained(adapter)
    assert _error(UsageError, adapter, base) == (
        f"{adapter}: BASE is a PEFT adapter (pass the model it was trained on as BASE)")


def test_tokenizer_option_names_rows(tmp_path):
    base, tuned = pair(tmp_path, "llama", tokens=None)
    assert audit(base, tuned).token(3) is None
    other = write_tokenizer(tmp_path / "tok", [f"x{i}" for i in range(VOCAB)])
    report = audit(base, tuned, tokenizer=other)
    assert report.token(3) == "x3" and report.matched_by == "id"


def test_bfloat16_rounding_matches_torch():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from reindex.audit.compare import cast

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), min_size=1, max_size=32))
    def check(values):
        f32 = np.array([values], dtype=np.float32)
        ours = cast(f32, "F32", "BF16")
        theirs = torch.from_numpy(f32).to(torch.bfloat16)
        nan = np.isnan(f32)
        assert np.array_equal(ours[~nan], theirs.view(torch.int16).numpy().view(np.uint16)[~nan])
        assert torch.isnan(theirs.float()).numpy()[nan].all()
        assert np.isnan((ours.astype(np.uint32) << 16).view(np.float32))[nan].all()

    check()


def test_compare_rows_by_hand():
    from reindex.audit.compare import compare_rows, tally

    base = np.array([[1, 2], [3, 4], [0, 0], [np.nan, 1]], dtype=np.float32)
    tuned = np.array([[1, 2], [3, 4.5], [-0.0, 0], [np.nan, 1]], dtype=np.float32)
    same, change = compare_rows(base, tuned, "F32")
    assert same.tolist() == [True, False, False, True]
    assert change.tolist() == [0.0, 0.5, 0.0, 0.0]
    exact = tally(np.arange(4), same, change, tolerance=0.0)
    assert exact.changed.tolist() == [1, 2] and exact.identical == 2
    loose = tally(np.arange(4), same, change, tolerance=0.1)
    assert loose.changed.tolist() == [1] and loose.within_tolerance == 1
