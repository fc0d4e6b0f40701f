//! Fault injection on the real `stg-hosts` binary: strace(1) kills it with SIGKILL exactly
//! at the rename(2) that would put the new hosts file in place, after the temporary file
//! was written and fsynced. The hosts file must keep its bytes, mode and owner; the next
//! normal run must clean the leftover and give what an uninterrupted run gives.
//!
//! Not for the ordinary bad inputs (tests/stg_hosts.rs) or the block parser (regression.rs).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use stg_tests::cmd::{bin_path, program};
use stg_tests::run::{Run, Tool};

/// Mode and owner given to the hosts file, so a lost chmod/chown would show.
const MODE: u32 = 0o640;
const OWNER: (u32, u32) = (4242, 4343);

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn inventory() -> PathBuf {
    fixtures().join("fedora-stg.json")
}

fn staging_env() -> PathBuf {
    fixtures().join("staging.environment")
}

/// `stg-hosts ACTION --format json [-i INVENTORY] --file FILE`, the arguments only.
fn args(action: &str, file: &Path) -> Vec<String> {
    let mut args = vec![action.to_owned(), "--format".into(), "json".into()];
    if action != "remove" {
        args.extend(["-i".into(), inventory().to_str().unwrap().to_owned()]);
    }
    args.extend(["--file".into(), file.to_str().unwrap().to_owned()]);
    args
}

/// Runs `stg-hosts ACTION` normally on a host marked staging.
fn run(action: &str, file: &Path) -> Run {
    Tool::new("stg-hosts")
        .env("STG_ENVIRONMENT_FILE", staging_env())
        .args(args(action, file))
        .run()
}

/// What strace saw of a run it killed.
struct Killed {
    pid: u32,
    trace: String,
}

/// Runs `stg-hosts ACTION` under strace, which sends SIGKILL on entry to the first
/// rename(2) (any of its three system calls), before the kernel performs it.
fn killed_at_rename(action: &str, file: &Path, dir: &Path) -> Killed {
    match program("strace").arg("-V").output() {
        Ok(out) if out.status.success() => {}
        _ => stg_tests::require("strace (for fault injection)", "strace"),
    }
    let trace_file = dir.join("strace.out");
    let out = program("strace")
        .env("STG_ENVIRONMENT_FILE", staging_env())
        // -y: a descriptor is shown with its path, `renameat(3</dir>, "name", ...)`.
        .args(["-f", "-y", "-o"])
        .arg(&trace_file)
        .args([
            "-e",
            "trace=rename,renameat,renameat2",
            "-e",
            "inject=rename,renameat,renameat2:signal=KILL:when=1",
        ])
        .arg(bin_path("stg-hosts"))
        .args(args(action, file))
        .output()
        .expect("run strace");
    let trace = fs::read_to_string(&trace_file).expect("strace output");
    // strace ends itself with the signal that ended its command.
    assert_eq!(
        out.status.signal(),
        Some(Signal::SIGKILL as i32),
        "strace: {:?}\nstdout: {}\nstderr: {}\ntrace:\n{trace}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout.is_empty(),
        "killed before any summary: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let lines: Vec<&str> = trace.lines().collect();
    assert_eq!(lines.len(), 2, "one rename, then the kill:\n{trace}");
    let pid: u32 = lines[1]
        .strip_suffix(" +++ killed by SIGKILL +++")
        .unwrap_or_else(|| panic!("not killed by SIGKILL:\n{trace}"))
        // strace pads the pid column to a width: `2143  +++ killed ...`.
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{e}: pid in\n{trace}"));
    // `renameat(3</dir>, ".hosts.stg-tmp.PID", 3</dir>, "hosts") = ?` (stg-hosts renames
    // within the directory it resolved and holds open, never by path), or renameat2: the
    // call was entered, and never returned.
    let temp = format!("<{}>, \".hosts.stg-tmp.{pid}\"", dir.display());
    let target = format!(
        "<{}>, \"{}\"",
        dir.display(),
        file.file_name().unwrap().to_string_lossy()
    );
    let call = lines[0];
    assert!(
        call.strip_prefix(&pid.to_string())
            .is_some_and(|rest| rest.trim_start().starts_with("rename"))
            && call.ends_with(" = ?")
            && call
                .find(&temp)
                .zip(call.find(&target))
                .is_some_and(|(t, h)| t < h),
        "the kill lands on the rename of {temp} over {target}:\n{trace}"
    );
    Killed { pid, trace }
}

/// Bytes, mode, owner and inode of a file.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    bytes: Vec<u8>,
    mode: u32,
    owner: (u32, u32),
    ino: u64,
}

