//! Changing the hosts file: plan on a plain read, then (when there is something to do and
//! it is not a dry run) check that the host is staging, take the lock, re-read, plan again and
//! write through [`crate::hosts_file`] (temp file, backup, rename). Also the read-only `check`.

use crate::check::{self, Drift};
use crate::hosts_file::{self, Target};
use crate::overrides::Override;
use crate::{diff, plan, ChangeConfig, FileConfig};

/// The outcome of a change, for the report.
pub struct Outcome {
    /// The file's bytes differ (or would, on a dry run).
    pub changed: bool,
    /// What was written; `None` when nothing was.
    pub written: Option<hosts_file::Written>,
    /// The unified diff of the change.
    pub diff: String,
}

/// Plans on a plain read; when there is something to do and it is not a dry run, checks
/// that the host is staging (when `guard` names the action), takes the lock, re-reads and
/// plans again, and writes.
fn change_file(
    change: &ChangeConfig,
    guard: Option<&str>,
    plan: impl Fn(&Target, &[u8]) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<(Target, Outcome)> {
    let target = Target::new(&change.file.path, &change.file.resolve)?;
    let before = target.read()?;
    let after = plan(&target, &before)?;
    let diff = diff::unified(&before, &after, &target.path().display().to_string());
    if before == after || change.dry_run {
        let changed = before != after;
        return Ok((
            target,
            Outcome {
                changed,
                written: None,
                diff,
            },
        ));
    }
    if let Some(action) = guard {
        // Staging overrides on a production host would send production to staging.
        stg_core::host::require_staging(&format!("{action} in {}", target.path().display()))?;
    }
    let locked = target.lock()?;
    let before = locked.read()?;
    let after = plan(&target, &before)?;
    if before == after {
        drop(locked);
        return Ok((
            target,
            Outcome {
                changed: false,
                written: None,
                diff: String::new(),
            },
        ));
    }
    let diff = diff::unified(&before, &after, &target.path().display().to_string());
    let written = locked.replace(&before, &after, change.keep_backups)?;
    drop(locked);
    Ok((
        target,
        Outcome {
            changed: true,
            written: Some(written),
            diff,
        },
    ))
}

/// `apply`: writes the inventory's block. Returns the file and what happened.
pub fn apply(
    inventory: &str,
    overrides: &[Override],
    change: &ChangeConfig,
) -> anyhow::Result<(Target, Outcome)> {
    change_file(
        change,
        Some("point production names at staging addresses"),
        |target, bytes| plan::apply(target, bytes, inventory, overrides, change.force),
    )
}

/// `remove`: takes a block out. Returns the file, what happened and the block's name
/// (the one found when `name` is `None`).
pub fn remove(
    name: Option<String>,
    change: &ChangeConfig,
) -> anyhow::Result<(Target, Outcome, Option<String>)> {
    let found = std::cell::RefCell::new(None);
    let (target, outcome) = change_file(change, None, |target, bytes| {
        let (new, block) = plan::remove(target, bytes, name.as_deref(), change.force)?;
        *found.borrow_mut() = block;
        Ok(new)
    })?;
    let block = found.into_inner().or(name);
    Ok((target, outcome, block))
}

/// The result of `check`.
pub struct Checked {
    /// The hosts file.
    pub target: Target,
    /// Every difference, in report order.
    pub drifts: Vec<Drift>,
    /// The inventory's block is in the file.
    pub present: bool,
}

impl Checked {
    /// The block is present and nothing differs.
    #[must_use]
    pub fn in_sync(&self) -> bool {
        self.drifts.is_empty() && self.present
    }

    /// How many differences are of `kind`.
    #[must_use]
    pub fn count(&self, kind: check::Kind) -> usize {
        self.drifts.iter().filter(|d| d.kind == kind).count()
    }
}

/// `check`: compares the hosts file with the overrides; changes nothing.
pub fn check(
    inventory: &str,
    overrides: &[Override],
    file: &FileConfig,
) -> anyhow::Result<Checked> {
    let target = Target::new(&file.path, &file.resolve)?;
    let bytes = target.read()?;
    let hosts = plan::parse_hosts(target.path(), &bytes)?;
    let drifts = check::compare(&hosts, inventory, overrides);
    let present = hosts.block(inventory).is_some();
    Ok(Checked {
        target,
        drifts,
        present,
    })
}
