//! `stg-age`: how long each staging-only change, and each synced database, has lived.
//!
//! The flow is the house's: clap [`Cli`] -> validated [`Config`] ([`Config::from_cli`]) ->
//! [`run`]. Finding staging-only changes is [`scan`] (with the line matcher in
//! [`conditions`] and path patterns in [`glob`]), dating them is [`git`], silencing them is
//! [`ignore_file`], reporting is [`report`]; `stg-age databases` is [`databases`].
//! See `docs/stg-age.md`.

pub mod cache;
pub mod conditions;
pub mod databases;
mod dating;
pub mod git;
pub mod glob;
pub mod history;
pub mod ignore_file;
pub mod objects;
pub mod patches;
pub mod replay;
pub mod report;
pub mod scan;
pub mod trace;

use std::io::Write;

use anyhow::Context;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use stg_core::conn::{Conn, ConnArgs};
use stg_core::Error;
use time::OffsetDateTime;

pub use stg_core::format::Format;

/// Exit statuses for errors (see [`stg_core::exit`]).
pub const EXIT_CODES: stg_core::exit::Codes = stg_core::exit::Codes::STANDARD;

const AFTER_HELP: &str = "\
Examples:
  stg-age --repo /srv/ansible                     every staging-only change, with its age
  stg-age --repo /srv/ansible --max-age 90d       cron: exit 1 and list what is older
  stg-age --repo . --format text | head           oldest first, as a table
  stg-age databases -h db02.stg --max-age 30d     age of each staging database's last sync
  stg-age --repo /srv/ansible --no-cache          date everything from git, as on a first run

Exit status: 0 nothing over --max-age; 1 something over it (or an expired .stg-age-ignore entry);
2 usage or input error (not a git repository, shallow clone, bad duration, bad ignore file);
3 runtime failure (git failed, database unreachable).
Environment (databases): PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE PGPASSFILE PGSSLMODE
PGSSLROOTCERT PGSSLCERT PGSSLKEY.
See docs/stg-age.md.";

/// How long each staging-only change, and each synced database, has lived.
///
/// Finds the staging-only changes of an Ansible tree (staging variant files such as
/// `*.staging`, and conditions such as `when: env == "staging"`) and dates each one with
/// git: for a line, `git blame -w -M -C` honouring `.git-blame-ignore-revs`; for a file,
/// the commit that added it. `stg-age databases` reports how long ago each staging
/// database was synced from production.
#[derive(Parser, Debug)]
#[command(
    name = "stg-age",
    version,
    disable_help_flag = true,
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// What to measure (default: the staging-only changes of --repo).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Repository scan options.
    #[command(flatten)]
    pub repo: RepoArgs,

    /// Options of every mode.
    #[command(flatten)]
    pub common: CommonArgs,

    /// Print help.
    #[arg(long, action = clap::ArgAction::Help, global = true)]
    pub help: Option<bool>,

    /// Connection options (libpq style) of `stg-age databases`, before or after the word
    /// `databases`; the repository scan connects to nothing.
    #[command(
        flatten,
        next_help_heading = "Connection (stg-age databases only; before or after `databases`)"
    )]
    pub conn: ConnArgs,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Age of each staging database's last sync from production (stg-restore provenance).
    #[command(disable_help_flag = true)]
    Databases,
}

/// Options of the repository scan.
#[derive(Args, Debug)]
pub struct RepoArgs {
    /// The Ansible work tree to scan (a git checkout; a subdirectory scans only that part;
    /// default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,

    /// The environment variable compared with "staging" (default: env).
    #[arg(long = "var", value_name = "NAME")]
    pub var: Option<String>,

    /// A value compared with the variable that marks an environment-only change (repeatable;
    /// default: staging). Add `--value production` to count `env == 'production'` too.
    #[arg(long = "value", value_name = "WORD")]
    pub values: Vec<String>,

    /// A staging variant file pattern (repeatable; replaces the defaults: *.staging, *.stg.*,
    /// *-stg, group_vars/staging, group_vars/*_stg, host_vars/*stg*).
    #[arg(long = "variant", value_name = "GLOB")]
    pub variants: Vec<String>,

