//! The maintenance connection: everything stg-restore does to databases as objects
//! (advisory lock, role checks, create, comment, terminate sessions, the renaming swap,
//! drop), over one `tokio-postgres` session to the maintenance database (`postgres`).
//!
//! The swap is one transaction: `ALTER DATABASE ... RENAME` is transactional, and a new
//! connection to the live name waits on the database lock the rename holds, then finds the
//! new database under that name. Not here: loading SQL (psql does that, see
//! [`crate::load`]).
//! See: <https://www.postgresql.org/docs/current/sql-alterdatabase.html>,
//! <https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-ADVISORY-LOCKS>.

use std::time::{Duration, Instant};

use anyhow::Context;
use stg_core::conn::Conn;
use stg_core::provenance::{self, Role};
use tokio_postgres::Client;

use crate::sql::{ident, literal, DbSettings};

/// How long the swap waits for terminated sessions to go away.
pub const TERMINATE_TIMEOUT: Duration = Duration::from_secs(30);

/// The session to the maintenance database.
pub struct Maintenance {
    client: Client,
    /// `server_version_num` of the server.
    pub server_version_num: i32,
}

/// What a database is to the database being restored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The live database.
    Current,
    /// A kept previous copy.
    Previous,
    /// A load in progress, or left over by a killed run.
    Incoming,
}

/// One database related to a restore target.
#[derive(Clone, Debug)]
pub struct DbInfo {
    /// Its name.
    pub name: String,
    /// What it is.
    pub kind: Kind,
    /// For previous copies: the compact UTC stamp of the swap that retired it.
    pub stamp: Option<String>,
    /// `pg_database_size`.
    pub size_bytes: i64,
    /// `datallowconn`.
    pub allow_connections: bool,
    /// The database comment (provenance, when stg-restore wrote it).
    pub comment: Option<String>,
}

impl Maintenance {
    /// Connects to the maintenance database.
    pub async fn connect(conn: &Conn) -> anyhow::Result<Maintenance> {
        let client = conn.connect().await?;
        client
            .batch_execute(
                "SET standard_conforming_strings = on; SET application_name = 'stg-restore'",
            )
            .await
            .context("while setting up the maintenance session")?;
        let row = client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .await
            .context("while reading the server version")?;
        Ok(Maintenance {
            client,
            server_version_num: row.get(0),
        })
    }

    /// Refuses (usage error, exit 2) when the server itself says it is not staging: its
    /// `stg.environment` setting (a custom setting, `stg.environment = 'production'` in
    /// `postgresql.conf`) is set to anything but `staging`. Both the value this session sees
    /// and, where the role may read them (superuser, `pg_read_all_settings`), the
    /// configuration files' value are checked, so an `ALTER DATABASE/ROLE ... SET` cannot
    /// hide the file's mark. Unset means unmarked, which is allowed: the host's own file is
    /// the required check, this one catches a `-h` aimed at a production server from a
    /// staging host.
    pub async fn require_staging_server(&self, conn: &Conn, action: &str) -> anyhow::Result<()> {
        let row = self
            .client
            .query_one("SELECT current_setting('stg.environment', true)", &[])
            .await
            .context("while reading the server's stg.environment setting")?;
        let mut marks: Vec<Option<String>> = vec![row.get(0)];
        // Readable by privileged roles only; for others the session's value has to do.
        if let Ok(rows) = self
            .client
            .query(
                "SELECT setting FROM pg_file_settings WHERE name = 'stg.environment' AND applied",
                &[],
            )
            .await
        {
            marks.extend(rows.iter().map(|r| r.get::<_, Option<String>>(0)));
        }
        let refused = marks
            .iter()
            .flatten()
            .map(|m| m.trim())
            .find(|m| !m.is_empty() && *m != "staging");
        match refused {
            None => Ok(()),
            Some(other) => Err(stg_core::exit::Error::usage(format!(
                "refusing to {action}: the server {} is marked stg.environment = {}; \
                 only a server marked 'staging' or not marked at all is changed",
                conn.describe(),
                literal(other)
            ))
            .into()),
        }
    }

