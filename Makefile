# Set-up and everyday commands. Every target creates .venv on first use and installs rtcap
# into it, so `make demo` and `make test` work on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-slow bench lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@ $(VENV)/.installed

## demo: the simulated market through the kernel: bars and indicators for MNQ and ES.
demo: $(VENV)/.installed
	$(BIN)/rtcap simulate --instruments MNQ,ES --seconds 900 --timeframes 1min,5min \
		--indicators sma:5,ema:9,rsi:14 --tail 8

## test: lint, then the whole suite (slow soak/chaos variants run in their short form).
test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

## test-slow: the long soak/chaos variants only.
test-slow: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -m slow --run-slow

## bench: throughput figures, each against a baseline measured in the same run.
bench: $(VENV)/.installed-test
	$(BIN)/python bench/kernel.py
	$(BIN)/python bench/gateway.py

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

format: $(VENV)/.installed-test
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
