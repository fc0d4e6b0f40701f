//! The steps on the incoming database, which exists on the server from `CREATE DATABASE`
//! on (a failure drops it): `load`, `verify`, `analyze`, `provenance`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use stg_core::conn::Conn;
use stg_core::provenance::{self, Provenance};
use stg_core::stream::Manifest;
use stg_core::{timestamp, Error};
use tokio::sync::mpsc;

use super::{changes, Session};
use crate::db::Maintenance;
use crate::load::{Connect, Event, Loader};
use crate::load_role::{self, LoadRole};
use crate::reader::Outcome;
use crate::report::Verification;
use crate::signals::interrupted;

/// The incoming database `<db>__stg_incoming` and the maintenance connection that created
/// it (and drops it after a failure).
pub(super) struct Incoming {
    /// The maintenance connection.
    pub m: Maintenance,
    /// The live database's name.
    pub db: String,
    /// The incoming database's name.
    pub name: String,
    /// The load role, ready (from the prepare step on).
    pub load: Option<LoadRole>,
}

/// The stream is loaded and every table holds the rows the stream counted; the trailer is
/// not compared yet.
pub(super) struct Loaded {
    outcome: Outcome,
}

/// The stream matched its trailer (or had none, with `--accept-unverified`).
pub(super) struct Verified {
    outcome: Outcome,
}

impl Incoming {
    /// `CREATE DATABASE`.
    pub async fn create(&self, s: &mut Session<'_>, create: &str) -> anyhow::Result<()> {
        s.cancel
            .run(self.m.execute(create))
            .await
            .with_context(|| format!("while creating {}", self.name))
    }

    /// Runs the stream's items on the load's connections (closed when this returns), then
    /// checks the rows the server stored.
    pub async fn load(
        &self,
        s: &mut Session<'_>,
        mut events: mpsc::Receiver<Event>,
    ) -> anyhow::Result<Loaded> {
        let conn = s.config.conn.with_dbname(&self.name);
        let role = self.load.as_ref().context("internal error: no load role")?;
        let mut loader = self.connect_loader(s, &conn, role).await?;
        let cancel = s.cancel.clone();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let result = loop {
            let event = tokio::select! {
                event = events.recv() => event,
                name = cancel.wait() => return Err(interrupted(name)),
                _ = tick.tick() => {
                    s.line.show(&format!(
                        "loading {}: {} MiB, {} rows",
                        self.name,
                        s.progress.bytes.load(Ordering::Relaxed) >> 20,
                        s.progress.rows.load(Ordering::Relaxed)
                    ));
                    continue;
                }
            };
            match event {
                Some(Event::Items(items)) => {
                    let ran = cancel
                        .run(async {
                            for item in items {
                                loader.item(item).await?;
                            }
                            Ok(())
                        })
                        .await;
                    if let Err(err) = ran {
                        break Err(err);
                    }
                }
                Some(Event::End(Ok(outcome))) => {
                    break cancel.run(loader.finish()).await.map(|()| *outcome);
                }
                Some(Event::End(Err(err))) => {
                    // The stream broke or a statement was refused: an input problem; or its
                    // signature was refused.
                    return Err(changes::stream_refused(err));
                }
                Some(Event::Opened(_)) | None => {
                    anyhow::bail!("internal error: the stream reader stopped unexpectedly")
                }
            }
        };
        s.summary.jobs = loader.peak_jobs.max(1);
        s.summary.connections = loader.connections();
        s.summary.owners_reassigned += loader.owners_reassigned;
        s.summary.privileged_statements = loader.privileged_statements;
        s.summary
            .load_role_memberships
            .extend(loader.granted.iter().cloned());
        s.summary.tables.clone_from(&loader.tables);
        drop(loader);
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(err) if cancel.fired().is_some() => return Err(err),
            Err(err) => return Err(explain_failure(err, &mut events).await),
        };
        // What the server says, not what the statements said: no object of the stream's is
        // owned by a role that could act as a superuser.
        let privileged = &role.owners.privileged;
        let (objects, total) = s
            .cancel
            .run(async {
                let client = conn.connect_as("stg-restore").await?;
                load_role::privileged_objects(&client, privileged, 10).await
            })
            .await?;
        if total > 0 {
            return Err(Error::usage(format!(
                "{total} object(s) of the restored database are owned by a superuser or a role \
                 that can act as one: {}{}; nothing a stream restores may be",
                objects.join(", "),
                if total > 10 { ", ..." } else { "" }
            ))
            .into());
        }
        let summary = &mut s.summary;
        summary.format = Some(outcome.format);
        summary.bytes = outcome.counted.bytes;
        summary.compressed_bytes = outcome.compressed_bytes;
        summary.rows.clone_from(&outcome.counted.tables);
        summary.warnings.extend(outcome.warnings.iter().cloned());
        summary.signed_by.clone_from(&outcome.signed_by);
        summary.signature_checked = outcome.signature_checked;
        summary.verification = Verification {
            verified: outcome.verified(),
            sha256: Some(outcome.counted.sha256.clone()),
            trailer_sha256: outcome.stated.as_ref().map(|t| t.sha256.clone()),
            problems: outcome.mismatches.clone(),
        };
        // Every table the stream counted was stored with as many rows (a COPY checks its own
        // count as it ends; this catches a table counted but never loaded).
        for (table, rows) in &outcome.counted.tables {
            let stored = summary.tables.get(table).map_or(0, |t| t.rows_stored);
            if stored != *rows {
                summary.verification.problems.push(format!(
                    "table {table}: the stream has {rows} rows, the server stored {stored}"
                ));
            }
        }
        if outcome.stated.is_none() {
            if !summary.verification.problems.is_empty() {
                return Err(Error::usage(summary.verification.problems.join("; ")).into());
            }
            summary
                .verification
                .problems
                .push("unverified: the stream has no stg-dump manifest or trailer".into());
        }
        Ok(Loaded { outcome })
    }

    /// Opens the load's connections as the load role: its password is set for this run
    /// under the load role's lock, the connections opened, the password removed again,
    /// whatever happened meanwhile.
    async fn connect_loader(
        &self,
        s: &mut Session<'_>,
        conn: &Conn,
        role: &LoadRole,
    ) -> anyhow::Result<Loader> {
        let password = load_role::new_password()?;
        let client = self.m.client();
        s.cancel.run(load_role::lock(client, &role.name)).await?;
        let connect = Connect {
            load: conn.as_user(&role.name, &password),
            privileged: conn.clone(),
            owners: role.owners.clone(),
            check_foreign: !s.config.allowed.wrappers.is_empty(),
            wrappers: s.config.allowed.wrappers.clone(),
        };
        let jobs = s.config.jobs;
        let opened = s
            .cancel
            .run(async {
                load_role::open(client, &role.name, &password).await?;
                Loader::connect(connect, jobs).await.map_err(|e| {
                    if auth_failure(&e) {
                        load_role::login_refused(&e, conn, &role.name)
                    } else {
                        e
                    }
                })
            })
            .await;
        let closed = load_role::close(client, &role.name).await;
        let unlocked = load_role::unlock(client, &role.name).await;
        let loader = opened?;
        closed?;
        unlocked?;
        Ok(loader)
    }

    /// `VACUUM ANALYZE` on the incoming database.
    pub async fn analyze(&self, s: &mut Session<'_>) -> anyhow::Result<()> {
        let conn = s.config.conn.with_dbname(&self.name);
        s.cancel
            .run(async {
                let client = conn.connect().await?;
                client
                    .batch_execute("VACUUM ANALYZE")
                    .await
                    .context("while running VACUUM ANALYZE")?;
                Ok(())
            })
            .await
    }

    /// The baseline and the provenance, as the incoming database's comment (so they move
    /// with the rename).
    pub async fn record(
        &self,
        s: &mut Session<'_>,
        manifest: Option<&Manifest>,
        verified: &Verified,
    ) -> anyhow::Result<()> {
        let baseline = changes::baseline(s, self).await?;
        let outcome = &verified.outcome;
        let provenance = Provenance {
            stg_provenance: provenance::VERSION,
            source_host: manifest.map_or_else(String::new, |m| m.source_host.clone()),
            source_database: manifest.map_or_else(String::new, |m| m.database.clone()),
            dumped_at: manifest.map(|m| m.dumped_at.clone()),
            restored_at: timestamp::format(timestamp::now()),
            stream_sha256: outcome.verified().then(|| outcome.counted.sha256.clone()),
            verified: outcome.verified(),
            masking: manifest.map(|m| m.masking.clone()).unwrap_or_default(),
            restored_by: format!("stg-restore {}", env!("CARGO_PKG_VERSION")),
            signed_by: outcome
                .signature_checked
                .then(|| outcome.signed_by.clone())
                .flatten(),
        };
        s.cancel
            .run(
                self.m
                    .set_comment(&self.name, &provenance.to_comment_with(baseline.as_ref())),
            )
            .await
    }
}

