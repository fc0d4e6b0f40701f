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

work=$(mktemp -d /tmp/stg-demo.XXXXXX)
chmod 755 "$work"
# shellcheck source=demo/clusters.sh
. "$here/demo/clusters.sh"
trap 'stop_clusters; rm -rf "$work"' EXIT

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
