//! Loading: a reader thread decodes stdin, checks and splits it ([`crate::reader`],
//! [`crate::script`]) and hands [`Item`]s over a bounded channel; the [`Loader`] runs them
//! through its own `tokio-postgres` connections to the incoming database. No psql: nothing
//! in a stream is ever read by a program that runs meta-commands.
//!
//! How items run, in stream order:
//! - session settings (`SET`, `set_config`) are recorded and replayed on every connection
//!   before its next statement, so each statement sees the settings a serial load would;
//! - other statements run one at a time, after everything before them has finished;
//! - COPY blocks go to a free connection (`COPY ... FROM STDIN`), one table per
//!   connection, while the reader goes on; the server's row count (`COPY n`) is compared
//!   with the rows the stream carried;
//! - indexes and constraints ([`Class::Parallel`]) run beside other work that touches none
//!   of their tables; work on a table waits for earlier work on it, so a foreign key waits
//!   for the primary key it references, as in a serial load;
//! - pg_dump's `BEGIN; ... COMMIT;` around large-object writes runs on one connection.
//!
//! Statements are sent with the extended query protocol, one per message: the server
//! refuses a message with two statements, so a splitter that disagreed with the server
//! about where a statement ends could not smuggle a second one past [`crate::policy`].
//!
//! Each connection commits as it goes (`synchronous_commit = off`: a crash fails the
//! restore anyway). What is kept is decided only by the swap after verification: a failed
//! or killed load leaves an incoming database that is dropped now or by the next run.
//!
//! Memory: the reader's channel holds at most [`CHANNEL`] batches of about
//! [`crate::reader::CHUNK`] bytes, and the COPY in flight at most [`COPY_QUEUE`] chunks of
//! [`crate::script`]'s 128 KiB; with `--jobs N` there is still one COPY receiving at a time
//! (the stream is read in order), so the bound does not grow with N.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use futures_util::SinkExt;
use serde::Serialize;
use stg_core::conn::Conn;
use stg_core::stream::Manifest;
use stg_core::Error;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_postgres::Client;

use crate::load_role::Owners;
use crate::policy::Class;
use crate::reader::{Options, Outcome, Reader, StreamError, CHUNK};
use crate::script::{first_line, Item, Statement};

/// Batches of items the reader may be ahead of the loader.
pub const CHANNEL: usize = 8;
/// Data chunks queued for the COPY in flight.
pub const COPY_QUEUE: usize = 4;

/// What the reader thread sends.
pub enum Event {
    /// The first line was read: the manifest (or `None` for an accepted plain stream).
    Opened(Result<Option<Box<Manifest>>, StreamError>),
    /// Checked items, in stream order.
    Items(Vec<Item>),
    /// The stream ended (or failed, or a statement was refused).
    End(Result<Box<Outcome>, StreamError>),
}

/// Progress counters the reader thread updates.
#[derive(Default)]
pub struct Progress {
    /// Decoded bytes so far.
    pub bytes: AtomicU64,
    /// COPY rows so far.
    pub rows: AtomicU64,
}

/// Starts the reader thread on stdin. A plain thread, not a Tokio blocking task: when the
/// restore gives up while the thread waits on stdin, the process exits without it.
pub fn spawn_reader(options: Options, progress: Arc<Progress>) -> mpsc::Receiver<Event> {
    let (tx, rx) = mpsc::channel(CHANNEL);
    std::thread::spawn(move || {
        let mut reader = match Reader::open(std::io::stdin(), options) {
            Ok(reader) => {
                let manifest = reader.manifest().cloned().map(Box::new);
                if tx.blocking_send(Event::Opened(Ok(manifest))).is_err() {
                    return;
                }
                reader
            }
            Err(err) => {
                let _ = tx.blocking_send(Event::Opened(Err(err)));
                return;
            }
        };
        loop {
            let mut items = Vec::new();
            let filled = reader.fill(&mut items, CHUNK);
            progress.bytes.store(reader.bytes(), Ordering::Relaxed);
            progress.rows.store(reader.rows(), Ordering::Relaxed);
            // Items before an error are sent first: they ran before the refused statement
            // in a serial load too, and nothing after it runs.
            if !items.is_empty() && tx.blocking_send(Event::Items(items)).is_err() {
                return;
            }
            match filled {
                Ok(true) => {}
                Ok(false) => {
                    let _ = tx.blocking_send(Event::End(Ok(Box::new(reader.finish()))));
                    return;
                }
                Err(err) => {
                    let _ = tx.blocking_send(Event::End(Err(err)));
                    return;
                }
            }
        }
    });
    rx
}

