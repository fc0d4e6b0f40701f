//! Tests of the `stg-probe` binary: loopback-only tests (any user) and tests with real hosts
//! built as network namespaces (root, iproute2, nftables; under CI they run, never skip).
//!
//! The namespace lab: a "prod" namespace (10.231.0.1, fd00:231::1) and a "stg" namespace
//! (10.231.0.2, fd00:231::2) joined by a veth pair, nothing else, no default route. Prod
//! listens on every port below; its nftables ruleset decides what staging sees. The probe
//! runs in "stg" through `ip netns exec`, which also bind-mounts the namespace's own
//! /etc/hosts and /etc/nsswitch.conf, so the system resolver sees the test's names.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};

use serde_json::Value;
use stg_tests::cmd::{bin_path, closed_pipe, stg};
use stg_tests::netns::{link, Netns};
use stg_tests::run::{Run, RunExt};

// ---------------------------------------------------------------------------------------
// helpers

/// Runs a command with `stdin` as its input.
fn run_with_input(cmd: Command, stdin: &str) -> Run {
    stg_tests::run::run(cmd, stdin)
}

/// The JSON Lines of a run, decoded: (check records, summary).
#[track_caller]
fn records(out: &Run) -> (Vec<Value>, Value) {
    let summary = out.summary();
    let checks = out.of_type("check");
    assert_eq!(
        checks.len() + 1,
        out.records().len(),
        "only checks, then the summary"
    );
    (checks, summary)
}

fn find<'a>(checks: &'a [Value], kind: &str, host: &str, port: Option<u16>) -> &'a Value {
    checks
        .iter()
        .find(|c| {
            c["check"] == kind
                && c["host"] == host
                && port.map_or(c.get("port").is_none(), |p| c["port"] == p)
        })
        .unwrap_or_else(|| panic!("no {kind} check for {host}:{port:?} in {checks:#?}"))
}

/// Each address of a check with its outcome, as strings, IPv4 first (the resolver's own
/// order follows RFC 6724 and may put IPv6 first).
fn per_address(check: &Value) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = check["addresses"]
        .as_array()
        .expect("addresses")
        .iter()
        .map(|a| {
            (
                a["address"].as_str().unwrap().to_owned(),
                a["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    pairs.sort_by_key(|(addr, _)| addr.contains(':'));
    pairs
}

fn write_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write fixture");
    path.display().to_string()
}

/// A loopback port that refuses connections while the descriptor lives.
fn closed_port(ip: &str) -> (std::os::fd::OwnedFd, u16) {
    stg_tests::refused_port(SocketAddr::new(ip.parse().expect("an address"), 0))
}

// ---------------------------------------------------------------------------------------
// loopback only: no root needed

#[test]
fn loopback_targets_report_open_refused_and_reachable() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap().port();
    let (_closed, closed) = closed_port("127.0.0.1");
    let input = format!(
        "{{\"type\":\"target\",\"check\":\"blocked\",\"host\":\"127.0.0.1\",\"port\":{closed}}}\n\
         {{\"type\":\"target\",\"check\":\"reachable\",\"host\":\"127.0.0.1\",\"port\":{open}}}\n\
         {{\"type\":\"target\",\"check\":\"resolves\",\"host\":\"localhost\",\"expect\":[\"127.0.0.1\",\"::1\"]}}\n"
    );
    let out = run_with_input(stg("stg-probe"), &input);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (checks, summary) = records(&out);
    assert_eq!(
        find(&checks, "blocked", "127.0.0.1", Some(closed))["outcome"],
        "refused"
    );
    assert_eq!(
        find(&checks, "reachable", "127.0.0.1", Some(open))["outcome"],
        "open"
    );
    assert_eq!(
        find(&checks, "resolves", "localhost", None)["outcome"],
        "ok"
    );
    assert_eq!(summary["checks"], 3);
    assert_eq!(summary["ok"], 3);
    assert_eq!(summary["status"], "OK");

    // The same production endpoint, now open: a breach, exit 2 (Nagios CRITICAL).
    let input = format!(
        "{{\"type\":\"target\",\"check\":\"blocked\",\"host\":\"localhost\",\"port\":{open}}}\n"
    );
    let out = run_with_input(stg("stg-probe"), &input);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let (checks, summary) = records(&out);
    assert_eq!(checks[0]["outcome"], "open");
    assert_eq!(checks[0]["status"], "breach");
    assert_eq!(summary["breach"], 1);
    assert_eq!(summary["status"], "CRITICAL");
    drop(listener);
}

/// A loopback inventory: production `localhost` (127.0.0.1), staging 127.0.0.2, one port.
fn loopback_inventory(port: u16, allow: &str) -> String {
    format!(
        r#"{{
  "name": "loop",
  "production": {{"ranges": ["127.0.0.1/32"]}},
  "staging": {{"ranges": ["127.0.0.2/32"]}},
  "services": [
    {{"name": "db", "production": ["localhost"], "staging": {{"address": "127.0.0.2"}}, "ports": [{port}]}}
  ],
  "allow": [{allow}]
}}"#
    )
}

