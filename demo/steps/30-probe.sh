# stg-probe: prove that staging cannot reach production (sourced by demo/demo.sh).
# Loopback only: a closed port stands in for a production endpoint behind a firewall, and the
# demo's production PostgreSQL (127.0.0.1:$PROD_PORT), which nothing shields from "staging"
# here, shows what a breach looks like. No root, no /etc/hosts change.

step "stg-probe: can staging reach production? (Nagios exit codes: 0 OK, 1 inconclusive, 2 breach, 3 error)"
probe_closed=$(free_port)
cat > "$work/probe-targets.jsonl" <<JSON
{"type":"target","check":"blocked","host":"127.0.0.1","port":$probe_closed,"service":"fas2-db"}
{"type":"target","check":"reachable","host":"127.0.0.1","port":$STG_PORT,"service":"fas2-db"}
{"type":"target","check":"resolves","host":"localhost","expect":["127.0.0.1","::1"]}
JSON
say "targets: production endpoint 127.0.0.1:$probe_closed (firewalled: nothing answers), staging 127.0.0.1:$STG_PORT"
probe_rc=0
run stg-probe --format text < "$work/probe-targets.jsonl" || probe_rc=$?
say "exit status $probe_rc (OK)"

say "now production PostgreSQL itself, 127.0.0.1:$PROD_PORT, which answers staging: a breach"
printf '{"type":"target","check":"blocked","host":"localhost","port":%s,"service":"fas2-db"}\n' "$PROD_PORT" \
  > "$work/probe-breach.jsonl"
probe_rc=0
run stg-probe --format nagios < "$work/probe-breach.jsonl" || probe_rc=$?
say "exit status $probe_rc (CRITICAL: staging can reach production)"

say "a typo is never a pass: a name that does not resolve is inconclusive"
printf '{"type":"target","check":"blocked","host":"db01.prod.invalid","port":5432}\n' > "$work/probe-typo.jsonl"
probe_rc=0
run stg-probe --format nagios < "$work/probe-typo.jsonl" || probe_rc=$?
say "exit status $probe_rc (WARNING)"
