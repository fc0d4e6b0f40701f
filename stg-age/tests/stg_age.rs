//! Tests of the `stg-age` binary against real git repositories with fixed commit dates and
//! a real PostgreSQL cluster.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde_json::Value;
use stg_core::provenance::{Provenance, VERSION};
use stg_core::stream::MaskingSummary;
use stg_tests::cmd::{closed_pipe, program, stg};
use stg_tests::git::Repo;
use stg_tests::pg::Cluster;
use stg_tests::run::{Run, RunExt};

const NOW: &str = "2026-01-01T00:00:00Z";

/// Finding lookups on a run's JSON Lines.
trait Findings {
    /// The `finding` records, in output order.
    fn findings(&self) -> Vec<Value>;
    /// The finding at `path:line` (`line` 0 for a file finding).
    fn at(&self, path: &str, line: u64) -> Value;
    /// Whether there is a finding at `path:line`.
    fn has(&self, path: &str, line: u64) -> bool;
}

fn is_at(finding: &Value, path: &str, line: u64) -> bool {
    finding["path"] == path && finding["line"].as_u64().unwrap_or(0) == line
}

impl Findings for Run {
    fn findings(&self) -> Vec<Value> {
        self.of_type("finding")
    }

    #[track_caller]
    fn at(&self, path: &str, line: u64) -> Value {
        self.findings()
            .into_iter()
            .find(|f| is_at(f, path, line))
            .unwrap_or_else(|| panic!("no finding at {path}:{line}; got {:#?}", self.records()))
    }

    fn has(&self, path: &str, line: u64) -> bool {
        self.findings().iter().any(|f| is_at(f, path, line))
    }
}

/// `stg-age --repo DIR --format json --now NOW ARGS...`
fn age(dir: &Path, args: &[&str]) -> Run {
    let mut all = vec!["--now", NOW];
    all.extend_from_slice(args);
    age_at(dir, &all)
}

/// `stg-age --repo DIR --format json ARGS...`
fn age_at(dir: &Path, args: &[&str]) -> Run {
    stg("stg-age")
        .arg("--repo")
        .arg(dir)
        .args(["--format", "json"])
        .args(args)
        .run()
}

const TASKS: &str = r#"- name: staging-only package
  package: name=debug-tools
  when: env == "staging"

- name: production-only cron
  cron: name=backup job=/usr/local/bin/backup
  when: env != 'staging'

- name: list form
  command: /bin/true
  when:
    - inventory_hostname in groups['web']
    - env=="staging"

- name: compound
  command: /bin/true
  when: env == 'staging' and ansible_distribution == 'Fedora'

- name: not a staging comparison
  command: /bin/true
  when: env == 'pagure-staging'

- name: another variable
  command: /bin/true
  when: my_env == "staging"

# when: env == "staging"   (a comment)
"#;

const PLAYBOOK: &str = r#"- hosts: web
  roles:
  - base
  - { role: collectd/base, when: env == "staging" }
"#;

const TEMPLATE: &str = r#"ServerName www
{% if env == "staging" %}
LogLevel debug
{% endif %}
{% if env != 'staging' %}
Include production.conf
{% endif %}
"#;

const VARS: &str = r#"proxy: "{{ (env == 'staging') | ternary('proxy01.stg', 'proxy01') }}"
db_host: "{{ {'staging': 'db01.stg', 'production': 'db01'}[env] }}"
mail: "{{ 'mail.stg' if env == 'staging' else 'mail' }}"
"#;