#[test]
fn loopback_inventory_ok_breach_and_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let staging = TcpListener::bind("127.0.0.2:0").unwrap();
    let port = staging.local_addr().unwrap().port();
    let inventory = write_file(&dir, "inv.json", &loopback_inventory(port, ""));

    // Production closed, staging answering: OK.
    let out = stg("stg-probe").args(["--inventory", &inventory]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (checks, _) = records(&out);
    let blocked = find(&checks, "blocked", "localhost", Some(port));
    assert_eq!(blocked["outcome"], "refused");
    assert_eq!(blocked["service"], "db");
    assert_eq!(blocked["source"], "inventory");
    assert_eq!(
        find(&checks, "reachable", "127.0.0.2", Some(port))["outcome"],
        "open"
    );

    // Production answering on the same port: breach.
    let production = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let out = stg("stg-probe")
        .args(["--inventory", &inventory, "--format", "nagios"])
        .run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    let line = out.stdout.clone();
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(line.starts_with("STG-PROBE CRITICAL - "), "{line}");
    assert!(
        line.contains(&format!("blocked localhost:{port} open")),
        "{line}"
    );
    let perfdata = line.split_once(" | ").expect("perfdata").1;
    assert!(perfdata.contains("breach=1;;1;0"), "{perfdata}");

    // On the allow-list: reported as allowed with the reason, no breach.
    let allowed = write_file(
        &dir,
        "allowed.json",
        &loopback_inventory(
            port,
            &format!(r#"{{"host": "localhost", "ports": [{port}], "reason": "log host"}}"#),
        ),
    );
    let out = stg("stg-probe").args(["--inventory", &allowed]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (checks, _) = records(&out);
    let blocked = find(&checks, "blocked", "localhost", Some(port));
    assert_eq!(blocked["outcome"], "allowed");
    assert_eq!(blocked["reason"], "log host");
    assert_eq!(blocked["status"], "ok");
    // Production closed again, and the staging service down: WARNING, exit 1, counted as
    // down. The ports stay taken (bound, not listening), so no other process can answer.
    let at = production.local_addr().unwrap();
    drop(production);
    let _production_closed = stg_tests::refused_port(at);
    let at = staging.local_addr().unwrap();
    drop(staging);
    let _staging_down = stg_tests::refused_port(at);
    let out = stg("stg-probe")
        .args(["--inventory", &inventory, "--format", "json"])
        .run();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let (checks, summary) = records(&out);
    let reachable = find(&checks, "reachable", "127.0.0.2", Some(port));
    assert_eq!(reachable["outcome"], "refused");
    assert_eq!(reachable["status"], "down");
    assert_eq!(summary["down"], 1);
}

#[test]
fn text_format_is_a_table_with_a_verdict() {
    let (_closed, closed) = closed_port("127.0.0.1");
    let input = format!(
        "{{\"type\":\"target\",\"check\":\"blocked\",\"host\":\"127.0.0.1\",\"port\":{closed}}}\n"
    );
    let mut cmd = stg("stg-probe");
    cmd.args(["--format", "text"]);
    let out = run_with_input(cmd, &input);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = out.stdout.clone();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("STATUS"), "{text}");
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        row[..4],
        ["OK", "blocked", &format!("127.0.0.1:{closed}"), "refused"]
    );
    assert!(text.contains("OK: 1 check, 1 ok, 0 breach"), "{text}");
}

/// Runs a command with `stdin` as its input and a stdout whose reader is already gone.
fn run_with_closed_stdout(mut cmd: Command, stdin: &str) -> Run {
    cmd.stdout(closed_pipe());
    run_with_input(cmd, stdin)
}

