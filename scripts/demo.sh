#!/usr/bin/env bash
# Quickstart 1: install keepwarm into .venv and run the demo on a generated mailbox and calendar.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/keepwarm demo "$@"
