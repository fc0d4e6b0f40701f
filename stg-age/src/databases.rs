//! `stg-age databases`: how long ago each database on a staging server was synced from
//! production, read from the provenance `stg-restore` stores as the database comment
//! (see [`stg_core::provenance`]).
//!
//! The age that is judged against `--max-age` is the time since `restored_at`; the age of
//! the data itself (since `dumped_at`) is reported beside it. Databases without provenance
//! are listed as `unknown` and never counted as over; loads in progress (`__stg_incoming`)
//! are skipped; kept copies (`<db>__stg_prev_<stamp>`) are listed and judged like any other
//! database, since they hold production data too. Connecting and querying only; nothing
//! is changed on the server.
//!
//! Beside the age, each database's local changes since its sync (rows inserted, updated,
//! deleted per table, from the server's statistics against the baseline stg-restore
//! recorded; see [`stg_core::provenance::compare`]): `none`, `changed`, or `unknown` where
//! the counters cannot be trusted or there is no baseline. This connects to each database
//! (the counters are per database); one it cannot connect to is `unknown`.

use std::fmt::Write as _;
use std::io::Write;

use anyhow::Context;
use serde::Serialize;
use stg_core::conn::Conn;
use stg_core::provenance::{self, role_of, ChangeStatus, LocalChanges, Provenance, Role};

use stg_core::format::{warn, Format, Record, Table};

use crate::report::{median, Judge};

/// The catalog query: every non-template database and its comment.
const LIST_SQL: &str =
    "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database WHERE NOT datistemplate";

/// A `database` record.
#[derive(Serialize, Debug, Clone)]
pub struct DatabaseRecord {
    /// Database name.
    pub name: String,
    /// `live`, or `previous` for a copy `stg-restore` kept.
    pub role: &'static str,
    /// For a kept copy, the database it was a copy of.
    pub copy_of: Option<String>,
    /// `synced` (stg provenance found) or `unknown`.
    pub status: &'static str,
    /// Production host the data came from.
    pub source_host: Option<String>,
    /// Production database the data came from.
    pub source_database: Option<String>,
    /// When the restore finished.
    pub restored_at: Option<String>,
    /// Whole days since `restored_at`.
    pub age_days: Option<u64>,
    /// When the production snapshot was taken.
    pub dumped_at: Option<String>,
    /// Whole days since `dumped_at`: the age of the data.
    pub data_age_days: Option<u64>,
    /// Whether the stream's checksum was verified on restore.
    pub verified: Option<bool>,
    /// Synced longer ago than `--max-age`.
    pub over: bool,
    /// Local changes since the sync: `status` `none`, `changed` (with the tables) or
    /// `unknown` (with the reason).
    pub local_changes: Option<LocalChanges>,
    #[serde(skip)]
    age_secs: Option<u64>,
    #[serde(skip)]
    comment: Option<String>,
}

/// The closing `summary` record of `stg-age databases`.
#[derive(Serialize, Debug)]
pub struct DatabaseSummary {
    /// Databases listed.
    pub count: usize,
    /// Databases with stg provenance.
    pub synced: usize,
    /// Databases without it.
    pub unknown: usize,
    /// Median days since sync, over synced databases.
    pub median_age_days: Option<u64>,
    /// Days since the oldest sync.
    pub oldest_age_days: Option<u64>,
    /// Databases synced longer ago than `--max-age`.
    pub over: usize,
    /// Databases with local changes since their sync.
    pub changed: usize,
    /// Databases whose local changes cannot be told.
    pub changes_unknown: usize,
    /// The threshold, days.
    pub max_age_days: Option<u64>,
    /// The moment ages were measured at.
    pub now: String,
    /// The server, as `user@host:port`.
    pub server: String,
}

impl Record for DatabaseRecord {
    const TYPE: &'static str = "database";
}

impl Record for DatabaseSummary {
    const TYPE: &'static str = "summary";
}

/// Builds one record from a name and its comment; `None` for loads in progress.
#[must_use]
pub fn record(name: &str, comment: Option<&str>, judge: &Judge) -> Option<DatabaseRecord> {
    let (role, copy_of) = match role_of(name) {
        Role::Incoming { .. } => return None,
        Role::Previous { base, .. } => ("previous", Some(base.to_owned())),
        Role::Live => ("live", None),
    };
    let mut rec = DatabaseRecord {
        name: name.to_owned(),
        role,
        copy_of,
        status: "unknown",
        source_host: None,
        source_database: None,
        restored_at: None,
        age_days: None,
        dumped_at: None,
        data_age_days: None,
        verified: None,
        over: false,
        local_changes: None,
        age_secs: None,
        comment: comment.map(str::to_owned),
    };
    let Some(prov) = comment.and_then(Provenance::from_comment) else {
        return Some(rec);
    };
    let restored = match stg_core::timestamp::parse(&prov.restored_at) {
        Ok(t) => t,
        Err(e) => {
            warn(format_args!(
                "database {name:?}: provenance has a bad restored_at ({e}); listed as unknown"
            ));
            return Some(rec);
        }
    };
    let (age, over) = judge.judge(restored);
    rec.status = "synced";
    rec.age_days = Some(age);
    rec.age_secs = Some(judge.age_secs(restored));
    rec.over = over;
    rec.restored_at = Some(stg_core::timestamp::format(restored));
    if let Some(dumped) = prov
        .dumped_at
        .as_deref()
        .and_then(|d| stg_core::timestamp::parse(d).ok())
    {
        rec.dumped_at = Some(stg_core::timestamp::format(dumped));
        rec.data_age_days = Some(judge.judge(dumped).0);
    }
    rec.source_host = Some(prov.source_host);
    rec.source_database = Some(prov.source_database);
    rec.verified = Some(prov.verified);
    Some(rec)
}