#[test]
fn closed_stdout_keeps_the_verdict() {
    // Issue 20, item 4: `stg-probe | head -1` with a breach present exited 0.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap().port();
    let (_closed, closed) = closed_port("127.0.0.1");
    let breach = format!(
        "{{\"type\":\"target\",\"check\":\"blocked\",\"host\":\"127.0.0.1\",\"port\":{open}}}\n"
    );
    for format in ["json", "text", "nagios"] {
        let mut cmd = stg("stg-probe");
        cmd.args(["--format", format]);
        let out = run_with_closed_stdout(cmd, &breach);
        assert_eq!(out.code, 2, "{format}: a breach is still CRITICAL");
        assert_eq!(out.stderr, "", "{format}: quiet on a closed pipe");
    }
    // Under pipefail, as a shell script or cron job would run it.
    let mut cmd = stg_tests::cmd::program("bash");
    cmd.arg("-c").arg(format!(
        "set -o pipefail; '{}' | head -c 0; echo \"${{PIPESTATUS[0]}} $?\"",
        bin_path("stg-probe").display()
    ));
    let out = run_with_input(cmd, &breach);
    assert_eq!(out.stdout, "2 2\n", "{}", out.stderr);

    // All good: 0, and still nothing on stderr.
    let ok = format!(
        "{{\"type\":\"target\",\"check\":\"blocked\",\"host\":\"127.0.0.1\",\"port\":{closed}}}\n"
    );
    let out = run_with_closed_stdout(stg("stg-probe"), &ok);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stderr, "");
    drop(listener);
}

#[test]
fn unresolvable_name_is_inconclusive_never_a_pass() {
    // `.invalid` never resolves (RFC 6761); with or without a reachable DNS server this is
    // nxdomain or dns_error, both inconclusive. The namespace test pins each one down.
    let input =
        "{\"type\":\"target\",\"check\":\"blocked\",\"host\":\"no-such-host.invalid\",\"port\":443}\n";
    let out = run_with_input(stg("stg-probe"), input);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let (checks, summary) = records(&out);
    assert!(
        ["nxdomain", "dns_error"].contains(&checks[0]["outcome"].as_str().unwrap()),
        "{checks:?}"
    );
    assert_eq!(checks[0]["status"], "inconclusive");
    assert_eq!(summary["status"], "WARNING");
    assert_eq!(summary["ok"], 0);
}

// ---------------------------------------------------------------------------------------
// bad input: exit 3 (Nagios UNKNOWN), a message naming what is wrong, no report

fn assert_unknown(out: &Run, needle: &str) {
    assert_eq!(out.code, 3, "stderr: {}", out.stderr);
    assert!(out.stdout.is_empty(), "no report on bad input");
    assert!(
        out.stderr.contains(needle),
        "stderr should contain {needle:?}: {}",
        out.stderr
    );
}

#[test]
fn malformed_json_line_names_the_line() {
    let input = "{\"type\":\"target\",\"check\":\"blocked\",\"host\":\"127.0.0.1\",\"port\":1}\n\
                 {\"type\":\"target\",\"check\":\n";
    assert_unknown(&run_with_input(stg("stg-probe"), input), "<stdin>: line 2:");
}

#[test]
fn unknown_record_type_names_the_line() {
    let input = "\n{\"type\":\"targett\",\"host\":\"a\"}\n";
    assert_unknown(&run_with_input(stg("stg-probe"), input), "line 2:");
}

#[test]
fn port_out_of_range_is_named() {
    let input =
        "{\"type\":\"target\",\"check\":\"blocked\",\"host\":\"127.0.0.1\",\"port\":65536}\n";
    assert_unknown(
        &run_with_input(stg("stg-probe"), input),
        "<stdin>: line 1: port: 65536 is out of range (1-65535)",
    );
}

#[test]
fn empty_target_list_is_an_error_not_ok() {
    assert_unknown(&run_with_input(stg("stg-probe"), ""), "no targets to check");
    // Only a summary from stg-hosts (nothing overridden): still nothing to check.
    assert_unknown(
        &run_with_input(stg("stg-probe"), "{\"type\":\"summary\"}\n"),
        "an empty list proves nothing",
    );
}

#[test]
fn inventory_errors_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = write_file(
        &dir,
        "unknown.json",
        &loopback_inventory(5432, "").replace("\"ports\"", "\"port\""),
    );
    assert_unknown(
        &stg("stg-probe").args(["--inventory", &unknown]).run(),
        "unknown field `port`",
    );
    let dup = write_file(
        &dir,
        "dup.json",
        r#"{"name":"x","production":{},"staging":{},
            "services":[{"name":"a","production":["a.example.org"],"staging":{"address":"10.0.0.1"}},
                        {"name":"b","production":["A.example.org"],"staging":{"address":"10.0.0.1"}}]}"#,
    );
    assert_unknown(
        &stg("stg-probe").args(["--inventory", &dup]).run(),
        "services[1].production[0]: duplicate name",
    );
    assert_unknown(
        &stg("stg-probe")
            .args(["--inventory", "/nonexistent/inv.json"])
            .run(),
        "cannot read inventory /nonexistent/inv.json",
    );
}

