//! The history of `HEAD` read once (`git log --name-status`, first-parent changes), so that
//! each file's blame walks only the commits that can matter to it.
//!
//! `git blame -w -M -C` on its own walks the whole history for every file: on a tree of
//! 44,000 commits that is about half a second of git per file, most of it spent finding
//! that commit after commit leaves the file alone. [`History::grafts`] hands blame (`-S`)
//! a history cut down to what blame would look at for one file: every commit that changes
//! the file (under any of its earlier names) against its first parent is kept *with its
//! real parents*, so the diffs, `-M` rename and `-C` copy detection at that commit see
//! exactly what they would; every other commit blame reaches is grafted onto the nearest
//! earlier commit that changes the file. Such a commit has the file's blob unchanged from
//! its first parent, and blame then passes all of its lines to that parent without
//! looking at anything else (see `pass_blame` in git's `blame.c`), so the cut-down walk
//! gives the same answer.
//!
//! What the cut does not preserve is the history of *other* files: a line that `-C` finds
//! was copied from another file continues its walk in that file, whose own commits may
//! have been left out. [`crate::git::blame_with`] therefore checks where every blamed line
//! ended up, and blames the file again over the whole history when any line ended in a
//! file that is not one of this file's names.
//!
//! Commit facts (parents, first-parent changes) never change for a given commit id, so the
//! history is cached ([`crate::cache`]) and extended with only the new commits.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::OsStr;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// One commit: its parents (indices into [`History::ids`]) and what it changed against
/// its first parent (or, for a root commit, what it added).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Commit {
    /// Parent indices, in git's order; `u32::MAX` for a parent not in the history.
    pub parents: Vec<u32>,
    /// `(status byte, path index)` of each path changed against the first parent.
    pub changes: Vec<(u8, u32)>,
}

/// The commits reachable from `HEAD`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct History {
    /// The commit `HEAD` was when this history was read.
    pub head: String,
    /// Commit ids.
    pub ids: Vec<String>,
    /// Commits, in the order of [`History::ids`].
    pub commits: Vec<Commit>,
    /// Paths, indexed by the path indices of [`Commit::changes`].
    pub paths: Vec<Vec<u8>>,
    #[serde(skip)]
    index: HashMap<String, u32>,
    #[serde(skip)]
    path_index: HashMap<Vec<u8>, u32>,
    /// For each path, the commits that change it.
    #[serde(skip)]
    by_path: Vec<Vec<u32>>,
    /// True when [`History::ids`] is in `git log`'s order (read in one go, not extended
    /// from a cache).
    #[serde(skip)]
    pub in_log_order: bool,
}

/// A commit as `git log` gives it: id, parent ids, `(status, path)` changes.
pub type Read = (String, Vec<String>, Vec<(u8, Vec<u8>)>);

/// A parent that is not in the history (a grafted or missing commit).
pub const UNKNOWN: u32 = u32::MAX;

