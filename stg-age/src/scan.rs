//! Finding and dating the staging-only changes of a work tree: enumerate tracked files,
//! flag staging variant files, run the condition matcher over text files, drop what the
//! ignore file silences, then date what is left with git (one blame per file, files in
//! parallel on a bounded pool of threads).
//!
//! Reporting (ages, thresholds, formats) is [`crate::report`]'s job, not this module's.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use time::Date;

use crate::cache::Cache;
use crate::conditions::{Kind, Matcher};
use crate::git::{self, BlameOptions, Origin, Tracked};
use crate::glob::Glob;
use crate::history::History;
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
    /// The cache directory (`None`: no cache, `--no-cache`).
    pub cache: Option<PathBuf>,
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
    /// Files with findings dated without some of their history, because objects of it
    /// cannot be read (see [`crate::objects`]), sorted.
    pub degraded: Vec<Vec<u8>>,
    /// Objects of the history found unreadable (0 when no read needed one).
    pub unreadable_objects: usize,
    /// Paths with an unreadable version, when any were found.
    pub unreadable_paths: Vec<Vec<u8>>,
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
    /// A staging variant file, not silenced: its addition is dated later.
    variant: Option<Vec<u8>>,
    /// Lines to blame.
    pending: Option<Pending>,
}

/// The condition lines of one file, found and waiting to be dated.
pub(crate) struct Pending {
    /// Path relative to the top level.
    pub(crate) path: Vec<u8>,
    /// SHA-256 of the work-tree bytes (the cache key).
    pub(crate) content: String,
    /// The `-L` ranges blamed.
    pub(crate) ranges: Vec<(usize, usize)>,
    /// Every line of the ranges, whitespace removed (for [`crate::trace`]).
    pub(crate) range_lines: Vec<(usize, Vec<u8>)>,
    /// `(kind, line, text)` of each kept hit.
    pub(crate) hits: Vec<(crate::conditions::Kind, usize, String)>,
}

/// Above this many variant files, their additions are found in one walk of the history
/// ([`git::added_many`]) instead of one `git log --follow` each.
const BATCH_ADDED_ABOVE: usize = 8;

fn scan_file(opts: &ScanOptions, file: &Tracked) -> FileScan {
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
            out.variant = Some(path.clone());
        }
    }
    if file.symlink {
        return out;
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
        return out;
    }
    let limits = stg_core::files::Limits {
        max_bytes: MAX_SCANNED,
        no_symlink: true,
    };
    let bytes = match stg_core::files::read_small(&full, limits) {
        Ok(bytes) => bytes,
        // Deleted in the work tree: nothing to blame there.
        Err(stg_core::files::ReadError::NotFound(_)) => return out,
        // Not a regular file any more, or larger than any text worth scanning: skipped as
        // binary files are.
        Err(stg_core::files::ReadError::Unsuitable(_) | stg_core::files::ReadError::Refused(_)) => {
            out.binary = true;
            return out;
        }
    };
    if bytes[..bytes.len().min(BINARY_PROBE)].contains(&0) {
        out.binary = true;
        return out;
    }
    let hits = opts.matcher.scan(&bytes);
    if hits.is_empty() {
        return out;
    }
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    let mut kept = Vec::new();
    for hit in hits {
        if silenced(Some(hit.line), &mut out.used) {
            out.ignored += 1;
        } else {
            let text =
                String::from_utf8_lossy(lines.get(hit.line - 1).copied().unwrap_or_default());
            kept.push((hit.kind, hit.line, clip(text.trim_end_matches('\r'))));
        }
    }
    if kept.is_empty() {
        return out;
    }
    let numbers: Vec<usize> = kept.iter().map(|h| h.1).collect();
    let ranges = blame_ranges(&numbers, line_count(&bytes));
    let range_lines = ranges
        .iter()
        .flat_map(|&(first, last)| first..=last)
        .map(|n| {
            let line = lines.get(n - 1).copied().unwrap_or_default();
            (n, crate::trace::normalise(line))
        })
        .collect();
    out.pending = Some(Pending {
        path: path.clone(),
        content: crate::cache::digest(&[&bytes]),
        ranges,
        range_lines,
        hits: kept,
    });
    out
}

/// The findings of one file from its dated lines.
fn findings(pending: &Pending, origins: &[(usize, Origin)]) -> anyhow::Result<Vec<Finding>> {
    let path = &pending.path;
    pending
        .hits
        .iter()
        .map(|(kind, line, text)| {
            let origin = origins
                .iter()
                .find(|(l, _)| l == line)
                .map(|(_, o)| o.clone())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "git blame gave no origin for {}:{line}",
                        String::from_utf8_lossy(path)
                    )
                })?;
            Ok(Finding {
                kind: FindingKind::Condition(*kind),
                path: path.clone(),
                line: Some(*line),
                text: Some(text.clone()),
                origin,
            })
        })
        .collect()
}