fn snapshot(path: &Path) -> Snapshot {
    let meta = fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Snapshot {
        bytes: fs::read(path).unwrap(),
        mode: meta.mode() & 0o7777,
        owner: (meta.uid(), meta.gid()),
        ino: meta.ino(),
    }
}

/// A fresh directory holding `hosts` with the given bytes, mode [`MODE`] and owner [`OWNER`].
/// The path is canonical, as stg-hosts (and so strace) shows it.
fn hosts_dir(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = fs::canonicalize(dir.path()).unwrap().join("hosts");
    fs::write(&file, bytes).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(MODE)).unwrap();
    std::os::unix::fs::chown(&file, Some(OWNER.0), Some(OWNER.1))
        .expect("chown (the tests run as root)");
    (dir, file)
}

fn temporaries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".stg-tmp."))
        .collect()
}

/// The bytes an uninterrupted `stg-hosts ACTION` gives, starting from `bytes`.
fn fresh(action: &str, bytes: &[u8]) -> Vec<u8> {
    let (_dir, file) = hosts_dir(bytes);
    run(action, &file).ok();
    fs::read(&file).unwrap()
}

/// Kills `stg-hosts ACTION` between its temporary write and its rename, checks nothing was
/// lost, then reruns it normally. Returns the directory and the hosts file for more checks.
fn kill_then_recover(action: &str, start: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let want = fresh(action, start);
    assert_ne!(want, start, "{action} changes the file");
    let (dir, file) = hosts_dir(start);
    let base = file.parent().unwrap().to_path_buf();
    let before = snapshot(&file);

    let killed = killed_at_rename(action, &file, &base);
    assert_eq!(
        snapshot(&file),
        before,
        "bytes, mode, owner and inode of the hosts file are untouched by the killed run"
    );
    let temp = base.join(format!(".hosts.stg-tmp.{}", killed.pid));
    let left = snapshot(&temp);
    assert_eq!(
        left.bytes, want,
        "the kill came after the whole new file was written (trace: {})",
        killed.trace
    );
    assert_eq!(
        (left.mode, left.owner),
        (MODE, OWNER),
        "the temporary file was ready to be renamed"
    );
    assert_eq!(temporaries(&base).len(), 1);

    let summary = run(action, &file).ok().summary();
    assert_eq!(summary["changed"], true, "{summary}");
    assert_eq!(summary["method"], "rename", "{summary}");
    assert!(
        temporaries(&base).is_empty(),
        "the leftover of the killed run is removed: {:?}",
        temporaries(&base)
    );
    let after = snapshot(&file);
    assert_eq!(after.bytes, want, "the same result as an uninterrupted run");
    assert_eq!((after.mode, after.owner), (MODE, OWNER));
    // Both runs made a backup before changing anything; each holds the original bytes.
    let backups: Vec<PathBuf> = fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".stg-bak."))
        .collect();
    assert!(!backups.is_empty());
    for backup in backups {
        assert_eq!(fs::read(&backup).unwrap(), start, "{}", backup.display());
    }
    (dir, file)
}

#[test]
fn apply_killed_between_temp_write_and_rename_loses_nothing_and_the_next_apply_recovers() {
    let original = fs::read(fixtures().join("hosts/debian-default")).unwrap();
    let (_dir, file) = kill_then_recover("apply", &original);
    let check = run("check", &file).ok();
    let summary = check.summary();
    assert_eq!(summary["in_sync"], true, "{summary}");
}

#[test]
fn remove_killed_between_temp_write_and_rename_loses_nothing_and_the_next_remove_recovers() {
    let original = fs::read(fixtures().join("hosts/debian-default")).unwrap();
    let applied = fresh("apply", &original);
    let (_dir, file) = kill_then_recover("remove", &applied);
    assert_eq!(
        fs::read(&file).unwrap(),
        original,
        "apply then remove gives back the original bytes"
    );
    let check = run("check", &file);
    assert_eq!(check.code, 1, "the block is gone");
    assert_eq!(check.summary()["present"], false);
}
