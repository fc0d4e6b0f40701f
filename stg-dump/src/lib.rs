//! `stg-dump`: a production database as one masked, compressed, self-verifying stream on
//! stdout (format in `docs/stream.md`, masking in `docs/masking.md`).
//!
//! The flow: parse flags into a [`Config`]; connect, open a REPEATABLE READ transaction and
//! export its snapshot (so the manifest and `pg_dump` see one moment); check the masking
//! rules against the live schema; check `pg_dump`'s version; then stream `pg_dump` on that
//! snapshot through the COPY rewriter and the encoder (zstd by default, xz on request),
//! manifest first and trailer last.
//! The trailer is written only when `pg_dump` succeeded: any failure leaves a stream that
//! `stg-restore` (and `zstdcat`/`xzcat`) refuse.

pub mod compress;
pub mod connections;
pub mod json_path;
pub mod mask_init;
pub mod masking;
pub mod pg_dump;
pub mod pipeline;
pub mod rules;
pub mod schema;
pub mod xz_sink;

use std::io::{BufReader, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use stg_core::conn::{Conn, ConnArgs};
use stg_core::stream::{self, Manifest, MaskedColumn, MaskingSummary, TableDecisions};
use stg_core::{exit, jsonl, timestamp, Error};

use crate::masking::Pseudonymizer;
use crate::rules::Rules;
use crate::schema::{Finding, Schema};

fn parse_compression(spec: &str) -> Result<compress::Compression, String> {
    spec.parse()
}

/// Exit statuses for errors (see [`stg_core::exit`]).
pub const EXIT_CODES: exit::Codes = exit::Codes::STANDARD;

/// Output format of `--check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table for people.
    Text,
    /// JSON Lines for programs.
    Json,
}

/// Dump a PostgreSQL database as one masked, compressed, self-verifying stream on stdout.
///
/// The stream is zstd (or, with --compress xz, xz) holding plain SQL (as pg_dump writes it)
/// between a manifest line and a checksummed trailer line; `stg-restore` loads it into
/// staging, and
/// `zstdcat fas2.stg.zst | psql db` still works by hand.
#[derive(Parser, Debug)]
#[command(
    name = "stg-dump",
    version,
    disable_help_flag = true,
    after_help = "Examples:\n  stg-dump fas2 > fas2.stg.zst\n  stg-dump --compress xz:6 fas2 > fas2.stg.xz      # the SOP's format\n  stg-dump -h db01 -U postgres --mask masking.json fas2 | ssh db02.stg stg-restore\n  stg-dump --mask-init fas2 > masking.json         # a complete rules file to review\n  stg-dump --mask masking.json --check fas2        # in cron: exit 1 on a new, undecided column\n  zstdcat fas2.stg.zst | head -1\n\nExit status: 0 ok; 1 --check found problems; 2 usage or input error (bad rules, undecided columns, pg_dump too old, stdout is a terminal); 3 runtime failure (server unreachable, pg_dump failed, output closed).\nEnvironment: PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE PGPASSFILE PGSSLMODE PGSSLROOTCERT PGSSLCERT PGSSLKEY, STG_MASK_KEY, STG_MASK_KEY_FILE.\nSee docs/stg-dump.md and docs/masking.md."
)]
pub struct Cli {
    /// Database to dump (default: PGDATABASE, then the user name).
    #[arg(value_name = "DBNAME")]
    pub dbname: Option<String>,

