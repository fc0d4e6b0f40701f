//! Objects of the history this repository cannot read, and the files they belong to.
//!
//! A partial clone (`git clone --filter=blob:limit=...`) lacks the blobs its filter left
//! out, a pruned mirror or a damaged object store lacks or garbles a few more. git reads a
//! blob to diff it, to decide it is binary and to score a rename, so any of them ends a
//! `git log -p` or a `git blame` that meets it. stg-age never lets git fetch one
//! (`GIT_NO_LAZY_FETCH=1` on every git it runs, see [`crate::git`]); instead, when a read
//! fails, [`Objects::unreadable`] finds every unreadable blob once (`git log --raw` for the
//! blob ids of every change, `git cat-file --batch-check` for which are missing, and the
//! ids git named in its error for those present but corrupt) and the paths they belong
//! to. Reads are then run again without those paths (a pathspec that excludes them), and
//! the files with findings that needed them are dated by what can be read and reported as
//! degraded. A healthy repository pays nothing for this: the search runs only after a
//! failure.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The blobs of the history that cannot be read, by path.
#[derive(Clone, Debug, Default)]
pub struct Unreadable {
    /// Paths (relative to the top level) with at least one unreadable version.
    pub paths: BTreeSet<Vec<u8>>,
    /// For each such path, the newest commit whose parent's version of it cannot be read
    /// and whose own can: a blame that stops there (`^commit`) reads only readable
    /// versions.
    pub boundary: HashMap<Vec<u8>, String>,
    /// For each such path, the newest commit that changed it (a blame that stops there
    /// reads only the version in `HEAD`).
    pub newest: HashMap<Vec<u8>, String>,
    /// How many distinct objects cannot be read.
    pub objects: usize,
}

impl Unreadable {
    /// True when `path` has a version that cannot be read.
    #[must_use]
    pub fn contains(&self, path: &[u8]) -> bool {
        self.paths.contains(path)
    }

    /// Pathspec arguments (after `--`) that keep git away from every unreadable path:
    /// `.` and one `:(exclude,literal,top)PATH` each.
    #[must_use]
    pub fn pathspec(&self) -> Vec<OsString> {
        let mut out = vec![OsString::from(".")];
        for path in &self.paths {
            let mut spec = b":(exclude,literal,top)".to_vec();
            spec.extend_from_slice(path);
            out.push(OsStr::from_bytes(&spec).to_owned());
        }
        out
    }
}

/// One change of one path, as `git log --raw` lists it: the commit, the blobs before and
/// after (`None` for an added or deleted side).
struct Change {
    commit: String,
    old: Option<String>,
    new: Option<String>,
}

/// Every change of `head`'s history by path, newest first (`git log --raw`, first-parent
/// diffs of merges, no rename detection: it reads no blob).
fn changes(top: &Path, head: &str) -> anyhow::Result<HashMap<Vec<u8>, Vec<Change>>> {
    let args = [
        "log",
        "--raw",
        "--no-abbrev",
        "--no-renames",
        "--diff-merges=first-parent",
        "--root",
        "-z",
        "--format=%x01%H",
        head,
        "--",
    ];
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    let out = crate::git::run(top, &args)?;
    let mut by_path: HashMap<Vec<u8>, Vec<Change>> = HashMap::new();
    let mut commit = String::new();
    let mut tokens = out.split(|b| *b == 0);
    let real = |id: &str| (!id.bytes().all(|b| b == b'0')).then(|| id.to_owned());
    while let Some(token) = tokens.next() {
        let token = token.strip_prefix(b"\n").unwrap_or(token);
        if let Some(id) = token.strip_prefix(b"\x01") {
            String::from_utf8_lossy(id).trim().clone_into(&mut commit);
        } else if let Some(meta) = token.strip_prefix(b":") {
            let Some(path) = tokens.next() else {
                anyhow::bail!("git log --raw ends after a change");
            };
            let meta = String::from_utf8_lossy(meta);
            let fields: Vec<&str> = meta.split(' ').collect();
            let [old_mode, new_mode, old, new, _status] = fields.as_slice() else {
                anyhow::bail!("unexpected git log --raw line {meta:?}");
            };
            // A submodule's commit is not an object of this repository.
            let blob = |mode: &str, id: &str| (mode != "160000").then(|| real(id)).flatten();
            by_path.entry(path.to_vec()).or_default().push(Change {
                commit: commit.clone(),
                old: blob(old_mode, old),
                new: blob(new_mode, new),
            });
        } else if !token.is_empty() {
            anyhow::bail!(
                "unexpected git log --raw output near {:?}",
                String::from_utf8_lossy(token)
            );
        }
    }
    Ok(by_path)
}

