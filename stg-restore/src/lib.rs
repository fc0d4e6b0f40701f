//! `stg-restore`: a stg-dump stream into a fresh staging database, verified, swapped in
//! atomically, the previous copy kept (man page: `docs/stg-restore.md`).
//!
//! The flow: parse flags ([`Cli`]) into a validated [`Config`] (the format and the
//! [`Action`]), refuse on a host that is not staging (before stdin is read or a server is
//! contacted), then run one command:
//! restore ([`restore`]), `verify` ([`verify`]), `list` ([`list`]) or `rollback`
//! ([`rollback`]). The stream is read by [`reader`], checked and split by [`script`] and [`policy`], loaded
//! through the tool's own connections by [`load`], and
//! the databases are created, swapped and dropped by [`db`].

pub mod db;
pub mod decode;
pub mod hooks;
pub mod list;
pub mod load;
pub mod load_role;
pub mod policy;
pub mod reader;
pub mod report;
pub mod restore;
pub mod rollback;
pub mod script;
pub mod signals;
pub mod signers;
pub mod sql;
pub mod verify;

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use stg_core::conn::{Conn, ConnArgs};
use stg_core::format::Format;
use stg_core::{bail_usage, exit, Error};

/// The most `--jobs` accepted (each is a server connection and a backend process).
pub const MAX_JOBS: usize = 64;

/// Exit statuses for errors (see [`stg_core::exit`]).
pub const EXIT_CODES: exit::Codes = exit::Codes::STANDARD;

const AFTER_HELP: &str = "\
Examples:
  stg-dump fas2 | ssh db02.stg stg-restore          # target name from the manifest
  stg-restore -d fas2 --pre-hook 'ssh fas01.stg systemctl stop httpd' \\
              --post-hook 'ssh fas01.stg systemctl start httpd' < fas2.stg.xz
  stg-restore verify < fas2.stg.xz                  # integrity only, touches no database
  stg-restore --if-unchanged --notify 'mail -s fas2-sync infra@example.org' < fas2.stg.zst
  stg-restore list fas2                             # current and kept copies, with provenance
  stg-restore -h db02 list fas2                     # connection flags before or after the command
  stg-restore rollback fas2                         # swap the newest kept copy back in

Restore and rollback refuse unless this host is staging: STG_ENVIRONMENT_FILE (default
/etc/stg/environment) must say `staging`. They also refuse a server whose setting
stg.environment is set to anything but 'staging' (mark production servers in postgresql.conf).
Before replacing a database, a restore reports its local changes since the last sync (rows
inserted, updated, deleted per table, from the server's statistics) on stderr and in the
report, or unknown when the statistics cannot be trusted.
Exit status: 0 ok; 1 `verify` found the stream bad, or --if-unchanged refused; 2 usage or input error (not a staging
host or server, bad flags, a bad stream: truncated, corrupt, checksum or row-count mismatch, missing
roles, a refused statement); 3 runtime failure (server or SQL error, hook failed, another restore running,
interrupted by a signal).
Environment: PGHOST PGPORT PGUSER PGPASSWORD PGPASSFILE PGSSLMODE PGSSLROOTCERT PGSSLCERT
PGSSLKEY, STG_ENVIRONMENT_FILE.
See docs/stg-restore.md.";

/// Load a stg-dump stream from stdin into a fresh staging database, verify it, and swap it
/// in for the current one, keeping the previous copy.
///
/// The stream is loaded into `<db>__stg_incoming`; only when its checksum and row counts
/// match the trailer is the current database renamed to `<db>__stg_prev_<UTC stamp>` and
/// the new one renamed to `<db>`. Any failure drops the incoming database and leaves the
/// current one untouched.
#[derive(Parser, Debug)]
#[command(
    name = "stg-restore",
    version,
    disable_help_flag = true,
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// A command other than restore.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The database: a restore's target (default: the one the stream's manifest names;
    /// required with --accept-unverified), the live database of list and rollback (or give
    /// it as their DB argument). `--db` is an old name of this flag.
    #[arg(
        short = 'd',
        long = "dbname",
        alias = "db",
        value_name = "DBNAME",
        global = true
    )]
    pub dbname: Option<String>,

    /// Connection options (libpq style), before or after the command.
    #[command(flatten)]
    pub conn: ConnArgs,

    /// Database to connect to for catalog work (CREATE/ALTER/DROP DATABASE, listing copies).
    #[arg(long, value_name = "DBNAME", default_value = "postgres", global = true)]
    pub maintenance_db: String,

    /// Restore options (when no command is given).
    #[command(flatten)]
    pub restore: RestoreArgs,

    /// Print help.
    #[arg(long, action = clap::ArgAction::Help, global = true)]
    pub help: Option<bool>,
}

