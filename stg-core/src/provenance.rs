//! Provenance of a restored database: where its data came from and when, recorded by
//! `stg-restore` as the database's comment (`COMMENT ON DATABASE ... IS '<json>'`) and read by
//! `stg-restore list` and `stg-age databases`.
//!
//! The comment is one JSON object with `"stg_provenance": 1` (the format version); a
//! database whose comment is anything else has no provenance (it was not restored by
//! stg, or someone replaced the comment). Kept copies (`<db>__stg_prev_<UTC stamp>`) keep
//! their comment through the rename, because comments belong to the database, not its name.
//!
//! Beside the provenance, the comment carries a [`Baseline`] (key `"baseline"`, optional so
//! that comments written before it stay readable): the server's write counters of every
//! table of the database as it was swapped in. Comparing them with the counters now
//! ([`Activity`], [`compare`]) tells the local changes since the sync, or says why it
//! cannot ("unknown", never "no changes"). Not here: running a restore or deciding what to
//! do about changes (`stg-restore`), or printing them (`stg-restore`, `stg-age`).
//! See: <https://www.postgresql.org/docs/15/monitoring-stats.html>.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::stream::MaskingSummary;

/// The provenance format version.
pub const VERSION: u32 = 1;

/// Suffix of the database a restore loads into before the swap.
pub const INCOMING_SUFFIX: &str = "__stg_incoming";
/// Infix of kept previous copies: `<db>__stg_prev_<YYYYMMDDTHHMMSSZ>`.
pub const PREVIOUS_INFIX: &str = "__stg_prev_";

/// What `stg-restore` records on the database it restored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Provenance {
    /// Format version ([`VERSION`]); also marks the comment as stg's.
    pub stg_provenance: u32,
    /// Production host the dump came from (as `stg-dump` connected to it).
    pub source_host: String,
    /// Production database name.
    pub source_database: String,
    /// When the dump's snapshot was taken (RFC 3339 UTC); `None` for an unverified plain dump.
    pub dumped_at: Option<String>,
    /// When the restore finished loading (RFC 3339 UTC).
    pub restored_at: String,
    /// SHA-256 of the stream as stated by its trailer and verified; `None` when unverified.
    pub stream_sha256: Option<String>,
    /// True when the stream's trailer was checked and matched.
    pub verified: bool,
    /// Masking applied by `stg-dump`.
    pub masking: MaskingSummary,
    /// The restoring tool and version, e.g. `stg-restore 0.1.0`.
    pub restored_by: String,
    /// Who signed the stream, checked against the allowed signers (`principals
    /// (SHA256:...)`); `None` for a stream restored without a trust file in effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
}

impl Provenance {
    /// The JSON text to store as the database comment.
    #[must_use]
    pub fn to_comment(&self) -> String {
        serde_json::to_string(self).expect("provenance serializes")
    }

    /// The comment with the write-activity baseline beside the provenance (one JSON
    /// object; readers that do not know `"baseline"` ignore it).
    #[must_use]
    pub fn to_comment_with(&self, baseline: Option<&Baseline>) -> String {
        let mut value = serde_json::to_value(self).expect("provenance serializes");
        if let (Some(baseline), Some(object)) = (baseline, value.as_object_mut()) {
            object.insert(
                "baseline".into(),
                serde_json::to_value(baseline).expect("baseline serializes"),
            );
        }
        value.to_string()
    }

    /// Reads a database comment; `None` when it is not stg provenance.
    #[must_use]
    pub fn from_comment(comment: &str) -> Option<Provenance> {
        serde_json::from_value(stg_comment(comment)?).ok()
    }
}

/// The key of the retire time in a kept copy's comment, beside the provenance: when the
/// swap renamed the database away (RFC 3339 UTC), written by stg-restore in the swap's own
/// transaction. Kept copies are ordered by it; the stamp in their name is only a fallback.
pub const RETIRED_AT: &str = "retired_at";

/// When a swap retired the database, as recorded in its comment; `None` when nothing was
/// recorded (not stg provenance, or retired before stg-restore recorded it).
#[must_use]
pub fn retired_at(comment: &str) -> Option<String> {
    Some(stg_comment(comment)?.get(RETIRED_AT)?.as_str()?.to_owned())
}

