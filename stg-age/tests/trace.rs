//! stg-age dates most conditions from one read of git's diffs (`trace`) and leaves to
//! `git blame` only lines that `-M`/`-C` could have moved. These tests build real
//! histories full of what makes blame hard (blocks moved and copied between files in one
//! commit, identical condition blocks repeated in a file, whitespace-only edits, renames,
//! merges of side branches, deletions, uncommitted edits) and check that every date equals
//! the one `git blame` gives for the same ranges (`STG_AGE_TRACE=0`, the blame-only path),
//! and that the trace did date lines itself.

use stg_tests::cmd::stg;
use stg_tests::git::Repo;
use stg_tests::run::{Run, RunExt};

const NOW: &str = "2026-01-01T00:00:00Z";
const FILES: usize = 12;

/// A small deterministic generator (no crate needed for a test's dice).
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next()).unwrap_or(0) % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Condition blocks, some long enough for `-M`/`-C` to move them, repeated verbatim.
const FORMS: &[&str] = &[
    "  when: env == \"staging\"",
    "  when: env != 'staging'",
    "  when: env == \"staging\" and inventory_hostname in groups[\"fas\"]",
    "  when:\n    - env == 'staging'\n    - ansible_distribution == 'Fedora'",
    "  vars:\n    port: \"{{ (env == 'staging') | ternary(8443, 443) }}\"",
];

fn task(k: usize, dice: &mut Dice) -> Vec<String> {
    let mut lines = vec![
        format!("- name: task {k} {}", dice.below(1000)),
        format!("  command: /usr/bin/true {k}"),
    ];
    if dice.chance(30) {
        lines.extend(FORMS[dice.below(FORMS.len())].lines().map(str::to_owned));
    } else if dice.chance(50) {
        // Short and unique: nothing can move it, the trace dates it.
        lines.push(format!("  when: env == 'staging' and n == {k}"));
    }
    lines
}

struct State {
    files: Vec<(String, Vec<String>)>,
}

impl State {
    fn write(&self, repo: &Repo, i: usize) {
        let (path, lines) = &self.files[i];
        repo.write(path, format!("{}\n", lines.join("\n")));
    }
}

fn date(k: usize) -> String {
    format!(
        "20{:02}-{:02}-{:02}T{:02}:00:00Z",
        10 + k / 300,
        1 + (k / 25) % 12,
        1 + k % 25,
        k % 24
    )
}

/// One edit of file `i`.
fn edit(state: &mut State, i: usize, k: usize, dice: &mut Dice) {
    let lines = &mut state.files[i].1;
    match dice.below(10) {
        0..=3 => lines.extend(task(k, dice)),
        4 | 5 => {
            let at = 1.min(lines.len());
            let t = task(k, dice);
            lines.splice(at..at, t);
        }
        6 => {
            if let Some(l) = lines.iter_mut().find(|l| l.starts_with("  command:")) {
                *l = format!("  command: /usr/bin/true {k} --changed");
            }
        }
        7 => {
            // Whitespace only: blame -w looks through it.
            let n = lines.len();
            let l = &mut lines[dice.below(n)];
            if l.ends_with(' ') {
                l.pop();
            } else {
                l.push(' ');
            }
        }
        8 if dice.chance(30) => {
            // Duplicate an existing condition block further down (a move within the file
            // for -M, scored over the lines that match).
            if let Some(pos) = lines.iter().position(|l| l.contains("when:")) {
                let block: Vec<String> = lines[pos..lines.len().min(pos + 3)].to_vec();
                lines.push(format!("- name: again {k}"));
                lines.extend(block);
            }
        }
        _ => {
            if lines.len() > 12 {
                let at = 2 + dice.below(lines.len() - 8);
                lines.drain(at..at + 3);
            }
        }
    }
}