/// Rows of one table: what the stream carried and what the server stored.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct TableRows {
    /// Data lines in the stream's COPY block(s) for the table.
    pub rows_sent: u64,
    /// Rows the server reported for those COPYs (`COPY n`).
    pub rows_stored: u64,
}

/// One connection to the incoming database.
struct Worker {
    client: Client,
    /// The settings version it has applied.
    version: u64,
}

/// The session settings recorded so far, as statements in stream order.
#[derive(Default)]
struct Settings {
    list: Vec<(String, String)>,
    version: u64,
    snapshot: Arc<Vec<String>>,
}

impl Settings {
    fn set(&mut self, key: String, sql: String) {
        match self.list.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = sql,
            None => self.list.push((key, sql)),
        }
        self.version += 1;
        self.snapshot = Arc::new(self.list.iter().map(|(_, s)| s.clone()).collect());
    }
}

impl Worker {
    /// Replays the settings when they changed since this connection last ran something.
    async fn sync(&mut self, version: u64, settings: &[String]) -> anyhow::Result<()> {
        if self.version != version {
            for sql in settings {
                self.client
                    .query_typed(sql, &[])
                    .await
                    .with_context(|| format!("while replaying the setting {}", first_line(sql)))?;
            }
            self.version = version;
        }
        Ok(())
    }

    async fn run(&mut self, statement: &Statement) -> anyhow::Result<()> {
        self.client
            .query_typed(&statement.sql, &[])
            .await
            .map(drop)
            .map_err(|e| statement_error(statement.line, &statement.sql, &e))
    }
}

/// A server error on a statement, naming its line and start.
fn statement_error(line: u64, sql: &str, err: &tokio_postgres::Error) -> anyhow::Error {
    let message = err
        .as_db_error()
        .map_or_else(|| err.to_string(), |db| db.message().to_owned());
    Error::runtime(format!(
        "line {line}: the server refused `{}`: {message}",
        first_line(sql)
    ))
    .into()
}

/// What a finished job did.
enum Done {
    Statement,
    Copy {
        table: String,
        sent: u64,
        stored: u64,
        line: u64,
    },
}

/// A job's result: its connection back, the tables it held, what it did.
type JobResult = (Worker, Vec<String>, anyhow::Result<Done>);

/// A message to the COPY in flight.
enum CopyMsg {
    Data(Vec<u8>),
    End(u64),
}

/// How the load connects: the stream's SQL as the load role, a few allowed statements
/// ([`Class::Privileged`]) on stg-restore's own privileged connection.
pub struct Connect {
    /// The incoming database, as the load role (with its password for this run).
    pub load: Conn,
    /// The incoming database, as stg-restore's own (privileged) user.
    pub privileged: Conn,
    /// Who owns what the stream gives to a privileged role.
    pub owners: Owners,
    /// Ask the server, before each COPY, whether its table is or routes rows to a foreign
    /// table (only where the operator allowed a foreign-data wrapper: otherwise a stream
    /// cannot make one).
    pub check_foreign: bool,
    /// Foreign-data wrappers the operator allowed (`--allow-foreign-data-wrapper`): the
    /// load role may use them once their extension exists.
    pub wrappers: Vec<String>,
}