/// The commands besides restore.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a stream on stdin (xz data, manifest, checksum, row counts) without any
    /// database. Exit 1 when it is bad.
    #[command(disable_help_flag = true)]
    Verify(VerifyArgs),
    /// Show the current database and its kept copies, with provenance.
    #[command(disable_help_flag = true)]
    List(LiveArgs),
    /// Swap the newest kept copy back in; the current database becomes a kept copy.
    #[command(disable_help_flag = true)]
    Rollback(RollbackArgs),
}

impl Command {
    /// The command's name.
    fn name(&self) -> &'static str {
        match self {
            Command::Verify(_) => "verify",
            Command::List(_) => "list",
            Command::Rollback(_) => "rollback",
        }
    }
}

/// Options of `verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Longest line of the stream accepted, its newline included (64M, 1G, or bytes); a
    /// longer one is refused. Raise it for rows with very large values.
    #[arg(long, value_name = "SIZE", default_value = "64M", value_parser = reader::max_line_parser)]
    pub max_line_size: usize,
    /// An extension a stream may create besides PostgreSQL's trusted ones (repeatable).
    /// Only name one whose functions reach no file, program or other server as the
    /// restoring role: dblink, postgres_fdw, file_fdw and untrusted languages do.
    #[arg(long, value_name = "NAME")]
    pub allow_extension: Vec<String>,
    /// A foreign-data wrapper a stream may create servers, user mappings and foreign
    /// tables for (repeatable). Servers and user mappings without OPTIONS only, no foreign
    /// table option naming a file, a program or a connection, and no COPY block into a
    /// foreign table. The wrapper's extension needs --allow-extension too.
    #[arg(long, value_name = "NAME")]
    pub allow_foreign_data_wrapper: Vec<String>,
    /// The keys a stream must be signed by: an ssh-keygen allowed-signers file (default
    /// $STG_ALLOWED_SIGNERS or /etc/stg/allowed_signers, when it exists). Where one is in
    /// effect, an unsigned stream, one signed by a key it does not list, or one with a byte
    /// changed is refused (exit 1) before any statement of the changed part runs.
    #[arg(long, value_name = "PATH")]
    pub allowed_signers: Option<PathBuf>,
    /// Public keys refused even where allowed, one a line (default $STG_REVOKED_SIGNERS or
    /// /etc/stg/revoked_signers, when it exists).
    #[arg(long, value_name = "PATH")]
    pub revoked_signers: Option<PathBuf>,
    /// Output format (default: text on a terminal, json otherwise).
    #[arg(long, value_parser = Format::text_or_json())]
    pub format: Option<Format>,
}

/// The live database and the report format: the options of `list`, and `rollback`'s
/// besides its hooks.
#[derive(Args, Debug)]
pub struct LiveArgs {
    /// The live database's name (or -d/--dbname).
    #[arg(value_name = "DBNAME")]
    pub db: Option<String>,
    /// Output format (default: text on a terminal, json otherwise).
    #[arg(long, value_parser = Format::text_or_json())]
    pub format: Option<Format>,
}

/// Options of `rollback`.
#[derive(Args, Debug)]
pub struct RollbackArgs {
    /// The live database and the report format.
    #[command(flatten)]
    pub live: LiveArgs,
    /// Shell command run before the swap; its failure aborts the rollback.
    #[arg(long, value_name = "COMMAND")]
    pub pre_hook: Option<String>,
    /// Shell command run after the swap.
    #[arg(long, value_name = "COMMAND")]
    pub post_hook: Option<String>,
}

