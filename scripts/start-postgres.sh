#!/usr/bin/env bash
# Make sure a PostgreSQL server answers at KEEPWARM_PG_HOST:5432 (default 127.0.0.1), trust auth.
set -euo pipefail
host="${KEEPWARM_PG_HOST:-127.0.0.1}"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if pg_isready -q -h "$host" -p 5432; then exit 0; fi
version="$(ls /etc/postgresql | sort -V | tail -n 1)"
conf="/etc/postgresql/$version/main"
# A fresh Debian install trusts only the unix socket; the tests connect over TCP as postgres.
if ! grep -q "keepwarm-tests" "$conf/pg_hba.conf"; then
  as_root sed -i '1i host all all 127.0.0.1/32 trust # keepwarm-tests' "$conf/pg_hba.conf"
fi
as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
for _ in $(seq 1 30); do
  pg_isready -q -h "$host" -p 5432 && exit 0
  sleep 1
done
echo "PostgreSQL did not start on $host:5432" >&2
exit 1
