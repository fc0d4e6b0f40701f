//! What stg-hosts prints: hosts lines or `override` records for `emit`, the change summary of
//! `apply` and `remove` (with the diff on a dry run), and the drift report of `check`. JSON
//! Lines records are typed ([`stg_core::format::Record`]); text output escapes paths, which
//! may hold any bytes once links are resolved.

use std::io::Write;
use std::net::IpAddr;

use serde::Serialize;
use stg_core::format::{Format, Record};
use stg_core::jsonl;
use stg_core::terminal::escape;

use crate::change::{Checked, Outcome};
use crate::check;
use crate::hosts_file::{Method, Target};
use crate::overrides::{self, Override};
use crate::ChangeConfig;

/// `emit`'s closing record.
#[derive(Serialize)]
struct EmitSummary<'a> {
    inventory: &'a str,
    overrides: usize,
    addresses: usize,
}

impl Record for EmitSummary<'_> {
    const TYPE: &'static str = "summary";
}

/// A dry run's diff.
#[derive(Serialize)]
struct Diff<'a> {
    file: &'a str,
    diff: &'a str,
}

impl Record for Diff<'_> {
    const TYPE: &'static str = "diff";
}

/// The closing record of `apply` and `remove`.
#[derive(Serialize)]
struct ChangeSummary<'a> {
    action: &'a str,
    file: &'a str,
    block: Option<&'a str>,
    overrides: Option<usize>,
    changed: bool,
    dry_run: bool,
    method: Option<Method>,
    backup: Option<String>,
    pruned_backups: Vec<String>,
}

impl Record for ChangeSummary<'_> {
    const TYPE: &'static str = "summary";
}

/// The closing record of `check`.
#[derive(Serialize)]
struct CheckSummary<'a> {
    file: &'a str,
    block: &'a str,
    present: bool,
    in_sync: bool,
    hand_edited: bool,
    missing: usize,
    stale: usize,
    extra: usize,
    conflicts: usize,
    overrides: usize,
}

impl Record for CheckSummary<'_> {
    const TYPE: &'static str = "summary";
}

/// `emit`: hosts lines, or one `override` record per name and a summary.
pub fn emit(
    format: Format,
    out: &mut impl Write,
    inventory: &str,
    overrides: &[Override],
) -> anyhow::Result<()> {
    if format == Format::Text {
        for line in overrides::hosts_lines(overrides) {
            writeln!(out, "{line}")?;
        }
        return Ok(());
    }
    let mut w = jsonl::Writer::new(out);
    for o in overrides {
        w.record(o)?;
    }
    let mut addresses: Vec<IpAddr> = overrides.iter().map(|o| o.address).collect();
    addresses.sort_unstable();
    addresses.dedup();
    w.record(&EmitSummary {
        inventory,
        overrides: overrides.len(),
        addresses: addresses.len(),
    })
}

/// What a change was about.
pub struct Subject<'a> {
    /// `apply` or `remove`.
    pub action: &'a str,
    /// The block's name, when known.
    pub block: Option<&'a str>,
    /// How many names the block holds (`apply`).
    pub overrides: Option<usize>,
}

/// The report of `apply` or `remove`.
pub fn change(
    format: Format,
    out: &mut impl Write,
    subject: &Subject<'_>,
    change: &ChangeConfig,
    target: &Target,
    outcome: &Outcome,
) -> anyhow::Result<()> {
    let Subject {
        action,
        block,
        overrides,
    } = *subject;
    let file = target.path().display().to_string();
    let backup = outcome
        .written
        .as_ref()
        .map(|w| w.backup.display().to_string());
    let method = outcome.written.as_ref().map(|w| w.method);
    if format != Format::Text {
        let pruned_backups = outcome
            .written
            .as_ref()
            .map(|w| w.pruned.iter().map(|p| p.display().to_string()).collect())
            .unwrap_or_default();
        let mut w = jsonl::Writer::new(out);
        if change.dry_run && outcome.changed {
            w.record(&Diff {
                file: &file,
                diff: &outcome.diff,
            })?;
        }
        return w.record(&ChangeSummary {
            action,
            file: &file,
            block,
            overrides,
            changed: outcome.changed,
            dry_run: change.dry_run,
            method,
            backup,
            pruned_backups,
        });
    }
    if change.dry_run {
        out.write_all(outcome.diff.as_bytes())?;
    }
    let block = block.unwrap_or("(none)");
    let verb = if !outcome.changed {
        "unchanged"
    } else if change.dry_run {
        "would change"
    } else {
        "changed"
    };
    let file = escape(&file);
    write!(out, "{verb} {file}: {action} block {block}")?;
    if let Some(n) = overrides {
        write!(out, " ({n} names)")?;
    }
    if let Some(backup) = &backup {
        write!(out, "; backup {}", escape(backup))?;
    }
    if method == Some(Method::InPlace) {
        write!(out, "; written in place (the file is a mount point)")?;
    }
    writeln!(out)?;
    Ok(())
}

/// The report of `check`: one `drift` record (or line) per difference, then the verdict.
pub fn check(
    format: Format,
    out: &mut impl Write,
    inventory: &str,
    overrides: &[Override],
    checked: &Checked,
) -> anyhow::Result<()> {
    let path = checked.target.path().display().to_string();
    let in_sync = checked.in_sync();
    if format != Format::Text {
        let mut w = jsonl::Writer::new(out);
        for d in &checked.drifts {
            w.record(d)?;
        }
        return w.record(&CheckSummary {
            file: &path,
            block: inventory,
            present: checked.present,
            in_sync,
            hand_edited: checked.count(check::Kind::HandEdited) > 0,
            missing: checked.count(check::Kind::Missing),
            stale: checked.count(check::Kind::Stale),
            extra: checked.count(check::Kind::Extra),
            conflicts: checked.count(check::Kind::Conflict),
            overrides: overrides.len(),
        });
    }
    let path = escape(&path);
    for d in &checked.drifts {
        writeln!(out, "{}", d.to_text())?;
    }
    if in_sync {
        writeln!(
            out,
            "in sync: {path} block {inventory} ({} names)",
            overrides.len()
        )?;
    } else {
        writeln!(
            out,
            "drift: {path} block {inventory}{}: {} difference(s)",
            if checked.present { "" } else { " is missing" },
            checked.drifts.len()
        )?;
    }
    Ok(())
}
