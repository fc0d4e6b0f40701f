#!/usr/bin/env bash
# make bench: stg against today's procedure and the uncompressed floor, on the same data, in
# one run; every figure is reported as a ratio to a baseline measured in this run.
# Usage: bench/run.sh BINDIR [PEOPLE]   (BINDIR holds the stg-* release binaries)
#   PEOPLE  rows of the generated people table (default 220000, about 300 MB on disk);
#           a second database at a quarter of that size measures memory at two sizes, and
#           carries the rate-limited link runs and zstd:19 (which would take minutes on fas2).
#   BENCH_ZSTD19_FULL=1  run zstd:19 on the full database too (about 4 minutes at 220000).
#   BENCH_ONLY=age  run the stg-age section alone and print its rows (docs/benchmarks.md is
#           left as it is).
#   BENCH_ONLY=sync  the floor, then unmasked and masked syncs alternating BENCH_RUNS times
#           (default 3), and print the medians and ratios (docs/benchmarks.md is left as it is).
# Writes docs/benchmarks.md and prints it. Needs the PostgreSQL server packages, xz, zstd,
# python3; the link runs need pv (skipped with a note without it); the probe part needs root
# (a network namespace), and is skipped with a note without it.
set -euo pipefail

bins=$(cd "${1:-target/release}" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
PEOPLE=${2:-${PEOPLE:-220000}}
SMALL=$((PEOPLE / 4))
export PATH="$bins:$PATH"
out_md="$here/docs/benchmarks.md"
bench_t0=$(date +%s)

for tool in xz zstd python3 ssh-keygen; do
  command -v "$tool" >/dev/null || { echo "bench: $tool not found; install the $tool package" >&2; exit 2; }
done

work=$(mktemp -d /var/tmp/stg-bench.XXXXXX)
chmod 755 "$work"
# shellcheck source=demo/clusters.sh
. "$here/demo/clusters.sh"
netns=""
rss_pid=""
cleanup() {
  if [ -n "$rss_pid" ]; then kill "$rss_pid" 2>/dev/null || true; fi
  stop_clusters
  [ -n "$netns" ] && ip netns del "$netns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

log() { printf '%s bench: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
size_of() { stat -c %s "$1"; }
# "met" or "MISSED": VALUE OP LIMIT, OP one of <= >= <
verdict() { python3 -c "print('met' if $1 $2 $3 else 'MISSED')"; }

# The levels stg-dump uses when none is given, from its own help (zstd:3 and xz:0, as
# documented, when the help's wording no longer matches; the page then says so).
dump_help=$(stg-dump --help | tr -s ' \n' ' ')
default_level=$(grep -o 'default zstd:[0-9]*' <<<"$dump_help" | head -1 | cut -d: -f2 || true)
default_preset=$(grep -o -e 'default xz:[0-9]' -e 'xz alone is xz:[0-9]' <<<"$dump_help" | head -1 | cut -d: -f2 || true)
levels_note='(its `--help`)'
if [ -z "$default_level" ] || [ -z "$default_preset" ]; then
  levels_note='(assumed: `stg-dump --help` did not name them in a form this script reads)'
  log "stg-dump --help names no default level; assuming zstd:${default_level:-3} and xz:${default_preset:-0}"
fi
default_c="zstd:${default_level:-3}"
xz_c="xz:${default_preset:-0}"
threads=$(nproc)

# 7. stg-age on a tree the size of a real infrastructure repository (44,000 commits, 4,300
#    files, about 800 conditions): cold (no cache), cold filling the cache, warm (nothing
#    changed) and incremental (5 new commits) runs, against `git blame -w -M -C` of each
#    file with a condition in turn. Every cached run's dates are compared with a run
#    without the cache on the same tree; the cold run's with plain git blame on the sample.
#    Sets age_line (the Hot paths rows). BENCH_ONLY=age runs this section alone.
age_section() {
  local repo="$work/ansible" c="$work/age-cache" n_files sample t0
  log "stg-age: generating a repository (44,000 commits, 4,300 files, about 800 conditions)"
  conditions=$(python3 "$here/bench/gen_repo.py" "$repo" 44000 4300 800)
  run_age() { stg-age --repo "$repo" --now 2026-01-01T00:00:00Z --format json "$@" || true; }
  log "stg-age: cold, without the cache"
  t0=$(now); STG_AGE_DEBUG=1 run_age --no-cache > "$work/age.cold.json" 2> "$work/age.cold.err"; t_age_cold=$(elapsed "$t0" "$(now)")
  traced=$(grep -o 'traced .* whole' "$work/age.cold.err" | head -1)
  log "stg-age: $traced"
  log "stg-age: cold, dating with git blame only (STG_AGE_TRACE=0: the way before the trace)"
  t0=$(now); STG_AGE_TRACE=0 run_age --no-cache > "$work/age.blameonly.json"; t_age_blameonly=$(elapsed "$t0" "$(now)")
  log "stg-age: cold, filling the cache"
  t0=$(now); run_age --cache "$c" > "$work/age.fill.json"; t_age_fill=$(elapsed "$t0" "$(now)")
  log "stg-age: warm"
  t0=$(now); run_age --cache "$c" > "$work/age.warm.json"; t_age_warm=$(elapsed "$t0" "$(now)")
  python3 "$here/bench/gen_repo.py" --more "$repo" 5
  log "stg-age: incremental (5 new commits)"
  t0=$(now); run_age --cache "$c" > "$work/age.incr.json"; t_age_incr=$(elapsed "$t0" "$(now)")
  log "stg-age: cold after the new commits, the reference for the incremental run"
  t0=$(now); run_age --no-cache > "$work/age.cold2.json"; t_age_cold2=$(elapsed "$t0" "$(now)")
  read -r d_only_n d_only < <(python3 "$here/bench/compare_blame.py" --runs "$work/age.blameonly.json" "$work/age.cold.json")
  read -r d_fill_n d_fill < <(python3 "$here/bench/compare_blame.py" --runs "$work/age.cold.json" "$work/age.fill.json")
  read -r d_warm_n d_warm < <(python3 "$here/bench/compare_blame.py" --runs "$work/age.cold.json" "$work/age.warm.json")
  read -r d_incr_n d_incr < <(python3 "$here/bench/compare_blame.py" --runs "$work/age.cold2.json" "$work/age.incr.json")
  # Whole-file blame of every file with a condition (about 360) takes many minutes: one in
  # ten of them, scaled by ten, on the tree the cold runs saw (HEAD~5). Dates compared on
  # that sample.
  mkdir -p "$work/blame"
  git -C "$repo" grep -l -E "env [!=]= [\"']staging[\"']" HEAD~5 -- | sed 's/^[^:]*://' > "$work/age.files"
  n_files=$(wc -l < "$work/age.files")
  awk 'NR % 10 == 1' "$work/age.files" > "$work/age.sample"
  sample=$(wc -l < "$work/age.sample")
  log "stg-age: git blame -w -M -C of $sample of $n_files files"
  t0=$(now)
  while read -r f; do
    git -C "$repo" blame -w -M -C --porcelain HEAD~5 -- "$f" > "$work/blame/${f//\//__}"
  done < "$work/age.sample"
  t_blame=$(python3 -c "print(f'{($(now) - $t0) * $n_files / $sample:.1f}')")
  read -r age_checked age_mismatch < <(python3 "$here/bench/compare_blame.py" "$work/age.cold.json" "$work/blame")
  age_line="| stg-age cold (\`--no-cache\`), 44,000 commits, 4,300 files, $conditions conditions | ${t_age_cold} s (target: at most 10 s) | git blame -w -M -C of each of the $n_files files with a condition in turn: ${t_blame} s ($sample measured, x$(python3 -c "print(round($n_files / $sample, 1))")) | $(ratio "$t_blame" "$t_age_cold")x faster; dates: $age_mismatch of $age_checked differ from git blame |
| stg-age cold, the same, every date checked (${traced}) | ${t_age_cold} s | the same run dating with \`git blame\` only (\`STG_AGE_TRACE=0\`, a blame per file over its cut-down history): ${t_age_blameonly} s | $(ratio "$t_age_blameonly" "$t_age_cold")x faster; dates: $d_only of $d_only_n differ |
| stg-age, the same, filling the cache | ${t_age_fill} s | the cold run: ${t_age_cold} s | $(ratio "$t_age_fill" "$t_age_cold")x its time; dates: $d_fill of $d_fill_n differ from the cold run |
| stg-age warm (nothing changed) | ${t_age_warm} s (target: at most 1 s) | the cold run: ${t_age_cold} s | $(ratio "$t_age_cold" "$t_age_warm")x faster; dates: $d_warm of $d_warm_n differ from the cold run |
| stg-age incremental (5 new commits, each editing a file with conditions) | ${t_age_incr} s | a cold run on the same tree: ${t_age_cold2} s | $(ratio "$t_age_cold2" "$t_age_incr")x faster; dates: $d_incr of $d_incr_n differ from that cold run |"
}

if [ "${BENCH_ONLY:-}" = age ]; then
  age_section
  printf '%s\n' "$age_line"
  exit 0
fi

# autovacuum is off in both clusters: one run's background vacuum of what it loaded would land
# in a later run's time (on 2 cores, a whole core); the generated databases are vacuumed once
# instead, so that no run (the floor, first) pays for setting their hint bits.
settings="-c shared_buffers=256MB -c max_wal_size=4GB -c checkpoint_timeout=30min -c synchronous_commit=off -c full_page_writes=off -c autovacuum=off"
PROD=$(start_cluster prod "$settings")
STG=$(start_cluster stg "$settings")
echo staging > "$work/stg.environment"
export STG_ENVIRONMENT_FILE="$work/stg.environment"
(umask 077; head -c 32 /dev/urandom | base64 > "$work/mask.key")  # stg-dump refuses a key others can read
# A signing key and the staging side's trust file, for the signed syncs.
ssh-keygen -q -t ed25519 -N '' -C bench -f "$work/sign" >/dev/null
printf 'bench namespaces="stg-stream" %s\n' "$(cut -d' ' -f1,2 "$work/sign.pub")" > "$work/allowed_signers"
prod() { psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PROD" -U postgres "$@"; }
stg()  { psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$STG" -U postgres "$@"; }
stg -d postgres -c 'CREATE ROLE fas2 LOGIN'

gen() { # DB PEOPLE
  prod -d postgres -c "CREATE DATABASE $1"
  prod -d "$1" -v people="$2" -f "$here/bench/fas_data.sql" >/dev/null
  prod -d "$1" -c VACUUM
}
log "generating fas2 ($PEOPLE people) and fas2_small ($SMALL people)"
gen fas2 "$PEOPLE"
gen fas2_small "$SMALL"
db_size=$(prod -d postgres -c "SELECT pg_size_pretty(pg_database_size('fas2'))")
small_size=$(prod -d postgres -c "SELECT pg_size_pretty(pg_database_size('fas2_small'))")

rss_start() { # LABEL [PROCESS NAMES...] (default: stg-dump stg-restore)
  local label=$1; shift
  [ $# -gt 0 ] || set -- stg-dump stg-restore
  python3 "$here/bench/peak_rss.py" "$work/rss.$label" "$@" & rss_pid=$!
}
rss_stop() { kill "$rss_pid"; wait "$rss_pid" 2>/dev/null || true; rss_pid=""; }
rss_kib() { awk -v n="$2" '$1 == n { print $2 }' "$work/rss.$1"; }
rss_of() { awk -v n="$2" '$1 == n { printf "%.1f", $2 / 1024 }' "$work/rss.$1"; }
# MiB, and a mark when over the 64 MiB bound.
rss_cell() { awk -v n="$2" '$1 == n { printf "%.1f MiB%s", $2 / 1024, ($2 > 65536 ? " **(over 64 MiB)**" : "") }' "$work/rss.$1"; }
report_field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2]))" "$1" "$2"; }

# 1. The uncompressed floor: pg_dump | psql into a fresh database.
log "floor: pg_dump | psql"
stg -d postgres -c 'CREATE DATABASE floor OWNER fas2'
t0=$(now)
pg_dump -h 127.0.0.1 -p "$PROD" -U postgres fas2 | stg -d floor >/dev/null
t_floor=$(elapsed "$t0" "$(now)")
floor_people=$(stg -d floor -c 'SELECT count(*) FROM people')
stg -d postgres -c 'DROP DATABASE floor'

if [ "${BENCH_ONLY:-}" != sync ]; then
# 2. The SOP as written: pg_dump -C | xz -c > file; drop; xzcat file | psql. The dump part
#    alone is timed too (and xz's memory), as the reference row of the level table.
log "SOP: pg_dump -C | xz -c > file; dropdb; xzcat | psql"
rss_start sop xz
t0=$(now)
TIMEFORMAT='%U %S'
{ time pg_dump -C -h 127.0.0.1 -p "$PROD" -U postgres fas2 | xz -c > "$work/fas2.dump.xz"; } 2> "$work/cpu.sop"
t1=$(now)
rss_stop
stg -d postgres -c 'DROP DATABASE IF EXISTS fas2'
xzcat "$work/fas2.dump.xz" | stg -d postgres >/dev/null
t_sop=$(elapsed "$t0" "$(now)")
t_sop_dump=$(elapsed "$t0" "$t1")
rss_xz=$(rss_kib sop xz)
sop_bytes=$(size_of "$work/fas2.dump.xz")
t0=$(now)
xz -T1 -dc "$work/fas2.dump.xz" > /dev/null
t_sop_dec=$(elapsed "$t0" "$(now)")

# pg_dump alone, the baseline of every stg-dump time below.
log "pg_dump alone (fas2, fas2_small) > /dev/null"
t0=$(now)
{ time pg_dump -h 127.0.0.1 -p "$PROD" -U postgres fas2 > /dev/null; } 2> "$work/cpu.pgdump"
t_pgdump=$(elapsed "$t0" "$(now)")
cpu_sum() { awk '{ printf "%.2f", $1 + $2 }' "$work/cpu.$1"; }
cpu_sop=$(cpu_sum sop)
cpu_pgdump=$(cpu_sum pgdump)
t0=$(now)
pg_dump -h 127.0.0.1 -p "$PROD" -U postgres fas2_small > /dev/null
t_pgdump_small=$(elapsed "$t0" "$(now)")
fi  # not BENCH_ONLY=sync

# 3. stg-dump | stg-restore at the default level and with --compress xz, unmasked, masked and
#    on the small database (each replaces the previous copy). Every run's people are counted.
# Every stg-restore here loads as its load role (a role that is not a superuser); the signed
# runs also sign in stg-dump and check each part against the trust file in stg-restore.
sync_run() { # LABEL DB [stg-dump args...]
  local label=$1 db=$2; shift 2
  local restore_args=()
  case $label in signed*) set -- --signing-key "$work/sign" "$@"; restore_args=(--allowed-signers "$work/allowed_signers") ;; esac
  log "stg: $label"
  rss_start "$label"
  local t0; t0=$(now)
  stg-dump -h 127.0.0.1 -p "$PROD" -U postgres "$@" "$db" \
    | stg-restore -h 127.0.0.1 -p "$STG" -U postgres --no-keep "${restore_args[@]}" > "$work/report.$label.json"
  elapsed "$t0" "$(now)" > "$work/time.$label"
  rss_stop
  stg -d "$db" -c 'SELECT count(*) FROM people' > "$work/people.$label"
}
masking=(--mask "$here/bench/fas_rules.json" --key-file "$work/mask.key")
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
if [ "${BENCH_ONLY:-}" = sync ]; then
  # Alternating runs, so a load that comes and goes weighs on both sides alike.
  for i in $(seq "${BENCH_RUNS:-3}"); do
    sync_run "unmasked$i" fas2
    sync_run "signed$i" fas2
    sync_run "masked$i" fas2 "${masking[@]}"
  done
  t_u=$(cat "$work"/time.unmasked* | median)
  t_s=$(cat "$work"/time.signed* | median)
  t_m=$(cat "$work"/time.masked* | median)
  echo "floor (pg_dump | psql): ${t_floor} s"
  echo "unmasked sync, median of ${BENCH_RUNS:-3}: ${t_u} s ($(ratio "$t_u" "$t_floor")x the floor); people: $(cat "$work/people.unmasked1")"
  echo "masked sync, median of ${BENCH_RUNS:-3}: ${t_m} s ($(ratio "$t_m" "$t_floor")x the floor); people: $(cat "$work/people.masked1")"
  echo "masked vs unmasked: $(ratio "$t_m" "$t_u") (target: at most 1.15)"
  echo "signed sync, median of ${BENCH_RUNS:-3}: ${t_s} s ($(ratio "$t_s" "$t_floor")x the floor); signed by: $(report_field "$work/report.signed1.json" signed_by); load role: $(report_field "$work/report.signed1.json" load_role)"
  echo "signed vs unsigned: $(ratio "$t_s" "$t_u") (target: at most 1.03)"
  echo "stg-restore steps of the last unmasked run (ms): $(report_field "$work/report.unmasked${BENCH_RUNS:-3}.json" timings_ms)"
  exit 0
fi
# Unmasked and masked alternate, three pairs, and the medians are compared: one pair varies
# by 20% on a shared machine, more than the masking costs.
sync_run unmasked fas2
sync_run signed fas2
sync_run masked fas2 "${masking[@]}"
for i in 2 3; do
  sync_run "unmasked_$i" fas2
  sync_run "signed_$i" fas2
  sync_run "masked_$i" fas2 "${masking[@]}"
done
sync_run small fas2_small
sync_run xz fas2 --compress xz
sync_run xz_masked fas2 --compress xz "${masking[@]}"
sync_run xz_small fas2_small --compress xz
t_unmasked=$(cat "$work"/time.unmasked "$work"/time.unmasked_? | median)
t_masked=$(cat "$work"/time.masked "$work"/time.masked_? | median)
t_signed=$(cat "$work"/time.signed "$work"/time.signed_? | median)
t_xz=$(cat "$work/time.xz")
t_xz_masked=$(cat "$work/time.xz_masked")
sync_loaded() { # LABEL EXPECTED -> "N people, zstd stream" (flagged when N or the format is wrong)
  local n f; n=$(cat "$work/people.$1"); f=$(report_field "$work/report.$1.json" format)
  if [ "$n" = "$2" ]; then printf '%s people, %s stream' "$n" "$f"
  else printf '**%s people, expected %s**, %s stream' "$n" "$2" "$f"; fi
}

# 3b. The levels: stg-dump --compress C db > file (its own wall time, CPU and memory), the
#     bytes, and the stream decoded alone, one thread, as stg-restore's reader does. A level
#     stg-dump refuses gets its refusal in the table and, for reference, the zstd CLI at that
#     level with one thread on the same plain SQL. zstd:19 runs on the small database unless
#     BENCH_ZSTD19_FULL=1 (on fas2 it alone takes minutes).
: > "$work/levels.tsv"
accepted=" "
decode_of() { # FILE COMPRESSION -> seconds to decode it alone, one thread
  local t0; t0=$(now)
  case $2 in
    xz*) xz -T1 -dc "$1" > /dev/null ;;
    *) zstd -q -dc "$1" > /dev/null ;;
  esac
  elapsed "$t0" "$(now)"
}
level_row() { # LABEL COMPRESSION full|small WALL PROCESS TOOL NOTE
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$(size_of "$work/lvl.$1")" \
    "$(rss_kib "lvl.$1" "$5")" "$(decode_of "$work/lvl.$1" "$2")" "$(cpu_sum "lvl.$1")" "$6" "$7" >> "$work/levels.tsv"
}
level_run() { # LABEL DB full|small COMPRESSION; returns 1 when stg-dump refuses the level
  local label=$1 db=$2 size=$3 c=$4 t0 t TIMEFORMAT='%U %S'
  log "level: stg-dump --compress $c $db > file; decode alone"
  rss_start "lvl.$label" stg-dump
  t0=$(now)
  if { time stg-dump -h 127.0.0.1 -p "$PROD" -U postgres --compress "$c" "$db" > "$work/lvl.$label" \
         2> "$work/err.lvl.$label"; } 2> "$work/cpu.lvl.$label"; then
    t=$(elapsed "$t0" "$(now)")
    rss_stop
    cat "$work/err.lvl.$label" >&2
    level_row "$label" "$c" "$size" "$t" stg-dump stg-dump ""
    accepted="$accepted$c "
  else
    rss_stop
    if ! grep -q 'refused' "$work/err.lvl.$label"; then
      cat "$work/err.lvl.$label" >&2
      echo "bench: stg-dump --compress $c $db failed" >&2
      exit 3
    fi
    log "level: stg-dump refuses $c"
    printf '%s\t%s\t%s\t\t\t\t\t\trefused\t%s\n' "$label" "$c" "$size" \
      "$(grep -o 'zstd level [0-9]* is refused.*' "$work/err.lvl.$label" | head -1 | tr -d '|')" >> "$work/levels.tsv"
    return 1
  fi
}
cli_run() { # LABEL full|small LEVEL SQLFILE: the zstd CLI, one thread, on plain SQL
  local label=$1 size=$2 l=$3 t0 t TIMEFORMAT='%U %S'
  log "level: zstd -$l -T1 on the plain SQL ($size), for reference"
  rss_start "lvl.$label" zstd
  t0=$(now)
  { time zstd -q "-$l" -T1 -c "$4" > "$work/lvl.$label"; } 2> "$work/cpu.lvl.$label"
  t=$(elapsed "$t0" "$(now)")
  rss_stop
  level_row "$label" "zstd:$l" "$size" "$t" zstd zstd-cli ""
}
levels="zstd:1 zstd:2 zstd:3 zstd:6 zstd:9"
case " $levels " in *" $default_c "*) ;; *) levels="$levels $default_c" ;; esac
levels=$(tr ' ' '\n' <<<"$levels" | sort -t: -k2 -n -u | tr '\n' ' ')
if [ "${BENCH_ZSTD19_FULL:-0}" = 1 ]; then levels="$levels zstd:19"; fi
refused=""
for c in $levels $xz_c; do level_run "${c/:/_}" fas2 full "$c" || refused="$refused ${c#zstd:}"; done
level_run small_default fas2_small small "$default_c"
def_label=${default_c/:/_}
xz_label=${xz_c/:/_}
stg_bytes=$(size_of "$work/lvl.$def_label")
xz_bytes=$(size_of "$work/lvl.$xz_label")
# The plain SQL of both databases, as the streams carry it (also the restore section's file).
zstd -q -dc "$work/lvl.$def_label" > "$work/fas2.sql"
sql_bytes=$(size_of "$work/fas2.sql")
small_sql_bytes=$(report_field "$work/report.small.json" bytes)
for l in $refused; do cli_run "cli_zstd_$l" full "$l" "$work/fas2.sql"; done
if [ "${BENCH_ZSTD19_FULL:-0}" != 1 ]; then
  if ! level_run small_zstd_19 fas2_small small zstd:19; then
    zstd -q -dc "$work/lvl.small_default" > "$work/fas2_small.sql"
    cli_run cli_small_zstd_19 small 19 "$work/fas2_small.sql"
    rm -f "$work/fas2_small.sql"
  fi
fi

# 3c. The sync through a rate-limited pipe (pv -L), on the small database, for a few levels
#     stg-dump accepts: which level pays for itself on which link. The uncompressed floor goes
#     through the same links except the slowest (where it alone would take the longest of
#     all); xz:6, the smallest stream that stg-dump's refusal of high zstd levels points to,
#     only through the slowest (its dump alone takes tens of seconds).
link_rates="0 1000 100 10"  # Mbit/s; 0: no limit
link_levels=""
for c in $default_c zstd:1 zstd:3 zstd:6 zstd:9 $xz_c; do
  case "$accepted" in *" $c "*) case " $link_levels " in *" $c "*) ;; *) link_levels="$link_levels $c" ;; esac ;; esac
done
link_extra="xz:6@10"
link_part=""
if command -v pv >/dev/null; then
  : > "$work/links.tsv"
  limit() { if [ "$1" = 0 ]; then cat; else pv -q -L "$(($1 * 125000))"; fi; }
  link_run() { # COMPRESSION MBIT
    log "link ${2} Mbit/s: stg-dump --compress $1 fas2_small | pv | stg-restore"
    local t0 t n; t0=$(now)
    stg-dump -h 127.0.0.1 -p "$PROD" -U postgres --compress "$1" fas2_small | limit "$2" \
      | stg-restore -h 127.0.0.1 -p "$STG" -U postgres --no-keep > "$work/report.link.json"
    t=$(elapsed "$t0" "$(now)")
    n=$(stg -d fas2_small -c 'SELECT count(*) FROM people')
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$t" "$(report_field "$work/report.link.json" compressed_bytes)" "$n" >> "$work/links.tsv"
  }
  for m in $link_rates; do
    if [ "$m" -ge 100 ] || [ "$m" = 0 ]; then
      log "link ${m} Mbit/s: pg_dump fas2_small | pv | psql"
      stg -d postgres -c 'CREATE DATABASE link_floor OWNER fas2'
      t0=$(now)
      pg_dump -h 127.0.0.1 -p "$PROD" -U postgres fas2_small | limit "$m" | stg -d link_floor >/dev/null
      t=$(elapsed "$t0" "$(now)")
      n=$(stg -d link_floor -c 'SELECT count(*) FROM people')
      stg -d postgres -c 'DROP DATABASE link_floor'
      printf 'floor\t%s\t%s\t0\t%s\n' "$m" "$t" "$n" >> "$work/links.tsv"
    fi
    for c in $link_levels; do link_run "$c" "$m"; done
  done
  for spec in $link_extra; do link_run "${spec%@*}" "${spec#*@}"; done
  link_part=$(python3 "$here/bench/tables.py" links "$work/links.tsv" default_c="$default_c" \
    small="$SMALL" small_sql_bytes="$small_sql_bytes")
  link_tool="$(pv --version | head -1 | cut -d' ' -f1-2)"
else
  log "link runs skipped: pv not found (install the pv package)"
  link_part="Skipped: \`pv\` was not found on this machine; install the \`pv\` package (Debian and Fedora: \`pv\`) and run \`make bench\` again."
  link_tool="pv (missing)"
fi

# 4. Restore alone, from one stream file (the default level's, written above): the DBA's
#    `zstdcat | psql --single-transaction` into a fresh database, the same SQL already decoded
#    (the server's part alone), and stg-restore with one connection and with several; and the
#    --compress xz stream with stg-restore's default connections. Every target is new and is
#    dropped after its run; a CHECKPOINT before each run starts it clean.
stream="$work/lvl.$def_label"
xstream="$work/lvl.$xz_label"
jdef=$(( threads > 2 ? threads : 2 ))  # stg-restore's default --jobs
restore_jobs=1
if [ "$jdef" -gt 1 ]; then restore_jobs="$restore_jobs $jdef"; fi
if [ "$jdef" -lt 4 ]; then restore_jobs="$restore_jobs 4"; fi
fresh() { stg -d postgres -c 'SET client_min_messages = warning' -c "DROP DATABASE IF EXISTS $1" -c CHECKPOINT; }
# What a target holds: rows per table and a checksum of its schema (pg_dump's random
# \restrict key aside), to compare every restore with the baseline's.
shape() {
  stg -d "$1" -c "SELECT string_agg(format('%s %s', c.oid::regclass, (xpath('/row/n/text()',
      query_to_xml(format('SELECT count(*) AS n FROM %s', c.oid::regclass), false, true, '')))[1]),
      ', ' ORDER BY c.oid::regclass::text) FROM pg_class c WHERE c.relkind IN ('r', 'p')
      AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)"
  pg_dump -s -h 127.0.0.1 -p "$STG" -U postgres "$1" | grep -v '^\\\(un\)\?restrict ' | sha256sum | cut -c1-16
}
level_field() { awk -F'\t' -v l="$1" -v f="$2" '$1 == l { print $f }' "$work/levels.tsv"; }
t_decode=$(level_field "$def_label" 7)   # measured in 3b: zstd -dc stream > /dev/null
t_xdecode=$(level_field "$xz_label" 7)   # xz -T1 -dc xz-stream > /dev/null
decode_rate=$(python3 -c "print(f'{$sql_bytes / 1e6 / $t_decode:.1f}')")
xdecode_rate=$(python3 -c "print(f'{$sql_bytes / 1e6 / $t_xdecode:.1f}')")
log "restore: createdb; zstdcat stream | psql --single-transaction"
fresh rs_psql
stg -d postgres -c 'CREATE DATABASE rs_psql OWNER fas2'
t0=$(now)
zstdcat "$stream" | psql -X -q -v ON_ERROR_STOP=1 --single-transaction -h 127.0.0.1 -p "$STG" -U postgres -d rs_psql >/dev/null
t_rs_psql=$(elapsed "$t0" "$(now)")
shape rs_psql > "$work/shape.psql"
rs_people=$(stg -d rs_psql -c 'SELECT count(*) FROM people')
stg -d postgres -c 'DROP DATABASE rs_psql'
log "restore: the same SQL decoded beforehand | psql --single-transaction"
fresh rs_plain
stg -d postgres -c 'CREATE DATABASE rs_plain OWNER fas2'
t0=$(now)
psql -X -q -v ON_ERROR_STOP=1 --single-transaction -h 127.0.0.1 -p "$STG" -U postgres -d rs_plain < "$work/fas2.sql" >/dev/null
t_rs_plain=$(elapsed "$t0" "$(now)")
stg -d postgres -c 'DROP DATABASE rs_plain'
rm -f "$work/fas2.sql"
restore_run() { # TAG JOBS STREAM -> $work/{time,cpu,report,shape}.TAG
  local tag=$1 j=$2 file=$3 db=rs_$1 t0 TIMEFORMAT='%U %S'
  fresh "$db"
  log "restore: stg-restore --jobs $j < $(basename "$file")"
  t0=$(now)
  { time stg-restore -h 127.0.0.1 -p "$STG" -U postgres --db "$db" --jobs "$j" --no-keep \
      < "$file" > "$work/report.$tag.json" 2>&3; } 3>&2 2> "$work/cpu.$tag"
  elapsed "$t0" "$(now)" > "$work/time.$tag"
  shape "$db" > "$work/shape.$tag"
  stg -d postgres -c "DROP DATABASE $db"
}
for j in $restore_jobs; do restore_run "j$j" "$j" "$stream"; done
restore_run xz "$jdef" "$xstream"
restore_row() { # TAG LABEL
  local tag=$1 label=$2 t cpu_s load_s conns fmt same
  t=$(cat "$work/time.$tag")
  cpu_s=$(awk '{ printf "%.2f", $1 + $2 }' "$work/cpu.$tag")
  read -r load_s conns fmt < <(python3 -c "import json,sys; r = json.load(open(sys.argv[1]))
print(f\"{r['timings_ms']['load'] / 1000:.2f} {r['connections']} {r.get('format')}\")" "$work/report.$tag.json")
  if cmp -s "$work/shape.psql" "$work/shape.$tag"; then same="same rows per table and schema as the baseline"
  else same="**DIFFERS from the baseline**: $(head -1 "$work/shape.$tag")"; fi
  printf '| %s (%s stream; load phase %s s, connections opened: %s) | %s s | %s | %s s | %s |\n' \
    "$label" "$fmt" "$load_s" "$conns" "$t" "$(ratio "$t" "$t_rs_psql")" "$cpu_s" "$same"
}
restore_rows=""
for j in $restore_jobs; do
  note=""
  if [ "$j" -eq "$jdef" ]; then note=", stg-restore's default (the $threads cores, at least 2)"; fi
  if [ "$j" -gt "$threads" ]; then note="$note, more connections than the $threads cores this machine has"; fi
  restore_rows+="$(restore_row "j$j" "\`stg-restore --jobs $j < stream\`$note")"$'\n'
done
restore_rows+="$(restore_row xz "\`stg-restore --jobs $jdef < xz-stream\`: the \`--compress xz\` stream of the same data")"
t_rs_j1=$(cat "$work/time.j1")
cpu_j1=$(awk '{ printf "%.2f", $1 + $2 }' "$work/cpu.j1")
j_max=${restore_jobs##* }
t_rs_jmax=$(cat "$work/time.j$j_max")
t_rs_jdef=$(cat "$work/time.j$jdef")
t_rs_xz=$(cat "$work/time.xz")
t_slower=$(python3 -c "print(max($t_decode, $t_rs_plain))")
# Of the decoding's time, the share hidden behind the server's work in the --jobs 1 restore.
overlap=$(python3 -c "print(round(100 * min(1, max(0, ($t_decode + $t_rs_plain - $t_rs_j1) / $t_decode))))")
bound_of() { # DECODE_S NAME
  if python3 -c "import sys; sys.exit(0 if $1 >= $t_rs_plain else 1)"; then
    echo "$2 decoding ($1 s) is slower than the server's load ($t_rs_plain s), so the decoder bounds the restore: more connections cannot help until decoding gets faster."
  else
    echo "$2 decoding ($1 s) is faster than the server's load ($t_rs_plain s), so the server's COPYs and index builds bound the restore, not the decoder; more connections can shorten only their index and constraint part."
  fi
}
cpu_jdef=$(awk '{ printf "%.2f", $1 + $2 }' "$work/cpu.j$jdef")
cpu_xz=$(awk '{ printf "%.2f", $1 + $2 }' "$work/cpu.xz")
restore_bound="With the default zstd stream: $(bound_of "$t_decode" zstd) With \`--compress xz\`: $(bound_of "$t_xdecode" xz)
At the same --jobs $jdef, stg-restore used ${cpu_xz} s of CPU on the xz stream against ${cpu_jdef} s on the zstd
one: on $threads cores that decoding work is taken from the server's backends, which is why the xz
restore took $(ratio "$t_rs_xz" "$t_rs_jdef")x the zstd one."

# 5. The COPY masking path alone.
log "COPY rewriter"
copy_json=$(cd "$here" && cargo bench -q -p stg-dump --bench copy_rewrite -- 256 2>/dev/null | tail -1)
copy_field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])['$1'])" "$copy_json"; }

# 6. stg-probe: 1,000 endpoints that all time out, against a sequential connect loop.
probe_line="| stg-probe, 1,000 dropped endpoints | skipped: needs root for a network namespace | | |"
if [ "$(id -u)" = 0 ] && command -v nft >/dev/null; then
  log "stg-probe: 1,000 dropped endpoints"
  netns="stgbench$$"
  ip netns add "$netns"
  ip -n "$netns" link set lo up
  ip -n "$netns" addr add 10.231.99.1/32 dev lo
  ip netns exec "$netns" nft -f - <<'NFT'
table inet stgbench {
  chain input {
    type filter hook input priority 0;
    ip daddr 10.231.99.1 tcp dport 20000-21999 drop
  }
}
NFT
  python3 -c 'import json
for p in range(20000, 21000): print(json.dumps({"type": "target", "check": "blocked", "host": "10.231.99.1", "port": p}))' > "$work/targets.jsonl"
  t0=$(now)
  ip netns exec "$netns" stg-probe --timeout 1s --format json < "$work/targets.jsonl" > "$work/probe.json" || true
  t_probe=$(elapsed "$t0" "$(now)")
  timeouts=$(grep -c '"outcome":"timeout"' "$work/probe.json" || true)
  # The sequential baseline is linear by construction: time 20 connects, scale to 1,000.
  t0=$(now)
  ip netns exec "$netns" python3 -c 'import socket
for p in range(20000, 20020):
    s = socket.socket(); s.settimeout(1.0)
    try: s.connect(("10.231.99.1", p))
    except OSError: pass
    s.close()'
  t_seq=$(python3 -c "print(f'{($(now) - $t0) * 50:.1f}')")
  probe_line="| stg-probe, 1,000 dropped endpoints, --timeout 1s ($timeouts timeouts) | ${t_probe} s (target: under 2 s) | sequential loop: ${t_seq} s (20 measured, x50) | $(ratio "$t_seq" "$t_probe")x faster |"
fi

age_section

# Memory against the encoder's threads (the default level, fas2, dump to /dev/null).
for th in 1 4; do
  log "memory: stg-dump --threads $th fas2 > /dev/null"
  rss_start "thr$th" stg-dump
  stg-dump -h 127.0.0.1 -p "$PROD" -U postgres --threads "$th" fas2 > /dev/null
  rss_stop
done

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
t_lvl_def=$(level_field "$def_label" 4)
t_lvl_xz=$(level_field "$xz_label" 4)
side() { # DUMP_S RESTORE_S -> which side of the pipe is slower alone, and its time
  python3 -c "print('the dump side (stg-dump alone, $1 s)' if $1 >= $2 else 'the restore side (stg-restore alone, $2 s)')"
}
slower() { python3 -c "print(max($1, $2))"; }
levels_part=$(python3 "$here/bench/tables.py" levels "$work/levels.tsv" default_c="$default_c" xz_c="$xz_c" \
  sop_bytes="$sop_bytes" t_sop_dump="$t_sop_dump" t_sop_dec="$t_sop_dec" rss_xz="$rss_xz" \
  t_pgdump="$t_pgdump" t_pgdump_small="$t_pgdump_small" cpu_pgdump="$cpu_pgdump" cpu_sop="$cpu_sop" t_rs_plain="$t_rs_plain" sql_bytes="$sql_bytes" \
  small_sql_bytes="$small_sql_bytes" small="$SMALL" threads="$threads")
choice_part=$(python3 "$here/bench/tables.py" choice "$work/levels.tsv" default_c="$default_c" \
  sop_bytes="$sop_bytes" t_pgdump="$t_pgdump")
bench_minutes=$(python3 -c "print(f'{($(date +%s) - $bench_t0) / 60:.1f}')")

# The unsigned sync's ratio to the floor in the page this run replaces, for comparison.
prev_unmasked_ratio=$(python3 - "$out_md" <<'PY' 2>/dev/null || true
import re, sys
for line in open(sys.argv[1]):
    if line.startswith("| `stg-dump \\| stg-restore` (default"):
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)]
        print(f"{cells[3]}x the floor in the previous run of this page")
        break
PY
)
[ -n "$prev_unmasked_ratio" ] || prev_unmasked_ratio="no earlier run on this page"
cat > "$out_md" <<MD
# Benchmarks

Measured by \`make bench\` on $(date -u +%Y-%m-%d) — $threads cores ($cpu), $(free -g | awk '/Mem:/ {print $2}') GiB,
$(postgres --version 2>/dev/null || "$pgbin/postgres" --version), $(xz --version | head -1), $(zstd --version | sed 's/^\*\*\* //; s/, by.*//'), $link_tool, stg $(stg-dump --version | cut -d' ' -f2).
Data: \`bench/fas_data.sql\` with $PEOPLE people ($db_size on disk, $(ratio "$sql_bytes" 1000000) MB of SQL; the small run: $SMALL people, $small_size).
Every figure is a ratio to a baseline measured in the same run on the same data: absolute
times on a shared $threads-core machine are noise. Both clusters run with fsync and autovacuum off
(the generated databases are vacuumed once), so that no run's background work lands in another's
time. The whole run took $bench_minutes minutes.

stg-dump's default is \`$default_c\` $levels_note; \`--compress xz\` is \`$xz_c\`.

## Sync of one database between two local clusters

| procedure | wall time | ratio to the floor | target | loaded |
|---|---|---|---|---|
| floor: \`pg_dump db \| psql\` into a fresh database | ${t_floor} s | 1.00 | | $floor_people people |
| the SOP: \`pg_dump -C \| xz -c > file\`, drop, \`xzcat \| psql\` | ${t_sop} s | $(ratio "$t_sop" "$t_floor") | | |
| \`stg-dump \| stg-restore\` (default, \`$default_c\`), unmasked, median of 3 (alternating with the masked runs) | ${t_unmasked} s | $(ratio "$t_unmasked" "$t_floor") | <= 1.25: $(verdict "$(ratio "$t_unmasked" "$t_floor")" '<=' 1.25) | $(sync_loaded unmasked "$floor_people") |
| \`stg-dump --signing-key \| stg-restore --allowed-signers\` (default), unmasked, median of 3 (alternating): signed in parts, each checked before it runs | ${t_signed} s | $(ratio "$t_signed" "$t_floor") | at most 1.03x the unsigned: $(ratio "$t_signed" "$t_unmasked"), $(verdict "$(ratio "$t_signed" "$t_unmasked")" '<=' 1.03) | $(sync_loaded signed "$floor_people"); signed by $(report_field "$work/report.signed.json" signed_by) |
| \`stg-dump --mask \| stg-restore\` (median of 3; default, 13 rules incl. a JSON path rule on audit_log.details, every column decided, sessions excluded) | ${t_masked} s | $(ratio "$t_masked" "$t_floor") | | $(sync_loaded masked "$floor_people") |
| \`stg-dump --compress xz \| stg-restore\` (\`$xz_c\`), unmasked | ${t_xz} s | $(ratio "$t_xz" "$t_floor") | xz-era target <= 1.5: $(verdict "$(ratio "$t_xz" "$t_floor")" '<=' 1.5) | $(sync_loaded xz "$floor_people") |
| \`stg-dump --compress xz --mask \| stg-restore\` | ${t_xz_masked} s | $(ratio "$t_xz_masked" "$t_floor") | | $(sync_loaded xz_masked "$floor_people") |

- against the SOP: the default is $(ratio "$t_sop" "$t_unmasked")x faster (target: at least 20x, $(verdict "$(ratio "$t_sop" "$t_unmasked")" '>=' 20)); \`--compress xz\` is $(ratio "$t_sop" "$t_xz")x faster (the xz-era target: at least 10x, $(verdict "$(ratio "$t_sop" "$t_xz")" '>=' 10)).
- masked vs unmasked: default $(ratio "$t_masked" "$t_unmasked"), \`--compress xz\` $(ratio "$t_xz_masked" "$t_xz") (target: at most 1.15).
- signed vs unsigned: $(ratio "$t_signed" "$t_unmasked") (target: at most 1.03, $(verdict "$(ratio "$t_signed" "$t_unmasked")" '<=' 1.03)). Every stg-restore run here, signed or not, loads the stream as its load role \`$(report_field "$work/report.unmasked.json" load_role)\`, a role that is not a superuser (docs/security.md); before the load role, the unsigned sync ran as the superuser: $prev_unmasked_ratio.
- bytes on the wire: the default $stg_bytes bytes, $(ratio "$stg_bytes" "$sop_bytes")x the SOP's \`xz -6\` file ($sop_bytes bytes; target at most 1.35x, $(verdict "$(ratio "$stg_bytes" "$sop_bytes")" '<=' 1.35)); \`--compress xz\` $xz_bytes bytes, $(ratio "$xz_bytes" "$sop_bytes")x. Other levels: the level table below.
- peak RSS (target under 64 MiB each): the default, stg-dump $(rss_cell unmasked stg-dump) and stg-restore $(rss_cell unmasked stg-restore); \`--compress xz\`, stg-dump $(rss_cell xz stg-dump) and stg-restore $(rss_cell xz stg-restore). All runs: the memory table below.

Reading these: the sync is one pipeline, pg_dump → stg-dump's encoder → stg-restore's decoder →
the server's load, all sharing the same $threads cores, so it takes at least about as long as its
slower side measured alone. Measured alone in this run: pg_dump ${t_pgdump} s; stg-dump at \`$default_c\`
to a file ${t_lvl_def} s; stg-restore of that file (its default --jobs $jdef) ${t_rs_jdef} s; the server's
load of the decoded SQL alone (psql) ${t_rs_plain} s. The default sync took ${t_unmasked} s, $(ratio "$t_unmasked" "$(slower "$t_lvl_def" "$t_rs_jdef")")x its slower
side, $(side "$t_lvl_def" "$t_rs_jdef"); on the restore side zstd decoding alone (${t_decode} s) is
$(ratio "$t_decode" "$t_rs_plain")x the server's load, $(python3 -c "print('so the load bounds it' if $t_decode < $t_rs_plain else 'so the decoder bounds it')") (restore section). With \`--compress xz\`, stg-dump alone
takes ${t_lvl_xz} s ($(ratio "$t_lvl_xz" "$t_pgdump")x pg_dump alone, $(ratio "$t_lvl_xz" "$t_lvl_def")x the default's) and stg-restore ${t_rs_xz} s, so its sync
(${t_xz} s, $(ratio "$t_xz" "$(slower "$t_lvl_xz" "$t_rs_xz")")x its slower side) is bound by $(side "$t_lvl_xz" "$t_rs_xz"); xz decoding
alone takes $(ratio "$t_xdecode" "$t_decode")x zstd's. The masked runs move less data (sessions excluded, audit details
replaced by a constant), which is why they can be faster than the unmasked ones.

## Compression levels: the same database, stg-dump itself

Each row is \`stg-dump --compress C fas2 > file\`, one run each, the stream then decoded alone
(\`zstd -dc\` or \`xz -T1 -dc\`, one thread, as stg-restore's reader decodes), with stg-dump's peak
RSS sampled by \`bench/peak_rss.py\`. The SOP's row is its dump step, with xz's own memory.

$levels_part

## Sync through a rate-limited link (fas2_small)

$link_part

## Restore of one stream file

One \`stg-dump\` stream of fas2 at \`$default_c\` ($(ratio "$sql_bytes" 1000000) MB of SQL, $(ratio "$stg_bytes" 1000000) MB as zstd; the \`$xz_c\` stream of
the same data: $(ratio "$xz_bytes" 1000000) MB), written once to a file and loaded from it by each procedure into a new
database on the staging cluster.

| procedure | wall time | ratio to \`zstdcat \| psql\` | stg-restore CPU (user + sys) | what was loaded |
|---|---|---|---|---|
| \`zstd -dc stream > /dev/null\`: decoding alone, one thread (${decode_rate} MB/s of SQL) | ${t_decode} s | $(ratio "$t_decode" "$t_rs_psql") | | |
| \`xz -T1 -dc xz-stream > /dev/null\`: the xz stream's decoding alone, one thread (${xdecode_rate} MB/s of SQL) | ${t_xdecode} s | $(ratio "$t_xdecode" "$t_rs_psql") | | |
| baseline: \`createdb\`, then \`zstdcat stream \| psql -X -q -v ON_ERROR_STOP=1 --single-transaction\` (the load only) | ${t_rs_psql} s | 1.00 | | $rs_people people |
| the same SQL decoded beforehand, \`psql ... --single-transaction < file.sql\`: the server's part alone | ${t_rs_plain} s | $(ratio "$t_rs_plain" "$t_rs_psql") | | |
$restore_rows

stg-restore's wall times include connecting, creating the database and the swap; its load
phase (which ends with the trailer's verification) is in parentheses. This machine has $threads cores,
so every \`--jobs\` above $threads shares them with the reader and the server's other backends.

What bounds the restore: stg-restore decodes the stream on its reader thread, one frame or block
after the other, and reads it in order, so one COPY receives data at a time; more connections
overlap only a COPY still being stored with the next one, and the index and constraint builds
after the data. $restore_bound
The \`--jobs 1\` restore took ${t_rs_j1} s, $(ratio "$t_rs_j1" "$t_slower")x the slower of zstd decoding and the load (its process used
${cpu_j1} s of CPU: decoding, splitting, hashing, counting); ${overlap}% of the decoding's time was hidden
behind the server's work. \`--jobs $j_max\` against \`--jobs 1\`: $(ratio "$t_rs_jmax" "$t_rs_j1").

## Peak memory (VmHWM of the stg process itself, not pg_dump or psql)

| run | stg-dump | stg-restore |
|---|---|---|
| $PEOPLE people, default (\`$default_c\`), unmasked | $(rss_cell unmasked stg-dump) | $(rss_cell unmasked stg-restore) |
| $PEOPLE people, default, masked | $(rss_cell masked stg-dump) | $(rss_cell masked stg-restore) |
| $SMALL people, default, unmasked | $(rss_cell small stg-dump) | $(rss_cell small stg-restore) |
| $PEOPLE people, \`--compress xz\`, unmasked | $(rss_cell xz stg-dump) | $(rss_cell xz stg-restore) |
| $PEOPLE people, \`--compress xz\`, masked | $(rss_cell xz_masked stg-dump) | $(rss_cell xz_masked stg-restore) |
| $SMALL people, \`--compress xz\`, unmasked | $(rss_cell xz_small stg-dump) | $(rss_cell xz_small stg-restore) |
| $PEOPLE people, default, \`--threads 1\`, dump to /dev/null | $(rss_cell thr1 stg-dump) | |
| $PEOPLE people, default, \`--threads 4\`, dump to /dev/null | $(rss_cell thr4 stg-dump) | |

Target: under 64 MiB each, the same at both sizes. The rows above use all $threads cores for
compression (stg-dump's default) unless they say otherwise; the last two show how stg-dump's
memory follows its compression threads at the default level ($(rss_of thr1 stg-dump), $(rss_of unmasked stg-dump) and $(rss_of thr4 stg-dump) MiB
with 1, $threads and 4 threads), and the level table how it follows the level: a host with more
cores than this one runs more threads by default. stg-restore's figure is its decoder and the
load's buffers, whatever the level (zstd windows are at most 8 MiB).

## Hot paths

| what | measured | baseline | ratio |
|---|---|---|---|
| COPY rewriter, $(copy_field input_mb) MB FAS-like block, $(copy_field masked_columns) of 13 columns masked, one core | $(copy_field masked_mb_s) MB/s ($(copy_field masked_rows_s) rows/s) | plain copy of the same lines: $(copy_field plain_mb_s) MB/s | $(copy_field ratio_to_plain)x slower (target: at least 200 MB/s) |
$probe_line
$age_line

## Choice of the default level

$choice_part
MD
cat "$out_md"
log "done in $bench_minutes minutes"
