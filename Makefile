# pagestream developer entry points. `make help` lists them.
SHELL := bash
.DEFAULT_GOAL := help
UV := python3 -m uv
PYTEST_ARGS ?=
# Two pytest-xdist workers, one per core: in one process the suite left a core idle much of the
# time (warm: 30.7 min in one process, 22.2 min on two workers with the CPU 93 % busy). The node
# tests run on one worker while the other works through everything else; the units and their
# order are in tests/conftest.py. `PYTEST_WORKERS=` runs the session in one process.
PYTEST_WORKERS ?= -n 2 --dist loadfile --no-loadscope-reorder

.PHONY: help bootstrap run down status test test-unit test-integration lint format clean-state

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

bootstrap: ## install system packages, uv, the Python env and the pinned Kafka/Spark artifacts
	dev/bootstrap.sh

run: bootstrap ## the main job: run manifests/local/page-views.yaml on this machine (Kafka, PostgreSQL, Prometheus, simulator, Spark)
	$(UV) run --locked pagestream up -f manifests/local/page-views.yaml

down: ## stop the local pipeline and its servers (resume with make run)
	$(UV) run --locked pagestream down

status: ## how the local pipeline is doing (rates, lag, freshness, dead letters)
	$(UV) run --locked pagestream status

test: ## the whole test suite: installs everything it needs, lints, runs unit and integration tests
	dev/bootstrap.sh --kube --browser
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .
	$(UV) run --locked mypy
	$(UV) run --locked lint-imports
	$(UV) run --locked pytest $(PYTEST_WORKERS) $(PYTEST_ARGS)

test-unit: ## fast unit tests only (no servers)
	$(UV) run --locked pytest tests/unit $(PYTEST_ARGS)

test-integration: ## integration tests against the real servers
	$(UV) run --locked pytest tests/integration $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: ## the checks make test runs before the tests: ruff lint and format, mypy, import contracts
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .
	$(UV) run --locked mypy
	$(UV) run --locked lint-imports

format: ## apply ruff's formatting and safe fixes
	$(UV) run --locked ruff format .
	$(UV) run --locked ruff check --fix .

clean-state: down ## stop the stack and delete its state (.pagestream); caches stay
	rm -rf .pagestream