/// A seeded history of `commits` commits over a handful of files.
fn build(seed: u64, commits: usize) -> Repo {
    let repo = Repo::new();
    let mut dice = Dice(seed);
    let mut state = State {
        files: (0..FILES)
            .map(|i| {
                (
                    format!("roles/r{i}/tasks/main.yml"),
                    vec!["---".to_owned(), format!("- name: first {i}")],
                )
            })
            .collect(),
    };
    for i in 0..state.files.len() {
        state.write(&repo, i);
    }
    repo.commit("start", &date(0));
    let mut k = 1;
    while k < commits {
        match dice.below(20) {
            // A side branch edits one file while main edits another, then a merge.
            0 => {
                let (a, b) = (dice.below(FILES), dice.below(FILES));
                if a == b {
                    continue;
                }
                repo.git(&["checkout", "-q", "-b", "side"]);
                for _ in 0..2 {
                    edit(&mut state, a, k, &mut dice);
                    state.write(&repo, a);
                    repo.commit("side", &date(k));
                    k += 1;
                }
                repo.git(&["checkout", "-q", "main"]);
                edit(&mut state, b, k, &mut dice);
                state.write(&repo, b);
                repo.commit("main", &date(k));
                k += 1;
                repo.git_at(
                    &["merge", "-q", "--no-ff", "-m", "merge side", "side"],
                    &date(k),
                    "Test Author",
                );
                repo.git(&["branch", "-q", "-d", "side"]);
                k += 1;
            }
            // A block moves (or is copied) from one file to another in one commit: -C.
            1..=3 => {
                let (a, b) = (dice.below(FILES), dice.below(FILES));
                if a == b || state.files[a].1.len() < 12 {
                    continue;
                }
                let block: Vec<String> = state.files[a].1[3..9].to_vec();
                if dice.chance(70) {
                    state.files[a].1.drain(3..9);
                }
                state.files[b].1.extend(block);
                state.write(&repo, a);
                state.write(&repo, b);
                repo.commit("move a block", &date(k));
                k += 1;
            }
            // A rename, sometimes with an edit in the same commit.
            4 => {
                let a = dice.below(FILES);
                let old = state.files[a].0.clone();
                let new = if old.ends_with("main.yml") {
                    old.replace("main.yml", "main2.yml")
                } else {
                    old.replace("main2.yml", "main.yml")
                };
                repo.git(&["mv", &old, &new]);
                state.files[a].0 = new;
                if dice.chance(50) {
                    edit(&mut state, a, k, &mut dice);
                    state.write(&repo, a);
                }
                repo.commit("rename", &date(k));
                k += 1;
            }
            _ => {
                let n = 1 + usize::from(dice.chance(30));
                for _ in 0..n {
                    let a = dice.below(FILES);
                    edit(&mut state, a, k, &mut dice);
                    state.write(&repo, a);
                }
                repo.commit("change", &date(k));
                k += 1;
            }
        }
    }
    repo
}

fn age(repo: &Repo, trace: bool) -> Run {
    let mut cmd = stg("stg-age");
    cmd.arg("--repo")
        .arg(repo.path())
        .args(["--format", "json", "--now", NOW, "--no-cache"])
        .env("STG_AGE_DEBUG", "1");
    if !trace {
        cmd.env("STG_AGE_TRACE", "0");
    }
    cmd.run()
}

/// `(path, line, commit, author, date)` of a finding.
type Dated = (String, u64, String, String, String);

/// Every finding of a run, sorted.
fn dated(run: &Run) -> Vec<Dated> {
    let mut out: Vec<_> = run
        .of_type("finding")
        .iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (
                text("path"),
                r["line"].as_u64().unwrap_or(0),
                text("commit"),
                text("author"),
                text("introduced_at"),
            )
        })
        .collect();
    out.sort();
    out
}

/// `(dated, to blame over their reach, to blame whole)` from the debug line (`traced N
/// files: D dated, W to blame over their reach (C with -C), X to blame whole`).
fn traced(run: &Run) -> (usize, usize, usize) {
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("traced"))
        .unwrap_or_else(|| panic!("no trace summary: {}", run.stderr));
    let numbers: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|t| t.parse().ok())
        .collect();
    (numbers[1], numbers[2], numbers[4])
}

/// `commits` commits over the files `names` (seeded): each edits one file, and every
/// `copy_every`th also copies six of its lines to the next file (a copy for `-C`).
fn churn(repo: &Repo, names: &[impl AsRef<str>], seed: u64, commits: usize, copy_every: usize) {
    let mut dice = Dice(seed);
    let mut state = State {
        files: names
            .iter()
            .map(|n| (n.as_ref().to_owned(), vec!["---".to_owned()]))
            .collect(),
    };
    for k in 0..commits {
        let i = dice.below(names.len());
        edit(&mut state, i, k, &mut dice);
        state.write(repo, i);
        if k % copy_every == copy_every - 1 && state.files[i].1.len() > 8 {
            let block: Vec<String> = state.files[i].1[1..7].to_vec();
            let j = (i + 1) % names.len();
            state.files[j].1.extend(block);
            state.write(repo, j);
        }
        repo.commit("change", &date(k));
    }
}

/// Runs stg-age traced and blame-only; asserts both succeed with the same findings; returns
/// the traced run and its findings.
fn same_as_blame(repo: &Repo) -> (Run, Vec<Dated>) {
    let traced_run = age(repo, true);
    let blamed_run = age(repo, false);
    assert_eq!(traced_run.code, 0, "{}", traced_run.stderr);
    assert_eq!(blamed_run.code, 0, "{}", blamed_run.stderr);
    let by_trace = dated(&traced_run);
    assert_eq!(
        by_trace,
        dated(&blamed_run),
        "traced dates differ from git blame's"
    );
    (traced_run, by_trace)
}