    /// Runs one utility statement.
    pub async fn execute(&self, sql: &str) -> anyhow::Result<()> {
        self.client
            .batch_execute(sql)
            .await
            .with_context(|| format!("while running: {sql}"))
    }

    /// Takes the session-level advisory lock for restores of `db` without waiting; false
    /// when another session holds it.
    pub async fn try_lock(&self, db: &str) -> anyhow::Result<bool> {
        let row = self
            .client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtext('stg-restore'), hashtext($1))",
                &[&db],
            )
            .await
            .context("while taking the advisory lock")?;
        Ok(row.get(0))
    }

    /// The backend pid holding the lock for `db`, for messages.
    pub async fn lock_holder(&self, db: &str) -> Option<i32> {
        let row = self
            .client
            .query_opt(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
                 AND objsubid = 2 AND classid = hashtext('stg-restore')::oid \
                 AND objid = hashtext($1)::oid LIMIT 1",
                &[&db],
            )
            .await
            .ok()??;
        Some(row.get(0))
    }

    /// True when a database of that name exists.
    pub async fn exists(&self, name: &str) -> anyhow::Result<bool> {
        let row = self
            .client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
                &[&name],
            )
            .await
            .context("while looking up a database")?;
        Ok(row.get(0))
    }

    /// The roles in `roles` that do not exist, in order.
    pub async fn missing_roles(&self, roles: &[String]) -> anyhow::Result<Vec<String>> {
        let rows = self
            .client
            .query(
                "SELECT r FROM unnest($1::text[]) WITH ORDINALITY AS u(r, n) \
                 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) ORDER BY n",
                &[&roles],
            )
            .await
            .context("while checking roles")?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// The creation settings of an existing database (owner, encoding, locale).
    pub async fn settings_of(&self, name: &str) -> anyhow::Result<Option<DbSettings>> {
        let provider = if self.server_version_num >= 150_000 {
            "d.datlocprovider::text"
        } else {
            "'c'::text"
        };
        let icu = if self.server_version_num >= 170_000 {
            "d.datlocale"
        } else if self.server_version_num >= 150_000 {
            "d.daticulocale"
        } else {
            "NULL::text"
        };
        let row = self
            .client
            .query_opt(
                &format!(
                    "SELECT pg_get_userbyid(d.datdba)::text, pg_encoding_to_char(d.encoding)::text, \
                     d.datcollate::text, d.datctype::text, {provider}, {icu}::text \
                     FROM pg_database d WHERE d.datname = $1"
                ),
                &[&name],
            )
            .await
            .context("while reading database settings")?;
        Ok(row.map(|r| DbSettings {
            owner: r.get(0),
            encoding: r.get(1),
            collate: r.get(2),
            ctype: r.get(3),
            provider: r.get(4),
            icu_locale: r.get(5),
        }))
    }

    /// Allows connections to `db` again when they are off, as a run killed between the
    /// swap's `ALLOW_CONNECTIONS false` and its commit leaves them. Call it under the lock:
    /// true when it had to.
    pub async fn reopen(&self, db: &str) -> anyhow::Result<bool> {
        let row = self
            .client
            .query_opt(
                "SELECT datallowconn FROM pg_database WHERE datname = $1",
                &[&db],
            )
            .await
            .context("while checking whether the database accepts connections")?;
        if row.is_some_and(|r| !r.get::<_, bool>(0)) {
            self.execute(&format!(
                "ALTER DATABASE {} ALLOW_CONNECTIONS true",
                ident(db)
            ))
            .await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// The user this session runs as.
    pub async fn current_user(&self) -> anyhow::Result<String> {
        let row = self
            .client
            .query_one("SELECT current_user::text", &[])
            .await?;
        Ok(row.get(0))
    }

    /// Drops a database if it exists, ending its sessions first.
    pub async fn drop_database(&self, name: &str) -> anyhow::Result<()> {
        if self.server_version_num >= 130_000 {
            self.execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                ident(name)
            ))
            .await
        } else {
            self.terminate(name).await?;
            self.execute(&format!("DROP DATABASE IF EXISTS {}", ident(name)))
                .await
        }
    }

    /// Drops a kept copy only when nobody uses it (`DROP DATABASE` without FORCE).
    pub async fn drop_if_unused(&self, name: &str) -> anyhow::Result<()> {
        self.execute(&format!("DROP DATABASE IF EXISTS {}", ident(name)))
            .await
    }

    /// Sets the database comment.
    pub async fn set_comment(&self, name: &str, comment: &str) -> anyhow::Result<()> {
        self.execute(&format!(
            "COMMENT ON DATABASE {} IS {}",
            ident(name),
            literal(comment)
        ))
        .await
    }

    /// Terminates every other session on `name`; returns how many were signalled.
    pub async fn terminate(&self, name: &str) -> anyhow::Result<u64> {
        let row = self
            .client
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&name],
            )
            .await
            .with_context(|| format!("while terminating the sessions on {name}"))?;
        Ok(row.get::<_, i64>(0).unsigned_abs())
    }

    /// Waits until no session of stg-restore's own (the load's, `--analyze`'s: named
    /// `stg-restore` or `stg` in `pg_stat_activity`) is connected to `name`; false when
    /// some still are after `timeout`. Others' sessions are not waited for. A session's write counters are
    /// all counted once it is gone from `pg_stat_activity` (it reports them on its way out,
    /// before it leaves the list).
    pub async fn wait_for_sessions_to_end(
        &self,
        name: &str,
        timeout: Duration,
    ) -> anyhow::Result<bool> {
        let started = Instant::now();
        loop {
            let row = self
                .client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
                     AND backend_type = 'client backend' AND pid <> pg_backend_pid() \
                     AND application_name IN ('stg-restore', 'stg')",
                    &[&name],
                )
                .await
                .with_context(|| format!("while waiting for the sessions on {name} to end"))?;
            if row.get::<_, i64>(0) == 0 {
                return Ok(true);
            }
            if started.elapsed() > timeout {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits, at most `timeout`, until every client session on `name` (but stg-restore's
    /// own) has been idle for longer than the server may keep a session's write counters
    /// unreported (10 s, PostgreSQL's `PGSTAT_IDLE_INTERVAL`; a busy session reports at
    /// most once a second). Returns how many sessions were still active or recently so.
    /// See: `src/backend/utils/activity/pgstat.c` (`pgstat_report_stat`).
    pub async fn wait_for_quiet(&self, name: &str, timeout: Duration) -> anyhow::Result<i64> {
        let started = Instant::now();
        loop {
            let row = self
                .client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
                     AND backend_type = 'client backend' AND pid <> pg_backend_pid() \
                     AND application_name <> 'stg-restore' \
                     AND (state IS DISTINCT FROM 'idle' \
                          OR state_change > now() - interval '11 seconds')",
                    &[&name],
                )
                .await
                .with_context(|| format!("while looking at the sessions on {name}"))?;
            let busy: i64 = row.get(0);
            if busy == 0 || started.elapsed() > timeout {
                return Ok(busy);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Terminates sessions on the databases until none is left or the timeout passes;
    /// returns how many were terminated in all.
    async fn end_sessions(&self, names: &[&str]) -> anyhow::Result<u64> {
        let started = Instant::now();
        let mut total = 0;
        loop {
            let mut signalled = 0;
            for name in names {
                signalled += self.terminate(name).await?;
            }
            if signalled == 0 {
                return Ok(total);
            }
            total += signalled;
            if started.elapsed() > TERMINATE_TIMEOUT {
                anyhow::bail!(
                    "sessions on {} did not end within {} s of pg_terminate_backend \
                     (ending other users' sessions needs superuser or pg_signal_backend)",
                    names.join(", "),
                    TERMINATE_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The swap: `live` (if it exists) becomes `retired`, `replacement` becomes `live`, in
    /// one transaction, after blocking new connections to `live` and terminating the
    /// sessions on both. Both end up accepting connections. Returns the sessions
    /// terminated. On failure `live` is left as it was (connections allowed again).
    pub async fn swap(
        &mut self,
        live: &str,
        replacement: &str,
        retired: &str,
    ) -> anyhow::Result<u64> {
        let live_exists = self.exists(live).await?;
        if !live_exists {
            let terminated = self.end_sessions(&[replacement]).await?;
            self.execute(&format!(
                "ALTER DATABASE {} RENAME TO {}; ALTER DATABASE {} ALLOW_CONNECTIONS true",
                ident(replacement),
                ident(live),
                ident(live)
            ))
            .await?;
            return Ok(terminated);
        }
        self.execute(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS false",
            ident(live)
        ))
        .await?;
        let result = self.swap_blocked(live, replacement, retired).await;
        if result.is_err() && self.exists(live).await.unwrap_or(false) {
            // Whatever failed, the live database must be usable again.
            let _ = self
                .execute(&format!(
                    "ALTER DATABASE {} ALLOW_CONNECTIONS true",
                    ident(live)
                ))
                .await;
        }
        result
    }

    async fn swap_blocked(
        &mut self,
        live: &str,
        replacement: &str,
        retired: &str,
    ) -> anyhow::Result<u64> {
        let mut terminated = 0;
        let mut attempt = 0;
        loop {
            attempt += 1;
            terminated += self.end_sessions(&[live, replacement]).await?;
            let tx = self
                .client
                .transaction()
                .await
                .context("while starting the swap")?;
            let renamed = tx
                .batch_execute(&format!(
                    "ALTER DATABASE {live_q} RENAME TO {retired_q}; \
                     ALTER DATABASE {replacement_q} RENAME TO {live_q}; \
                     ALTER DATABASE {retired_q} ALLOW_CONNECTIONS true; \
                     ALTER DATABASE {live_q} ALLOW_CONNECTIONS true",
                    live_q = ident(live),
                    retired_q = ident(retired),
                    replacement_q = ident(replacement),
                ))
                .await;
            match renamed {
                Ok(()) => {
                    tx.commit().await.context("while committing the swap")?;
                    return Ok(terminated);
                }
                Err(err) => {
                    drop(tx);
                    let in_use =
                        err.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE);
                    if !in_use || attempt >= 3 {
                        return Err(anyhow::Error::from(err).context(format!(
                            "while renaming {live} to {retired} and {replacement} to {live}"
                        )));
                    }
                }
            }
        }
    }

    /// The live database `db`, its kept copies (newest first) and a leftover incoming one.
    pub async fn related(&self, db: &str) -> anyhow::Result<Vec<DbInfo>> {
        let rows = self
            .client
            .query(
                "SELECT datname::text, datallowconn, shobj_description(oid, 'pg_database'), \
                 CASE WHEN has_database_privilege(oid, 'CONNECT') THEN pg_database_size(oid) ELSE -1 END \
                 FROM pg_database WHERE NOT datistemplate ORDER BY datname",
                &[],
            )
            .await
            .context("while listing databases")?;
        let mut out: Vec<DbInfo> = rows
            .iter()
            .filter_map(|r| {
                let name: String = r.get(0);
                let (kind, stamp) = match provenance::role_of(&name) {
                    Role::Live if name == db => (Kind::Current, None),
                    Role::Incoming { base } if base == db => (Kind::Incoming, None),
                    Role::Previous { base, stamp } if base == db => {
                        (Kind::Previous, Some(stamp.to_owned()))
                    }
                    _ => return None,
                };
                Some(DbInfo {
                    name: name.clone(),
                    kind,
                    stamp,
                    allow_connections: r.get(1),
                    comment: r.get(2),
                    size_bytes: r.get(3),
                })
            })
            .collect();
        out.sort_by(|a, b| {
            let rank = |d: &DbInfo| match d.kind {
                Kind::Current => 0,
                Kind::Previous => 1,
                Kind::Incoming => 2,
            };
            rank(a).cmp(&rank(b)).then_with(|| b.stamp.cmp(&a.stamp))
        });
        Ok(out)
    }
}
