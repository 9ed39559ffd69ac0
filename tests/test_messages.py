"""Issue 19, item 13: messages name the real cause and the real fix.

- Without the [hf] extra, every reader of a tokenizer (`--vocab` a tokenizer.json, a tokenizer folder
  that needs transformers, `audit`'s tokenizer) names `pip install 'reindex-vocab[hf]'`.
- A piece written twice in a tokenizer is called a duplicate, not a missing id.
- `.safetensors` ids stored as floats (BF16 included) are refused naming the dtype, by every command
  that reads DATA.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reindex.errors import ReindexError

from _runs import make_run
from conftest import ROOT

INSTALL = "pip install 'reindex-vocab[hf]'"

BLOCKER = '''
import sys
class Blocker:  # the [hf] extra not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tokenizers", "transformers"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Blocker())
'''

SCRIPT = BLOCKER + '''
from pathlib import Path
from reindex.errors import ReindexError
from reindex.vocab import read_vocab
from reindex.audit.sources import _load_tokenizer
root = Path(sys.argv[1])
for read, path in ((read_vocab, root / "tokenizer.json"), (read_vocab, root / "slow"),
                   (_load_tokenizer, root / "tokenizer.json")):
    try:
        read(path)
        print("read", path)
    except ReindexError as e:
        print(type(e).__name__, e.exit_code, e)
from reindex.cli import app
sys.argv = ["reindex", "build", "--vocab", str(root / "tokenizer.json"), "--vectors", str(root / "v.txt"),
            "--out", str(root / "out")]
app()
'''


def test_a_missing_hf_extra_names_its_install_command(tmp_path):
    from tokenizers import Tokenizer, models

    Tokenizer(models.WordLevel({"<unk>": 0, "a": 1}, unk_token="<unk>")).save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "slow").mkdir()
    (tmp_path / "slow" / "tokenizer_config.json").write_text("{}")   # read through transformers
    (tmp_path / "v.txt").write_text("a 1.0 2.0\n")
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
                            cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    lines = result.stdout.splitlines()
    assert len(lines) == 3, result.stdout + result.stderr
    assert "`tokenizers` package" in lines[0] and "`transformers` package" in lines[1], lines
    assert all(line.startswith("UsageError 2 ") and line.endswith(f"({INSTALL})") for line in lines), lines
    assert "save_pretrained" not in result.stdout
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith(f"({INSTALL})")
    assert not (tmp_path / "out").exists()


def _unigram(path: Path, pieces: list[str]) -> Path:
    from tokenizers import Tokenizer, models

    Tokenizer(models.Unigram([(p, -float(i)) for i, p in enumerate(pieces)], unk_id=0)).save(str(path))
    return path


def _duplicated_unigram(path: Path) -> Path:
    _unigram(path, ["<unk>", "a", "b", "c"])
    data = json.loads(path.read_text())
    data["model"]["vocab"][2][0] = "a"       # "a" at ids 1 and 2
    path.write_text(json.dumps(data))
    return path


def _duplicated_wordlevel(path: Path) -> Path:
    from tokenizers import Tokenizer, models

    Tokenizer(models.WordLevel({"<unk>": 0, "a": 1, "b": 2, "c": 3}, unk_token="<unk>")).save(str(path))
    path.write_text(path.read_text().replace('"b": 2', '"a": 2'))   # a JSON object with "a" twice
    assert '"a": 2' in path.read_text()
    return path


@pytest.mark.parametrize("make", [_duplicated_unigram, _duplicated_wordlevel])
def test_a_duplicated_tokenizer_piece_is_called_a_duplicate(cli, tmp_path, make):
    from reindex.vocab import read_vocab

    path = make(tmp_path / "tokenizer.json")
    with pytest.raises(ReindexError, match=r"holds the piece 'a' twice \(ids 1, 2\)") as error:
        read_vocab(path)
    assert "missing" not in str(error.value) and "placeholder" not in str(error.value)
    (tmp_path / "v.txt").write_text("a 1.0 2.0\n")
    code, _, stderr = cli("build", "--vocab", path, "--vectors", tmp_path / "v.txt", "--out", tmp_path / "out")
    assert code == 1 and "holds the piece 'a' twice" in stderr and "Traceback" not in stderr


def test_a_real_hole_in_the_ids_is_still_called_missing(tmp_path):
    from tokenizers import Tokenizer, models

    from reindex.vocab import read_vocab

    path = tmp_path / "tokenizer.json"
    Tokenizer(models.WordLevel({"<unk>": 0, "a": 1, "c": 3}, unk_token="<unk>")).save(str(path))
    with pytest.raises(ReindexError, match=r"assigns no token to id 2 .*1 missing"):
        read_vocab(path)


@pytest.mark.parametrize("dtype, name", [("bfloat16", "bfloat16|BF16"), ("float16", "float16|F16"),
                                         ("float32", "float32|F32"), ("bool", "bool|BOOL")])
def test_safetensors_ids_of_a_non_integer_dtype_are_refused_naming_it_by_every_command(cli, tmp_path, dtype, name):
    import re

    import torch
    from safetensors.torch import save_file

    make_run(tmp_path / "run")
    ids = tmp_path / "ids.safetensors"
    save_file({"input_ids": torch.tensor([[1, 2]]).to(getattr(torch, dtype))}, str(ids))
    (tmp_path / "v.txt").write_text("".join(f"tok{i}\n" for i in range(40)))
    commands = {"remap": ["remap", tmp_path / "run", ids], "invert": ["invert", tmp_path / "run", ids],
                "to-text": ["invert", tmp_path / "run", ids, "--to-text"],
                "build": ["build", "--vocab", tmp_path / "v.txt", "--vectors", tmp_path / "run", ids]}
    for command, args in commands.items():
        out = tmp_path / f"out-{command}"
        code, _, stderr = cli(*args, "--out", out)
        errors = [line for line in stderr.splitlines() if line.startswith("reindex: error: ")]
        assert code == 1 and len(errors) == 1 and "Traceback" not in stderr, (command, stderr)
        assert f"{ids}: key 'input_ids': ids must be integers, got " in errors[0], (command, errors)
        assert re.search(name, errors[0]), (command, errors)
        assert not out.exists()
