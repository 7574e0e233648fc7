# The commands people type. Each one builds the Python environment first if it is missing.
.PHONY: quickstart test lint bench help

help:
	@echo "make quickstart   train, evaluate and export the quickstart pipeline on bundled data"
	@echo "make test         lint, type-check and run the whole test suite"
	@echo "make bench        run the benchmarks in benchmarks/ and print their tables"

quickstart:
	@scripts/with-env.sh dlcli run pipelines/quickstart.yaml

test:
	@scripts/with-env.sh scripts/test.sh

lint:
	@scripts/with-env.sh sh -c "ruff check dlcli tests benchmarks scripts && ruff format --check dlcli tests benchmarks scripts && mypy dlcli"

bench:
	@scripts/with-env.sh sh -c 'for b in benchmarks/*.py; do python "$$b" || exit 1; done'