    /// Database to dump, as with pg_dump's -d.
    #[arg(
        short = 'd',
        long = "dbname",
        value_name = "DBNAME",
        conflicts_with = "dbname"
    )]
    pub dbname_flag: Option<String>,

    /// Connection options (libpq style).
    #[command(flatten)]
    pub conn: ConnArgs,

    /// Masking rules file (JSON; see docs/masking.md). Every column of every dumped table
    /// must be decided by a rule, a keep entry or exclude_data, else nothing is dumped.
    #[arg(long = "mask", value_name = "FILE")]
    pub mask: Option<PathBuf>,

    /// File holding the secret key for pseudonym and email rules (at least 16 bytes).
    #[arg(long = "key-file", value_name = "FILE", env = "STG_MASK_KEY_FILE")]
    pub key_file: Option<PathBuf>,

    /// Check the rules against the live schema and list undecided columns (each with a
    /// suggested rule; a column added since the rules were written shows here first) and
    /// unmasked sensitive-looking columns, as JSON Lines or a table; dump nothing. Exit 1
    /// if anything is found.
    #[arg(long)]
    pub check: bool,

    /// Write a complete masking rules file for the database to stdout and dump nothing:
    /// every table and column, sensitive-looking ones with a proposed rule, the rest
    /// kept. Review it, then use it with --mask.
    #[arg(long = "mask-init", conflicts_with_all = ["mask", "check"])]
    pub mask_init: bool,

    /// Compression threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<u32>,

    /// Compression: zstd or zstd:LEVEL (levels 1-6; default zstd:1), or xz or xz:PRESET
    /// (presets 0-9, the SOP's format; xz alone is xz:0).
    #[arg(long, value_name = "ALGO[:LEVEL]", value_parser = parse_compression)]
    pub compress: Option<compress::Compression>,
    /// xz preset, 0 (fastest) to 9 (smallest); the same as --compress xz:PRESET.
    #[arg(long, value_name = "0-9", conflicts_with = "compress", value_parser = clap::value_parser!(u32).range(0..=9))]
    pub preset: Option<u32>,

    /// pg_dump to run (default: the one in PATH).
    #[arg(long = "pg-dump", value_name = "PATH")]
    pub pg_dump: Option<PathBuf>,
    /// Foreign servers, user mappings, subscriptions and connection strings in code, which
    /// would let staging reach production: refuse to dump (default), strip their options
    /// and leave subscriptions out, or keep them as they are.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = connections::Mode::Refuse)]
    pub foreign_connections: connections::Mode,

    /// Output format of --check (default: text on a terminal, json otherwise).
    #[arg(long, value_enum)]
    pub format: Option<Format>,

    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
}

/// The validated configuration.
pub struct Config {
    /// Where to connect, and the database to dump.
    pub conn: Conn,
    /// Masking rules (empty when none were given).
    pub rules: Rules,
    /// True when rules were given.
    pub masked: bool,
    /// The keyed hash for pseudonym and email rules.
    pub keyed: Option<Pseudonymizer>,
    /// Check only.
    pub check: bool,
    /// `--mask-init`: write a rules file, dump nothing.
    pub mask_init: bool,
    /// Compression threads.
    pub threads: u32,
    /// Compression and level.
    pub compression: compress::Compression,
    /// pg_dump binary, as given.
    pub pg_dump: Option<PathBuf>,
    /// `--foreign-connections`.
    pub foreign_connections: connections::Mode,
    /// Output format of --check.
    pub format: Format,
}

/// Reads the masking key from the file or `STG_MASK_KEY`; refuses short keys, keys of one
/// repeated byte (an all-zero key is no secret), and, as ssh does for private keys, a key
/// file that others can read or write. The file must be a regular file of at most 4 KiB
/// (a FIFO, a device or a huge file is refused, not waited on or read whole).
fn load_key(key_file: Option<&PathBuf>) -> anyhow::Result<Option<Vec<u8>>> {
    let raw = if let Some(path) = key_file {
        let limits = stg_core::files::Limits {
            max_bytes: 4096,
            no_symlink: false,
        };
        let mut bytes = stg_core::files::read_small(path, limits)
            .map_err(|e| Error::usage(format!("cannot read the masking key file: {e}")))?;
        let mode = std::fs::metadata(path).map_or(0, |m| {
            std::os::unix::fs::PermissionsExt::mode(&m.permissions())
        });
        if mode & 0o077 != 0 {
            return Err(Error::usage(format!(
                "the masking key file {} is accessible by group or others (mode {:o}); \
                 anyone who can read it can confirm guesses against pseudonyms: chmod 600 it",
                path.display(),
                mode & 0o777
            ))
            .into());
        }
        while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            bytes.pop();
        }
        Some(bytes)
    } else {
        std::env::var_os("STG_MASK_KEY").map(std::ffi::OsString::into_encoded_bytes)
    };
    match raw {
        Some(key) if key.len() < 16 => Err(Error::usage(
            "the masking key must be at least 16 bytes (e.g. `head -c 32 /dev/urandom | base64 > key`)",
        )
        .into()),
        Some(key) if key.iter().all(|b| *b == key[0]) => Err(Error::usage(
            "the masking key is one byte repeated (all zeros?): it is no secret; make one \
             with `head -c 32 /dev/urandom | base64 > key`",
        )
        .into()),
        other => Ok(other),
    }
}

