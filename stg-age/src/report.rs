//! Turning dated findings into the report: ages against `--now`, the `--max-age` threshold,
//! the JSON Lines records (`finding`, `expired_ignore`, `summary`) and the text table
//! (oldest first), and the exit status (0 nothing over, 1 something over or an expired
//! ignore entry).
//!
//! Also the small pieces `stg-age databases` shares: [`Judge`], [`median`].
//! Finding things is [`crate::scan`]'s job.

use std::fmt::Write as _;
use std::io::Write;
use std::time::Duration;

use serde::Serialize;
use stg_core::format::{warn, Format, Record, Table};
use stg_core::terminal::{escape, escape_bytes};
use time::OffsetDateTime;

use crate::git::Origin;
use crate::ignore_file::IgnoreList;
use crate::scan::{Finding, Scan};

/// Ages things against a fixed "now" and an optional threshold.
#[derive(Clone, Copy, Debug)]
pub struct Judge {
    /// The moment ages are measured at.
    pub now: OffsetDateTime,
    /// Things strictly older than this are over.
    pub max_age: Option<Duration>,
}

impl Judge {
    /// True when `at` is after the moment ages are measured at: its age cannot be judged
    /// (a clock set wrong when the commit was made, or a date set on purpose).
    #[must_use]
    pub fn is_future(&self, at: OffsetDateTime) -> bool {
        at > self.now
    }

    /// Age in whole seconds (never negative: a date in the future is age 0, see
    /// [`Judge::is_future`]).
    #[must_use]
    pub fn age_secs(&self, at: OffsetDateTime) -> u64 {
        u64::try_from((self.now - at).whole_seconds()).unwrap_or(0)
    }

    /// `(age in whole days, over the threshold)`.
    #[must_use]
    pub fn judge(&self, at: OffsetDateTime) -> (u64, bool) {
        let secs = self.age_secs(at);
        (
            secs / 86_400,
            self.max_age
                .is_some_and(|max| u128::from(secs) * 1000 > max.as_millis()),
        )
    }

    /// The threshold in whole days, for summaries.
    #[must_use]
    pub fn max_age_days(&self) -> Option<u64> {
        self.max_age.map(stg_core::duration::whole_days)
    }
}

/// The median of some ages (the mean of the two middle ones, rounded down, for an even
/// count); `None` for none.
#[must_use]
pub fn median(values: &[u64]) -> Option<u64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some(u64::midpoint(sorted[n / 2 - 1], sorted[n / 2])),
    }
}

/// A `finding` record.
#[derive(Serialize, Debug)]
pub struct FindingRecord {
    /// `file`, `when`, `jinja_if`, `ternary`, `dict_lookup` or `expression`.
    pub kind: &'static str,
    /// Path relative to the top level (lossy UTF-8).
    pub path: String,
    /// 1-based line (`null` for a file).
    pub line: Option<usize>,
    /// The line, trimmed (`null` for a file).
    pub text: Option<String>,
    /// Commit id, or `"uncommitted"`.
    pub commit: String,
    /// Author (`null` when uncommitted).
    pub author: Option<String>,
    /// Author date, RFC 3339 UTC (`null` when uncommitted).
    pub introduced_at: Option<String>,
    /// Whole days since `introduced_at` (0 when uncommitted, or dated in the future).
    pub age_days: u64,
    /// Older than `--max-age`.
    pub over: bool,
    /// `introduced_at` is after `--now`: the age (0) says nothing, and the finding is never
    /// over.
    pub future: bool,
    #[serde(skip)]
    age_secs: u64,
    /// The path as bytes, for the text output (escaped there, invalid UTF-8 as `\xNN`).
    #[serde(skip)]
    raw_path: Vec<u8>,
}