/// Lists the databases of the server `conn` points at, with their comments.
async fn list(conn: &Conn) -> anyhow::Result<Vec<(String, Option<String>)>> {
    let client = conn.connect().await?;
    let rows = client
        .query(LIST_SQL, &[])
        .await
        .with_context(|| format!("while listing the databases of {}", conn.describe()))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Runs `stg-age databases`; returns the exit status.
pub fn run(conn: &Conn, format: Format, judge: &Judge, out: &mut impl Write) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("while starting the async runtime")?;
    let databases = runtime.block_on(list(conn))?;
    let mut records: Vec<DatabaseRecord> = databases
        .iter()
        .filter_map(|(name, comment)| record(name, comment.as_deref(), judge))
        .collect();
    runtime.block_on(async {
        for r in &mut records {
            r.local_changes = Some(
                provenance::local_changes_of(
                    conn,
                    &r.name,
                    r.comment.as_deref(),
                    "stg-age",
                    Some(5_000),
                )
                .await,
            );
        }
    });
    // Oldest sync first; unknown last; by name within.
    records.sort_by(|a, b| {
        b.age_secs
            .cmp(&a.age_secs)
            .then_with(|| a.name.cmp(&b.name))
    });
    let ages: Vec<u64> = records.iter().filter_map(|r| r.age_days).collect();
    let summary = DatabaseSummary {
        count: records.len(),
        synced: ages.len(),
        unknown: records.len() - ages.len(),
        median_age_days: median(&ages),
        oldest_age_days: ages.iter().copied().max(),
        over: records.iter().filter(|r| r.over).count(),
        changed: count_changes(&records, ChangeStatus::Changed),
        changes_unknown: count_changes(&records, ChangeStatus::Unknown),
        max_age_days: judge.max_age_days(),
        now: stg_core::timestamp::format(judge.now),
        server: format!("{}@{}:{}", conn.user, conn.host, conn.port),
    };
    match format {
        // Nagios is refused by the parser (Format::text_or_json).
        Format::Json | Format::Nagios => {
            let mut writer = stg_core::jsonl::Writer::new(&mut *out);
            for r in &records {
                writer.record(r)?;
            }
            writer.record(&summary)?;
            writer.flush()?;
        }
        Format::Text => write_text(out, &records, &summary)?,
    }
    Ok(if summary.over > 0 {
        stg_core::exit::FOUND
    } else {
        stg_core::exit::OK
    })
}

fn count_changes(records: &[DatabaseRecord], status: ChangeStatus) -> usize {
    records
        .iter()
        .filter(|r| r.local_changes.as_ref().is_some_and(|c| c.status == status))
        .count()
}

fn days(d: Option<u64>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| format!("{d}d"))
}

fn write_text(
    out: &mut impl Write,
    records: &[DatabaseRecord],
    summary: &DatabaseSummary,
) -> anyhow::Result<()> {
    let mut table = Table::new([
        "DATABASE", "ROLE", "SYNCED", "DATA", "OVER", "CHANGES", "SOURCE",
    ]);
    for r in records {
        // Database names and provenance are the server's: escaped for the terminal.
        table.row([
            stg_core::terminal::escape(&r.name).into_owned(),
            match &r.copy_of {
                Some(base) => format!("kept copy of {}", stg_core::terminal::escape(base)),
                None => r.role.to_owned(),
            },
            days(r.age_days),
            days(r.data_age_days),
            if r.over { "OVER".into() } else { String::new() },
            r.local_changes
                .as_ref()
                .map_or_else(|| "unknown".to_owned(), LocalChanges::short),
            match (&r.source_host, &r.source_database) {
                (Some(h), Some(d)) => stg_core::terminal::escape(&format!("{d}@{h}")).into_owned(),
                _ => "unknown (no stg provenance)".to_owned(),
            },
        ]);
    }
    if !records.is_empty() {
        table.write(&mut *out)?;
    }
    let mut line = format!(
        "{} database(s) on {}: {} synced, {} unknown",
        summary.count, summary.server, summary.synced, summary.unknown
    );
    if let (Some(median), Some(oldest)) = (summary.median_age_days, summary.oldest_age_days) {
        let _ = write!(
            line,
            "; median {median} days since sync, oldest {oldest} days"
        );
    }
    if let Some(max) = summary.max_age_days {
        let _ = write!(line, "; {} older than {max} days", summary.over);
    }
    let _ = write!(
        line,
        "; {} with local changes since the sync, {} unknown",
        summary.changed, summary.changes_unknown
    );
    writeln!(out, "{line} (as of {})", summary.now)?;
    Ok(())
}
