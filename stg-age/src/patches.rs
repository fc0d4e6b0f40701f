//! The history's line changes, read once: `git log -p -U0 -w` (a merge against its first
//! parent), parsed down to hunk headers and blob ids, for [`crate::trace`].
//!
//! The diffs are git's own, computed with what `git blame -w` uses for its own diffs
//! (xdiff, whitespace ignored, the indent heuristic as configured, no context), so a line
//! that a hunk leaves alone is a line blame passes to the parent. Reading every change of
//! every commit is cheaper than a pathspec of a few hundred files (git matches each tree
//! entry against each pathspec item), and it is split over a few `git log` processes.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;

use anyhow::Context;

use crate::git::Origin;
use crate::history::History;

/// One hunk of a `-U0` diff: lines `old_start..old_start + old_len` of the parent became
/// `new_start..new_start + new_len` (1-based; a length of 0 puts the hunk after its start).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hunk {
    /// First line in the parent (the line before, when `old_len` is 0).
    pub old_start: u32,
    /// Lines in the parent.
    pub old_len: u32,
    /// First line in the commit (the line before, when `new_len` is 0).
    pub new_start: u32,
    /// Lines in the commit.
    pub new_len: u32,
}

/// What one commit did to one file.
#[derive(Clone, Debug, Default)]
pub struct FileChange {
    /// The hunks, in order (none for a change to whitespace or mode only).
    pub hunks: Vec<Hunk>,
    /// The blob in the parent (`None` for an added file).
    pub old: Option<String>,
    /// The blob in the commit (`None` for a deleted file).
    pub new: Option<String>,
    /// The path it was renamed from (git's rename detection, `-M`), when it was.
    pub from: Option<u32>,
    /// git showed no hunks because one side is binary ("Binary files ... differ").
    pub binary: bool,
}

/// Author of a commit, as `git blame --porcelain` reports it (`.mailmap` applied).
#[derive(Clone, Debug)]
pub struct Author {
    /// Name.
    pub name: String,
    /// Author time (Unix seconds, as [`crate::git::seconds`] reads it).
    pub at: i64,
    /// Committer time (Unix seconds): the order blame visits commits in.
    pub committed: i64,
}

/// The parsed log.
#[derive(Debug, Default)]
pub struct Patches {
    /// The author of each commit, by commit index.
    pub authors: HashMap<u32, Author>,
    /// Changes by `(commit index, path index)` (a change to whitespace only has no hunks).
    pub changes: HashMap<(u32, u32), FileChange>,
    /// Paths left out of the read because some version of them cannot be read (see
    /// [`crate::objects`]): their changes are not here, so nothing may be concluded from
    /// the absence of hunks.
    pub excluded: std::collections::HashSet<u32>,
}

impl Patches {
    /// The hunks of `path` in `commit` (empty when git showed none).
    #[must_use]
    pub fn hunks(&self, commit: u32, path: u32) -> &[Hunk] {
        self.changes
            .get(&(commit, path))
            .map_or(&[], |c| c.hunks.as_slice())
    }
}