/// Runs the items of one stream on up to `jobs` connections.
pub struct Loader {
    conn: Conn,
    privileged_conn: Conn,
    /// The privileged connection to the incoming database, once one is needed.
    privileged: Option<Worker>,
    owners: Owners,
    /// Objects (or default privileges) the stream gave a privileged role, given to the
    /// replacement owner instead.
    pub owners_reassigned: u64,
    /// Statements run on the privileged connection.
    pub privileged_statements: u64,
    /// Roles the load role is known to be a member of (or made one of).
    members: std::collections::HashSet<String>,
    /// Roles the load role was made a member of during the load.
    pub granted: Vec<String>,
    jobs: usize,
    opened: usize,
    idle: Vec<Worker>,
    running: JoinSet<JobResult>,
    /// Tables held by running jobs.
    busy: HashMap<String, usize>,
    settings: Settings,
    /// The connection inside a stream's `BEGIN`.
    in_transaction: Option<Worker>,
    /// The COPY receiving data (or whose block just ended, see [`OpenCopy`]).
    copy: Option<OpenCopy>,
    /// Rows per table.
    pub tables: BTreeMap<String, TableRows>,
    /// The most connections that ran work at once.
    pub peak_jobs: usize,
    /// See [`Connect::check_foreign`].
    check_foreign: bool,
    /// See [`Connect::wrappers`].
    wrappers: Vec<String>,
}

impl Loader {
    /// Opens all `jobs` connections to the incoming database as the load role at once (its
    /// password is valid only while they are opened: [`crate::load_role`]). With
    /// `check_foreign`, a COPY into a foreign table, or into a partitioned table with a
    /// foreign partition, is refused before it starts.
    pub async fn connect(connect: Connect, jobs: usize) -> anyhow::Result<Loader> {
        let Connect {
            load,
            privileged,
            owners,
            check_foreign,
            wrappers,
        } = connect;
        let mut loader = Loader {
            conn: load,
            privileged_conn: privileged,
            privileged: None,
            owners,
            owners_reassigned: 0,
            privileged_statements: 0,
            members: std::collections::HashSet::new(),
            granted: Vec::new(),
            jobs: jobs.max(1),
            opened: 0,
            idle: Vec::new(),
            running: JoinSet::new(),
            busy: HashMap::new(),
            settings: Settings::default(),
            in_transaction: None,
            copy: None,
            tables: BTreeMap::new(),
            peak_jobs: 0,
            check_foreign,
            wrappers,
        };
        while loader.opened < loader.jobs {
            let worker = loader.open().await?;
            loader.idle.push(worker);
        }
        Ok(loader)
    }

    async fn open(&mut self) -> anyhow::Result<Worker> {
        let client = self.conn.connect_as("stg-restore").await?;
        // Loads commit often; a crash fails the restore anyway, and the swap commits
        // durably after all of it (WAL is flushed in order).
        // See: https://www.postgresql.org/docs/current/wal-async-commit.html
        client
            .batch_execute("SET synchronous_commit = off; SET standard_conforming_strings = on")
            .await
            .context("while setting up a load connection")?;
        // No trigger of the stream's exists while its data loads (the splitter refuses a
        // COPY block after one is made: crate::policy); a replica's session would not fire
        // them either, but only a superuser may set that, and the load role is none.
        self.opened += 1;
        Ok(Worker { client, version: 0 })
    }

    /// A free connection: an idle one, a new one while fewer than `jobs` are open, or the
    /// next to finish.
    async fn worker(&mut self) -> anyhow::Result<Worker> {
        loop {
            if let Some(w) = self.idle.pop() {
                return Ok(w);
            }
            if self.opened < self.jobs {
                return self.open().await;
            }
            self.join_one().await?;
        }
    }

    /// Waits for one running job; its failure is the load's.
    async fn join_one(&mut self) -> anyhow::Result<()> {
        let Some(joined) = self.running.join_next().await else {
            return Ok(());
        };
        let (worker, tables, result) = joined.context("internal error: a load job panicked")?;
        for table in tables {
            if let Some(n) = self.busy.get_mut(&table) {
                *n -= 1;
                if *n == 0 {
                    self.busy.remove(&table);
                }
            }
        }
        match result? {
            Done::Statement => {}
            Done::Copy {
                table,
                sent,
                stored,
                line,
            } => {
                if sent != stored {
                    return Err(Error::usage(format!(
                        "line {line}: the server stored {stored} rows of {table}, the stream \
                         carried {sent}"
                    ))
                    .into());
                }
                let rows = self.tables.entry(table).or_default();
                rows.rows_sent += sent;
                rows.rows_stored += stored;
            }
        }
        self.idle.push(worker);
        Ok(())
    }

