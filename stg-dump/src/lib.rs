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

mod check;
pub mod compress;
pub mod connections;
mod dump;
pub mod json_path;
pub mod large_objects;
pub mod mask_init;
pub mod masking;
pub mod pg_dump;
pub mod pipeline;
pub mod rules;
pub mod schema;
pub mod signing;
pub mod xz_sink;

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use stg_core::conn::{Conn, ConnArgs};
pub use stg_core::format::Format;
use stg_core::{exit, Error};

use crate::masking::Pseudonymizer;
use crate::rules::Rules;

fn parse_compression(spec: &str) -> Result<compress::Compression, String> {
    spec.parse()
}

/// Exit statuses for errors (see [`stg_core::exit`]).
pub const EXIT_CODES: exit::Codes = exit::Codes::STANDARD;

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
    /// suggested rule; a column added since the rules were written shows here first),
    /// unmasked sensitive-looking columns and the large objects (what the rules do with
    /// them; undecided without "large_objects"), as JSON Lines or a table; dump nothing.
    /// Exit 1 if anything is found.
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

    /// Sign the stream with this OpenSSH Ed25519 key: a private key file (readable by its
    /// owner only, not encrypted), or a public key file whose private half ssh-agent holds
    /// (SSH_AUTH_SOCK), as git's user.signingKey. stg-restore --allowed-signers checks it.
    #[arg(long, value_name = "PATH")]
    pub signing_key: Option<PathBuf>,
    /// How much of the stream one signature covers (64K to 32M; default 4M): stg-restore
    /// holds one part in memory until its signature is checked.
    #[arg(long, value_name = "SIZE", default_value = "4M", value_parser = part_size_parser)]
    pub signature_part_size: u64,

    /// Output format of --check: text, a table for people, or json, JSON Lines for
    /// programs (default: text on a terminal, json otherwise).
    #[arg(long, value_parser = Format::text_or_json())]
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
    /// `--signing-key`, checked to be a usable Ed25519 key.
    pub signing_key: Option<PathBuf>,
    /// `--signature-part-size`, in bytes.
    pub signature_part_size: u64,
}

/// `--signature-part-size`: a size from 64 KiB to 32 MiB.
fn part_size_parser(text: &str) -> Result<u64, String> {
    let bytes = stg_core::size::parse(text)?;
    if !(64 << 10..=32 << 20).contains(&bytes) {
        return Err(format!(
            "{text:?}: a part is from 64K to 32M (stg-restore holds one in memory until its \
             signature is checked)"
        ));
    }
    Ok(bytes)
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
        let format = Format::or_default(cli.format);
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
            signing_key: match cli.signing_key {
                // Read and checked now, so a bad key fails before pg_dump starts.
                Some(path) => {
                    signing::Signer::open(&path, cli.signature_part_size)?;
                    Some(path)
                }
                None => None,
            },
            signature_part_size: cli.signature_part_size,
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
    runtime.block_on(dump::async_main(&config))
}