/// The repository every detection test starts from: first commit 2025-01-01, one more
/// condition added 2025-10-01.
fn detection_repo() -> (Repo, String, String) {
    let repo = Repo::new();
    repo.write("roles/web/tasks/main.yml", TASKS);
    repo.write("playbooks/web.yml", PLAYBOOK);
    repo.write("roles/web/templates/httpd.conf.j2", TEMPLATE);
    repo.write("inventory/group_vars/all.yml", VARS);
    repo.write(
        "roles/base/files/resolv.conf.staging",
        "nameserver 10.0.0.1\n",
    );
    repo.write("inventory/group_vars/staging", "env: staging\n");
    repo.write("inventory/host_vars/db01.stg.example.org", "x: 1\n");
    repo.write("inventory/host_vars/db01.example.org", "x: 1\n");
    repo.write(
        "roles/base/files/main.cf.mailman01.stg.example.org",
        "relayhost = x\n",
    );
    repo.write("files/reg-server/cron-stg", "0 * * * * sync\n");
    repo.write("files/reg-server/cron-prod", "0 * * * * sync\n");
    let first = repo.commit("first", "2025-01-01T00:00:00Z");
    repo.write(
        "roles/web/tasks/main.yml",
        format!("{TASKS}\n- name: later\n  command: /bin/false\n  when: env == \"staging\"\n"),
    );
    let second = repo.commit_by("later", "2025-10-01T00:00:00Z", "Second Author");
    (repo, first, second)
}