/// The ids of `ids` that `git cat-file --batch-check` reports missing.
fn missing(top: &Path, ids: &HashSet<&str>) -> anyhow::Result<HashSet<String>> {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = crate::git::git(top)
        .args(["cat-file", "--batch-check=%(objectname) %(objecttype)"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("could not run git cat-file: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let list: Vec<u8> = ids
        .iter()
        .flat_map(|id| [id.as_bytes(), b"\n"])
        .flatten()
        .copied()
        .collect();
    // Written from a thread: git answers as it reads, and the answers would fill the pipe.
    let writer = std::thread::spawn(move || stdin.write_all(&list));
    let out = child.wait_with_output()?;
    let _ = writer.join();
    if !out.status.success() {
        anyhow::bail!(
            "git cat-file --batch-check failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(" missing"))
        .map(str::to_owned)
        .collect())
}

/// Object ids (40 or 64 hex digits) named in `text`, such as git's "unable to read
/// <id>" or "loose object <id> ... is corrupt".
fn named_ids(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_ascii_hexdigit())
        .filter(|w| w.len() == 40 || w.len() == 64)
}

/// Finds the unreadable blobs of `head`'s history: those missing, and those `hint` (a
/// failed git's message) names.
fn find(top: &Path, head: &str, hint: &str) -> anyhow::Result<Unreadable> {
    let by_path = changes(top, head)?;
    let ids: HashSet<&str> = by_path
        .values()
        .flatten()
        .flat_map(|c| [c.old.as_deref(), c.new.as_deref()])
        .flatten()
        .collect();
    let mut bad = missing(top, &ids)?;
    bad.extend(
        named_ids(hint)
            .filter(|id| ids.contains(id))
            .map(str::to_owned),
    );
    let mut found = Unreadable {
        objects: bad.len(),
        ..Unreadable::default()
    };
    let unreadable = |id: &Option<String>| id.as_ref().is_some_and(|id| bad.contains(id));
    for (path, list) in by_path {
        if !list
            .iter()
            .any(|c| unreadable(&c.old) || unreadable(&c.new))
        {
            continue;
        }
        // Newest first: the first change that starts from an unreadable version and ends
        // in a readable one.
        if let Some(c) = list
            .iter()
            .find(|c| unreadable(&c.old) && !unreadable(&c.new) && c.new.is_some())
        {
            let newer_bad = list
                .iter()
                .take_while(|d| d.commit != c.commit)
                .any(|d| unreadable(&d.new));
            if !newer_bad {
                found.boundary.insert(path.clone(), c.commit.clone());
            }
        }
        if let Some(c) = list.first().filter(|c| !unreadable(&c.new)) {
            found.newest.insert(path.clone(), c.commit.clone());
        }
        found.paths.insert(path);
    }
    Ok(found)
}

/// Whether the unreadable objects were looked for, and what was found.
#[derive(Clone, Debug)]
enum Search {
    NotYet,
    /// Looked for; `None` when every object can be read (or the search failed).
    Done(Option<Unreadable>),
}

/// What one scan knows about unreadable objects, found at most once, and which files were
/// dated around them.
#[derive(Debug)]
pub struct Objects {
    top: PathBuf,
    head: Option<String>,
    found: Mutex<Search>,
    degraded: Mutex<BTreeSet<Vec<u8>>>,
}

impl Objects {
    /// Nothing known yet about the history of `head` in `top`.
    #[must_use]
    pub fn new(top: &Path, head: Option<String>) -> Objects {
        Objects {
            top: top.to_owned(),
            head,
            found: Mutex::new(Search::NotYet),
            degraded: Mutex::new(BTreeSet::new()),
        }
    }

    /// After a git read failed with `error`: the unreadable blobs of the history (the
    /// missing ones, and those `error` names), found on the first call and remembered, or
    /// `None` when every object can be read, so that the failure is something else (then
    /// it is reported as it is). A search that itself fails counts as none found.
    pub fn unreadable(&self, error: &anyhow::Error) -> Option<Unreadable> {
        let hint = format!("{error:#}");
        let mut found = self.found.lock().expect("not poisoned");
        if let Search::NotYet = *found {
            let head = self.head.as_deref()?;
            let result = find(&self.top, head, &hint);
            if std::env::var_os("STG_AGE_DEBUG").is_some() {
                match &result {
                    Ok(u) => eprintln!(
                        "stg-age: {} objects cannot be read, in {} paths",
                        u.objects,
                        u.paths.len()
                    ),
                    Err(e) => eprintln!("stg-age: looking for unreadable objects failed: {e:#}"),
                }
            }
            *found = Search::Done(result.ok().filter(|u| !u.paths.is_empty()));
        }
        match &*found {
            Search::Done(u) => u.clone(),
            Search::NotYet => None,
        }
    }

    /// What is known so far, without searching.
    pub fn known(&self) -> Option<Unreadable> {
        match &*self.found.lock().expect("not poisoned") {
            Search::Done(u) => u.clone(),
            Search::NotYet => None,
        }
    }

    /// Records that a file with findings was dated without some of its history.
    pub fn degrade(&self, path: &[u8]) {
        self.degraded
            .lock()
            .expect("not poisoned")
            .insert(path.to_vec());
    }

    /// True when `path` was recorded by [`Objects::degrade`].
    pub fn is_degraded(&self, path: &[u8]) -> bool {
        self.degraded.lock().expect("not poisoned").contains(path)
    }

    /// The files dated without some of their history, sorted.
    pub fn degraded(&self) -> Vec<Vec<u8>> {
        self.degraded
            .lock()
            .expect("not poisoned")
            .iter()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_named_in_git_errors() {
        let text = "fatal: unable to read ea2a14f2976a9e7b54c9cca98fcb77d115461aac\nerror: x";
        assert_eq!(
            named_ids(text).collect::<Vec<_>>(),
            ["ea2a14f2976a9e7b54c9cca98fcb77d115461aac"]
        );
        assert_eq!(named_ids("deadbeef cafe").count(), 0);
    }

    #[test]
    fn pathspec_excludes_each_path_literally() {
        let mut u = Unreadable::default();
        u.paths.insert(b"files/a*b.bin".to_vec());
        let spec = u.pathspec();
        assert_eq!(spec[0], ".");
        assert_eq!(spec[1], ":(exclude,literal,top)files/a*b.bin");
    }
}
