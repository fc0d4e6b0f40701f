//! Dating the condition lines the cache does not answer: with [`crate::trace`] and
//! [`crate::replay`] when a trace pays (a cold run, enough files), else with `git blame` per
//! file over its cut-down history ([`crate::history::History::grafts`]), else over the whole
//! history. Every way gives `git blame -w -M -C`'s dates; see `docs/stg-age.md`.

use std::collections::HashSet;
use std::ffi::OsStr;

use crate::git::{self, Origin};
use crate::history::History;
use crate::objects::{Objects, Unreadable};
use crate::scan::{parallel, Pending, ScanOptions};

/// Whether [`crate::trace`] may date lines in this repository: it reads git's diffs as
/// `git log` computes them, which are blame's only with the default diff algorithm, and it
/// does not look through ignored revisions. `STG_AGE_TRACE=0` turns it off (tests compare
/// both ways).
pub(crate) fn trace_applies(opts: &ScanOptions) -> anyhow::Result<bool> {
    if std::env::var_os("STG_AGE_TRACE").is_some_and(|v| v == "0") {
        return Ok(false);
    }
    if !opts.blame.ignore_revs.is_empty() || opts.blame.ignore_revs_file.is_some() {
        return Ok(false);
    }
    let algorithm = git::config(&opts.top, "diff.algorithm")?;
    Ok(algorithm.is_none_or(|a| a.eq_ignore_ascii_case("myers") || a == "default"))
}

/// On a cold run, starts reading the diffs [`crate::trace`] needs while the history is
/// still being read, when `pending` files make a trace worth it (see [`date_files`]).
pub(crate) fn early_fetch(
    opts: &ScanOptions,
    objects: &Objects,
    pending: usize,
    size: Option<(String, usize)>,
) -> Option<Fetched> {
    if pending == 0 {
        return None;
    }
    let (head, total) = size?;
    if pending * TRACE_COMMITS_PER_FILE < total {
        return None;
    }
    // A failure here is met again, and reported, when the diffs are read for dating.
    let (outputs, left_out) =
        crate::patches::fetch_readable(&opts.top, &head, total, opts.jobs, objects).ok()?;
    Some(Fetched {
        head,
        outputs,
        left_out,
    })
}

/// `HEAD` and the number of commits it reaches, when a trace may date lines here.
pub(crate) fn history_size(opts: &ScanOptions) -> Option<(String, usize)> {
    if !trace_applies(opts).unwrap_or(false) {
        return None;
    }
    let head = git::head(&opts.top).ok()??;
    let count = git::run(
        &opts.top,
        &[
            OsStr::new("rev-list"),
            OsStr::new("--count"),
            OsStr::new(&head),
        ],
    )
    .ok()?;
    let total = String::from_utf8_lossy(&count).trim().parse().ok()?;
    Some((head, total))
}

/// Diffs read ahead.
pub(crate) struct Fetched {
    /// The commit they were read from.
    pub(crate) head: String,
    /// `git log`'s outputs.
    pub(crate) outputs: Vec<Vec<u8>>,
    /// The paths left out because some version of them cannot be read.
    pub(crate) left_out: Option<Unreadable>,
}

/// Commits of history per file to date above which one read of all diffs beats a blame
/// per file: a blame walks a few hundred commits a second, `git log -p` tens of thousands.
const TRACE_COMMITS_PER_FILE: usize = 2000;

