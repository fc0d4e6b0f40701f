//! The cache of dates between runs: one private JSON file per repository under
//! `$XDG_CACHE_HOME/stg-age` (or `~/.cache/stg-age`, or `--cache DIR`).
//!
//! It holds two things. The history ([`crate::history::History`]): facts about commit ids,
//! which never change, extended with the new commits on the next run and pruned to what
//! `HEAD` reaches. And blame results, each keyed by everything it depends on (the file's
//! path, a SHA-256 of its work-tree bytes, the blamed ranges, and a key of the options:
//! stg-age's version, the ignored revisions resolved to ids, `.git-blame-ignore-revs`'s
//! bytes, the repository's configuration and replace refs), and stamped with the commit
//! `HEAD` was when it was computed. A result is reused only when `HEAD` is that commit, or
//! when every commit from `HEAD` back along first parents to it leaves all of the file's
//! names alone (then blame would pass every line down to that commit untouched); anything
//! else is blamed again. A rewritten history fails that test by construction.
//!
//! A cache that cannot be read, is corrupt, comes from another version, or is not private
//! is ignored with a warning; one that cannot be written is warned about. Neither changes
//! the answer or fails the run. Written atomically (a private temporary file, then a
//! rename), in a directory created 0700; at most [`MAX_REPOS`] repositories are kept.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::git::Origin;
use crate::history::History;

/// Bumped whenever the layout or the meaning of an entry changes.
const FORMAT: u32 = 1;

/// Cache files kept in one directory (one per repository); the least recently written go.
pub const MAX_REPOS: usize = 32;

/// A cache file larger than this is not read (and not written).
pub const MAX_BYTES: u64 = 512 << 20;

/// A dated line: `(line, Some((commit, author, unix time)))`, `None` for uncommitted.
pub type DatedLine = (usize, Option<(String, String, i64)>);

/// What a blame result is looked up by: path, content digest, ranges.
type BlameKey = (Vec<u8>, String, Vec<(usize, usize)>);

/// One blamed file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BlameEntry {
    /// Path relative to the top level.
    pub path: Vec<u8>,
    /// SHA-256 (hex) of the work-tree bytes.
    pub content: String,
    /// The `-L` ranges blamed.
    pub ranges: Vec<(usize, usize)>,
    /// The options key it was computed under.
    pub options: String,
    /// `HEAD` when it was computed.
    pub at: String,
    /// Every name of the file in the history at `at`.
    pub names: Vec<Vec<u8>>,
    /// `(line, Some((commit, author, unix time)))`, `None` for uncommitted.
    pub lines: Vec<DatedLine>,
}

/// The on-disk file.
#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    format: u32,
    version: String,
    options: String,
    history: History,
    blames: Vec<BlameEntry>,
    added: Vec<BlameEntry>,
}

/// An open cache: what was read, and what this run adds.
#[derive(Debug)]
pub struct Cache {
    path: PathBuf,
    options: String,
    /// The history read from the cache (may be stale; extended by the caller).
    pub history: Option<History>,
    blames: HashMap<BlameKey, BlameEntry>,
    added: HashMap<Vec<u8>, BlameEntry>,
    used_blames: Vec<BlameEntry>,
    used_added: Vec<BlameEntry>,
}

/// The SHA-256 of some bytes, hex.
#[must_use]
pub fn digest(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize()
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            use std::fmt::Write as _;
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// The default cache directory: `$XDG_CACHE_HOME/stg-age`, else `~/.cache/stg-age`;
/// `None` (no cache, silently) when that base directory does not exist (a cron job or a
/// service user without a home).
#[must_use]
pub fn default_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        _ => {
            let home = PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?);
            if !home.is_dir() {
                return None;
            }
            home.join(".cache")
        }
    };
    Some(base.join("stg-age"))
}

fn warn(msg: &str) {
    stg_core::format::warn(format_args!("cache: {msg}; dating without it"));
}

fn to_origin(line: Option<&(String, String, i64)>) -> Option<Origin> {
    match line {
        None => Some(Origin::Uncommitted),
        Some((id, author, at)) => Some(Origin::Commit {
            id: id.clone(),
            author: author.clone(),
            at: OffsetDateTime::from_unix_timestamp(*at).ok()?,
        }),
    }
}

fn from_origin(origin: &Origin) -> Option<(String, String, i64)> {
    match origin {
        Origin::Uncommitted => None,
        Origin::Commit { id, author, at } => {
            Some((id.clone(), author.clone(), at.unix_timestamp()))
        }
    }
}

impl Cache {
    /// Opens the cache of the repository at `top` (canonical) in `dir`, for results
    /// computed under `options` (see [`digest`]). Never fails: a cache that cannot be used
    /// is warned about and starts empty.
    #[must_use]
    pub fn open(dir: &Path, top: &Path, options: String) -> Cache {
        let name = digest(&[top.as_os_str().as_encoded_bytes()]);
        let mut cache = Cache {
            path: dir.join(format!("{}.json", &name[..32])),
            options,
            history: None,
            blames: HashMap::new(),
            added: HashMap::new(),
            used_blames: Vec::new(),
            used_added: Vec::new(),
        };
        match cache.read() {
            Ok(Some(file)) => {
                let mut history = file.history;
                history.reindex();
                if history.is_consistent() {
                    cache.history = Some(history);
                }
                for e in file.blames {
                    cache
                        .blames
                        .insert((e.path.clone(), e.content.clone(), e.ranges.clone()), e);
                }
                for e in file.added {
                    cache.added.insert(e.path.clone(), e);
                }
            }
            Ok(None) => {}
            Err(why) => warn(&format!("{}: {why}", cache.path.display())),
        }
        cache
    }

