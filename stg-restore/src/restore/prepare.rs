//! The steps before anything exists on the server: `read` (the manifest decides the target
//! and how the database is created), `connect`, and `prepare` (the advisory lock, a
//! database left closed by an interrupted swap, `--if-unchanged` before the load, roles,
//! a leftover incoming database, the `CREATE DATABASE` statement).

use std::sync::Arc;

use anyhow::Context;
use stg_core::stream::Manifest;
use stg_core::Error;
use tokio::sync::mpsc;

use super::incoming::Incoming;
use super::{changes, reopened_warning, Session};
use crate::db::Maintenance;
use crate::load::{self, Event};
use crate::load_role;
use crate::reader::Options;
use crate::report::Source;
use crate::sql::{self, DbSettings};

/// The stream is open: its manifest (none for a plain `--accept-unverified` dump) and the
/// names it decided.
pub(super) struct Opened {
    events: mpsc::Receiver<Event>,
    manifest: Option<Manifest>,
    db: String,
    incoming: String,
}

/// Connected to the server, which is a staging server.
pub(super) struct Connected {
    opened: Opened,
    m: Maintenance,
}

/// Locked and checked: the incoming database is about to be created.
pub(super) struct Prepared {
    /// The database to create (not created yet).
    pub incoming: Incoming,
    /// Its `CREATE DATABASE` statement.
    pub create: String,
    /// The rest of the stream.
    pub events: mpsc::Receiver<Event>,
    /// The stream's manifest.
    pub manifest: Option<Manifest>,
}

impl Opened {
    /// Starts the reader and waits for the stream's first line.
    pub async fn read(s: &mut Session<'_>) -> anyhow::Result<Opened> {
        let options = Options {
            accept_unverified: s.config.accept_unverified,
            rename_database_to: s.config.db.as_deref().map(sql::incoming_name),
            max_line: s.config.max_line,
            allowed: s.config.allowed.clone(),
            trust: s.config.trust.clone(),
        };
        let mut events = load::spawn_reader(options, Arc::clone(&s.progress));
        let opened = s.cancel.run(async { Ok(events.recv().await) }).await?;
        let manifest = match opened {
            Some(Event::Opened(Ok(manifest))) => manifest.map(|m| *m),
            Some(Event::Opened(Err(err))) => return Err(changes::stream_refused(err)),
            _ => anyhow::bail!("internal error: the stream reader stopped unexpectedly"),
        };
        let db = match (&s.config.db, &manifest) {
            (Some(db), _) => db.clone(),
            (None, Some(m)) => {
                sql::check_target(&m.database, s.config.conn.dbname.as_str()).map_err(|e| {
                    Error::usage(format!(
                        "{e} (from the stream's manifest; use --dbname to choose another name)"
                    ))
                })?;
                m.database.clone()
            }
            (None, None) => unreachable!("--accept-unverified requires --dbname"),
        };
        let incoming = sql::incoming_name(&db);
        s.summary.database = Some(db.clone());
        s.summary.incoming = Some(incoming.clone());
        if let Some(m) = &manifest {
            s.summary.source = Some(Source {
                database: m.database.clone(),
                host: m.source_host.clone(),
                dumped_at: m.dumped_at.clone(),
                tool: m.tool.clone(),
            });
        }
        Ok(Opened {
            events,
            manifest,
            db,
            incoming,
        })
    }

    /// Connects to the maintenance database and makes sure the server is staging.
    pub async fn connect(self, s: &mut Session<'_>) -> anyhow::Result<Connected> {
        let conn = &s.config.conn;
        let m = s.cancel.run(Maintenance::connect(conn)).await?;
        m.require_staging_server(conn, &format!("restore into database {}", self.db))
            .await?;
        Ok(Connected { opened: self, m })
    }
}

