# stg-dump | stg-restore: the SOP's "Syncing databases" (sourced by demo/demo.sh).
# pg_dump | xz, scp, stop httpd, drop database, xzcat | psql, start httpd -- in one verified pipe
# (zstd-compressed by default; stg-dump --compress xz writes the SOP's format).

step "stg-dump --mask-init: a rules file that decides every column, to review"
say "\$ stg-dump -h 127.0.0.1 -p $PROD_PORT -U postgres --mask-init fas2 > masking.json"
stg-dump -h 127.0.0.1 -p "$PROD_PORT" -U postgres --mask-init fas2 > "$work/mask-init.json"
sed -n '2,8p' "$work/mask-init.json" | cut -c1-150

step "stg-dump --check: are the masking rules right for this database?"
(umask 077; head -c 32 /dev/urandom | base64 > "$work/mask.key")
export STG_MASK_KEY_FILE="$work/mask.key"
say "rules: demo/masking.json (pseudonyms for usernames in every table, emails moved to stg, passwords INVALID, sessions dropped, every other column kept by name)"
run stg-dump -h 127.0.0.1 -p "$PROD_PORT" -U postgres --mask "$here/demo/masking.json" --check --format text fas2

step "stg-dump: the production database as one masked, compressed, self-verifying stream"
say "\$ stg-dump -h 127.0.0.1 -p $PROD_PORT -U postgres --mask demo/masking.json fas2 > fas2.stg.zst"
stg-dump -h 127.0.0.1 -p "$PROD_PORT" -U postgres --mask "$here/demo/masking.json" fas2 > "$work/fas2.stg.zst"
if command -v zstdcat >/dev/null; then
  say "$(stat -c %s "$work/fas2.stg.zst") bytes of zstd; the manifest is the first line (zstdcat fas2.stg.zst | head -1):"
  zstdcat "$work/fas2.stg.zst" | sed -n 1p | cut -c1-200 | sed 's/^/   | /'
  say "... and the trailer the last (bytes, SHA-256, rows per table):"
  zstdcat "$work/fas2.stg.zst" | tail -1 | cut -c1-200 | sed 's/^/   | /'
else
  say "$(stat -c %s "$work/fas2.stg.zst") bytes of zstd (install zstd to look inside: zstdcat fas2.stg.zst | head -1)"
fi
run stg-restore verify --format text < "$work/fas2.stg.zst"

step "stg-restore refuses on a host that is not staging"
rc=0
STG_ENVIRONMENT_FILE="$work/prod.environment" run stg-restore -h 127.0.0.1 -p "$PROD_PORT" -U postgres --format text < "$work/fas2.stg.zst" || rc=$?
say "exit status $rc: production's fas2 was not touched"

step "Signed streams: production signs, staging trusts only its key"
sign=() trust=()
if command -v ssh-keygen >/dev/null; then
  ssh-keygen -q -t ed25519 -N '' -C "stg-dump@db01" -f "$work/dump_ed25519"
  echo "stg-dump@db01 namespaces=\"stg-stream\" $(cat "$work/dump_ed25519.pub")" > "$work/allowed_signers"
  sign=(--signing-key "$work/dump_ed25519") trust=(--allowed-signers "$work/allowed_signers")
  say "key: dump_ed25519 (stg-dump --signing-key); staging's /etc/stg/allowed_signers:"
  cut -c1-110 "$work/allowed_signers" | sed 's/^/   | /'
  say "\$ stg-dump --signing-key dump_ed25519 ... fas2 > fas2.signed.zst; stg-restore verify --allowed-signers allowed_signers"
  stg-dump -h 127.0.0.1 -p "$PROD_PORT" -U postgres --mask "$here/demo/masking.json" "${sign[@]}" fas2 > "$work/fas2.signed.zst"
  stg-restore verify "${trust[@]}" --format text < "$work/fas2.signed.zst"
  rc=0
  say "\$ stg-restore verify --allowed-signers allowed_signers < fas2.stg.zst   (the unsigned stream)"
  stg-restore verify "${trust[@]}" --format text < "$work/fas2.stg.zst" || rc=$?
  say "exit status $rc: where a trust file is in effect, an unsigned stream is refused"
else
  say "(install openssh-client for ssh-keygen to see streams signed and checked; the sync below is unsigned)"
fi

step "stg-dump | stg-restore into staging (the hooks stand in for 'systemctl stop/start httpd')"
export STG_ENVIRONMENT_FILE="$work/stg.environment"
stg_psql -d postgres -c 'CREATE ROLE fas2 LOGIN'
stg_psql -d postgres -c 'CREATE DATABASE fas2 OWNER fas2'
stg_psql -d fas2 -c "CREATE TABLE staging_notes (note text); INSERT INTO staging_notes VALUES ('work done on staging before the sync')"
say "staging already has a fas2 with someone's work in it; it will be kept, not dropped"
say "the stream's SQL runs as stg_load, a role that is not a superuser (made on first use)"
say "\$ stg-dump ... --signing-key dump_ed25519 fas2 | stg-restore ... --allowed-signers allowed_signers --pre-hook ... --post-hook ..."
stg-dump -h 127.0.0.1 -p "$PROD_PORT" -U postgres --mask "$here/demo/masking.json" \
    "${sign[@]}" fas2 \
  | stg-restore -h 127.0.0.1 -p "$STG_PORT" -U postgres --format text "${trust[@]}" \
      --pre-hook "echo '   [pre-hook] stopping the app'" --post-hook "echo '   [post-hook] starting the app'"
say "a staging row now: $(stg_psql -d fas2 -c "SELECT username, email, password FROM people WHERE id = 7")"
say "memberships still join people through the pseudonyms: $(stg_psql -d fas2 -c 'SELECT count(*) FROM memberships m JOIN people p ON p.username = m.person_username') of $(prod_psql -d fas2 -c 'SELECT count(*) FROM memberships')"
run stg-restore list fas2 -h 127.0.0.1 -p "$STG_PORT" -U postgres --format text

step "stg-restore rollback: the previous copy comes back"
run stg-restore rollback fas2 -h 127.0.0.1 -p "$STG_PORT" -U postgres --format text
say "staging_notes is back: $(stg_psql -d fas2 -c 'SELECT note FROM staging_notes')"
run stg-restore rollback fas2 -h 127.0.0.1 -p "$STG_PORT" -U postgres --format text
say "and forward again: $(stg_psql -d fas2 -c 'SELECT count(*) FROM people') people"
unset STG_ENVIRONMENT_FILE STG_MASK_KEY_FILE
