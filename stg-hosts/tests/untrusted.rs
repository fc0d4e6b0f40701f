//! `stg-hosts` run as root on a hosts file in a tree someone else controls (a chroot, a
//! container's root file system), on real files, links, FIFOs and devices: hardening round
//! 2, items 5 and 9 of the issue. Each test names what could happen before.
//!
//! Runs that might hang or read without bound go through
//! [`stg_tests::cmd::output_bounded`]: a regression fails the test instead of hanging it or
//! taking the machine's memory.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use stg_tests::cmd::{output_bounded, stg};
use stg_tests::run::Run;

/// What stands for the host's `/etc/shadow`.
const SECRET: &str = "root:$6$SECRETHASH$xyz:19000:0:99999:7:::\n";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn inventory() -> PathBuf {
    fixtures().join("fedora-stg.json")
}

fn stg_hosts(args: &[&str]) -> Command {
    let mut cmd = stg("stg-hosts");
    cmd.env(
        "STG_ENVIRONMENT_FILE",
        fixtures().join("staging.environment"),
    )
    .args(args);
    cmd
}

/// A run of the tool, bounded: 20 seconds, 2 GiB of address space.
fn run(args: &[&str]) -> Run {
    run_with_stdin(args, Stdio::null())
}

fn run_with_stdin(args: &[&str], stdin: Stdio) -> Run {
    Run::from(output_bounded(
        &stg_hosts(args),
        stdin,
        Duration::from_secs(20),
        2 << 30,
    ))
}

/// A bounded run whose exit code must be `code`, and whose output (stdout and stderr) never
/// holds the secret, whatever the run did.
#[track_caller]
fn expect(args: &[&str], code: i32) -> Run {
    let out = run(args);
    let all = all_output(&out);
    assert_eq!(out.code, code, "{args:?}: {all}");
    assert!(!all.contains("SECRETHASH"), "{args:?}: {all}");
    out
}

/// A run refused as bad input (exit 2) whose stderr says `why`.
#[track_caller]
fn refused(args: &[&str], why: &str) -> Run {
    let out = expect(args, 2);
    assert!(out.stderr.contains(why), "{args:?}: {}", out.stderr);
    out
}

/// `COMMAND --format json -i INVENTORY REST...`.
fn with_inventory<'a>(command: &'a str, inv: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![command, "--format", "json", "-i", inv];
    args.extend_from_slice(rest);
    args
}

fn all_output(out: &Run) -> String {
    format!("{}{}", out.stdout, out.stderr)
}

fn listing(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every way of running stg-hosts on `file`, with `extra` flags: dry run (text and json),
/// apply, check and remove.
fn every_command<'a>(inv: &'a str, file: &'a str, extra: &[&'a str]) -> Vec<Vec<&'a str>> {
    let mut all = vec![
        vec![
            "apply",
            "--dry-run",
            "--format",
            "text",
            "-i",
            inv,
            "--file",
            file,
        ],
        vec![
            "apply",
            "--dry-run",
            "--format",
            "json",
            "-i",
            inv,
            "--file",
            file,
        ],
        vec!["apply", "--format", "json", "-i", inv, "--file", file],
        vec!["check", "--format", "text", "-i", inv, "--file", file],
        vec![
            "remove",
            "--format",
            "json",
            "--name",
            "fedora-stg",
            "--file",
            file,
        ],
    ];
    for args in &mut all {
        args.extend_from_slice(extra);
    }
    all
}