/// Dates the pending files that the cache does not answer: with [`crate::trace`] where it
/// can, then `git blame` over the cut-down history it names, else over the file's own
/// cut-down history ([`blame_ranges_in`]).
#[allow(clippy::type_complexity)]
pub(crate) fn date_files(
    opts: &ScanOptions,
    objects: &Objects,
    pending: &[&Pending],
    variants: &[Vec<u8>],
    history: Option<&History>,
    fetched: Option<Fetched>,
) -> anyhow::Result<(Vec<Vec<(usize, Origin)>>, Option<Vec<Origin>>)> {
    let mut added = None;
    let mut outcomes: Vec<Option<crate::trace::Outcome>> = pending.iter().map(|_| None).collect();
    // Files dated in a replay (see [`crate::replay`]).
    let mut replayed: Vec<Option<Vec<(usize, Origin)>>> = pending.iter().map(|_| None).collect();
    if let Some(h) = history {
        let chain = h.ids.len();
        if !pending.is_empty()
            && pending.len() * TRACE_COMMITS_PER_FILE >= chain
            && trace_applies(opts)?
        {
            let dirty = git::dirty(&opts.top)?;
            // Diffs read ahead are of the same history unless HEAD moved meanwhile.
            let (fetched, left_out) = match fetched {
                Some(f) if f.head == h.head => (f.outputs, f.left_out),
                _ => crate::patches::fetch_readable(
                    &opts.top,
                    &h.head,
                    h.ids.len(),
                    opts.jobs,
                    objects,
                )?,
            };
            let t0 = std::time::Instant::now();
            let mut patches = crate::patches::parse_all(&fetched, h)?;
            if let Some(left_out) = &left_out {
                patches.excluded = left_out.paths.iter().filter_map(|p| h.path_id(p)).collect();
                for path in variants.iter().filter(|p| left_out.contains(p)) {
                    // Its renames cannot be followed: dated under its own name.
                    objects.degrade(path);
                }
            }
            if std::env::var_os("STG_AGE_DEBUG").is_some() {
                eprintln!("stg-age: diffs parsed in {:?}", t0.elapsed());
            }
            if h.in_log_order {
                added = Some(crate::patches::added(h, &patches, variants));
            }
            let engine = crate::trace::Engine::new(&opts.top, h, &patches);
            let todo: Vec<usize> = (0..pending.len())
                .filter(|&i| !dirty.contains(&pending[i].path))
                .collect();
            let files: Vec<crate::trace::File<'_>> = todo
                .iter()
                .map(|&i| crate::trace::File {
                    path: &pending[i].path,
                    lines: pending[i].range_lines.clone(),
                    hits: pending[i].hits.iter().map(|h| h.1).collect(),
                })
                .collect();
            let run = engine.run(&files, opts.jobs)?;
            if std::env::var_os("STG_AGE_DEBUG").is_some() {
                // For tests and benchmarks: how the files were dated.
                let count =
                    |f: fn(&crate::trace::Outcome) -> bool| run.iter().filter(|o| f(o)).count();
                eprintln!(
                    "stg-age: traced {} files: {} dated, {} to blame over their reach ({} with -C), {} to blame whole",
                    run.len(),
                    count(|o| matches!(o, crate::trace::Outcome::Dated(_))),
                    count(|o| matches!(o, crate::trace::Outcome::Widen(_))),
                    count(|o| matches!(o, crate::trace::Outcome::Widen(w) if w.copies)),
                    count(|o| matches!(o, crate::trace::Outcome::Whole)),
                );
            }
            for (i, outcome) in todo.into_iter().zip(run) {
                outcomes[i] = Some(outcome);
            }
            replay(opts, h, &patches, pending, &outcomes, &mut replayed)?;
        }
    }
    let work: Vec<(&Pending, Option<crate::trace::Outcome>)> =
        pending.iter().copied().zip(outcomes).collect();
    let work: Vec<_> = work.into_iter().zip(replayed).collect();
    let dated = parallel(opts.jobs, &work, |((p, outcome), replayed)| {
        let origins = match outcome {
            _ if replayed.is_some() => replayed.clone().unwrap_or_default(),
            Some(crate::trace::Outcome::Dated(origins)) => origins.clone(),
            Some(crate::trace::Outcome::Widen(widen)) => {
                let ranges = undated_ranges(p, widen);
                let mut origins = widen.dated.clone();
                let cut = history.map(|h| (h, &widen.names));
                origins.extend(blame_readable(
                    opts,
                    objects,
                    p,
                    &ranges,
                    cut,
                    widen.copies,
                )?);
                origins
            }
            _ => {
                let names = history.map(|h| h.names(&p.path));
                blame_readable(
                    opts,
                    objects,
                    p,
                    &p.ranges,
                    history.zip(names.as_ref()),
                    true,
                )?
            }
        };
        Ok(origins)
    })?;
    Ok((dated, added))
}

/// The ranges of a file that hold a condition line the trace left undated: blame moves
/// lines range by range (a range's lines never share a blame entry with another's), so
/// the others need not be blamed again.
fn undated_ranges(p: &Pending, widen: &crate::trace::Widen) -> Vec<(usize, usize)> {
    p.ranges
        .iter()
        .copied()
        .filter(|&(a, b)| widen.undated.iter().any(|l| (a..=b).contains(l)))
        .collect()
}

/// Dates the files the trace widened, in one replay of the history (see
/// [`crate::replay`]); a file the replay cannot take is left for [`blame_ranges_in`].
fn replay(
    opts: &ScanOptions,
    history: &History,
    patches: &crate::patches::Patches,
    pending: &[&Pending],
    outcomes: &[Option<crate::trace::Outcome>],
    replayed: &mut [Option<Vec<(usize, Origin)>>],
) -> anyhow::Result<()> {
    let mut which = Vec::new();
    let mut jobs = Vec::new();
    for (i, outcome) in outcomes.iter().enumerate() {
        if let Some(crate::trace::Outcome::Widen(widen)) = outcome {
            which.push(i);
            jobs.push(crate::replay::Job {
                path: &pending[i].path,
                ranges: undated_ranges(pending[i], widen),
                names: &widen.names,
                copies: widen.copies,
            });
        }
    }
    if jobs.is_empty() {
        return Ok(());
    }
    let t0 = std::time::Instant::now();
    let replay = match crate::replay::Replay::build(&opts.top, history, patches, &jobs, opts.jobs) {
        Ok(replay) => replay,
        Err(e) => {
            if std::env::var_os("STG_AGE_DEBUG").is_some() {
                eprintln!("stg-age: no replay ({e:#}); blaming in the repository");
            }
            return Ok(());
        }
    };
    let t1 = std::time::Instant::now();
    // The longest walks first, so that no worker is left with one at the end.
    let mut numbered: Vec<usize> = (0..jobs.len()).collect();
    numbered.sort_by_key(|&j| std::cmp::Reverse(replay.sizes[j]));
    let results = parallel(opts.jobs, &numbered, |&j| {
        Ok((j, replay.blame(j, &jobs[j], patches, history)?))
    })?;
    if std::env::var_os("STG_AGE_DEBUG").is_some() {
        eprintln!(
            "stg-age: replay built in {:?}, {} files blamed in it in {:?}",
            t1 - t0,
            jobs.len(),
            t1.elapsed()
        );
    }
    for (j, lines) in results {
        let (Some(lines), Some(crate::trace::Outcome::Widen(widen))) = (lines, &outcomes[which[j]])
        else {
            continue;
        };
        let mut origins = widen.dated.clone();
        origins.extend(lines);
        replayed[which[j]] = Some(origins);
    }
    Ok(())
}

