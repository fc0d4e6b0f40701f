//! Cross-tool pipelines: the tools composed the way the README shows them.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use stg_tests::run::{Run, RunExt};
use stg_tests::{cmd, netns::Netns, pg, sshd::Sshd};

const KEY: &str = "pipeline-key-0123456789abcdef";

fn workspace_file(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// The design card's pipeline: `stg-dump fas2 | ssh db02.stg stg-restore`, with a real sshd
/// and ssh client on loopback between two real clusters. The masked copy replaces an older
/// one, which is kept; `list` and `stg-age databases` read the provenance.
#[test]
fn dump_piped_over_ssh_into_restore_replaces_staging_and_keeps_the_old_copy() {
    let prod = pg::Cluster::start();
    prod.createdb("fas2");
    prod.script(
        "fas2",
        &std::fs::read_to_string(workspace_file("tests/fixtures/fas2.sql")).unwrap(),
    );
    let stg = pg::Cluster::start();
    stg.sql("postgres", "CREATE ROLE fas2 LOGIN");
    stg.createdb("fas2");
    stg.sql("fas2", "CREATE TABLE stale_staging_work (note text); INSERT INTO stale_staging_work VALUES ('keep me')");
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("environment");
    std::fs::write(&env_file, "staging\n").unwrap();

    let remote = format!(
        "STG_ENVIRONMENT_FILE={} {} -h 127.0.0.1 -p {} -U postgres --format json",
        env_file.display(),
        cmd::bin_path("stg-restore").display(),
        stg.port()
    );
    let mut dump = cmd::stg("stg-dump")
        .args(prod.conn_args())
        .arg("--mask")
        .arg(workspace_file("stg-dump/tests/fixtures/fas2-rules.json"))
        .arg("fas2")
        .env("STG_MASK_KEY", KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ssh = sshd
        .ssh(&remote)
        .stdin(dump.stdout.take().unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let restored = Run::from(ssh.wait_with_output().unwrap());
    Run::from(dump.wait_with_output().unwrap()).ok();
    assert_eq!(restored.code, 0, "ssh stg-restore: {}", sshd.log());
    let _ = restored.ok().summary();

    // Every table's contents equal the source's, masked columns excepted.
    for query in [
        "SELECT id, created FROM people ORDER BY id",
        "SELECT id, name, display_name FROM groups ORDER BY id",
        "SELECT group_id, role, count(*) FROM memberships GROUP BY 1, 2 ORDER BY 1, 2",
    ] {
        assert_eq!(prod.sql("fas2", query), stg.sql("fas2", query), "{query}");
    }
    assert_eq!(stg.sql("fas2", "SELECT count(*) FROM sessions").trim(), "0");
    assert_eq!(
        stg.sql(
            "fas2",
            "SELECT count(*) FROM people WHERE username LIKE 'user%' OR password <> 'INVALID'"
        )
        .trim(),
        "0"
    );
    assert_eq!(
        stg.sql(
            "fas2",
            "SELECT count(*) FROM memberships m JOIN people p ON p.username = m.person_username"
        )
        .trim(),
        "201"
    );

    // The previous staging copy is kept, untouched, and listed with the new one's provenance.
    let kept: Vec<String> = stg
        .databases()
        .into_iter()
        .filter(|d| d.starts_with("fas2__stg_prev_"))
        .collect();
    assert_eq!(kept.len(), 1, "{:?}", stg.databases());
    assert_eq!(
        stg.sql(&kept[0], "SELECT note FROM stale_staging_work")
            .trim(),
        "keep me"
    );
    assert!(!stg
        .databases()
        .iter()
        .any(|d| d.ends_with("__stg_incoming")));
    let list = cmd::stg("stg-restore")
        .args(["list", "fas2", "--format", "json"])
        .args(stg.conn_args())
        .output()
        .unwrap();
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(listed.contains(&kept[0]), "{listed}");
    assert!(listed.contains("\"source_database\":\"fas2\""), "{listed}");
    // The provenance says the masking decided every column; list shows it in brief.
    assert!(listed.contains("\"undecided\":\"refuse\""), "{listed}");
    let list = cmd::stg("stg-restore")
        .args(["list", "fas2", "--format", "text"])
        .args(stg.conn_args())
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(listed.contains("masked (undecided: refuse)"), "{listed}");
    // verify reads what the stream's masking covered from the manifest.
    let stream = cmd::stg("stg-dump")
        .args(prod.conn_args())
        .arg("--mask")
        .arg(workspace_file("stg-dump/tests/fixtures/fas2-rules.json"))
        .arg("fas2")
        .env("STG_MASK_KEY", KEY)
        .output()
        .unwrap();
    assert!(stream.status.success());
    let file = dir.path().join("fas2.stg.zst");
    std::fs::write(&file, &stream.stdout).unwrap();
    let verify = cmd::stg("stg-restore")
        .args(["verify", "--format", "text"])
        .stdin(std::fs::File::open(&file).unwrap())
        .run()
        .ok();
    let text = &verify.stdout;
    assert!(
        text.contains("masking: masked (undecided: refuse): 1 constant, 1 email, 7 keep, 2 null, 4 pseudonym, 1 regex; 1 table(s) excluded"),
        "{text}"
    );

    // stg-age reads the same provenance: synced today.
    let age = cmd::stg("stg-age")
        .arg("databases")
        .args(stg.conn_args())
        .args(["--format", "json", "--max-age", "1d"])
        .run()
        .ok();
    let fas2 = age
        .records()
        .into_iter()
        .find(|r| r["name"] == "fas2")
        .expect("fas2 in stg-age databases");
    assert_eq!(fas2["age_days"], 0, "{fas2}");
    assert_eq!(fas2["source_database"], "fas2", "{fas2}");
    assert_eq!(fas2["verified"], true, "{fas2}");
}

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

    let _ = cmd::stg("stg-hosts")
        .args(["apply", "--inventory"])
        .arg(&inventory)
        .args(["--file", &hosts, "--format", "json"])
        .env("STG_ENVIRONMENT_FILE", &env_file)
        .run()
        .ok();

    let probe_overrides = || {
        let emit = cmd::stg("stg-hosts")
            .args(["emit", "--inventory"])
            .arg(&inventory)
            .args(["--format", "json"])
            .run()
            .ok();
        let mut probe = ns
            .exec(cmd::bin_path("stg-probe"))
            .args(["--format", "json", "--timeout", "1s"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        probe.stdin.take().unwrap().write_all(&emit.bytes).unwrap();
        Run::from(probe.wait_with_output().unwrap())
    };

    let recs = probe_overrides().ok().records();
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

    let _ = cmd::stg("stg-hosts")
        .args(["remove", "--file", &hosts])
        .env("STG_ENVIRONMENT_FILE", &env_file)
        .run()
        .ok();
    assert_eq!(
        std::fs::read_to_string(&hosts).unwrap(),
        "127.0.0.1 localhost\n"
    );
    // Names that no longer resolve are inconclusive.
    let _ = probe_overrides().code_is(1);
}