#[test]
fn every_detection_form_is_found_and_dated() {
    let (repo, first, second) = detection_repo();
    let run = age(repo.path(), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let tasks = "roles/web/tasks/main.yml";
    for (path, line, kind) in [
        (tasks, 3, "when"),
        (tasks, 7, "when"),
        (tasks, 13, "when"),
        (tasks, 17, "when"),
        ("playbooks/web.yml", 4, "when"),
        ("roles/web/templates/httpd.conf.j2", 2, "jinja_if"),
        ("roles/web/templates/httpd.conf.j2", 5, "jinja_if"),
        ("inventory/group_vars/all.yml", 1, "ternary"),
        ("inventory/group_vars/all.yml", 2, "dict_lookup"),
        ("inventory/group_vars/all.yml", 3, "expression"),
        ("roles/base/files/resolv.conf.staging", 0, "file"),
        ("inventory/group_vars/staging", 0, "file"),
        ("inventory/host_vars/db01.stg.example.org", 0, "file"),
        (
            "roles/base/files/main.cf.mailman01.stg.example.org",
            0,
            "file",
        ),
        ("files/reg-server/cron-stg", 0, "file"),
    ] {
        let f = run.at(path, line);
        assert_eq!(f["kind"], kind, "{path}:{line}");
        assert_eq!(f["commit"], first.as_str(), "{path}:{line}");
        assert_eq!(f["author"], "Test Author");
        assert_eq!(f["introduced_at"], "2025-01-01T00:00:00Z");
        assert_eq!(f["age_days"], 365, "{path}:{line}");
        assert_eq!(f["over"], false);
    }
    let later = run.at(tasks, 31);
    assert_eq!(later["commit"], second.as_str());
    assert_eq!(later["author"], "Second Author");
    assert_eq!(later["age_days"], 92);
    assert_eq!(later["text"], "when: env == \"staging\"");
    // Near misses: another value, another variable, a comment, a production host file.
    assert!(!run.has(tasks, 21) && !run.has(tasks, 25) && !run.has(tasks, 27));
    assert!(!run.has("inventory/host_vars/db01.example.org", 0));
    assert!(!run.has("files/reg-server/cron-prod", 0));
    let summary = run.summary();
    assert_eq!(summary["count"], 16);
    assert_eq!(summary["median_age_days"], 365);
    assert_eq!(summary["oldest_age_days"], 365);
    assert_eq!(summary["over"], 0);
    assert_eq!(summary["now"], NOW);
    // Oldest first: the one newer finding comes last.
    assert_eq!(run.findings().last().unwrap()["line"], 31);
}

#[test]
fn max_age_marks_older_findings_and_sets_the_exit_status() {
    let (repo, _, _) = detection_repo();
    let run = age(repo.path(), &["--max-age", "100d"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.summary()["over"], 15);
    assert_eq!(run.summary()["max_age_days"], 100);
    assert_eq!(run.at("roles/web/tasks/main.yml", 31)["over"], false);
    assert_eq!(run.at("roles/web/tasks/main.yml", 3)["over"], true);
    let run = age(repo.path(), &["--max-age", "52w"]);
    assert_eq!(run.code, 1, "365 days is over 52 weeks");
    let run = age(repo.path(), &["--max-age", "366d"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.summary()["over"], 0);
}

#[test]
fn closed_stdout_keeps_the_max_age_verdict() {
    // Issue 20, item 4: `stg-age --max-age 100d | head -1` with old changes exited 0.
    let (repo, _, _) = detection_repo();
    let closed = |max_age: &str, format: &str| {
        let out = stg("stg-age")
            .arg("--repo")
            .arg(repo.path())
            .args(["--format", format, "--now", NOW, "--max-age", max_age])
            .stdout(closed_pipe())
            .run();
        (out.code, out.stderr)
    };
    for format in ["json", "text"] {
        let (code, stderr) = closed("100d", format);
        assert_eq!(code, 1, "{format}: 15 changes are over 100 days: {stderr}");
        assert_eq!(stderr, "", "{format}: quiet on a closed pipe");
        let (code, stderr) = closed("366d", format);
        assert_eq!(code, 0, "{format}: nothing is over 366 days: {stderr}");
        assert_eq!(stderr, "", "{format}");
    }
}

#[test]
fn variable_name_and_variant_patterns_are_configurable() {
    let repo = Repo::new();
    repo.write(
        "a.yml",
        "- x: 1\n  when: deployment == 'staging'\n- y: 1\n  when: env == 'staging'\n",
    );
    repo.write("b.conf.staging", "x\n");
    repo.write("c.conf.stg", "x\n");
    repo.commit("first", "2025-06-01T00:00:00Z");
    let run = age(repo.path(), &["--var", "deployment", "--variant", "*.stg"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.has("a.yml", 2) && !run.has("a.yml", 4));
    assert!(run.has("c.conf.stg", 0) && !run.has("b.conf.staging", 0));
    assert_eq!(run.summary()["count"], 2);

    repo.write(
        "p.yml",
        "when: env == 'production' and datacenter != 'iad2'\n",
    );
    repo.commit("production only", "2025-07-01T00:00:00Z");
    let run = age(
        repo.path(),
        &["--value", "staging", "--value", "production"],
    );
    assert!(run.has("a.yml", 4) && run.has("p.yml", 1));
    let run = age(repo.path(), &[]);
    assert!(run.has("a.yml", 4) && !run.has("p.yml", 1));
    let run = age(repo.path(), &["--value", "stag'ing"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("invalid value"), "{}", run.stderr);
}

#[test]
fn reformatting_commits_in_blame_ignore_revs_do_not_reset_ages() {
    let repo = Repo::new();
    let body = "- name: a\n  command: /bin/true\n  when: env == 'staging'\n";
    repo.write("main.yml", body);
    let original = repo.commit("first", "2024-01-01T00:00:00Z");
    // Whitespace only: -w sees through it without help.
    repo.write(
        "main.yml",
        body.replace("  when: env == 'staging'", "  when:   env ==  'staging'  "),
    );
    repo.commit("reindent", "2024-06-01T00:00:00Z");
    // A mass reformat that changes quotes: only an ignored revision sees through it.
    repo.write(
        "main.yml",
        "- name: a\n  command: /bin/true\n  when: env == \"staging\"\n",
    );
    let reformat = repo.commit("reformat quotes", "2025-06-01T00:00:00Z");

    let run = age(repo.path(), &[]);
    assert_eq!(run.at("main.yml", 3)["commit"], reformat.as_str());
    assert_eq!(
        run.at("main.yml", 3)["introduced_at"],
        "2025-06-01T00:00:00Z"
    );

    // git's blame.ignoreRevsFile setting is cleared (docs/stg-age.md, ENVIRONMENT): only
    // .git-blame-ignore-revs and --ignore-rev are looked through.
    let elsewhere = tempfile::tempdir().unwrap();
    let revs = elsewhere.path().join("revs");
    std::fs::write(&revs, format!("{reformat}\n")).unwrap();
    repo.git(&["config", "blame.ignoreRevsFile", revs.to_str().unwrap()]);
    for args in [&["--no-cache"][..], &[]] {
        let run = age(repo.path(), args);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        assert_eq!(
            run.at("main.yml", 3)["commit"],
            reformat.as_str(),
            "{args:?}"
        );
    }
    repo.git(&["config", "--unset", "blame.ignoreRevsFile"]);
    let run = age(repo.path(), &["--ignore-rev", &reformat]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.at("main.yml", 3)["commit"], original.as_str());
    assert_eq!(run.at("main.yml", 3)["age_days"], 731);

    repo.write(
        ".git-blame-ignore-revs",
        format!("# mass reformat\n{reformat}\n"),
    );
    repo.commit("ignore the reformat in blame", "2025-06-02T00:00:00Z");
    let run = age(repo.path(), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.at("main.yml", 3)["commit"], original.as_str());
    assert_eq!(
        run.at("main.yml", 3)["introduced_at"],
        "2024-01-01T00:00:00Z"
    );
}

#[test]
fn lines_moved_between_files_keep_their_age_and_renamed_variants_too() {
    let repo = Repo::new();
    let block = "- name: install the staging debugging helpers\n  package: name=strace,gdb,valgrind state=present\n  when: env == \"staging\"\n";
    repo.write(
        "roles/a/tasks/main.yml",
        format!("- name: keep\n  command: /bin/true\n{block}"),
    );
    repo.write("resolv.conf.staging", "nameserver 10.0.0.1\n");
    let first = repo.commit("first", "2024-01-01T00:00:00Z");
    repo.write(
        "roles/a/tasks/main.yml",
        "- name: keep\n  command: /bin/true\n",
    );
    repo.write(
        "roles/b/tasks/main.yml",
        format!("- name: other\n  command: /bin/false\n{block}"),
    );
    std::fs::create_dir_all(repo.path().join("roles/b/files")).unwrap();
    repo.git(&["mv", "resolv.conf.staging", "roles/b/files/"]);
    repo.commit(
        "move the staging task and file to role b",
        "2025-06-01T00:00:00Z",
    );
    let run = age(repo.path(), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Blamed alone (`-L 5,5`), this short line is under git's 20-character threshold for
    // moved lines and would be dated by the move: stg-age blames it with context.
    let moved = run.at("roles/b/tasks/main.yml", 5);
    assert_eq!(
        moved["commit"],
        first.as_str(),
        "moved lines keep their commit"
    );
    assert_eq!(moved["age_days"], 731);
    let file = run.at("roles/b/files/resolv.conf.staging", 0);
    assert_eq!(
        file["commit"],
        first.as_str(),
        "renamed file keeps its commit"
    );
    assert_eq!(run.summary()["count"], 2);
}

#[test]
fn uncommitted_edits_are_reported_with_age_zero() {
    let repo = Repo::new();
    repo.write("main.yml", "- name: a\n  command: /bin/true\n  when: env == 'staging'\n- name: b\n  command: /bin/true\n");
    repo.write("gone.yml", "when: env == 'staging'\n");
    repo.commit("first", "2024-01-01T00:00:00Z");
    repo.write(
        "main.yml",
        "- name: a\n  command: /bin/true\n  when: env != 'staging'\n- name: b\n  command: /bin/true\n  when: env == 'staging'\n",
    );
    repo.write("new.conf.staging", "x\n");
    repo.git(&["add", "new.conf.staging"]);
    // Tracked but deleted in the work tree: nothing to report, and not an error.
    std::fs::remove_file(repo.path().join("gone.yml")).unwrap();
    let run = age(repo.path(), &["--max-age", "1d"]);
    assert_eq!(
        run.code, 0,
        "uncommitted changes are not over: {}",
        run.stderr
    );
    for (path, line) in [("main.yml", 3), ("main.yml", 6), ("new.conf.staging", 0)] {
        let f = run.at(path, line);
        assert_eq!(f["commit"], "uncommitted", "{path}:{line}");
        assert_eq!(f["age_days"], 0);
        assert_eq!(f["over"], false);
        assert!(f["author"].is_null() && f["introduced_at"].is_null());
    }
    assert_eq!(run.at("main.yml", 3)["text"], "when: env != 'staging'");
    assert!(!run.has("gone.yml", 1));
    assert_eq!(run.summary()["count"], 3);
}

#[test]
fn binary_files_are_skipped_but_binary_variants_are_files() {
    let repo = Repo::new();
    repo.write("blob.bin", b"\x00\x01when: env == 'staging'\n".as_slice());
    repo.write("keystore.p12.staging", b"\x00\x02\x03".as_slice());
    repo.write("a.yml", "when: env == 'staging'\n");
    repo.commit("first", "2025-01-01T00:00:00Z");
    let run = age(repo.path(), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.has("blob.bin", 1));
    assert!(run.has("keystore.p12.staging", 0));
    assert!(run.has("a.yml", 1));
    assert_eq!(run.summary()["binary_files"], 2);
    assert_eq!(run.summary()["count"], 2);
}

#[test]
fn paths_with_spaces_and_non_utf8_bytes_are_scanned_and_shown_lossily() {
    let repo = Repo::new();
    repo.write("roles/my role/tasks/main.yml", "when: env == 'staging'\n");
    repo.write(
        OsStr::from_bytes(b"roles/caf\xe9/tasks/main.yml"),
        "when: env == 'staging'\n",
    );
    repo.write(OsStr::from_bytes(b"files/r\xe9solv conf.staging"), "x\n");
    repo.commit("first", "2025-01-01T00:00:00Z");
    let run = age(repo.path(), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.at("roles/my role/tasks/main.yml", 1)["age_days"], 365);
    assert_eq!(
        run.at("roles/caf\u{FFFD}/tasks/main.yml", 1)["age_days"],
        365
    );
    assert_eq!(
        run.at("files/r\u{FFFD}solv conf.staging", 0)["age_days"],
        365
    );
}

#[test]
fn ignore_file_silences_entries_in_force_and_reports_expired_ones() {
    let (repo, _, _) = detection_repo();
    repo.write(
        ".stg-age-ignore",
        "# reviewed 2025-12\n\
         roles/web/templates/ until=2026-06-30 templates are reviewed with the proxy move\n\
         roles/web/tasks/main.yml:3 until=2026-01-01 debug tools until the migration\n\
         inventory/group_vars/staging until=2025-12-31 the staging group, review yearly\n",
    );
    repo.commit("ignore", "2025-12-01T00:00:00Z");
    let run = age(repo.path(), &[]);
    assert_eq!(run.code, 1, "an expired entry is drift: {}", run.stderr);
    assert!(!run.has("roles/web/templates/httpd.conf.j2", 2));
    assert!(!run.has("roles/web/templates/httpd.conf.j2", 5));
    assert!(
        !run.has("roles/web/tasks/main.yml", 3),
        "in force on its until day"
    );
    assert!(run.has("roles/web/tasks/main.yml", 7));
    assert!(
        run.has("inventory/group_vars/staging", 0),
        "expired entries silence nothing"
    );
    let expired = run.of_type("expired_ignore");
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["path"], "inventory/group_vars/staging");
    assert_eq!(expired[0]["until"], "2025-12-31");
    assert_eq!(expired[0]["expired_days"], 1);
    assert_eq!(expired[0]["entry"], ".stg-age-ignore:4");
    assert_eq!(expired[0]["reason"], "the staging group, review yearly");
    assert_eq!(run.summary()["ignored"], 3);
    assert_eq!(run.summary()["expired_ignores"], 1);
    assert_eq!(run.summary()["count"], 13);

    // A malformed entry is an input error naming the file and line; nothing is reported.
    repo.write(".stg-age-ignore", "a.yml until=2026-02-30 bad day\n");
    let run = age(repo.path(), &[]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains(".stg-age-ignore:1:"), "{}", run.stderr);
    assert!(run.records().is_empty());
    // An explicit ignore file that does not exist is an error too.
    let run = age(repo.path(), &["--ignore-file", "/nonexistent/ignore"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("/nonexistent/ignore"), "{}", run.stderr);
}

#[test]
fn bad_inputs_exit_2_naming_the_input() {
    let plain = tempfile::tempdir().unwrap();
    let run = age(plain.path(), &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("not a git repository"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&plain.path().display().to_string()),
        "{}",
        run.stderr
    );

    let run = age(Path::new("/nonexistent/ansible"), &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("/nonexistent/ansible"),
        "{}",
        run.stderr
    );

    let repo = Repo::new();
    repo.write("a.yml", "when: env == 'staging'\n");
    repo.commit("first", "2025-01-01T00:00:00Z");
    for (args, needle) in [
        (vec!["--max-age", "90"], "missing unit"),
        (vec!["--max-age", "ninety days"], "invalid duration"),
        (vec!["--now", "yesterday"], "RFC 3339"),
        (vec!["--var", "env-name"], "invalid variable name"),
        (vec!["--ignore-rev", "no-such-commit"], "no-such-commit"),
        (vec!["--variant", "/"], "empty path pattern"),
    ] {
        let run = age_at(repo.path(), &args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
        assert!(run.records().is_empty());
    }
}

#[test]
fn shallow_clone_is_refused() {
    let repo = Repo::new();
    repo.write("a.yml", "when: env == 'staging'\n");
    repo.commit("first", "2024-01-01T00:00:00Z");
    repo.write("b.yml", "x: 1\n");
    repo.commit("second", "2025-01-01T00:00:00Z");
    let dest = tempfile::tempdir().unwrap();
    let clone = dest.path().join("shallow");
    program("git")
        .args(["clone", "-q", "--depth", "1"])
        .arg(format!("file://{}", repo.path().display()))
        .arg(&clone)
        .run()
        .ok();
    let run = age(&clone, &[]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("shallow clone"), "{}", run.stderr);
    assert!(
        run.stderr.contains("git fetch --unshallow"),
        "{}",
        run.stderr
    );
    assert!(run.records().is_empty());
}

#[test]
fn git_failure_exits_3_with_gits_message() {
    let repo = Repo::new();
    repo.write("a.yml", "when: env == 'staging'\n");
    repo.write(".git-blame-ignore-revs", "not-a-revision\n");
    repo.commit("first", "2025-01-01T00:00:00Z");
    let run = age(repo.path(), &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("git blame"), "{}", run.stderr);
    assert!(run.stderr.contains("not-a-revision"), "{}", run.stderr);
}

#[test]
fn subdirectory_scans_only_that_part() {
    let (repo, _, _) = detection_repo();
    let run = age(&repo.path().join("roles/web"), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run
        .findings()
        .iter()
        .all(|f| f["path"].as_str().unwrap().starts_with("roles/web/")));
    assert_eq!(run.summary()["count"], 7);
}

#[test]
fn text_format_is_a_table_oldest_first() {
    let (repo, _, second) = detection_repo();
    let out = stg("stg-age")
        .arg("--repo")
        .arg(repo.path())
        .args(["--format", "text", "--now", NOW, "--max-age", "100d"])
        .run()
        .code_is(1);
    let text = out.stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("AGE") && lines[0].contains("WHERE"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("365d") && lines[1].contains("OVER"),
        "{text}"
    );
    let last_row = lines[lines.len() - 2];
    assert!(last_row.starts_with("92d"), "{text}");
    assert!(last_row.contains("roles/web/tasks/main.yml:31"), "{text}");
    assert!(last_row.contains(&second[..10]), "{text}");
    assert!(
        lines.last().unwrap().contains("16 staging-only change(s)"),
        "{text}"
    );
    assert!(
        lines.last().unwrap().contains("15 older than 100 days"),
        "{text}"
    );
}

fn provenance(restored_at: &str, dumped_at: &str) -> Provenance {
    Provenance {
        stg_provenance: VERSION,
        source_host: "db01.example.org".into(),
        source_database: "fas2".into(),
        dumped_at: Some(dumped_at.into()),
        restored_at: restored_at.into(),
        stream_sha256: Some("ab".repeat(32)),
        verified: true,
        masking: MaskingSummary::default(),
        restored_by: "stg-restore 0.1.0".into(),
        signed_by: None,
    }
}

fn comment_on(cluster: &Cluster, db: &str, comment: &str) {
    cluster.sql(
        "postgres",
        &format!(
            "COMMENT ON DATABASE \"{db}\" IS '{}'",
            comment.replace('\'', "''")
        ),
    );
}

fn age_databases(cluster: &Cluster, args: &[&str]) -> Run {
    stg("stg-age")
        .arg("databases")
        .args(cluster.conn_args())
        .args(["--format", "json", "--now", NOW])
        .args(args)
        .run()
}

#[test]
fn databases_report_sync_ages_from_provenance() {
    let cluster = Cluster::start();
    for db in [
        "fas2",
        "fas2__stg_prev_20251001T000000Z",
        "fas2__stg_incoming",
        "koji",
        "pkgdb",
    ] {
        cluster.createdb(db);
    }
    comment_on(
        &cluster,
        "fas2",
        &provenance("2025-12-01T06:00:00Z", "2025-11-30T00:00:00Z").to_comment(),
    );
    comment_on(
        &cluster,
        "fas2__stg_prev_20251001T000000Z",
        &provenance("2025-10-01T00:00:00Z", "2025-09-30T00:00:00Z").to_comment(),
    );
    comment_on(
        &cluster,
        "fas2__stg_incoming",
        &provenance(NOW, NOW).to_comment(),
    );
    comment_on(&cluster, "pkgdb", "package database (not restored by stg)");

    let run = age_databases(&cluster, &["--max-age", "60d"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let dbs = run.of_type("database");
    let names: Vec<&str> = dbs.iter().map(|d| d["name"].as_str().unwrap()).collect();
    // Oldest sync first, then unknown ones by name; the load in progress is left out.
    assert_eq!(
        names,
        [
            "fas2__stg_prev_20251001T000000Z",
            "fas2",
            "koji",
            "pkgdb",
            "postgres"
        ]
    );
    let prev = &dbs[0];
    assert_eq!(prev["role"], "previous");
    assert_eq!(prev["copy_of"], "fas2");
    assert_eq!(prev["age_days"], 92);
    assert_eq!(prev["over"], true);
    let live = &dbs[1];
    assert_eq!(live["role"], "live");
    assert_eq!(live["status"], "synced");
    assert_eq!(live["restored_at"], "2025-12-01T06:00:00Z");
    assert_eq!(live["age_days"], 30);
    assert_eq!(live["dumped_at"], "2025-11-30T00:00:00Z");
    assert_eq!(live["data_age_days"], 32);
    assert_eq!(live["source_host"], "db01.example.org");
    assert_eq!(live["verified"], true);
    assert_eq!(live["over"], false);
    for unknown in &dbs[2..] {
        assert_eq!(unknown["status"], "unknown");
        assert!(unknown["age_days"].is_null());
        assert_eq!(unknown["over"], false);
    }
    let summary = run.summary();
    assert_eq!(summary["count"], 5);
    assert_eq!(summary["synced"], 2);
    assert_eq!(summary["unknown"], 3);
    assert_eq!(summary["over"], 1);
    assert_eq!(summary["oldest_age_days"], 92);

    // Connection flags before the word `databases` are the same connection.
    let before = stg("stg-age")
        .args(cluster.conn_args())
        .arg("databases")
        .args(["--format", "json", "--now", NOW, "--max-age", "60d"])
        .run();
    assert_eq!(before.code, 1, "{}", before.stderr);
    assert_eq!(before.records(), run.records());

    let run = age_databases(&cluster, &["--max-age", "100d"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = age_databases(&cluster, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    let out = stg("stg-age")
        .arg("databases")
        .args(cluster.conn_args())
        .args(["--format", "text", "--now", NOW])
        .run();
    let text = out.stdout;
    assert!(
        text.lines().nth(1).unwrap().contains("kept copy of fas2"),
        "{text}"
    );
    assert!(text.contains("unknown (no stg provenance)"), "{text}");
}

#[test]
fn databases_refuse_scan_options_by_name() {
    for args in [
        &["--repo", ".", "databases"][..],
        &["databases", "--repo", "."],
    ] {
        let out = stg("stg-age").args(args).run().code_is(2);
        assert!(out.stderr.contains("--repo"), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn databases_unreachable_server_exits_3() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = stg("stg-age")
        .args([
            "databases",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "--format",
            "json",
        ])
        .run()
        .code_is(3);
    assert!(
        out.stderr.contains(&format!("127.0.0.1:{port}")),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn many_variant_files_are_dated_in_one_history_walk_like_one_by_one() {
    let repo = Repo::new();
    for i in 0..12 {
        repo.write(
            format!("roles/r{i}/files/app.conf.staging"),
            format!("setting = {i} and some text\n"),
        );
    }
    repo.write(
        "keep/old name.staging",
        "a file that will be renamed twice\n",
    );
    repo.commit("variants", "2024-01-01T00:00:00Z");
    repo.write(
        OsStr::from_bytes(b"late/n\xe9w.staging"),
        "a later variant\n",
    );
    std::fs::create_dir_all(repo.path().join("moved")).unwrap();
    repo.git(&["mv", "keep/old name.staging", "moved/mid.staging"]);
    repo.commit("rename once, add one", "2025-01-01T00:00:00Z");
    repo.git(&["mv", "moved/mid.staging", "moved/final.staging"]);
    repo.write(
        "roles/r0/files/app.conf.staging",
        "setting = 0 and some text\nmore = 1\n",
    );
    repo.commit("rename twice, edit one", "2025-06-01T00:00:00Z");
    repo.write("staged.staging", "only in the index\n");
    repo.git(&["add", "staged.staging"]);

    let paths: Vec<Vec<u8>> = stg_age::git::ls_files(repo.path())
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
    assert_eq!(paths.len(), 15);
    let batch = stg_age::git::added_many(repo.path(), &paths).unwrap();
    for (path, origin) in paths.iter().zip(&batch) {
        let one = stg_age::git::added(repo.path(), path).unwrap();
        assert_eq!(&one, origin, "{}", String::from_utf8_lossy(path));
    }

    let run = age(repo.path(), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.summary()["count"], 15);
    assert_eq!(
        run.at("moved/final.staging", 0)["introduced_at"],
        "2024-01-01T00:00:00Z"
    );
    assert_eq!(
        run.at("roles/r0/files/app.conf.staging", 0)["age_days"],
        731
    );
    assert_eq!(
        run.at("late/n\u{FFFD}w.staging", 0)["introduced_at"],
        "2025-01-01T00:00:00Z"
    );
    assert_eq!(run.at("staged.staging", 0)["commit"], "uncommitted");
}

#[test]
fn json_is_the_default_in_a_pipe() {
    let repo = Repo::new();
    repo.write("a.yml", "when: env == 'staging'\n");
    repo.commit("first", "2025-01-01T00:00:00Z");
    let run = stg("stg-age")
        .arg("--repo")
        .arg(repo.path())
        .args(["--now", NOW])
        .run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.at("a.yml", 1)["age_days"], 365);
    assert_eq!(run.summary()["count"], 1);
}

#[test]
fn connection_flags_are_refused_by_the_scan_and_scan_options_by_databases() {
    let repo = Repo::new();
    repo.write("a.yml", "- x: 1\n  when: env == 'staging'\n");
    repo.commit("first", "2025-06-01T00:00:00Z");
    // A flag the scan would silently ignore is refused by name...
    for flag in [
        &["-h", "db01.stg"][..],
        &["-p", "5433"],
        &["-U", "fas"],
        &["--sslmode", "require"],
    ] {
        let run = age_at(repo.path(), flag);
        assert_eq!(run.code, 2, "{flag:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("is an option of `stg-age databases`"),
            "{flag:?}: {}",
            run.stderr
        );
    }
    // ...while the same settings from the environment (for `databases`) are not in the way.
    let run = stg("stg-age")
        .arg("--repo")
        .arg(repo.path())
        .args(["--format", "json", "--now", NOW])
        .env("PGHOST", "db01.stg")
        .env("PGPORT", "5433")
        .env("PGUSER", "fas")
        .env("PGSSLMODE", "require")
        .run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.has("a.yml", 2));
    // And a scan option given to `databases` is refused by name.
    let run = stg("stg-age").args(["databases", "--no-cache"]).run();
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--no-cache"), "{}", run.stderr);
}
