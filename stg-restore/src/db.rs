//! The maintenance connection: everything stg-restore does to databases as objects
//! (advisory lock, role checks, create, comment, terminate sessions, the renaming swap,
//! drop), over one `tokio-postgres` session to the maintenance database (`postgres`).
//!
//! The swap is one transaction: `ALTER DATABASE ... RENAME` is transactional, and a new
//! connection to the live name waits on the database lock the rename holds, then finds the
//! new database under that name. The same transaction records in the retired database's
//! provenance when it was retired, and [`order`] puts kept copies in the one order that
//! prune, rollback and list all use. Not here: loading SQL (see [`crate::load`]).
//! See: <https://www.postgresql.org/docs/current/sql-alterdatabase.html>,
//! <https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-ADVISORY-LOCKS>.

use std::time::{Duration, Instant};

use anyhow::Context;
use stg_core::conn::Conn;
use stg_core::provenance::{self, Provenance, Role};
use stg_core::timestamp;
use tokio_postgres::Client;

use crate::sql::{ident, literal, DbSettings};

/// How long the swap waits for terminated sessions to go away.
pub const TERMINATE_TIMEOUT: Duration = Duration::from_secs(30);

/// The session to the maintenance database.
pub struct Maintenance {
    client: Client,
    /// How it connected (for a session in the incoming database, to clear what blocks
    /// dropping it).
    conn: Conn,
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
    /// For kept copies: when it was retired as far as can be told, and from what; `None`
    /// when that cannot be told (see [`order`]).
    pub retired: Option<Retired>,
    /// For kept copies: why its place in the order is not what its name says (a time in
    /// the future, a stamp that is no time), for the report and stderr.
    pub warning: Option<String>,
}

/// What a kept copy's place in the order comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderedBy {
    /// Its provenance's `restored_at`: it was retired some time after that (only a copy
    /// whose name stamp cannot be used falls back to it). Ranks below the others on a tie.
    RestoredAt,
    /// The stamp in its name: a copy retired before retire times were recorded, or one
    /// without provenance.
    NameStamp,
    /// The retire time the swap recorded in its provenance.
    RetiredAt,
}

/// When a kept copy was retired, as far as can be told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retired {
    /// The time, RFC 3339 UTC in whole seconds (so it sorts as text); never later than
    /// when the order was made.
    pub at: String,
    /// Where it comes from.
    pub by: OrderedBy,
}

/// `20261128T015426Z` -> `2026-11-28T01:54:26Z`; `None` for anything else.
pub fn stamp_to_rfc3339(stamp: &str) -> Option<String> {
    let b = stamp.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' || !digits(0..8) || !digits(9..15) {
        return None;
    }
    let text = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &stamp[0..4],
        &stamp[4..6],
        &stamp[6..8],
        &stamp[9..11],
        &stamp[11..13],
        &stamp[13..15]
    );
    timestamp::parse(&text).ok().map(|_| text)
}

impl DbInfo {
    /// Works out when this kept copy was retired, `now` by this host's clock (the one its
    /// name and retire time were made by): the retire time its provenance records, else the
    /// stamp in its name, else its provenance's restore time, each only when not later than
    /// now (a clock that was ahead, or a copy made by hand, must not outrank the copy just
    /// retired). Anything in the future, or a stamp that is no time, is said in
    /// [`DbInfo::warning`].
    fn place(&mut self, now: &str) {
        let comment = self.comment.as_deref();
        let recorded = comment.and_then(provenance::retired_at);
        let restored = comment
            .and_then(Provenance::from_comment)
            .map(|p| p.restored_at);
        let stamp = self.stamp.as_deref().unwrap_or_default();
        let mut notes = Vec::new();
        let mut usable = |text: Option<&str>, by: OrderedBy, what: &str| {
            let text = text?;
            let at = match by {
                OrderedBy::NameStamp => stamp_to_rfc3339(text),
                _ => timestamp::parse(text).ok().map(timestamp::format),
            };
            match at {
                None => notes.push(format!("{what} ({text}) is no time")),
                Some(at) if at.as_str() > now => {
                    notes.push(format!("{what} ({at}) is in the future (now is {now})"));
                }
                Some(at) => return Some(Retired { at, by }),
            }
            None
        };
        self.retired = usable(
            recorded.as_deref(),
            OrderedBy::RetiredAt,
            "the retire time in its provenance",
        )
        .or_else(|| usable(Some(stamp), OrderedBy::NameStamp, "the stamp in its name"))
        .or_else(|| {
            usable(
                restored.as_deref(),
                OrderedBy::RestoredAt,
                "the restore time in its provenance",
            )
        });
        if notes.is_empty() {
            return;
        }
        let outcome = match &self.retired {
            Some(Retired {
                at,
                by: OrderedBy::RetiredAt,
            }) => format!("it is ordered by the retire time its provenance records ({at})"),
            Some(Retired {
                at,
                by: OrderedBy::NameStamp,
            }) => format!("it is ordered by its name ({at})"),
            Some(Retired {
                at,
                by: OrderedBy::RestoredAt,
            }) => format!("it is ordered by its provenance's restore time ({at}), as retired then"),
            None => "its age is unknown: it is listed after the other kept copies, never \
                     pruned, and rolled back to only when no other copy is kept; drop it by \
                     hand (DROP DATABASE) when it is no longer needed"
                .to_owned(),
        };
        let why = if notes.iter().any(|n| n.contains("in the future")) {
            " (retired while the clock was ahead, or made by hand?)"
        } else {
            ""
        };
        self.warning = Some(format!(
            "kept copy {}: {}, so not used to order it{why}; {outcome}",
            self.name,
            notes.join("; ")
        ));
    }
}

