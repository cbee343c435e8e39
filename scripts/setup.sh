#!/usr/bin/env bash
# Installs the system packages Tidemark's tests and local runtime need (Debian/Ubuntu).
# Idempotent and quick when nothing is missing: only cheap file checks, no dpkg or apt calls,
# because `npm test` runs it every time.
set -euo pipefail

PATH="$PATH:/usr/sbin:/sbin"

have() { command -v "$1" >/dev/null 2>&1; }
have_all() {
  local tool
  for tool in "$@"; do have "$tool" || return 1; done
}

# The server binaries live in a per-version directory, not on PATH (Debian layout).
have_pg_server() {
  local dir dirs=(/usr/lib/postgresql/*/bin)
  [[ -n "${TIDEMARK_PG_BINDIR:-}" ]] && dirs=("$TIDEMARK_PG_BINDIR" "${dirs[@]}")
  for dir in "${dirs[@]}"; do
    [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]] && return 0
  done
  return 1
}

missing=()
if ! have_pg_server || ! have_all pg_dump pg_restore psql pgbench; then
  missing+=(postgresql postgresql-contrib)
fi
have_all mariadbd mariadb-install-db || missing+=(mariadb-server)
have_all mariadb mariadb-dump mariadb-admin mariadb-binlog || missing+=(mariadb-client)
have mariadb-backup || missing+=(mariadb-backup)
have zstd || missing+=(zstd)
# mydumper/myloader: a contender in the MySQL benchmark (npm run bench:mysql), nothing else needs it.
have_all mydumper myloader || missing+=(mydumper)
# The report test opens the page in a real browser (playwright-core drives Debian's chromium).
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
# The physical benchmark's reference (npm run bench:physical): pgBackRest 2.45 from Debian 12.
have pgbackrest || missing+=(pgbackrest)

# Node 22, the worker image's and the Lambdas' runtime: tests run the paths only it takes (zlib's zstd)
# and `npm run test:node22` runs the suite on it. From the npm registry into .cache/node22, once.
"$(dirname "$0")/node22.sh" >/dev/null

if ((${#missing[@]} == 0)); then
  echo "setup: all system packages present"
  exit 0
fi

if ((EUID == 0)); then
  as_root=()
elif have sudo; then
  as_root=(sudo)
else
  echo "setup: need root or sudo to install: ${missing[*]}" >&2
  exit 1
fi

# Tests start their own throwaway servers; the package scripts must not start (or restart) the
# machine's database services. A policy-rc.d that already exists is the machine's and is kept.
policy=/usr/sbin/policy-rc.d
if [[ ! -e "$policy" ]]; then
  "${as_root[@]}" sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
  trap '"${as_root[@]}" rm -f "$policy"' EXIT
fi

echo "setup: installing ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "setup: done"
