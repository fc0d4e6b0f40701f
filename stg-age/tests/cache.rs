//! Tests of stg-age's cache (`--cache DIR`, `--no-cache`) against real git repositories: a
//! cached run must give exactly what a run without the cache gives, whatever happened to
//! the repository or to the cache in between.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;
use stg_tests::cmd::stg;
use stg_tests::git::Repo;
use stg_tests::run::{Run, RunExt};

const NOW: &str = "2026-01-01T00:00:00Z";
const TASK: &str = "- name: staging only\n  command: /bin/true\n  when: env == \"staging\"\n";

/// The findings of a run as (path, line, commit, date), sorted: what a cached run must
/// give exactly as a cold one does.
trait Dated {
    fn dated(&self) -> Vec<(String, u64, String, String)>;
}

impl Dated for Run {
    fn dated(&self) -> Vec<(String, u64, String, String)> {
        let mut findings: Vec<_> = self
            .of_type("finding")
            .iter()
            .map(|r| {
                (
                    r["path"].as_str().unwrap_or_default().to_owned(),
                    r["line"].as_u64().unwrap_or(0),
                    r["commit"].as_str().unwrap_or_default().to_owned(),
                    r["introduced_at"].as_str().unwrap_or("-").to_owned(),
                )
            })
            .collect();
        findings.sort();
        findings
    }
}

fn run(repo: &Repo, cache: Option<&Path>) -> Run {
    let mut cmd = stg("stg-age");
    cmd.arg("--repo")
        .arg(repo.path())
        .args(["--format", "json", "--now", NOW]);
    match cache {
        Some(dir) => cmd.arg("--cache").arg(dir),
        None => cmd.arg("--no-cache"),
    };
    cmd.run()
}

/// Runs with the cache and without it; asserts both give the same findings; returns the
/// cached run.
fn same_as_cold(repo: &Repo, cache: &Path) -> Run {
    let cold = run(repo, None);
    let cached = run(repo, Some(cache));
    assert_eq!(cold.code, 0, "{}", cold.stderr);
    assert_eq!(cached.code, 0, "{}", cached.stderr);
    assert!(!cold.dated().is_empty());
    assert_eq!(
        cached.dated(),
        cold.dated(),
        "cached run differs from a cold run"
    );
    cached
}

/// A repository with a few dated staging conditions, one moved within its file later.
fn repo_with_history() -> Repo {
    let repo = Repo::new();
    repo.write("roles/a/tasks/main.yml", format!("---\n{TASK}"));
    repo.write(
        "roles/b/tasks/main.yml",
        "---\n- name: b\n  command: /bin/true\n",
    );
    repo.commit("a", "2020-01-01T00:00:00Z");
    repo.write(
        "roles/b/tasks/main.yml",
        format!("---\n- name: b\n  command: /bin/true\n{TASK}"),
    );
    repo.commit("b", "2021-06-01T00:00:00Z");
    repo.write("roles/c/tasks/main.yml", format!("---\n{TASK}"));
    repo.commit("c", "2022-03-01T00:00:00Z");
    repo
}

fn cache_files(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_warm_run_equals_a_cold_one_and_the_cache_is_private() {
    let repo = repo_with_history();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let first = same_as_cold(&repo, &dir);
    assert!(first.stderr.is_empty(), "{}", first.stderr);
    let files = cache_files(&dir);
    assert_eq!(files.len(), 1, "one cache file per repository");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&files[0]), 0o600);
    let second = same_as_cold(&repo, &dir);
    assert!(second.stderr.is_empty(), "{}", second.stderr);
}

#[test]
fn new_commits_a_rename_and_ignore_revs_give_what_a_cold_run_gives() {
    let repo = repo_with_history();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    same_as_cold(&repo, &dir);
    // A new commit above the condition in one file: its line moves, its date does not.
    repo.write(
        "roles/a/tasks/main.yml",
        format!("---\n- name: new\n  command: /bin/false\n{TASK}"),
    );
    repo.commit("above", "2023-01-01T00:00:00Z");
    let after = same_as_cold(&repo, &dir);
    assert!(after
        .dated()
        .iter()
        .any(|f| f.0 == "roles/a/tasks/main.yml" && f.1 == 6));
    // A rename: the finding follows the file.
    repo.git(&["mv", "roles/b/tasks/main.yml", "roles/b/tasks/other.yml"]);
    repo.commit("rename", "2023-02-01T00:00:00Z");
    let renamed = same_as_cold(&repo, &dir);
    assert!(renamed
        .dated()
        .iter()
        .any(|f| f.0 == "roles/b/tasks/other.yml" && f.3.starts_with("2021-06-01")));
    // A reformatting commit, then ignored: the dates go back to the original commits.
    repo.write(
        "roles/c/tasks/main.yml",
        format!("---\n{}", TASK.replace('"', "'")),
    );
    let reformat = repo.commit("reformat", "2024-01-01T00:00:00Z");
    let before = same_as_cold(&repo, &dir);
    assert!(before.dated().iter().any(|f| f.3.starts_with("2024-01-01")));
    repo.write(".git-blame-ignore-revs", format!("{reformat}\n"));
    let ignored = same_as_cold(&repo, &dir);
    assert!(!ignored
        .dated()
        .iter()
        .any(|f| f.3.starts_with("2024-01-01")));
    // Uncommitted lines.
    repo.write("roles/c/tasks/main.yml", format!("---\n{TASK}{TASK}"));
    let dirty = same_as_cold(&repo, &dir);
    assert!(dirty.dated().iter().any(|f| f.2 == "uncommitted"));
}