#[test]
fn bad_flags_are_unknown_not_breach() {
    let out = stg("stg-probe")
        .args(["--timeout", "2", "--inventory", "x.json"])
        .run();
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("missing unit"), "{}", out.stderr);
    let out = stg("stg-probe")
        .args(["--concurrency", "0", "--inventory", "x.json"])
        .run();
    assert_eq!(out.code, 3, "{}", out.stderr);
}

// ---------------------------------------------------------------------------------------
// real hosts: network namespaces with nftables (root)

const PROD4: &str = "10.231.0.1";
const PROD6: &str = "fd00:231::1";
const STG4: &str = "10.231.0.2";

/// Ports in the production namespace and what its firewall does with staging's traffic.
const DROPPED: u16 = 8001;
const REJECTED: u16 = 8002;
const HOLE: u16 = 8003;
const ALLOWED: u16 = 8004;
const PROHIBITED: u16 = 8005;
const HOLE_V6_ONLY: u16 = 8006;

const RULESET: &str = "table inet prodfw {
  chain input {
    type filter hook input priority 0; policy accept;
    ip saddr 10.231.0.2 tcp dport { 8001, 10000-10999 } drop
    ip6 saddr fd00:231::2 tcp dport 8001 drop
    tcp dport 8002 reject with tcp reset
    tcp dport 8005 reject with icmpx type admin-prohibited
    ip saddr 10.231.0.2 tcp dport 8006 drop
  }
}";

/// The names as staging's /etc/hosts has them.
const STG_HOSTS: &str = "127.0.0.1 localhost
10.231.0.1 db.prod.test
fd00:231::1 db.prod.test
10.231.0.1 web.prod.test
fd00:231::1 web.prod.test
10.231.0.2 fas.prod.test
10.231.0.1 wiki.prod.test
10.231.0.2 app.stg.test
";

struct Lab {
    _prod: Netns,
    stg: Netns,
    _listeners: Vec<TcpListener>,
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        let prod = Netns::new("prod");
        let stg = Netns::new("stg");
        link(
            &prod,
            &[&format!("{PROD4}/24"), &format!("{PROD6}/64")],
            &stg,
            &[&format!("{STG4}/24"), "fd00:231::2/64"],
        );
        prod.nft(RULESET);
        let mut listeners = Vec::new();
        for port in [DROPPED, REJECTED, HOLE, ALLOWED, PROHIBITED, HOLE_V6_ONLY] {
            for ip in [PROD4, PROD6] {
                let addr = SocketAddr::new(ip.parse().unwrap(), port);
                listeners.push(prod.listen(addr));
            }
            // The staging counterpart answers on the same ports.
            listeners.push(stg.listen(SocketAddr::new(STG4.parse().unwrap(), port)));
        }
        stg.set_hosts(STG_HOSTS);
        stg.set_etc_file("nsswitch.conf", "hosts: files\n");
        Lab {
            _prod: prod,
            stg,
            _listeners: listeners,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn inventory(&self, services: &str, allow: &str) -> String {
        let text = format!(
            r#"{{
  "name": "lab",
  "production": {{"domain": "prod.test", "ranges": ["10.231.0.1/32", "fd00:231::1/128"]}},
  "staging": {{"domain": "stg.test", "ranges": ["10.231.0.2/32", "fd00:231::2/128"]}},
  "services": [{services}],
  "allow": [{allow}]
}}"#
        );
        write_file(&self.dir, "inventory.json", &text)
    }

    /// stg-probe inside the staging namespace.
    fn probe(&self, args: &[&str]) -> Command {
        let mut cmd = self.stg.exec(bin_path("stg-probe"));
        cmd.args(args);
        cmd
    }
}

