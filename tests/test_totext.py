"""`invert --to-text`: one column, one `.txt` per input (two inputs never share one), and rows that cannot
be a line of tokens (nulls, nested lists) refused naming the row; the text "None" is never written."""
from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _datasets import KINDS, build_small_run, write_dataset

TEXT_KINDS = ("npy", "pt", "safetensors", "parquet", "arrow")
SORTED = np.array([[0, 1, 2], [3, 4, 5]], dtype=np.int64)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return build_small_run(tmp_path_factory.mktemp("totext"))


def _tokens(run):
    from reindex import load_run

    return load_run(run).tokens


@pytest.mark.parametrize("kind", TEXT_KINDS)
def test_each_format_becomes_a_line_of_tokens_per_row(run, tmp_path, cli, kind):
    source = write_dataset(kind, tmp_path / "data", SORTED, stem="a")
    code, _, err = cli("invert", run, source, "--out", tmp_path / "out", "--to-text", "-q")
    assert code == 0, err
    tokens = _tokens(run)
    expected = "".join(" ".join(tokens[i] for i in row) + "\n" for row in SORTED.tolist())
    assert (tmp_path / "out" / "a.txt").read_text(encoding="utf-8") == expected
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == ["a.txt"]


@pytest.mark.parametrize("first,second", list(itertools.combinations(TEXT_KINDS, 2)))
def test_two_inputs_that_would_share_a_text_name_are_refused_before_anything_is_written(
        run, tmp_path, cli, first, second):
    one = write_dataset(first, tmp_path / "data", SORTED, stem="a")
    two = write_dataset(second, tmp_path / "data", SORTED, stem="a")
    code, out, err = cli("invert", run, one, two, "--out", tmp_path / "out", "--to-text")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert f"{one} and {two} would both be written to {tmp_path / 'out' / 'a.txt'}" in err
    assert not (tmp_path / "out").exists()
    code, _, err = cli("invert", run, one, two, "--out", tmp_path / "out", "-q")  # without --to-text: two files
    assert code == 0, err


def test_a_file_sniffed_by_content_collides_like_one_named_by_suffix(run, tmp_path, cli):
    one = write_dataset("npy", tmp_path / "data", SORTED, stem="a")
    two = one.rename(tmp_path / "data" / "a.ids")
    write_dataset("npy", tmp_path / "data", SORTED, stem="a")
    code, _, err = cli("invert", run, one, two, "--out", tmp_path / "out", "--to-text")
    assert code == 2 and "would both be written to" in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", TEXT_KINDS)
def test_a_second_column_is_refused_with_to_text(run, tmp_path, cli, kind):
    source = write_dataset(kind, tmp_path / "data", SORTED, stem="a")
    code, out, err = cli("invert", run, source, "--out", tmp_path / "out", "--to-text",
                         "--column", "input_ids", "--column", "labels")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert "--to-text writes one column as text, got --column input_ids --column labels" in err
    assert "invert once per column" in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", [k for k in KINDS if k not in TEXT_KINDS])
def test_formats_to_text_cannot_read_back_are_refused(run, tmp_path, cli, kind):
    source = write_dataset(kind, tmp_path / "data", SORTED, stem="a", tokens=_tokens(run))
    code, _, err = cli("invert", run, source, "--out", tmp_path / "out", "--to-text")
    assert code == 2 and "--to-text reads npy, pt, safetensors, parquet, arrow files" in err
    assert not (tmp_path / "out").exists()


BAD_COLUMNS = {
    "a null row": (pa.array([[0, 1], None, [2]], pa.list_(pa.int64())), 1, "is null"),
    "a null inside a row": (pa.array([[0, 1], [2], [3, None, 4]], pa.list_(pa.int64())), 2, "holds a null id"),
    "a null single id": (pa.array([0, None, 2], pa.int64()), 1, "is null"),
    "nested lists": (pa.array([[], [[0, 1]], [[2]]], pa.list_(pa.list_(pa.int64()))), 1,
                     "holds nested lists, not ids"),
    "a null in a fixed-size row": (pa.array([[0, 1], [None, 2]], pa.list_(pa.int64(), 2)), 1, "holds a null id"),
}


@pytest.mark.parametrize("case", BAD_COLUMNS)
@pytest.mark.parametrize("kind", ["parquet", "arrow"])
def test_nulls_and_nested_lists_are_refused_naming_the_row(run, tmp_path, cli, kind, case):
    column, row, what = BAD_COLUMNS[case]
    table = pa.table({"input_ids": column})
    source = tmp_path / f"a.{kind}"
    if kind == "parquet":
        pq.write_table(table, source)
    else:
        import pyarrow.feather as feather

        feather.write_feather(table, source)
    code, out, err = cli("invert", run, source, "--out", tmp_path / "out", "--to-text")
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1, err
    assert f"{source}: at row {row}: column 'input_ids' {what}" in err, err
    assert not (tmp_path / "out").exists() and "None" not in err