/// An `expired_ignore` record: an ignore entry past its date.
#[derive(Serialize, Debug)]
pub struct ExpiredRecord {
    /// The entry's path pattern.
    pub path: String,
    /// The entry's line, if any.
    pub line: Option<usize>,
    /// Last day the entry was in force.
    pub until: String,
    /// Days since `until`.
    pub expired_days: u64,
    /// The entry's reason.
    pub reason: String,
    /// Where the entry is: `<ignore file>:<line>`.
    pub entry: String,
}

/// The closing `summary` record of a repository scan.
#[derive(Serialize, Debug)]
pub struct Summary {
    /// Findings reported.
    pub count: usize,
    /// Median age of the findings, days (those dated in the future left out).
    pub median_age_days: Option<u64>,
    /// Age of the oldest finding, days (those dated in the future left out).
    pub oldest_age_days: Option<u64>,
    /// Findings older than `--max-age`.
    pub over: usize,
    /// Findings dated after `--now` (age 0, never over).
    pub future: usize,
    /// The threshold, days (`null` without `--max-age`).
    pub max_age_days: Option<u64>,
    /// Findings silenced by ignore entries in force.
    pub ignored: usize,
    /// Ignore entries past their date (each is drift, like a finding over the threshold).
    pub expired_ignores: usize,
    /// Tracked files examined.
    pub files: usize,
    /// Tracked files skipped as binary.
    pub binary_files: usize,
    /// Files whose findings were dated without some of their history (objects that cannot
    /// be read: a partial clone, a damaged object store), sorted; their other dates are
    /// exact.
    pub degraded: Vec<String>,
    /// Objects of the history that could not be read (0 when no read needed one).
    pub unreadable_objects: usize,
    /// The moment ages were measured at.
    pub now: String,
}

impl Record for FindingRecord {
    const TYPE: &'static str = "finding";
}

impl Record for ExpiredRecord {
    const TYPE: &'static str = "expired_ignore";
}

impl Record for Summary {
    const TYPE: &'static str = "summary";
}

/// Builds the records of a scan, oldest first.
#[must_use]
pub fn records(findings: &[Finding], judge: &Judge) -> Vec<FindingRecord> {
    let mut records: Vec<FindingRecord> = findings
        .iter()
        .map(|f| {
            let (commit, author, at) = match &f.origin {
                Origin::Commit { id, author, at } => (id.clone(), Some(author.clone()), Some(*at)),
                Origin::Uncommitted => ("uncommitted".to_owned(), None, None),
            };
            let age_secs = at.map_or(0, |at| judge.age_secs(at));
            let (age_days, over) = at.map_or((0, false), |at| judge.judge(at));
            let future = at.is_some_and(|at| judge.is_future(at));
            FindingRecord {
                kind: f.kind.as_str(),
                path: String::from_utf8_lossy(&f.path).into_owned(),
                line: f.line,
                text: f.text.clone(),
                commit,
                author,
                introduced_at: at.map(stg_core::timestamp::format),
                age_days,
                over,
                future,
                age_secs,
                raw_path: f.path.clone(),
            }
        })
        .collect();
    records.sort_by(|a, b| {
        b.age_secs
            .cmp(&a.age_secs)
            .then_with(|| a.path.cmp(&b.path))
            .then_with(|| a.line.cmp(&b.line))
    });
    records
}