// See: issue "Hardening, round 2", item 5. With --file inside a chroot whose etc/hosts is a
// link to a host file (the host's shadow file), `--dry-run` printed its lines (the diff's
// context) and `apply` appended a block to it, with a backup and a lock file beside it.
#[test]
fn a_hosts_file_linked_out_of_a_chroot_is_neither_read_nor_written() {
    let inv = inventory();
    let inv = path(&inv);
    let top = tempfile::tempdir().unwrap();
    let outside = top.path().join("host-etc");
    fs::create_dir(&outside).unwrap();
    let shadow = outside.join("shadow");
    fs::write(&shadow, SECRET).unwrap();
    let chroot = top.path().join("chroot");
    fs::create_dir_all(chroot.join("etc")).unwrap();
    let hosts = chroot.join("etc/hosts");

    for target in [shadow.clone(), PathBuf::from("../../host-etc/shadow")] {
        let _ = fs::remove_file(&hosts);
        std::os::unix::fs::symlink(&target, &hosts).unwrap();
        for extra in [&[][..], &["--follow-symlink"][..]] {
            for args in every_command(inv, path(&hosts), extra) {
                refused(&args, "symbolic link");
            }
        }
        // Inside --root, the link is resolved as the chroot sees it: the host's file is
        // not there.
        for args in every_command(
            inv,
            "/etc/hosts",
            &["--root", path(&chroot), "--follow-symlink"],
        ) {
            refused(&args, "does not exist");
        }
        assert_eq!(fs::read_to_string(&shadow).unwrap(), SECRET);
        assert_eq!(listing(&outside), BTreeSet::from(["shadow".to_owned()]));
        assert_eq!(
            listing(&chroot.join("etc")),
            BTreeSet::from(["hosts".to_owned()])
        );
    }

    // A directory on the way that is a link (the chroot's etc is the host's).
    let host_etc = top.path().join("host-etc2");
    fs::create_dir(&host_etc).unwrap();
    let host_hosts = host_etc.join("hosts");
    fs::copy(fixtures().join("hosts/fedora-default"), &host_hosts).unwrap();
    let chroot2 = top.path().join("chroot2");
    fs::create_dir(&chroot2).unwrap();
    std::os::unix::fs::symlink(&host_etc, chroot2.join("etc")).unwrap();
    let hosts2 = chroot2.join("etc/hosts");
    for extra in [&[][..], &["--follow-symlink"][..]] {
        for args in every_command(inv, path(&hosts2), extra) {
            refused(&args, "etc is a symbolic link");
        }
    }
    for args in every_command(
        inv,
        "/etc/hosts",
        &["--root", path(&chroot2), "--follow-symlink"],
    ) {
        expect(&args, 2);
    }
    assert_eq!(
        fs::read(&host_hosts).unwrap(),
        fs::read(fixtures().join("hosts/fedora-default")).unwrap()
    );
    assert_eq!(listing(&host_etc), BTreeSet::from(["hosts".to_owned()]));
}

// See: issue "Hardening, round 2", item 5: with --follow-symlink, a link is resolved only
// within what the user named: below the file's directory, or inside --root.
#[test]
fn follow_symlink_resolves_only_within_the_directory_or_the_root() {
    let inv = inventory();
    let inv = path(&inv);
    let original = fs::read(fixtures().join("hosts/debian-default")).unwrap();

    // Below the directory holding the link.
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("sub")).unwrap();
    let real = dir.path().join("sub/hosts.real");
    fs::write(&real, &original).unwrap();
    let link = dir.path().join("hosts");
    std::os::unix::fs::symlink("sub/hosts.real", &link).unwrap();
    expect(&with_inventory("apply", inv, &["--file", path(&link)]), 2);
    assert_eq!(
        fs::read(&real).unwrap(),
        original,
        "refused without the flag"
    );
    let out = expect(
        &with_inventory("apply", inv, &["--file", path(&link), "--follow-symlink"]),
        0,
    );
    let real_canonical = fs::canonicalize(&real).unwrap();
    assert_eq!(out.summary()["file"], path(&real_canonical));
    assert!(fs::read_to_string(&real)
        .unwrap()
        .contains("# BEGIN stg-hosts fedora-stg"));
    assert!(fs::symlink_metadata(&link).unwrap().is_symlink());
    assert!(dir.path().join("sub/hosts.real.stg-lock").exists());

    // Inside --root: the default --file is the root's /etc/hosts, and an absolute link in
    // the tree starts at the root.
    let chroot = tempfile::tempdir().unwrap();
    fs::create_dir_all(chroot.path().join("etc/hosts.d")).unwrap();
    let inside = chroot.path().join("etc/hosts.d/real");
    fs::write(&inside, &original).unwrap();
    std::os::unix::fs::symlink("/etc/hosts.d/real", chroot.path().join("etc/hosts")).unwrap();
    let root = path(chroot.path());
    let out = expect(&with_inventory("apply", inv, &["--root", root]), 2);
    assert!(
        out.stderr
            .contains("etc/hosts is a symbolic link (to /etc/hosts.d/real)"),
        "{}",
        out.stderr
    );
    let out = expect(
        &with_inventory("apply", inv, &["--root", root, "--follow-symlink"]),
        0,
    );
    assert_eq!(out.summary()["file"], path(&inside));
    assert!(fs::read_to_string(&inside)
        .unwrap()
        .contains("# BEGIN stg-hosts fedora-stg"));
    expect(
        &with_inventory("check", inv, &["--root", root, "--follow-symlink"]),
        0,
    );

    // A tree without links needs no flag.
    let plain = tempfile::tempdir().unwrap();
    fs::create_dir(plain.path().join("etc")).unwrap();
    fs::write(plain.path().join("etc/hosts"), &original).unwrap();
    let out = expect(
        &with_inventory("apply", inv, &["--root", path(plain.path())]),
        0,
    );
    assert_eq!(out.summary()["file"], path(&plain.path().join("etc/hosts")));
}

