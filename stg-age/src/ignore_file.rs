//! The ignore file (`.stg-age-ignore`): staging-only changes someone decided to keep for a
//! while, each with an expiry date and a reason.
//!
//! One entry a line; blank lines and lines starting with `#` are skipped:
//!
//! ```text
//! PATH[:LINE] until=YYYY-MM-DD REASON...
//! roles/proxy/templates/httpd.conf.j2:12 until=2027-01-31 new proxies are tested in staging first
//! inventory/group_vars/staging until=2026-12-31 the staging group itself
//! ```
//!
//! `PATH` is an anchored [`crate::glob::Glob`] (a file, a directory, or a pattern with `*`,
//! `**`); it cannot contain spaces. With `:LINE`, only the finding on that line of that
//! file is silenced; without, every finding in the file (the variant-file finding too). An
//! entry is in force up to and including its `until` day (UTC); from the next day on it is
//! *expired*: it silences nothing and is reported. Parsing only; matching findings against
//! entries is [`IgnoreList::find`], reporting is elsewhere.

use std::path::Path;

use time::macros::format_description;
use time::Date;

use crate::glob::Glob;

/// One entry of the ignore file.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The path pattern.
    pub path: Glob,
    /// The line, when the entry silences one line only.
    pub line: Option<usize>,
    /// Last day the entry is in force (UTC).
    pub until: Date,
    /// Why the change is kept.
    pub reason: String,
    /// 1-based line number of the entry in the ignore file.
    pub entry_line: usize,
}

/// The entries of one ignore file.
#[derive(Clone, Debug, Default)]
pub struct IgnoreList {
    /// Every entry, in file order.
    pub entries: Vec<Entry>,
}

impl Entry {
    /// True when the entry is in force on `today`.
    #[must_use]
    pub fn in_force(&self, today: Date) -> bool {
        today <= self.until
    }

    fn matches(&self, path: &[u8], line: Option<usize>) -> bool {
        self.path.matches(path) && (self.line.is_none() || self.line == line)
    }
}

impl IgnoreList {
    /// Parses the text of an ignore file; `Err` names the source and the line.
    pub fn parse(text: &str, source: &str) -> Result<IgnoreList, String> {
        let mut entries = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let entry_line = index + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fail = |why: &str| format!("{source}:{entry_line}: {why}: {line:?}");
            let mut parts = line.splitn(3, char::is_whitespace);
            let target = parts.next().unwrap_or_default();
            let until_field = parts.next().unwrap_or_default();
            let reason = parts.next().unwrap_or_default().trim().to_owned();
            let (pattern, line_no) = match target.rsplit_once(':') {
                Some((p, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                    let n: usize = n.parse().map_err(|_| fail("line number too large"))?;
                    if n == 0 {
                        return Err(fail("line numbers start at 1"));
                    }
                    (p, Some(n))
                }
                _ => (target, None),
            };
            let path = Glob::new(pattern, true).map_err(|e| fail(&e))?;
            let Some(date) = until_field.strip_prefix("until=") else {
                return Err(fail(
                    "expected `PATH[:LINE] until=YYYY-MM-DD REASON` (the second field must be until=...)",
                ));
            };
            let until = Date::parse(date, format_description!("[year]-[month]-[day]"))
                .map_err(|e| fail(&format!("invalid date {date:?} (expected YYYY-MM-DD): {e}")))?;
            if reason.is_empty() {
                return Err(fail("a reason is required after the date"));
            }
            entries.push(Entry {
                path,
                line: line_no,
                until,
                reason,
                entry_line,
            });
        }
        Ok(IgnoreList { entries })
    }

    /// Reads an ignore file; a missing file is an empty list when `optional` (the
    /// repository's own file). The repository's file is read only when it is a regular
    /// file, not a link (a committed link could point at a secret, whose first line would
    /// be quoted in the parse error cron mails), and never more than 1 MiB.
    pub fn load(path: &Path, optional: bool) -> Result<IgnoreList, String> {
        let limits = stg_core::files::Limits {
            max_bytes: 1 << 20,
            no_symlink: optional,
        };
        match stg_core::files::read_small(path, limits) {
            Ok(bytes) => Self::parse(
                &String::from_utf8_lossy(&bytes),
                &path.display().to_string(),
            ),
            Err(stg_core::files::ReadError::NotFound(_)) if optional => Ok(IgnoreList::default()),
            Err(e) => Err(format!("cannot read the ignore file: {e}")),
        }
    }

    /// The index of the first entry in force on `today` that silences a finding at `path`
    /// (and `line`, for a line finding).
    #[must_use]
    pub fn find(&self, path: &[u8], line: Option<usize>, today: Date) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.in_force(today) && e.matches(path, line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn parses_entries_and_matches_paths_and_lines() {
        let list = IgnoreList::parse(
            "# kept on purpose\n\nroles/a/x.j2:12 until=2027-01-31 new proxy\n\
             inventory/group_vars/staging until=2026-12-31 the staging group itself\n",
            ".stg-age-ignore",
        )
        .unwrap();
        assert_eq!(list.entries.len(), 2);
        assert_eq!(list.entries[0].line, Some(12));
        assert_eq!(list.entries[0].entry_line, 3);
        assert_eq!(list.entries[1].reason, "the staging group itself");
        let today = date!(2026 - 12 - 31);
        assert_eq!(list.find(b"roles/a/x.j2", Some(12), today), Some(0));
        assert_eq!(list.find(b"roles/a/x.j2", Some(13), today), None);
        assert_eq!(
            list.find(b"inventory/group_vars/staging", None, today),
            Some(1)
        );
        // Expired the day after `until`.
        assert_eq!(
            list.find(b"inventory/group_vars/staging", None, date!(2027 - 01 - 01)),
            None
        );
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        for (text, why) in [
            ("a.yml until=2026-13-01 x\n", "invalid date"),
            ("a.yml 2026-01-01 x\n", "until="),
            ("a.yml until=2026-01-01\n", "reason is required"),
            ("a.yml:0 until=2026-01-01 x\n", "start at 1"),
        ] {
            let err = IgnoreList::parse(text, "ign").unwrap_err();
            assert!(err.starts_with("ign:1: "), "{err}");
            assert!(err.contains(why), "{err}");
        }
    }
}
