# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
DEMO   ?= demo_shop

.PHONY: demo test install install-dev lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e .

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev,spark]"

demo: install
	rm -rf $(DEMO)
	$(BIN)/custintel simulate --customers 50000 --seed 7 --out $(DEMO)/data
	$(BIN)/custintel init $(DEMO) --from-simulation $(DEMO)/data
	$(BIN)/custintel run --project $(DEMO)
	$(BIN)/custintel campaign play-out winback --project $(DEMO)
	$(BIN)/custintel report --project $(DEMO)

test: install-dev
	$(BIN)/ruff check src tests benchmarks
	SPARK_LOCAL_IP=127.0.0.1 $(BIN)/pytest -q

lint: install-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: install-dev
	$(BIN)/python benchmarks/bench_ingest.py
	$(BIN)/python benchmarks/bench_simulate.py
	$(BIN)/python benchmarks/bench_features.py

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