#[test]
fn namespace_firewall_outcomes_drop_reject_prohibit_allow() {
    let lab = Lab::new();
    let inventory = lab.inventory(
        &format!(
            r#"{{"name": "db", "production": ["db.prod.test"],
                "staging": {{"name": "app.stg.test", "address": "{STG4}"}},
                "ports": [{DROPPED}, {REJECTED}, {PROHIBITED}, {ALLOWED}]}}"#
        ),
        &format!(r#"{{"host": "db.prod.test", "ports": [{ALLOWED}], "reason": "nagios"}}"#),
    );
    // Linux reports an ICMPv6 "administratively prohibited" answer to a SYN only at the
    // first retransmission (after about 1 s), so the timeout leaves room for it.
    let out = lab
        .probe(&["--inventory", &inventory, "--timeout", "2500ms"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (checks, summary) = records(&out);
    let both = |outcome: &str| {
        vec![
            (PROD4.to_owned(), outcome.to_owned()),
            (PROD6.to_owned(), outcome.to_owned()),
        ]
    };
    let dropped = find(&checks, "blocked", "db.prod.test", Some(DROPPED));
    assert_eq!(dropped["outcome"], "timeout");
    assert_eq!(per_address(dropped), both("timeout"));
    let rejected = find(&checks, "blocked", "db.prod.test", Some(REJECTED));
    assert_eq!(rejected["outcome"], "refused");
    assert_eq!(per_address(rejected), both("refused"));
    let prohibited = find(&checks, "blocked", "db.prod.test", Some(PROHIBITED));
    assert_eq!(prohibited["outcome"], "unreachable");
    assert_eq!(per_address(prohibited), both("unreachable"));
    let allowed = find(&checks, "blocked", "db.prod.test", Some(ALLOWED));
    assert_eq!(allowed["outcome"], "allowed");
    assert_eq!(allowed["reason"], "nagios");
    assert_eq!(
        find(&checks, "resolves", "app.stg.test", None)["outcome"],
        "ok"
    );
    for port in [DROPPED, REJECTED, PROHIBITED, ALLOWED] {
        assert_eq!(
            find(&checks, "reachable", STG4, Some(port))["outcome"],
            "open"
        );
    }
    assert_eq!(summary["checks"], 9);
    assert_eq!(summary["ok"], 9);
    assert_eq!(summary["exit_code"], 0);
}

#[test]
fn namespace_hole_in_the_firewall_is_a_breach_on_any_address() {
    let lab = Lab::new();
    let inventory = lab.inventory(
        &format!(
            r#"{{"name": "web", "production": ["web.prod.test"],
                "staging": {{"address": "{STG4}"}}, "ports": [{HOLE}, {HOLE_V6_ONLY}]}}"#
        ),
        "",
    );
    let out = lab
        .probe(&["--inventory", &inventory, "--timeout", "500ms"])
        .run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    let (checks, summary) = records(&out);
    let hole = find(&checks, "blocked", "web.prod.test", Some(HOLE));
    assert_eq!(hole["outcome"], "open");
    assert_eq!(hole["status"], "breach");
    // IPv4 is dropped, IPv6 is not: every address is tried, so the hole is found.
    let v6 = find(&checks, "blocked", "web.prod.test", Some(HOLE_V6_ONLY));
    assert_eq!(v6["outcome"], "open");
    assert_eq!(
        per_address(v6),
        vec![
            (PROD4.to_owned(), "timeout".to_owned()),
            (PROD6.to_owned(), "open".to_owned())
        ]
    );
    assert_eq!(summary["breach"], 2);
    assert_eq!(summary["status"], "CRITICAL");
}

