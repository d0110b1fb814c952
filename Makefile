# The two commands a newcomer needs: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint typecheck venv clean bench reference

# The server and its client library (sdk/python, the causeflow-sdk distribution), both editable,
# in one pip call so that the server's `causeflow-sdk==` pin is met by this tree's copy.
$(STAMP): pyproject.toml sdk/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e sdk/python -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

serve: $(STAMP)
	$(BIN)/causeflow serve

lint: $(STAMP)
	$(BIN)/ruff check src sdk tests bench tools examples
	$(BIN)/ruff format --check src sdk tests bench tools examples
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) lint typecheck
	$(BIN)/pytest -q -rs -p no:cacheprovider $(PYTEST_ARGS)

# Regenerates the generated parts of docs/reference.md (route table, event schemas, OpenAPI) and
# the webhook signature test vectors (docs/receivers.md, examples/receivers/vectors.json).
reference: $(STAMP)
	$(BIN)/python tools/gen_reference.py
	$(BIN)/python tools/gen_receiver_vectors.py

clean:
	rm -rf $(VENV) .causeflow .pytest_cache