/// Puts `dbs` in the one order of kept copies, which prune, rollback and list all use: the
/// live database first, then the kept copies newest first by [`DbInfo::retired`] (worked
/// out against `now`, RFC 3339 UTC in whole seconds; on equal times, a recorded retire time before a name's stamp before
/// a restore time, then by name), then the copies whose age is unknown (by name), then an
/// incoming database.
pub fn order(dbs: &mut [DbInfo], now: &str) {
    for d in dbs.iter_mut() {
        if d.kind == Kind::Previous {
            d.place(now);
        }
    }
    let rank = |d: &DbInfo| match (&d.kind, &d.retired) {
        (Kind::Current, _) => 0,
        (Kind::Previous, Some(_)) => 1,
        (Kind::Previous, None) => 2,
        (Kind::Incoming, _) => 3,
    };
    dbs.sort_by(|a, b| {
        rank(a)
            .cmp(&rank(b))
            .then_with(|| {
                let key = |d: &DbInfo| d.retired.as_ref().map(|r| (r.at.clone(), r.by));
                key(b).cmp(&key(a))
            })
            .then_with(|| b.name.cmp(&a.name))
    });
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
            conn: conn.clone(),
            server_version_num: row.get(0),
        })
    }

    /// The session, for the load role's set-up ([`crate::load_role`]).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// How it connected.
    pub fn conn(&self) -> &Conn {
        &self.conn
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
        let dropped = self.drop_now(name).await;
        if dropped.is_ok() || !self.exists(name).await.unwrap_or(true) {
            return dropped;
        }
        // Something in it outlives its sessions: clear that and try again.
        self.clear_blockers(name)
            .await
            .with_context(|| format!("while clearing what keeps {name} from being dropped"))?;
        self.drop_now(name).await
    }

    async fn drop_now(&self, name: &str) -> anyhow::Result<()> {
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

    /// What makes a database undroppable even after its sessions end, cleared from a
    /// session in it: its subscriptions (disabled, their slot forgotten on this side, so
    /// dropping one needs no publisher), its prepared transactions (rolled back) and its
    /// replication slots (dropped). Only for the incoming database, which nothing but the
    /// stream's load ever used. See: issue 26, finding 5.
    async fn clear_blockers(&self, name: &str) -> anyhow::Result<()> {
        let client = self
            .conn
            .with_dbname(name)
            .connect_as("stg-restore")
            .await?;
        let subscriptions = client
            .query(
                "SELECT subname::text FROM pg_catalog.pg_subscription \
                 WHERE subdbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())",
                &[],
            )
            .await
            .context("while listing its subscriptions")?;
        for row in subscriptions {
            let sub = ident(row.get::<_, &str>(0));
            client
                .batch_execute(&format!(
                    "ALTER SUBSCRIPTION {sub} DISABLE; \
                     ALTER SUBSCRIPTION {sub} SET (slot_name = NONE); \
                     DROP SUBSCRIPTION {sub}"
                ))
                .await
                .with_context(|| format!("while dropping its subscription {sub}"))?;
        }
        let prepared = client
            .query(
                "SELECT gid FROM pg_catalog.pg_prepared_xacts WHERE database = current_database()",
                &[],
            )
            .await
            .context("while listing its prepared transactions")?;
        for row in prepared {
            let gid: String = row.get(0);
            client
                .batch_execute(&format!("ROLLBACK PREPARED {}", literal(&gid)))
                .await
                .with_context(|| format!("while rolling back its prepared transaction {gid}"))?;
        }
        client
            .execute(
                "SELECT pg_catalog.pg_drop_replication_slot(slot_name) \
                 FROM pg_catalog.pg_replication_slots WHERE database = current_database()",
                &[],
            )
            .await
            .context("while dropping its replication slots")?;
        Ok(())
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
    /// sessions on both. Both end up accepting connections. The same transaction records
    /// `retired_at` (RFC 3339 UTC) in the retired database's provenance and removes a retire
    /// time from the replacement's (a kept copy rolled back is live again). Returns the
    /// sessions terminated. On failure `live` is left as it was (connections allowed again).
    pub async fn swap(
        &mut self,
        live: &str,
        replacement: &str,
        retired: &str,
        retired_at: &str,
    ) -> anyhow::Result<u64> {
        let live_exists = self.exists(live).await?;
        if !live_exists {
            let terminated = self.end_sessions(&[replacement]).await?;
            let tx = self
                .client
                .transaction()
                .await
                .context("while starting the swap")?;
            tx.batch_execute(&format!(
                "ALTER DATABASE {} RENAME TO {}; ALTER DATABASE {} ALLOW_CONNECTIONS true",
                ident(replacement),
                ident(live),
                ident(live)
            ))
            .await
            .with_context(|| format!("while renaming {replacement} to {live}"))?;
            set_retired_at(&tx, live, None).await?;
            tx.commit().await.context("while committing the swap")?;
            return Ok(terminated);
        }
        self.execute(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS false",
            ident(live)
        ))
        .await?;
        let result = self
            .swap_blocked(live, replacement, retired, retired_at)
            .await;
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
        retired_at: &str,
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
                    set_retired_at(&tx, retired, Some(retired_at)).await?;
                    set_retired_at(&tx, live, None).await?;
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

    /// The live database `db`, its kept copies (newest first, see [`order`]) and a leftover
    /// incoming one.
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
                    retired: None,
                    warning: None,
                })
            })
            .collect();
        order(&mut out, &timestamp::format(timestamp::now()));
        Ok(out)
    }
}