#[test]
fn traced_dates_equal_git_blames_on_histories_with_moves_copies_renames_and_merges() {
    let mut totals = (0, 0, 0);
    for seed in [1_u64, 7, 42] {
        let repo = build(seed, 160);
        if seed == 7 {
            // Authors go through .mailmap, as blame shows them.
            repo.write(".mailmap", "Mapped Name <author@example.org>\n");
            repo.commit("mailmap", &date(161));
        }
        let (traced_run, by_trace) = same_as_blame(&repo);
        assert!(by_trace.len() > 10, "seed {seed}: too few conditions");
        let (dated_here, widened, whole) = traced(&traced_run);
        totals = (totals.0 + dated_here, totals.1 + widened, totals.2 + whole);
        if widened > 0 {
            assert!(
                traced_run.stderr.contains("blamed in it"),
                "widened files go to the replay: {}",
                traced_run.stderr
            );
        }
        if seed == 7 {
            assert!(
                by_trace.iter().any(|f| f.3 == "Mapped Name"),
                "{by_trace:?}"
            );
        }
    }
    // The trace dated files itself, and left some to blame: both paths were exercised.
    assert!(totals.0 > 0, "{totals:?}");
    assert!(totals.1 + totals.2 > 0, "{totals:?}");
}

#[test]
fn uncommitted_edits_and_a_block_moved_in_one_commit_date_as_blame_does() {
    let repo = build(3, 60);
    // An uncommitted edit above a condition: that file is blamed by git (work tree).
    let path = repo.path().join("roles/r0/tasks/main.yml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.insert_str(4, "- name: not committed\n  when: env == 'staging'\n");
    std::fs::write(&path, text).unwrap();
    let (traced_run, _) = same_as_blame(&repo);
    assert!(
        traced_run
            .of_type("finding")
            .iter()
            .any(|f| f["path"] == "roles/r0/tasks/main.yml" && f["commit"] == "uncommitted"),
        "the uncommitted condition is reported as not committed"
    );
}

#[test]
fn odd_paths_and_a_hostile_user_config_date_as_blame_does() {
    let repo = Repo::new();
    // Settings that change what `git log` prints, or how it diffs.
    for (key, value) in [
        ("log.showRoot", "false"),
        ("diff.noprefix", "true"),
        ("diff.mnemonicPrefix", "true"),
        ("color.ui", "always"),
        ("diff.renames", "false"),
        ("diff.context", "9"),
        ("diff.interHunkContext", "7"),
        ("core.quotePath", "false"),
        ("log.showSignature", "true"),
        ("diff.suppressBlankEmpty", "true"),
    ] {
        repo.git(&["config", key, value]);
    }
    let names = [
        "roles/with space/tasks/main.yml",
        "roles/caf\u{e9}/tasks/main.yml",
        "roles/q\"uote/tasks/main.yml",
        "roles/tab\there/tasks/main.yml",
    ];
    churn(&repo, &names, 99, 60, 17);
    let (traced_run, by_trace) = same_as_blame(&repo);
    assert!(by_trace.len() > 5, "{by_trace:?}");
    let (dated_here, widened, whole) = traced(&traced_run);
    assert!(
        dated_here + widened > 0 && whole == 0,
        "{}",
        traced_run.stderr
    );
}

#[test]
fn a_configured_diff_algorithm_leaves_dating_to_blame() {
    let repo = build(5, 30);
    repo.git(&["config", "diff.algorithm", "histogram"]);
    let run = age(&repo, true);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("traced"), "{}", run.stderr);
    assert_eq!(dated(&run), dated(&age(&repo, false)));
}

#[test]
fn a_sha256_repository_is_traced_and_replayed_as_blame_dates_it() {
    let repo = Repo::new();
    // Re-create it with SHA-256 object names: the replay must borrow that format.
    std::fs::remove_dir_all(repo.path().join(".git")).unwrap();
    repo.git(&["init", "-q", "-b", "main", "--object-format=sha256"]);
    repo.git(&["config", "user.name", "Test Author"]);
    repo.git(&["config", "user.email", "author@example.org"]);
    let names: Vec<String> = (0..4)
        .map(|i| format!("roles/r{i}/tasks/main.yml"))
        .collect();
    churn(&repo, &names, 11, 50, 9);
    let (traced_run, by_trace) = same_as_blame(&repo);
    assert!(by_trace.iter().all(|f| f.2.len() == 64), "{by_trace:?}");
    assert!(
        !traced_run.stderr.contains("no replay"),
        "{}",
        traced_run.stderr
    );
}
