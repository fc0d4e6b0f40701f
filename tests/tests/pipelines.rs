//! Cross-tool pipelines: the tools composed the way the README shows them.

use std::io::Write;
use std::process::Stdio;

use stg_tests::{cmd, netns::Netns};

const INVENTORY: &str = r#"{
  "name": "pipeline-stg",
  "production": {"domain": "fedoraproject.org", "ranges": ["10.5.126.0/24"]},
  "staging": {"domain": "stg.fedoraproject.org", "ranges": ["10.5.128.0/24"]},
  "services": [
    {"name": "fas", "production": ["fas01.fedoraproject.org", "admin.fedoraproject.org"],
     "staging": {"name": "fas01.stg.fedoraproject.org", "address": "10.5.128.10"}, "ports": [443]},
    {"name": "wiki", "production": ["wiki.fedoraproject.org"],
     "staging": {"name": "app01.stg.fedoraproject.org", "address": "10.5.128.20"}, "ports": [443]}
  ]
}"#;

fn records(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// `stg-hosts apply` writes the overrides into the hosts file a staging host resolves with;
/// `stg-hosts emit --format json | stg-probe` then proves they are in effect. After
/// `stg-hosts remove`, the same probe is inconclusive, not a pass.
#[test]
fn hosts_overrides_are_proven_in_effect_by_probe() {
    let ns = Netns::new("pipe");
    // Resolve from files only: no DNS server exists in the namespace.
    ns.set_etc_file("nsswitch.conf", "hosts: files\n");
    ns.set_hosts("127.0.0.1 localhost\n");
    let hosts = format!("/etc/netns/{}/hosts", ns.name());
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.json");
    std::fs::write(&inventory, INVENTORY).unwrap();
    let env_file = dir.path().join("environment");
    std::fs::write(&env_file, "staging\n").unwrap();

    let apply = cmd::stg("stg-hosts")
        .args(["apply", "--inventory"])
        .arg(&inventory)
        .args(["--file", &hosts, "--format", "json"])
        .env("STG_ENVIRONMENT_FILE", &env_file)
        .output()
        .unwrap();
    assert!(
        apply.status.success(),
        "{}",
        String::from_utf8_lossy(&apply.stderr)
    );

    let probe_overrides = || {
        let emit = cmd::stg("stg-hosts")
            .args(["emit", "--inventory"])
            .arg(&inventory)
            .args(["--format", "json"])
            .output()
            .unwrap();
        assert!(emit.status.success());
        let mut probe = ns
            .exec(cmd::bin_path("stg-probe"))
            .args(["--format", "json", "--timeout", "1s"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        probe.stdin.take().unwrap().write_all(&emit.stdout).unwrap();
        probe.wait_with_output().unwrap()
    };

    let out = probe_overrides();
    let recs = records(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{recs:#?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checked: Vec<&str> = recs
        .iter()
        .filter(|r| r["type"] != "summary")
        .filter_map(|r| r["host"].as_str().or_else(|| r["name"].as_str()))
        .collect();
    for name in [
        "fas01.fedoraproject.org",
        "admin.fedoraproject.org",
        "wiki.fedoraproject.org",
    ] {
        assert!(checked.contains(&name), "{name} not checked: {recs:#?}");
    }
    assert_eq!(recs.last().unwrap()["type"], "summary");

    let remove = cmd::stg("stg-hosts")
        .args(["remove", "--file", &hosts])
        .env("STG_ENVIRONMENT_FILE", &env_file)
        .output()
        .unwrap();
    assert!(
        remove.status.success(),
        "{}",
        String::from_utf8_lossy(&remove.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&hosts).unwrap(),
        "127.0.0.1 localhost\n"
    );
    let out = probe_overrides();
    assert_eq!(
        out.status.code(),
        Some(1),
        "names that no longer resolve must be inconclusive: {:#?}",
        records(&out.stdout)
    );
}
