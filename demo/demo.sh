#!/usr/bin/env bash
# make demo: the staging SOP end to end on two throwaway PostgreSQL clusters on loopback.
# Usage: demo/demo.sh BINDIR   (BINDIR holds the stg-* binaries; make demo passes target/release)
# Needs only Rust and the PostgreSQL server packages. Everything it creates is removed at exit.
set -euo pipefail

bins=$(cd "${1:-target/release}" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$bins:$PATH"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say()  { printf '   %s\n' "$*"; }
run()  { printf '   $ %s\n' "$*"; "$@"; }

find_pg_bindir() {
  local d
  if [ -n "${STG_PG_BINDIR:-}" ]; then echo "$STG_PG_BINDIR"; return; fi
  d=$(pg_config --bindir 2>/dev/null || true)
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return; fi
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return; fi
  d=$(ls -d /usr/pgsql-*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return; fi
  d=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
  if [ -x "$d/initdb" ]; then echo "$d"; return; fi
  echo "demo: PostgreSQL server not found; install it (Debian: apt-get install postgresql; Fedora: dnf install postgresql-server)" >&2
  exit 1
}
pgbin=$(find_pg_bindir)
export PATH="$pgbin:$PATH"

work=$(mktemp -d /tmp/stg-demo.XXXXXX)
chmod 755 "$work"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  for c in prod stg; do
    [ -d "$work/$c/data" ] && as_pg "$pgbin/pg_ctl" -D "$work/$c/data" -m immediate stop >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)); }

start_cluster() { # name -> sets port var
  local name=$1 port
  port=$(free_port)
  mkdir -p "$work/$name"
  [ "$(id -u)" = 0 ] && chown postgres: "$work/$name"
  as_pg "$pgbin/initdb" -D "$work/$name/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
  as_pg "$pgbin/pg_ctl" -D "$work/$name/data" -l "$work/$name/server.log" -w \
    -o "-p $port -c listen_addresses=127.0.0.1 -k $work/$name -c fsync=off" start >/dev/null
  echo "$port"
}

step "Two throwaway clusters on loopback: 'production' and 'staging'"
PROD_PORT=$(start_cluster prod)
STG_PORT=$(start_cluster stg)
say "production: 127.0.0.1:$PROD_PORT    staging: 127.0.0.1:$STG_PORT"
echo production > "$work/prod.environment"
echo staging > "$work/stg.environment"
say "host identity: $work/stg.environment says 'staging' (STG_ENVIRONMENT_FILE)"

prod_psql() { psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PROD_PORT" -U postgres "$@"; }
stg_psql()  { psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$STG_PORT" -U postgres "$@"; }

step "A sample FAS database on production (people, groups, memberships, sessions)"
prod_psql -d postgres -c 'CREATE DATABASE fas2'
prod_psql -d fas2 -f "$here/tests/fixtures/fas2.sql"
say "people: $(prod_psql -d fas2 -c 'SELECT count(*) FROM people')  groups: $(prod_psql -d fas2 -c 'SELECT count(*) FROM groups')  sessions: $(prod_psql -d fas2 -c 'SELECT count(*) FROM sessions')"
say "a production row: $(prod_psql -d fas2 -c "SELECT username, email, password FROM people WHERE username='user7'")"

# Each tool adds its part of the SOP as demo/steps/NN-name.sh, sourced in order with
# everything above in scope (work, PROD_PORT, STG_PORT, step, say, run, prod_psql, stg_psql).
for part in "$here"/demo/steps/*.sh; do
  [ -e "$part" ] || continue
  # shellcheck source=/dev/null
  . "$part"
done

step "Done; the clusters are removed on exit"