// See: issue "Hardening, round 2", item 5. A link planted at the lock path made root create
// a file wherever it pointed. Temporary and backup names are never followed either.
#[test]
fn links_planted_at_the_lock_temporary_and_backup_paths_are_never_followed() {
    let inv = inventory();
    let inv = path(&inv);
    let top = tempfile::tempdir().unwrap();
    let outside = top.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let victim = outside.join("victim");
    fs::write(&victim, "keep me\n").unwrap();
    let dir = top.path().join("etc");
    fs::create_dir(&dir).unwrap();
    let hosts = dir.join("hosts");
    let original = fs::read(fixtures().join("hosts/fedora-default")).unwrap();
    fs::write(&hosts, &original).unwrap();
    let lock = dir.join("hosts.stg-lock");

    for target in [outside.join("created-by-root"), victim.clone()] {
        std::os::unix::fs::symlink(&target, &lock).unwrap();
        let out = expect(&with_inventory("apply", inv, &["--file", path(&hosts)]), 3);
        assert!(
            out.stderr.contains("lock file") && out.stderr.contains("symbolic link"),
            "{}",
            out.stderr
        );
        assert_eq!(fs::read(&hosts).unwrap(), original);
        fs::remove_file(&lock).unwrap();
    }
    assert_eq!(
        listing(&outside),
        BTreeSet::from(["victim".to_owned()]),
        "nothing created through the lock link"
    );
    assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me\n");

    // Temporary names (any pid) and the backup names of the next seconds, planted as links.
    for pid in 1..64 {
        std::os::unix::fs::symlink(
            outside.join(format!("tmp-{pid}")),
            dir.join(format!(".hosts.stg-tmp.{pid}")),
        )
        .unwrap();
    }
    let now = stg_core::timestamp::now();
    for s in 0..30 {
        let stamp = stg_core::timestamp::compact(now + Duration::from_secs(s));
        std::os::unix::fs::symlink(
            outside.join(format!("bak-{s}")),
            dir.join(format!("hosts.stg-bak.{stamp}")),
        )
        .unwrap();
    }
    let out = expect(&with_inventory("apply", inv, &["--file", path(&hosts)]), 0);
    let backup = PathBuf::from(out.summary()["backup"].as_str().unwrap().to_owned());
    assert!(!fs::symlink_metadata(&backup).unwrap().is_symlink());
    assert_eq!(fs::read(&backup).unwrap(), original);
    assert_eq!(
        listing(&outside),
        BTreeSet::from(["victim".to_owned()]),
        "nothing created through a planted link"
    );
    assert!(
        !listing(&dir).iter().any(|n| n.contains(".stg-tmp.")),
        "planted temporaries removed (the links, not what they point at)"
    );
}

// See: issue "Hardening, round 2", item 9. A FIFO as --file or as the inventory hung
// stg-hosts (open waits for a writer); a device (/dev/zero) or a huge file was read whole.
#[test]
fn fifos_devices_and_huge_files_are_refused_not_waited_on_or_read_whole() {
    let inv = inventory();
    let inv = path(&inv);
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let huge_hosts = dir.path().join("huge-hosts");
    fs::File::create(&huge_hosts)
        .unwrap()
        .set_len((16 << 20) + 1)
        .unwrap();
    for (file, why) in [
        (path(&fifo), "is a FIFO; only a regular file is read"),
        ("/dev/zero", "is a device; only a regular file is read"),
        (path(&huge_hosts), "at most 16777216 are read"),
    ] {
        for args in every_command(inv, file, &[]) {
            let out = expect(&args, 2);
            assert!(out.stderr.contains(why), "{args:?}: {}", out.stderr);
        }
    }

    let huge_inventory = dir.path().join("huge.json");
    let mut big = fs::read_to_string(inventory()).unwrap();
    big.push_str(&" ".repeat(4 << 20));
    fs::write(&huge_inventory, big).unwrap();
    let hosts = dir.path().join("hosts");
    fs::copy(fixtures().join("hosts/fedora-default"), &hosts).unwrap();
    for (inventory, why) in [
        (path(&fifo), "is a FIFO; only a regular file is read"),
        ("/dev/zero", "is a device; only a regular file is read"),
        (path(&huge_inventory), "at most 4194304 are read"),
    ] {
        for args in [
            vec!["emit", "--format", "json", "-i", inventory],
            vec![
                "apply",
                "--format",
                "json",
                "-i",
                inventory,
                "--file",
                path(&hosts),
            ],
            vec![
                "check",
                "--format",
                "json",
                "-i",
                inventory,
                "--file",
                path(&hosts),
            ],
        ] {
            let out = expect(&args, 2);
            assert!(out.stderr.contains(why), "{args:?}: {}", out.stderr);
        }
    }
    // The inventory on stdin is read up to the same bound.
    let zero = fs::File::open("/dev/zero").unwrap();
    let out = run_with_stdin(&["emit", "--format", "json", "-i", "-"], Stdio::from(zero));
    assert_eq!(out.code, 2, "{}", all_output(&out));
    assert!(
        out.stderr.contains("more than 4194304 bytes"),
        "{}",
        out.stderr
    );
    assert_eq!(
        fs::read(&hosts).unwrap(),
        fs::read(fixtures().join("hosts/fedora-default")).unwrap()
    );
}

