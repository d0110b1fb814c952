# The two commands a newcomer needs: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint typecheck venv clean bench reference mutation

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
	$(BIN)/ruff check src sdk tests bench tools examples deploy
	$(BIN)/ruff format --check src sdk tests bench tools examples deploy
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# The suite runs in parallel (pytest-xdist): most tests wait on sockets, servers and databases
# rather than the CPU, so three workers finish well ahead of one on two cores. Every test makes
# its own ports, databases, directories and broker names. `make test PYTEST_WORKERS=0` runs it
# in one process.
PYTEST_WORKERS ?= 3
test: $(STAMP) lint typecheck
	$(BIN)/pytest -q -rs -p no:cacheprovider -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# Regenerates the generated parts of docs/reference.md (route table, event schemas, OpenAPI),
# the webhook signature test vectors (docs/receivers.md, examples/receivers/vectors.json) and,
# when npm is there, the TypeScript SDK's types (sdk/typescript/src/generated).
reference: $(STAMP)
	$(BIN)/python tools/gen_reference.py
	$(BIN)/python tools/gen_receiver_vectors.py
	@if command -v npm >/dev/null 2>&1; then \
	  cd sdk/typescript && npm ci --prefer-offline --no-audit --no-fund && \
	  CAUSEFLOW_PYTHON=$(abspath $(BIN)/python) npm run --silent generate; \
	else echo "npm not found: sdk/typescript/src/generated was not regenerated"; fi

# Mutation testing of the pure cores ([tool.mutmut] in pyproject.toml): a fresh mutmut run,
# its per-module kill table, then tools/mutate_tables.py over the module-level tables. Fails when
# a module keeps more than 10 % of its mutants alive or a table entry can change unnoticed.
MUTATION_JOBS ?= 2
mutation: $(STAMP)
	@$(BIN)/python tools/mutate_tables.py --check
	@$(BIN)/python tools/mutation_stage.py >/dev/null
	@start=$$(date +%s); status=0; \
	echo "mutmut run in .mutation/ (log: .mutation/mutmut.log)"; \
	( cd .mutation && $(abspath $(BIN))/mutmut run --max-children $(MUTATION_JOBS) ) \
		>.mutation/mutmut.log 2>&1 || { tail -n 40 .mutation/mutmut.log; status=1; }; \
	$(BIN)/python tools/mutation_report.py --survivors || status=1; \
	$(BIN)/python tools/mutate_tables.py || status=1; \
	echo "make mutation: $$(( $$(date +%s) - start )) s"; \
	exit $$status

clean:
	rm -rf $(VENV) .causeflow .pytest_cache mutants .mutation