/// The arguments of the `git log` that reads the diffs of `head`'s history, part `i` of
/// `parts` of `total` commits.
fn log_args(
    head: &str,
    total: usize,
    parts: usize,
    i: usize,
    pathspec: &[std::ffi::OsString],
) -> Vec<std::ffi::OsString> {
    let per = total.div_ceil(parts.max(1)).max(1);
    [
        "log",
        "--diff-merges=first-parent",
        "-p",
        "--raw",
        "--no-abbrev",
        "-U0",
        "--inter-hunk-context=0",
        "-w",
        "-M",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "--no-relative",
        "--no-show-signature",
        "--full-index",
        "--diff-algorithm=myers",
        "--src-prefix=a/",
        "--dst-prefix=b/",
        "--root",
        "--format=%x01%H%x00%at%x00%ct%x00%P%x00%aN",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([format!("--skip={}", i * per)])
    // The last part reads to the end, whatever the count was.
    .chain((i + 1 < parts).then(|| format!("--max-count={per}")))
    // With a pathspec, every commit is still shown (no history simplification), so the
    // parts and the commits are those of the read without one.
    .chain(
        (!pathspec.is_empty())
            .then(|| ["--full-history".to_owned(), "--sparse".to_owned()])
            .into_iter()
            .flatten(),
    )
    .chain([head.to_owned(), "--".to_owned()])
    .map(std::ffi::OsString::from)
    .chain(pathspec.iter().cloned())
    .collect()
}

/// Runs the `git log` processes that read the diffs of the `total` commits of `head`'s
/// history, `jobs` at a time; returns their outputs in history order, for [`parse_all`].
/// The history is cut in three parts per job: recent commits cost more (larger trees), and
/// a worker that finishes early takes the next part. `pathspec` (after `--`) leaves paths
/// out, for [`fetch_readable`].
pub fn fetch(
    top: &Path,
    head: &str,
    total: usize,
    jobs: usize,
    pathspec: &[std::ffi::OsString],
) -> anyhow::Result<Vec<Vec<u8>>> {
    let parts: Vec<usize> = (0..(jobs.clamp(1, 4) * 3).min(total.max(1))).collect();
    crate::scan::parallel(jobs.clamp(1, 4), &parts, |&i| {
        let args = log_args(head, total, parts.len(), i, pathspec);
        let args: Vec<&OsStr> = args.iter().map(std::ffi::OsString::as_os_str).collect();
        crate::git::run(top, &args)
    })
}

/// [`fetch`], and when git fails on an object it cannot read, [`fetch`] again without
/// the paths of every unreadable object ([`crate::objects`]). Returns the outputs and the
/// paths left out (`None`: nothing was).
pub fn fetch_readable(
    top: &Path,
    head: &str,
    total: usize,
    jobs: usize,
    objects: &crate::objects::Objects,
) -> anyhow::Result<(Vec<Vec<u8>>, Option<crate::objects::Unreadable>)> {
    let first = match objects.known() {
        Some(known) => fetch(top, head, total, jobs, &known.pathspec()).map(|o| (o, Some(known))),
        None => fetch(top, head, total, jobs, &[]).map(|o| (o, None)),
    };
    let error = match first {
        Ok(done) => return Ok(done),
        Err(e) => e,
    };
    let Some(unreadable) = objects.unreadable(&error) else {
        return Err(error);
    };
    let outputs = fetch(top, head, total, jobs, &unreadable.pathspec())
        .with_context(|| format!("(the first read failed: {error:#})"))?;
    Ok((outputs, Some(unreadable)))
}

/// The history [`fetch`]'s outputs cover (ids, parents, first-parent changes with renames
/// as a deletion and an addition, as [`History::extend`] reads them), so that a cold run
/// reads the history once.
pub fn history(outputs: &[Vec<u8>], head: &str) -> anyhow::Result<History> {
    let mut pending: Vec<crate::history::Read> = Vec::new();
    for out in outputs {
        for line in out.split(|b| *b == b'\n') {
            if let Some(header) = line.strip_prefix(b"\x01") {
                let mut fields = header.split(|b| *b == 0);
                let id = String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
                let parents = fields
                    .nth(2)
                    .map(|p| {
                        String::from_utf8_lossy(p)
                            .split_ascii_whitespace()
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                pending.push((id, parents, Vec::new()));
            } else if line.first() == Some(&b':') {
                let Some(last) = pending.last_mut() else {
                    anyhow::bail!("git log output starts without a commit");
                };
                let Some(tab) = line.iter().position(|b| *b == b'\t') else {
                    anyhow::bail!("unexpected raw line {:?}", String::from_utf8_lossy(line));
                };
                let status = line[..tab]
                    .rsplit(|b| *b == b' ')
                    .next()
                    .unwrap_or_default();
                let paths = raw_paths(&line[tab + 1..]);
                match (status.first(), paths.as_slice()) {
                    (Some(b'R'), [from, to]) => {
                        last.2.push((b'D', from.clone()));
                        last.2.push((b'A', to.clone()));
                    }
                    (Some(&s), [path]) if s.is_ascii_uppercase() => last.2.push((s, path.clone())),
                    _ => anyhow::bail!("unexpected raw line {:?}", String::from_utf8_lossy(line)),
                }
            }
        }
    }
    let mut history = History::default();
    history.absorb(pending, head);
    if !history.is_consistent() {
        anyhow::bail!("the history read with the diffs is incomplete");
    }
    Ok(history)
}

/// Parses what [`fetch`] read.
pub fn parse_all(outputs: &[Vec<u8>], history: &History) -> anyhow::Result<Patches> {
    // Each part on its own thread, then put together (no commit is in two parts).
    let parts: Vec<anyhow::Result<Patches>> = std::thread::scope(|s| {
        let handles: Vec<_> = outputs
            .iter()
            .map(|out| {
                s.spawn(move || {
                    let mut part = Patches::default();
                    parse(out, history, &mut part).context("while reading git log -p")?;
                    Ok(part)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic parsing the log"))
            .collect()
    });
    let mut patches = Patches::default();
    for part in parts {
        let part = part?;
        patches.authors.extend(part.authors);
        patches.changes.extend(part.changes);
    }
    Ok(patches)
}

/// The commit that added each of `paths`, following renames back as `git log -M
/// --diff-filter=AR` shows them (merges not looked at): the same answer as
/// [`crate::git::added_many`], from diffs already read. Paths never added in a commit are
/// [`Origin::Uncommitted`].
#[must_use]
pub fn added(history: &History, patches: &Patches, paths: &[Vec<u8>]) -> Vec<Origin> {
    let mut origins = vec![Origin::Uncommitted; paths.len()];
    let mut wanted: HashMap<u32, usize> = paths
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((history.path_id(p)?, i)))
        .collect();
    for (c, commit) in history.commits.iter().enumerate() {
        if commit.parents.len() > 1 {
            continue;
        }
        let c = u32::try_from(c).unwrap_or(u32::MAX);
        for &(status, p) in &commit.changes {
            if status != b'A' {
                continue;
            }
            let from = patches.changes.get(&(c, p)).and_then(|f| f.from);
            match from {
                Some(q) => {
                    if let Some(i) = wanted.remove(&p) {
                        wanted.insert(q, i);
                    }
                }
                None => {
                    if let (Some(&i), Some(author)) = (wanted.get(&p), patches.authors.get(&c)) {
                        origins[i] = Origin::Commit {
                            id: history.ids[c as usize].clone(),
                            author: author.name.clone(),
                            at: crate::git::moment(author.at),
                        };
                    }
                }
            }
        }
    }
    origins
}

/// A path on a `--- a/...` or `+++ b/...` line (quoted as git quotes it; a path with a
/// space is followed by a tab).
fn header_path(raw: &[u8], prefix: &[u8]) -> Option<Vec<u8>> {
    let raw = raw.strip_suffix(b"\t").unwrap_or(raw);
    if raw == b"/dev/null" {
        return None;
    }
    let path = if raw.first() == Some(&b'"') {
        crate::git::unquote(raw)
    } else {
        raw.to_vec()
    };
    path.strip_prefix(prefix).map(<[u8]>::to_vec)
}

/// `-a[,b] +c[,d] @@...` into a hunk.
fn hunk(rest: &[u8]) -> Option<Hunk> {
    let text = std::str::from_utf8(rest.get(..rest.windows(3).position(|w| w == b" @@")?)?).ok()?;
    let (old, new) = text.split_once(' ')?;
    let range = |s: &str| -> Option<(u32, u32)> {
        match s.split_once(',') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => Some((s.parse().ok()?, 1)),
        }
    };
    let (old_start, old_len) = range(old.strip_prefix('-')?)?;
    let (new_start, new_len) = range(new.strip_prefix('+')?)?;
    Some(Hunk {
        old_start,
        old_len,
        new_start,
        new_len,
    })
}

/// The paths of a `--raw` line (after the status: one, or two for a rename), unquoted.
fn raw_paths(field: &[u8]) -> Vec<Vec<u8>> {
    field
        .split(|b| *b == b'\t')
        .map(|p| {
            if p.first() == Some(&b'"') {
                crate::git::unquote(p)
            } else {
                p.to_vec()
            }
        })
        .collect()
}

/// Records the blobs of one `--raw` line.
fn raw(line: &[u8], commit: Option<u32>, history: &History, patches: &mut Patches) {
    let Some(c) = commit else { return };
    let Some(tab) = line.iter().position(|b| *b == b'\t') else {
        return;
    };
    let meta = String::from_utf8_lossy(&line[1..tab]);
    let fields: Vec<&str> = meta.split(' ').collect();
    let [_, _, old, new, status] = fields.as_slice() else {
        return;
    };
    let paths = raw_paths(&line[tab + 1..]);
    let Some(Some(path)) = paths.last().map(|p| history.path_id(p)) else {
        return;
    };
    let real = |id: &str| (!id.bytes().all(|b| b == b'0')).then(|| id.to_owned());
    let entry = patches.changes.entry((c, path)).or_default();
    entry.old = real(old);
    entry.new = real(new);
    if status.starts_with('R') && paths.len() == 2 {
        entry.from = history.path_id(&paths[0]);
    }
}

/// Parses one `git log` output into `patches`.
fn parse(out: &[u8], history: &History, patches: &mut Patches) -> anyhow::Result<()> {
    let mut commit: Option<u32> = None;
    // The file being read: old and new path, blobs, hunks.
    let mut old_path: Option<Vec<u8>> = None;
    let mut file: Option<FileChange> = None;
    let mut remaining: u32 = 0;
    let flush = |commit: Option<u32>,
                 old_path: &mut Option<Vec<u8>>,
                 new_path: Option<Vec<u8>>,
                 file: &mut Option<FileChange>,
                 patches: &mut Patches| {
        let Some(mut change) = file.take() else {
            return;
        };
        let old = old_path.take();
        let path = new_path.or_else(|| old.clone());
        if let (Some(old), Some(new)) = (&old, &path) {
            if old != new {
                change.from = history.path_id(old);
            }
        }
        if let (Some(c), Some(p)) = (commit, path.and_then(|p| history.path_id(&p))) {
            // The raw line came first with the same blobs; the hunks are the news.
            let entry = patches.changes.entry((c, p)).or_default();
            entry.hunks = change.hunks;
            entry.old = change.old.or(entry.old.take());
            entry.new = change.new.or(entry.new.take());
            entry.from = change.from.or(entry.from);
            entry.binary |= change.binary;
        }
    };
    let mut new_path: Option<Vec<u8>> = None;
    for line in out.split(|b| *b == b'\n') {
        if remaining > 0 {
            if line.first() != Some(&b'\\') {
                remaining -= 1;
            }
            continue;
        }
        if let Some(header) = line.strip_prefix(b"\x01") {
            flush(commit, &mut old_path, new_path.take(), &mut file, patches);
            let text = String::from_utf8_lossy(header);
            let mut fields = text.splitn(5, '\0');
            let id = fields.next().unwrap_or_default();
            let mut time = || -> anyhow::Result<i64> {
                fields
                    .next()
                    .and_then(|t| crate::git::seconds(t.as_bytes()))
                    .with_context(|| format!("no time in {text:?}"))
            };
            let at = time()?;
            let committed = time()?;
            let _parents = fields.next();
            let name = fields.next().unwrap_or_default().to_owned();
            let c = history
                .find(id)
                .with_context(|| format!("commit {id} is not in the history read"))?;
            patches.authors.insert(
                c,
                Author {
                    name,
                    at,
                    committed,
                },
            );
            commit = Some(c);
        } else if line.first() == Some(&b':') {
            // `:<mode> <mode> <old> <new> <status>\t<path>[\t<path>]`: every change,
            // also those `-w` shows no hunks for.
            raw(line, commit, history, patches);
        } else if line.starts_with(b"diff --git ") || line.starts_with(b"diff --cc ") {
            flush(commit, &mut old_path, new_path.take(), &mut file, patches);
            file = Some(FileChange::default());
        } else if let Some(rest) = line.strip_prefix(b"index ") {
            let text = String::from_utf8_lossy(rest);
            let ids = text.split(' ').next().unwrap_or_default();
            if let (Some(f), Some((a, b))) = (file.as_mut(), ids.split_once("..")) {
                let real = |id: &str| (!id.bytes().all(|b| b == b'0')).then(|| id.to_owned());
                f.old = real(a);
                f.new = real(b);
            }
        } else if let Some(rest) = line.strip_prefix(b"rename from ") {
            old_path = header_path(rest, b"");
        } else if let Some(rest) = line.strip_prefix(b"rename to ") {
            new_path = header_path(rest, b"");
        } else if let Some(rest) = line.strip_prefix(b"--- ") {
            old_path = header_path(rest, b"a/");
        } else if let Some(rest) = line.strip_prefix(b"+++ ") {
            new_path = header_path(rest, b"b/");
        } else if let Some(rest) = line.strip_prefix(b"@@ ") {
            let h = hunk(rest).with_context(|| {
                format!("unexpected hunk header {:?}", String::from_utf8_lossy(line))
            })?;
            let Some(f) = file.as_mut() else {
                anyhow::bail!("a hunk outside of a file's diff");
            };
            if old_path.is_none() && new_path.is_none() {
                anyhow::bail!("a hunk without the file's name");
            }
            // Saturating: counts that no git output has must not panic (overflow checks).
            remaining = h.old_len.saturating_add(h.new_len);
            f.hunks.push(h);
        } else if line.starts_with(b"Binary files ") || line.starts_with(b"GIT binary patch") {
            if let Some(f) = file.as_mut() {
                f.binary = true;
            }
        }
    }
    flush(commit, &mut old_path, new_path.take(), &mut file, patches);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hunk_headers() {
        assert_eq!(
            hunk(b"-2 +2 @@ a"),
            Some(Hunk {
                old_start: 2,
                old_len: 1,
                new_start: 2,
                new_len: 1
            })
        );
        assert_eq!(
            hunk(b"-3,0 +4,2 @@"),
            Some(Hunk {
                old_start: 3,
                old_len: 0,
                new_start: 4,
                new_len: 2
            })
        );
        assert_eq!(hunk(b"-x +1 @@"), None);
    }

    #[test]
    fn hunk_counts_past_u32_do_not_panic() {
        let id = "0123456789abcdef0123456789abcdef01234567";
        let mut history = History::default();
        history.absorb(
            vec![(id.to_owned(), Vec::new(), vec![(b'M', b"x".to_vec())])],
            id,
        );
        let out = format!(
            "\x01{id}\x001\x001\x00\x00A\n\ndiff --git a/x b/x\n--- a/x\n+++ b/x\n\
             @@ -1,4294967295 +1,1 @@\n-a\n"
        );
        let mut patches = Patches::default();
        parse(out.as_bytes(), &history, &mut patches).unwrap();
        assert_eq!(patches.hunks(0, 0).len(), 1);
    }

    #[test]
    fn header_paths() {
        assert_eq!(header_path(b"a/x y\t", b"a/"), Some(b"x y".to_vec()));
        assert_eq!(header_path(b"/dev/null", b"a/"), None);
        assert_eq!(
            header_path(b"\"b/t\\303\\251\\tx\"", b"b/"),
            Some("t\u{e9}\tx".as_bytes().to_vec())
        );
    }
}
