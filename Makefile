# The two commands a newcomer needs: `make demo` (the main job) and `make test` (the suite).
.PHONY: demo test lint bench bootstrap

bootstrap:
	./scripts/bootstrap.sh

# The embedded server (SQLite + a local origin under reelforge-data/, jobs in-process); once
# ready it publishes the project's sample clip as the `demo` account and prints where to play it.
demo: bootstrap
	.venv/bin/reelforge serve --demo

# PYTEST_ARGS (empty: the whole suite) narrows a run, e.g. scripts/fresh-machine-check.sh's subset.
PYTEST_ARGS ?=
test: bootstrap
	.venv/bin/python -m pytest -q $(PYTEST_ARGS)

lint: bootstrap
	.venv/bin/ruff check .

bench: bootstrap
	.venv/bin/python bench/run.py --seconds 30 --rounds 5