/// Writes the report of a scan; returns the exit status (0, or 1 when something is over
/// the threshold or an ignore entry has expired).
pub fn write_repo_report(
    out: &mut impl Write,
    format: Format,
    scan: &Scan,
    ignore: &IgnoreList,
    ignore_source: &str,
    judge: &Judge,
) -> anyhow::Result<u8> {
    let records = records(&scan.findings, judge);
    let today = judge.now.date();
    let expired: Vec<ExpiredRecord> = ignore
        .entries
        .iter()
        .filter(|e| !e.in_force(today))
        .map(|e| ExpiredRecord {
            path: e.path.as_str().to_owned(),
            line: e.line,
            until: e.until.to_string(),
            expired_days: u64::try_from((today - e.until).whole_days()).unwrap_or(0),
            reason: e.reason.clone(),
            entry: format!("{ignore_source}:{}", e.entry_line),
        })
        .collect();
    for (entry, used) in ignore.entries.iter().zip(&scan.entry_used) {
        if entry.in_force(today) && !used {
            warn(format_args!(
                "{ignore_source}:{}: entry {:?} matches no staging-only change",
                entry.entry_line,
                entry.path.as_str()
            ));
        }
    }
    warn_future(&records, judge);
    warn_unreadable(scan);
    // A finding dated in the future has no known age: left out of the median and oldest.
    let ages: Vec<u64> = records
        .iter()
        .filter(|r| !r.future)
        .map(|r| r.age_days)
        .collect();
    let summary = Summary {
        count: records.len(),
        median_age_days: median(&ages),
        oldest_age_days: ages.iter().copied().max(),
        over: records.iter().filter(|r| r.over).count(),
        future: records.iter().filter(|r| r.future).count(),
        max_age_days: judge.max_age_days(),
        ignored: scan.ignored,
        expired_ignores: expired.len(),
        files: scan.files,
        binary_files: scan.binary_files,
        degraded: scan
            .degraded
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect(),
        unreadable_objects: scan.unreadable_objects,
        now: stg_core::timestamp::format(judge.now),
    };
    match format {
        // Nagios is refused by the parser (Format::text_or_json).
        Format::Json | Format::Nagios => {
            let mut writer = stg_core::jsonl::Writer::new(&mut *out);
            for r in &records {
                writer.record(r)?;
            }
            for e in &expired {
                writer.record(e)?;
            }
            writer.record(&summary)?;
            writer.flush()?;
        }
        Format::Text => write_repo_text(out, &records, &expired, &summary)?,
    }
    Ok(if summary.over > 0 || summary.expired_ignores > 0 {
        stg_core::exit::FOUND
    } else {
        stg_core::exit::OK
    })
}

/// Says on stderr which findings are dated after `--now`: their age 0 hides how old they
/// are, so they must not pass unnoticed (a cron job mails stderr).
fn warn_future(records: &[FindingRecord], judge: &Judge) {
    const SHOWN: usize = 5;
    let future: Vec<&FindingRecord> = records.iter().filter(|r| r.future).collect();
    if future.is_empty() {
        return;
    }
    let mut named: Vec<String> = future
        .iter()
        .take(SHOWN)
        .map(|r| {
            let at = r.introduced_at.as_deref().unwrap_or("?");
            match r.line {
                Some(line) => format!("{}:{line} ({at})", escape_bytes(&r.raw_path)),
                None => format!("{} ({at})", escape_bytes(&r.raw_path)),
            }
        })
        .collect();
    if future.len() > SHOWN {
        named.push(format!("and {} more", future.len() - SHOWN));
    }
    warn(format_args!(
        "{} finding(s) dated after {}: {}; their age cannot be judged \
         (shown as 0, never over): a clock was set wrong when they were committed, or the \
         date was set on purpose",
        future.len(),
        stg_core::timestamp::format(judge.now),
        named.join(", ")
    ));
}

/// Says on stderr that objects of the history could not be read, in which files, and
/// which files with findings were dated without them.
fn warn_unreadable(scan: &Scan) {
    const SHOWN: usize = 5;
    if scan.unreadable_objects == 0 {
        return;
    }
    let list = |paths: &[Vec<u8>]| {
        let mut named: Vec<String> = paths
            .iter()
            .take(SHOWN)
            .map(|p| escape_bytes(p).into_owned())
            .collect();
        if paths.len() > SHOWN {
            named.push(format!("and {} more", paths.len() - SHOWN));
        }
        named.join(", ")
    };
    let dated = if scan.degraded.is_empty() {
        "no finding depends on them".to_owned()
    } else {
        format!(
            "the findings of {} file(s) are dated from what can be read (no older than they are; `degraded` in the summary): {}",
            scan.degraded.len(),
            list(&scan.degraded)
        )
    };
    warn(format_args!(
        "{} object(s) of the history cannot be read (a partial clone, or a damaged object store; nothing is fetched), in {} file(s): {}; {dated}",
        scan.unreadable_objects,
        scan.unreadable_paths.len(),
        list(&scan.unreadable_paths),
    ));
}

