//! End-to-end tests of the `stg-hosts` binary on real files: a corpus of real-world hosts
//! files (round trips), every bad input of the issue (broken inventories, missing,
//! unreadable, read-only and full hosts files), concurrent applies, bind-mounted files,
//! and a closed stdout. Mount-based cases mount a small tmpfs or bind mount under a
//! temporary directory (the tests run as root) and unmount it on drop, even on failure.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use stg_tests::cmd::{bin_path, closed_pipe, program, stg};
use stg_tests::run::Run;

const CORPUS: &[&str] = &[
    "debian-default",
    "fedora-default",
    "ipv6",
    "aliases",
    "comments",
    "crlf",
    "no-trailing-newline",
    "docker-container",
    "empty",
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fedora_inventory() -> PathBuf {
    fixtures().join("fedora-stg.json")
}

/// The tool on a host marked as staging (`apply` refuses elsewhere).
fn stg_hosts() -> Command {
    let mut cmd = stg("stg-hosts");
    cmd.env(
        "STG_ENVIRONMENT_FILE",
        fixtures().join("staging.environment"),
    );
    cmd
}

fn hosts(args: &[&str]) -> Run {
    Run::from(stg_hosts().args(args).output().expect("run stg-hosts"))
}

fn apply(inventory: &Path, file: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "apply",
        "--format",
        "json",
        "-i",
        inventory.to_str().unwrap(),
        "--file",
        file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    hosts(&args)
}

fn check(inventory: &Path, file: &Path) -> Run {
    hosts(&[
        "check",
        "--format",
        "json",
        "-i",
        inventory.to_str().unwrap(),
        "--file",
        file.to_str().unwrap(),
    ])
}

fn remove(file: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "remove",
        "--format",
        "json",
        "--file",
        file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    hosts(&args)
}

/// An inventory named `name` with one service per `(service, names, address)`.
fn inventory_text(name: &str, services: &[(&str, Vec<String>, &str)]) -> String {
    let services: Vec<Value> = services
        .iter()
        .map(|(service, names, address)| {
            serde_json::json!({
                "name": service,
                "production": names,
                "staging": {"address": address},
            })
        })
        .collect();
    serde_json::json!({
        "name": name,
        "production": {"domain": "example.org", "ranges": ["10.1.0.0/16"]},
        "staging": {"domain": "stg.example.org", "ranges": ["10.2.0.0/16"]},
        "services": services,
    })
    .to_string()
}

fn write_inventory(dir: &Path, name: &str, services: &[(&str, Vec<String>, &str)]) -> PathBuf {
    let path = dir.join(format!("{name}.json"));
    fs::write(&path, inventory_text(name, services)).unwrap();
    path
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{prefix}{i:04}.example.org"))
        .collect()
}

/// File names in a directory.
fn listing(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn backups(dir: &Path) -> Vec<String> {
    listing(dir)
        .into_iter()
        .filter(|n| n.contains(".stg-bak."))
        .collect()
}

/// A mount made by the test, unmounted on drop (also when the test fails).
struct Mount(PathBuf);

impl Mount {
    fn run(args: &[&str]) {
        let status = Command::new("mount")
            .args(args)
            .status()
            .unwrap_or_else(|_| stg_tests::require("mount", "mount"));
        assert!(
            status.success(),
            "mount {args:?} failed (the tests run as root)"
        );
    }

    fn tmpfs(at: &Path, size: &str) -> Mount {
        fs::create_dir_all(at).unwrap();
        Self::run(&[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=755"),
            "tmpfs",
            at.to_str().unwrap(),
        ]);
        Mount(at.to_path_buf())
    }

    fn bind(from: &Path, at: &Path) -> Mount {
        Self::run(&["--bind", from.to_str().unwrap(), at.to_str().unwrap()]);
        Mount(at.to_path_buf())
    }

    fn remount(&self, options: &str) {
        Self::run(&["-o", options, self.0.to_str().unwrap()]);
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn apply_then_remove_gives_back_the_original_bytes_for_every_corpus_file() {
    let dir = tempfile::tempdir().unwrap();
    let inventories = tempfile::tempdir().unwrap();
    let second = write_inventory(
        inventories.path(),
        "second",
        &[("other", names("other-", 12), "10.2.0.7")],
    );
    for name in CORPUS {
        let original = fs::read(fixtures().join("hosts").join(name)).unwrap();
        let file = dir.path().join(name);
        fs::write(&file, &original).unwrap();

        let applied = apply(&fedora_inventory(), &file, &[]).ok().summary();
        assert_eq!(applied["changed"], true, "{name}");
        assert_eq!(applied["method"], "rename", "{name}");
        let with_block = fs::read(&file).unwrap();
        // Everything before the block is the original, byte for byte.
        assert_eq!(&with_block[..original.len()], &original[..], "{name}");
        if original.windows(2).any(|w| w == b"\r\n") {
            let block = String::from_utf8_lossy(&with_block[original.len()..]).into_owned();
            assert!(
                block.split_inclusive('\n').all(|l| l.ends_with("\r\n")),
                "{name}: the block follows the file's CRLF endings: {block:?}"
            );
        }
        assert_eq!(
            check(&fedora_inventory(), &file).ok().summary()["in_sync"],
            true
        );

        // A second apply changes nothing and writes nothing, not even a backup.
        let before = backups(dir.path()).len();
        let again = apply(&fedora_inventory(), &file, &[]).ok().summary();
        assert_eq!(again["changed"], false, "{name}");
        assert_eq!(backups(dir.path()).len(), before, "{name}");

        let removed = remove(&file, &[]).ok().summary();
        assert_eq!(removed["changed"], true);
        assert_eq!(removed["block"], "fedora-stg");
        assert_eq!(fs::read(&file).unwrap(), original, "{name}: round trip");

        // Two blocks, taken out in the order they went in.
        apply(&fedora_inventory(), &file, &[]).ok();
        apply(&second, &file, &[]).ok();
        assert_eq!(check(&fedora_inventory(), &file).code, 0, "{name}");
        assert_eq!(check(&second, &file).code, 0, "{name}");
        remove(&file, &["--name", "fedora-stg"]).ok();
        remove(&file, &["--name", "second"]).ok();
        assert_eq!(fs::read(&file).unwrap(), original, "{name}: two blocks");
    }
}

#[test]
fn emit_json_records_are_exactly_what_stg_probe_reads() {
    let run = hosts(&["emit", "-i", fedora_inventory().to_str().unwrap()]).ok();
    let records = run.records();
    let overrides: Vec<&Value> = records.iter().filter(|r| r["type"] == "override").collect();
    assert_eq!(overrides.len(), 9);
    assert_eq!(records.len(), 10, "overrides then one summary");
    for r in &overrides {
        let keys: BTreeSet<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, BTreeSet::from(["type", "name", "address", "service"]));
    }
    assert_eq!(overrides[0]["name"], "accounts.fedoraproject.org");
    assert_eq!(overrides[0]["address"], "10.5.128.10");
    assert_eq!(overrides[0]["service"], "fas");
    assert_eq!(overrides[8]["address"], "2620:52:3:2::40");
    let summary = records.last().unwrap();
    assert_eq!(summary["overrides"], 9);
    assert_eq!(summary["addresses"], 4);
    assert_eq!(summary["inventory"], "fedora-stg");
}

#[test]
fn emit_text_is_sorted_hosts_lines_wrapped_at_eight_names() {
    let dir = tempfile::tempdir().unwrap();
    let inv = write_inventory(
        dir.path(),
        "wrap",
        &[
            ("late", vec!["z.example.org".into()], "10.2.0.100"),
            ("many", names("n", 19), "10.2.0.9"),
        ],
    );
    let run = hosts(&["emit", "--format", "text", "-i", inv.to_str().unwrap()]).ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    assert!(lines[..3].iter().all(|l| l.starts_with("10.2.0.9\t")));
    let counts: Vec<usize> = lines
        .iter()
        .map(|l| l.split_whitespace().count() - 1)
        .collect();
    assert_eq!(counts, [8, 8, 3, 1]);
    assert!(lines[0].contains("n0000.example.org n0001.example.org"));
    assert_eq!(lines[3], "10.2.0.100\tz.example.org");
}

#[test]
fn inventory_from_stdin() {
    let text = inventory_text("stdin", &[("a", vec!["a.example.org".into()], "10.2.0.1")]);
    let mut child = stg_hosts()
        .args(["emit", "--format", "json", "-i", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let run = Run::from(child.wait_with_output().unwrap()).ok();
    assert_eq!(run.records()[0]["name"], "a.example.org");
}

#[test]
fn bad_inventories_are_refused_naming_the_problem_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let original = fs::read(fixtures().join("hosts/debian-default")).unwrap();
    let file = dir.path().join("hosts");
    fs::write(&file, &original).unwrap();
    let good = fs::read_to_string(fedora_inventory()).unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        ("not JSON", "{\"name\": ".into(), "inventory"),
        (
            "unknown field",
            good.replacen("\"ports\": [443]", "\"port\": [443]", 1),
            "unknown field `port`",
        ),
        (
            "duplicate name",
            good.replace("\"wiki.fedoraproject.org\"", "\"admin.fedoraproject.org\""),
            "duplicate name \"admin.fedoraproject.org\"",
        ),
        (
            "production-range target",
            good.replace("\"10.5.128.30\"", "\"10.5.126.30\""),
            "10.5.126.30 is inside production range 10.5.126.0/24",
        ),
        (
            "space in a name",
            good.replace(
                "\"wiki.fedoraproject.org\"",
                "\"wiki.fedoraproject.org evil\"",
            ),
            "is not a valid host name",
        ),
        (
            "newline in a name (injection)",
            good.replace(
                "\"wiki.fedoraproject.org\"",
                "\"wiki.fedoraproject.org\\n10.5.126.1 admin.fedoraproject.org\"",
            ),
            "is not a valid host name",
        ),
        (
            "tab in a staging name",
            good.replace("\"app01.stg.phx2", "\"app01\\t.stg.phx2"),
            "services[1].staging.name",
        ),
    ];
    for (what, text, expect) in cases {
        let inv = dir.path().join("bad.json");
        fs::write(&inv, text).unwrap();
        for sub in ["emit", "apply", "check"] {
            let mut args = vec![sub, "-i", inv.to_str().unwrap()];
            if sub != "emit" {
                args.extend(["--file", file.to_str().unwrap()]);
            }
            let run = hosts(&args);
            assert_eq!(run.code, 2, "{what} / {sub}: {}", run.stderr);
            assert!(
                run.stderr.contains(expect),
                "{what} / {sub}: {}",
                run.stderr
            );
            assert!(run.stderr.contains("bad.json"), "{what}: names the file");
            assert!(run.stdout.is_empty(), "{what} / {sub}: {}", run.stdout);
        }
        assert_eq!(fs::read(&file).unwrap(), original, "{what}");
        assert_eq!(
            listing(dir.path()),
            BTreeSet::from(["bad.json".into(), "hosts".into()])
        );
    }
}

#[test]
fn a_target_without_address_needs_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inv.json");
    fs::write(
        &inv,
        r#"{"name":"r","production":{"ranges":["10.1.0.0/16"]},"staging":{},
            "services":[{"name":"fas","production":["fas.example.org"],"staging":{"name":"localhost"}}]}"#,
    )
    .unwrap();
    let run = hosts(&["emit", "-i", inv.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("service \"fas\""), "{}", run.stderr);
    assert!(
        run.stderr.contains("add services[0].staging.address"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--resolve"), "{}", run.stderr);

    let run = hosts(&["emit", "--resolve", "-i", inv.to_str().unwrap()]).ok();
    let address: std::net::IpAddr = run.records()[0]["address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        address.is_loopback(),
        "localhost resolves to loopback: {address}"
    );
}

#[test]
fn missing_hosts_file_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("no-such-hosts");
    for run in [
        apply(&fedora_inventory(), &file, &[]),
        check(&fedora_inventory(), &file),
        remove(&file, &[]),
    ] {
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(
            run.stderr.contains("no-such-hosts does not exist"),
            "{}",
            run.stderr
        );
    }
    assert!(listing(dir.path()).is_empty(), "nothing created");
}

#[test]
fn unreadable_hosts_file_is_an_io_error() {
    // Root reads any file, so the tool runs as `nobody` for this one.
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.path().join("hosts");
    fs::copy(fixtures().join("hosts/fedora-default"), &file).unwrap();
    let inv = dir.path().join("inv.json");
    fs::copy(fedora_inventory(), &inv).unwrap();
    fs::set_permissions(&inv, fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o000)).unwrap();
    for sub in ["check", "apply"] {
        let out = program("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .env(
                "STG_ENVIRONMENT_FILE",
                fixtures().join("staging.environment"),
            )
            .arg(bin_path("stg-hosts"))
            .args([
                sub,
                "-i",
                inv.to_str().unwrap(),
                "--file",
                file.to_str().unwrap(),
            ])
            .output()
            .unwrap_or_else(|_| stg_tests::require("setpriv", "util-linux"));
        let run = Run::from(out);
        assert_eq!(run.code, 3, "{sub}: {}", run.stderr);
        assert!(
            run.stderr.contains("cannot read hosts file"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("Permission denied"), "{}", run.stderr);
    }
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(
        fs::read(&file).unwrap(),
        fs::read(fixtures().join("hosts/fedora-default")).unwrap()
    );
}

#[test]
fn read_only_file_system_is_an_io_error_and_the_file_is_intact() {
    let dir = tempfile::tempdir().unwrap();
    let at = dir.path().join("etc");
    let mount = Mount::tmpfs(&at, "64k");
    let file = at.join("hosts");
    let original = fs::read(fixtures().join("hosts/fedora-default")).unwrap();
    fs::write(&file, &original).unwrap();
    mount.remount("remount,ro");

    let run = apply(&fedora_inventory(), &file, &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("Read-only file system"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hosts.stg-lock"), "{}", run.stderr);
    assert_eq!(fs::read(&file).unwrap(), original);
    assert_eq!(listing(&at), BTreeSet::from(["hosts".into()]));
    // Reading still works, and a dry run needs no write access.
    assert_eq!(check(&fedora_inventory(), &file).code, 1);
    assert_eq!(apply(&fedora_inventory(), &file, &["--dry-run"]).code, 0);
}

#[test]
fn read_only_bind_mounted_file_is_an_io_error_and_the_file_is_intact() {
    // A container's read-only /etc/hosts: the directory is writable, the file is a
    // read-only mount point, so rename fails (EBUSY) and writing in place fails (EROFS).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hosts");
    let original = fs::read(fixtures().join("hosts/docker-container")).unwrap();
    fs::write(&file, &original).unwrap();
    let mount = Mount::bind(&file, &file);
    mount.remount("remount,bind,ro");

    let run = apply(&fedora_inventory(), &file, &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("Read-only file system"),
        "{}",
        run.stderr
    );
    assert_eq!(fs::read(&file).unwrap(), original);
    assert!(backups(dir.path()).is_empty(), "no backup left behind");
    assert!(!listing(dir.path()).iter().any(|n| n.contains("stg-tmp")));
}

#[test]
fn bind_mounted_file_is_written_in_place_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("hosts.source");
    let file = dir.path().join("hosts");
    let original = fs::read(fixtures().join("hosts/docker-container")).unwrap();
    fs::write(&source, &original).unwrap();
    fs::write(&file, b"").unwrap();
    let _mount = Mount::bind(&source, &file);

    let summary = apply(&fedora_inventory(), &file, &[]).ok().summary();
    assert_eq!(summary["method"], "in-place");
    let now = fs::read(&file).unwrap();
    assert!(now.starts_with(&original));
    assert_eq!(fs::read(&source).unwrap(), now, "written through the mount");
    assert_eq!(check(&fedora_inventory(), &file).code, 0);
    let removed = remove(&file, &[]).ok().summary();
    assert_eq!(removed["method"], "in-place");
    assert_eq!(fs::read(&file).unwrap(), original);
}

/// Fills the tmpfs at `dir` and then frees `free_pages` 4 KiB pages.
fn fill(dir: &Path, free_pages: u64) {
    let mut filler = fs::File::create(dir.join("filler")).unwrap();
    let chunk = [0u8; 4096];
    let mut written = 0u64;
    while filler.write_all(&chunk).is_ok() {
        written += 4096;
    }
    filler
        .set_len(written.saturating_sub(free_pages * 4096))
        .unwrap();
}

#[test]
fn full_disk_is_an_io_error_and_the_file_is_intact() {
    let dir = tempfile::tempdir().unwrap();
    // The new file needs two pages (more than 4 KiB); the backup of the original, one.
    let inv = write_inventory(
        dir.path(),
        "big",
        &[("many", names("full-disk-host-", 120), "10.2.0.9")],
    );
    let original = fs::read(fixtures().join("hosts/fedora-default")).unwrap();
    for (free_pages, failing) in [(0, "backup"), (1, "temporary file")] {
        let at = dir.path().join(format!("etc{free_pages}"));
        let _mount = Mount::tmpfs(&at, "64k");
        let file = at.join("hosts");
        fs::write(&file, &original).unwrap();
        fill(&at, free_pages);

        let run = apply(&inv, &file, &[]);
        assert_eq!(run.code, 3, "{}", run.stderr);
        assert!(
            run.stderr.contains("No space left on device"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains(failing), "{failing}: {}", run.stderr);
        assert_eq!(fs::read(&file).unwrap(), original);
        assert_eq!(
            listing(&at),
            BTreeSet::from(["filler".into(), "hosts".into(), "hosts.stg-lock".into()]),
            "no backup or temporary file left behind"
        );
    }
}

#[test]
fn full_disk_under_a_bind_mounted_file_writes_the_original_back() {
    // The in-place path (rename refused with EBUSY) on a full disk: the write overwrites the
    // start of the file before it fails, so the original must be written back.
    let dir = tempfile::tempdir().unwrap();
    let inv = write_inventory(
        dir.path(),
        "big",
        &[("many", names("full-disk-host-", 120), "10.2.0.9")],
    );
    // The original starts with an older version of the block, so the new bytes differ from
    // the first line on (a block appended at the end would leave the start unchanged).
    let old_inv = dir.path().join("old");
    fs::create_dir(&old_inv).unwrap();
    let old_inv = write_inventory(&old_inv, "big", &[("many", names("old-", 2), "10.2.0.9")]);
    let seed = dir.path().join("seed");
    fs::write(&seed, b"").unwrap();
    apply(&old_inv, &seed, &[]).ok();
    let mut original = fs::read(&seed).unwrap();
    original.extend(fs::read(fixtures().join("hosts/fedora-default")).unwrap());
    fs::remove_file(&seed).unwrap();
    for backup in backups(dir.path()) {
        fs::remove_file(dir.path().join(backup)).unwrap();
    }
    let at = dir.path().join("tmpfs");
    let _tmpfs = Mount::tmpfs(&at, "64k");
    let source = at.join("hosts.source");
    fs::write(&source, &original).unwrap();
    fill(&at, 0);
    let file = dir.path().join("hosts");
    fs::write(&file, b"").unwrap();
    let _bind = Mount::bind(&source, &file);

    let run = apply(&inv, &file, &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("in place"), "{}", run.stderr);
    assert!(
        run.stderr.contains("No space left on device"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("the original contents were written back"),
        "{}",
        run.stderr
    );
    assert_eq!(fs::read(&file).unwrap(), original);
    assert!(
        backups(dir.path()).is_empty(),
        "backup removed: the original is intact"
    );
}

#[test]
fn two_applies_at_once_with_different_inventories_both_survive() {
    // Four inventories at once, several rounds: every block must be there afterwards and
    // removing them all must give back the original bytes.
    let dir = tempfile::tempdir().unwrap();
    let inventories: Vec<(String, PathBuf)> = (0..4)
        .map(|i| {
            let name = format!("team-{i}");
            let address = format!("10.2.0.{}", i + 1);
            let path = write_inventory(
                dir.path(),
                &name,
                &[("svc", names(&format!("t{i}-"), 40), address.as_str())],
            );
            (name, path)
        })
        .collect();
    let original = fs::read(fixtures().join("hosts/fedora-default")).unwrap();
    let file = dir.path().join("hosts");
    for round in 0..8 {
        fs::write(&file, &original).unwrap();
        let children: Vec<_> = inventories
            .iter()
            .map(|(_, inv)| {
                stg_hosts()
                    .args(["apply", "--format", "json", "-i"])
                    .arg(inv)
                    .arg("--file")
                    .arg(&file)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let run = Run::from(child.wait_with_output().unwrap()).ok();
            assert_eq!(run.summary()["changed"], true, "round {round}");
        }
        for (name, inv) in &inventories {
            assert_eq!(
                check(inv, &file).code,
                0,
                "round {round}: block {name} lost"
            );
        }
        for (name, _) in &inventories {
            remove(&file, &["--name", name]).ok();
        }
        assert_eq!(
            fs::read(&file).unwrap(),
            original,
            "round {round}: nothing else lost"
        );
    }
}

#[test]
fn hand_edited_block_is_reported_and_kept_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hosts");
    fs::copy(fixtures().join("hosts/debian-default"), &file).unwrap();
    apply(&fedora_inventory(), &file, &[]).ok();
    let edited = fs::read_to_string(&file)
        .unwrap()
        .replace("10.5.128.30\t", "10.5.128.31\t")
        + "10.5.128.99 extra.fedoraproject.org\n";
    // The extra line is outside the block: only the stale one is a hand edit.
    fs::write(&file, &edited).unwrap();

    let run = check(&fedora_inventory(), &file);
    assert_eq!(run.code, 1);
    let records = run.records();
    let kinds: Vec<&str> = records[..records.len() - 1]
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["hand-edited", "stale"]);
    assert_eq!(records[1]["name"], "db-fas01.phx2.fedoraproject.org");
    assert_eq!(records[1]["address"], "10.5.128.30");
    assert_eq!(records[1]["found"], "10.5.128.31");
    assert_eq!(records[2]["hand_edited"], true);

    let run = apply(&fedora_inventory(), &file, &[]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("edited by hand"), "{}", run.stderr);
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
    let run = remove(&file, &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(fs::read_to_string(&file).unwrap(), edited);

    apply(&fedora_inventory(), &file, &["--force"]).ok();
    assert_eq!(check(&fedora_inventory(), &file).code, 0);
    assert!(fs::read_to_string(&file)
        .unwrap()
        .ends_with("10.5.128.99 extra.fedoraproject.org\n"));
}

#[test]
fn check_reports_missing_extra_and_conflicting_entries() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hosts");
    fs::write(
        &file,
        "127.0.0.1 localhost\n10.5.126.7 wiki.fedoraproject.org\n",
    )
    .unwrap();

    let run = check(&fedora_inventory(), &file);
    assert_eq!(run.code, 1);
    let records = run.records();
    let summary = records.last().unwrap();
    assert_eq!(summary["present"], false);
    assert_eq!(summary["missing"], 9);
    assert_eq!(summary["conflicts"], 1);
    let conflict = records.iter().find(|r| r["kind"] == "conflict").unwrap();
    assert_eq!(conflict["line"], 2);
    assert_eq!(conflict["found"], "10.5.126.7");

    // An older inventory's block: one name more, one name less.
    let dir2 = tempfile::tempdir().unwrap();
    let text = fs::read_to_string(fedora_inventory()).unwrap().replace(
        "\"packages.fedoraproject.org\"",
        "\"retired.fedoraproject.org\"",
    );
    let old = dir2.path().join("old.json");
    fs::write(&old, text).unwrap();
    fs::write(&file, "127.0.0.1 localhost\n").unwrap();
    apply(&old, &file, &[]).ok();
    let records = check(&fedora_inventory(), &file).records();
    let found: Vec<(String, String)> = records[..records.len() - 1]
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().into(),
                r["name"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("missing".into(), "packages.fedoraproject.org".into()),
            ("extra".into(), "retired.fedoraproject.org".into())
        ]
    );
}

#[test]
fn a_name_given_two_addresses_by_two_inventories_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hosts");
    fs::write(&file, "127.0.0.1 localhost\n").unwrap();
    let a = write_inventory(
        dir.path(),
        "a",
        &[("x", vec!["x.example.org".into()], "10.2.0.1")],
    );
    let b = write_inventory(
        dir.path(),
        "b",
        &[("x", vec!["x.example.org".into()], "10.2.0.2")],
    );
    apply(&a, &file, &[]).ok();
    let before = fs::read(&file).unwrap();
    let run = apply(&b, &file, &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("mapped to two addresses"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("block a"), "{}", run.stderr);
    assert_eq!(fs::read(&file).unwrap(), before);
}

#[test]
fn dry_run_shows_the_diff_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hosts");
    fs::copy(fixtures().join("hosts/crlf"), &file).unwrap();
    let run = apply(&fedora_inventory(), &file, &["--dry-run"]).ok();
    let records = run.records();
    assert_eq!(records[0]["type"], "diff");
    let diff = records[0]["diff"].as_str().unwrap();
    assert!(
        diff.contains("\n+# BEGIN stg-hosts fedora-stg sha256="),
        "{diff}"
    );
    assert!(
        diff.contains("\n+10.5.128.10\taccounts.fedoraproject.org"),
        "{diff}"
    );
    assert_eq!(records[1]["changed"], true);
    assert_eq!(records[1]["dry_run"], true);
    assert_eq!(listing(dir.path()), BTreeSet::from(["hosts".into()]));
    assert_eq!(
        fs::read(&file).unwrap(),
        fs::read(fixtures().join("hosts/crlf")).unwrap()
    );
    let text = hosts(&[
        "apply",
        "--dry-run",
        "--format",
        "text",
        "-i",
        fedora_inventory().to_str().unwrap(),
        "--file",
        file.to_str().unwrap(),
    ])
    .ok();
    assert!(text.stdout.starts_with("--- "), "{}", text.stdout);
    assert!(text.stdout.contains("would change"), "{}", text.stdout);
}

#[test]
fn backups_are_made_before_each_change_and_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hosts");
    let original = fs::read(fixtures().join("hosts/aliases")).unwrap();
    fs::write(&file, &original).unwrap();
    let first = apply(&fedora_inventory(), &file, &["--keep-backups", "2"])
        .ok()
        .summary();
    let backup = PathBuf::from(first["backup"].as_str().unwrap());
    assert_eq!(
        fs::read(&backup).unwrap(),
        original,
        "the backup holds the old bytes"
    );
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    let stamp = name.strip_prefix("hosts.stg-bak.").unwrap();
    assert_eq!(stamp.len(), 16, "compact UTC stamp: {stamp}");
    assert!(stamp.ends_with('Z'));
    for _ in 0..2 {
        remove(&file, &["--keep-backups", "2"]).ok();
        apply(&fedora_inventory(), &file, &["--keep-backups", "2"]).ok();
    }
    assert_eq!(backups(dir.path()).len(), 2);
    let run = apply(&fedora_inventory(), &file, &["--keep-backups", "0"]);
    assert_eq!(run.code, 2, "at least one backup is kept");
}

#[test]
fn mode_owner_and_selinux_label_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hosts");
    fs::copy(fixtures().join("hosts/fedora-default"), &file).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&file, Some(4242), Some(4343)).unwrap();
    let label = b"system_u:object_r:net_conf_t:s0\0";
    rustix::fs::setxattr(
        &file,
        "security.selinux",
        label,
        rustix::fs::XattrFlags::empty(),
    )
    .expect("set security.selinux (the tests run as root)");
    let ino = fs::metadata(&file).unwrap().ino();

    apply(&fedora_inventory(), &file, &[]).ok();
    let meta = fs::metadata(&file).unwrap();
    assert_ne!(meta.ino(), ino, "replaced by rename");
    assert_eq!(meta.mode() & 0o7777, 0o640);
    assert_eq!((meta.uid(), meta.gid()), (4242, 4343));
    let mut buf = [0u8; 256];
    let len = rustix::fs::getxattr(&file, "security.selinux", &mut buf[..]).unwrap();
    assert_eq!(&buf[..len], label);
}

