"""`reindex audit` end to end through the CLI: exit codes 0/3/1/2, --json, -q, --top, --plot."""
from __future__ import annotations

import json

import pytest
from _audit_models import pair

pytest.importorskip("transformers")


@pytest.fixture
def models(tmp_path):
    return pair(tmp_path, "llama")   # rows 3, 7, 40 of the embedding and 9 of the head moved


def test_changed_rows_exit_3_and_json_lists_them(cli, models):
    code, out, err = cli("audit", *models, "--json")
    assert code == 3, err
    report = json.loads(out)
    embedding, head = report["matrices"]
    assert [row["id"] for row in embedding["changed"]] == [3, 7, 40]
    assert [row["token"] for row in embedding["changed"]] == ["w3", "w7", "w40"]
    assert embedding["rows_compared"] == 96 and embedding["rows_identical"] == 93
    assert [row["id"] for row in head["changed"]] == [9]
    assert report["ok"] is False and report["exit_code"] == 3


def test_expected_rows_exit_0(cli, models, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("3\n7\n40\n9\n", encoding="utf-8")
    code, out, err = cli("audit", *models, "--expect-trainable", f"ids:{ids}")
    assert code == 0, err
    assert "ok: no row outside the expected rows changed" in out


def test_tokens_as_expectation_and_warning(cli, models):
    args = [a for t in ("w3", "w7", "w40", "w9", "w11") for a in ("--expect-trainable", t)]
    code, out, err = cli("audit", *models, *args)
    assert code == 0
    assert "reindex: warning: embedding: 2 expected row(s) did not change at all (e.g. id 9 'w9')" in err


def test_quiet_prints_nothing_and_top_limits_the_table(cli, models):
    assert cli("audit", *models, "-q") == (3, "", "")
    code, out, _ = cli("audit", *models, "--top", "1")
    assert "'w3'" in out and "'w9'" in out   # the largest of each matrix
    assert "'w7'" not in out and "'w40'" not in out


def test_plot_is_written(cli, models, tmp_path):
    pytest.importorskip("matplotlib")
    code, _, err = cli("audit", *models, "--plot", tmp_path / "changes.png", "-q")
    assert code == 3, err
    assert (tmp_path / "changes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unchanged_exits_0(cli, models):
    base, _ = models
    code, out, _ = cli("audit", base, base)
    assert code == 0
    assert "ok: no row changed" in out


def test_errors_are_one_line_with_exit_1_or_2(cli, models, tmp_path):
    base, tuned = models
    code, out, err = cli("audit", tmp_path / "missing", tuned)
    assert (code, out, err) == (1, "", f"reindex: error: {tmp_path / 'missing'}: no such file or directory\n")
    code, _, err = cli("audit", base, tuned, "--key", "nope")
    assert code == 2
    assert err == (f"reindex: error: {base}: --key 'nope' is not a tensor here (found e.g. model.embed_tokens.weight) "
                   "(pass one of its keys)\n")
    code, _, err = cli("audit", base, tuned, "--plot", tmp_path / "plot.txt")
    assert code == 2 and err.startswith(f"reindex: error: {tmp_path / 'plot.txt'}: --plot needs an image suffix")
    code, _, err = cli("audit", base, tuned, "--tolerance", "-1")
    assert code == 2 and "-1" in err
