# stg-hosts: the SOP's /etc/hosts overrides (sourced by demo/demo.sh).
# Works on a copy of a Fedora-style hosts file under $work: the real /etc/hosts is never
# read or written. No root needed.

step "stg-hosts: point production names at their staging counterparts in a hosts file"
cat > "$work/inventory.json" <<'JSON'
{
  "name": "demo-stg",
  "production": {"domain": "fedoraproject.org", "ranges": ["10.5.126.0/24"]},
  "staging": {"domain": "stg.fedoraproject.org", "ranges": ["10.5.128.0/24"]},
  "services": [
    {"name": "fas", "production": ["fas01.fedoraproject.org", "admin.fedoraproject.org"],
     "staging": {"name": "fas01.stg.fedoraproject.org", "address": "10.5.128.10"}, "ports": [443]},
    {"name": "wiki", "production": ["wiki.fedoraproject.org"],
     "staging": {"name": "app01.stg.fedoraproject.org", "address": "10.5.128.20"}, "ports": [443]},
    {"name": "pkgdb", "production": ["pkgdb.fedoraproject.org"],
     "staging": {"name": "app01.stg.fedoraproject.org", "address": "10.5.128.20"}, "ports": [443]}
  ]
}
JSON
printf '%s\n' \
  '# Loopback entries; do not change.' \
  '127.0.0.1   localhost localhost.localdomain localhost4 localhost4.localdomain4' \
  '::1         localhost localhost.localdomain localhost6 localhost6.localdomain6' \
  > "$work/hosts"
cp "$work/hosts" "$work/hosts.orig"
say "inventory: $work/inventory.json (one staging server, app01.stg, stands in for wiki and pkgdb)"
say "hosts file: $work/hosts (a copy; /etc/hosts is not touched)"

run stg-hosts emit --inventory "$work/inventory.json" --format text
run stg-hosts apply --inventory "$work/inventory.json" --file "$work/hosts" --dry-run --format text
say "apply needs a host marked staging (STG_ENVIRONMENT_FILE=$work/stg.environment)"
STG_ENVIRONMENT_FILE="$work/stg.environment" \
  run stg-hosts apply --inventory "$work/inventory.json" --file "$work/hosts" --format text
sed 's/^/   | /' "$work/hosts"
STG_ENVIRONMENT_FILE="$work/stg.environment" \
  run stg-hosts apply --inventory "$work/inventory.json" --file "$work/hosts" --format text
run stg-hosts check --inventory "$work/inventory.json" --file "$work/hosts" --format text

say "someone edits the block by hand: check finds it (exit 1), apply will not overwrite it without --force"
sed -i 's/^10\.5\.128\.20\t/10.5.126.20\t/' "$work/hosts"
hosts_rc=0
run stg-hosts check --inventory "$work/inventory.json" --file "$work/hosts" --format text || hosts_rc=$?
say "check exit status $hosts_rc (drift)"
hosts_rc=0
STG_ENVIRONMENT_FILE="$work/stg.environment" \
  run stg-hosts apply --inventory "$work/inventory.json" --file "$work/hosts" --format text || hosts_rc=$?
say "apply exit status $hosts_rc (refused)"
STG_ENVIRONMENT_FILE="$work/stg.environment" \
  run stg-hosts apply --inventory "$work/inventory.json" --file "$work/hosts" --force --format text

run stg-hosts remove --name demo-stg --file "$work/hosts" --format text
if cmp -s "$work/hosts" "$work/hosts.orig"; then
  say "after remove the file is byte for byte the original; backups: $(cd "$work" && ls hosts.stg-bak.* | wc -l)"
else
  say "ERROR: the file differs from the original after remove" >&2
  exit 1
fi
