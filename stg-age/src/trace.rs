//! Dating condition lines without running `git blame` per file: each line is followed back
//! through git's own diffs ([`crate::patches`]) to the commit that added it, and that
//! commit is its date only when `git blame -w -M -C` provably could not have looked further.
//!
//! Why that is exact. For a line, blame's walk is a sequence of diffs: at each commit that
//! changes the file, a line outside the diff's hunks passes to the parent at the mapped
//! position (this is the same xdiff diff, so the same mapping), and a line inside a hunk
//! stays with the commit *unless* the move (`-M`) or copy (`-C`) pass then finds it in the
//! parent: `-M` in the file's own parent version, `-C` in the parent version of another file
//! the commit changed. Either pass moves a line only as part of a run of lines that match a
//! run in the other version line for line (whitespace ignored), scoring more than 20 (`-M`)
//! or 40 (`-C`) alphanumeric characters counted over the lines moved (see
//! `find_move_in_parent`, `find_copy_in_parent` and `blame_entry_score` in git's `blame.c`).
//! So when no candidate version holds the line inside a matching run that long, counting
//! every neighbouring line of the commit's version (more than blame would ever count), the
//! line stays with the commit. Each such line is dated here; nothing is guessed.
//!
//! When a move is possible the line's answer is left to git, but not over the whole
//! history: the possible moves are followed too (into each candidate, at each place the
//! run matched), and the set of files any of them can reach is where blame's walk can go.
//! Blame over only the commits that change those files ([`crate::replay`], or
//! [`crate::history::History::grafts`]) then gives the same answer at a fraction of the
//! cost. A merge is followed into the parent it took the file from unchanged; a merge that
//! changed the file against every parent, a rename other than one deletion for one
//! addition, a change git showed as binary, a file left out of the read because a version
//! of it cannot be read ([`crate::objects`]), or walks that outgrow [`MAX_PROBES`] or
//! [`MAX_STEPS`] leave the file to a blame over the whole history. A file left out is never
//! a candidate a line moved from.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::rc::Rc;

use crate::git::{CatFile, Origin};
use crate::history::{History, UNKNOWN};
use crate::patches::{Hunk, Patches};

/// `git blame`'s default `-M` threshold (`BLAME_DEFAULT_MOVE_SCORE`).
const MOVE_SCORE: u32 = 20;
/// `git blame`'s default `-C` threshold (`BLAME_DEFAULT_COPY_SCORE`).
const COPY_SCORE: u32 = 40;
/// Walks (one per file a line may have moved into) per file before giving up.
pub const MAX_PROBES: usize = 4000;
/// Commits walked per file (over all its walks) before giving up: a hundred walks of a
/// long history.
pub const MAX_STEPS: usize = 5_000_000;

/// Bytes `-w` ignores when comparing lines.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// A line with its whitespace removed: what `-w` compares.
#[must_use]
pub fn normalise(line: &[u8]) -> Vec<u8> {
    line.iter().copied().filter(|b| !is_space(*b)).collect()
}

/// Splits a blob into lines as git counts them.
fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let empty = bytes.is_empty();
    body.split(|b| *b == b'\n').filter(move |_| !empty)
}

/// One file to date: its path, and each blamed line (the `-L` ranges, context included)
/// with its text normalised.
pub struct File<'a> {
    /// Path relative to the top level.
    pub path: &'a [u8],
    /// `(line number, normalised text)` of every line of the blamed ranges.
    pub lines: Vec<(usize, Vec<u8>)>,
    /// The condition lines, whose dates are wanted.
    pub hits: Vec<usize>,
}

/// What the trace concluded for one file.
#[derive(Debug)]
pub enum Outcome {
    /// Every condition line dated: `(line, origin)`.
    Dated(Vec<(usize, Origin)>),
    /// A condition line may have moved: blame over the history of the files it can have
    /// moved through gives the answer.
    Widen(Widen),
    /// Blame over the whole history.
    Whole,
}

/// What git still has to blame in a file, and over which history.
#[derive(Debug)]
pub struct Widen {
    /// Every name of every file a blamed line can have moved through.
    pub names: HashSet<Vec<u8>>,
    /// Whether a line can have been copied from another file (`-C` matters); when not,
    /// `-M` alone gives the same answer.
    pub copies: bool,
    /// The condition lines dated already.
    pub dated: Vec<(usize, Origin)>,
    /// The condition lines left to blame.
    pub undated: Vec<usize>,
}

