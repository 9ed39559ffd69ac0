"""The command line end to end on tmp_path: the README's round trip, help texts, exit codes."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq

from conftest import DATA, ROOT


def test_round_trip_build_remap_invert_export_verify(tmp_path, cli):
    run = tmp_path / "run"
    code, out, err = cli("build", "--vocab", DATA / "vocab.txt", "--vectors", DATA / "vectors.txt",
                         "--pad", "<pad>", "--lowercase-fallback", "--id-dtype", "int32", "--out", run,
                         DATA / "train.parquet", DATA / "train.pt")
    assert code == 0, err
    assert "fixed (pretrained)" in out and "2,542" in out and "most frequent trainable tokens" in out
    built = pq.read_table(run / "data" / "train.parquet")
    assert built.schema.field("input_ids").type.value_type == "int32"

    code, _, err = cli("remap", run, DATA / "train.parquet", "--out", tmp_path / "enc", "--id-dtype", "int32")
    assert code == 0 and "remapped" in err
    assert pq.read_table(tmp_path / "enc" / "train.parquet").equals(built)

    code, _, err = cli("invert", run, tmp_path / "enc" / "train.parquet", "--out", tmp_path / "dec",
                       "--id-dtype", "int32")
    assert code == 0, err
    original = pq.read_table(DATA / "train.parquet")
    assert pq.read_table(tmp_path / "dec" / "train.parquet").equals(original)

    code, _, err = cli("export", run, "--out", tmp_path / "e.vec", "--format", "word2vec")
    assert code == 0 and "wrote 3,000 x 32 (word2vec)" in err
    assert (tmp_path / "e.vec").read_text().split("\n", 1)[0] == "3000 32"

    code, out, _ = cli("verify", run)
    assert code == 0 and out.strip() == f"{run}: ok"


def test_verify_reports_a_changed_byte(tmp_path, cli):
    run = tmp_path / "run"
    assert cli("build", "--vocab", DATA / "vocab.txt", "--vectors", DATA / "vectors.txt", "--out", run, "-q")[0] == 0
    data = bytearray((run / "vocab.txt").read_bytes())
    data[0] ^= 1
    (run / "vocab.txt").write_bytes(bytes(data))
    code, _, err = cli("verify", run)
    assert code == 1 and "vocab.txt: sha256 differs from the manifest" in err


def test_usage_errors_exit_2_in_one_line(tmp_path, cli):
    code, _, err = cli("build", "--vocab", DATA / "vocab.txt", "--vectors", DATA / "vectors.txt",
                       "--out", tmp_path / "run", "--init", "gaussian")
    assert code == 2 and "gaussian" in err
    (tmp_path / "run").mkdir()
    code, _, err = cli("build", "--vocab", DATA / "vocab.txt", "--vectors", DATA / "vectors.txt",
                       "--out", tmp_path / "run")
    assert code == 2
    assert err.strip() == f"reindex: error: {tmp_path / 'run'} already exists (choose another --out or pass --force)"


def test_inspect_plot_writes_a_png(tmp_path, cli):
    run = tmp_path / "run"
    assert cli("build", "--vocab", DATA / "vocab.txt", "--vectors", DATA / "vectors.txt", "--out", run, "-q",
               DATA / "train.parquet")[0] == 0
    code, out, err = cli("inspect", run, "--plot", tmp_path / "c.png")
    assert code == 0, err
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "corpus tokens fixed" in out


def test_python_dash_m_and_help_lists_every_command():
    proc = subprocess.run([sys.executable, "-m", "reindex", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0
    for command in ("build", "remap", "invert", "export", "inspect", "verify"):
        assert f"  {command} " in proc.stdout


def test_console_error_has_no_traceback(tmp_path):
    (tmp_path / "v.txt").write_text("a\na\n")
    proc = subprocess.run([sys.executable, "-m", "reindex", "build", "--vocab", str(tmp_path / "v.txt"),
                           "--vectors", str(DATA / "vectors.txt"), "--out", str(tmp_path / "run")],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"reindex: error: {tmp_path / 'v.txt'}:2: duplicate token 'a' (also on line 1) (each token must appear once)"]
    assert not (tmp_path / "run").exists()


def test_library_remap_on_npy_matches_table(tmp_path, cli):
    run = tmp_path / "run"
    assert cli("build", "--vocab", DATA / "vocab.txt", "--vectors", DATA / "vectors.txt", "--out", run, "-q")[0] == 0
    ids = np.random.default_rng(0).integers(0, 3000, (50, 7))
    np.save(tmp_path / "x.npy", ids)
    assert cli("remap", run, tmp_path / "x.npy", "--out", tmp_path / "o")[0] == 0
    manifest_order = np.load(tmp_path / "o" / "x.npy")
    from reindex import load_run

    assert np.array_equal(manifest_order, load_run(run).original_to_sorted[ids])
    assert json.loads((run / "manifest.json").read_text())["counts"]["vocab"] == 3000


def test_cli_commands_do_not_import_pandas(tmp_path):
    # pyarrow would import pandas (0.4-1.4 s) on its first pa.array call: a fixed cost of every command.
    probe = ("import atexit, sys; atexit.register(lambda: print('pandas loaded:', 'pandas' in sys.modules, "
             "file=sys.stderr)); sys.argv = ['reindex', *sys.argv[1:]]; from reindex.cli import main; main()")

    def stderr_of(*args: object) -> str:
        proc = subprocess.run([sys.executable, "-c", probe, *map(str, args)], capture_output=True, text=True,
                              cwd=ROOT)
        assert proc.returncode == 0, proc.stderr[-500:]
        return proc.stderr

    run = tmp_path / "run"
    log = stderr_of("build", "--vocab", DATA / "vocab.txt", "--vectors", DATA / "vectors.txt", "--out", run,
                    DATA / "train.parquet")
    assert "remapped" in log and "pandas loaded: False" in log
    log = stderr_of("remap", run, DATA / "train.parquet", "--out", tmp_path / "enc")
    assert "remapped" in log and "pandas loaded: False" in log