/// The comment with its retire time set to `at` (`None`: removed, for a copy that is live
/// again); `None` when the comment is not stg provenance, so that nothing is written on a
/// database stg-restore did not restore.
#[must_use]
pub fn with_retired_at(comment: &str, at: Option<&str>) -> Option<String> {
    let mut value = stg_comment(comment)?;
    let object = value.as_object_mut()?;
    match at {
        Some(at) => {
            object.insert(RETIRED_AT.into(), at.into());
        }
        None => {
            object.remove(RETIRED_AT);
        }
    }
    Some(value.to_string())
}

/// The comment as JSON when it is stg provenance of this format version.
fn stg_comment(comment: &str) -> Option<serde_json::Value> {
    let value: serde_json::Value = serde_json::from_str(comment).ok()?;
    if value.get("stg_provenance")?.as_u64()? != u64::from(VERSION) {
        return None;
    }
    Some(value)
}

/// Tables whose counters are recorded one by one in a [`Baseline`]; the counters of any
/// further tables (in name order) are summed into [`Baseline::rest`]. At about 40 bytes a
/// table, this keeps the comment under about 40 KiB whatever the schema.
pub const BASELINE_MAX_TABLES: usize = 1000;

/// Write counters of one table as the server counts them (`pg_stat_user_tables`), and its
/// file (`pg_class.relfilenode`), which changes when the table is rewritten: `TRUNCATE`
/// (which the counters do not see), `VACUUM FULL`, `CLUSTER`, a rewriting `ALTER TABLE`,
/// `REFRESH MATERIALIZED VIEW`, or a drop and re-create under the same name. Stored as
/// `[inserted, updated, deleted, file]`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(from = "[u64; 4]", into = "[u64; 4]")]
pub struct Counters {
    /// `n_tup_ins`: rows inserted (COPY included).
    pub inserted: u64,
    /// `n_tup_upd`: rows updated (HOT or not).
    pub updated: u64,
    /// `n_tup_del`: rows deleted.
    pub deleted: u64,
    /// `relfilenode`.
    pub file: u64,
}

impl From<[u64; 4]> for Counters {
    fn from(a: [u64; 4]) -> Self {
        Counters {
            inserted: a[0],
            updated: a[1],
            deleted: a[2],
            file: a[3],
        }
    }
}

impl From<Counters> for [u64; 4] {
    fn from(c: Counters) -> Self {
        [c.inserted, c.updated, c.deleted, c.file]
    }
}

/// The summed counters of the tables beyond [`BASELINE_MAX_TABLES`].
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RestCounters {
    /// How many tables.
    pub tables: u64,
    /// Their rows inserted.
    pub inserted: u64,
    /// Their rows updated.
    pub updated: u64,
    /// Their rows deleted.
    pub deleted: u64,
}

/// The write activity of a database as a restore swapped it in (after its load's own
/// writes were counted), stored in the provenance comment.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Baseline {
    /// When the counters were read (server clock, RFC 3339 UTC with microseconds).
    pub taken_at: String,
    /// `pg_stat_database.stats_reset` of the database then (`None`: never reset).
    pub stats_reset: Option<String>,
    /// `pg_postmaster_start_time()` then: the server's life.
    pub server_started_at: String,
    /// `pg_stat_bgwriter.stats_reset` then: it moves when the server discards every
    /// counter at startup after a crash or an immediate shutdown (and when someone resets
    /// the shared statistics).
    pub server_stats_reset: Option<String>,
    /// Per table (`schema.table`, quoted where SQL needs it), at most
    /// [`BASELINE_MAX_TABLES`].
    pub tables: BTreeMap<String, Counters>,
    /// The tables beyond the bound, summed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest: Option<RestCounters>,
}

impl Baseline {
    /// The baseline stored in a database comment, if any.
    #[must_use]
    pub fn from_comment(comment: &str) -> Option<Baseline> {
        let mut value = stg_comment(comment)?;
        serde_json::from_value(value.get_mut("baseline")?.take()).ok()
    }

    /// The baseline of what was just read; `None` when the server does not count
    /// (`track_counts` off): a baseline of nothing would later read as "no changes".
    #[must_use]
    pub fn from_activity(now: &Activity) -> Option<Baseline> {
        if !now.track_counts {
            return None;
        }
        let mut tables = BTreeMap::new();
        let mut rest: Option<RestCounters> = None;
        for (name, c) in &now.tables {
            if tables.len() < BASELINE_MAX_TABLES {
                tables.insert(name.clone(), *c);
            } else {
                let r = rest.get_or_insert_with(RestCounters::default);
                r.tables += 1;
                r.inserted += c.inserted;
                r.updated += c.updated;
                r.deleted += c.deleted;
            }
        }
        Some(Baseline {
            taken_at: now.taken_at.clone(),
            stats_reset: now.stats_reset.clone(),
            server_started_at: now.server_started_at.clone(),
            server_stats_reset: now.server_stats_reset.clone(),
            tables,
            rest,
        })
    }
}

