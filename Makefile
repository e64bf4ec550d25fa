# pagestream developer entry points. `make help` lists them.
SHELL := bash
.DEFAULT_GOAL := help
UV := python3 -m uv
PYTEST_ARGS ?=

.PHONY: help bootstrap run down status test test-unit test-integration lint format clean-state

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

bootstrap: ## install system packages, uv, the Python env and the pinned Kafka/Spark artifacts
	dev/bootstrap.sh

run: bootstrap ## the main job: start the local platform (Kafka, PostgreSQL, Prometheus, Spark) and run it
	$(UV) run --locked pagestream up

down: ## stop every local component
	$(UV) run --locked pagestream down

status: ## show which local components run, and where
	$(UV) run --locked pagestream stack status

test: ## the whole test suite: installs everything it needs, lints, runs unit and integration tests
	dev/bootstrap.sh --kube
	$(UV) run --locked ruff check .
	$(UV) run --locked pytest $(PYTEST_ARGS)

test-unit: ## fast unit tests only (no servers)
	$(UV) run --locked pytest tests/unit $(PYTEST_ARGS)

test-integration: ## integration tests against the real servers
	$(UV) run --locked pytest tests/integration $(PYTEST_ARGS)

lint: ## ruff lint and format check
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .

format: ## apply ruff's formatting and safe fixes
	$(UV) run --locked ruff format .
	$(UV) run --locked ruff check --fix .

clean-state: down ## stop the stack and delete its state (.pagestream); caches stay
	rm -rf .pagestream