    /// A commit whose changes blame looks through, like .git-blame-ignore-revs (repeatable).
    #[arg(long = "ignore-rev", value_name = "REV")]
    pub ignore_revs: Vec<String>,

    /// The ignore file (default: .stg-age-ignore at the top of the work tree, if present).
    #[arg(long = "ignore-file", value_name = "FILE")]
    pub ignore_file: Option<PathBuf>,

    /// Files dated in parallel (default: the available cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub jobs: Option<u32>,

    /// Keep dates between runs in DIR (default: $XDG_CACHE_HOME/stg-age, else
    /// ~/.cache/stg-age). A result is reused only where it cannot differ from a run
    /// without the cache; delete the directory to clear it.
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    pub cache: Option<PathBuf>,

    /// Neither read nor write the cache: date everything from git.
    #[arg(long = "no-cache")]
    pub no_cache: bool,
}

/// Options every mode takes.
#[derive(Args, Debug)]
pub struct CommonArgs {
    /// Report (and exit 1) when something is older than this, e.g. 90d, 12w.
    #[arg(long = "max-age", value_name = "DURATION", global = true, value_parser = stg_core::duration::clap_parser)]
    pub max_age: Option<Duration>,

    /// Measure ages at this moment (RFC 3339) instead of now, for reproducible reports.
    #[arg(long, value_name = "TIME", global = true, value_parser = stg_core::timestamp::parse)]
    pub now: Option<OffsetDateTime>,

    /// Output format (default: text on a terminal, json otherwise).
    #[arg(long, global = true, value_parser = Format::text_or_json())]
    pub format: Option<Format>,
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Output format.
    pub format: Format,
    /// What to measure.
    pub action: Action,
    /// Ages and the threshold.
    pub judge: report::Judge,
}

/// What to measure.
#[derive(Debug)]
pub enum Action {
    /// The staging-only changes of a work tree.
    Repo(Box<RepoConfig>),
    /// The databases of a staging server.
    Databases(Conn),
}

/// A validated repository scan.
#[derive(Debug)]
pub struct RepoConfig {
    /// What to scan and how.
    pub scan: scan::ScanOptions,
    /// The ignore file's name, for messages and `expired_ignore` records.
    pub ignore_source: String,
}

impl Config {
    /// Validates the command line: the repository is a full (not shallow) git work tree,
    /// the variable name and patterns are valid, the ignored revisions are commits, the
    /// ignore file parses.
    pub fn from_cli(cli: Cli) -> anyhow::Result<Config> {
        let now = cli
            .common
            .now
            .unwrap_or_else(stg_core::timestamp::now)
            .to_offset(time::UtcOffset::UTC);
        let judge = report::Judge {
            now,
            max_age: cli.common.max_age,
        };
        let format = Format::or_default(cli.common.format);
        let action = match cli.command {
            Some(Command::Databases) => {
                if let Some(flag) = cli.repo.first_given() {
                    stg_core::bail_usage!(
                        "{flag} is an option of the repository scan, not of `stg-age databases`"
                    );
                }
                let dbname = std::env::var("PGDATABASE")
                    .ok()
                    .filter(|d| !d.is_empty())
                    .unwrap_or_else(|| "postgres".to_owned());
                Action::Databases(Conn::resolve(&cli.conn, Some(&dbname)))
            }
            None => {
                if let Some(flag) = cli.conn.first_given() {
                    stg_core::bail_usage!(
                        "{flag} is an option of `stg-age databases`; the repository scan connects to no database"
                    );
                }
                Action::Repo(Box::new(repo_config(cli.repo, now)?))
            }
        };
        Ok(Config {
            format,
            action,
            judge,
        })
    }
}

