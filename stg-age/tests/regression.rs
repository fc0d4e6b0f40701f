//! Regression tests of `stg-age` against real git repositories, named after what broke.

use std::process::Output;

use stg_tests::cmd::stg;
use stg_tests::git::Repo;

const NOW: &str = "2026-01-01T00:00:00Z";
const TASK: &str = "- name: staging only\n  command: /bin/true\n  when: env == \"staging\"\n";

fn age(repo: &Repo) -> Output {
    stg("stg-age")
        .arg("--repo")
        .arg(repo.path())
        .args(["--format", "json", "--now", NOW])
        .output()
        .expect("run stg-age")
}

// See: issue "Hardening, round 2", item 6. Committed symlinks named `.stg-age-ignore` or
// `.git-blame-ignore-revs` were read through: a secret's first line appeared on stderr
// (which cron mails), and a link to /dev/zero grew memory without bound.
#[test]
fn committed_links_as_ignore_files_are_not_read_through() {
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "root-secret-line: hunter2\n").unwrap();
    for name in [".stg-age-ignore", ".git-blame-ignore-revs"] {
        for target in [secret.path(), std::path::Path::new("/dev/zero")] {
            let repo = Repo::new();
            repo.write("tasks/main.yml", TASK);
            std::os::unix::fs::symlink(target, repo.path().join(name)).unwrap();
            repo.git(&["add", "-A"]);
            repo.commit("tasks and a planted link", "2025-01-01T00:00:00Z");
            let out = age(&repo);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                !stderr.contains("hunter2"),
                "{name} -> {target:?}: {stderr}"
            );
            assert!(
                !stdout.contains("hunter2"),
                "{name} -> {target:?}: {stdout}"
            );
            // Refused, naming the link, instead of read through (or hung on).
            assert_eq!(out.status.code(), Some(2), "{name} -> {target:?}: {stderr}");
            assert!(stderr.contains("symbolic link"), "{stderr}");
        }
    }
}

// See: issue "Hardening, round 2", item 6. The scanned repository's own configuration
// could run programs: core.fsmonitor on every index refresh, a filter's clean/process
// command on a modified work-tree file that blame reads, a textconv driver.
#[test]
fn the_scanned_repository_cannot_run_programs_through_its_config() {
    let repo = Repo::new();
    repo.write("tasks/main.yml", TASK);
    repo.write(".gitattributes", "* filter=evil diff=evil\n");
    repo.git(&["add", "-A"]);
    repo.commit("tasks", "2025-01-01T00:00:00Z");
    let marks = tempfile::tempdir().unwrap();
    let mark = |name: &str| marks.path().join(name);
    for (key, name) in [
        ("core.fsmonitor", "fsmonitor"),
        ("filter.evil.clean", "clean"),
        ("filter.evil.smudge", "smudge"),
        ("filter.evil.process", "process"),
        ("diff.evil.textconv", "textconv"),
    ] {
        let command = format!("sh -c 'touch {}; cat'", mark(name).display());
        repo.git(&["config", key, &command]);
    }
    // An uncommitted edit, so that blame reads (and would filter) the work-tree file.
    repo.write(
        "tasks/main.yml",
        format!("{TASK}- name: edit\n  when: env == 'staging'\n"),
    );
    let out = age(&repo);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("tasks/main.yml"));
    for name in ["fsmonitor", "clean", "smudge", "process", "textconv"] {
        assert!(
            !mark(name).exists(),
            "the repository ran its {name} command"
        );
    }
}

// See: issue "Hardening, round 2", item 6. A `core.worktree` elsewhere made git report
// another directory as the work tree, and stg-age read files there.
#[test]
fn a_work_tree_configured_elsewhere_is_refused() {
    let repo = Repo::new();
    repo.write("tasks/main.yml", TASK);
    repo.git(&["add", "-A"]);
    repo.commit("tasks", "2025-01-01T00:00:00Z");
    let elsewhere = tempfile::tempdir().unwrap();
    repo.git(&[
        "config",
        "core.worktree",
        elsewhere.path().to_str().unwrap(),
    ]);
    let out = age(&repo);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("core.worktree"), "{stderr}");
}
