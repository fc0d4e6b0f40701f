//! Finding and dating the staging-only changes of a work tree: enumerate tracked files,
//! flag staging variant files, run the condition matcher over text files, drop what the
//! ignore file silences, then date what is left with git (one blame per file, files in
//! parallel on a bounded pool of threads).
//!
//! Reporting (ages, thresholds, formats) is [`crate::report`]'s job, not this module's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use time::Date;

use crate::conditions::{Kind, Matcher};
use crate::git::{self, BlameOptions, Origin, Tracked};
use crate::glob::Glob;
use crate::ignore_file::IgnoreList;

/// Bytes git looks at to decide a file is binary (a NUL among them): see `buffer_is_binary`
/// in git's `xdiff-interface.c`.
const BINARY_PROBE: usize = 8000;

/// Longest `text` kept for a finding; longer lines (minified files) are cut.
const MAX_TEXT: usize = 300;

/// What kind of staging-only change a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FindingKind {
    /// A staging variant file (`*.staging`, `group_vars/staging`...).
    File,
    /// A line comparing the environment with staging.
    Condition(Kind),
}

impl FindingKind {
    /// The name used in records.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::File => "file",
            FindingKind::Condition(kind) => kind.as_str(),
        }
    }
}

/// One dated staging-only change.
#[derive(Clone, Debug)]
pub struct Finding {
    /// What it is.
    pub kind: FindingKind,
    /// Path relative to the top level, raw bytes.
    pub path: Vec<u8>,
    /// 1-based line, for conditions.
    pub line: Option<usize>,
    /// The line, trimmed (lossy UTF-8), for conditions.
    pub text: Option<String>,
    /// Where it came from.
    pub origin: Origin,
}

/// What to scan and how.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    /// The directory to scan (inside the work tree).
    pub dir: PathBuf,
    /// The work tree's top level.
    pub top: PathBuf,
    /// The same, with every link resolved: files are read only below it.
    pub top_canonical: PathBuf,
    /// The condition matcher.
    pub matcher: Matcher,
    /// Staging variant file patterns.
    pub variants: Vec<Glob>,
    /// Blame options (ignored revisions).
    pub blame: BlameOptions,
    /// Ignore-file entries.
    pub ignore: IgnoreList,
    /// The day entries are judged on (UTC).
    pub today: Date,
    /// Worker threads.
    pub jobs: usize,
}

/// The outcome of a scan.
#[derive(Debug, Default)]
pub struct Scan {
    /// Dated findings, in no particular order.
    pub findings: Vec<Finding>,
    /// Findings silenced by ignore entries in force.
    pub ignored: usize,
    /// For each ignore entry, whether it silenced anything.
    pub entry_used: Vec<bool>,
    /// Tracked files skipped as binary.
    pub binary_files: usize,
    /// Tracked files examined.
    pub files: usize,
}