/// Options of a restore.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// Previous copies to keep after the swap (newest first).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub keep: usize,
    /// Drop the previous copy after a successful swap (same as --keep 0).
    #[arg(long, conflicts_with = "keep")]
    pub no_keep: bool,
    /// Shell command run before the swap (e.g. stop the application); its failure aborts
    /// the swap and keeps everything as it was.
    #[arg(long, value_name = "COMMAND")]
    pub pre_hook: Option<String>,
    /// Shell command run after the swap (e.g. start the application); also run when the
    /// swap failed after the pre-hook succeeded.
    #[arg(long, value_name = "COMMAND")]
    pub post_hook: Option<String>,
    /// Run VACUUM ANALYZE on the loaded database before the swap.
    #[arg(long)]
    pub analyze: bool,
    /// Refuse to replace the database when it has local changes since its last sync, or
    /// when that cannot be told ("unknown": counters reset, server crashed, statistics off,
    /// no baseline): exit 1, the incoming copy dropped, the live database untouched.
    /// Checked before the load and again just before the swap.
    #[arg(long)]
    pub if_unchanged: bool,
    /// Shell command run before the swap (and before --pre-hook) with the pending summary
    /// as JSON on its stdin (database, source, age of the current copy, its local changes),
    /// e.g. to mail the list. Its failure, or a timeout, is a warning; it stops nothing.
    #[arg(long, value_name = "COMMAND")]
    pub notify: Option<String>,
    /// How long --notify may run before its process group is killed.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = stg_core::duration::clap_parser)]
    pub notify_timeout: std::time::Duration,
    /// Accept a plain `pg_dump [-C] | xz` stream without manifest or trailer: nothing is
    /// verified, and the report says so.
    #[arg(long)]
    pub accept_unverified: bool,
    /// Connections that load at once: tables in parallel, then indexes and constraints in
    /// parallel where their tables allow (default: the cores of this host, at least 2).
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Longest line of the stream accepted, its newline included (64M, 1G, or bytes); a
    /// longer one is refused before anything is replaced. Raise it for rows with very
    /// large values.
    #[arg(long, value_name = "SIZE", default_value = "64M", value_parser = reader::max_line_parser)]
    pub max_line_size: usize,
    /// An extension a stream may create besides PostgreSQL's trusted ones (repeatable).
    /// Only name one whose functions reach no file, program or other server as the
    /// restoring role: dblink, postgres_fdw, file_fdw and untrusted languages do.
    #[arg(long, value_name = "NAME")]
    pub allow_extension: Vec<String>,
    /// A foreign-data wrapper a stream may create servers, user mappings and foreign
    /// tables for (repeatable). Servers and user mappings without OPTIONS only, no foreign
    /// table option naming a file, a program or a connection, and no COPY block into a
    /// foreign table. The wrapper's extension needs --allow-extension too.
    #[arg(long, value_name = "NAME")]
    pub allow_foreign_data_wrapper: Vec<String>,
    /// The role the stream's SQL runs as: created when missing (LOGIN, nothing else), and
    /// refused when it, or a role it is a member of, is a superuser or has CREATEROLE,
    /// BYPASSRLS, REPLICATION or a server-files role. It logs in with a password valid
    /// for this run only: pg_hba.conf must let it in by password (docs/stg-restore.md).
    #[arg(long, value_name = "ROLE", default_value = load_role::DEFAULT_ROLE)]
    pub load_role: String,
    /// The role that owns what the stream gives to a superuser (or a role that can act as
    /// one), instead of it (default: the load role). Not a superuser either.
    #[arg(long, value_name = "ROLE")]
    pub owner: Option<String>,
    /// The keys a stream must be signed by: an ssh-keygen allowed-signers file (default
    /// $STG_ALLOWED_SIGNERS or /etc/stg/allowed_signers, when it exists). Where one is in
    /// effect, an unsigned stream, one signed by a key it does not list, or one with a byte
    /// changed is refused (exit 1) before any statement of the changed part runs.
    #[arg(long, value_name = "PATH")]
    pub allowed_signers: Option<PathBuf>,
    /// Public keys refused even where allowed, one a line (default $STG_REVOKED_SIGNERS or
    /// /etc/stg/revoked_signers, when it exists).
    #[arg(long, value_name = "PATH")]
    pub revoked_signers: Option<PathBuf>,
    /// Restore a signed stream older (its manifest's dumped_at) than the one the live
    /// database was restored from; refused otherwise, so that an old signed stream cannot
    /// be replayed over newer data.
    #[arg(long)]
    pub allow_older: bool,
    /// No longer used: stg-restore loads through its own connections, never psql. Accepted
    /// (and ignored, with a warning) so that existing scripts keep working.
    #[arg(long, value_name = "PATH", hide = true)]
    pub psql: Option<PathBuf>,
    /// Output format (default: text on a terminal, json otherwise).
    #[arg(long, value_parser = Format::text_or_json())]
    pub format: Option<Format>,
}