/// Reads the history of `HEAD`, from the cache and the commits since when it has them.
fn load_history(top: &Path, cached: Option<History>) -> anyhow::Result<Option<History>> {
    let Some(head) = git::head(top)? else {
        return Ok(None);
    };
    if let Some(mut history) = cached {
        if history.head == head {
            return Ok(Some(history));
        }
        let old = history.head.clone();
        // Commit facts never change: only the commits the cache has not seen are read. A
        // rewritten history simply has more of them.
        if history.find(&head).is_some() {
            history.head.clone_from(&head);
            history.reindex();
            if history.is_consistent() {
                return Ok(Some(history));
            }
        } else if history.extend(top, &head, &[old]).is_ok() && history.is_consistent() {
            return Ok(Some(history));
        }
    }
    let mut history = History::default();
    history.extend(top, &head, &[])?;
    Ok(history.is_consistent().then_some(history))
}

/// Scans the tracked files under `opts.dir`.
pub fn scan(opts: &ScanOptions) -> anyhow::Result<Scan> {
    let files = git::ls_files(&opts.dir)?;
    let mut cache = match &opts.cache {
        Some(dir) => Some(Cache::open(
            dir,
            &opts.top_canonical,
            options_key(&opts.top, &opts.blame)?,
        )),
        None => None,
    };
    let cached_history = cache.as_mut().and_then(|c| c.history.take());
    let objects = crate::objects::Objects::new(&opts.top, git::head(&opts.top)?);
    // Without a cached history this is a cold run.
    let cold = cached_history.is_none();
    let (history, scanned, fetched) = if cold {
        // The files first: when there are enough conditions to trace, one `git log`
        // reads the history and its diffs together.
        let (scanned, size) = std::thread::scope(|s| {
            let size = s.spawn(|| crate::dating::history_size(opts));
            let scanned = parallel(opts.jobs, &files, |file| Ok(scan_file(opts, file)));
            (scanned, size.join().expect("no panic counting commits"))
        });
        let fetched = match &scanned {
            Ok(files) => crate::dating::early_fetch(
                opts,
                &objects,
                files.iter().filter(|f| f.pending.is_some()).count(),
                size,
            ),
            Err(_) => None,
        };
        if std::env::var_os("STG_AGE_DEBUG").is_some() && fetched.is_some() {
            eprintln!("stg-age: files scanned, history and diffs read");
        }
        // A read that left paths out does not hold the whole history.
        let history = match fetched
            .as_ref()
            .filter(|f| f.left_out.is_none())
            .map(|f| crate::patches::history(&f.outputs, &f.head))
        {
            Some(Ok(history)) => Ok(Some(history)),
            _ => load_history(&opts.top, None),
        };
        (history, scanned, fetched)
    } else {
        // The files are read and matched while the history is read.
        std::thread::scope(|s| {
            let loader = s.spawn(|| load_history(&opts.top, cached_history));
            let scanned = parallel(opts.jobs, &files, |file| Ok(scan_file(opts, file)));
            (
                loader.join().expect("no panic reading the history"),
                scanned,
                None,
            )
        })
    };
    let history = history?;
    let scanned = scanned?;
    let mut scan = Scan {
        entry_used: vec![false; opts.ignore.entries.len()],
        files: files.len(),
        ..Scan::default()
    };
    let mut variants = Vec::new();
    let mut pending = Vec::new();
    for file in scanned {
        scan.findings.extend(file.findings);
        scan.ignored += file.ignored;
        scan.binary_files += usize::from(file.binary);
        for i in file.used {
            scan.entry_used[i] = true;
        }
        variants.extend(file.variant);
        pending.extend(file.pending);
    }
    // Lines the cache still answers; the rest are dated together.
    let mut misses: Vec<&Pending> = Vec::new();
    for p in &pending {
        let cached = match (&history, cache.as_mut()) {
            (Some(h), Some(c)) => c.blame(&p.path, &p.content, &p.ranges, h),
            _ => None,
        }
        // A result may hold only the lines that were conditions when it was computed (a
        // trace dates those alone); other patterns can make other lines conditions.
        .filter(|origins| {
            p.hits
                .iter()
                .all(|h| origins.iter().any(|(line, _)| *line == h.1))
        });
        match cached {
            Some(origins) => scan.findings.extend(findings(p, &origins)?),
            None => misses.push(p),
        }
    }
    // Variant files: dated by the commit that added them.
    let mut to_date = Vec::new();
    for path in variants {
        let cached = match (&history, cache.as_mut()) {
            (Some(h), Some(c)) => c.added(&path, h),
            _ => None,
        };
        match cached {
            Some(origin) => scan.findings.push(variant_finding(path, origin)),
            None => to_date.push(path),
        }
    }
    let (dated, added) =
        crate::dating::date_files(opts, &objects, &misses, &to_date, history.as_ref(), fetched)?;
    let origins = match added {
        Some(origins) => origins,
        None => crate::dating::date_variants(
            opts,
            &objects,
            &to_date,
            to_date.len() > BATCH_ADDED_ABOVE,
        )?,
    };
    // What was dated without some of its history is not kept: once the objects can be
    // read (fetched, repaired), the next run dates it exactly.
    for (path, origin) in to_date.into_iter().zip(origins) {
        if let (Some(h), Some(c), false) = (&history, cache.as_mut(), objects.is_degraded(&path)) {
            c.put_added(&path, h, &origin);
        }
        scan.findings.push(variant_finding(path, origin));
    }
    for (p, origins) in misses.into_iter().zip(dated) {
        if let (Some(h), Some(c), false) = (&history, cache.as_mut(), objects.is_degraded(&p.path))
        {
            c.put_blame(
                &p.path,
                &p.content,
                &p.ranges,
                &h.names(&p.path),
                h,
                &origins,
            );
        }
        scan.findings.extend(findings(p, &origins)?);
    }
    if let (Some(cache), Some(history)) = (cache, history) {
        cache.save(history);
    }
    scan.degraded = objects.degraded();
    if let Some(unreadable) = objects.known() {
        scan.unreadable_objects = unreadable.objects;
        scan.unreadable_paths = unreadable.paths.into_iter().collect();
    }
    Ok(scan)
}

