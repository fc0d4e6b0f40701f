//! `stg-restore list DB`: the live database, its kept copies (newest first, in the order
//! of [`crate::db::order`], which prune and rollback use too) and any leftover incoming
//! database, each with its provenance and its local changes since its
//! sync (read from the statistics of each database that has a baseline; see
//! [`stg_core::provenance::compare`]). Reads only; needs no staging host.

use std::io::Write;

use serde::Serialize;
use stg_core::format::{Format, Record};
use stg_core::provenance::{self, LocalChanges, Provenance};

use crate::db::{Kind, Maintenance, OrderedBy};
use crate::ListConfig;

/// One database in the listing.
#[derive(Debug, Serialize)]
pub struct DatabaseRecord {
    /// Its name.
    pub name: String,
    /// `current`, `previous` or `incoming`.
    pub kind: Kind,
    /// For kept copies: when the swap retired it (RFC 3339 UTC): the time its provenance
    /// records, else its name's stamp; `None` when neither can be used (in the future, or
    /// no time).
    pub retired_at: Option<String>,
    /// For kept copies: what their place in the order comes from (`retired_at`,
    /// `name_stamp`, `restored_at`); `None` for a copy of unknown age, listed last.
    pub ordered_by: Option<OrderedBy>,
    /// `pg_database_size` (-1 when this user may not connect to it).
    pub size_bytes: i64,
    /// Whether it accepts connections.
    pub allow_connections: bool,
    /// What stg-restore recorded when it restored it; `None` when it was not restored by
    /// stg-restore (or its comment was replaced).
    pub provenance: Option<Provenance>,
    /// Local changes since its sync (`none`, `changed`, `unknown`); `None` for an
    /// incoming database.
    pub local_changes: Option<LocalChanges>,
}

/// The closing summary of `list`.
#[derive(Debug, Serialize)]
pub struct ListSummary {
    /// Always `list`.
    pub command: &'static str,
    /// The live database's name.
    pub database: String,
    /// True when the live database exists.
    pub current: bool,
    /// Kept copies.
    pub previous: usize,
    /// True when an incoming database exists (a restore running, or one killed).
    pub incoming: bool,
    /// Kept copies whose place in the order is not what their name says (a stamp in the
    /// future...); also on stderr.
    pub warnings: Vec<String>,
}

impl Record for DatabaseRecord {
    const TYPE: &'static str = "database";
}

impl Record for ListSummary {
    const TYPE: &'static str = "summary";
}

/// Runs `list`.
pub fn run(config: &ListConfig, format: Format) -> anyhow::Result<u8> {
    let rt = crate::runtime()?;
    let mut warnings = Vec::new();
    let records: Vec<DatabaseRecord> = rt.block_on(async {
        let m = Maintenance::connect(&config.conn).await?;
        let related = m.related(&config.db).await?;
        warnings.extend(related.iter().filter_map(|d| d.warning.clone()));
        let mut records = Vec::with_capacity(related.len());
        for d in related {
            let local_changes = if d.kind == Kind::Incoming {
                None
            } else {
                Some(
                    provenance::local_changes_of(
                        &config.conn,
                        &d.name,
                        d.comment.as_deref(),
                        "stg-restore",
                        None,
                    )
                    .await,
                )
            };
            records.push(DatabaseRecord {
                provenance: d.comment.as_deref().and_then(Provenance::from_comment),
                name: d.name,
                kind: d.kind,
                retired_at: d
                    .retired
                    .as_ref()
                    .filter(|r| r.by != OrderedBy::RestoredAt)
                    .map(|r| r.at.clone()),
                ordered_by: d.retired.as_ref().map(|r| r.by),
                size_bytes: d.size_bytes,
                allow_connections: d.allow_connections,
                local_changes,
            });
        }
        anyhow::Ok(records)
    })?;
    let summary = ListSummary {
        command: "list",
        database: config.db.clone(),
        current: records.iter().any(|r| r.kind == Kind::Current),
        previous: records.iter().filter(|r| r.kind == Kind::Previous).count(),
        incoming: records.iter().any(|r| r.kind == Kind::Incoming),
        warnings,
    };
    for warning in &summary.warnings {
        stg_core::format::warn(warning);
    }
    if format == Format::Json {
        let mut out = stg_core::jsonl::Writer::new(stg_core::output::stdout());
        for record in &records {
            out.record(record)?;
        }
        out.record(&summary)?;
        out.flush()?;
        return Ok(stg_core::exit::OK);
    }
    let mut out = std::io::BufWriter::new(stg_core::output::stdout());
    if records.is_empty() {
        writeln!(out, "no database {} and no kept copies", config.db)?;
    }
    for r in &records {
        let kind = match r.kind {
            Kind::Current => "current",
            Kind::Previous => "previous",
            Kind::Incoming => "incoming",
        };
        let origin = match &r.provenance {
            Some(p) => format!(
                "from {}/{} dumped {} restored {}{}{}",
                if p.source_host.is_empty() {
                    "?"
                } else {
                    &p.source_host
                },
                if p.source_database.is_empty() {
                    "?"
                } else {
                    &p.source_database
                },
                p.dumped_at.as_deref().unwrap_or("?"),
                p.restored_at,
                if p.verified { "" } else { " (UNVERIFIED)" },
                // Masking in brief (issue 17): whether undecided columns were refused.
                match (&p.masking.rules_sha256, &p.masking.undecided) {
                    (None, _) => " unmasked".to_owned(),
                    (Some(_), Some(u)) => format!(" masked (undecided: {u})"),
                    (Some(_), None) => " masked".to_owned(),
                }
            ),
            None => "no provenance".to_owned(),
        };
        let closed = if r.allow_connections {
            ""
        } else {
            "  [not accepting connections]"
        };
        writeln!(
            out,
            "{kind:<9} {:<40} {:>12} bytes  {origin}{closed}",
            r.name, r.size_bytes
        )?;
        if r.kind == Kind::Previous {
            let retired = match (&r.retired_at, r.ordered_by) {
                (Some(at), _) => format!("retired {at}"),
                (None, Some(_)) => {
                    "retired after its restore (its name's stamp is unusable)".into()
                }
                (None, None) => "retired at an unknown time (listed last, never pruned)".into(),
            };
            writeln!(out, "          {retired}")?;
        }
        if let Some(changes) = &r.local_changes {
            writeln!(
                out,
                "          local changes since the sync: {}",
                stg_core::terminal::escape(&changes.describe())
            )?;
        }
    }
    out.flush()?;
    Ok(stg_core::exit::OK)
}
