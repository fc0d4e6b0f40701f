//! `stg-restore rollback DB`: swaps the newest kept copy back in (newest in the order of
//! [`crate::db::order`], which prune and list use too). The live database becomes a kept
//! copy (stamped and recorded as retired now), so a second rollback undoes the first. Same
//! swap, lock and hooks as a restore; nothing is dropped.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use stg_core::format::{Format, Record};
use stg_core::Error;

use crate::db::{Kind, Maintenance};
use crate::hooks::{self, Hook};
use crate::report::write_json;
use crate::restore::{free_previous_name, reopened_warning};
use crate::RollbackConfig;

/// The summary of a rollback.
#[derive(Debug, Serialize)]
pub struct RollbackSummary {
    /// Always `rollback`.
    pub command: &'static str,
    /// The live database.
    pub database: String,
    /// The kept copy that is now live (its name before the swap).
    pub restored_from: String,
    /// The name the formerly live database now has (`None` when there was none).
    pub previous: Option<String>,
    /// Sessions terminated for the swap.
    pub sessions_terminated: u64,
    /// Milliseconds per phase.
    pub timings_ms: BTreeMap<&'static str, u64>,
    /// What went wrong without failing the rollback.
    pub warnings: Vec<String>,
}

impl Record for RollbackSummary {
    const TYPE: &'static str = "summary";
}

/// Runs a rollback.
pub fn run(config: &RollbackConfig, format: Format) -> anyhow::Result<u8> {
    let rt = crate::runtime()?;
    let summary = rt.block_on(rollback(config))?;
    if format == Format::Json {
        write_json(&summary)?;
    } else {
        let mut out = stg_core::output::stdout();
        writeln!(
            out,
            "rolled back {}: {} is live again",
            summary.database, summary.restored_from
        )?;
        if let Some(previous) = &summary.previous {
            writeln!(out, "  the database it replaced is kept as {previous}")?;
        }
        for warning in &summary.warnings {
            writeln!(out, "  warning: {warning}")?;
        }
    }
    Ok(stg_core::exit::OK)
}

async fn rollback(config: &RollbackConfig) -> anyhow::Result<RollbackSummary> {
    let started = Instant::now();
    let db = &config.db;
    let mut m = Maintenance::connect(&config.conn).await?;
    m.require_staging_server(&config.conn, &format!("roll back database {db}"))
        .await?;
    if !m.try_lock(db).await? {
        return Err(Error::runtime(format!(
            "a stg-restore of {db} is running; roll back when it has finished"
        ))
        .into());
    }
    let mut warnings = Vec::new();
    if m.reopen(db).await? {
        warnings.push(reopened_warning(db));
    }
    let related = m.related(db).await?;
    for warning in related.iter().filter_map(|d| d.warning.as_ref()) {
        stg_core::format::warn(warning);
        warnings.push(warning.clone());
    }
    // The newest in the one order (copies of unknown age come after the others).
    let Some(newest) = related.iter().find(|d| d.kind == Kind::Previous) else {
        return Err(Error::usage(format!(
            "there is no kept copy of {db} to roll back to (see `stg-restore list {db}`)"
        ))
        .into());
    };
    if newest.retired.is_none() {
        let warning = format!(
            "rolling back to {}, whose age is unknown: no kept copy of {db} has a known \
             retire time",
            newest.name
        );
        stg_core::format::warn(&warning);
        warnings.push(warning);
    }
    let restored_from = newest.name.clone();
    let live_exists = related.iter().any(|d| d.kind == Kind::Current);
    let mut timings = BTreeMap::new();
    if let Some(command) = &config.pre_hook {
        let t = Instant::now();
        hooks::run(Hook::Pre, command, db, &restored_from, None)
            .await
            .context("step pre-hook failed; nothing was changed")?;
        timings.insert("pre-hook", t.elapsed().as_millis() as u64);
    }
    let t = Instant::now();
    let (retired, retired_at) = free_previous_name(&m, db).await?;
    let swapped = m.swap(db, &restored_from, &retired, &retired_at).await;
    if let Err(err) = swapped {
        if let Some(command) = &config.post_hook {
            let _ = hooks::run(Hook::Post, command, db, &restored_from, None).await;
        }
        return Err(err.context("step swap failed; the live database is unchanged"));
    }
    let terminated = swapped.unwrap_or_default();
    timings.insert("swap", t.elapsed().as_millis() as u64);
    let previous = live_exists.then_some(retired);
    if let Some(command) = &config.post_hook {
        let t = Instant::now();
        hooks::run(Hook::Post, command, db, &restored_from, previous.as_deref())
            .await
            .context("step post-hook failed after the rollback was done")?;
        timings.insert("post-hook", t.elapsed().as_millis() as u64);
    }
    timings.insert("total", started.elapsed().as_millis() as u64);
    Ok(RollbackSummary {
        command: "rollback",
        database: db.clone(),
        restored_from,
        previous,
        sessions_terminated: terminated,
        timings_ms: timings,
        warnings,
    })
}