/// A blob's lines, ready for run matching.
struct Text {
    oid: String,
    norm: Vec<Vec<u8>>,
    alnum: Vec<u32>,
    index: HashMap<Vec<u8>, Vec<u32>>,
}

impl Text {
    fn new(oid: String, bytes: &[u8]) -> Text {
        let mut text = Text {
            oid,
            norm: Vec::new(),
            alnum: Vec::new(),
            index: HashMap::new(),
        };
        for (i, line) in lines(bytes).enumerate() {
            let norm = normalise(line);
            // git's isalnum is ASCII only.
            let alnum = line.iter().filter(|b| b.is_ascii_alphanumeric()).count();
            text.alnum.push(u32::try_from(alnum).unwrap_or(u32::MAX));
            text.index
                .entry(norm.clone())
                .or_default()
                .push(u32::try_from(i).unwrap_or(u32::MAX));
            text.norm.push(norm);
        }
        text
    }
}

/// Blob contents by name, through one `git cat-file --batch`.
struct Blobs {
    cat: CatFile,
    cache: HashMap<Vec<u8>, Option<Rc<Text>>>,
}

impl Blobs {
    fn get(&mut self, name: Vec<u8>) -> anyhow::Result<Option<Rc<Text>>> {
        if let Some(text) = self.cache.get(&name) {
            return Ok(text.clone());
        }
        let text = self
            .cat
            .blob(&name)?
            .map(|(oid, b)| Rc::new(Text::new(oid, &b)));
        self.cache.insert(name, text.clone());
        Ok(text)
    }
}

/// The score of the longest run of lines around `pos` in `v` that matches, line for line,
/// a run around `k` in `c` (0-based positions; the lines at them already match): one plus
/// the alphanumeric characters of `v`'s lines in it, as `blame_entry_score` counts.
fn run_score(v: &Text, pos: usize, c: &Text, k: usize) -> u32 {
    let mut score = 1 + v.alnum.get(pos).copied().unwrap_or(0);
    let mut i = 1;
    while i <= pos && i <= k && v.norm[pos - i] == c.norm[k - i] {
        score += v.alnum[pos - i];
        i += 1;
    }
    let mut i = 1;
    while pos + i < v.norm.len() && k + i < c.norm.len() && v.norm[pos + i] == c.norm[k + i] {
        score += v.alnum[pos + i];
        i += 1;
    }
    score
}

/// Where line `pos` (1-based) of a commit's version was in the parent, or `None` when it
/// is inside one of the hunks (the commit added it).
fn map_line(hunks: &[Hunk], pos: u32) -> Option<u32> {
    let mut delta: i64 = 0;
    for h in hunks {
        if h.new_len > 0 {
            if pos < h.new_start {
                break;
            }
            if pos < h.new_start + h.new_len {
                return None;
            }
        } else if pos <= h.new_start {
            break;
        }
        delta += i64::from(h.old_len) - i64::from(h.new_len);
    }
    u32::try_from(i64::from(pos) + delta).ok()
}

/// Splits lines of a commit's version into those that were in the parent (at their
/// place there) and those the commit added.
#[allow(clippy::type_complexity)]
fn split(hunks: &[Hunk], lines: Vec<(usize, u32)>) -> (Vec<(usize, u32)>, Vec<(usize, u32)>) {
    let mut kept = Vec::with_capacity(lines.len());
    let mut added = Vec::new();
    for (slot, pos) in lines {
        match map_line(hunks, pos) {
            Some(parent_pos) => kept.push((slot, parent_pos)),
            None => added.push((slot, pos)),
        }
    }
    (kept, added)
}

/// One followed file: lines of `path` as they are in commit `at`.
struct Probe {
    path: u32,
    at: u32,
    /// `(index into File::lines, 1-based line)`.
    lines: Vec<(usize, u32)>,
    /// The file itself (its lines' stops are dates), or a place a line may have moved to.
    own: bool,
}

/// What following a file's lines finds: dates (by index into [`File::lines`]), the files
/// lines may have moved through, whether one may have been copied from another file, and
/// the walks still to do.
struct Found<'f> {
    dated: &'f mut [Option<u32>],
    visited: &'f mut HashSet<u32>,
    copies: &'f mut bool,
    work: &'f mut Vec<Probe>,
    steps: &'f mut usize,
}

/// The history and its diffs.
pub struct Engine<'a> {
    top: &'a Path,
    history: &'a History,
    patches: &'a Patches,
}

