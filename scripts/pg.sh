#!/usr/bin/env bash
# Postgres harness: prints a DATABASE_URL that answers.
#
#   1. $DATABASE_URL, when that server answers;
#   2. otherwise a private cluster in target/pg ($BANKSYNC_PG_DIR; port $BANKSYNC_PG_PORT,
#      default 55432),
#      created from the system's /usr/lib/postgresql/*/bin, installing the `postgresql`
#      package with apt-get when it is missing and we are root.
#
# Idempotent: a second run finds the running cluster and reuses it. The private cluster is
# tuned for tests (fsync off): never put data you care about in it.
# Usage: scripts/pg.sh [url|stop]      (prints progress on stderr, the URL on stdout)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pgdir="${BANKSYNC_PG_DIR:-$root/target/pg}"
port="${BANKSYNC_PG_PORT:-55432}"
say() { echo "pg: $*" >&2; }

find_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

bin=$(find_bin)
if [ -z "$bin" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "PostgreSQL binaries not found; installing the postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    bin=$(find_bin)
  fi
  if [ -z "$bin" ]; then
    say "no PostgreSQL found: install it (apt-get install postgresql) or set DATABASE_URL"
    exit 1
  fi
fi

if [ "${1:-url}" = stop ]; then
  if [ -f "$pgdir/data/postmaster.pid" ]; then
    runuser -u postgres -- "$bin/pg_ctl" -D "$pgdir/data" stop -m fast >&2 2>/dev/null \
      || "$bin/pg_ctl" -D "$pgdir/data" stop -m fast >&2
  fi
  exit 0
fi

if [ -n "${DATABASE_URL:-}" ] && "$bin/pg_isready" -q -d "$DATABASE_URL" -t 3; then
  say "using DATABASE_URL"
  echo "$DATABASE_URL"
  exit 0
fi

url="postgres://postgres@127.0.0.1:$port/postgres"
if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -t 2; then
  # Something answers: make sure it really serves queries before handing it out.
  if PGCONNECT_TIMEOUT=5 timeout 10 "$bin/psql" -q -At "$url" -c 'select 1' >/dev/null 2>&1; then
    say "reusing the private cluster on port $port"
    echo "$url"
    exit 0
  fi
  say "a server answers on port $port but does not run queries: stop it (scripts/pg.sh stop) or pick another port with BANKSYNC_PG_PORT"
  exit 1
fi

# initdb and postgres refuse to run as root: run them as the `postgres` user.
as_pg=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  as_pg=(runuser -u postgres --)
fi

mkdir -p "$pgdir"
if [ ! -f "$pgdir/data/PG_VERSION" ]; then
  say "creating a private cluster in $pgdir/data"
  rm -rf "$pgdir/data"
  mkdir -p "$pgdir/data" "$pgdir/sock"
  [ "$(id -u)" = 0 ] && chown -R postgres: "$pgdir"
  # The postgres user must be able to reach target/pg even when the checkout is root's:
  # give every ancestor folder the traverse bit (not read) if it lacks it.
  if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -w "$pgdir/data"; then
    d="$pgdir"
    while [ "$d" != / ]; do d=$(dirname "$d"); chmod o+x "$d"; done
  fi
  "${as_pg[@]}" "$bin/initdb" -D "$pgdir/data" -U postgres --auth=trust -E UTF8 --no-locale >"$pgdir/initdb.log" 2>&1 \
    || { cat "$pgdir/initdb.log" >&2; exit 1; }
fi
say "starting the private cluster on 127.0.0.1:$port"
"${as_pg[@]}" "$bin/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w -t 60 start \
  -o "-p $port -c listen_addresses=127.0.0.1 -k $pgdir/sock -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=256MB" >&2 \
  || { tail -n 30 "$pgdir/server.log" >&2; exit 1; }
echo "$url"