/// Cuts a line for the `text` field.
fn clip(line: &str) -> String {
    let line = line.trim();
    if line.len() <= MAX_TEXT {
        return line.to_owned();
    }
    let mut end = MAX_TEXT;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

/// Lines of context blamed on each side of a matching line.
///
/// `git blame -M -C` only recognises moved or copied lines in chunks of at least 20
/// alphanumeric characters, counted over the lines it is asked about: blamed alone with
/// `-L n,n`, a short line such as `when: env == "staging"` moved to another file would be
/// dated by the move. A few lines of context make the chunk what a whole-file blame sees,
/// at a fraction of the cost of blaming the whole file.
const BLAME_CONTEXT: usize = 5;

/// The number of lines of a text, as git counts them (a last line without `\n` counts).
// Counting one byte needs no crate (clippy suggests `bytecount`); files are small.
#[allow(clippy::naive_bytecount)]
fn line_count(bytes: &[u8]) -> usize {
    let newlines = bytes.iter().filter(|b| **b == b'\n').count();
    newlines + usize::from(bytes.last().is_some_and(|b| *b != b'\n'))
}

/// `-L` ranges covering each line (ascending) with [`BLAME_CONTEXT`] lines on each side,
/// clipped to the file and merged where they touch.
fn blame_ranges(lines: &[usize], total: usize) -> Vec<(usize, usize)> {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for &line in lines {
        let first = line.saturating_sub(BLAME_CONTEXT).max(1);
        let last = (line + BLAME_CONTEXT).min(total.max(line));
        match ranges.last_mut() {
            Some(prev) if first <= prev.1 + 1 => prev.1 = prev.1.max(last),
            _ => ranges.push((first, last)),
        }
    }
    ranges
}

/// Per-file outcome.
#[derive(Default)]
struct FileScan {
    findings: Vec<Finding>,
    ignored: usize,
    used: Vec<usize>,
    binary: bool,
}

/// Above this many variant files, their additions are found in one walk of the history
/// ([`git::added_many`]) instead of one `git log --follow` each.
const BATCH_ADDED_ABOVE: usize = 8;

fn scan_file(
    opts: &ScanOptions,
    file: &Tracked,
    added: Option<&HashMap<Vec<u8>, Origin>>,
) -> anyhow::Result<FileScan> {
    let mut out = FileScan::default();
    let path = &file.path;
    let silenced = |line: Option<usize>, used: &mut Vec<usize>| {
        opts.ignore
            .find(path, line, opts.today)
            .map(|i| used.push(i))
            .is_some()
    };
    if opts.variants.iter().any(|g| g.matches(path)) {
        if silenced(None, &mut out.used) {
            out.ignored += 1;
        } else {
            out.findings.push(Finding {
                kind: FindingKind::File,
                path: path.clone(),
                line: None,
                text: None,
                origin: match added.and_then(|m| m.get(path)) {
                    Some(origin) => origin.clone(),
                    None => git::added(&opts.top, path)?,
                },
            });
        }
    }
    if file.symlink {
        return Ok(out);
    }
    let full = opts.top.join(OsStr::from_bytes(path));
    // Only a regular file inside the work tree is read: a tracked path whose directory was
    // replaced by a link to elsewhere, or that is now a link, a FIFO or a device, is not
    // what was committed, and reading it could leak or hang. See: issue "Hardening,
    // round 2", item 6.
    let inside = full
        .parent()
        .and_then(|p| p.canonicalize().ok())
        .is_some_and(|p| p.starts_with(&opts.top_canonical));
    if !inside {
        return Ok(out);
    }
    let limits = stg_core::files::Limits {
        max_bytes: MAX_SCANNED,
        no_symlink: true,
    };
    let bytes = match stg_core::files::read_small(&full, limits) {
        Ok(bytes) => bytes,
        // Deleted in the work tree: nothing to blame there.
        Err(stg_core::files::ReadError::NotFound(_)) => return Ok(out),
        // Not a regular file any more, or larger than any text worth scanning: skipped as
        // binary files are.
        Err(stg_core::files::ReadError::Unsuitable(_) | stg_core::files::ReadError::Refused(_)) => {
            out.binary = true;
            return Ok(out);
        }
    };
    if bytes[..bytes.len().min(BINARY_PROBE)].contains(&0) {
        out.binary = true;
        return Ok(out);
    }
    let hits = opts.matcher.scan(&bytes);
    if hits.is_empty() {
        return Ok(out);
    }
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    let mut kept = Vec::new();
    for hit in hits {
        if silenced(Some(hit.line), &mut out.used) {
            out.ignored += 1;
        } else {
            kept.push(hit);
        }
    }
    let numbers: Vec<usize> = kept.iter().map(|h| h.line).collect();
    let ranges = blame_ranges(&numbers, line_count(&bytes));
    let origins = git::blame(&opts.top, path, &ranges, &opts.blame)?;
    for hit in kept {
        let origin = origins
            .iter()
            .find(|(line, _)| *line == hit.line)
            .map(|(_, o)| o.clone())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "git blame gave no origin for {}:{}",
                    String::from_utf8_lossy(path),
                    hit.line
                )
            })?;
        let text = String::from_utf8_lossy(lines.get(hit.line - 1).copied().unwrap_or_default());
        out.findings.push(Finding {
            kind: FindingKind::Condition(hit.kind),
            path: path.clone(),
            line: Some(hit.line),
            text: Some(clip(text.trim_end_matches('\r'))),
            origin,
        });
    }
    Ok(out)
}