/// The write counters of a database now, read by [`Activity::read`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Activity {
    /// When read (server clock).
    pub taken_at: String,
    /// `pg_stat_database.stats_reset` of the database.
    pub stats_reset: Option<String>,
    /// `pg_postmaster_start_time()`.
    pub server_started_at: String,
    /// `pg_stat_bgwriter.stats_reset`.
    pub server_stats_reset: Option<String>,
    /// The `track_counts` setting: off, nothing is counted.
    pub track_counts: bool,
    /// The `track_commit_timestamp` setting: on, a last write time can be found.
    pub track_commit_timestamp: bool,
    /// Every table's counters (temporary tables left out).
    pub tables: BTreeMap<String, Counters>,
}

/// A time as RFC 3339 UTC with microseconds, so that equal times compare equal as text.
macro_rules! utc {
    ($e:expr) => {
        concat!(
            "to_char((",
            $e,
            ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        )
    };
}

const GLOBALS_SQL: &str = concat!(
    "SELECT ",
    utc!("now()"),
    ", (SELECT ",
    utc!("stats_reset"),
    " FROM pg_stat_database WHERE datname = current_database()), ",
    utc!("pg_postmaster_start_time()"),
    ", (SELECT ",
    utc!("stats_reset"),
    " FROM pg_stat_bgwriter), current_setting('track_counts')::bool, \
     current_setting('track_commit_timestamp')::bool"
);

const TABLES_SQL: &str = "SELECT quote_ident(s.schemaname) || '.' || quote_ident(s.relname), \
     s.n_tup_ins, s.n_tup_upd, s.n_tup_del, c.relfilenode::bigint \
     FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid \
     WHERE c.relpersistence <> 't'";

impl Activity {
    /// Reads the counters over a connection to the database itself (the table counters
    /// are per database). The server counts asynchronously: a session's writes are
    /// visible here at its transaction's end at most once a second, an idle session's
    /// after up to 10 s, and every write of a session that has ended.
    pub async fn read(client: &tokio_postgres::Client) -> anyhow::Result<Activity> {
        let row = client
            .query_one(GLOBALS_SQL, &[])
            .await
            .context("while reading the statistics settings and reset times")?;
        let mut activity = Activity {
            taken_at: row.get(0),
            stats_reset: row.get(1),
            server_started_at: row.get(2),
            server_stats_reset: row.get(3),
            track_counts: row.get(4),
            track_commit_timestamp: row.get(5),
            tables: BTreeMap::new(),
        };
        let rows = client
            .query(TABLES_SQL, &[])
            .await
            .context("while reading pg_stat_user_tables")?;
        let count = |v: i64| v.max(0).unsigned_abs();
        for r in rows {
            activity.tables.insert(
                r.get(0),
                Counters {
                    inserted: count(r.get(1)),
                    updated: count(r.get(2)),
                    deleted: count(r.get(3)),
                    file: count(r.get(4)),
                },
            );
        }
        Ok(activity)
    }
}

/// The verdict on local changes since the sync.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ChangeStatus {
    /// The counters are trusted and show no write since the sync.
    None,
    /// Writes since the sync (listed per table).
    Changed,
    /// The counters cannot be trusted (the reason says why): never read as "no changes".
    Unknown,
}

impl ChangeStatus {
    /// `none`, `changed`, `unknown`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ChangeStatus::None => "none",
            ChangeStatus::Changed => "changed",
            ChangeStatus::Unknown => "unknown",
        }
    }
}

/// What happened to one table since the sync.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TableChangeKind {
    /// Rows inserted, updated or deleted.
    Modified,
    /// Rewritten: TRUNCATE, VACUUM FULL, CLUSTER, a rewriting ALTER TABLE, REFRESH
    /// MATERIALIZED VIEW, or dropped and created again.
    Rewritten,
    /// Created since the sync.
    Created,
    /// Dropped since the sync.
    Dropped,
    /// Tables beyond the baseline's bound, summed (`table` says how many).
    Unlisted,
}

/// One changed table.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableChange {
    /// `schema.table`.
    pub table: String,
    /// What changed.
    pub change: TableChangeKind,
    /// Rows inserted since the sync.
    pub inserted: u64,
    /// Rows updated since the sync.
    pub updated: u64,
    /// Rows deleted since the sync.
    pub deleted: u64,
    /// Time of the last write found (commit timestamps), when it can be told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_write_at: Option<String>,
}