impl Config {
    /// Validates the command line into a configuration.
    pub fn from_cli(cli: Cli) -> anyhow::Result<Config> {
        let dbname = cli.dbname.or(cli.dbname_flag);
        let conn = Conn::resolve(&cli.conn, dbname.as_deref());
        let (rules, masked) = match &cli.mask {
            Some(path) => (Rules::load(path)?, true),
            None => (Rules::default(), false),
        };
        let key = load_key(cli.key_file.as_ref())?;
        if rules.need_key() && key.is_none() {
            let names: Vec<String> = rules
                .rules
                .iter()
                .filter(|r| r.transform.needs_key())
                .map(rules::Rule::at)
                .collect();
            return Err(Error::usage(format!(
                "{} use pseudonym or email transforms, which need a secret key: pass --key-file FILE or set \
                 STG_MASK_KEY (never put the key in the rules file)",
                names.join(", ")
            ))
            .into());
        }
        let threads = cli.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1))
        });
        if threads == 0 {
            return Err(Error::usage("--threads must be at least 1").into());
        }
        let format = cli.format.unwrap_or(if std::io::stdout().is_terminal() {
            Format::Text
        } else {
            Format::Json
        });
        Ok(Config {
            conn,
            keyed: key.as_deref().map(Pseudonymizer::new),
            rules,
            masked,
            check: cli.check,
            mask_init: cli.mask_init,
            threads,
            compression: match (cli.compress, cli.preset) {
                (Some(c), _) => c,
                (None, Some(preset)) => compress::Compression::Xz(preset),
                (None, None) => compress::Compression::default(),
            },
            pg_dump: cli.pg_dump,
            foreign_connections: cli.foreign_connections,
            format,
        })
    }
}

/// Runs the tool; returns the exit status of a completed run.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    let config = Config::from_cli(cli)?;
    if !config.check && !config.mask_init && std::io::stdout().is_terminal() {
        return Err(Error::usage(
            "refusing to write the binary dump stream to a terminal; redirect it (stg-dump fas2 > fas2.stg.zst) \
             or pipe it (stg-dump fas2 | ssh db02.stg stg-restore)",
        )
        .into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("while starting the async runtime")?;
    runtime.block_on(async_main(&config))
}

/// What the manifest says was masked and excluded: every table a rule or an exclusion
/// reached, partitions and inheritance children included.
fn masking_summary(config: &Config, schema: &Schema, had_connections: bool) -> MaskingSummary {
    let foreign_connections = had_connections.then(|| config.foreign_connections.name().to_owned());
    if !config.masked {
        return MaskingSummary {
            foreign_connections,
            ..MaskingSummary::default()
        };
    }
    let mut columns = Vec::new();
    let mut tables = Vec::new();
    for (table, cols) in &schema.tables {
        if schema.excluded(&config.rules, table) {
            continue;
        }
        // A partition (or child) with no columns of its own is decided entirely by its
        // parent: listing thousands of partitions would only repeat the parent's line.
        let parent = schema.ancestors.get(table).and_then(|a| a.first());
        let follows_parent =
            parent.is_some_and(|p| cols.iter().all(|c| schema.column(p, &c.name).is_some()));
        for c in cols {
            if let schema::Decision::Rule(rule) = schema.decision(&config.rules, table, &c.name) {
                columns.push(MaskedColumn {
                    table: table.to_string(),
                    column: c.name.clone(),
                    transform: rule.transform.name().to_owned(),
                });
            }
        }
        if follows_parent {
            continue;
        }
        tables.push(TableDecisions {
            table: table.to_string(),
            columns: cols
                .iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        schema
                            .decision(&config.rules, table, &c.name)
                            .name()
                            .to_owned(),
                    )
                })
                .collect(),
        });
    }
    MaskingSummary {
        rules_sha256: Some(config.rules.sha256.clone()),
        columns,
        excluded_tables: excluded_tables(config, schema)
            .iter()
            .map(ToString::to_string)
            .collect(),
        foreign_connections,
        undecided: Some(config.rules.undecided.name().to_owned()),
        tables,
    }
}

