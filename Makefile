# The two commands a newcomer needs: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint typecheck venv clean bench reference mutation

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

serve: $(STAMP)
	$(BIN)/causeflow serve

lint: $(STAMP)
	$(BIN)/ruff check src tests bench tools examples
	$(BIN)/ruff format --check src tests bench tools examples
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) lint typecheck
	$(BIN)/pytest -q -rs -p no:cacheprovider $(PYTEST_ARGS)

# Regenerates the generated parts of docs/reference.md (route table, event schemas, OpenAPI).
reference: $(STAMP)
	$(BIN)/python tools/gen_reference.py

# Mutation testing of the pure cores ([tool.mutmut] in pyproject.toml): a fresh mutmut run,
# its per-module kill table, then tools/mutate_tables.py over the module-level tables. Fails when
# a module keeps more than 10 % of its mutants alive or a table entry can change unnoticed.
MUTATION_JOBS ?= 2
mutation: $(STAMP)
	@$(BIN)/python tools/mutate_tables.py --check
	@rm -rf mutants && mkdir mutants
	@start=$$(date +%s); status=0; \
	echo "mutmut run (log: mutants/mutmut.log)"; \
	$(BIN)/mutmut run --max-children $(MUTATION_JOBS) >mutants/mutmut.log 2>&1 \
		|| { tail -n 40 mutants/mutmut.log; status=1; }; \
	$(BIN)/python tools/mutation_report.py --survivors || status=1; \
	$(BIN)/python tools/mutate_tables.py || status=1; \
	echo "make mutation: $$(( $$(date +%s) - start )) s"; \
	exit $$status

clean:
	rm -rf $(VENV) .causeflow .pytest_cache mutants