/// The local changes of a database since its sync.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LocalChanges {
    /// `none`, `changed` or `unknown`.
    pub status: ChangeStatus,
    /// Why the answer is `unknown`.
    pub reason: Option<String>,
    /// When the baseline was taken (the sync), if there is one.
    pub since: Option<String>,
    /// Changed tables (empty unless `changed`).
    pub tables: Vec<TableChange>,
    /// Rows inserted, in all.
    pub inserted: u64,
    /// Rows updated, in all.
    pub updated: u64,
    /// Rows deleted, in all.
    pub deleted: u64,
    /// The last write found, or `None` (see `last_write`).
    pub last_write_at: Option<String>,
    /// How the last write time was found, or why it is unknown.
    pub last_write: String,
}

impl LocalChanges {
    /// An `unknown` answer.
    #[must_use]
    pub fn unknown(reason: impl Into<String>, since: Option<String>) -> LocalChanges {
        LocalChanges {
            status: ChangeStatus::Unknown,
            reason: Some(reason.into()),
            since,
            tables: Vec::new(),
            inserted: 0,
            updated: 0,
            deleted: 0,
            last_write_at: None,
            last_write: "unknown".into(),
        }
    }

    /// One line for people: `none`, `unknown (reason)`, or the tables with their counts.
    #[must_use]
    pub fn describe(&self) -> String {
        match self.status {
            ChangeStatus::None => "none".into(),
            ChangeStatus::Unknown => format!(
                "unknown ({})",
                self.reason.as_deref().unwrap_or("no reason given")
            ),
            ChangeStatus::Changed => {
                let parts: Vec<String> = self.tables.iter().map(TableChange::describe).collect();
                let mut text = parts.join("; ");
                match &self.last_write_at {
                    Some(at) => {
                        let _ = write!(text, "; last write {at}");
                    }
                    None => {
                        let _ = write!(text, "; last write {}", self.last_write);
                    }
                }
                text
            }
        }
    }

    /// A short form for a table cell: `none`, `unknown`, `2 tables: +1 ~3 -0`.
    #[must_use]
    pub fn short(&self) -> String {
        match self.status {
            ChangeStatus::None => "none".into(),
            ChangeStatus::Unknown => "unknown".into(),
            ChangeStatus::Changed => format!(
                "{} table(s): +{} ~{} -{}",
                self.tables.len(),
                self.inserted,
                self.updated,
                self.deleted
            ),
        }
    }
}

impl TableChange {
    /// `public.people: 1 inserted, 2 updated, 0 deleted` (or rewritten, created, dropped).
    #[must_use]
    pub fn describe(&self) -> String {
        let counts = format!(
            "{} inserted, {} updated, {} deleted",
            self.inserted, self.updated, self.deleted
        );
        let what = match self.change {
            TableChangeKind::Modified => counts,
            TableChangeKind::Rewritten => format!(
                "rewritten (TRUNCATE, VACUUM FULL, CLUSTER, ALTER TABLE or re-created), {counts}"
            ),
            TableChangeKind::Created => format!("created since the sync, {counts}"),
            TableChangeKind::Dropped => "dropped since the sync".into(),
            TableChangeKind::Unlisted => format!("{counts} (summed)"),
        };
        let mut text = format!("{}: {what}", self.table);
        if let Some(at) = &self.last_write_at {
            let _ = write!(text, ", last write {at}");
        }
        text
    }
}