impl RestoreArgs {
    /// The first restore option given on the command line, if any (the connection flags are
    /// global and go with every command; these do not). Options left at their default are
    /// not seen, and need not be.
    fn first_given(&self) -> Option<&'static str> {
        [
            (self.keep != 1, "--keep"),
            (self.no_keep, "--no-keep"),
            (self.pre_hook.is_some(), "--pre-hook"),
            (self.post_hook.is_some(), "--post-hook"),
            (self.analyze, "--analyze"),
            (self.if_unchanged, "--if-unchanged"),
            (self.notify.is_some(), "--notify"),
            (
                self.notify_timeout != std::time::Duration::from_secs(60),
                "--notify-timeout",
            ),
            (self.accept_unverified, "--accept-unverified"),
            (self.jobs.is_some(), "--jobs"),
            (
                self.max_line_size != reader::DEFAULT_MAX_LINE,
                "--max-line-size",
            ),
            (!self.allow_extension.is_empty(), "--allow-extension"),
            (
                !self.allow_foreign_data_wrapper.is_empty(),
                "--allow-foreign-data-wrapper",
            ),
            (self.load_role != load_role::DEFAULT_ROLE, "--load-role"),
            (self.owner.is_some(), "--owner"),
            (self.allowed_signers.is_some(), "--allowed-signers"),
            (self.revoked_signers.is_some(), "--revoked-signers"),
            (self.allow_older, "--allow-older"),
            (self.psql.is_some(), "--psql"),
            (self.format.is_some(), "--format"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }
}

/// A validated restore.
#[derive(Debug)]
pub struct RestoreConfig {
    /// The maintenance connection (server, user, maintenance database).
    pub conn: Conn,
    /// Target database given with `-d/--dbname` (else the manifest's).
    pub db: Option<String>,
    /// Previous copies to keep.
    pub keep: usize,
    /// `--pre-hook`.
    pub pre_hook: Option<String>,
    /// `--post-hook`.
    pub post_hook: Option<String>,
    /// `--analyze`.
    pub analyze: bool,
    /// `--if-unchanged`: refuse to replace a database with local changes (or unknown ones).
    pub if_unchanged: bool,
    /// `--notify`: command told about the pending swap on its stdin.
    pub notify: Option<String>,
    /// `--notify-timeout`.
    pub notify_timeout: std::time::Duration,
    /// `--accept-unverified`.
    pub accept_unverified: bool,
    /// Load connections at once.
    pub jobs: usize,
    /// `--max-line-size`: the longest stream line accepted, in bytes.
    pub max_line: usize,
    /// `--allow-extension`, `--allow-foreign-data-wrapper`.
    pub allowed: policy::Allowed,
    /// `--load-role`: the role the stream's SQL runs as.
    pub load_role: String,
    /// `--owner`: who owns what the stream gives a superuser.
    pub owner: Option<String>,
    /// The allowed signers in effect (`--allowed-signers` or the default file).
    pub trust: Option<std::sync::Arc<signers::Trust>>,
    /// `--allow-older`.
    pub allow_older: bool,
    /// `--psql` was given (ignored; the report says so).
    pub psql_ignored: bool,
}

/// A validated `verify`.
#[derive(Debug)]
pub struct VerifyConfig {
    /// `--max-line-size`: the longest stream line accepted, in bytes.
    pub max_line: usize,
    /// `--allow-extension`, `--allow-foreign-data-wrapper`.
    pub allowed: policy::Allowed,
    /// The allowed signers in effect (`--allowed-signers` or the default file).
    pub trust: Option<std::sync::Arc<signers::Trust>>,
}

/// A validated rollback.
#[derive(Debug)]
pub struct RollbackConfig {
    /// The maintenance connection.
    pub conn: Conn,
    /// The live database.
    pub db: String,
    /// `--pre-hook`.
    pub pre_hook: Option<String>,
    /// `--post-hook`.
    pub post_hook: Option<String>,
}

/// A validated list.
#[derive(Debug)]
pub struct ListConfig {
    /// The maintenance connection.
    pub conn: Conn,
    /// The live database.
    pub db: String,
}

/// What to run, validated.
#[derive(Debug)]
pub struct Config {
    /// Report format, with the terminal default applied.
    pub format: Format,
    /// The command.
    pub action: Action,
}

/// The command to run.
#[derive(Debug)]
pub enum Action {
    /// Load a stream and swap it in.
    Restore(RestoreConfig),
    /// Check a stream.
    Verify(VerifyConfig),
    /// Show copies.
    List(ListConfig),
    /// Swap the newest kept copy back in.
    Rollback(RollbackConfig),
}

fn check_db_arg(db: &str, maintenance_db: &str) -> anyhow::Result<()> {
    sql::check_target(db, maintenance_db).map_err(|m| Error::usage(m).into())
}

/// The live database of `list` and `rollback`: their DB argument or -d/--dbname.
fn live_database(
    command: &str,
    arg: Option<String>,
    flag: Option<String>,
) -> anyhow::Result<String> {
    match (arg, flag) {
        (Some(arg), Some(flag)) if arg != flag => {
            bail_usage!("two databases given: {arg} and -d/--dbname {flag}; name one")
        }
        (Some(db), _) | (None, Some(db)) => Ok(db),
        (None, None) => {
            bail_usage!("name the database: stg-restore {command} DBNAME (or -d DBNAME)")
        }
    }
}

impl Config {
    /// Validates parsed flags.
    pub fn from_cli(cli: Cli) -> anyhow::Result<Config> {
        let conn = Conn::resolve(&cli.conn, Some(&cli.maintenance_db));
        if let (Some(command), Some(flag)) = (&cli.command, cli.restore.first_given()) {
            bail_usage!(
                "{flag} is an option of a restore, not of {}; options of a command follow it \
                 (stg-restore {} --help)",
                command.name(),
                command.name()
            );
        }
        let (format, action) = match cli.command {
            Some(Command::Verify(a)) => {
                // verify reads a stream and connects to nothing.
                if let Some(flag) = cli.conn.first_given() {
                    bail_usage!(
                        "{flag} is a connection option; stg-restore verify reads the stream on \
                         stdin and connects to no server"
                    );
                }
                if cli.dbname.is_some() {
                    bail_usage!(
                        "-d/--dbname names a database; stg-restore verify reads the stream on \
                         stdin and restores nothing"
                    );
                }
                (
                    a.format,
                    Action::Verify(VerifyConfig {
                        max_line: a.max_line_size,
                        allowed: allowed(a.allow_extension, a.allow_foreign_data_wrapper)?,
                        trust: trust(a.allowed_signers, a.revoked_signers)?,
                    }),
                )
            }
            Some(Command::List(a)) => {
                let db = live_database("list", a.db, cli.dbname)?;
                if db.is_empty() {
                    bail_usage!("the database name is empty");
                }
                (a.format, Action::List(ListConfig { conn, db }))
            }
            Some(Command::Rollback(a)) => {
                let db = live_database("rollback", a.live.db, cli.dbname)?;
                check_db_arg(&db, &cli.maintenance_db)?;
                (
                    a.live.format,
                    Action::Rollback(RollbackConfig {
                        conn,
                        db,
                        pre_hook: a.pre_hook,
                        post_hook: a.post_hook,
                    }),
                )
            }
            None => {
                let a = cli.restore;
                if let Some(db) = &cli.dbname {
                    check_db_arg(db, &cli.maintenance_db)?;
                }
                if a.accept_unverified && cli.dbname.is_none() {
                    bail_usage!(
                        "--accept-unverified needs --dbname: a plain pg_dump stream does not \
                         say which database it is"
                    );
                }
                let jobs = match a.jobs {
                    Some(0) => bail_usage!("--jobs 0: at least one connection loads"),
                    Some(n) if n > MAX_JOBS => {
                        bail_usage!("--jobs {n}: at most {MAX_JOBS} connections")
                    }
                    Some(n) => n,
                    None => std::thread::available_parallelism().map_or(2, |n| n.get().max(2)),
                };
                if a.notify_timeout.is_zero() {
                    bail_usage!("--notify-timeout 0: give the notify command some time, e.g. 60s");
                }
                (
                    a.format,
                    Action::Restore(RestoreConfig {
                        conn,
                        db: cli.dbname,
                        keep: if a.no_keep { 0 } else { a.keep },
                        pre_hook: a.pre_hook,
                        post_hook: a.post_hook,
                        analyze: a.analyze,
                        if_unchanged: a.if_unchanged,
                        notify: a.notify,
                        notify_timeout: a.notify_timeout,
                        accept_unverified: a.accept_unverified,
                        jobs,
                        max_line: a.max_line_size,
                        allowed: allowed(a.allow_extension, a.allow_foreign_data_wrapper)?,
                        load_role: role_name("--load-role", a.load_role)?,
                        owner: a.owner.map(|o| role_name("--owner", o)).transpose()?,
                        trust: trust(a.allowed_signers, a.revoked_signers)?,
                        allow_older: a.allow_older,
                        psql_ignored: a.psql.is_some(),
                    }),
                )
            }
        };
        Ok(Config {
            format: Format::or_default(format),
            action,
        })
    }
}

/// Runs the tool; returns the exit status of a completed run.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    // The staging guard comes first: before stdin is read or any server is contacted.
    match &cli.command {
        None => stg_core::host::require_staging("restore a database")?,
        Some(Command::Rollback(a)) => {
            let db = a.live.db.as_ref().or(cli.dbname.as_ref());
            let what = db.map_or_else(
                || "roll back a database".to_owned(),
                |db| format!("roll back database {db}"),
            );
            stg_core::host::require_staging(&what)?;
        }
        Some(Command::Verify(_) | Command::List(_)) => {}
    }
    if matches!(cli.command, None | Some(Command::Verify(_))) && std::io::stdin().is_terminal() {
        bail_usage!(
            "stdin is a terminal; pipe a stream in (stg-dump DB | stg-restore, or stg-restore < DB.stg.xz)"
        );
    }
    let config = Config::from_cli(cli)?;
    match config.action {
        Action::Restore(restore) => restore::run(&restore, config.format),
        Action::Verify(verify) => verify::run(&verify, config.format),
        Action::List(list) => list::run(&list, config.format),
        Action::Rollback(rollback) => rollback::run(&rollback, config.format),
    }
}

