# `make demo`: set everything up and run `reindex build` on the sample inputs in data/.
# `make test`: set everything up and run the test suite (what .ci/run calls).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements-dev.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# The run is rebuilt only when its inputs change; a second `make demo` just checks and shows it.
demo: runs/demo/manifest.json
	$(VENV)/bin/reindex verify runs/demo
	$(VENV)/bin/reindex inspect runs/demo --top 5

# --force is safe here and only here: reindex replaces an existing --out only when it is an earlier
# run (runs/demo, written by this rule); it refuses any other folder or file, and any input.
runs/demo/manifest.json: data/vocab.txt data/vectors.txt data/train.parquet data/train.pt | $(STAMP)
	$(VENV)/bin/reindex build --vocab data/vocab.txt --vectors data/vectors.txt \
		--pad '<pad>' --lowercase-fallback --force --out runs/demo \
		data/train.parquet data/train.pt

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) runs