fn clip_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

fn write_repo_text(
    out: &mut impl Write,
    records: &[FindingRecord],
    expired: &[ExpiredRecord],
    summary: &Summary,
) -> anyhow::Result<()> {
    // Paths, authors and lines come from the scanned repository: escaped for the terminal
    // (stg_core::terminal), after clipping, so an escape is never cut in half.
    let mut table = Table::new(["AGE", "OVER", "KIND", "WHERE", "COMMIT", "AUTHOR", "TEXT"]);
    for r in records {
        table.row([
            if r.future {
                "future".to_owned()
            } else {
                format!("{}d", r.age_days)
            },
            if r.over { "OVER".into() } else { String::new() },
            r.kind.to_owned(),
            match r.line {
                Some(line) => format!("{}:{line}", escape_bytes(&r.raw_path)),
                None => escape_bytes(&r.raw_path).into_owned(),
            },
            if r.commit == "uncommitted" {
                r.commit.clone()
            } else {
                r.commit.chars().take(10).collect()
            },
            escape(&clip_chars(r.author.as_deref().unwrap_or("-"), 20)).into_owned(),
            escape(&clip_chars(
                r.text.as_deref().unwrap_or("(staging variant file)"),
                60,
            ))
            .into_owned(),
        ]);
    }
    if !records.is_empty() {
        table.write(&mut *out)?;
    }
    for e in expired {
        let target = match e.line {
            Some(line) => format!("{}:{line}", e.path),
            None => e.path.clone(),
        };
        writeln!(
            out,
            "expired ignore entry {}: {} until {} ({} days ago): {}",
            escape(&e.entry),
            escape(&target),
            e.until,
            e.expired_days,
            escape(&e.reason)
        )?;
    }
    let mut line = format!("{} staging-only change(s)", summary.count);
    if let (Some(median), Some(oldest)) = (summary.median_age_days, summary.oldest_age_days) {
        let _ = write!(line, "; median age {median} days, oldest {oldest} days");
    }
    if let Some(max) = summary.max_age_days {
        let _ = write!(line, "; {} older than {max} days", summary.over);
    }
    if summary.future > 0 {
        let _ = write!(
            line,
            "; {} dated in the future (age unknown)",
            summary.future
        );
    }
    if summary.ignored > 0 {
        let _ = write!(line, "; {} ignored", summary.ignored);
    }
    if summary.expired_ignores > 0 {
        let _ = write!(
            line,
            "; {} expired ignore entr(y/ies)",
            summary.expired_ignores
        );
    }
    if !summary.degraded.is_empty() {
        let _ = write!(
            line,
            "; {} file(s) dated without unreadable objects",
            summary.degraded.len()
        );
    }
    writeln!(out, "{line} (as of {})", summary.now)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_judge() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[5, 1, 3]), Some(3));
        assert_eq!(median(&[4, 1, 3, 10]), Some(3));
        let now = stg_core::timestamp::parse("2026-01-10T00:00:00Z").unwrap();
        let judge = Judge {
            now,
            max_age: Some(Duration::from_secs(5 * 86_400)),
        };
        let five = stg_core::timestamp::parse("2026-01-05T00:00:00Z").unwrap();
        let older = stg_core::timestamp::parse("2026-01-04T23:59:59Z").unwrap();
        let future = stg_core::timestamp::parse("2026-02-01T00:00:00Z").unwrap();
        assert_eq!(judge.judge(five), (5, false));
        assert_eq!(judge.judge(older), (5, true));
        assert_eq!(judge.judge(future), (0, false));
        assert!(judge.is_future(future));
        assert!(!judge.is_future(now));
    }
}
