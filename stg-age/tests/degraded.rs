//! `stg-age` on repositories that cannot read all of their history: a damaged object
//! store (loose objects deleted) and a partial clone (`--filter=blob:limit`) whose
//! promisor remote is gone, or still there and never asked. Every finding in the files
//! that can be read is what the whole repository gives; the files that cannot are named.

use std::path::Path;

use serde_json::Value;
use stg_tests::cmd::{program, stg};
use stg_tests::git::Repo;
use stg_tests::run::{Run, RunExt};

const NOW: &str = "2026-01-01T00:00:00Z";

/// Bytes that git takes for binary (a NUL early), different for each `seed`.
fn binary(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let mut out = vec![0u8];
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.push(x.to_le_bytes()[0]);
    }
    out
}

/// A history whose binaries change in the same commits as the condition files, with a
/// binary variant file, a rename and a template.
fn repo() -> Repo {
    let repo = Repo::new();
    repo.write(
        "roles/web/tasks/main.yml",
        "- name: web\n  command: /bin/true\n",
    );
    repo.write("files/blob.bin", binary(1, 5000));
    repo.write("files/keytab.staging", binary(2, 3000));
    repo.commit("one", "2020-01-01T00:00:00Z");
    repo.write(
        "roles/web/tasks/main.yml",
        "- name: web\n  command: /bin/true\n  when: env == \"staging\"\n",
    );
    repo.write("files/blob.bin", binary(3, 5000));
    repo.commit("two", "2021-01-01T00:00:00Z");
    repo.write(
        "roles/db/tasks/main.yml",
        "- name: db\n  when: env == 'staging'\n",
    );
    repo.write("files/keytab.staging", binary(4, 3000));
    repo.write(
        "roles/web/tasks/main.yml",
        "- name: web\n  command: /bin/true\n  when: env == \"staging\"\n# end\n",
    );
    repo.write("files/blob.bin", binary(5, 5000));
    repo.commit("three", "2022-01-01T00:00:00Z");
    repo.git(&["mv", "roles/db/tasks/main.yml", "roles/db/tasks/setup.yml"]);
    repo.write(
        "templates/app.conf.j2",
        "{% if env == 'staging' %}\nx\n{% endif %}\n",
    );
    repo.write("files/blob.bin", binary(6, 5000));
    repo.commit("four", "2023-01-01T00:00:00Z");
    repo
}

/// `stg-age --repo DIR --no-cache --now NOW --format json`, dating with the trace
/// (`trace: true`) or with `git blame` alone.
fn age(dir: &Path, trace: bool) -> Run {
    stg("stg-age")
        .arg("--repo")
        .arg(dir)
        .args(["--no-cache", "--format", "json", "--now", NOW])
        .env("STG_AGE_TRACE", if trace { "1" } else { "0" })
        .run()
}

