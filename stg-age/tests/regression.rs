//! Regression tests of `stg-age` against real git repositories, named after what broke.

use stg_tests::cmd::stg;
use stg_tests::git::Repo;
use stg_tests::run::{Run, RunExt};

const NOW: &str = "2026-01-01T00:00:00Z";
const TASK: &str = "- name: staging only\n  command: /bin/true\n  when: env == \"staging\"\n";

/// `stg-age --repo REPO --now NOW --format json`.
fn age(repo: &Repo) -> Run {
    age_as(repo, "json")
}

/// `stg-age --repo REPO --now NOW --format FORMAT`.
fn age_as(repo: &Repo, format: &str) -> Run {
    stg("stg-age")
        .arg("--repo")
        .arg(repo.path())
        .args(["--format", format, "--now", NOW])
        .run()
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
            let (stdout, stderr) = (&out.stdout, &out.stderr);
            assert!(
                !stderr.contains("hunter2"),
                "{name} -> {target:?}: {stderr}"
            );
            assert!(
                !stdout.contains("hunter2"),
                "{name} -> {target:?}: {stdout}"
            );
            // Refused, naming the link, instead of read through (or hung on).
            assert_eq!(out.code, 2, "{name} -> {target:?}: {stderr}");
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
    assert!(matches!(out.code, 0 | 1), "{}", out.stderr);
    assert!(out.stdout.contains("tasks/main.yml"));
    for name in ["fsmonitor", "clean", "smudge", "process", "textconv"] {
        assert!(
            !mark(name).exists(),
            "the repository ran its {name} command"
        );
    }
}