impl RepoArgs {
    /// The first scan option given, by its flag, for refusing it where there is no scan.
    fn first_given(&self) -> Option<&'static str> {
        [
            ("--repo", self.repo.is_some()),
            ("--var", self.var.is_some()),
            ("--value", !self.values.is_empty()),
            ("--variant", !self.variants.is_empty()),
            ("--ignore-rev", !self.ignore_revs.is_empty()),
            ("--ignore-file", self.ignore_file.is_some()),
            ("--jobs", self.jobs.is_some()),
            ("--cache", self.cache.is_some()),
            ("--no-cache", self.no_cache),
        ]
        .into_iter()
        .find_map(|(flag, given)| given.then_some(flag))
    }
}

fn repo_config(args: RepoArgs, now: OffsetDateTime) -> anyhow::Result<RepoConfig> {
    let dir = args.repo.unwrap_or_else(|| PathBuf::from("."));
    if !dir.is_dir() {
        stg_core::bail_usage!("--repo {}: no such directory", dir.display());
    }
    let top = match git::toplevel(&dir)? {
        Ok(top) => top,
        Err(why) => stg_core::bail_usage!(
            "--repo {}: not a git repository (or not a work tree); stg-age dates changes with git (git says: {why})",
            dir.display()
        ),
    };
    if git::is_shallow(&top)? {
        stg_core::bail_usage!(
            "--repo {}: is a shallow clone, so every line would seem to date from its oldest \
             fetched commit and ages would be wrong; run `git fetch --unshallow` first",
            dir.display()
        );
    }
    let values: Vec<&str> = if args.values.is_empty() {
        vec![conditions::STAGING]
    } else {
        args.values.iter().map(String::as_str).collect()
    };
    let matcher = conditions::Matcher::with_values(args.var.as_deref().unwrap_or("env"), &values)
        .map_err(|e| Error::usage(format!("--var/--value: {e}")))?;
    let patterns: Vec<String> = if args.variants.is_empty() {
        glob::DEFAULT_VARIANTS
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    } else {
        args.variants
    };
    let variants = patterns
        .iter()
        .map(|p| glob::Glob::new(p, false).map_err(|e| Error::usage(format!("--variant: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    for rev in &args.ignore_revs {
        if !git::is_commit(&top, rev)? {
            stg_core::bail_usage!("--ignore-rev {rev}: not a commit in {}", top.display());
        }
    }
    let (ignore_path, optional) = match args.ignore_file {
        Some(path) => (path, false),
        None => (top.join(".stg-age-ignore"), true),
    };
    let ignore = ignore_file::IgnoreList::load(&ignore_path, optional).map_err(Error::usage)?;
    let ignore_source = if optional {
        ".stg-age-ignore".to_owned()
    } else {
        ignore_path.display().to_string()
    };
    let jobs = args.jobs.map_or_else(scan::default_jobs, |j| j as usize);
    Ok(RepoConfig {
        scan: scan::ScanOptions {
            dir,
            blame: git::BlameOptions {
                ignore_revs_file: scan::blame_ignore_revs_file(&top).map_err(Error::usage)?,
                ignore_revs: args.ignore_revs,
            },
            top_canonical: top.canonicalize().unwrap_or_else(|_| top.clone()),
            top,
            matcher,
            variants,
            ignore,
            today: now.date(),
            jobs,
            cache: if args.no_cache {
                None
            } else {
                args.cache.or_else(cache::default_dir)
            },
        },
        ignore_source,
    })
}

/// Runs the tool; returns the exit status of a completed run.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    let config = Config::from_cli(cli)?;
    // A reader gone early (`| head`) does not change the verdict: see stg_core::output.
    let mut out = std::io::BufWriter::new(stg_core::output::stdout());
    let code = match &config.action {
        Action::Repo(repo) => {
            let found = scan::scan(&repo.scan)?;
            report::write_repo_report(
                &mut out,
                config.format,
                &found,
                &repo.scan.ignore,
                &repo.ignore_source,
                &config.judge,
            )?
        }
        Action::Databases(conn) => databases::run(conn, config.format, &config.judge, &mut out)?,
    };
    // A BufWriter flushes on drop but swallows the error there; a full disk is a failure.
    out.flush().context("while writing the report")?;
    Ok(code)
}