/// Compares the counters now with the baseline of the sync.
///
/// `unknown` (with the reason) when there is no baseline, the server does not count
/// (`track_counts` off), the database's counters were reset since (`stats_reset` moved),
/// the server discarded its counters since (crash or immediate shutdown: the shared
/// statistics' reset time moved), or a table's counters went down without its file
/// changing (a reset of that table). Otherwise `changed` with the tables, or `none`.
#[must_use]
pub fn compare(baseline: Option<&Baseline>, now: &Activity) -> LocalChanges {
    let Some(base) = baseline else {
        return LocalChanges::unknown(
            "no baseline of the write counters was recorded at the sync (restored by an \
             older stg-restore, not by stg-restore, or with track_counts off)",
            None,
        );
    };
    let since = Some(base.taken_at.clone());
    if !now.track_counts {
        return LocalChanges::unknown(
            "the server does not count writes (track_counts is off)",
            since,
        );
    }
    if now.stats_reset != base.stats_reset {
        return LocalChanges::unknown(
            format!(
                "the database's statistics were reset at {} after the sync (pg_stat_reset)",
                now.stats_reset.as_deref().unwrap_or("an unknown time")
            ),
            since,
        );
    }
    let restarted = now.server_started_at != base.server_started_at;
    if now.server_stats_reset != base.server_stats_reset {
        return LocalChanges::unknown(
            format!(
                "the server's statistics were discarded or reset at {} after the sync (a \
                 crash or an immediate shutdown discards them{})",
                now.server_stats_reset
                    .as_deref()
                    .unwrap_or("an unknown time"),
                if restarted {
                    format!("; the server started at {}", now.server_started_at)
                } else {
                    String::new()
                }
            ),
            since,
        );
    }
    let mut tables = Vec::new();
    let mut unlisted = RestCounters::default();
    for (name, c) in &now.tables {
        let Some(b) = base.tables.get(name) else {
            if base.rest.is_some() {
                unlisted.tables += 1;
                unlisted.inserted += c.inserted;
                unlisted.updated += c.updated;
                unlisted.deleted += c.deleted;
            } else {
                tables.push(TableChange {
                    table: name.clone(),
                    change: TableChangeKind::Created,
                    inserted: c.inserted,
                    updated: c.updated,
                    deleted: c.deleted,
                    last_write_at: None,
                });
            }
            continue;
        };
        if b.file != c.file {
            // A new file: the counters may have started again (re-created) or go on.
            let since_base = |now: u64, then: u64| now.checked_sub(then).unwrap_or(now);
            tables.push(TableChange {
                table: name.clone(),
                change: TableChangeKind::Rewritten,
                inserted: since_base(c.inserted, b.inserted),
                updated: since_base(c.updated, b.updated),
                deleted: since_base(c.deleted, b.deleted),
                last_write_at: None,
            });
            continue;
        }
        if c.inserted < b.inserted || c.updated < b.updated || c.deleted < b.deleted {
            return LocalChanges::unknown(
                format!(
                    "the counters of {name} are lower than at the sync: they were reset{}",
                    if restarted {
                        format!(" (the server started again at {})", now.server_started_at)
                    } else {
                        String::new()
                    }
                ),
                since,
            );
        }
        let d = TableChange {
            table: name.clone(),
            change: TableChangeKind::Modified,
            inserted: c.inserted - b.inserted,
            updated: c.updated - b.updated,
            deleted: c.deleted - b.deleted,
            last_write_at: None,
        };
        if d.inserted + d.updated + d.deleted > 0 {
            tables.push(d);
        }
    }
    for name in base.tables.keys() {
        if !now.tables.contains_key(name) {
            tables.push(TableChange {
                table: name.clone(),
                change: TableChangeKind::Dropped,
                inserted: 0,
                updated: 0,
                deleted: 0,
                last_write_at: None,
            });
        }
    }
    if let Some(rest) = &base.rest {
        if unlisted != *rest {
            let sub = |a: u64, b: u64| a.saturating_sub(b);
            tables.push(TableChange {
                table: format!(
                    "({} tables beyond the first {BASELINE_MAX_TABLES} by name; {} at the sync)",
                    unlisted.tables, rest.tables
                ),
                change: TableChangeKind::Unlisted,
                inserted: sub(unlisted.inserted, rest.inserted),
                updated: sub(unlisted.updated, rest.updated),
                deleted: sub(unlisted.deleted, rest.deleted),
                last_write_at: None,
            });
        }
    }
    tables.sort_by(|a, b| a.table.cmp(&b.table));
    let status = if tables.is_empty() {
        ChangeStatus::None
    } else {
        ChangeStatus::Changed
    };
    LocalChanges {
        status,
        reason: None,
        since,
        inserted: tables.iter().map(|t| t.inserted).sum(),
        updated: tables.iter().map(|t| t.updated).sum(),
        deleted: tables.iter().map(|t| t.deleted).sum(),
        tables,
        last_write_at: None,
        last_write: if status == ChangeStatus::Changed {
            if now.track_commit_timestamp {
                "not looked up".into()
            } else {
                "unknown (track_commit_timestamp is off)".into()
            }
        } else {
            "none since the sync".into()
        },
    }
}