impl Connected {
    /// The lock, a database left closed, `--if-unchanged` before the load (to save it when
    /// the answer is no), the roles the dump needs, the database's settings, a leftover
    /// incoming database.
    pub async fn prepare(self, s: &mut Session<'_>) -> anyhow::Result<Prepared> {
        let Connected { opened, m } = self;
        let db = opened.db.as_str();
        if !s.cancel.run(m.try_lock(db)).await? {
            let holder = m
                .lock_holder(db)
                .await
                .map(|pid| format!(" (server process {pid})"))
                .unwrap_or_default();
            return Err(Error::runtime(format!(
                "another stg-restore of {db} is running{holder}; try again when it has finished"
            ))
            .into());
        }
        if s.cancel.run(m.reopen(db)).await? {
            s.summary.warnings.push(reopened_warning(db));
        }
        let mut incoming = Incoming {
            m,
            db: opened.db.clone(),
            name: opened.incoming.clone(),
            load: None,
        };
        if s.config.if_unchanged {
            let step = s.step;
            s.step = super::Step::Check;
            changes::check(s, &incoming, false).await?;
            s.step = step;
        }
        let m = &incoming.m;
        let mut roles = Vec::new();
        let mut settings = if let Some(manifest) = &opened.manifest {
            roles.push(manifest.owner.clone());
            for role in &manifest.roles {
                if !role.eq_ignore_ascii_case("public") && !roles.contains(role) {
                    roles.push(role.clone());
                }
            }
            let missing = s.cancel.run(m.missing_roles(&roles)).await?;
            if !missing.is_empty() {
                return Err(Error::usage(format!(
                    "the dump needs role(s) that do not exist on this server: {}; create them \
                     (e.g. CREATE ROLE {} NOLOGIN) and restore again",
                    missing.join(", "),
                    sql::ident(&missing[0])
                ))
                .into());
            }
            DbSettings::from_manifest(manifest)
        } else {
            // A plain dump: the live database's settings, else template1's.
            let live = s.cancel.run(m.settings_of(db)).await?;
            if let Some(settings) = live {
                settings
            } else {
                let mut settings = s
                    .cancel
                    .run(m.settings_of("template1"))
                    .await?
                    .context("template1 is missing")?;
                settings.owner = m.current_user().await?;
                settings
            }
        };
        if !roles.contains(&settings.owner) {
            roles.push(settings.owner.clone());
        }
        if let (Some(_), Some(manifest), false) =
            (&s.config.trust, &opened.manifest, s.config.allow_older)
        {
            refuse_an_older_stream(m, db, manifest).await?;
        }
        // The role the stream's SQL runs as, and who owns what it gives a superuser.
        let load = s
            .cancel
            .run(load_role::prepare(
                m.client(),
                &s.config.load_role,
                s.config.owner.as_deref(),
                &roles,
            ))
            .await?;
        let owner = load.owners.owner_for(&settings.owner);
        if owner != settings.owner {
            s.summary.owners_reassigned += 1;
            settings.owner = owner;
        }
        s.summary.load_role = Some(load.name.clone());
        s.summary.load_role_memberships.clone_from(&load.granted);
        if load.created {
            s.summary.warnings.push(format!(
                "created the load role {} (LOGIN, nothing else)",
                load.name
            ));
        }
        let m = &incoming.m;
        let name = &incoming.name;
        if s.cancel.run(m.exists(name)).await? {
            s.cancel.run(m.drop_database(name)).await?;
            s.summary.warnings.push(format!(
                "dropped {name} left over by an earlier restore that did not finish"
            ));
        }
        let create =
            sql::create_database(name, &settings, m.server_version_num).map_err(Error::usage)?;
        incoming.load = Some(load);
        Ok(Prepared {
            incoming,
            create,
            events: opened.events,
            manifest: opened.manifest,
        })
    }
}

/// A signed stream older than the one the live database was restored from (their
/// manifests' `dumped_at`) is refused unless `--allow-older`: an old signed stream, replayed,
/// would turn back staging's data.
async fn refuse_an_older_stream(
    m: &Maintenance,
    db: &str,
    manifest: &Manifest,
) -> anyhow::Result<()> {
    let related = m.related(db).await?;
    let live = related
        .iter()
        .find(|d| d.kind == crate::db::Kind::Current)
        .and_then(|d| d.comment.as_deref())
        .and_then(stg_core::provenance::Provenance::from_comment);
    let Some(live_dumped) = live.and_then(|p| p.dumped_at) else {
        return Ok(());
    };
    let (Ok(live_at), Ok(this_at)) = (
        stg_core::timestamp::parse(&live_dumped),
        stg_core::timestamp::parse(&manifest.dumped_at),
    ) else {
        return Ok(());
    };
    if this_at < live_at {
        return Err(changes::Refused::new(format!(
            "the stream was dumped at {}, before the one {db} was restored from ({live_dumped}): \
             a signed stream older than the data in place is refused, so that an old one cannot \
             be replayed over newer data (--allow-older restores it anyway)",
            manifest.dumped_at
        ))
        .into());
    }
    Ok(())
}