// Found reviewing the age_git_output fuzz target (issue 27): with `log.showSignature`
// set, git log runs the repository's `gpg.program` on every signed commit (and prints its
// words into the log stg-age parses); a repository's `i18n.logOutputEncoding` changed the
// encoding of what git log printed (UTF-16 failed the scan).
#[test]
fn the_repository_cannot_run_a_signature_program_or_change_git_s_output_encoding() {
    use std::os::unix::fs::PermissionsExt;

    let repo = Repo::new();
    repo.write("tasks/main.yml", TASK);
    repo.git(&["add", "-A"]);
    repo.commit_by("tasks", "2025-01-01T00:00:00Z", "Zo\u{eb} Author");
    // The commit, signed: a gpgsig header (git runs the verifier whatever it holds).
    let raw = repo.git(&["cat-file", "commit", "HEAD"]);
    let (head, body) = raw.split_once("\n\n").unwrap();
    let signed = format!(
        "{head}\ngpgsig -----BEGIN PGP SIGNATURE-----\n \n -----END PGP SIGNATURE-----\n\n{body}"
    );
    std::fs::write(repo.path().join(".git/signed-commit"), signed).unwrap();
    let id = repo.git(&["hash-object", "-t", "commit", "-w", ".git/signed-commit"]);
    repo.git(&["update-ref", "HEAD", id.trim()]);
    let marks = tempfile::tempdir().unwrap();
    let mark = marks.path().join("gpg-ran");
    let program = marks.path().join("gpg");
    std::fs::write(
        &program,
        format!("#!/bin/sh\ntouch {}\nexit 1\n", mark.display()),
    )
    .unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    repo.git(&["config", "log.showSignature", "true"]);
    repo.git(&["config", "gpg.program", program.to_str().unwrap()]);
    repo.git(&["config", "gpg.ssh.program", program.to_str().unwrap()]);
    repo.git(&["config", "i18n.logOutputEncoding", "UTF-16"]);
    for trace in ["1", "0"] {
        let out = stg("stg-age")
            .arg("--repo")
            .arg(repo.path())
            .args(["--format", "json", "--now", NOW])
            .env("STG_AGE_TRACE", trace)
            .run();
        assert!(matches!(out.code, 0 | 1), "{}", out.stderr);
        assert!(out.stdout.contains("tasks/main.yml"), "{}", out.stdout);
        assert!(out.stdout.contains("2025-01-01"), "{}", out.stdout);
        assert!(!mark.exists(), "the repository's gpg.program ran");
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
    let out = age(&repo).code_is(2);
    assert!(out.stderr.contains("core.worktree"), "{}", out.stderr);
}

// See: issue "Hardening, round 2", item 9. File names, matched lines and authors went to
// the text output as they were: a newline forged rows of the table, an escape sequence
// reached the terminal (retitle, clear the screen, write the clipboard).
#[test]
fn names_and_lines_with_control_characters_are_escaped_in_text_output() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    let repo = Repo::new();
    repo.write(
        OsStr::from_bytes(b"roles/evil\x1b[2J\n365d  OVER  when  forged.yml:1/tasks.yml"),
        "- name: x\n  when: env == \"staging\"  # \x1b]0;owned\x07\r\x1b[1A\n",
    );
    repo.write(OsStr::from_bytes(b"files/caf\xe9\x1b[31m.staging"), "x\n");
    repo.commit_by(
        "planted",
        "2025-01-01T00:00:00Z",
        "Evil\x1b]52;c;cHduZWQ=\x07 Author",
    );

    let out = age_as(&repo, "text").ok();
    let stdout = std::str::from_utf8(&out.bytes).expect("the text output is UTF-8");
    assert!(
        !stdout.chars().any(|c| c.is_control() && c != '\n'),
        "control characters in the text output: {stdout:?}"
    );
    // A header, two rows, the summary: no forged row.
    assert_eq!(stdout.lines().count(), 4, "{stdout}");
    assert!(
        stdout.contains(r#""roles/evil\x1b[2J\n365d  OVER  when  forged.yml:1/tasks.yml":2"#),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#""files/caf\xe9\x1b[31m.staging""#),
        "{stdout}"
    );
    assert!(stdout.contains(r"\x1b]0;owned\a\r\x1b[1A"), "{stdout}");

    // JSON keeps the values (its own escaping makes them safe).
    let finding = age_as(&repo, "json")
        .ok()
        .of_type("finding")
        .into_iter()
        .find(|f| f["path"].as_str().is_some_and(|p| p.contains("forged")))
        .expect("the finding");
    assert_eq!(
        finding["path"],
        "roles/evil\u{1b}[2J\n365d  OVER  when  forged.yml:1/tasks.yml"
    );
}

// See: issue "Hardening, round 2", item 9. A commit whose author date is after --now
// (a clock set wrong, or a date chosen so that the change never looks old) was reported
// with age 0, like a change made today, and nothing said so.
#[test]
fn a_future_author_date_is_said_not_passed_off_as_age_zero() {
    let repo = Repo::new();
    repo.write("tasks/main.yml", TASK);
    repo.commit("now", "2025-01-01T00:00:00Z");
    repo.write("tasks/later.yml", TASK);
    repo.commit("from the future", "2031-06-01T00:00:00Z");

    let out = stg("stg-age")
        .arg("--repo")
        .arg(repo.path())
        .args(["--format", "json", "--now", NOW, "--max-age", "90d"])
        .run()
        .code_is(1);
    let stderr = &out.stderr;
    let records = out.records();
    let finding = |path: &str| {
        records
            .iter()
            .find(|r| r["path"] == path)
            .unwrap_or_else(|| panic!("no finding in {path}: {records:#?}"))
    };
    let later = finding("tasks/later.yml");
    assert_eq!(later["future"], true);
    assert_eq!(later["age_days"], 0);
    assert_eq!(later["over"], false);
    assert_eq!(later["introduced_at"], "2031-06-01T00:00:00Z");
    assert_eq!(finding("tasks/main.yml")["future"], false);
    let summary = out.summary();
    assert_eq!(summary["future"], 1);
    assert_eq!(
        summary["median_age_days"], 365,
        "an unknown age is not 0 in the median"
    );
    assert!(
        stderr.contains("1 finding(s) dated after 2026-01-01T00:00:00Z: tasks/later.yml:3 (2031-06-01T00:00:00Z)"),
        "{stderr}"
    );

    let text = age_as(&repo, "text").stdout;
    let row = text
        .lines()
        .find(|l| l.contains("tasks/later.yml"))
        .unwrap();
    assert!(row.starts_with("future "), "{text}");
    assert!(
        text.contains("1 dated in the future (age unknown)"),
        "{text}"
    );
}

// See: fuzz target `age_git_output`. git accepts any author date (`--date=@999999999999`
// is the year 33658) and prints what a crafted commit holds (`%at` the digits as they are,
// however many; nothing for a date it cannot read, where blame says 0): stg-age failed the
// whole scan (exit 3, "timestamp was not in range", "no time in ...") for one such commit,
// or, reading the diffs, dated a variant file it added as never committed.
#[test]
fn a_commit_date_past_the_year_9999_or_unreadable_does_not_fail_the_scan() {
    let repo = Repo::new();
    repo.write("tasks/old.yml", TASK);
    repo.commit("old", "2025-01-01T00:00:00Z");
    repo.write("tasks/far.yml", TASK);
    repo.write("inventory/group_vars/staging", "far: 1\n");
    repo.commit("the year 33658", "@999999999999 +0000");
    // Commits git would not make, made by hand as a pushed one could be.
    let craft = |file: &str, author: &str| {
        repo.write(file, TASK);
        repo.git(&["add", "-A"]);
        let tree = repo.git(&["write-tree"]);
        let parent = repo.git(&["rev-parse", "HEAD"]);
        let text = format!(
            "tree {}\nparent {}\nauthor {author}\ncommitter C <c@example.org> 1700000000 +0000\n\ncrafted\n",
            tree.trim(),
            parent.trim()
        );
        repo.write(".git/crafted", text);
        let id = repo.git(&[
            "hash-object",
            "-t",
            "commit",
            "-w",
            "--literally",
            ".git/crafted",
        ]);
        repo.git(&["update-ref", "HEAD", id.trim()]);
    };
    craft(
        "tasks/overflow.yml",
        "O <o@example.org> 99999999999999999999 +0000",
    );
    craft("tasks/unreadable.yml", "U <u@example.org> -5 +0000");
    for trace in ["1", "0"] {
        let out = stg("stg-age")
            .arg("--repo")
            .arg(repo.path())
            .args(["--format", "json", "--now", NOW, "--no-cache"])
            .env("STG_AGE_TRACE", trace)
            .run()
            .code_is(0);
        let records = out.records();
        let at = |path: &str| {
            let r = records
                .iter()
                .find(|r| r["path"] == path)
                .unwrap_or_else(|| panic!("trace {trace}: no finding in {path}: {records:#?}"));
            (r["introduced_at"].clone(), r["future"].clone())
        };
        let last = serde_json::json!("9999-12-31T23:59:59Z");
        let future = serde_json::json!(true);
        assert_eq!(
            at("tasks/far.yml"),
            (last.clone(), future.clone()),
            "trace {trace}"
        );
        assert_eq!(
            at("inventory/group_vars/staging"),
            (last.clone(), future.clone()),
            "trace {trace}"
        );
        assert_eq!(at("tasks/overflow.yml"), (last, future), "trace {trace}");
        // As `git blame` reads it: 0.
        assert_eq!(
            at("tasks/unreadable.yml"),
            (
                serde_json::json!("1970-01-01T00:00:00Z"),
                serde_json::json!(false)
            ),
            "trace {trace}"
        );
        assert_eq!(out.summary()["future"], 3, "trace {trace}");
    }
}
