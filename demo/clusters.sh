# Throwaway PostgreSQL clusters on loopback, for demo/demo.sh and bench/run.sh (sourced).
# Before sourcing: set `work` to a scratch directory. After: `pgbin` is the server's bindir,
# `start_cluster NAME` prints the port of a new cluster in $work/NAME, `stop_clusters` stops all.

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
  echo "PostgreSQL server not found; install it (Debian: apt-get install postgresql; Fedora: dnf install postgresql-server)" >&2
  return 1
}
pgbin=$(find_pg_bindir)
export PATH="$pgbin:$PATH"

# The server refuses to run as root: run it as postgres then.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

stop_clusters() {
  local d
  for d in "$work"/*/data; do
    [ -d "$d" ] && as_pg "$pgbin/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true
  done
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)); }

start_cluster() { # NAME [extra postgres -c settings...] -> prints the port
  local name=$1 port; shift
  port=$(free_port)
  mkdir -p "$work/$name"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$work/$name"; fi
  as_pg "$pgbin/initdb" -D "$work/$name/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
  as_pg "$pgbin/pg_ctl" -D "$work/$name/data" -l "$work/$name/server.log" -w \
    -o "-p $port -c listen_addresses=127.0.0.1 -k $work/$name -c fsync=off $*" start >/dev/null
  echo "$port"
}