/// Sets (or with `None` removes) the retire time in the provenance of database `name`,
/// inside the swap's transaction; a database without stg provenance is left alone. The
/// swap's renames already needed the rights a comment needs (owner or superuser).
async fn set_retired_at(
    tx: &tokio_postgres::Transaction<'_>,
    name: &str,
    at: Option<&str>,
) -> anyhow::Result<()> {
    let row = tx
        .query_opt(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .await
        .with_context(|| format!("while reading the comment of {name}"))?;
    let Some(comment) = row.and_then(|r| r.get::<_, Option<String>>(0)) else {
        return Ok(());
    };
    if at.is_none() && provenance::retired_at(&comment).is_none() {
        return Ok(());
    }
    if let Some(updated) = provenance::with_retired_at(&comment, at) {
        tx.batch_execute(&format!(
            "COMMENT ON DATABASE {} IS {}",
            ident(name),
            literal(&updated)
        ))
        .await
        .with_context(|| format!("while recording when {name} was retired"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-12-01T12:00:00Z";

    fn db(name: &str, comment: impl Into<Option<String>>) -> DbInfo {
        let (kind, stamp) = match provenance::role_of(name) {
            Role::Previous { stamp, .. } => (Kind::Previous, Some(stamp.to_owned())),
            Role::Incoming { .. } => (Kind::Incoming, None),
            Role::Live => (Kind::Current, None),
        };
        DbInfo {
            name: name.into(),
            kind,
            stamp,
            size_bytes: 0,
            allow_connections: true,
            comment: comment.into(),
            retired: None,
            warning: None,
        }
    }

    /// A provenance comment restored at `restored`, retired at `retired` if given.
    fn comment(restored: &str, retired: Option<&str>) -> String {
        let p = Provenance {
            stg_provenance: provenance::VERSION,
            source_host: "db01".into(),
            source_database: "fas2".into(),
            dumped_at: None,
            restored_at: restored.into(),
            stream_sha256: None,
            verified: true,
            masking: stg_core::stream::MaskingSummary::default(),
            restored_by: "stg-restore test".into(),
            signed_by: None,
        };
        let text = p.to_comment();
        match retired {
            Some(at) => provenance::with_retired_at(&text, Some(at)).unwrap(),
            None => text,
        }
    }

    fn ordered(mut dbs: Vec<DbInfo>) -> Vec<DbInfo> {
        order(&mut dbs, NOW);
        dbs
    }

    fn names(dbs: &[DbInfo]) -> Vec<&str> {
        dbs.iter().map(|d| d.name.as_str()).collect()
    }

    #[test]
    fn stamps_become_rfc3339() {
        assert_eq!(
            stamp_to_rfc3339("20261128T015426Z").as_deref(),
            Some("2026-11-28T01:54:26Z")
        );
        assert_eq!(stamp_to_rfc3339("20261328T015426Z"), None);
        assert_eq!(stamp_to_rfc3339("yesterday"), None);
    }

    #[test]
    fn kept_copies_go_newest_first_by_retire_time_then_name_stamp() {
        let dbs = ordered(vec![
            db("fas2__stg_incoming", None),
            db("fas2__stg_prev_20261101T000000Z", None),
            // Retired later than its name says (the recorded time wins).
            db(
                "fas2__stg_prev_20261020T000000Z",
                comment("2026-10-01T00:00:00Z", Some("2026-11-15T00:00:00Z")),
            ),
            db("fas2", comment("2026-11-20T00:00:00Z", None)),
            db("fas2__stg_prev_20261110T000000Z", None),
        ]);
        assert_eq!(
            names(&dbs),
            [
                "fas2",
                "fas2__stg_prev_20261020T000000Z",
                "fas2__stg_prev_20261110T000000Z",
                "fas2__stg_prev_20261101T000000Z",
                "fas2__stg_incoming",
            ]
        );
        assert_eq!(dbs[1].retired.as_ref().unwrap().by, OrderedBy::RetiredAt);
        assert_eq!(dbs[2].retired.as_ref().unwrap().by, OrderedBy::NameStamp);
        assert!(dbs.iter().all(|d| d.warning.is_none()));
    }

    #[test]
    fn a_time_in_the_future_is_not_used_and_is_warned_about() {
        let dbs = ordered(vec![
            // No provenance, named for the future: unknown age, last.
            db("fas2__stg_prev_20991231T235959Z", None),
            // Named for the future, with provenance: its restore time orders it.
            db(
                "fas2__stg_prev_20991230T000000Z",
                comment("2026-11-25T00:00:00Z", None),
            ),
            // A recorded retire time in the future: its (past) name orders it.
            db(
                "fas2__stg_prev_20261120T000000Z",
                comment("2026-11-01T00:00:00Z", Some("2099-01-01T00:00:00Z")),
            ),
            // Just retired.
            db(
                "fas2__stg_prev_20261201T115959Z",
                comment("2026-11-30T00:00:00Z", Some("2026-12-01T11:59:59Z")),
            ),
        ]);
        assert_eq!(
            names(&dbs),
            [
                "fas2__stg_prev_20261201T115959Z",
                "fas2__stg_prev_20991230T000000Z",
                "fas2__stg_prev_20261120T000000Z",
                "fas2__stg_prev_20991231T235959Z",
            ]
        );
        let by: Vec<Option<OrderedBy>> = dbs
            .iter()
            .map(|d| d.retired.as_ref().map(|r| r.by))
            .collect();
        assert_eq!(
            by,
            [
                Some(OrderedBy::RetiredAt),
                Some(OrderedBy::RestoredAt),
                Some(OrderedBy::NameStamp),
                None
            ]
        );
        assert!(dbs[0].warning.is_none());
        for d in &dbs[1..] {
            let warning = d.warning.as_deref().unwrap();
            assert!(
                warning.starts_with(&format!("kept copy {}: ", d.name))
                    && warning.contains("in the future"),
                "{warning}"
            );
        }
        assert!(dbs[3].warning.as_deref().unwrap().contains("never pruned"));
    }

    #[test]
    fn a_stamp_that_is_no_time_is_not_newest() {
        // Text order put "manual" after every digit: it was the newest.
        let dbs = ordered(vec![
            db("fas2__stg_prev_manual", None),
            db("fas2__stg_prev_20261101T000000Z", None),
        ]);
        assert_eq!(
            names(&dbs),
            ["fas2__stg_prev_20261101T000000Z", "fas2__stg_prev_manual"]
        );
        assert!(dbs[1].warning.as_deref().unwrap().contains("is no time"));
    }

    #[test]
    fn on_equal_times_a_recorded_retire_time_ranks_first() {
        let dbs = ordered(vec![
            db(
                "fas2__stg_prev_20991230T000000Z",
                comment("2026-11-01T00:00:00Z", None),
            ),
            db("fas2__stg_prev_20261101T000000Z", None),
            db(
                "fas2__stg_prev_20261001T000000Z",
                comment("2026-09-01T00:00:00Z", Some("2026-11-01T00:00:00Z")),
            ),
        ]);
        assert_eq!(
            names(&dbs),
            [
                "fas2__stg_prev_20261001T000000Z",
                "fas2__stg_prev_20261101T000000Z",
                "fas2__stg_prev_20991230T000000Z",
            ]
        );
    }
}