    /// Waits until nothing runs.
    async fn barrier(&mut self) -> anyhow::Result<()> {
        while !self.running.is_empty() {
            self.join_one().await?;
        }
        Ok(())
    }

    /// Waits until no running job holds any of `tables`.
    async fn wait_for_tables(&mut self, tables: &[String]) -> anyhow::Result<()> {
        while tables.iter().any(|t| self.busy.contains_key(t)) {
            self.join_one().await?;
        }
        Ok(())
    }

    fn spawn(
        &mut self,
        tables: &[String],
        job: impl std::future::Future<Output = JobResult> + Send + 'static,
    ) {
        for table in tables {
            *self.busy.entry(table.clone()).or_default() += 1;
        }
        self.running.spawn(job);
        self.peak_jobs = self.peak_jobs.max(self.running.len());
    }

    /// Ends the COPY whose block ended, if any: the server counts its rows.
    async fn end_copy(&mut self) -> anyhow::Result<()> {
        if let Some(open) = self.copy.take() {
            if open.ended && open.tx.send(CopyMsg::End(open.rows)).await.is_err() {
                self.barrier().await?;
            }
        }
        Ok(())
    }

    /// Runs one item (or starts it, for parallel work).
    pub async fn item(&mut self, item: Item) -> anyhow::Result<()> {
        if let (Some(open), Item::CopyBegin { header, .. }) = (&mut self.copy, &item) {
            if open.ended && open.key == copy_key(header) {
                // The same table and columns again right after its block ended: stg-dump
                // cut a long block where a signature line sits. The rows go on in the same
                // COPY, as if the block had not been cut.
                open.ended = false;
                return Ok(());
            }
        }
        if !matches!(item, Item::CopyData(_) | Item::CopyEnd { .. }) {
            self.end_copy().await?;
        }
        match item {
            Item::Statement(statement) => self.statement(statement).await,
            Item::CopyBegin { line, header } => {
                if self.in_transaction.is_some() {
                    return Err(Error::usage(format!(
                        "line {line}: a COPY block inside the stream's BEGIN ... COMMIT, which \
                         pg_dump never writes"
                    ))
                    .into());
                }
                let table = header.qualified.clone();
                self.wait_for_tables(std::slice::from_ref(&table)).await?;
                let worker = self.worker().await?;
                let sql = crate::script::copy_statement(&header);
                let (tx, rx) = mpsc::channel(COPY_QUEUE);
                self.copy = Some(OpenCopy {
                    tx,
                    key: copy_key(&header),
                    rows: 0,
                    ended: false,
                });
                let version = self.settings.version;
                let settings = Arc::clone(&self.settings.snapshot);
                let held = vec![table.clone()];
                let job = CopyJob {
                    sql,
                    table,
                    line,
                    check_foreign: self.check_foreign,
                };
                self.spawn(
                    &held.clone(),
                    copy_job(worker, held, version, settings, job, rx),
                );
                Ok(())
            }
            Item::CopyData(data) => {
                let Some(open) = self.copy.as_ref().filter(|c| !c.ended) else {
                    anyhow::bail!("internal error: COPY data outside a COPY block");
                };
                if open.tx.send(CopyMsg::Data(data)).await.is_err() {
                    // The COPY stopped: its job says why.
                    self.copy = None;
                    self.barrier().await?;
                    anyhow::bail!("internal error: a COPY stopped without an error");
                }
                Ok(())
            }
            Item::CopyEnd { rows } => {
                // Ended at the next item, unless it starts the same block again.
                if let Some(open) = &mut self.copy {
                    open.rows += rows;
                    open.ended = true;
                }
                Ok(())
            }
        }
    }

    /// The privileged connection to the incoming database, opened when first needed.
    async fn privileged(&mut self) -> anyhow::Result<&mut Worker> {
        if self.privileged.is_none() {
            let client = self.privileged_conn.connect_as("stg-restore").await?;
            // Nothing of the stream's settings: an extension's scripts set their own search
            // path, and none of the stream's objects is on it.
            client
                .batch_execute("SET standard_conforming_strings = on; SET search_path = ''")
                .await
                .context("while setting up the privileged connection")?;
            self.privileged = Some(Worker { client, version: 0 });
        }
        Ok(self.privileged.as_mut().expect("just opened"))
    }

