#!/usr/bin/env bash
# Create .venv with keepwarm installed. Usage: scripts/bootstrap.sh [EXTRAS]  (e.g. "test")
# On a fresh Debian machine it first installs python3-venv (as root, or through sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  as_root apt-get update -qq
  as_root apt-get install -y -qq python3-venv python3-pip >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
if [ -n "$extras" ]; then
  .venv/bin/python -m pip install -q -e ".[$extras]"
else
  .venv/bin/python -m pip install -q .
fi
