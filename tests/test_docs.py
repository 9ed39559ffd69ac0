"""The README and docs/*.md work as written: every fenced bash and python block runs, in order.

The blocks of each document run on a fresh copy of the sample data (data/, examples/) in which
`runs/demo` was built by the Makefile's own `make demo` recipe, as a reader's clone is right after
`make demo`. A block whose first line is `# not run: <why>` is skipped; at most two may be.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(bash|python)\n(.*?)^```$", re.S | re.M)
NOT_RUN = "# not run:"


def code_blocks(path: Path) -> list[tuple[str, str, int]]:
    """(language, code, line number of the opening fence) of every ```bash / ```python block."""
    text = path.read_text(encoding="utf-8")
    return [(m[1], m[2], text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]


def test_code_blocks_are_found_by_hand():
    text = "a\n```bash\necho 1\n```\n\n```text\nno\n```\n```python\nprint(2)\n```\n"
    assert [(m[1], m[2]) for m in FENCE.finditer(text)] == [("bash", "echo 1\n"), ("python", "print(2)\n")]


def test_the_readme_opens_with_the_two_set_up_commands():
    language, code, _ = code_blocks(ROOT / "README.md")[0]
    commands = [line.split("#")[0].strip() for line in code.splitlines() if not line.startswith("#")]
    assert (language, commands) == ("bash", ["make demo", "make test"])


def test_at_most_two_blocks_are_not_run():
    skipped = [f"{path.name}:{line}" for path in DOCUMENTS for _, code, line in code_blocks(path)
               if code.startswith(NOT_RUN)]
    assert len(skipped) <= 2, skipped


def _make_demo_recipe() -> str:
    """The shell lines of the Makefile rule that builds runs/demo, with the venv prefix dropped."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("runs/demo/manifest.json:", 1)[1].split("\n", 1)[1].split("\n\n", 1)[0]
    return "\n".join(line.strip() for line in recipe.splitlines()).replace("$(VENV)/bin/", "")


@pytest.fixture
def clone(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A directory laid out like a clone after `make demo`; `.venv/bin/activate` puts this interpreter first."""
    for name in ("data", "examples"):
        shutil.copytree(ROOT / name, tmp_path / name)
    bin_dir = Path(sys.executable).parent
    activate = tmp_path / ".venv" / "bin" / "activate"
    activate.parent.mkdir(parents=True)
    activate.write_text(f'export PATH="{bin_dir}:$PATH"\n')
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(ROOT),
           "COLUMNS": "100"}
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", _make_demo_recipe()], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "runs" / "demo" / "manifest.json").exists()
    return tmp_path, env


WITH_CODE = [path for path in DOCUMENTS if code_blocks(path)]


@pytest.mark.slow
@pytest.mark.parametrize("document", WITH_CODE, ids=[str(p.relative_to(ROOT)) for p in WITH_CODE])
def test_every_block_runs_in_order(document, clone):
    where, env = clone
    for number, (language, code, line) in enumerate(code_blocks(document)):
        if code.startswith(NOT_RUN):
            continue
        script = where / f"block{number}.{'sh' if language == 'bash' else 'py'}"
        script.write_text(code, encoding="utf-8")
        args = ["bash", "-euo", "pipefail", str(script)] if language == "bash" else [sys.executable, str(script)]
        result = subprocess.run(args, cwd=where, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{document.name}:{line}: exit {result.returncode}\n{result.stderr[-3000:]}"


# The distribution is `reindex-vocab`; `reindex` on PyPI is another project.
WRONG = ("pip install reindex" + "[", "'reindex" + "[", '"reindex' + "[")
SKIP_DIRS = {".git", ".venv", "venv", "runs", "build", "dist", "__pycache__", "_work", "node_modules"}


def test_one_distribution_name_everywhere():
    found = []
    for path in ROOT.rglob("*"):
        if SKIP_DIRS & set(path.relative_to(ROOT).parts) or not path.is_file():
            continue
        if path.suffix not in {".py", ".md", ".toml", ".txt", ".cfg", ".sh"} and path.name not in {"Makefile", "run"}:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        found += [f"{path.relative_to(ROOT)}: {wrong}" for wrong in WRONG if wrong in text]
    assert found == []