/// The local changes of database `db` since the sync its comment's baseline describes,
/// read over a connection of its own (named `application_name` in `pg_stat_activity`).
/// Without a baseline, "unknown" without connecting; a database that cannot be connected
/// to or read is "unknown" too, with the error as the reason. With `last_write_timeout_ms`,
/// the last writes are looked up ([`find_last_writes`]).
pub async fn local_changes_of(
    conn: &crate::conn::Conn,
    db: &str,
    comment: Option<&str>,
    application_name: &str,
    last_write_timeout_ms: Option<u64>,
) -> LocalChanges {
    let Some(baseline) = comment.and_then(Baseline::from_comment) else {
        return compare(None, &Activity::default());
    };
    let read = async {
        let client = conn.with_dbname(db).connect_as(application_name).await?;
        let activity = Activity::read(&client).await?;
        let mut changes = compare(Some(&baseline), &activity);
        if let Some(ms) = last_write_timeout_ms {
            find_last_writes(&client, &mut changes, ms).await;
        }
        anyhow::Ok(changes)
    };
    match read.await {
        Ok(changes) => changes,
        Err(err) => LocalChanges::unknown(
            format!("could not read the write counters of {db}: {err:#}"),
            Some(baseline.taken_at.clone()),
        ),
    }
}

/// Finds the last write of each inserted-into or updated table from the commit timestamps
/// of its rows (`pg_xact_commit_timestamp(xmin)`, only with `track_commit_timestamp` on),
/// over a connection to the database. Each table is scanned, within `timeout_ms`; a
/// table that takes longer, or whose newest row is not newer than the sync (only deletes,
/// or commits before the setting was on), keeps "unknown".
pub async fn find_last_writes(
    client: &tokio_postgres::Client,
    changes: &mut LocalChanges,
    timeout_ms: u64,
) {
    if changes.status != ChangeStatus::Changed || changes.last_write != "not looked up" {
        return;
    }
    let since = changes.since.clone().unwrap_or_default();
    let mut newest: Option<String> = None;
    let mut all_found = true;
    let _ = client
        .batch_execute(&format!("SET statement_timeout = {timeout_ms}"))
        .await;
    for t in &mut changes.tables {
        let scannable = matches!(
            t.change,
            TableChangeKind::Modified | TableChangeKind::Rewritten | TableChangeKind::Created
        ) && t.inserted + t.updated > 0;
        if !scannable {
            all_found = false;
            continue;
        }
        // The name comes from quote_ident on the server: a valid SQL name as it is.
        let sql = format!(
            "SELECT {} FROM (SELECT max(pg_xact_commit_timestamp(xmin)) AS m FROM ONLY {}) x",
            utc!("m"),
            t.table
        );
        match client.query_one(sql.as_str(), &[]).await {
            Ok(row) => match row.get::<_, Option<String>>(0) {
                Some(at) if at > since => {
                    if newest.as_ref().is_none_or(|n| at > *n) {
                        newest = Some(at.clone());
                    }
                    t.last_write_at = Some(at);
                }
                _ => all_found = false,
            },
            Err(_) => all_found = false,
        }
    }
    let _ = client.batch_execute("RESET statement_timeout").await;
    changes.last_write_at = newest;
    changes.last_write = match (&changes.last_write_at, all_found) {
        (Some(_), true) => "from commit timestamps".into(),
        (Some(_), false) => {
            "from commit timestamps; deletes and rewrites leave none, so a later write may \
             exist"
                .into()
        }
        (None, _) => "unknown (no commit timestamp after the sync found)".into(),
    };
}

/// How a database name relates to stg's naming: the live copy, the incoming load, or a
/// kept previous copy of `base`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role<'a> {
    /// `<base>__stg_incoming`.
    Incoming {
        /// The database being replaced.
        base: &'a str,
    },
    /// `<base>__stg_prev_<stamp>`.
    Previous {
        /// The database this was a copy of.
        base: &'a str,
        /// The UTC stamp of the swap that retired it.
        stamp: &'a str,
    },
    /// Any other name.
    Live,
}