    async fn statement(&mut self, mut statement: Statement) -> anyhow::Result<()> {
        self.owners_reassigned += self.owners.rewrite(&mut statement);
        for role in statement
            .owners
            .iter()
            .map(|r| r.name.clone())
            .collect::<Vec<_>>()
        {
            if self.members.contains(&role) {
                continue;
            }
            let owners = self.owners.clone();
            let w = self.privileged().await?;
            if crate::load_role::ensure_member(&w.client, &owners, &role).await? {
                self.granted.push(role.clone());
            }
            self.members.insert(role);
        }
        match &statement.class {
            Class::Setting { key } => {
                self.settings.set(key.clone(), statement.sql.clone());
                if let Some(w) = &mut self.in_transaction {
                    let (version, settings) =
                        (self.settings.version, Arc::clone(&self.settings.snapshot));
                    w.sync(version, &settings).await?;
                }
                Ok(())
            }
            Class::Begin => {
                if self.in_transaction.is_some() {
                    return Err(Error::usage(format!(
                        "line {}: BEGIN inside the stream's BEGIN",
                        statement.line
                    ))
                    .into());
                }
                self.barrier().await?;
                let mut w = self.worker().await?;
                w.sync(self.settings.version, &Arc::clone(&self.settings.snapshot))
                    .await?;
                w.run(&statement).await?;
                self.in_transaction = Some(w);
                Ok(())
            }
            Class::Commit => {
                let Some(mut w) = self.in_transaction.take() else {
                    return Err(Error::usage(format!(
                        "line {}: COMMIT without the stream's BEGIN",
                        statement.line
                    ))
                    .into());
                };
                w.run(&statement).await?;
                self.idle.push(w);
                Ok(())
            }
            _ if self.in_transaction.is_some() => {
                let w = self.in_transaction.as_mut().expect("checked");
                w.run(&statement).await
            }
            Class::Parallel { tables } if self.jobs > 1 => {
                let tables = tables.clone();
                self.wait_for_tables(&tables).await?;
                let worker = self.worker().await?;
                let version = self.settings.version;
                let settings = Arc::clone(&self.settings.snapshot);
                self.spawn(
                    &tables.clone(),
                    statement_job(worker, tables, version, settings, statement),
                );
                Ok(())
            }
            Class::Privileged | Class::Owner => {
                self.barrier().await?;
                self.privileged_statements += 1;
                let load_role = self.owners.load_role.clone();
                let wrappers = self.wrappers.clone();
                let w = self.privileged().await?;
                w.run(&statement).await?;
                if !wrappers.is_empty() && statement.class == Class::Privileged {
                    // A wrapper the operator allowed, just made by its extension: the load
                    // role may use it (its servers carry no options: crate::policy).
                    let made = w
                        .client
                        .query(
                            "SELECT fdwname::text FROM pg_catalog.pg_foreign_data_wrapper \
                             WHERE fdwname = ANY ($1)",
                            &[&wrappers],
                        )
                        .await
                        .context("while looking up the allowed foreign-data wrappers")?;
                    for row in made {
                        let fdw: &str = row.get(0);
                        w.client
                            .batch_execute(&format!(
                                "GRANT USAGE ON FOREIGN DATA WRAPPER {} TO {}",
                                crate::sql::ident(fdw),
                                crate::sql::ident(&load_role)
                            ))
                            .await
                            .with_context(|| format!("while letting the load role use {fdw}"))?;
                    }
                }
                Ok(())
            }
            Class::EventTrigger => Err(anyhow::anyhow!(
                "internal error: an event-trigger statement reached the loader"
            )),
            Class::Parallel { .. } | Class::Serial | Class::Deferred => {
                self.barrier().await?;
                let mut w = self.worker().await?;
                let result = async {
                    w.sync(self.settings.version, &self.settings.snapshot)
                        .await?;
                    w.run(&statement).await
                }
                .await;
                self.idle.push(w);
                result
            }
        }
    }