/// [`blame_ranges_in`], and when git fails on an object it cannot read (see
/// [`crate::objects`]), the best blame that reads none: without `-C` (no other file's
/// versions are read), then stopping at the newest commit whose parent's version of the
/// file cannot be read (lines older than that are dated by it: no older than they are),
/// then at the newest commit that changed the file. The file is then reported as
/// degraded. Any other failure is reported as it is.
fn blame_readable(
    opts: &ScanOptions,
    objects: &Objects,
    pending: &Pending,
    ranges: &[(usize, usize)],
    cut: Option<(&History, &HashSet<Vec<u8>>)>,
    copies: bool,
) -> anyhow::Result<Vec<(usize, Origin)>> {
    let error = match blame_ranges_in(opts, pending, ranges, cut, copies) {
        Ok(lines) => return Ok(lines),
        Err(e) => e,
    };
    let Some(unreadable) = objects.unreadable(&error) else {
        return Err(error);
    };
    let path = &pending.path;
    let mut stops: Vec<Option<&str>> = Vec::new();
    if !unreadable.contains(path) {
        stops.push(None);
    }
    stops.extend(unreadable.boundary.get(path).map(|b| Some(b.as_str())));
    stops.extend(unreadable.newest.get(path).map(|b| Some(b.as_str())));
    for stop in stops {
        if let Ok(lines) = git::blame_with(&opts.top, path, ranges, &opts.blame, None, false, stop)
        {
            objects.degrade(path);
            return Ok(lines.into_iter().map(|(l, o, _)| (l, o)).collect());
        }
    }
    Err(error)
}

/// The commit that added each variant file (following renames), in one walk of the
/// history when there are many; when git fails on an object it cannot read, the walk
/// leaves out the unreadable paths, and a variant file that is one of them is dated by
/// its oldest addition under its own name (reported as degraded).
pub(crate) fn date_variants(
    opts: &ScanOptions,
    objects: &Objects,
    paths: &[Vec<u8>],
    batch: bool,
) -> anyhow::Result<Vec<Origin>> {
    let known = objects.known();
    let first = match &known {
        Some(_) => Err(anyhow::anyhow!("some objects cannot be read")),
        None if batch => git::added_many(&opts.top, paths),
        None => paths.iter().map(|p| git::added(&opts.top, p)).collect(),
    };
    let error = match first {
        Ok(origins) => return Ok(origins),
        Err(e) => e,
    };
    let Some(unreadable) = known.or_else(|| objects.unreadable(&error)) else {
        return Err(error);
    };
    let mut origins = git::added_many_in(&opts.top, paths, &unreadable.pathspec())?;
    for (path, origin) in paths.iter().zip(&mut origins) {
        if unreadable.contains(path) {
            *origin = git::added_by(&opts.top, path, false)?;
            objects.degrade(path);
        }
    }
    Ok(origins)
}

/// `git blame` of `ranges` of one file over the history cut down to the commits that
/// change one of `names` (see [`crate::history`]) when every condition line ends in one of
/// those names; over the whole history (with `-C`) when one ended in another file (`-C`
/// found it was copied from there, and that file's own commits were cut), or when there is
/// no history to cut.
fn blame_ranges_in(
    opts: &ScanOptions,
    pending: &Pending,
    ranges: &[(usize, usize)],
    cut: Option<(&History, &HashSet<Vec<u8>>)>,
    copies: bool,
) -> anyhow::Result<Vec<(usize, Origin)>> {
    if let Some((history, names)) = cut {
        if let Some(grafts) = history.grafts(names) {
            let lines = git::blame_with(
                &opts.top,
                &pending.path,
                ranges,
                &opts.blame,
                Some(&grafts),
                copies,
                None,
            )?;
            // Context lines whose copy went elsewhere do not matter; a condition line must
            // have stayed within the names.
            let hit = |line: usize| pending.hits.iter().any(|h| h.1 == line);
            if lines
                .iter()
                .all(|(line, _, name)| !hit(*line) || names.contains(name))
            {
                return Ok(lines.into_iter().map(|(l, o, _)| (l, o)).collect());
            }
        }
    }
    git::blame(&opts.top, &pending.path, ranges, &opts.blame)
}