#[test]
fn leftovers_of_a_killed_run_are_cleaned_and_links_followed_only_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("hosts.real");
    fs::copy(fixtures().join("hosts/debian-default"), &real).unwrap();
    let link = dir.path().join("hosts");
    std::os::unix::fs::symlink("hosts.real", &link).unwrap();
    let stale = dir.path().join(".hosts.real.stg-tmp.999999");
    fs::write(&stale, "half written").unwrap();

    // A link is not followed unless asked for.
    let run = apply(&fedora_inventory(), &link, &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--follow-symlink"), "{}", run.stderr);
    assert!(stale.exists(), "nothing was done");

    apply(&fedora_inventory(), &link, &["--follow-symlink"]).ok();
    assert!(!stale.exists(), "temporary file of a killed run removed");
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(check(&fedora_inventory(), &link).code, 2);
    assert_eq!(
        hosts(&[
            "check",
            "--format",
            "json",
            "-i",
            fedora_inventory().to_str().unwrap(),
            "--file",
            link.to_str().unwrap(),
            "--follow-symlink",
        ])
        .code,
        0
    );
}

#[test]
fn malformed_markers_are_refused_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hosts");
    let text = format!(
        "127.0.0.1 localhost\n# BEGIN stg-hosts fedora-stg sha256={}\n10.5.128.10 x\n",
        "0".repeat(64)
    );
    fs::write(&file, &text).unwrap();
    for run in [
        apply(&fedora_inventory(), &file, &[]),
        check(&fedora_inventory(), &file),
        remove(&file, &[]),
    ] {
        assert_eq!(run.code, 2);
        assert!(
            run.stderr.contains("line 2: block fedora-stg has no"),
            "{}",
            run.stderr
        );
    }
    assert_eq!(fs::read_to_string(&file).unwrap(), text);
}