/// Every table whose data is left out: those `exclude_data` names and their descendants
/// (pg_dump before 16 does not extend `--exclude-table-data` to partitions, and no version
/// extends it to inheritance children).
fn excluded_tables(config: &Config, schema: &Schema) -> Vec<rules::TableName> {
    let mut out: Vec<rules::TableName> = config
        .rules
        .exclude_data
        .iter()
        .flat_map(|t| {
            let mut all = schema.with_descendants(t);
            if all.is_empty() {
                all.push(t.clone());
            }
            all
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

async fn async_main(config: &Config) -> anyhow::Result<u8> {
    let client = config.conn.connect().await?;
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .context("while opening the snapshot transaction")?;
    let info = schema::source_info(&client).await?;
    let schema = Schema::read(&client).await?;
    // Before the rule checks: a failed cast there aborts the snapshot's transaction.
    let connections = connections::find(&client).await?;
    if config.mask_init {
        let out = mask_init::rules_file(&schema, &config.conn.dbname);
        let mut stdout = stg_core::output::stdout();
        stdout.write_all(out.as_bytes())?;
        stdout.flush()?;
        return Ok(exit::OK);
    }
    let mut problems = if config.masked {
        schema::check_rules(&client, &schema, &config.rules).await
    } else {
        Vec::new()
    };
    let refuse_undecided = config.masked && config.rules.undecided == rules::Undecided::Refuse;
    if refuse_undecided {
        problems.extend(schema::undecided(&schema, &config.rules));
    }
    if config.check {
        if !refuse_undecided {
            problems.extend(schema::unmasked_sensitive(&schema, &config.rules));
        }
        problems.extend(connections.iter().map(|c| Finding::ForeignConnection {
            kind: c.kind,
            name: c.name.clone(),
            detail: c.detail.clone(),
        }));
        return report_check(config, &problems, &schema);
    }
    let refused: Vec<&connections::Connection> = connections
        .iter()
        .filter(|c| match config.foreign_connections {
            connections::Mode::Refuse => true,
            connections::Mode::Strip => !c.kind.strippable(),
            connections::Mode::Keep => false,
        })
        .collect();
    if !refused.is_empty() {
        let list: Vec<String> = refused.iter().map(|c| format!("  {c}")).collect();
        return Err(Error::usage(format!(
            "database {} holds connections that would let staging reach production \
             (nothing was dumped):\n{}\n{}",
            config.conn.dbname,
            list.join("\n"),
            if config.foreign_connections == connections::Mode::Refuse {
                "Dump with --foreign-connections strip (server and user-mapping options \
                 removed, subscriptions left out) or keep (as they are); see docs/stg-dump.md"
            } else {
                "Connection strings inside functions and views cannot be stripped: change \
                 them in production, or dump with --foreign-connections keep"
            }
        ))
        .into());
    }
    if config.foreign_connections == connections::Mode::Keep && !connections.is_empty() {
        eprintln!(
            "stg-dump: warning: --foreign-connections keep: {} object(s) with connections \
             go into the stream as they are: {}",
            connections.len(),
            connections
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    if !problems.is_empty() {
        let mut list: Vec<String> = problems
            .iter()
            .filter_map(|p| match p {
                Finding::RuleProblem { rule, message } => Some(format!("  {rule}: {message}")),
                _ => None,
            })
            .collect();
        let undecided: Vec<String> = problems
            .iter()
            .filter_map(|p| match p {
                Finding::Undecided { .. } => Some(format!("  {}", undecided_line(p))),
                _ => None,
            })
            .collect();
        if !undecided.is_empty() {
            list.push(format!(
                "{} undecided column(s): every column of a dumped table needs a rule, a \"keep\" \
                 entry or exclude_data (or \"undecided\": \"keep\" in the rules file; see docs/masking.md):",
                undecided.len()
            ));
            list.extend(undecided);
        }
        return Err(Error::usage(format!(
            "the masking rules do not fit database {} (nothing was dumped):\n{}",
            config.conn.dbname,
            list.join("\n")
        ))
        .into());
    }
    let pg_dump = pg_dump::locate(config.pg_dump.as_deref())?;
    pg_dump::check_compatible(&pg_dump, info.server_major, &info.server_version)?;

    let snapshot: String = client
        .query_one("SELECT pg_export_snapshot()", &[])
        .await
        .context("while exporting the snapshot for pg_dump")?
        .get(0);
    let manifest = Manifest {
        format: stream::FORMAT,
        database: config.conn.dbname.clone(),
        source_host: if config.conn.is_socket() {
            hostname()
        } else {
            config.conn.host.clone()
        },
        dumped_on: hostname(),
        dumped_at: timestamp::format(timestamp::now()),
        server_version: info.server_version.clone(),
        pg_dump_version: pg_dump.version.clone(),
        encoding: info.encoding.clone(),
        locale: info.collate.clone(),
        lc_ctype: info.ctype.clone(),
        locale_provider: info.provider.clone(),
        icu_locale: info.icu_locale.clone(),
        owner: info.owner.clone(),
        roles: info.roles.clone(),
        masking: masking_summary(config, &schema, !connections.is_empty()),
        tool: format!("stg-dump {}", env!("CARGO_PKG_VERSION")),
    };
    let exclude: Vec<String> = excluded_tables(config, &schema)
        .iter()
        .map(|t| pg_dump::exact_pattern(&t.schema, &t.table))
        .collect();

    // The blocking part: pg_dump's output through the rewriter and the encoder. Blocking
    // here is fine: this current-thread runtime has nothing else to run meanwhile, and the
    // server keeps the snapshot transaction open without our help.
    let result = dump_stream(config, &pg_dump, &snapshot, &exclude, &manifest, &schema);
    // The snapshot only has to live until pg_dump has imported it; close it either way.
    let _ = client.batch_execute("COMMIT").await;
    result.map(|()| exit::OK)
}

/// Kills `pg_dump` if the dump fails before it has been waited for.
struct ChildGuard(Option<std::process::Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn output_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        // Not the quiet broken pipe of a report piped into `head`: an incomplete dump is a
        // failure, and the stream deliberately has no trailer.
        Error::runtime("stdout was closed before the dump was complete (did the reader, e.g. ssh, die?); the stream has no trailer and stg-restore will refuse it").into()
    } else {
        anyhow::Error::from(e).context("while writing the stream to stdout")
    }
}

fn dump_stream(
    config: &Config,
    pg_dump: &pg_dump::PgDump,
    snapshot: &str,
    exclude: &[String],
    manifest: &Manifest,
    schema: &Schema,
) -> anyhow::Result<()> {
    let mut child = ChildGuard(Some(pg_dump::spawn(
        pg_dump,
        &config.conn,
        snapshot,
        exclude,
        config.foreign_connections == connections::Mode::Strip,
        config.masked,
    )?));
    let stdout = child
        .0
        .as_mut()
        .and_then(|c| c.stdout.take())
        .expect("piped stdout");
    let mut sink =
        compress::Sink::new(std::io::stdout().lock(), config.compression, config.threads)?;
    let mut progress = pipeline::Progress::new(std::io::stderr().is_terminal());
    let masking = pipeline::Masking {
        schema,
        rules: &config.rules,
        keyed: config.keyed.as_ref(),
        strip_connections: config.foreign_connections == connections::Mode::Strip,
    };
    let streamed = pipeline::stream(
        BufReader::with_capacity(1 << 20, stdout),
        &stream::manifest_line(manifest),
        &masking,
        &mut sink,
        &mut progress,
    );
    progress.done();
    let trailer = match streamed {
        Ok(trailer) => trailer,
        Err(e) => {
            return Err(match e.downcast::<std::io::Error>() {
                Ok(io) => output_error(io),
                Err(other) => other,
            })
        }
    };
    let status = child
        .0
        .take()
        .expect("child")
        .wait()
        .context("while waiting for pg_dump")?;
    if !status.success() {
        return Err(Error::runtime(format!(
            "pg_dump failed ({status}); see its message above. The stream has no trailer and stg-restore will refuse it"
        ))
        .into());
    }
    pipeline::finish(sink, &trailer).map_err(output_error)?;
    Ok(())
}

/// What each rule and exclusion reaches: its table and every partition or inheritance
/// child of it, so a reader of `--check` sees the rule on `people` also mask `staff`.
#[derive(serde::Serialize)]
struct Applied {
    r#type: &'static str,
    rule: String,
    tables: Vec<String>,
}

fn applied(config: &Config, schema: &Schema) -> Vec<Applied> {
    let names = |table: &rules::TableName| -> Vec<String> {
        schema
            .with_descendants(table)
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    let mut out: Vec<Applied> = config
        .rules
        .rules
        .iter()
        .map(|r| Applied {
            r#type: "applied",
            rule: r.at(),
            tables: names(&r.table),
        })
        .collect();
    out.extend(
        config
            .rules
            .exclude_data
            .iter()
            .enumerate()
            .map(|(i, t)| Applied {
                r#type: "applied",
                rule: format!("exclude_data[{i}] ({t})"),
                tables: names(t),
            }),
    );
    out
}

/// `public.people.email (text): suggested rule {...}` or `... suggested: keep`.
fn undecided_line(finding: &Finding) -> String {
    let Finding::Undecided {
        table,
        column,
        data_type,
        suggested_rule,
        ..
    } = finding
    else {
        return String::new();
    };
    format!(
        "{table}.{} ({data_type}): {}",
        rules::quote_if_needed(column),
        suggested_rule.as_ref().map_or_else(
            || "suggested: keep (add it to \"keep\")".to_owned(),
            |r| format!("suggested rule {r}")
        )
    )
}

fn report_check(config: &Config, findings: &[Finding], schema: &Schema) -> anyhow::Result<u8> {
    let applied = if config.masked {
        applied(config, schema)
    } else {
        Vec::new()
    };
    let rule_problems = findings
        .iter()
        .filter(|f| matches!(f, Finding::RuleProblem { .. }))
        .count();
    let connections = findings
        .iter()
        .filter(|f| matches!(f, Finding::ForeignConnection { .. }))
        .count();
    let undecided = findings
        .iter()
        .filter(|f| matches!(f, Finding::Undecided { .. }))
        .count();
    let unmasked = findings.len() - rule_problems - connections - undecided;
    // A reader gone early does not change the verdict: see stg_core::output.
    let stdout = stg_core::output::stdout();
    match config.format {
        Format::Json => {
            let mut out = jsonl::Writer::new(stdout);
            for record in &applied {
                out.write(record)?;
            }
            for finding in findings {
                out.write(finding)?;
            }
            out.write(&serde_json::json!({
                "type": "summary",
                "database": config.conn.dbname,
                "rules": config.rules.rules.len(),
                "excluded_tables": config.rules.exclude_data.len(),
                "rule_problems": rule_problems,
                "undecided": undecided,
                "unmasked_sensitive": unmasked,
                "foreign_connections": connections,
                "ok": findings.is_empty(),
            }))?;
            out.flush()?;
        }
        Format::Text => {
            let mut out = std::io::BufWriter::new(stdout);
            for record in &applied {
                writeln!(
                    out,
                    "APPLIES    {}: {}",
                    record.rule,
                    record.tables.join(", ")
                )?;
            }
            for finding in findings {
                match finding {
                    Finding::RuleProblem { rule, message } => writeln!(out, "PROBLEM    {rule}: {message}")?,
                    Finding::ForeignConnection { kind, name, detail } => writeln!(
                        out,
                        "CONNECTION {} {name} ({detail}): staging would reach production through it",
                        serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
                    )?,
                    Finding::Undecided { .. } => writeln!(out, "UNDECIDED  {}", undecided_line(finding))?,
                    Finding::UnmaskedSensitive { table, column, data_type, matched } => writeln!(
                        out,
                        "UNMASKED   {table}.{} ({data_type}): name contains \"{matched}\" and no rule masks it",
                        rules::quote_if_needed(column)
                    )?,
                }
            }
            writeln!(
                out,
                "{}: {} rules, {rule_problems} rule problems, {undecided} undecided columns, {unmasked} unmasked sensitive-looking columns, {connections} connections to other servers",
                config.conn.dbname,
                config.rules.rules.len()
            )?;
            out.flush()?;
        }
    }
    Ok(if findings.is_empty() {
        exit::OK
    } else {
        exit::FOUND
    })
}
