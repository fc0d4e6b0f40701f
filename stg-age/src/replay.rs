//! Blaming the lines [`crate::trace`] could not date, in a small replay of the history:
//! one temporary repository holding, for each such file, a branch whose commits are the
//! commits that change one of the files its lines can have moved through, and whose trees
//! hold only those files (the blobs themselves are the repository's, shared through
//! `objects/info/alternates`). `git blame -w -M -C` there gives what it gives in the
//! repository, at a fraction of the cost.
//!
//! Why the answer is the same. Blame passes a line to a commit's parent untouched unless
//! the commit changes the file the line is in; the commits dropped change none of the
//! files, so the walk meets the same changes in the same order (commit dates are kept).
//! What differs is only which *other* files exist: `-C` looks for copies only in files the
//! commit changed, and [`crate::trace`] proved that no blamed line has a matching run long
//! enough in any file left out, so it could not have been found there. A rename is followed
//! only where the trace followed it too (one file deleted, one added), and then both are in.
//!
//! The replay is built with one `git fast-import` (tens of thousands of tiny commits a
//! second) into a private temporary directory that is removed afterwards.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::Context;
use time::OffsetDateTime;

use crate::git::{CatFile, Origin};
use crate::history::History;
use crate::patches::Patches;

/// One file to blame in the replay.
pub struct Job<'a> {
    /// Its path.
    pub path: &'a [u8],
    /// The `-L` ranges.
    pub ranges: Vec<(usize, usize)>,
    /// Every name of every file its lines can have moved through.
    pub names: &'a HashSet<Vec<u8>>,
    /// Whether `-C` matters.
    pub copies: bool,
}

/// A built replay: a temporary repository with one branch per job.
pub struct Replay {
    dir: tempfile::TempDir,
    /// Replay commit id -> commit index in the history.
    real: HashMap<String, u32>,
    /// Branch of each job (`None`: the history could not be cut for it).
    branches: Vec<Option<String>>,
}

/// Path characters fast-import would need quoted; such files are blamed in the repository.
fn plain(path: &[u8]) -> bool {
    !path.is_empty() && !path.iter().any(|b| matches!(b, b'\n' | b'"' | b'\\')) && path[0] != b' '
}