/// Scans the tracked files under `opts.dir`.
pub fn scan(opts: &ScanOptions) -> anyhow::Result<Scan> {
    let files = git::ls_files(&opts.dir)?;
    let variants: Vec<Vec<u8>> = files
        .iter()
        .filter(|f| opts.variants.iter().any(|g| g.matches(&f.path)))
        .filter(|f| opts.ignore.find(&f.path, None, opts.today).is_none())
        .map(|f| f.path.clone())
        .collect();
    let added: Option<HashMap<Vec<u8>, Origin>> = if variants.len() > BATCH_ADDED_ABOVE {
        let origins = git::added_many(&opts.top, &variants)?;
        Some(variants.into_iter().zip(origins).collect())
    } else {
        None
    };
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<anyhow::Result<FileScan>>> = Mutex::new(Vec::new());
    let workers = opts.jobs.clamp(1, files.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut mine = Vec::new();
                while !failed.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(file) = files.get(i) else { break };
                    let result = scan_file(opts, file, added.as_ref());
                    if result.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    mine.push(result);
                }
                results
                    .lock()
                    .expect("no worker panics holding the lock")
                    .extend(mine);
            });
        }
    });
    let mut scan = Scan {
        entry_used: vec![false; opts.ignore.entries.len()],
        files: files.len(),
        ..Scan::default()
    };
    for result in results.into_inner().expect("workers finished") {
        let file = result?;
        scan.findings.extend(file.findings);
        scan.ignored += file.ignored;
        scan.binary_files += usize::from(file.binary);
        for i in file.used {
            scan.entry_used[i] = true;
        }
    }
    Ok(scan)
}

/// The number of worker threads to use by default: the available cores.
#[must_use]
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Largest file scanned for conditions; larger ones are skipped as binary.
pub const MAX_SCANNED: u64 = 64 << 20;

/// Largest `.git-blame-ignore-revs` handed to git.
const MAX_IGNORE_REVS: u64 = 4 << 20;

/// The path of `top`'s `.git-blame-ignore-revs`, when there is one. It must be a regular
/// file (not a link, which git would follow out of the repository and quote from in its
/// errors) of a sane size; anything else is refused with a message naming it.
pub fn blame_ignore_revs_file(top: &Path) -> Result<Option<PathBuf>, String> {
    let path = top.join(".git-blame-ignore-revs");
    let Ok(meta) = std::fs::symlink_metadata(&path) else {
        return Ok(None);
    };
    if meta.file_type().is_symlink() {
        return Err(format!(
            "{} is a symbolic link; it is not followed (make it a regular file)",
            path.display()
        ));
    }
    if !meta.file_type().is_file() || meta.len() > MAX_IGNORE_REVS {
        return Err(format!(
            "{} is not a regular file of at most {MAX_IGNORE_REVS} bytes",
            path.display()
        ));
    }
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_have_context_are_clipped_and_merged() {
        assert_eq!(line_count(b"a\nb\n"), 2);
        assert_eq!(line_count(b"a\nb"), 2);
        assert_eq!(line_count(b""), 0);
        assert_eq!(blame_ranges(&[1, 8, 30], 32), vec![(1, 13), (25, 32)]);
        assert_eq!(blame_ranges(&[3], 3), vec![(1, 3)]);
        assert_eq!(blame_ranges(&[20, 40], 100), vec![(15, 25), (35, 45)]);
    }
}