/// Classifies a database name.
#[must_use]
pub fn role_of(name: &str) -> Role<'_> {
    if let Some(base) = name.strip_suffix(INCOMING_SUFFIX) {
        return Role::Incoming { base };
    }
    if let Some(at) = name.rfind(PREVIOUS_INFIX) {
        return Role::Previous {
            base: &name[..at],
            stamp: &name[at + PREVIOUS_INFIX.len()..],
        };
    }
    Role::Live
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comment_round_trips_and_foreign_comments_are_none() {
        let p = Provenance {
            stg_provenance: VERSION,
            source_host: "db01".into(),
            source_database: "fas2".into(),
            dumped_at: Some("2026-11-28T01:00:00Z".into()),
            restored_at: "2026-11-28T01:05:00Z".into(),
            stream_sha256: Some("ab".repeat(32)),
            verified: true,
            masking: MaskingSummary::default(),
            restored_by: "stg-restore 0.1.0".into(),
            signed_by: None,
        };
        assert_eq!(Provenance::from_comment(&p.to_comment()), Some(p));
        assert_eq!(Provenance::from_comment("FAS production database"), None);
        assert_eq!(Provenance::from_comment("{\"stg_provenance\": 9}"), None);
    }

    #[test]
    fn the_retire_time_rides_beside_the_provenance() {
        let p = Provenance {
            stg_provenance: VERSION,
            source_host: "db01".into(),
            source_database: "fas2".into(),
            dumped_at: None,
            restored_at: "2026-11-28T01:05:00Z".into(),
            stream_sha256: None,
            verified: false,
            masking: MaskingSummary::default(),
            restored_by: "stg-restore 0.1.0".into(),
            signed_by: None,
        };
        let comment = p.to_comment();
        assert_eq!(retired_at(&comment), None);
        let retired = with_retired_at(&comment, Some("2026-12-01T00:00:00Z")).unwrap();
        assert_eq!(
            retired_at(&retired).as_deref(),
            Some("2026-12-01T00:00:00Z")
        );
        assert_eq!(Provenance::from_comment(&retired), Some(p.clone()));
        let live_again = with_retired_at(&retired, None).unwrap();
        assert_eq!(retired_at(&live_again), None);
        assert_eq!(Provenance::from_comment(&live_again), Some(p));
        // Nothing is written on a database stg-restore did not restore.
        assert_eq!(
            with_retired_at("FAS staging", Some("2026-12-01T00:00:00Z")),
            None
        );
        assert_eq!(
            retired_at("{\"retired_at\": \"2026-12-01T00:00:00Z\"}"),
            None
        );
    }

    fn activity(tables: &[(&str, [u64; 4])]) -> Activity {
        Activity {
            taken_at: "2026-11-28T01:05:00.000000Z".into(),
            stats_reset: None,
            server_started_at: "2026-11-01T00:00:00.000000Z".into(),
            server_stats_reset: Some("2026-11-01T00:00:00.100000Z".into()),
            track_counts: true,
            track_commit_timestamp: false,
            tables: tables
                .iter()
                .map(|(n, c)| ((*n).to_owned(), Counters::from(*c)))
                .collect(),
        }
    }

    #[test]
    fn baseline_rides_in_the_comment_and_old_comments_stay_readable() {
        let p = Provenance {
            stg_provenance: VERSION,
            source_host: "db01".into(),
            source_database: "fas2".into(),
            dumped_at: None,
            restored_at: "2026-11-28T01:05:00Z".into(),
            stream_sha256: None,
            verified: false,
            masking: MaskingSummary::default(),
            restored_by: "stg-restore 0.1.0".into(),
            signed_by: None,
        };
        let base =
            Baseline::from_activity(&activity(&[("public.people", [201, 0, 0, 16400])])).unwrap();
        let comment = p.to_comment_with(Some(&base));
        assert!(
            comment.contains(r#""public.people":[201,0,0,16400]"#),
            "{comment}"
        );
        assert_eq!(Provenance::from_comment(&comment), Some(p.clone()));
        assert_eq!(Baseline::from_comment(&comment), Some(base));
        // Written before baselines existed: provenance, no baseline.
        assert_eq!(Baseline::from_comment(&p.to_comment()), None);
        assert_eq!(Provenance::from_comment(&p.to_comment()), Some(p));
    }

    #[test]
    fn compare_tells_changes_created_dropped_and_rewritten() {
        let base = Baseline::from_activity(&activity(&[
            ("public.people", [201, 0, 0, 1]),
            ("public.groups", [21, 0, 0, 2]),
            ("public.sessions", [5, 0, 0, 3]),
            ("public.old", [1, 0, 0, 4]),
        ]))
        .unwrap();
        let same = activity(&[
            ("public.people", [201, 0, 0, 1]),
            ("public.groups", [21, 0, 0, 2]),
            ("public.sessions", [5, 0, 0, 3]),
            ("public.old", [1, 0, 0, 4]),
        ]);
        let c = compare(Some(&base), &same);
        assert_eq!(c.status, ChangeStatus::None);
        let now = activity(&[
            ("public.people", [202, 3, 1, 1]),
            ("public.groups", [21, 0, 0, 2]),
            ("public.sessions", [5, 0, 0, 9]),
            ("public.new", [7, 0, 0, 5]),
        ]);
        let c = compare(Some(&base), &now);
        assert_eq!(c.status, ChangeStatus::Changed);
        let kinds: Vec<(&str, TableChangeKind)> = c
            .tables
            .iter()
            .map(|t| (t.table.as_str(), t.change))
            .collect();
        assert_eq!(
            kinds,
            [
                ("public.new", TableChangeKind::Created),
                ("public.old", TableChangeKind::Dropped),
                ("public.people", TableChangeKind::Modified),
                ("public.sessions", TableChangeKind::Rewritten),
            ]
        );
        assert_eq!((c.inserted, c.updated, c.deleted), (8, 3, 1));
        assert!(c
            .describe()
            .contains("public.people: 1 inserted, 3 updated, 1 deleted"));
        assert!(c.last_write.contains("track_commit_timestamp is off"));
    }

    #[test]
    fn untrusted_counters_are_unknown_never_none() {
        let base =
            Baseline::from_activity(&activity(&[("public.people", [201, 0, 0, 1])])).unwrap();
        assert_eq!(compare(None, &activity(&[])).status, ChangeStatus::Unknown);
        let mut off = activity(&[("public.people", [201, 0, 0, 1])]);
        off.track_counts = false;
        assert!(Baseline::from_activity(&off).is_none());
        let c = compare(Some(&base), &off);
        assert!(c.reason.unwrap().contains("track_counts"));
        let mut reset = activity(&[("public.people", [0, 0, 0, 1])]);
        reset.stats_reset = Some("2026-11-29T00:00:00.000000Z".into());
        let c = compare(Some(&base), &reset);
        assert_eq!(c.status, ChangeStatus::Unknown);
        assert!(c.reason.unwrap().contains("reset at 2026-11-29"));
        let mut crashed = activity(&[("public.people", [0, 0, 0, 1])]);
        crashed.server_started_at = "2026-11-29T00:00:00.000000Z".into();
        crashed.server_stats_reset = Some("2026-11-29T00:00:00.500000Z".into());
        let c = compare(Some(&base), &crashed);
        assert!(c.reason.unwrap().contains("crash"));
        // A clean restart keeps the counters: trusted.
        let mut restarted = activity(&[("public.people", [201, 0, 0, 1])]);
        restarted.server_started_at = "2026-11-29T00:00:00.000000Z".into();
        assert_eq!(compare(Some(&base), &restarted).status, ChangeStatus::None);
        // Lower without a new file: the table's counters were reset.
        let lower = activity(&[("public.people", [100, 0, 0, 1])]);
        assert_eq!(compare(Some(&base), &lower).status, ChangeStatus::Unknown);
    }

    #[test]
    fn many_tables_are_bounded_and_still_compared() {
        let names: Vec<String> = (0..BASELINE_MAX_TABLES + 50)
            .map(|i| format!("public.t{i:05}"))
            .collect();
        let tables: Vec<(&str, [u64; 4])> =
            names.iter().map(|n| (n.as_str(), [10, 0, 0, 1])).collect();
        let now = activity(&tables);
        let base = Baseline::from_activity(&now).unwrap();
        assert_eq!(base.tables.len(), BASELINE_MAX_TABLES);
        assert_eq!(base.rest.as_ref().unwrap().tables, 50);
        assert!(serde_json::to_string(&base).unwrap().len() < 40 * 1024);
        assert_eq!(compare(Some(&base), &now).status, ChangeStatus::None);
        let mut changed = now.clone();
        changed
            .tables
            .get_mut(names.last().unwrap())
            .unwrap()
            .deleted = 2;
        let c = compare(Some(&base), &changed);
        assert_eq!(c.status, ChangeStatus::Changed);
        assert_eq!(c.tables[0].change, TableChangeKind::Unlisted);
        assert_eq!(c.deleted, 2);
    }

    #[test]
    fn names_are_classified() {
        assert_eq!(
            role_of("fas2__stg_incoming"),
            Role::Incoming { base: "fas2" }
        );
        assert_eq!(
            role_of("fas2__stg_prev_20261128T010000Z"),
            Role::Previous {
                base: "fas2",
                stamp: "20261128T010000Z"
            }
        );
        assert_eq!(role_of("fas2"), Role::Live);
    }
}
