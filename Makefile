# Set-up and everyday commands. Every target creates .venv on first use and installs rtcap
# into it, so `make demo` and `make test` work on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-slow bench lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml setup.py rtcap/_speedups.c | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml setup.py rtcap/_speedups.c | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@ $(VENV)/.installed

DEMO := captures/demo

## demo: record 20 s of the embedded simulated market, replay it at 10x, verify, query it.
demo: $(VENV)/.installed
	rm -rf $(DEMO)
	$(BIN)/rtcap record $(DEMO) --duration 20s --rate 200 --bars 5sec,15sec
	$(BIN)/rtcap replay $(DEMO) --speed 10x --timeframes 5sec,15sec
	$(BIN)/rtcap verify $(DEMO) --speed 10x
	$(BIN)/rtcap sql $(DEMO) -c "select kind, count(*) as frames, sum(bytes) as bytes \
		from frames group by kind order by frames desc"
	$(BIN)/rtcap sql $(DEMO) -c "select symbol, count(*) as trades, sum(volume) as volume, \
		min(price) as low, max(price) as high, min(exch_time) as first, max(exch_time) as last \
		from trades group by symbol order by symbol"

## test: lint and type-check (the kernel, strictly), then the whole suite (slow soak/chaos variants run in their short form), one
## worker per core of a 2-core machine, each test file kept on one worker (its module-scoped
## captures and the Spark session are made once).
test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

## test-slow: the long soak/chaos variants only (tests/chaos and the crash/soak tests).
test-slow: $(VENV)/.installed-test
	RTCAP_FUZZ_EXAMPLES=3000 $(BIN)/python -m pytest -q -m slow --run-slow

## bench: throughput figures, each against a baseline measured in the same run.
bench: $(VENV)/.installed-test
	$(BIN)/python bench/kernel.py
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/storage.py
	$(BIN)/python bench/replay.py
	$(BIN)/python bench/analysis.py
	$(BIN)/python bench/book.py
	$(BIN)/python bench/book_replay.py
	$(BIN)/python bench/scale_out.py
	$(BIN)/python bench/record_memory.py --seconds 60
	$(BIN)/python bench/replay_memory.py --frames 1000000
	$(BIN)/python bench/roll_soak.py --seconds 120 --roll-every 20
	$(BIN)/python bench/store_sql.py
	$(BIN)/python bench/spark_bars.py
	$(BIN)/python bench/cold.py

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/mypy

format: $(VENV)/.installed-test
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