    /// After the last item: waits for everything, and checks the stream's transaction
    /// was closed.
    pub async fn finish(&mut self) -> anyhow::Result<()> {
        self.end_copy().await?;
        self.barrier().await?;
        if self.in_transaction.is_some() {
            return Err(Error::usage(
                "the stream ends inside its own BEGIN without COMMIT".to_owned(),
            )
            .into());
        }
        Ok(())
    }

    /// Connections opened so far.
    pub fn connections(&self) -> usize {
        self.opened
    }
}

async fn statement_job(
    mut w: Worker,
    tables: Vec<String>,
    version: u64,
    settings: Arc<Vec<String>>,
    statement: Statement,
) -> JobResult {
    let result = async {
        w.sync(version, &settings).await?;
        w.run(&statement).await?;
        Ok(Done::Statement)
    }
    .await;
    (w, tables, result)
}

/// One COPY block to load.
struct CopyJob {
    /// `COPY table (columns) FROM STDIN`.
    sql: String,
    /// The table, as the header names it.
    table: String,
    /// The header's line.
    line: u64,
    /// Refuse a foreign table first ([`Loader::connect`]).
    check_foreign: bool,
}

/// The COPY a block of the stream goes to. A block that ends stays open until the next
/// item shows whether the same table and columns start again (a block cut by stg-dump at
/// a signature line), so a long table is one COPY, not one per part.
struct OpenCopy {
    tx: mpsc::Sender<CopyMsg>,
    /// The table and columns, as [`copy_key`] writes them.
    key: String,
    /// Rows of the blocks ended so far in this COPY.
    rows: u64,
    /// Its last block ended: the next item decides.
    ended: bool,
}

/// What makes two COPY blocks one: the table as written and the columns.
fn copy_key(header: &stg_core::copy_text::CopyHeader) -> String {
    format!("{}\0{}", header.qualified, header.columns.join("\0"))
}

/// True when `table` is a foreign table or a partitioned table with a foreign partition
/// at any level (a COPY into it would write through the foreign-data wrapper).
async fn is_foreign(client: &Client, table: &str) -> anyhow::Result<bool> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_partition_tree($1::text::regclass) p \
             JOIN pg_catalog.pg_class c ON c.oid = p.relid WHERE c.relkind = 'f') \
             OR (SELECT relkind = 'f' FROM pg_catalog.pg_class WHERE oid = $1::text::regclass)",
            &[&table],
        )
        .await
        .with_context(|| format!("while checking whether {table} is a foreign table"))?;
    Ok(row.get::<_, Option<bool>>(0).unwrap_or(false))
}

async fn copy_job(
    mut w: Worker,
    tables: Vec<String>,
    version: u64,
    settings: Arc<Vec<String>>,
    job: CopyJob,
    mut rx: mpsc::Receiver<CopyMsg>,
) -> JobResult {
    let CopyJob {
        sql,
        table,
        line,
        check_foreign,
    } = job;
    let result = async {
        w.sync(version, &settings).await?;
        if check_foreign && is_foreign(&w.client, &table).await? {
            return Err(Error::usage(format!(
                "line {line}: a COPY block into {table} is refused: it is a foreign table, or \
                 a partitioned table with a foreign partition, and its rows would be written \
                 through the foreign-data wrapper to wherever its server points"
            ))
            .into());
        }
        let sink = w
            .client
            .copy_in::<_, bytes::Bytes>(&sql)
            .await
            .map_err(|e| statement_error(line, &sql, &e))?;
        let mut sink = std::pin::pin!(sink);
        while let Some(msg) = rx.recv().await {
            match msg {
                CopyMsg::Data(data) => {
                    if let Err(e) = sink.send(bytes::Bytes::from(data)).await {
                        return Err(statement_error(line, &sql, &e));
                    }
                }
                CopyMsg::End(sent) => {
                    let stored = sink
                        .as_mut()
                        .finish()
                        .await
                        .map_err(|e| statement_error(line, &sql, &e))?;
                    return Ok(Done::Copy {
                        table: table.clone(),
                        sent,
                        stored,
                        line,
                    });
                }
            }
        }
        // The loader gave up on this COPY (another failure); the data is not finished.
        anyhow::bail!("line {line}: the COPY into {table} was abandoned")
    }
    .await;
    (w, tables, result)
}