impl History {
    /// Rebuilds the lookup tables after deserialising or extending.
    pub fn reindex(&mut self) {
        self.index = self
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), u32::try_from(i).unwrap_or(UNKNOWN)))
            .collect();
        self.path_index = self
            .paths
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), u32::try_from(i).unwrap_or(UNKNOWN)))
            .collect();
        self.by_path = vec![Vec::new(); self.paths.len()];
        for (c, commit) in self.commits.iter().enumerate() {
            for &(_, p) in &commit.changes {
                if let Some(list) = self.by_path.get_mut(p as usize) {
                    list.push(u32::try_from(c).unwrap_or(UNKNOWN));
                }
            }
        }
    }

    /// True when every parent of every commit is known and the lookup tables agree with
    /// the data (a cache that does not pass this is not used).
    #[must_use]
    pub fn is_consistent(&self) -> bool {
        self.ids.len() == self.commits.len()
            && self.index.len() == self.ids.len()
            && self.index.contains_key(&self.head)
            && self.commits.iter().all(|c| {
                c.parents.iter().all(|&p| (p as usize) < self.ids.len())
                    && c.changes
                        .iter()
                        .all(|&(_, p)| (p as usize) < self.paths.len())
            })
    }

    /// The index of a path, when some commit changes it.
    #[must_use]
    pub fn path_id(&self, path: &[u8]) -> Option<u32> {
        self.path_index.get(path).copied()
    }

    /// The index of a commit id.
    #[must_use]
    pub fn find(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }

    /// Reads the commits reachable from `head` and not from any of `known` (all of them
    /// when `known` is empty) into this history; `head` becomes its head. Fails (leaving a
    /// history that [`History::is_consistent`] rejects) when a parent is neither read nor
    /// already known.
    pub fn extend(&mut self, top: &Path, head: &str, known: &[String]) -> anyhow::Result<()> {
        let mut args: Vec<String> = [
            "log",
            "--no-renames",
            "--no-textconv",
            "--no-ext-diff",
            "-z",
            "--name-status",
            "--diff-merges=first-parent",
            "--root",
            "--format=%x01%H %P",
            head,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        if !known.is_empty() {
            args.push("--not".to_owned());
            args.extend(known.iter().cloned());
        }
        args.push("--".to_owned());
        let refs: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let out = crate::git::run(top, &refs)?;
        let mut pending: Vec<Read> = Vec::new();
        let mut tokens = out.split(|b| *b == 0).peekable();
        while let Some(token) = tokens.next() {
            let token = token.strip_prefix(b"\n").unwrap_or(token);
            if token.is_empty() {
                continue;
            }
            if let Some(header) = token.strip_prefix(b"\x01") {
                let text = String::from_utf8_lossy(header);
                let mut fields = text.split_ascii_whitespace();
                let id = fields.next().unwrap_or_default().to_owned();
                if id.len() < 40 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                    anyhow::bail!("unexpected git log output near {text:?}");
                }
                pending.push((id, fields.map(str::to_owned).collect(), Vec::new()));
            } else if token.len() <= 4 && token.first().is_some_and(u8::is_ascii_uppercase) {
                let path = tokens
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("git log output ends after a status"))?;
                let Some(last) = pending.last_mut() else {
                    anyhow::bail!("git log output starts without a commit");
                };
                last.2.push((token[0], path.to_vec()));
            } else {
                anyhow::bail!(
                    "unexpected git log output near {:?}",
                    String::from_utf8_lossy(token)
                );
            }
        }
        self.absorb(pending, head);
        Ok(())
    }

    /// Adds commits read from `git log` (newest first: id, parent ids, first-parent
    /// changes without rename detection); `head` becomes the head.
    pub fn absorb(&mut self, pending: Vec<Read>, head: &str) {
        let fresh = self.ids.is_empty();
        // Parents are resolved once every new id has its index.
        for (id, _, _) in &pending {
            let i = u32::try_from(self.ids.len()).unwrap_or(UNKNOWN);
            self.index.insert(id.clone(), i);
            self.ids.push(id.clone());
        }
        for (_, parents, changes) in pending {
            let parents = parents
                .iter()
                .map(|p| self.index.get(p).copied().unwrap_or(UNKNOWN))
                .collect();
            let changes = changes
                .into_iter()
                .map(|(status, path)| (status, self.intern(path)))
                .collect();
            self.commits.push(Commit { parents, changes });
        }
        debug_assert_eq!(self.commits.len(), self.ids.len());
        self.in_log_order = fresh;
        head.clone_into(&mut self.head);
        self.reindex();
    }

    fn intern(&mut self, path: Vec<u8>) -> u32 {
        if let Some(&i) = self.path_index.get(&path) {
            return i;
        }
        let i = u32::try_from(self.paths.len()).unwrap_or(UNKNOWN);
        self.path_index.insert(path.clone(), i);
        self.paths.push(path);
        i
    }

    /// Keeps only the commits reachable from the head (after a rewrite, the old ones are
    /// dead weight in the cache).
    pub fn prune(&mut self) {
        let Some(head) = self.find(&self.head) else {
            return;
        };
        let mut seen = vec![false; self.ids.len()];
        let mut stack = vec![head];
        while let Some(c) = stack.pop() {
            let c = c as usize;
            if c >= seen.len() || seen[c] {
                continue;
            }
            seen[c] = true;
            stack.extend(self.commits[c].parents.iter().copied());
        }
        if seen.iter().all(|s| *s) {
            return;
        }
        let mut new_index = vec![UNKNOWN; self.ids.len()];
        let mut n = 0u32;
        for (i, keep) in seen.iter().enumerate() {
            if *keep {
                new_index[i] = n;
                n += 1;
            }
        }
        let ids = std::mem::take(&mut self.ids);
        let commits = std::mem::take(&mut self.commits);
        for ((id, mut commit), keep) in ids.into_iter().zip(commits).zip(&seen) {
            if *keep {
                for p in &mut commit.parents {
                    *p = new_index.get(*p as usize).copied().unwrap_or(UNKNOWN);
                }
                self.ids.push(id);
                self.commits.push(commit);
            }
        }
        self.reindex();
    }

    /// Every name `path` had: itself, and for each commit that added one of its names,
    /// the paths that commit deleted (where a rename found by `-M` would come from; more
    /// names than needed only keep more commits).
    #[must_use]
    pub fn names(&self, path: &[u8]) -> HashSet<Vec<u8>> {
        let mut names: HashSet<Vec<u8>> = HashSet::from([path.to_vec()]);
        let mut queue: VecDeque<u32> = self.path_index.get(path).copied().into_iter().collect();
        let mut seen: HashSet<u32> = queue.iter().copied().collect();
        while let Some(p) = queue.pop_front() {
            for &c in self.by_path.get(p as usize).map_or(&[][..], Vec::as_slice) {
                let commit = &self.commits[c as usize];
                if !commit
                    .changes
                    .iter()
                    .any(|&(status, q)| q == p && status == b'A')
                {
                    continue;
                }
                for &(status, q) in &commit.changes {
                    if status == b'D' && seen.insert(q) {
                        names.insert(self.paths[q as usize].clone());
                        queue.push_back(q);
                    }
                }
            }
        }
        names
    }

    /// The commits that change any of `names` against their first parent.
    fn touching(&self, names: &HashSet<Vec<u8>>) -> HashSet<u32> {
        names
            .iter()
            .filter_map(|name| self.path_index.get(name))
            .flat_map(|&p| self.by_path[p as usize].iter().copied())
            .collect()
    }

    /// The nearest commit from `start` down its first-parent line for which `kept` holds
    /// (`start` itself if it does); `None` past an unknown parent. `memo` remembers the
    /// answer for every commit walked.
    fn nearest(
        &self,
        start: u32,
        memo: &mut HashMap<u32, u32>,
        kept: &impl Fn(u32) -> bool,
    ) -> Option<u32> {
        let mut walked = Vec::new();
        let mut c = start;
        let found = loop {
            if let Some(&r) = memo.get(&c) {
                break r;
            }
            if kept(c) {
                break c;
            }
            walked.push(c);
            c = *self.commits[c as usize].parents.first()?;
            if c == UNKNOWN {
                return None;
            }
        };
        for w in walked {
            memo.insert(w, found);
        }
        Some(found)
    }

    /// The `-S` file for blaming a file whose names are `names`: one line per commit blame
    /// can reach, `<commit> <parent>...`. `None` when the history cannot be cut safely
    /// (an unknown parent).
    #[must_use]
    pub fn grafts(&self, names: &HashSet<Vec<u8>>) -> Option<Vec<u8>> {
        let head = self.find(&self.head)?;
        let touching = self.touching(names);
        // HEAD keeps its real parents: blame's copy detection for uncommitted lines looks
        // at what changed between HEAD's first parent and the work tree.
        let transparent = |c: u32| {
            let commit = &self.commits[c as usize];
            c != head && !commit.parents.is_empty() && !touching.contains(&c)
        };
        // The nearest commit down the first-parent line that is not transparent.
        let mut rep_memo: HashMap<u32, u32> = HashMap::new();
        let mut rep = |start: u32| self.nearest(start, &mut rep_memo, &|c| !transparent(c));
        let mut out = Vec::new();
        let mut seen: HashSet<u32> = HashSet::new();
        let mut stack = vec![head];
        while let Some(c) = stack.pop() {
            if !seen.insert(c) {
                continue;
            }
            out.extend_from_slice(self.ids[c as usize].as_bytes());
            if transparent(c) {
                let r = rep(c)?;
                // `rep(c)` is `c` only for a commit that is not transparent.
                let target = if r == c { return None } else { r };
                out.push(b' ');
                out.extend_from_slice(self.ids[target as usize].as_bytes());
                stack.push(target);
            } else {
                for &p in &self.commits[c as usize].parents {
                    if p == UNKNOWN {
                        return None;
                    }
                    out.push(b' ');
                    out.extend_from_slice(self.ids[p as usize].as_bytes());
                    stack.push(p);
                }
            }
            out.push(b'\n');
        }
        Some(out)
    }

    /// The history cut down to `names` as [`History::grafts`] cuts it, with the commits
    /// that leave every name alone dropped instead of grafted: each kept commit (those that
    /// change one of `names` against their first parent, and the head) with its parents
    /// mapped to the nearest kept commit down their first-parent line, parents before
    /// children. `None` when the history cannot be cut safely (an unknown parent) or a
    /// merge's parents collapse into one commit.
    #[must_use]
    pub fn condensed(&self, names: &HashSet<Vec<u8>>) -> Option<Vec<(u32, Vec<u32>)>> {
        let head = self.find(&self.head)?;
        let touching = self.touching(names);
        let kept = |c: u32| {
            c == head || self.commits[c as usize].parents.is_empty() || touching.contains(&c)
        };
        let mut rep_memo: HashMap<u32, u32> = HashMap::new();
        let mut rep = |start: u32| self.nearest(start, &mut rep_memo, &kept);
        let mut parents_of: HashMap<u32, Vec<u32>> = HashMap::new();
        let mut order = Vec::new();
        // Depth first, a commit written after all of its parents.
        let mut stack: Vec<(u32, bool)> = vec![(head, false)];
        while let Some((c, expanded)) = stack.pop() {
            if expanded {
                order.push(c);
                continue;
            }
            if parents_of.contains_key(&c) {
                continue;
            }
            let mut parents = Vec::new();
            for &p in &self.commits[c as usize].parents {
                if p == UNKNOWN {
                    return None;
                }
                let r = rep(p)?;
                if parents.contains(&r) {
                    return None;
                }
                parents.push(r);
            }
            stack.push((c, true));
            for &p in parents.iter().rev() {
                if !parents_of.contains_key(&p) {
                    stack.push((p, false));
                }
            }
            parents_of.insert(c, parents);
        }
        // A commit reached again before its first visit finished is pushed twice; keep
        // the first time it was written.
        let mut written = HashSet::new();
        order.retain(|c| written.insert(*c));
        Some(
            order
                .into_iter()
                .map(|c| {
                    let parents = parents_of.remove(&c).unwrap_or_default();
                    (c, parents)
                })
                .collect(),
        )
    }

    /// True when no commit from `head` back along first parents to `since` changes any of
    /// `names`, and `since` is on that line (within the history): blame from `head` then
    /// passes every line of such a file down to `since` untouched, so a blame computed at
    /// `since` still holds.
    #[must_use]
    pub fn unchanged_since(&self, since: &str, names: &HashSet<Vec<u8>>) -> bool {
        let (Some(mut c), Some(target)) = (self.find(&self.head), self.find(since)) else {
            return false;
        };
        let ids: HashSet<u32> = names
            .iter()
            .filter_map(|n| self.path_index.get(n).copied())
            .collect();
        loop {
            if c == target {
                return true;
            }
            let commit = &self.commits[c as usize];
            if commit.changes.iter().any(|(_, p)| ids.contains(p)) {
                return false;
            }
            match commit.parents.first() {
                Some(&p) if p != UNKNOWN => c = p,
                _ => return false,
            }
        }
    }
}