fn variant_finding(path: Vec<u8>, origin: Origin) -> Finding {
    Finding {
        kind: FindingKind::File,
        path,
        line: None,
        text: None,
        origin,
    }
}

/// Runs `work` over `items` on `jobs` threads; the results in the order of `items`, or the
/// first error (the other workers stop taking work).
pub(crate) fn parallel<T: Sync, R: Send>(
    jobs: usize,
    items: &[T],
    work: impl Fn(&T) -> anyhow::Result<R> + Sync,
) -> anyhow::Result<Vec<R>> {
    parallel_with(jobs, items, || Ok(()), |(), item| work(item))
}

/// [`parallel`] where each worker first makes its own state with `init` (a `git cat-file`
/// of its own, say) and hands it to every `work` it does.
pub(crate) fn parallel_with<S, T: Sync, R: Send>(
    jobs: usize,
    items: &[T],
    init: impl Fn() -> anyhow::Result<S> + Sync,
    work: impl Fn(&mut S, &T) -> anyhow::Result<R> + Sync,
) -> anyhow::Result<Vec<R>> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<(usize, anyhow::Result<R>)>> = Mutex::new(Vec::new());
    let workers = jobs.clamp(1, items.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut mine = Vec::new();
                match init() {
                    Ok(mut state) => {
                        while !failed.load(Ordering::Relaxed) {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(item) = items.get(i) else { break };
                            let result = work(&mut state, item);
                            if result.is_err() {
                                failed.store(true, Ordering::Relaxed);
                            }
                            mine.push((i, result));
                        }
                    }
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        mine.push((0, Err(e)));
                    }
                }
                results
                    .lock()
                    .expect("no worker panics holding the lock")
                    .extend(mine);
            });
        }
    });
    let mut results = results.into_inner().expect("workers finished");
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// The key of everything a blame result depends on besides the file and `HEAD`:
/// stg-age's version, the ignored revisions as commit ids, `.git-blame-ignore-revs`'s
/// bytes, the repository's configuration (with includes) and its replace refs.
fn options_key(top: &Path, blame: &BlameOptions) -> anyhow::Result<String> {
    let mut parts: Vec<Vec<u8>> = vec![env!("CARGO_PKG_VERSION").as_bytes().to_vec()];
    for rev in &blame.ignore_revs {
        parts.push(git::resolve(top, rev)?.into_bytes());
    }
    parts.push(match &blame.ignore_revs_file {
        Some(file) => std::fs::read(file).unwrap_or_else(|e| e.to_string().into_bytes()),
        None => b"-".to_vec(),
    });
    parts.push(git::run(
        top,
        &[
            OsStr::new("config"),
            OsStr::new("--list"),
            OsStr::new("--includes"),
            OsStr::new("-z"),
        ],
    )?);
    parts.push(git::run(
        top,
        &[
            OsStr::new("for-each-ref"),
            OsStr::new("--format=%(refname) %(objectname)"),
            OsStr::new("refs/replace/"),
        ],
    )?);
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    Ok(crate::cache::digest(&refs))
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
