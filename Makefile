# labkit: `make lab` to learn, `make test` to check everything. Both set up .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# pinned so this machine takes its local CPU build; on a CUDA machine the same pin is a CUDA build
TORCH  ?= torch==2.13.0
# every package at the version the suite last passed with: a classroom's installs are all alike
PIP    := $(BIN)/pip install -q -c constraints.txt

.PHONY: setup lab test test-install lint bench clean

setup: $(VENV)/.ready

$(VENV)/.ready: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) "$(TORCH)"
	$(PIP) -e ".[dev]"
	$(BIN)/labkit setup
	touch $@

# Jupyter refuses to run as root unless told to (containers, cloud machines)
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: setup
	$(BIN)/jupyter lab $(ROOT_FLAG) notebooks/

lint: setup
	$(BIN)/ruff check labkit tests bench notebooks/solutions notebooks/zh/build.py notebooks/zh/font.py

# The test-size profile (LABKIT_PROFILE=ci: the lessons' smallest experiments, same code) is chosen here, so a
# newcomer's `make test` and .ci/run test the same sizes; a student's JupyterLab keeps the full ones.
# LABKIT_GENERATION_CACHE: the suite runs each lesson several ways (locally, on `labkit serve`, on a fake OpenAI,
# in Chinese) with the same seeded requests; each request and each fine-tuning run is computed once
# (labkit/engine/replay.py). Unit tests turn it off for themselves.
test: lint
	LABKIT_PROFILE=ci LABKIT_GENERATION_CACHE=1 $(BIN)/pytest --nbmake --nbmake-timeout=600 --durations=15 -m "not install" tests notebooks

# labkit installed with `pip install .` into a clean venv serves a chat answer (about 1.5 minutes; .ci/run runs it)
test-install: setup
	$(BIN)/pytest -m install tests/test_install.py

bench: setup
	$(BIN)/python bench/bench_decode.py
	$(BIN)/python bench/bench_train.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
