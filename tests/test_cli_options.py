"""The CLI's options (--json, -q/-v, progress bars, --include/--ignore-index/--workers, export formats,
matching, token lookup, the coverage plot), through the CLI, each checked against values computed here
independently (plain Python / numpy / pyarrow reads of the same files)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import DATA, ROOT, VOCAB, stderr_on_a_terminal, write_glove


def _vector_tokens(path: Path) -> list[str]:
    return [line.split(" ", 1)[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _vocab_tokens() -> list[str]:
    """data/vocab.txt holds `token<TAB>count` lines."""
    return [line.split("\t")[0] for line in (DATA / "vocab.txt").read_text(encoding="utf-8").splitlines()]


def _build(cli, tmp_path: Path, *args: object, name: str = "run") -> tuple[Path, dict]:
    run = tmp_path / name
    code, out, err = cli("build", "--vocab", DATA / "vocab.txt", "--vectors", DATA / "vectors.txt", "--out", run,
                         "--json", *args)
    assert code == 0, err
    return run, json.loads(out)


# --- conventions -------------------------------------------------------------------------------

def test_version_short_and_long_and_dash_h(cli):
    import reindex

    for flag in ("--version", "-V"):
        code, out, _ = cli(flag)
        assert code == 0 and out.strip() == f"reindex {reindex.__version__}"
    code, out, _ = cli("-h")
    assert code == 0 and "Commands:" in out
    code, out, _ = cli("export", "-h")
    assert code == 0 and " export [OPTIONS] RUN" in out


def test_help_summaries_are_whole_and_usage_names_run_and_data(cli):
    from reindex.cli import app

    code, out, _ = cli("--help")
    flat = " ".join(out.split())
    assert "--install-completion" in out and "--show-completion" in out
    for command in app.registered_commands:
        assert " ".join(command.short_help.split()) in flat  # never cut with "..."
    assert "..." not in out.split("Commands:")[1]
    for command, usage in (("remap", "RUN DATA..."), ("invert", "RUN DATA..."), ("inspect", "RUN [DATA]..."),
                           ("build", "[OPTIONS] [DATA]..."), ("verify", "RUN")):
        code, out, _ = cli(command, "--help")
        assert f" {command} [OPTIONS]" in out and usage in out.splitlines()[0]
        assert "{" not in out.splitlines()[0]


def test_shell_completion_shows_installs_and_completes(tmp_path):
    as_console_script = "import sys; sys.argv[0] = 'reindex'; from reindex.cli import main; main()"
    # Typer detects the user's shell from the process tree (a run under zsh, or with no shell above it,
    # would get another script or "Shell not supported"); this variable makes it take the shell we name.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path),
           "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}

    def reindex(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", as_console_script, *args], capture_output=True, text=True,
                              cwd=ROOT, env={**env, **extra})

    proc = reindex("--show-completion", "bash")
    assert proc.returncode == 0, proc.stderr
    assert "complete -o default -F _reindex_completion reindex" in proc.stdout and "_REINDEX_COMPLETE" in proc.stdout
    proc = reindex("--install-completion", "bash")
    assert proc.returncode == 0, proc.stderr
    installed = (tmp_path / ".bash_completions" / "reindex.sh").read_text()
    assert installed.strip() == reindex("--show-completion", "bash").stdout.strip()
    assert "reindex.sh" in (tmp_path / ".bashrc").read_text()
    proc = reindex(_REINDEX_COMPLETE="complete_bash", COMP_WORDS="reindex ex", COMP_CWORD="1")
    assert proc.returncode == 0 and proc.stdout.split() == ["export"]
    proc = reindex(_REINDEX_COMPLETE="complete_bash", COMP_WORDS="reindex build --norm", COMP_CWORD="2")
    assert proc.stdout.split() == ["--normalize"]


# --- --json on every command, against independent values ---------------------------------------

def test_json_of_every_command_matches_independent_counts(tmp_path, cli):
    vocab = _vocab_tokens()
    found = set(_vector_tokens(DATA / "vectors.txt"))
    expected_fixed = sum(t in found for t in vocab)
    table = pq.read_table(DATA / "train.parquet")
    ids = np.concatenate([np.asarray(row, np.int64) for row in table.column("input_ids").to_pylist()])

    run, built = _build(cli, tmp_path, DATA / "train.parquet")
    assert built["command"] == "build" and built["run"] == str(run)
    assert (built["vocab"], built["fixed"], built["trainable"]) == (len(vocab), expected_fixed,
                                                                    len(vocab) - expected_fixed)
    assert built["dim"] == len((DATA / "vectors.txt").read_text().split("\n", 1)[0].split()) - 1
    assert built["datasets"][0]["num_ids"] == ids.size == built["corpus"]["tokens"]
    assert built["corpus"]["fixed_tokens"] == sum(vocab[i] in found for i in ids.tolist())
    assert built["warnings"] == []

    code, out, err = cli("remap", run, DATA / "train.parquet", "--out", tmp_path / "enc", "--json")
    remapped = json.loads(out)
    assert code == 0 and remapped["num_ids"] == ids.size and remapped["num_files"] == 1
    assert remapped["files"][0]["output"] == str(tmp_path / "enc" / "train.parquet")
    assert remapped["files"][0]["num_rows"] == table.num_rows and remapped["files"][0]["format"] == "parquet"

    code, out, _ = cli("invert", run, tmp_path / "enc" / "train.parquet", "--out", tmp_path / "dec", "--json")
    assert code == 0 and json.loads(out)["num_ids"] == ids.size

    code, out, _ = cli("export", run, "--out", tmp_path / "e.npy", "--json")
    exported = json.loads(out)
    assert code == 0 and exported == {"command": "export", "run": str(run), "path": str(tmp_path / "e.npy"),
                                      "format": "npy", "rows": len(vocab), "dim": built["dim"]}
    assert np.load(tmp_path / "e.npy").shape == (len(vocab), built["dim"])

    code, out, _ = cli("verify", run, "--json")
    assert code == 0 and json.loads(out) == {"command": "verify", "run": str(run), "ok": True, "problems": []}
    (run / "vocab.txt").write_text("changed\n")
    code, out, _ = cli("verify", run, "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False and any("vocab.txt" in p for p in report["problems"])


# --- quiet and verbose ------------------------------------------------------------------------

def test_quiet_prints_nothing_and_verbose_names_each_file(tmp_path, cli):
    code, out, err = cli("build", "--vocab", DATA / "vocab.txt", "--vectors", DATA / "vectors.txt",
                         "--out", tmp_path / "q", "-q", DATA / "train.parquet")
    assert code == 0 and out == "" and err == ""
    for command in ("remap", "invert"):
        code, out, err = cli(command, tmp_path / "q", DATA / "train.parquet", "--out", tmp_path / f"{command}-q", "-q")
        assert code == 0 and out == "" and err == ""
    code, out, err = cli("export", tmp_path / "q", "--out", tmp_path / "q.npy", "-q")
    assert code == 0 and out == "" and err == ""
    code, out, err = cli("verify", tmp_path / "q", "-q")
    assert code == 0 and out == "" and err == ""
    code, out, err = cli("remap", tmp_path / "q", DATA / "train.parquet", "--out", tmp_path / "v", "-v")
    assert code == 0 and f"{DATA / 'train.parquet'}: 6,336 ids, " in err
    code, _, err = cli("remap", tmp_path / "q", DATA / "train.parquet", "--out", tmp_path / "n")
    assert code == 0 and "6,336 ids, " not in err  # the per-file line is verbose only
    code, _, err = cli("remap", tmp_path / "q", tmp_path / "missing.npy", "--out", tmp_path / "e", "-q")
    assert code == 1 and "missing.npy: no such file or directory" in err  # errors still print
    (tmp_path / "v.txt").write_text("zzz1\nzzz2\n")
    code, out, err = cli("build", "--vocab", tmp_path / "v.txt", "--vectors", DATA / "vectors.txt", "--out",
                         tmp_path / "w", "-q")
    assert code == 0 and out == "" and err == ""  # a warning too is silenced, and kept in the manifest
    warnings = json.loads((tmp_path / "w" / "manifest.json").read_text())["counts"]["warnings"]
    assert warnings[0].startswith("no vocabulary token has a pretrained vector (0 of 2)")


# --- progress: bars on a terminal only -------------------------------------------------------

def _stderr_of_build(tmp_path: Path, *, terminal: bool) -> str:

    args = [sys.executable, "-m", "reindex", "build", "--vocab", str(DATA / "vocab.txt"), "--vectors",
            str(DATA / "vectors.txt"), "--out", str(tmp_path / ("t" if terminal else "p")), str(DATA / "train.parquet")]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm", "COLUMNS": "120"}
    env.pop("NO_COLOR", None)
    if not terminal:
        proc = subprocess.run(args, capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr
        return proc.stderr
    return stderr_on_a_terminal(args, env, timeout=600)


@pytest.mark.slow   # two fresh processes, one on a pseudo-terminal
def test_progress_bar_on_a_terminal_and_plain_lines_on_a_pipe(tmp_path):
    shown = _stderr_of_build(tmp_path, terminal=True)
    assert "━" in shown and "remapping" in shown and "1/1" in shown and "files" in shown
    assert f"reading {DATA / 'vectors.txt'}" in shown
    piped = _stderr_of_build(tmp_path, terminal=False)
    assert "━" not in piped and "\r" not in piped and "\x1b[" not in piped
    lines = piped.splitlines()
    assert lines == ["read 3,000 vocabulary tokens", "matched 2,531 fixed and 469 trainable tokens",
                     "remapped 6,336 ids in 1 file(s)"]  # a line per step


# --- workflow options ----------------------------------------------------------------------

def test_vocab_from_stdin_gives_the_same_run(tmp_path, cli):
    from typer.testing import CliRunner

    from reindex.cli import app

    text = (DATA / "vocab.txt").read_bytes()
    result = CliRunner().invoke(app, ["build", "--vocab", "-", "--vectors", str(DATA / "vectors.txt"),
                                      "--out", str(tmp_path / "stdin"), "-q"], input=text)
    assert result.exit_code == 0, result.stderr
    run, _ = _build(cli, tmp_path, name="file")
    assert (tmp_path / "stdin" / "vocab.txt").read_bytes() == (run / "vocab.txt").read_bytes()
    assert (tmp_path / "stdin" / "embedding.safetensors").read_bytes() == (run / "embedding.safetensors").read_bytes()
    import hashlib

    record = json.loads((tmp_path / "stdin" / "manifest.json").read_text())["inputs"]["vocab"]
    assert record == {"path": "-", "size": len(text), "sha256": hashlib.sha256(text).hexdigest()}
    result = CliRunner().invoke(app, ["build", "--vocab", "-", "--vectors", str(DATA / "vectors.txt"),
                                      "--out", str(tmp_path / "bad")], input=b"a\na\n")
    assert result.exit_code == 1 and "<stdin>:2: duplicate token 'a'" in result.stderr


def test_build_unk_for_text_data(small, cli):
    (small["dir"] / "t.txt").write_text("the cat\nthe zebra\n", encoding="utf-8")
    code, _, err = cli("build", "--vocab", small["vocab"], "--vectors", small["vectors"], "--out", small["dir"] / "r1",
                       small["dir"] / "t.txt")
    assert code == 1 and "unknown word 'zebra'" in err and not (small["dir"] / "r1").exists()
    code, _, err = cli("build", "--vocab", small["vocab"], "--vectors", small["vectors"], "--out", small["dir"] / "r2",
                       "--unk", "xyzzy", small["dir"] / "t.txt", "-q")
    assert code == 0, err
    from reindex import load_run

    run = load_run(small["dir"] / "r2")
    rows = pq.read_table(small["dir"] / "r2" / "data" / "t.parquet").column("input_ids").to_pylist()
    assert [[run.tokens[s] for s in row] for row in rows] == [["the", "cat"], ["the", "xyzzy"]]


def _lm_tables(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    ids = rng.integers(0, len(VOCAB), (4, 5))
    labels = ids.copy()
    labels[:, :2] = -100
    return ids, labels


def _write_lm(kind: str, path: Path, ids: np.ndarray, labels: np.ndarray) -> Path:
    if kind == "npy":
        np.save(path / "labels.npy", labels)
        return path / "labels.npy"
    if kind == "pt":
        import torch

        torch.save({"input_ids": torch.from_numpy(ids), "labels": torch.from_numpy(labels)}, path / "lm.pt")
        return path / "lm.pt"
    if kind == "safetensors":
        from safetensors.numpy import save_file

        save_file({"input_ids": ids, "labels": labels}, str(path / "lm.safetensors"))
        return path / "lm.safetensors"
    table = pa.table({"input_ids": pa.array(ids.tolist(), pa.list_(pa.int64())),
                      "labels": pa.array(labels.tolist(), pa.list_(pa.int64()))})
    if kind == "parquet":
        pq.write_table(table, path / "lm.parquet")
        return path / "lm.parquet"
    if kind == "arrow":
        import pyarrow.feather as feather

        feather.write_feather(table, path / "lm.arrow")
        return path / "lm.arrow"
    import datasets

    datasets.Dataset(table).save_to_disk(str(path / "lm_hf"))
    return path / "lm_hf"


def _read_lm(kind: str, path: Path, column: str) -> np.ndarray:
    if kind == "npy":
        return np.load(path)
    if kind == "pt":
        import torch

        return torch.load(path, weights_only=True)[column].numpy()
    if kind == "safetensors":
        from safetensors.numpy import load_file

        return load_file(str(path))[column]
    if kind == "parquet":
        return np.array(pq.read_table(path).column(column).to_pylist())
    if kind == "arrow":
        import pyarrow.feather as feather

        return np.array(feather.read_table(path).column(column).to_pylist())
    import datasets

    return np.array(datasets.load_from_disk(str(path))[column])


@pytest.mark.parametrize("kind", ["npy", "pt", "safetensors", "parquet", "arrow", "hf"])
def test_ignore_index_passes_labels_through_in_every_format(small, cli, kind):
    ids, labels = _lm_tables(np.random.default_rng(1))
    source = _write_lm(kind, small["dir"], ids, labels)
    columns = [] if kind == "npy" else ["--column", "input_ids", "--column", "labels"]
    run_dir = small["dir"] / "run"
    assert cli("build", "--vocab", small["vocab"], "--vectors", small["vectors"], "--out", run_dir, "-q")[0] == 0
    code, _, err = cli("remap", run_dir, source, "--out", small["dir"] / "bad", *columns)
    assert code == 1 and "id -100 is outside the vocabulary" in err and not (small["dir"] / "bad").exists()
    from reindex import load_run

    table = load_run(run_dir).original_to_sorted
    expected = np.where(labels == -100, -100, table[np.maximum(labels, 0)])
    seen = np.concatenate([ids.ravel(), labels[labels != -100]]) if kind != "npy" else labels[labels != -100]
    code, out, err = cli("inspect", run_dir, source, *columns, "--ignore-index", "-100", "--json")
    assert code == 0 and json.loads(out)["corpus"]["tokens"] == seen.size  # -100 never counted
    code, out, err = cli("build", "--vocab", small["vocab"], "--vectors", small["vectors"], "--json",
                         "--out", small["dir"] / "built", *columns, "--ignore-index", "-100", source)
    assert code == 0, err
    assert np.array_equal(_read_lm(kind, small["dir"] / "built" / "data" / source.name, "labels"), expected)
    counted = np.load(small["dir"] / "built" / "corpus_counts.npy")
    assert np.array_equal(counted, np.bincount(table[seen], minlength=len(VOCAB)))
    assert json.loads(out)["corpus"]["tokens"] == seen.size
    code, out, err = cli("verify", small["dir"] / "built", "--json")  # the -100s are not taken for damage
    assert code == 0 and json.loads(out)["ok"] is True, out
    got = expected

    code, _, err = cli("remap", small["dir"] / "run", source, "--out", small["dir"] / "enc", *columns,
                       "--ignore-index", "-100", "-q")
    assert code == 0, err
    encoded = small["dir"] / "enc" / source.name
    assert np.array_equal(_read_lm(kind, encoded, "labels"), got)
    code, _, err = cli("invert", small["dir"] / "run", encoded, "--out", small["dir"] / "dec", *columns,
                       "--ignore-index", "-100", "-q")
    assert code == 0, err
    assert np.array_equal(_read_lm(kind, small["dir"] / "dec" / source.name, "labels"), labels)


def test_include_and_unknown_files_in_a_tree(small, cli):
    tree = small["dir"] / "corpus"
    (tree / "sub").mkdir(parents=True)
    np.save(tree / "a_ids.npy", np.array([1, 2]))
    np.save(tree / "sub" / "b_ids.npy", np.array([3]))
    (tree / "notes.md").write_text("# notes\n")
    pq.write_table(pa.table({"input_ids": pa.array([[1, 2]], pa.list_(pa.int64()))}), tree / "c.parquet")
    run = small["dir"] / "run"
    assert cli("build", "--vocab", small["vocab"], "--vectors", small["vectors"], "--out", run, "-q")[0] == 0
    code, out, err = cli("remap", run, tree, "--out", small["dir"] / "all", "--json")
    assert code == 0 and f"note: skipping {tree / 'notes.md'}: unknown file type" in err
    assert sorted(Path(f["source"]).name for f in json.loads(out)["files"]) == ["a_ids.npy", "b_ids.npy", "c.parquet"]
    code, out, err = cli("invert", run, tree, "--out", small["dir"] / "some", "--include", "*.npy", "--json")
    assert code == 0 and "notes.md" not in err
    assert sorted(Path(f["source"]).name for f in json.loads(out)["files"]) == ["a_ids.npy", "b_ids.npy"]
    code, out, _ = cli("build", "--vocab", small["vocab"], "--vectors", small["vectors"], "--out", small["dir"] / "r2",
                       "--include", "sub/*", tree, "--json")
    assert code == 0 and [Path(d["source"]).name for d in json.loads(out)["datasets"]] == ["b_ids.npy"]
    code, _, err = cli("remap", run, tree / "notes.md", "--out", small["dir"] / "named")
    assert code == 1 and "notes.md: unknown file type" in err and not (small["dir"] / "named").exists()


def test_limit_reads_only_the_first_vectors_in_text_and_binary(tmp_path, cli):
    first = _vector_tokens(DATA / "vectors.txt")[:50]
    vocab = _vocab_tokens()
    run, built = _build(cli, tmp_path, "--limit", "50")
    assert built["vectors_read"] == 50 and built["fixed"] == sum(t in set(first) for t in vocab)
    code, _, err = cli("export", run, "--out", tmp_path / "all.bin")
    assert code == 0, err
    code, out, err = cli("build", "--vocab", DATA / "vocab.txt", "--vectors", tmp_path / "all.bin", "--limit", "7",
                         "--out", tmp_path / "b", "--json")
    assert code == 0, err
    exported_first = _vocab_tokens()[:7]  # export: original order
    assert json.loads(out)["vectors_read"] == 7 and json.loads(out)["fixed"] == 7
    from reindex import load_run

    assert sorted(load_run(tmp_path / "b").tokens[:7]) == sorted(exported_first)
    code, _, err = cli("build", "--vocab", DATA / "vocab.txt", "--vectors", DATA / "vectors.txt", "--limit", "0",
                       "--out", tmp_path / "z")
    assert code == 2 and "--limit" in err
    code, _, err = cli("build", "--vocab", DATA / "vocab.txt", "--vectors", run, "--limit", "5",
                       "--out", tmp_path / "g")
    assert code == 2 and "--limit goes with a vector file, not a run directory" in err


def test_workers_gives_the_same_files(tmp_path, cli):
    for n in ("1", "2"):
        code, _, err = cli("build", "--vocab", DATA / "vocab.txt", "--vectors", DATA / "vectors.txt", "-q",
                           "--out", tmp_path / n, "--workers", n, DATA / "train.parquet", DATA / "train.pt")
        assert code == 0, err
        code, _, err = cli("remap", tmp_path / n, DATA / "train.parquet", DATA / "train.pt", "--workers", n, "-q",
                           "--out", tmp_path / f"enc{n}")
        assert code == 0, err
    for name in ("train.parquet", "train.pt"):
        assert (tmp_path / "1" / "data" / name).read_bytes() == (tmp_path / "2" / "data" / name).read_bytes()
        assert (tmp_path / "enc1" / name).read_bytes() == (tmp_path / "enc2" / name).read_bytes()
    code, _, err = cli("remap", tmp_path / "1", DATA / "train.pt", "--workers", "0", "--out", tmp_path / "w0")
    assert code == 2 and "--workers" in err


# --- export formats ---------------------------------------------------------------------------

def test_export_format_from_known_suffixes_only(tmp_path, cli):
    import gzip

    import torch
    from safetensors.numpy import load_file

    run, _ = _build(cli, tmp_path)
    assert cli("export", run, "--out", tmp_path / "e.safetensors", "-q")[0] == 0
    weight = load_file(str(tmp_path / "e.safetensors"))["weight"]
    code, out, err = cli("export", run, "--out", tmp_path / "e.pt", "--json")
    assert code == 0 and json.loads(out)["format"] == "pt"
    loaded = torch.load(tmp_path / "e.pt", weights_only=True)
    assert np.array_equal(loaded["weight"].numpy(), weight)
    for name, fmt, header in (("e.vec.gz", "word2vec-gz", True), ("e.txt.gz", "glove-gz", False)):
        code, out, _ = cli("export", run, "--out", tmp_path / name, "--json")
        assert code == 0 and json.loads(out)["format"] == fmt
        lines = gzip.decompress((tmp_path / name).read_bytes()).decode().splitlines()
        assert (lines[0] == f"{weight.shape[0]} {weight.shape[1]}") is header
        first = lines[1 if header else 0].split(" ")
        assert np.array_equal(np.array(first[1:], np.float32), weight[0])
        code, out, _ = cli("build", "--vocab", DATA / "vocab.txt", "--vectors", tmp_path / name, "--json",
                           "--out", tmp_path / f"from-{fmt}")
        assert code == 0 and json.loads(out)["fixed"] == weight.shape[0]  # reads back, every row
    for bad in ("e.foo", "e.pth", "embedding"):
        code, _, err = cli("export", run, "--out", tmp_path / bad)
        assert code == 2 and "pass --format" in err and not (tmp_path / bad).exists()
    code, _, err = cli("export", run, "--out", tmp_path / "e.foo", "--format", "npy")
    assert code == 0 and np.array_equal(np.load(tmp_path / "e.foo"), weight)


def test_invert_to_text_joins_tokens(tmp_path, cli):
    run, _ = _build(cli, tmp_path)
    vocab = _vocab_tokens()
    original = pq.read_table(DATA / "train.parquet").column("input_ids").to_pylist()
    assert cli("remap", run, DATA / "train.parquet", "--out", tmp_path / "enc", "-q")[0] == 0
    code, out, err = cli("invert", run, tmp_path / "enc" / "train.parquet", "--out", tmp_path / "txt", "--to-text",
                         "--json")
    assert code == 0, err
    text = (tmp_path / "txt" / "train.txt").read_text(encoding="utf-8")
    assert text == "".join(" ".join(vocab[i] for i in row) + "\n" for row in original)
    assert json.loads(out)["files"][0]["output"] == str(tmp_path / "txt" / "train.txt")
    assert not (tmp_path / "txt" / "train.parquet").exists()
    sorted_ids = np.array([[0, 1], [2, 3]])
    np.save(tmp_path / "p.npy", sorted_ids)
    code, _, err = cli("invert", run, tmp_path / "p.npy", "--out", tmp_path / "txt2", "--to-text", "-q")
    from reindex import load_run

    tokens = load_run(run).tokens
    assert code == 0
    assert (tmp_path / "txt2" / "p.txt").read_text() == f"{tokens[0]} {tokens[1]}\n{tokens[2]} {tokens[3]}\n"


# --- matching ---------------------------------------------------------------------------------

def test_normalize_nfc_matches_an_nfd_vector_file(tmp_path, cli):
    words = ["café", "naïve", "Ångström", "plain"]
    (tmp_path / "v.txt").write_text("".join(w + "\n" for w in words), encoding="utf-8")
    write_glove(tmp_path / "nfd.txt", {unicodedata.normalize("NFD", w): [float(i), 1.0] for i, w in enumerate(words)})
    code, out, _ = cli("build", "--vocab", tmp_path / "v.txt", "--vectors", tmp_path / "nfd.txt", "--out",
                       tmp_path / "none", "--json")
    assert code == 0 and json.loads(out)["fixed"] == 1  # only "plain" is the same bytes
    code, out, _ = cli("build", "--vocab", tmp_path / "v.txt", "--vectors", tmp_path / "nfd.txt", "--out",
                       tmp_path / "nfc", "--normalize", "nfc", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["fixed"] == 4 and summary["fallback"]["normalized"] == 3
    assert [m["token"] for m in summary["fallback_matches"]] == words[:3]
    from reindex import load_run

    run = load_run(tmp_path / "nfc")
    assert run.weight(order="original")[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0]
    code, out, _ = cli("build", "--vocab", tmp_path / "v.txt", "--vectors", tmp_path / "nfd.txt", "--out",
                       tmp_path / "nfkc", "--normalize", "nfkc", "--json")
    assert code == 0 and json.loads(out)["fixed"] == 4


def test_case_fallback_order_and_inspect_listing(tmp_path, cli):
    vocab = ["Paris", "strasse", "ΟΔΟΣ", "the", "nasa", "Unmatched"]
    (tmp_path / "v.txt").write_text("".join(w + "\n" for w in vocab), encoding="utf-8")
    # File order decides among variants: "PARIS" (upper) comes before "paris" (lowercase).
    write_glove(tmp_path / "vec.txt", {"PARIS": [1.0], "Straße": [2.0], "paris": [3.0], "οδος": [4.0],
                                       "the": [5.0], "Nasa": [6.0], "NASA": [7.0]})
    code, out, err = cli("build", "--vocab", tmp_path / "v.txt", "--vectors", tmp_path / "vec.txt", "--out",
                         tmp_path / "run", "--case-fallback", "--json")
    assert code == 0, err
    summary = json.loads(out)
    kinds = {m["token"]: (m["vector"], m["kind"]) for m in summary["fallback_matches"]}
    assert kinds == {"Paris": ("PARIS", "upper"), "strasse": ("Straße", "casefold"), "ΟΔΟΣ": ("οδος", "lowercase"),
                     "nasa": ("Nasa", "title")}
    assert summary["fallback"] == {"normalized": 0, "lowercase": 1, "title": 1, "upper": 1, "casefold": 1}
    from reindex import load_run

    weights = load_run(tmp_path / "run").weight(order="original")[:, 0].tolist()
    assert weights[:5] == [1.0, 2.0, 4.0, 5.0, 6.0]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["counts"]["fallback"] == summary["fallback"]
    assert len(manifest["counts"]["fallback_matches"]) == 4
    code, out, _ = cli("inspect", tmp_path / "run")
    assert code == 0 and "fallback matches" in out and "'Straße'" in out and "casefold" in out
    code, out, _ = cli("inspect", tmp_path / "run", "--json")
    assert json.loads(out)["fallback_matches"] == manifest["counts"]["fallback_matches"]
    # --lowercase-fallback stays the narrower rule: only the lowercase form.
    code, out, _ = cli("build", "--vocab", tmp_path / "v.txt", "--vectors", tmp_path / "vec.txt", "--out",
                       tmp_path / "lower", "--lowercase-fallback", "--json")
    lowered = json.loads(out)
    assert code == 0 and {m["token"]: m["vector"] for m in lowered["fallback_matches"]} == {"Paris": "paris",
                                                                                          "ΟΔΟΣ": "οδος"}
    assert lowered["lowercase_matches"] == 2


# --- Run token lookup and the coverage plot -------------------------------------------------

def test_run_token_id_lookup(small, cli):
    code, _, _ = cli("build", "--vocab", small["vocab"], "--vectors", small["vectors"], "--out", small["dir"] / "r",
                     "-q")
    assert code == 0
    from reindex import load_run

    run = load_run(small["dir"] / "r")
    for original, token in enumerate(VOCAB):
        assert run.token_id(token, order="original") == original
        assert run.tokens[run.token_id(token)] == token
    assert run.token_ids(["cat", "dog"]).tolist() == [run.token_id("cat"), run.token_id("dog")]
    with pytest.raises(KeyError, match="'zebra' is not in the vocabulary"):
        run.token_id("zebra")


def test_coverage_plot_title_and_size(tmp_path, cli, monkeypatch):
    import matplotlib.figure

    titles = []
    original_savefig = matplotlib.figure.Figure.savefig

    def spy(self, *args, **kwargs):
        titles.append(self.axes[0].get_title())
        return original_savefig(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    run, built = _build(cli, tmp_path, DATA / "train.parquet")
    code, _, err = cli("inspect", run, "--plot", tmp_path / "c.png", "-q")
    assert code == 0, err
    corpus = built["corpus"]
    assert titles == [f"run: token coverage {corpus['fixed_share']:.1%}, vocabulary coverage "
                      f"{built['fixed'] / built['vocab']:.1%}\n({built['fixed']:,} of {built['vocab']:,} tokens fixed; "
                      f"{corpus['tokens']:,} corpus tokens)"]
    png = (tmp_path / "c.png").read_bytes()
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1200, 720)


# --- examples take any run and any of its data files -------------------------------------------

@pytest.mark.slow   # three runs of the example, each a fresh process that imports torch
def test_train_classifier_example_on_a_pt_dataset_and_a_chosen_file(tmp_path, cli):
    run = tmp_path / "run"
    code, _, err = cli("build", "--vocab", DATA / "vocab.txt", "--vectors", DATA / "vectors.txt", "--pad", "<pad>",
                       "--out", run, "-q", DATA / "train.pt", DATA / "train.parquet")
    assert code == 0, err
    example = [sys.executable, str(ROOT / "examples" / "train_classifier.py"), "--run", str(run), "--epochs", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for extra, name in (([], "train.pt"), (["--data", "train.parquet"], "train.parquet"),
                        (["--data", str(run / "data" / "train.pt")], "train.pt")):
        proc = subprocess.run(example + extra, capture_output=True, text=True, env=env, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert f"400 examples from {name}" in proc.stdout and "fixed rows unchanged: 2532/2532" in proc.stdout


def test_options_cross_every_command_that_takes_them(small, cli):
    tree = small["dir"] / "tree"
    tree.mkdir()
    np.save(tree / "input_ids.npy", np.array([[1, 2], [3, -100]]))
    (tree / "README.md").write_text("not data\n")
    run = small["dir"] / "run"
    assert cli("build", "--vocab", small["vocab"], "--vectors", small["vectors"], "--out", run, "-q")[0] == 0
    from reindex import load_run

    to_sorted = load_run(run).original_to_sorted
    common = ["--include", "*.npy", "--ignore-index", "-100", "--workers", "1"]
    for command in ("remap", "invert"):
        code, out, err = cli(command, run, tree, "--out", small["dir"] / command, *common, "-q", "--json")
        assert code == 0 and err == "" and json.loads(out)["num_ids"] == 4
    assert np.load(small["dir"] / "remap" / "tree" / "input_ids.npy").tolist() == [[to_sorted[1], to_sorted[2]],
                                                                          [to_sorted[3], -100]]
    assert np.load(small["dir"] / "invert" / "tree" / "input_ids.npy")[1, 1] == -100
    code, out, err = cli("inspect", run, tree, "--include", "*.npy", "--ignore-index", "-100", "-q", "--json")
    assert code == 0 and err == "" and json.loads(out)["corpus"]["tokens"] == 3
    code, out, err = cli("inspect", run, "-q")
    assert code == 0 and out == "" and err == ""
    code, _, err = cli("inspect", run, tree, "-v", "--ignore-index", "-100")
    assert code == 0 and f"note: skipping {tree / 'README.md'}" in err and f"{tree / 'input_ids.npy'}: 4 ids" in err
    for command in ("build", "export", "verify"):
        code, out, _ = cli(command, "--help")
        assert all(flag in out for flag in ("--json", "--quiet", "-q", "--verbose", "-v", "-h"))


def test_build_uses_arrows_system_allocator_unless_the_user_chose_one():
    """The CLI's build gives its per-block Arrow buffers back at once (see `_system_allocator_for_arrow`);
    a pool the user named in ARROW_DEFAULT_MEMORY_POOL is left alone."""
    import os
    import subprocess
    import sys

    code = ("from reindex import cli; cli.system_allocator_for_arrow(); "
            "import pyarrow as pa; print(pa.default_memory_pool().backend_name)")
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    ours = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert ours.stdout.strip() == "system"
    chosen = subprocess.run([sys.executable, "-c", code], env={**env, "ARROW_DEFAULT_MEMORY_POOL": "mimalloc"},
                            capture_output=True, text=True, check=True)
    assert chosen.stdout.strip() == "mimalloc"
