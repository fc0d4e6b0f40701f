//! Blaming the lines [`crate::trace`] could not date, in a small replay of the history:
//! one temporary repository holding, for each such file, a branch whose commits are the
//! commits that change one of the files its lines can have moved through, and whose trees
//! hold only those files, in one folder, under names that sort as their paths do (the
//! blobs themselves are the repository's, shared through `objects/info/alternates`). `git blame -w -M -C` there gives what it gives in the
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
    /// The name each job's file has in its branch.
    names: Vec<Vec<u8>>,
    /// The commits of each job's branch (what its blame walks).
    pub sizes: Vec<usize>,
}

/// Marks available to one job's branch.
const MARKS_PER_JOB: usize = 1 << 24;

/// One job's branch: its fast-import commands, its marks (to commit indices), its name,
/// and the name of the job's file in it.
struct Branch {
    stream: Vec<u8>,
    marks: HashMap<usize, u32>,
    name: String,
    file: Vec<u8>,
}

impl Replay {
    /// Builds the replay for `jobs`.
    pub fn build(
        top: &Path,
        history: &History,
        patches: &Patches,
        jobs: &[Job<'_>],
        threads: usize,
    ) -> anyhow::Result<Replay> {
        let dir = tempfile::Builder::new()
            .prefix("stg-age-replay-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        let git_dir = dir.path().join("git");
        // The same object format as the repository's, whose objects it borrows.
        let format = crate::git::run(
            top,
            &[OsStr::new("rev-parse"), OsStr::new("--show-object-format")],
        )?;
        let format = format!(
            "--object-format={}",
            String::from_utf8_lossy(format.trim_ascii())
        );
        crate::git::run(
            top,
            &[
                OsStr::new("init"),
                OsStr::new("-q"),
                OsStr::new("--bare"),
                OsStr::new(&format),
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

        let marks_file = dir.path().join("marks");
        // Loose compression and a larger heap step: the replay is read once and thrown
        // away, and fast-import otherwise spends most of its time growing its heap.
        let mut child = crate::git::git(dir.path())
            .args(["-c", "core.compression=0", "-c", "pack.compression=0"])
            .arg("--git-dir")
            .arg(&git_dir)
            .args(["fast-import", "--quiet"])
            .arg(format!("--export-marks={}", marks_file.display()))
            .env("MALLOC_TOP_PAD_", "268435456")
            .env("MALLOC_TRIM_THRESHOLD_", "1073741824")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("could not run git fast-import")?;
        let mut stdin = child.stdin.take().context("git fast-import's stdin")?;
        // Each job's branch is written on its own (in parallel, marks numbered from
        // `MARKS_PER_JOB * j` so that they never meet) and handed to fast-import as soon
        // as it is ready.
        let next = std::sync::atomic::AtomicUsize::new(0);
        let (send, receive) = std::sync::mpsc::channel::<anyhow::Result<(usize, Option<Branch>)>>();
        let mut marks: HashMap<usize, u32> = HashMap::new();
        let mut branches: Vec<Option<String>> = vec![None; jobs.len()];
        let mut names: Vec<Vec<u8>> = vec![Vec::new(); jobs.len()];
        let mut sizes: Vec<usize> = vec![0; jobs.len()];
        let mut written: std::io::Result<()> = Ok(());
        let mut failed = None;
        std::thread::scope(|s| {
            for _ in 0..threads.clamp(1, jobs.len().max(1)) {
                let send = send.clone();
                let next = &next;
                s.spawn(move || {
                    let mut cat: Option<CatFile> = None;
                    loop {
                        let j = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(job) = jobs.get(j) else { break };
                        let result = branch(top, history, patches, &mut cat, job, j);
                        let stop = result.is_err();
                        if send.send(result.map(|b| (j, b))).is_err() || stop {
                            break;
                        }
                    }
                });
            }
            drop(send);
            for result in receive {
                match result {
                    Ok((j, Some(b))) => {
                        if written.is_ok() {
                            written = stdin.write_all(&b.stream);
                        }
                        sizes[j] = b.marks.len();
                        marks.extend(b.marks);
                        branches[j] = Some(b.name);
                        names[j] = b.file;
                    }
                    Ok((_, None)) => {}
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
            }
        });
        drop(stdin);
        let out = child.wait_with_output()?;
        if let Some(e) = failed {
            return Err(e);
        }
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
            if let Some(&c) = marks.get(&mark) {
                real.insert(id.to_owned(), c);
            }
        }
        Ok(Replay {
            dir,
            real,
            branches,
            names,
            sizes,
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
        args.push(OsStr::from_bytes(&self.names[j]));
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
                    at: crate::git::moment(author.at),
                },
            ));
        }
        Ok(Some(dated))
    }
}

/// The branch of job `j`: the commits that change one of its names, each with a tree of
/// those files only, flattened into one folder under names that sort as the paths do (so
/// `-C` meets candidates in the same order). `None` when the history cannot be replayed
/// for it (then the file is blamed in place).
fn branch(
    top: &Path,
    history: &History,
    patches: &Patches,
    cat: &mut Option<CatFile>,
    job: &Job<'_>,
    j: usize,
) -> anyhow::Result<Option<Branch>> {
    let Some(commits) = history.condensed(job.names) else {
        return Ok(None);
    };
    if commits.len() >= MARKS_PER_JOB {
        return Ok(None);
    }
    let mut paths: Vec<&Vec<u8>> = job.names.iter().collect();
    paths.sort();
    let flat: HashMap<u32, String> = paths
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((history.path_id(p)?, format!("f{i:06}"))))
        .collect();
    let Some(file) = history.path_id(job.path).and_then(|p| flat.get(&p)) else {
        return Ok(None);
    };
    let name = format!("refs/heads/r{j}");
    let mut state: HashMap<u32, HashMap<u32, String>> = HashMap::new();
    let mut marks: HashMap<usize, u32> = HashMap::new();
    let mut mark_of: HashMap<u32, usize> = HashMap::new();
    let mut out = Vec::new();
    for (c, parents) in &commits {
        let commit = &history.commits[*c as usize];
        let Some(author) = patches.authors.get(c) else {
            return Ok(None);
        };
        let mut tree = parents
            .first()
            .and_then(|p| state.get(p))
            .cloned()
            .unwrap_or_default();
        let mut changed: Vec<(u32, Option<String>)> = Vec::new();
        for &(status, p) in &commit.changes {
            if !flat.contains_key(&p) {
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
                let mut spec = history.ids[*c as usize].clone().into_bytes();
                spec.push(b':');
                spec.extend_from_slice(&history.paths[p as usize]);
                if cat.is_none() {
                    *cat = Some(CatFile::start(top)?);
                }
                match cat
                    .as_mut()
                    .map(|cat| cat.blob(&spec))
                    .transpose()?
                    .flatten()
                {
                    Some((oid, _)) => oid,
                    None => return Ok(None),
                }
            };
            tree.insert(p, oid.clone());
            changed.push((p, Some(oid)));
        }
        let mark = MARKS_PER_JOB * j + mark_of.len() + 1;
        marks.insert(mark, *c);
        mark_of.insert(*c, mark);
        let id = &history.ids[*c as usize];
        if parents.is_empty() {
            let _ = writeln!(out, "reset {name}");
        }
        let _ = write!(
            out,
            "commit {name}\nmark :{mark}\nauthor a <a> {at} +0000\ncommitter a <a> {ct} +0000\ndata {len}\n{id}\n",
            at = author.at,
            ct = author.committed,
            len = id.len() + 1,
        );
        for (i, p) in parents.iter().enumerate() {
            let Some(m) = mark_of.get(p) else {
                return Ok(None);
            };
            let _ = writeln!(out, "{} :{m}", if i == 0 { "from" } else { "merge" });
        }
        // A root of the replay (a root of the history) gets its whole tree.
        let lines: Vec<(u32, Option<String>)> = if parents.is_empty() {
            tree.iter().map(|(p, o)| (*p, Some(o.clone()))).collect()
        } else {
            changed
        };
        for (p, oid) in lines {
            let _ = match oid {
                Some(oid) => writeln!(out, "M 100644 {oid} {}", flat[&p]),
                None => writeln!(out, "D {}", flat[&p]),
            };
        }
        out.push(b'\n');
        state.insert(*c, tree);
    }
    Ok(Some(Branch {
        stream: out,
        marks,
        name,
        file: file.clone().into_bytes(),
    }))
}