impl<'a> Engine<'a> {
    /// An engine over `history` and its diffs.
    #[must_use]
    pub fn new(top: &'a Path, history: &'a History, patches: &'a Patches) -> Engine<'a> {
        Engine {
            top,
            history,
            patches,
        }
    }

    /// Traces `files` on `jobs` threads; the outcomes in the order of `files`.
    pub fn run(&self, files: &[File<'_>], jobs: usize) -> anyhow::Result<Vec<Outcome>> {
        crate::scan::parallel_with(
            jobs,
            files,
            || {
                Ok(Blobs {
                    cat: CatFile::start(self.top)?,
                    cache: HashMap::new(),
                })
            },
            |blobs, file| {
                let outcome = self.trace(file, blobs);
                // Blobs of one file's history are rarely another's.
                blobs.cache.clear();
                outcome
            },
        )
    }

    /// The first parent of merge `c` in which `path` has the blob it has in `c`.
    fn same_blob_parent(
        &self,
        c: u32,
        path: u32,
        blobs: &mut Blobs,
    ) -> anyhow::Result<Option<u32>> {
        let name = |commit: u32| {
            let mut n = self.history.ids[commit as usize].clone().into_bytes();
            n.push(b':');
            n.extend_from_slice(&self.history.paths[path as usize]);
            n
        };
        let Some(mine) = blobs.get(name(c))? else {
            return Ok(None);
        };
        for &p in &self.history.commits[c as usize].parents {
            if p == UNKNOWN {
                return Ok(None);
            }
            if let Some(theirs) = blobs.get(name(p))? {
                if theirs.oid == mine.oid {
                    return Ok(Some(p));
                }
            }
        }
        Ok(None)
    }

    fn status(&self, commit: u32, path: u32) -> Option<u8> {
        self.history.commits[commit as usize]
            .changes
            .iter()
            .find(|(_, p)| *p == path)
            .map(|(s, _)| *s)
    }

    /// The name `cat-file` knows `path`'s blob by, after (`parent: false`) or before
    /// (`parent: true`) commit `c`.
    fn blob_name(&self, c: u32, path: u32, parent: bool) -> Vec<u8> {
        let known = self.patches.changes.get(&(c, path)).and_then(|change| {
            if parent {
                change.old.clone()
            } else {
                change.new.clone()
            }
        });
        if let Some(id) = known {
            return id.into_bytes();
        }
        let mut name = self.history.ids[c as usize].clone().into_bytes();
        if parent {
            name.push(b'^');
        }
        name.push(b':');
        name.extend_from_slice(&self.history.paths[path as usize]);
        name
    }

    fn origin(&self, c: u32) -> Option<Origin> {
        let author = self.patches.authors.get(&c)?;
        Some(Origin::Commit {
            id: self.history.ids[c as usize].clone(),
            author: author.name.clone(),
            at: crate::git::moment(author.at),
        })
    }

    /// Follows one file's lines back; see the module documentation. The condition lines
    /// go first, alone: when each of them provably stays where it stops, the file is
    /// dated without following its context lines.
    fn trace(&self, file: &File<'_>, blobs: &mut Blobs) -> anyhow::Result<Outcome> {
        let (Some(start), Some(head)) = (
            self.history.path_id(file.path),
            self.history.find(&self.history.head),
        ) else {
            return Ok(Outcome::Whole);
        };
        let slot = |i: usize| (i, u32::try_from(file.lines[i].0).unwrap_or(u32::MAX));
        let hit_slots: Vec<usize> = (0..file.lines.len())
            .filter(|&i| file.hits.contains(&file.lines[i].0))
            .collect();
        let quick = self.walk(
            file,
            start,
            head,
            hit_slots.iter().map(|&i| slot(i)).collect(),
            false,
            blobs,
        )?;
        let (dated, whole, copies, visited) =
            if !quick.1 && hit_slots.iter().all(|&i| quick.0[i].is_some()) {
                quick
            } else {
                self.walk(
                    file,
                    start,
                    head,
                    (0..file.lines.len()).map(slot).collect(),
                    true,
                    blobs,
                )?
            };
        let hits: Vec<usize> = file
            .lines
            .iter()
            .enumerate()
            .filter(|(_, (line, _))| file.hits.contains(line))
            .map(|(i, _)| i)
            .collect();
        let mut done = Vec::new();
        let mut undated = Vec::new();
        for &i in &hits {
            match dated[i].and_then(|c| self.origin(c)) {
                Some(origin) => done.push((file.lines[i].0, origin)),
                None => undated.push(file.lines[i].0),
            }
        }
        Ok(if undated.is_empty() && hits.len() == file.hits.len() {
            Outcome::Dated(done)
        } else if whole || hits.len() != file.hits.len() {
            Outcome::Whole
        } else {
            let mut names = HashSet::new();
            for p in visited {
                names.extend(self.history.names(&self.history.paths[p as usize]));
            }
            Outcome::Widen(Widen {
                names,
                copies,
                dated: done,
                undated,
            })
        })
    }

    /// Follows `lines` of the file (and, with `moves`, every place one may have moved
    /// to): the commit each line provably stops at, whether something was not followed,
    /// whether a copy from another file is possible, and the files visited.
    #[allow(clippy::type_complexity)]
    fn walk(
        &self,
        file: &File<'_>,
        start: u32,
        head: u32,
        lines: Vec<(usize, u32)>,
        moves: bool,
        blobs: &mut Blobs,
    ) -> anyhow::Result<(Vec<Option<u32>>, bool, bool, HashSet<u32>)> {
        let mut dated: Vec<Option<u32>> = vec![None; file.lines.len()];
        let mut whole = false;
        let mut copies = false;
        let mut visited: HashSet<u32> = HashSet::from([start]);
        let mut work = vec![Probe {
            path: start,
            at: head,
            lines,
            own: true,
        }];
        let mut probes = 0;
        let mut steps = 0;
        while let Some(probe) = work.pop() {
            probes += 1;
            if probes > MAX_PROBES {
                whole = true;
                break;
            }
            let mut found = Found {
                dated: &mut dated,
                visited: &mut visited,
                copies: &mut copies,
                work: &mut work,
                steps: &mut steps,
            };
            if !self.follow(file, probe, blobs, &mut found)? {
                whole = true;
            }
            if !moves {
                work.clear();
            }
        }
        Ok((dated, whole, copies, visited))
    }

    /// Follows one probe back to where each of its lines stops. Lines of the file itself
    /// that provably stay where they stop are dated; possible moves become new probes.
    /// False when the walk meets what it does not follow (the file goes to git whole).
    fn follow(
        &self,
        file: &File<'_>,
        probe: Probe,
        blobs: &mut Blobs,
        found: &mut Found<'_>,
    ) -> anyhow::Result<bool> {
        let Probe {
            path,
            at,
            mut lines,
            own,
        } = probe;
        if self.patches.excluded.contains(&path) {
            // Left out of the read (a version cannot be read): its hunks are unknown.
            return Ok(false);
        }
        let mut next = Some(at);
        while let Some(c) = next {
            if lines.is_empty() {
                return Ok(true);
            }
            *found.steps += 1;
            if *found.steps > MAX_STEPS {
                return Ok(false);
            }
            let commit = &self.history.commits[c as usize];
            next = commit.parents.first().copied().filter(|p| *p != UNKNOWN);
            if !commit.changes.iter().any(|(_, q)| *q == path) {
                // The first parent has the same blob: blame passes every line to it.
                continue;
            }
            if commit.parents.len() > 1 {
                // Blame passes every line to the first parent whose blob is the same (a
                // merge that took this file from a branch); anything else needs diffs
                // against several parents, which are git's to do.
                match self.same_blob_parent(c, path, blobs)? {
                    Some(p) => {
                        next = Some(p);
                        continue;
                    }
                    None => return Ok(false),
                }
            }
            if self
                .patches
                .changes
                .get(&(c, path))
                .is_some_and(|f| f.binary)
            {
                // Binary on one side: git showed no hunks to follow.
                return Ok(false);
            }
            let status = self.status(c, path);
            let stopped;
            // The file's name in the parent, where `-M` looks.
            let mut parent_path = None;
            match status {
                Some(b'M') => {
                    let kept;
                    (kept, stopped) = split(self.patches.hunks(c, path), lines);
                    lines = kept;
                    parent_path = Some(path);
                }
                Some(b'A') => {
                    // Blame follows a rename (`find_rename`); git log's rename detection
                    // pairs the same two files when there is one deletion and one addition.
                    let count = |x: u8| commit.changes.iter().filter(|(s, _)| *s == x).count();
                    let from = self.patches.changes.get(&(c, path)).and_then(|f| f.from);
                    if count(b'D') > 0 && (count(b'D') > 1 || count(b'A') > 1) {
                        return Ok(false);
                    }
                    if let Some(q) = from {
                        let (kept, rest) = split(self.patches.hunks(c, path), lines);
                        stopped = rest;
                        lines = Vec::new();
                        parent_path = Some(q);
                        found.visited.insert(q);
                        if let (false, Some(parent)) = (kept.is_empty(), next) {
                            found.work.push(Probe {
                                path: q,
                                at: parent,
                                lines: kept,
                                own,
                            });
                        }
                    } else {
                        stopped = std::mem::take(&mut lines);
                    }
                }
                _ => return Ok(false),
            }
            if stopped.is_empty() {
                continue;
            }
            if commit.parents.is_empty() {
                if own {
                    for (slot, _) in stopped {
                        found.dated[slot] = Some(c);
                    }
                }
                continue;
            }
            // Where `-M` and `-C` look: the file's own parent version, then every other
            // file the commit changed that existed in the parent.
            let mut candidates: Vec<(u32, u32)> = Vec::new();
            if let Some(q) = parent_path {
                candidates.push((q, MOVE_SCORE));
            }
            for &(s, q) in &commit.changes {
                // A file left out of the read cannot be looked into; a line is never
                // taken to come from what cannot be read.
                if q != path
                    && Some(q) != parent_path
                    && matches!(s, b'M' | b'D' | b'T')
                    && !self.patches.excluded.contains(&q)
                {
                    candidates.push((q, COPY_SCORE));
                }
            }
            let mut version = None;
            let mut moved: HashMap<u32, Vec<(usize, u32)>> = HashMap::new();
            for (slot, pos) in stopped {
                let text = &file.lines[slot].1;
                let mut may_move = false;
                for &(q, threshold) in &candidates {
                    let Some(cand) = blobs.get(self.blob_name(c, q, true))? else {
                        return Ok(false);
                    };
                    let Some(ks) = cand.index.get(text) else {
                        continue;
                    };
                    if version.is_none() {
                        version = blobs.get(self.blob_name(c, path, false))?;
                    }
                    let Some(v) = version.as_ref() else {
                        return Ok(false);
                    };
                    let at = pos as usize - 1;
                    if v.norm.get(at) != Some(text) {
                        // The diffs and the blob disagree: do not guess.
                        return Ok(false);
                    }
                    for &k in ks {
                        if run_score(v, at, &cand, k as usize) > threshold {
                            may_move = true;
                            *found.copies |= threshold == COPY_SCORE;
                            moved.entry(q).or_default().push((slot, k + 1));
                        }
                    }
                }
                if own && !may_move {
                    found.dated[slot] = Some(c);
                }
            }
            if let Some(parent) = next {
                for (q, lines) in moved {
                    found.visited.insert(q);
                    found.work.push(Probe {
                        path: q,
                        at: parent,
                        lines,
                        own: false,
                    });
                }
            }
        }
        // Lines left over had no commit that added them: a shallow or odd history.
        Ok(lines.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(old_start: u32, old_len: u32, new_start: u32, new_len: u32) -> Hunk {
        Hunk {
            old_start,
            old_len,
            new_start,
            new_len,
        }
    }

    #[test]
    fn lines_map_through_hunks() {
        // Two lines inserted after old line 3, old lines 8-9 deleted (after new line 9).
        let hunks = [h(3, 0, 4, 2), h(8, 2, 9, 0)];
        assert_eq!(map_line(&hunks, 3), Some(3));
        assert_eq!(map_line(&hunks, 4), None);
        assert_eq!(map_line(&hunks, 5), None);
        assert_eq!(map_line(&hunks, 6), Some(4));
        assert_eq!(map_line(&hunks, 9), Some(7));
        assert_eq!(map_line(&hunks, 10), Some(10));
        // A replaced line.
        assert_eq!(map_line(&[h(2, 1, 2, 1)], 2), None);
        assert_eq!(map_line(&[h(2, 1, 2, 1)], 3), Some(3));
    }

    #[test]
    fn runs_score_alphanumerics_of_matching_neighbours() {
        let v = Text::new(String::new(), b"x\n  when: env == 1\nabc\nzz\n");
        let c = Text::new(String::new(), b"when: env==1\nabc\nq\n");
        // "when: env == 1" (8) + "abc" (3) + 1.
        assert_eq!(run_score(&v, 1, &c, 0), 12);
        assert_eq!(normalise(b" a\tb \r"), b"ab".to_vec());
        assert_eq!(lines(b"a\nb").count(), 2);
        assert_eq!(lines(b"a\nb\n").count(), 2);
        assert_eq!(lines(b"").count(), 0);
    }
}
