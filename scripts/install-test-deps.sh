#!/usr/bin/env bash
# System packages the tests use: PostgreSQL (the team store), Dovecot (a real IMAP server),
# Chromium (renders the digest's HTML for a screenshot), systemd-analyze (checks the unit file)
# and CPython's email test messages.
set -euo pipefail
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
[ -d /usr/lib/python3.11/test/test_email/data ] || need+=(libpython3.11-testsuite)
command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
command -v dovecot >/dev/null 2>&1 || need+=(dovecot-imapd)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
if [ "${#need[@]}" -gt 0 ]; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
    "${need[@]}" >/dev/null
fi