#[test]
fn namespace_overrides_resolve_through_the_hosts_file() {
    let lab = Lab::new();
    let inventory = lab.inventory(
        &format!(
            r#"{{"name": "fas", "production": ["fas.prod.test"],
                "staging": {{"address": "{STG4}"}}, "ports": [{REJECTED}]}}"#
        ),
        "",
    );
    // What `stg-hosts emit --format json` writes, plus a summary it may close with.
    let overrides = format!(
        "{{\"type\":\"override\",\"name\":\"fas.prod.test\",\"address\":\"{STG4}\",\"service\":\"fas\"}}\n\
         {{\"type\":\"override\",\"name\":\"wiki.prod.test\",\"address\":\"{STG4}\",\"service\":\"wiki\"}}\n\
         {{\"type\":\"summary\",\"entries\":2}}\n"
    );
    let out = run_with_input(
        lab.probe(&["--inventory", &inventory, "--targets", "-"]),
        &overrides,
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    let (checks, _) = records(&out);
    let fas = find(&checks, "resolves", "fas.prod.test", None);
    assert_eq!(fas["outcome"], "ok");
    assert_eq!(fas["source"], "<stdin>:1");
    assert_eq!(
        per_address(fas),
        vec![(STG4.to_owned(), "expected".to_owned())]
    );
    let wiki = find(&checks, "resolves", "wiki.prod.test", None);
    assert_eq!(wiki["outcome"], "production");
    assert_eq!(wiki["status"], "breach");
    assert_eq!(
        per_address(wiki),
        vec![(PROD4.to_owned(), "production".to_owned())]
    );
    // The production name overridden to staging is not probed as production.
    let blocked = find(&checks, "blocked", "fas.prod.test", Some(REJECTED));
    assert_eq!(blocked["outcome"], "overridden");
    assert_eq!(blocked["status"], "ok");

    // Without the inventory the override alone decides: only its address is right.
    let out = run_with_input(lab.probe(&[]), &overrides);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let (checks, _) = records(&out);
    assert_eq!(
        find(&checks, "resolves", "wiki.prod.test", None)["outcome"],
        "unexpected"
    );

    // A name the hosts file does not know, with no DNS (nsswitch: files): nxdomain,
    // inconclusive, exit 1; never a pass.
    let missing = format!(
        "{{\"type\":\"override\",\"name\":\"fas.prod.test\",\"address\":\"{STG4}\"}}\n\
         {{\"type\":\"override\",\"name\":\"missing.prod.test\",\"address\":\"{STG4}\"}}\n"
    );
    let out = run_with_input(lab.probe(&["--format", "json"]), &missing);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let (checks, summary) = records(&out);
    let missing = find(&checks, "resolves", "missing.prod.test", None);
    assert_eq!(missing["outcome"], "nxdomain");
    assert_eq!(missing["status"], "inconclusive");
    assert_eq!(summary["ok"], 1);
    assert_eq!(summary["inconclusive"], 1);
}

#[test]
fn namespace_mapped_ipv6_spellings_of_production_are_production() {
    // Issue 20, item 3: `::ffff:10.231.0.1` is production's 10.231.0.1 (an IPv6 socket
    // connects to it over IPv4), but the inventory took it for a staging address and the
    // probe compared it as text.
    let lab = Lab::new();
    lab.stg.set_hosts(&format!(
        "{STG_HOSTS}::ffff:{PROD4} mapped.prod.test\n::ffff:{STG4} mapped.stg.test\n"
    ));
    // The inventory of the issue: a "staging" address that is production, spelled mapped.
    let bad = lab.inventory(
        &format!(
            r#"{{"name": "db", "production": ["mapped.prod.test"],
                "staging": {{"address": "::ffff:{PROD4}"}}, "ports": [{HOLE}]}}"#
        ),
        "",
    );
    let out = lab
        .probe(&["--inventory", &bad, "--timeout", "500ms"])
        .run();
    assert_unknown(
        &out,
        &format!(
            "services[0].staging.address: ::ffff:{PROD4} (IPv4 {PROD4}) is inside production range {PROD4}/32"
        ),
    );

    // An override record (stg-hosts emit of such an inventory) expecting the mapped
    // production address: the name resolves to it, and that is production, not "expected".
    let inventory = lab.inventory(
        &format!(
            r#"{{"name": "db", "production": ["db.prod.test"],
                "staging": {{"name": "mapped.stg.test", "address": "{STG4}"}}, "ports": [{REJECTED}]}}"#
        ),
        "",
    );
    let overrides = format!(
        "{{\"type\":\"override\",\"name\":\"mapped.prod.test\",\"address\":\"::ffff:{PROD4}\"}}\n"
    );
    let out = run_with_input(
        lab.probe(&["--inventory", &inventory, "--targets", "-"]),
        &overrides,
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    let (checks, _) = records(&out);
    let mapped = find(&checks, "resolves", "mapped.prod.test", None);
    assert_eq!(mapped["outcome"], "production");
    assert_eq!(mapped["status"], "breach");
    assert_eq!(
        per_address(mapped),
        vec![(format!("::ffff:{PROD4}"), "production".to_owned())]
    );
    // The staging name resolving to the mapped spelling of its staging address is fine.
    let staging = find(&checks, "resolves", "mapped.stg.test", None);
    assert_eq!(staging["outcome"], "ok");

    // Without an inventory, an override expecting 10.231.0.2 is met by ::ffff:10.231.0.2:
    // the same address.
    let same = format!(
        "{{\"type\":\"override\",\"name\":\"mapped.stg.test\",\"address\":\"{STG4}\"}}\n\
         {{\"type\":\"override\",\"name\":\"fas.prod.test\",\"address\":\"::ffff:{STG4}\"}}\n"
    );
    let out = run_with_input(lab.probe(&[]), &same);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (checks, _) = records(&out);
    assert!(checks.iter().all(|c| c["outcome"] == "ok"), "{checks:#?}");
}

