# labkit: `make lab` to learn, `make test` to check everything. Both set up .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# pinned so this machine takes its local CPU build; on a CUDA machine the same pin is a CUDA build
TORCH  ?= torch==2.13.0

.PHONY: setup lab test lint bench clean

setup: $(VENV)/.ready

$(VENV)/.ready: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/labkit setup
	touch $@

# Jupyter refuses to run as root unless told to (containers, cloud machines)
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: setup
	$(BIN)/jupyter lab $(ROOT_FLAG) notebooks/

lint: setup
	$(BIN)/ruff check labkit tests bench

test: lint
	$(BIN)/pytest --nbmake --nbmake-timeout=600 tests notebooks

bench: setup
	$(BIN)/python bench/bench_decode.py
	$(BIN)/python bench/bench_train.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