impl Loaded {
    /// Compares what was read and stored with the stream's trailer.
    pub fn verify(self, s: &mut Session<'_>, incoming: &Incoming) -> anyhow::Result<Verified> {
        let verification = &mut s.summary.verification;
        if self.outcome.stated.is_some() && !verification.problems.is_empty() {
            verification.verified = false;
            return Err(Error::usage(format!(
                "the stream does not match its trailer: {}",
                verification.problems.join("; ")
            ))
            .into());
        }
        let counted = &self.outcome.counted;
        s.line.done(&format!(
            "loaded {}: {} bytes, {} rows",
            incoming.name,
            counted.bytes,
            counted.tables.values().sum::<u64>()
        ));
        Ok(Verified {
            outcome: self.outcome,
        })
    }
}

/// The load failed on the server. A damaged stream (corrupt data decodes to garbage before
/// the decoder notices; a changed byte can be bad SQL) is the likelier cause then, so the
/// rest of the stream is read for a few seconds: if it is bad, that is the error reported
/// (exit 2), with the server's message as the consequence.
async fn explain_failure(
    load_error: anyhow::Error,
    events: &mut mpsc::Receiver<Event>,
) -> anyhow::Error {
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.recv().await {
                Some(Event::Items(_)) => {}
                Some(Event::End(Err(err))) => return Some(err.0),
                Some(Event::End(Ok(outcome))) if !outcome.mismatches.is_empty() => {
                    return Some(format!(
                        "the stream does not match its trailer: {}",
                        outcome.mismatches.join("; ")
                    ))
                }
                _ => return None,
            }
        }
    })
    .await;
    match rest {
        Ok(Some(stream_error)) => Error::usage(format!(
            "{stream_error} (the load had stopped on the damaged data: {load_error:#})"
        ))
        .into(),
        _ => load_error,
    }
}

/// True when connecting failed because the server refused the login (SQLSTATE class 28:
/// no pg_hba.conf line lets the role in, or its password was refused).
fn auth_failure(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<tokio_postgres::Error>())
        .filter_map(tokio_postgres::Error::code)
        .any(|code| code.code().starts_with("28"))
}