#[test]
fn a_rewritten_history_between_two_cached_runs_gives_what_a_cold_run_gives() {
    let repo = repo_with_history();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    same_as_cold(&repo, &dir);
    // Rewrite: drop the last two commits, then make the same file content at other dates.
    repo.git(&["reset", "-q", "--hard", "HEAD~2"]);
    repo.write(
        "roles/b/tasks/main.yml",
        format!("---\n- name: b\n  command: /bin/true\n{TASK}"),
    );
    repo.commit("b again", "2024-05-01T00:00:00Z");
    repo.write("roles/c/tasks/main.yml", format!("---\n{TASK}"));
    repo.commit("c again", "2024-06-01T00:00:00Z");
    let rewritten = same_as_cold(&repo, &dir);
    assert!(rewritten
        .dated()
        .iter()
        .any(|f| f.3.starts_with("2024-05-01")));
    assert!(!rewritten
        .dated()
        .iter()
        .any(|f| f.3.starts_with("2021-06-01")));
    // An amended HEAD (same content, another date).
    repo.git_at(
        &[
            "commit",
            "-q",
            "--amend",
            "--no-edit",
            "--date",
            "2024-07-01T00:00:00Z",
        ],
        "2024-07-01T00:00:00Z",
        "Test Author",
    );
    let amended = same_as_cold(&repo, &dir);
    assert!(amended
        .dated()
        .iter()
        .any(|f| f.3.starts_with("2024-07-01")));
}

#[test]
fn a_corrupt_or_other_version_or_unwritable_cache_warns_and_changes_nothing() {
    let repo = repo_with_history();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    same_as_cold(&repo, &dir);
    let file = cache_files(&dir).pop().unwrap();
    let good = std::fs::read_to_string(&file).unwrap();

    std::fs::write(&file, &good[..good.len() / 2]).unwrap();
    let corrupt = same_as_cold(&repo, &dir);
    assert!(corrupt.stderr.contains("corrupt"), "{}", corrupt.stderr);

    let mut other: Value = serde_json::from_str(&good).unwrap();
    other["version"] = Value::from("0.0.0-other");
    std::fs::write(&file, other.to_string()).unwrap();
    let versioned = same_as_cold(&repo, &dir);
    assert!(
        versioned.stderr.contains("another version"),
        "{}",
        versioned.stderr
    );

    // A cache someone else could write is not trusted.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let open = same_as_cold(&repo, &dir);
    assert!(open.stderr.contains("not private"), "{}", open.stderr);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();

    // A cache that cannot be written (its parent is a file: even root cannot create it).
    let blocker = tmp.path().join("a-file");
    std::fs::write(&blocker, "x").unwrap();
    let unwritable = same_as_cold(&repo, &blocker.join("cache"));
    assert!(
        unwritable.stderr.contains("cannot write"),
        "{}",
        unwritable.stderr
    );
}

#[test]
fn help_names_the_cache_flags() {
    let help = stg("stg-age").arg("--help").run().ok().stdout;
    for needle in ["--cache <DIR>", "--no-cache", "XDG_CACHE_HOME"] {
        assert!(help.contains(needle), "--help lacks {needle}: {help}");
    }
}

/// The commit `git blame -w -M -C` of the whole file gives each line.
fn plain_blame(repo: &Repo, path: &str) -> Vec<String> {
    let out = repo.git(&["blame", "-w", "-M", "-C", "-l", "-s", "--", path]);
    out.lines()
        .map(|l| {
            l.split(' ')
                .next()
                .unwrap_or_default()
                .trim_start_matches('^')
                .to_owned()
        })
        .collect()
}

#[test]
fn lines_moved_between_files_are_dated_as_plain_git_blame_dates_them() {
    let repo = Repo::new();
    let block = "- name: long enough to be recognised as a copy by blame\n  command: /usr/bin/systemctl restart httpd.service\n  when: env == \"staging\" and inventory_hostname in groups['proxies']\n";
    repo.write("a.yml", format!("---\n{block}"));
    repo.write("b.yml", "---\n- name: b\n  command: /bin/true\n");
    repo.write("c.yml", "---\n- name: c\n");
    repo.commit("one", "2020-01-01T00:00:00Z");
    for (i, date) in ["2020-06-01", "2021-01-01", "2021-06-01"]
        .iter()
        .enumerate()
    {
        repo.write("c.yml", format!("---\n- name: c\n# {i}\n"));
        repo.commit("c", &format!("{date}T00:00:00Z"));
    }
    // The block moves from a.yml to b.yml in one commit (found by -C), and a.yml keeps
    // changing afterwards.
    repo.write("a.yml", "---\n- name: a\n");
    repo.write(
        "b.yml",
        format!("---\n- name: b\n  command: /bin/true\n{block}"),
    );
    repo.commit("move", "2022-01-01T00:00:00Z");
    repo.write("a.yml", "---\n- name: a2\n");
    repo.commit("a", "2023-01-01T00:00:00Z");
    let tmp = tempfile::tempdir().unwrap();
    let cached = same_as_cold(&repo, &tmp.path().join("c"));
    let blamed = plain_blame(&repo, "b.yml");
    for (path, line, commit, _) in &cached.dated() {
        assert_eq!(path, "b.yml");
        let line = usize::try_from(*line).unwrap();
        // A boundary (root) commit is shown as `^` and 39 digits.
        assert!(
            commit.starts_with(&blamed[line - 1]),
            "b.yml:{line}: {commit} vs {}",
            blamed[line - 1]
        );
    }
    assert!(cached.dated().iter().any(|f| f.3.starts_with("2020-01-01")));
}