    fn read(&self) -> Result<Option<CacheFile>, String> {
        let meta = match std::fs::symlink_metadata(&self.path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let dir_meta = std::fs::metadata(self.path.parent().unwrap_or(Path::new(".")))
            .map_err(|e| e.to_string())?;
        if !meta.file_type().is_file() {
            return Err("not a regular file".into());
        }
        // Anyone else who could write the cache could make stg-age report false dates.
        if meta.mode() & 0o022 != 0 || dir_meta.mode() & 0o022 != 0 || meta.uid() != dir_meta.uid()
        {
            return Err(
                "not private (the file and its directory must be writable by their owner only)"
                    .into(),
            );
        }
        if meta.len() > MAX_BYTES {
            return Err(format!("larger than {MAX_BYTES} bytes"));
        }
        let bytes = std::fs::read(&self.path).map_err(|e| e.to_string())?;
        let file: CacheFile =
            serde_json::from_slice(&bytes).map_err(|e| format!("corrupt ({e})"))?;
        if file.format != FORMAT || file.version != env!("CARGO_PKG_VERSION") {
            return Err(format!(
                "written by another version of stg-age ({} format {})",
                file.version, file.format
            ));
        }
        if file.options != self.options {
            // Options, configuration or ignored revisions changed: nothing in it applies.
            return Ok(Some(CacheFile {
                history: file.history,
                ..CacheFile::default()
            }));
        }
        Ok(Some(file))
    }

    /// A cached blame of `path` (work-tree bytes `content`, `ranges`) that still holds in
    /// `history`.
    #[must_use]
    pub fn blame(
        &mut self,
        path: &[u8],
        content: &str,
        ranges: &[(usize, usize)],
        history: &History,
    ) -> Option<Vec<(usize, Origin)>> {
        let key = (path.to_vec(), content.to_owned(), ranges.to_vec());
        let entry = self.blames.get(&key)?;
        if !holds(entry, history) {
            return None;
        }
        let lines = entry
            .lines
            .iter()
            .map(|(line, o)| Some((*line, to_origin(o.as_ref())?)))
            .collect::<Option<Vec<_>>>()?;
        self.used_blames.push(BlameEntry {
            at: history.head.clone(),
            ..entry.clone()
        });
        Some(lines)
    }

    /// Records a blame computed at `history.head`.
    pub fn put_blame(
        &mut self,
        path: &[u8],
        content: &str,
        ranges: &[(usize, usize)],
        names: &HashSet<Vec<u8>>,
        history: &History,
        lines: &[(usize, Origin)],
    ) {
        self.used_blames.push(BlameEntry {
            path: path.to_vec(),
            content: content.to_owned(),
            ranges: ranges.to_vec(),
            options: self.options.clone(),
            at: history.head.clone(),
            names: names.iter().cloned().collect(),
            lines: lines.iter().map(|(l, o)| (*l, from_origin(o))).collect(),
        });
    }

    /// The cached commit that added `path` (a variant file), if it still holds.
    #[must_use]
    pub fn added(&mut self, path: &[u8], history: &History) -> Option<Origin> {
        let entry = self.added.get(path)?;
        if !holds(entry, history) {
            return None;
        }
        let origin = to_origin(entry.lines.first()?.1.as_ref())?;
        self.used_added.push(BlameEntry {
            at: history.head.clone(),
            ..entry.clone()
        });
        Some(origin)
    }

    /// Records the commit that added `path`.
    pub fn put_added(&mut self, path: &[u8], history: &History, origin: &Origin) {
        let names = history.names(path);
        self.used_added.push(BlameEntry {
            path: path.to_vec(),
            content: String::new(),
            ranges: Vec::new(),
            options: self.options.clone(),
            at: history.head.clone(),
            names: names.into_iter().collect(),
            lines: vec![(0, from_origin(origin))],
        });
    }

    /// Writes what this run used and found (atomically, privately), then keeps the
    /// directory to [`MAX_REPOS`] files. Failures are warnings.
    pub fn save(self, mut history: History) {
        history.prune();
        let file = CacheFile {
            format: FORMAT,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            options: self.options.clone(),
            history,
            blames: self.used_blames,
            added: self.used_added,
        };
        if let Err(why) = write_atomic(&self.path, &file) {
            stg_core::format::warn(format_args!(
                "cache: cannot write {}: {why}; the next run starts cold",
                self.path.display()
            ));
            return;
        }
        if let Some(dir) = self.path.parent() {
            trim(dir);
        }
    }
}

/// True when a result computed at `entry.at` still holds at `history.head`.
fn holds(entry: &BlameEntry, history: &History) -> bool {
    if entry.at == history.head {
        return true;
    }
    let names: HashSet<Vec<u8>> = entry.names.iter().cloned().collect();
    history.unchanged_since(&entry.at, &names)
}

fn write_atomic(path: &Path, file: &CacheFile) -> Result<(), String> {
    let dir = path.parent().ok_or("no directory")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| e.to_string())?;
    let bytes = serde_json::to_vec(file).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(format!("it would be larger than {MAX_BYTES} bytes"));
    }
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("cache"),
        std::process::id()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.to_string());
    }
    Ok(())
}

/// Removes the least recently written cache files beyond [`MAX_REPOS`].
fn trim(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.len() == 37 && name.ends_with(".json")
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if files.len() <= MAX_REPOS {
        return;
    }
    files.sort();
    for (_, path) in &files[..files.len() - MAX_REPOS] {
        let _ = std::fs::remove_file(path);
    }
}
