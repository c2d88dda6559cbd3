# Two commands on a fresh machine: `make demo` runs the end-to-end demo, `make test` the tests.
# Both create .venv and install what they need first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= all

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed-$(EXTRAS)

# torch first, pinned: on these machines 2.13.0 is a CPU build on disk; an unpinned torch
# pulled in by a dependency would be a multi-GB CUDA build.
$(VENV)/.installed-$(EXTRAS): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

demo: setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/moon-features demo

test: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest

clean:
	rm -rf runs feature_repo/data feature_repo/spec.json
