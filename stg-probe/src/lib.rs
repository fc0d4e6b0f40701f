//! `stg-probe`: prove staging isolation. From a staging host, every production endpoint of
//! the inventory must refuse, drop or be unreachable (`blocked`), names that should point at
//! staging must resolve through the system resolver only to staging addresses (`resolves`),
//! and staging services must answer (`reachable`). Input is the inventory, or JSON Lines on
//! stdin (stg-hosts' `override` records, explicit `target` records). Exit codes follow
//! Nagios: 0 OK, 1 inconclusive (or a staging service down), 2 breach, 3 error.
//!
//! Modules: [`plan`] (what to check), [`input`] (stdin records), [`resolve`] (getaddrinfo),
//! [`execute`] (bounded concurrent probing), [`report`] (output, exit status). Not for
//! changing anything: the probe only resolves names and opens TCP connections.

pub mod execute;
pub mod input;
pub mod plan;
pub mod report;
pub mod resolve;

use std::io::{BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use stg_core::exit::Error;
use stg_core::inventory::Inventory;

use crate::execute::Options;
use crate::plan::{Check, Ranges};
use stg_core::format::Format;

/// Exit statuses for errors: every error is Nagios UNKNOWN (3), since 2 means a breach.
pub const EXIT_CODES: stg_core::exit::Codes = stg_core::exit::Codes::NAGIOS;

/// Prove staging isolation: production endpoints unreachable, names resolve to staging.
///
/// Exit status (Nagios): 0 OK, 1 inconclusive or a staging service down, 2 breach,
/// 3 error (bad input, bad flag). See docs/stg-probe.md.
#[derive(Parser, Debug)]
#[command(name = "stg-probe", version, about, long_about = None)]
#[command(after_help = "Examples:\n  \
    stg-probe --inventory staging.json\n  \
    stg-hosts emit --inventory staging.json --format json | stg-probe\n  \
    stg-probe --inventory staging.json --format nagios\n\n\
    Exit status: 0 OK, 1 inconclusive or a staging service down, 2 breach, 3 error.")]
pub struct Cli {
    /// Inventory file: its production endpoints must be blocked, its staging names resolve
    /// to staging, its staging endpoints answer ('-' reads stdin).
    #[arg(short, long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,

    /// JSON Lines of `override` and `target` records ('-' for stdin). Without --inventory
    /// and without this flag, stdin is read.
    #[arg(short, long, value_name = "FILE")]
    pub targets: Option<PathBuf>,

    /// Output format [default: text on a terminal, json otherwise].
    #[arg(short, long, value_enum)]
    pub format: Option<Format>,

    /// Time one TCP connection attempt may take before it counts as `timeout`.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = stg_core::duration::clap_parser)]
    pub timeout: Duration,

    /// Most name resolutions or connections in flight at once (the open-files limit is
    /// raised to fit, up to its hard limit).
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub concurrency: u32,

    /// Overall time limit; checks unfinished then are reported as `deadline` (inconclusive).
    #[arg(long, value_name = "DURATION", default_value = "50s", value_parser = stg_core::duration::clap_parser)]
    pub deadline: Duration,
}

/// The validated configuration of one run.
#[derive(Debug)]
pub struct Config {
    /// Every check to run, deduplicated, in input order.
    pub checks: Vec<Check>,
    /// Address ranges from the inventory (empty without one).
    pub ranges: Ranges,
    /// Output format.
    pub format: Format,
    /// Timeouts and concurrency.
    pub options: Options,
}

fn read_targets(path: &Path) -> anyhow::Result<Vec<Check>> {
    if path == Path::new("-") {
        let stdin = std::io::stdin();
        input::read_checks(stdin.lock(), "<stdin>")
    } else {
        let file = std::fs::File::open(path)
            .map_err(|e| Error::usage(format!("cannot read targets {}: {e}", path.display())))?;
        input::read_checks(BufReader::new(file), &path.display().to_string())
    }
}

impl Config {
    /// Validates the command line and reads the inventory and the input records.
    pub fn from_cli(cli: Cli) -> anyhow::Result<Config> {
        let Cli {
            inventory: inventory_path,
            targets,
            format,
            timeout,
            concurrency,
            deadline,
        } = cli;
        if timeout.is_zero() {
            stg_core::bail_usage!("--timeout must be more than 0");
        }
        if deadline.is_zero() {
            stg_core::bail_usage!("--deadline must be more than 0");
        }
        let stdin_targets = match (&inventory_path, &targets) {
            (_, Some(path)) => Some(path.clone()),
            (None, None) => {
                if std::io::stdin().is_terminal() {
                    stg_core::bail_usage!(
                        "nothing to check: give --inventory FILE, or pipe JSON Lines targets on stdin \
                         (e.g. stg-hosts emit --format json | stg-probe)"
                    );
                }
                Some(PathBuf::from("-"))
            }
            (Some(_), None) => None,
        };
        if inventory_path.as_deref() == Some(Path::new("-"))
            && stdin_targets.as_deref() == Some(Path::new("-"))
        {
            stg_core::bail_usage!(
                "--inventory - and targets on stdin cannot both read stdin; use a file for one"
            );
        }
        let inventory = inventory_path.as_deref().map(Inventory::load).transpose()?;
        let mut checks = inventory
            .as_ref()
            .map(plan::from_inventory)
            .unwrap_or_default();
        if let Some(path) = &stdin_targets {
            let mut extra = read_targets(path).context("while reading targets")?;
            if let Some(inventory) = &inventory {
                plan::apply_inventory(&mut extra, inventory);
            }
            checks.extend(extra);
        }
        let checks = plan::dedup(checks);
        if checks.is_empty() {
            // An inventory always gives checks (every service has a production name).
            stg_core::bail_usage!("no targets to check in the input: an empty list proves nothing");
        }
        let format = Format::or_default(format);
        let concurrency = fit_open_files(concurrency);
        Ok(Config {
            checks,
            ranges: inventory.as_ref().map(plan::ranges).unwrap_or_default(),
            format,
            options: Options {
                timeout,
                concurrency: concurrency as usize,
                deadline,
            },
        })
    }
}

/// Raises the soft open-files limit so `concurrency` sockets fit (plus room for stdio and
/// the resolver), up to the hard limit; returns the concurrency that fits. A common soft
/// limit of 1024 would otherwise turn a wide probe into "too many open files".
fn fit_open_files(concurrency: u32) -> u32 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    const SPARE: u64 = 64;
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return concurrency;
    };
    let wanted = u64::from(concurrency) + SPARE;
    let soft =
        if wanted > soft && setrlimit(Resource::RLIMIT_NOFILE, wanted.min(hard), hard).is_ok() {
            wanted.min(hard)
        } else {
            soft
        };
    let fits = u32::try_from(soft.saturating_sub(SPARE).max(1)).unwrap_or(u32::MAX);
    if fits < concurrency {
        stg_core::format::warn(format!("open-files limit {soft} allows only {fits} connections at once (asked for {concurrency})"));
    }
    concurrency.min(fits)
}

/// Runs the tool; returns the Nagios exit status of a completed run.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    let config = Config::from_cli(cli)?;
    let start = Instant::now();
    let run = execute::execute(&config.checks, &config.ranges, config.options)?;
    let summary = report::summarize(&run, start.elapsed());
    // A reader gone early (`| head -1`) does not change the verdict: see stg_core::output.
    report::write(
        std::io::BufWriter::new(stg_core::output::stdout()),
        config.format,
        &run,
        &summary,
    )
    .context("while writing the report")?;
    Ok(summary.exit_code)
}
