#!/usr/bin/env bash
# Quickstart 2: install everything the tests need, start the servers they talk to, run them all.
# Lints (ruff), type checks (mypy --strict) and the whole pytest suite; nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
scripts/bootstrap.sh test
scripts/start-postgres.sh

.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy
.venv/bin/python -m pytest -q "$@"