/// `(path, line, commit)` of every finding, sorted.
fn dates(run: &Run) -> Vec<(String, u64, String)> {
    let mut out: Vec<(String, u64, String)> = run
        .of_type("finding")
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap_or_default().to_owned(),
                f["line"].as_u64().unwrap_or(0),
                f["commit"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn degraded(run: &Run) -> Vec<String> {
    run.summary()["degraded"]
        .as_array()
        .unwrap_or_else(|| panic!("no degraded list: {}", run.stdout))
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Deletes the loose object of `rev` (`<commit>:<path>`).
fn lose(repo: &Repo, rev: &str) -> String {
    let id = repo.git(&["rev-parse", rev]).trim().to_owned();
    let file = repo
        .path()
        .join(".git/objects")
        .join(&id[..2])
        .join(&id[2..]);
    std::fs::remove_file(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    id
}

/// Object ids of `HEAD`'s history that the repository at `dir` lacks.
fn missing(dir: &Path) -> Vec<String> {
    let out = program("git")
        .current_dir(dir)
        .env("GIT_NO_LAZY_FETCH", "1")
        .args(["rev-list", "--objects", "--missing=print", "HEAD"])
        .run()
        .ok();
    let mut ids: Vec<String> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix('?'))
        .map(str::to_owned)
        .collect();
    ids.sort();
    ids
}

#[test]
fn lost_binary_objects_cost_nothing_but_their_own_files() {
    let repo = repo();
    let whole = [age(repo.path(), true), age(repo.path(), false)];
    for run in &whole {
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(run.summary()["unreadable_objects"], 0, "{}", run.stdout);
        assert!(degraded(run).is_empty());
    }
    let expected = dates(&whole[0]);
    assert_eq!(expected.len(), 4, "{expected:?}");
    assert_eq!(dates(&whole[1]), expected);
    let first = repo.git(&["rev-list", "--max-parents=0", "HEAD"]);
    let first = first.trim();
    // Old versions of the binary that changes next to the condition files, and of the
    // binary variant file.
    lose(&repo, &format!("{first}:files/blob.bin"));
    lose(&repo, "HEAD~2:files/blob.bin");
    lose(&repo, &format!("{first}:files/keytab.staging"));
    assert_eq!(missing(repo.path()).len(), 3);
    for trace in [true, false] {
        let run = age(repo.path(), trace);
        assert_eq!(run.code, 0, "trace {trace}: {}", run.stderr);
        assert_eq!(dates(&run), expected, "trace {trace}: {}", run.stdout);
        // Only unreadable files may be degraded, and the warning names them.
        for path in degraded(&run) {
            assert!(
                ["files/blob.bin", "files/keytab.staging"].contains(&path.as_str()),
                "trace {trace}: {path} degraded"
            );
        }
        if !trace {
            // Blame alone never needed those objects: nothing to say.
            continue;
        }
        // The read of every diff needs them, so they are found and named.
        assert!(run.stderr.contains("cannot be read"), "{}", run.stderr);
        assert!(run.stderr.contains("files/blob.bin"), "{}", run.stderr);
        assert!(
            run.summary()["unreadable_objects"].as_u64().unwrap_or(0) >= 2,
            "{}",
            run.stdout
        );
    }
}

#[test]
fn a_lost_version_of_a_condition_file_dates_it_from_what_remains_and_names_it() {
    let repo = Repo::new();
    repo.write("app.yml", "a: 1\nwhen: env == 'staging'\n");
    repo.write("other.yml", "when: env == \"staging\"\n");
    repo.commit("one", "2020-01-01T00:00:00Z");
    repo.write("app.yml", "a: 1\nwhen: env == 'staging'\nb: 2\n");
    repo.commit("two", "2021-01-01T00:00:00Z");
    repo.write("app.yml", "a: 1\nwhen: env == 'staging'\nb: 2\nc: 3\n");
    let three = repo.commit("three", "2022-01-01T00:00:00Z");
    let first = repo.git(&["rev-list", "--max-parents=0", "HEAD"]);
    let exact = dates(&age(repo.path(), true));
    assert!(exact.iter().all(|(_, _, c)| c == first.trim()), "{exact:?}");
    lose(&repo, "HEAD~1:app.yml");
    for trace in [true, false] {
        let run = age(repo.path(), trace);
        assert_eq!(run.code, 0, "trace {trace}: {}", run.stderr);
        assert_eq!(degraded(&run), ["app.yml"], "trace {trace}");
        let got = dates(&run);
        // Dated by the oldest version that can be read: no older than it is.
        assert_eq!(got[0], ("app.yml".to_owned(), 2, three.clone()), "{got:?}");
        assert_eq!(got[1], exact[1], "the other file stays exact");
        assert!(run.stderr.contains("app.yml"), "{}", run.stderr);
    }
}

#[test]
fn a_partial_clone_is_scanned_without_fetching_and_dated_as_the_whole_repository() {
    let src = repo();
    src.git(&["config", "uploadpack.allowFilter", "true"]);
    src.git(&["config", "uploadpack.allowAnySHA1InWant", "true"]);
    let expected = dates(&age(src.path(), true));
    let dest = tempfile::tempdir().unwrap();
    let clone = dest.path().join("partial");
    program("git")
        .args(["clone", "-q", "--no-local", "--filter=blob:limit=1k"])
        .arg(format!("file://{}", src.path().display()))
        .arg(&clone)
        .run()
        .ok();
    let before = missing(&clone);
    assert!(
        before.len() >= 4,
        "the filter left out the binaries: {before:?}"
    );
    // The promisor is reachable: nothing is fetched from it all the same.
    for trace in [true, false] {
        let run = age(&clone, trace);
        assert_eq!(run.code, 0, "trace {trace}: {}", run.stderr);
        assert_eq!(dates(&run), expected, "trace {trace}");
        assert_eq!(missing(&clone), before, "trace {trace}: a blob was fetched");
    }
    // The promisor is gone.
    program("git")
        .current_dir(&clone)
        .args(["config", "remote.origin.url"])
        .arg(format!("file://{}/gone", dest.path().display()))
        .run()
        .ok();
    for trace in [true, false] {
        let run = age(&clone, trace);
        assert_eq!(run.code, 0, "trace {trace}: {}", run.stderr);
        assert_eq!(dates(&run), expected, "trace {trace}");
        let summary: Value = run.summary();
        assert!(summary["unreadable_objects"].as_u64().unwrap_or(0) > 0 || !trace);
    }
}