#[test]
fn namespace_services_without_ports_have_their_production_names_resolved() {
    // Issue 20, item 7: a service without ports got no check for its production names, so
    // a name resolving to production passed.
    let lab = Lab::new();
    let inventory = lab.inventory(
        &format!(
            r#"{{"name": "wiki", "production": ["wiki.prod.test"],
                 "staging": {{"name": "app.stg.test", "address": "{STG4}"}}}},
               {{"name": "fas", "production": ["fas.prod.test"], "staging": {{"address": "{STG4}"}}}},
               {{"name": "db", "production": ["db.prod.test"], "staging": {{"address": "{STG4}"}}}},
               {{"name": "gone", "production": ["gone.prod.test"], "staging": {{"address": "{STG4}"}}}}"#
        ),
        r#"{"host": "db.prod.test", "reason": "monitoring reads it, every port"}"#,
    );
    let out = lab.probe(&["--inventory", &inventory]).run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    let (checks, summary) = records(&out);
    // Points at production: a breach, with where it points.
    let wiki = find(&checks, "resolves", "wiki.prod.test", None);
    assert_eq!(wiki["outcome"], "production");
    assert_eq!(wiki["status"], "breach");
    assert_eq!(wiki["service"], "wiki");
    assert_eq!(wiki["source"], "inventory");
    assert_eq!(
        per_address(wiki),
        vec![(PROD4.to_owned(), "production".to_owned())]
    );
    // Overridden to staging: ok.
    let fas = find(&checks, "resolves", "fas.prod.test", None);
    assert_eq!(fas["outcome"], "ok");
    assert_eq!(
        per_address(fas),
        vec![(STG4.to_owned(), "expected".to_owned())]
    );
    // The inventory says why staging may reach it: allowed, with the reason.
    let db = find(&checks, "resolves", "db.prod.test", None);
    assert_eq!(db["outcome"], "allowed");
    assert_eq!(db["reason"], "monitoring reads it, every port");
    // A name that does not resolve proves nothing.
    let gone = find(&checks, "resolves", "gone.prod.test", None);
    assert_eq!(gone["outcome"], "nxdomain");
    assert_eq!(gone["status"], "inconclusive");
    assert_eq!(summary["checks"], 5, "the four names and the staging name");
    assert_eq!(summary["breach"], 1);

    let out = lab
        .probe(&["--inventory", &inventory, "--format", "nagios"])
        .run();
    assert_eq!(out.code, 2);
    let line = out.stdout.clone();
    assert!(
        line.contains("resolves wiki.prod.test production"),
        "{line}"
    );
}