impl Replay {
    /// Builds the replay for `jobs`.
    pub fn build(
        top: &Path,
        history: &History,
        patches: &Patches,
        jobs: &[Job<'_>],
    ) -> anyhow::Result<Replay> {
        let dir = tempfile::Builder::new()
            .prefix("stg-age-replay-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        let git_dir = dir.path().join("git");
        crate::git::run(
            top,
            &[
                OsStr::new("init"),
                OsStr::new("-q"),
                OsStr::new("--bare"),
                git_dir.as_os_str(),
            ],
        )?;
        let objects = crate::git::run(
            top,
            &[
                OsStr::new("rev-parse"),
                OsStr::new("--path-format=absolute"),
                OsStr::new("--git-path"),
                OsStr::new("objects"),
            ],
        )?;
        let mut alternates = objects.trim_ascii().to_vec();
        alternates.push(b'\n');
        std::fs::write(git_dir.join("objects/info/alternates"), alternates)?;

        let mut cat = CatFile::start(top)?;
        let mut stream: Vec<u8> = Vec::new();
        let mut marks: Vec<u32> = Vec::new();
        let mut branches = Vec::with_capacity(jobs.len());
        for (j, job) in jobs.iter().enumerate() {
            let branch = format!("refs/heads/r{j}");
            let ok = job.names.iter().all(|n| plain(n))
                && add_branch(
                    history,
                    patches,
                    &mut cat,
                    job.names,
                    &branch,
                    &mut stream,
                    &mut marks,
                )?;
            branches.push(ok.then_some(branch));
        }
        if let Some(dump) = std::env::var_os("STG_AGE_REPLAY_DUMP") {
            std::fs::write(dump, &stream)?;
        }
        let marks_file = dir.path().join("marks");
        // Loose compression and a larger heap step: the replay is read once and thrown
        // away, and fast-import otherwise spends most of its time growing its heap.
        let mut child = std::process::Command::new("git")
            .args(["-c", "core.compression=0", "-c", "pack.compression=0"])
            .arg("--git-dir")
            .arg(&git_dir)
            .args(["fast-import", "--quiet"])
            .env("MALLOC_TOP_PAD_", "268435456")
            .env("MALLOC_TRIM_THRESHOLD_", "1073741824")
            .arg(format!("--export-marks={}", marks_file.display()))
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("could not run git fast-import")?;
        let mut stdin = child.stdin.take().context("git fast-import's stdin")?;
        let written = stdin.write_all(&stream);
        drop(stdin);
        let out = child.wait_with_output()?;
        if !out.status.success() {
            anyhow::bail!(
                "git fast-import failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        written.context("while writing to git fast-import")?;
        let mut real = HashMap::new();
        for line in std::fs::read_to_string(&marks_file)?.lines() {
            let Some((mark, id)) = line.strip_prefix(':').and_then(|l| l.split_once(' ')) else {
                continue;
            };
            let mark: usize = mark.parse().context("bad mark")?;
            if let Some(&c) = marks.get(mark - 1) {
                real.insert(id.to_owned(), c);
            }
        }
        Ok(Replay {
            dir,
            real,
            branches,
        })
    }

    /// Blames job `j` in the replay: `(line, origin)` of every line of its ranges, or
    /// `None` when the replay has no branch for it.
    pub fn blame(
        &self,
        j: usize,
        job: &Job<'_>,
        patches: &Patches,
        history: &History,
    ) -> anyhow::Result<Option<Vec<(usize, Origin)>>> {
        let Some(branch) = self.branches.get(j).and_then(Option::as_ref) else {
            return Ok(None);
        };
        let mut args: Vec<&OsStr> = ["blame", "--no-textconv", "--porcelain", "-w", "-M"]
            .iter()
            .map(OsStr::new)
            .collect();
        if job.copies {
            args.push(OsStr::new("-C"));
        }
        args.push(OsStr::new("--ignore-revs-file="));
        let ranges: Vec<String> = job
            .ranges
            .iter()
            .map(|(a, b)| format!("-L{a},{b}"))
            .collect();
        args.extend(ranges.iter().map(OsStr::new));
        args.push(OsStr::new(branch));
        args.push(OsStr::new("--"));
        args.push(OsStr::from_bytes(job.path));
        let out = crate::git::run_in_git_dir(self.dir.path(), &self.dir.path().join("git"), &args)?;
        let lines = crate::git::parse_porcelain(&out)?;
        let mut dated = Vec::with_capacity(lines.len());
        for (line, origin) in lines {
            let Origin::Commit { id, .. } = origin else {
                anyhow::bail!("the replay has no uncommitted lines");
            };
            let c = *self
                .real
                .get(&id)
                .with_context(|| format!("replay commit {id} has no original"))?;
            let author = patches
                .authors
                .get(&c)
                .with_context(|| format!("no author for {}", history.ids[c as usize]))?;
            dated.push((
                line,
                Origin::Commit {
                    id: history.ids[c as usize].clone(),
                    author: author.name.clone(),
                    at: OffsetDateTime::from_unix_timestamp(author.at)?,
                },
            ));
        }
        Ok(Some(dated))
    }
}

/// Appends to `stream` the fast-import commands of one branch replaying `names`; false
/// when the history cannot be replayed for them (then the file is blamed in place).
fn add_branch(
    history: &History,
    patches: &Patches,
    cat: &mut CatFile,
    names: &HashSet<Vec<u8>>,
    branch: &str,
    stream: &mut Vec<u8>,
    marks: &mut Vec<u32>,
) -> anyhow::Result<bool> {
    let Some(commits) = history.condensed(names) else {
        return Ok(false);
    };
    let ids: HashSet<u32> = names.iter().filter_map(|n| history.path_id(n)).collect();
    let mut state: HashMap<u32, HashMap<u32, String>> = HashMap::new();
    let mut mark_of: HashMap<u32, usize> = HashMap::new();
    let mut out = Vec::new();
    for (c, parents) in &commits {
        let commit = &history.commits[*c as usize];
        let Some(author) = patches.authors.get(c) else {
            return Ok(false);
        };
        let mut tree = parents
            .first()
            .and_then(|p| state.get(p))
            .cloned()
            .unwrap_or_default();
        let mut changed: Vec<(u32, Option<String>)> = Vec::new();
        for &(status, p) in &commit.changes {
            if !ids.contains(&p) {
                continue;
            }
            if status == b'D' {
                tree.remove(&p);
                changed.push((p, None));
                continue;
            }
            let known = patches.changes.get(&(*c, p)).and_then(|f| f.new.clone());
            let oid = if let Some(oid) = known {
                oid
            } else {
                let mut name = history.ids[*c as usize].clone().into_bytes();
                name.push(b':');
                name.extend_from_slice(&history.paths[p as usize]);
                match cat.blob(&name)? {
                    Some((oid, _)) => oid,
                    None => return Ok(false),
                }
            };
            tree.insert(p, oid.clone());
            changed.push((p, Some(oid)));
        }
        marks.push(*c);
        let mark = marks.len();
        mark_of.insert(*c, mark);
        let id = &history.ids[*c as usize];
        if parents.is_empty() {
            let _ = writeln!(out, "reset {branch}");
        }
        let _ = write!(
            out,
            "commit {branch}\nmark :{mark}\nauthor a <a> {at} +0000\ncommitter a <a> {ct} +0000\ndata {len}\n{id}\n",
            at = author.at,
            ct = author.committed,
            len = id.len() + 1,
        );
        for (i, p) in parents.iter().enumerate() {
            let Some(m) = mark_of.get(p) else {
                return Ok(false);
            };
            let _ = writeln!(out, "{} :{m}", if i == 0 { "from" } else { "merge" });
        }
        if parents.is_empty() {
            // A root of the replay (a root of the history): its whole tree, on a branch
            // started afresh.
            for (p, oid) in &tree {
                out.extend_from_slice(format!("M 100644 {oid} ").as_bytes());
                out.extend_from_slice(&history.paths[*p as usize]);
                out.push(b'\n');
            }
        } else {
            for (p, oid) in changed {
                match oid {
                    Some(oid) => out.extend_from_slice(format!("M 100644 {oid} ").as_bytes()),
                    None => out.extend_from_slice(b"D "),
                }
                out.extend_from_slice(&history.paths[p as usize]);
                out.push(b'\n');
            }
        }
        out.push(b'\n');
        state.insert(*c, tree);
    }
    stream.extend_from_slice(&out);
    Ok(true)
}
