# `make demo`: a .venv with the runtime dependencies only, then `reindex build` on the sample inputs in data/.
# `make test`: the development set-up on top (test tools, gensim, datasets, lightning, ray, matplotlib),
#              then the test suite (what .ci/run calls).
# `make check`: the loop to run often: ruff, mypy, then the tests not marked `slow` (`make fast`).
VENV ?= .venv
PY := $(VENV)/bin/python
RUNTIME := $(VENV)/.runtime
DEV := $(VENV)/.dev
# More pytest options, e.g. `make test PYTEST_ARGS="-n 2 --dist loadfile"` (pytest-xdist: a file's
# tests stay in one process, so Ray and the two-process DDP run start once).
PYTEST_ARGS ?=

.PHONY: setup demo test check lint typecheck fast bench clean

setup: $(DEV)

$(RUNTIME): pyproject.toml requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(RUNTIME)

$(DEV): $(RUNTIME) requirements-dev.txt
	@# zstd, the system tool: a vector-reader test reads the frames it writes
	command -v zstd >/dev/null || { apt-get update -qq && apt-get install -y -qq zstd; }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(DEV)

# The run is rebuilt only when its inputs change; a second `make demo` just checks and shows it.
demo: runs/demo/manifest.json
	$(VENV)/bin/reindex verify runs/demo
	$(VENV)/bin/reindex inspect runs/demo --top 5

# --force is safe here and only here: reindex replaces an existing --out only when it is an earlier
# run (runs/demo, written by this rule); it refuses any other folder or file, and any input.
runs/demo/manifest.json: data/vocab.txt data/vectors.txt data/train.parquet data/train.pt | $(RUNTIME)
	$(VENV)/bin/reindex build --vocab data/vocab.txt --vectors data/vectors.txt \
		--pad '<pad>' --case-fallback --force --out runs/demo \
		data/train.parquet data/train.pt

test: lint typecheck
	$(PY) -m pytest -q $(PYTEST_ARGS)

check: lint typecheck fast

lint: $(DEV)
	$(PY) -m ruff check .

typecheck: $(DEV)
	$(PY) -m mypy

# Every module under reindex/ is imported and exercised here; the tests marked `slow` (seconds each:
# fresh processes, races, memory caps, DDP, Ray, torch.compile, the examples) run in `make test`.
fast: $(DEV)
	$(PY) -m pytest -q -n 2 -m "not slow" $(PYTEST_ARGS)

bench: $(DEV)
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) runs