#[test]
fn remove_without_a_name_needs_a_single_block() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hosts");
    fs::write(&file, "127.0.0.1 localhost\n").unwrap();
    let a = write_inventory(
        dir.path(),
        "a",
        &[("x", vec!["x.example.org".into()], "10.2.0.1")],
    );
    let b = write_inventory(
        dir.path(),
        "b",
        &[("y", vec!["y.example.org".into()], "10.2.0.2")],
    );
    apply(&a, &file, &[]).ok();
    apply(&b, &file, &[]).ok();
    let run = remove(&file, &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("several stg-hosts blocks (a, b)"),
        "{}",
        run.stderr
    );
    let run = hosts(&[
        "remove",
        "--format",
        "json",
        "-i",
        b.to_str().unwrap(),
        "--file",
        file.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(run.summary()["block"], "b");
    remove(&file, &[]).ok();
    assert_eq!(fs::read_to_string(&file).unwrap(), "127.0.0.1 localhost\n");
    let none = remove(&file, &[]).ok().summary();
    assert_eq!(none["changed"], false);
}

#[test]
fn closed_stdout_ends_quietly() {
    // docs/architecture.md, conventions: a closed stdout (`| head`) ends the tool quietly.
    let dir = tempfile::tempdir().unwrap();
    let services: Vec<(String, Vec<String>, String)> = (0..2000)
        .map(|s| {
            (
                format!("svc{s}"),
                names(&format!("s{s}-"), 10),
                format!("10.2.{}.{}", s / 250, s % 250 + 1),
            )
        })
        .collect();
    let refs: Vec<(&str, Vec<String>, &str)> = services
        .iter()
        .map(|(s, n, a)| (s.as_str(), n.clone(), a.as_str()))
        .collect();
    let inv = write_inventory(dir.path(), "big", &refs);
    for format in ["json", "text"] {
        let mut child = stg_hosts()
            .args(["emit", "--format", format, "-i"])
            .arg(&inv)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(first.contains("s0-0000.example.org"), "{first}");
        // The reader is gone: the rest of the 20,000 names hit a closed pipe.
        let run = Run::from(child.wait_with_output().unwrap());
        assert_eq!(run.code, 0, "{format}: {}", run.stderr);
        assert!(run.stderr.is_empty(), "{format}: {}", run.stderr);
    }
}

#[test]
fn closed_stdout_keeps_the_check_verdict() {
    // Issue 20, item 4: `stg-hosts check | head -1` with drift present exited 0.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hosts");
    fs::write(&file, "127.0.0.1 localhost\n").unwrap();
    let check_closed = |format: &str| {
        Run::from(
            stg_hosts()
                .args(["check", "--format", format, "-i"])
                .arg(fedora_inventory())
                .arg("--file")
                .arg(&file)
                .stdout(closed_pipe())
                .output()
                .unwrap(),
        )
    };
    for format in ["json", "text"] {
        let run = check_closed(format);
        assert_eq!(run.code, 1, "{format}: the block is missing: drift");
        assert_eq!(run.stderr, "", "{format}: quiet on a closed pipe");
    }
    apply(&fedora_inventory(), &file, &[]).ok();
    for format in ["json", "text"] {
        let run = check_closed(format);
        assert_eq!(run.code, 0, "{format}: in sync: {}", run.stderr);
        assert_eq!(run.stderr, "", "{format}");
    }
}

#[test]
fn mapped_ipv6_spellings_of_production_are_refused_and_staging_is_written_as_ipv4() {
    // Issue 20, item 3: `::ffff:10.1.0.5` is production's 10.1.0.5 (production is
    // 10.1.0.0/16 here), but the inventory took it as a staging address and apply wrote it.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hosts");
    let original = "127.0.0.1 localhost\n";
    fs::write(&file, original).unwrap();
    for (spelled, shown) in [
        ("::ffff:10.1.0.5", "::ffff:10.1.0.5 (IPv4 10.1.0.5)"),
        ("::ffff:a01:5", "::ffff:10.1.0.5 (IPv4 10.1.0.5)"),
        ("::10.1.0.5", "::a01:5 (IPv4 10.1.0.5)"),
        ("64:ff9b::10.1.0.5", "64:ff9b::a01:5 (NAT64 for 10.1.0.5)"),
    ] {
        let inv = write_inventory(
            dir.path(),
            "mapped",
            &[("db", vec!["db.example.org".into()], spelled)],
        );
        let want =
            format!("services[0].staging.address: {shown} is inside production range 10.1.0.0/16");
        for run in [apply(&inv, &file, &[]), check(&inv, &file)] {
            assert_eq!(run.code, 2, "{spelled}: {}", run.stderr);
            assert!(run.stderr.contains(&want), "{spelled}: {}", run.stderr);
        }
        assert_eq!(fs::read_to_string(&file).unwrap(), original, "{spelled}");
    }

    // A staging address spelled mapped is written as the IPv4 address it is (glibc's
    // IPv4-only getaddrinfo skips a mapped hosts line and would go on to DNS).
    let inv = write_inventory(
        dir.path(),
        "spelled",
        &[("db", vec!["db.example.org".into()], "::ffff:10.2.0.5")],
    );
    apply(&inv, &file, &[]).ok();
    let text = fs::read_to_string(&file).unwrap();
    assert!(text.contains("\n10.2.0.5\tdb.example.org\n"), "{text}");
    assert!(!text.contains("::ffff:"), "{text}");
    assert_eq!(check(&inv, &file).ok().summary()["in_sync"], true);

    // Lines outside the block are compared as addresses: the mapped spelling of the staging
    // address is no conflict, the mapped spelling of a production address is one.
    let with_lines = |extra: &str| {
        fs::write(&file, format!("{extra}{text}")).unwrap();
        check(&inv, &file)
    };
    let same = with_lines("::ffff:10.2.0.5 db.example.org\n");
    assert_eq!(same.code, 0, "{}", same.stdout);
    assert_eq!(same.summary()["conflicts"], 0);
    let prod = with_lines("::ffff:10.1.0.5 db.example.org\n");
    assert_eq!(prod.code, 1, "{}", prod.stdout);
    let records = prod.records();
    let conflict = records.iter().find(|r| r["kind"] == "conflict").unwrap();
    assert_eq!(conflict["found"], "::ffff:10.1.0.5");
    assert_eq!(conflict["address"], "10.2.0.5");
}

#[test]
fn apply_refuses_on_a_host_not_marked_staging() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hosts");
    let original = fs::read(fixtures().join("hosts/fedora-default")).unwrap();
    fs::write(&file, &original).unwrap();
    let production = dir.path().join("environment");
    fs::write(&production, "production\n").unwrap();
    let run = Run::from(
        stg("stg-hosts")
            .env("STG_ENVIRONMENT_FILE", &production)
            .args(["apply", "-i"])
            .arg(fedora_inventory())
            .arg("--file")
            .arg(&file)
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("not marked as staging"),
        "{}",
        run.stderr
    );
    assert_eq!(fs::read(&file).unwrap(), original);
    assert_eq!(
        listing(dir.path()).len(),
        2,
        "no lock, backup or temporary file"
    );
    // A dry run changes nothing, so it is allowed anywhere.
    let run = Run::from(
        stg("stg-hosts")
            .env("STG_ENVIRONMENT_FILE", &production)
            .args(["apply", "--dry-run", "-i"])
            .arg(fedora_inventory())
            .arg("--file")
            .arg(&file)
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
}
