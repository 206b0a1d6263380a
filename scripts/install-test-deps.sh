#!/usr/bin/env bash
# System packages the tests use: PostgreSQL (the team store) and CPython's email test messages.
set -euo pipefail
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
[ -d /usr/lib/python3.11/test/test_email/data ] || need+=(libpython3.11-testsuite)
command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
if [ "${#need[@]}" -gt 0 ]; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${need[@]}" >/dev/null
fi
