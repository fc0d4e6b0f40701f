# stg-age: how long staging-only changes and synced databases have lived (sourced by demo/demo.sh).
# A small Ansible repository with fixed commit dates under $work, then the staging cluster's
# databases (fas2 carries provenance if an earlier step restored it; either way works).

step "stg-age: how old is each staging-only change? (exit 0 ok, 1 over --max-age, 2 bad input, 3 failure)"
age_repo="$work/ansible"
mkdir -p "$age_repo"
age_git() { # date, git args...
  local date=$1; shift
  GIT_AUTHOR_DATE=$date GIT_COMMITTER_DATE=$date GIT_AUTHOR_NAME="Sam Sysadmin" GIT_COMMITTER_NAME="Sam Sysadmin" \
    GIT_AUTHOR_EMAIL=sam@example.org GIT_COMMITTER_EMAIL=sam@example.org \
    git -C "$age_repo" -c commit.gpgsign=false -c init.defaultBranch=main "$@"
}
age_git 2025-03-01T09:00:00Z init -q
mkdir -p "$age_repo/roles/web/tasks" "$age_repo/roles/web/templates" "$age_repo/roles/base/files" \
  "$age_repo/inventory/group_vars"
cat > "$age_repo/roles/web/tasks/main.yml" <<'YAML'
- name: debugging tools, staging only
  package: name=strace state=present
  when: env == "staging"

- name: nightly backup, production only
  cron: name=backup job=/usr/local/bin/backup
  when: env != 'staging'
YAML
cat > "$age_repo/roles/web/templates/httpd.conf.j2" <<'J2'
ServerName {{ inventory_hostname }}
{% if env == "staging" %}
LogLevel debug
{% endif %}
J2
echo "nameserver 10.5.126.21" > "$age_repo/roles/base/files/resolv.conf.staging"
echo "env: staging" > "$age_repo/inventory/group_vars/staging"
age_git 2025-03-01T09:00:00Z add -A
age_git 2025-03-01T09:00:00Z commit -q -m "web: staging debugging, production backups"
cat >> "$age_repo/roles/web/tasks/main.yml" <<'YAML'

- name: new proxy, being tried in staging
  template: src=proxy.conf.j2 dest=/etc/httpd/conf.d/proxy.conf
  when:
    - env=="staging"
    - inventory_hostname in groups['proxies']
YAML
age_git 2025-11-20T14:00:00Z commit -q -a -m "web: try the new proxy in staging"
say "repository $age_repo: 2 commits (2025-03-01, 2025-11-20); ages measured at 2026-01-01"
run stg-age --repo "$age_repo" --now 2026-01-01T00:00:00Z --format text

say "the cron check: anything older than 90 days?"
age_rc=0
run stg-age --repo "$age_repo" --now 2026-01-01T00:00:00Z --max-age 90d --format text || age_rc=$?
say "exit status $age_rc (1: staging carries changes older than 90 days)"

say "keep the staging inventory on purpose, with a reason and an expiry date (.stg-age-ignore)"
echo "inventory/group_vars/staging until=2026-12-31 the staging group itself; review yearly" \
  > "$age_repo/.stg-age-ignore"
age_rc=0
run stg-age --repo "$age_repo" --now 2026-01-01T00:00:00Z --max-age 90d --format json || age_rc=$?
say "exit status $age_rc; the summary counts the ignored finding"

step "stg-age databases: when was each staging database last synced from production?"
age_rc=0
run stg-age databases -h 127.0.0.1 -p "$STG_PORT" -U postgres --max-age 30d --format text || age_rc=$?
if [ "$(stg_psql -d postgres -c "SELECT count(*) FROM pg_database WHERE datname = 'fas2'")" = 1 ]; then
  say "exit status $age_rc; fas2 shows the age of its last sync (unknown if it carries no stg provenance)"
else
  say "exit status $age_rc; no database here was restored by stg-restore, so every one is 'unknown'"
fi