// See: issue "Hardening, round 2", item 9. Backups were pruned in the order of the stamps
// in their names, so one stamped in the future (a clock set wrong when it was made) sorted
// after the backup just made, and `--keep-backups 1` deleted the one just made.
#[test]
fn a_backup_stamped_in_the_future_cannot_push_out_the_one_just_made() {
    let inv = inventory();
    let inv = path(&inv);
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    let original = fs::read(fixtures().join("hosts/fedora-default")).unwrap();
    fs::write(&hosts, &original).unwrap();
    let future = dir.path().join("hosts.stg-bak.20991231T235959Z");
    let past = dir.path().join("hosts.stg-bak.20000101T000000Z");
    fs::write(&future, "from a clock in 2099\n").unwrap();
    fs::write(&past, "from 2000\n").unwrap();

    let out = expect(
        &with_inventory(
            "apply",
            inv,
            &["--file", path(&hosts), "--keep-backups", "2"],
        ),
        0,
    );
    let made = PathBuf::from(out.summary()["backup"].as_str().unwrap().to_owned());
    assert_eq!(
        fs::read(&made).unwrap(),
        original,
        "the backup just made is kept"
    );
    assert!(
        future.exists(),
        "the future-stamped one is kept as the newest"
    );
    assert!(!past.exists());
    assert_eq!(
        out.summary()["pruned_backups"],
        serde_json::json!([path(&past)])
    );
    assert!(
        out.stderr.contains("stamped later than now"),
        "{}",
        out.stderr
    );

    // With one backup kept, it is this run's.
    let out = expect(
        &[
            "remove",
            "--format",
            "json",
            "--name",
            "fedora-stg",
            "--file",
            path(&hosts),
            "--keep-backups",
            "1",
        ],
        0,
    );
    let made = PathBuf::from(out.summary()["backup"].as_str().unwrap().to_owned());
    assert!(made.exists(), "the backup just made is kept");
    let backups: Vec<String> = listing(dir.path())
        .into_iter()
        .filter(|n| n.contains(".stg-bak."))
        .collect();
    assert_eq!(
        backups,
        vec![made.file_name().unwrap().to_string_lossy().into_owned()]
    );
    assert_eq!(fs::read(&hosts).unwrap(), original);
}

// See: issue "Hardening, round 2", item 9. The text output printed what the hosts file
// holds as it is: names and comments with terminal escapes reached the terminal.
#[test]
fn text_output_escapes_what_the_hosts_file_holds() {
    let inv = inventory();
    let inv = path(&inv);
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    let mut bytes = fs::read(fixtures().join("hosts/fedora-default")).unwrap();
    bytes.extend_from_slice(b"# \x1b]0;owned\x07\x1b[2J note\n");
    fs::write(&hosts, &bytes).unwrap();

    let out = expect(
        &[
            "apply",
            "--dry-run",
            "--format",
            "text",
            "-i",
            inv,
            "--file",
            path(&hosts),
        ],
        0,
    );
    let stdout = out.stdout;
    assert!(!stdout.contains(['\x1b', '\x07']), "{stdout:?}");
    assert!(
        stdout.contains(r##" "# \x1b]0;owned\a\x1b[2J note""##),
        "{stdout}"
    );

    // A name added to the block by hand: `check` lists it as extra, escaped.
    expect(&with_inventory("apply", inv, &["--file", path(&hosts)]), 0);
    let applied = fs::read(&hosts).unwrap();
    let marker = b"# END stg-hosts fedora-stg";
    let at = applied
        .windows(marker.len())
        .position(|w| w == marker)
        .unwrap();
    let mut edited = applied[..at].to_vec();
    edited.extend_from_slice(b"10.5.128.10\tevil\x1b[2J.example.org\n");
    edited.extend_from_slice(&applied[at..]);
    fs::write(&hosts, &edited).unwrap();
    let out = expect(
        &[
            "check",
            "--format",
            "text",
            "-i",
            inv,
            "--file",
            path(&hosts),
        ],
        1,
    );
    let stdout = out.stdout;
    assert!(!stdout.contains('\x1b'), "{stdout:?}");
    assert!(
        stdout.contains(r#"extra        "evil\x1b[2J.example.org" -> 10.5.128.10"#),
        "{stdout}"
    );
}