/// A single-threaded Tokio runtime: the blocking stream reading has its own thread.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::runtime(format!("could not start the async runtime: {e}")).into())
}

/// What `--allow-extension` and `--allow-foreign-data-wrapper` name, checked.
fn allowed(extensions: Vec<String>, wrappers: Vec<String>) -> Result<policy::Allowed, Error> {
    for (flag, names) in [
        ("--allow-extension", &extensions),
        ("--allow-foreign-data-wrapper", &wrappers),
    ] {
        if let Some(bad) = names
            .iter()
            .find(|n| n.is_empty() || n.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            bail_usage!("{flag} {bad:?}: give the name of one, as CREATE EXTENSION writes it");
        }
    }
    Ok(policy::Allowed {
        extensions,
        wrappers,
    })
}

/// A role name given with `flag`, checked.
fn role_name(flag: &str, name: String) -> Result<String, Error> {
    if name.is_empty() || name.len() > sql::MAX_NAME || name.contains('\0') {
        bail_usage!(
            "{flag} {name:?}: give a role's name (1 to {} bytes)",
            sql::MAX_NAME
        );
    }
    Ok(name)
}

/// The allowed signers in effect: `--allowed-signers` (which must exist), else the default
/// file when it exists; with the revoked keys of `--revoked-signers` or its default.
fn trust(
    allowed: Option<PathBuf>,
    revoked: Option<PathBuf>,
) -> Result<Option<std::sync::Arc<signers::Trust>>, Error> {
    let from_env = |var: &str, default: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from(default), PathBuf::from)
    };
    let (allowed, given) = match allowed {
        Some(path) => (path, true),
        None => (
            from_env("STG_ALLOWED_SIGNERS", signers::DEFAULT_ALLOWED),
            false,
        ),
    };
    if !given && !allowed.exists() {
        return Ok(None);
    }
    let revoked =
        revoked.unwrap_or_else(|| from_env("STG_REVOKED_SIGNERS", signers::DEFAULT_REVOKED));
    let trust = signers::Trust::load(&allowed, Some(&revoked)).map_err(Error::usage)?;
    for warning in &trust.warnings {
        stg_core::format::warn(warning);
    }
    Ok(Some(std::sync::Arc::new(trust)))
}