#[test]
fn namespace_failing_resolver_is_dns_error() {
    let stg = Netns::new("stg");
    stg.set_hosts("127.0.0.1 localhost\n");
    stg.set_etc_file("nsswitch.conf", "hosts: files dns\n");
    // Nothing listens on the namespace's own loopback port 53: the resolver fails.
    stg.set_etc_file(
        "resolv.conf",
        "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
    );
    let mut cmd = stg.exec(bin_path("stg-probe"));
    cmd.args(["--format", "json"]);
    let out = run_with_input(
        cmd,
        "{\"type\":\"target\",\"check\":\"blocked\",\"host\":\"db.prod.test\",\"port\":5432}\n",
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let (checks, _) = records(&out);
    assert_eq!(checks[0]["outcome"], "dns_error");
    assert_eq!(checks[0]["status"], "inconclusive");
}

#[test]
fn namespace_deadline_reports_unfinished_checks_as_inconclusive() {
    let lab = Lab::new();
    let input = format!(
        "{{\"type\":\"target\",\"check\":\"blocked\",\"host\":\"{PROD4}\",\"port\":{DROPPED}}}\n\
         {{\"type\":\"target\",\"check\":\"blocked\",\"host\":\"{PROD4}\",\"port\":{REJECTED}}}\n"
    );
    let out = run_with_input(
        lab.probe(&["--timeout", "30s", "--deadline", "300ms"]),
        &input,
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let (checks, summary) = records(&out);
    assert_eq!(checks[0]["outcome"], "deadline");
    assert_eq!(checks[0]["status"], "inconclusive");
    assert_eq!(checks[1]["outcome"], "refused");
    assert_eq!(summary["deadline_reached"], true);
}

#[test]
fn namespace_a_thousand_dropped_endpoints_all_time_out() {
    let lab = Lab::new();
    let mut input = String::new();
    for port in 10_000..11_000 {
        writeln!(
            input,
            "{{\"type\":\"target\",\"check\":\"blocked\",\"host\":\"{PROD4}\",\"port\":{port}}}"
        )
        .unwrap();
    }
    let out = run_with_input(
        lab.probe(&["--timeout", "1s", "--concurrency", "1000"]),
        &input,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (checks, summary) = records(&out);
    assert_eq!(checks.len(), 1000);
    assert!(checks.iter().all(|c| c["outcome"] == "timeout"));
    assert_eq!(summary["ok"], 1000);
    assert_eq!(summary["deadline_reached"], false);
}

#[test]
fn stdin_cannot_be_both_inventory_and_targets() {
    let out = run_with_input(
        {
            let mut cmd = stg("stg-probe");
            cmd.args(["--inventory", "-", "--targets", "-"]);
            cmd
        },
        "",
    );
    assert_unknown(&out, "cannot both read stdin");
}

#[test]
fn inventory_on_stdin_and_allow_list_applies_to_targets() {
    let dir = tempfile::tempdir().unwrap();
    let staging = TcpListener::bind("127.0.0.2:0").unwrap();
    let port = staging.local_addr().unwrap().port();
    let production = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let inventory = loopback_inventory(
        port,
        r#"{"host": "127.0.0.1", "reason": "log host, every port"}"#,
    );
    let targets = write_file(
        &dir,
        "targets.jsonl",
        &format!("{{\"type\":\"target\",\"check\":\"blocked\",\"host\":\"127.0.0.1\",\"port\":{port}}}\n"),
    );
    let mut cmd = stg("stg-probe");
    cmd.args(["--inventory", "-", "--targets", &targets]);
    let out = run_with_input(cmd, &inventory);
    // localhost:port from the inventory is open (a breach); 127.0.0.1:port from the targets
    // file is the allow-listed host (all ports), so it is allowed and not connected to.
    assert_eq!(out.code, 2, "{}", out.stderr);
    let (checks, summary) = records(&out);
    let target = find(&checks, "blocked", "127.0.0.1", Some(port));
    assert_eq!(target["outcome"], "allowed");
    assert_eq!(target["reason"], "log host, every port");
    assert_eq!(target["source"], format!("{targets}:1"));
    assert_eq!(
        find(&checks, "blocked", "localhost", Some(port))["outcome"],
        "open"
    );
    assert_eq!(summary["breach"], 1);
    drop((staging, production));
}

// See: issue "Hardening, round 2", item 9. The text table printed the inventory's free
// text (an allow-list reason) as it was: a newline forged a row ("OK ..."), an escape
// sequence reached the terminal.
#[test]
fn text_output_escapes_the_inventorys_free_text() {
    let dir = tempfile::tempdir().unwrap();
    let staging = TcpListener::bind("127.0.0.2:0").unwrap();
    let port = staging.local_addr().unwrap().port();
    let reason = "log host\nOK        blocked   db.example.org:5432  refused\u{1b}]0;owned\u{7}";
    let inventory = write_file(
        &dir,
        "inv.json",
        &loopback_inventory(
            port,
            &serde_json::json!({"host": "localhost", "reason": reason}).to_string(),
        ),
    );
    let out = stg("stg-probe")
        .args(["--inventory", &inventory, "--format", "text"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = out.stdout.clone();
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "{text:?}"
    );
    // Header, one row per check (blocked and reachable), a blank line, the verdict.
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(
        text.contains(
            r#"allowed: "log host\nOK        blocked   db.example.org:5432  refused\x1b]0;owned\a""#
        ),
        "{text}"
    );
    drop(staging);
}

// See: issue "Hardening, round 2", item 9. A FIFO as the inventory hung stg-probe (open
// waits for a writer); /dev/zero or a huge file was read whole.
#[test]
fn fifos_devices_and_huge_inventories_are_refused_not_waited_on_or_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("inventory.json");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let huge = dir.path().join("huge.json");
    std::fs::write(&huge, loopback_inventory(5432, "") + &" ".repeat(4 << 20)).unwrap();
    for (inventory, why) in [
        (
            fifo.to_str().unwrap(),
            "is a FIFO; only a regular file is read",
        ),
        ("/dev/zero", "is a device; only a regular file is read"),
        (huge.to_str().unwrap(), "at most 4194304 are read"),
    ] {
        let mut cmd = stg("stg-probe");
        cmd.args(["--inventory", inventory]);
        let out = stg_tests::cmd::output_bounded(
            &cmd,
            Stdio::null(),
            std::time::Duration::from_secs(20),
            4 << 30,
        );
        assert_unknown(&Run::from(out), why);
    }
}
