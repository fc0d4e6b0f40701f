//! `stg-probe`: Prove staging isolation: production endpoints unreachable, names resolve to staging.
//!
//! Not implemented yet: see the project's issue for this tool.

use clap::Parser;

/// Exit statuses for errors (see [`stg_core::exit`]).
pub const EXIT_CODES: stg_core::exit::Codes = stg_core::exit::Codes::STANDARD;

/// Prove staging isolation: production endpoints unreachable, names resolve to staging.
#[derive(Parser, Debug)]
#[command(name = "stg-probe", version, about, long_about = None)]
pub struct Cli {}

/// Runs the tool; returns the exit status of a completed run.
pub fn run(_cli: Cli) -> anyhow::Result<u8> {
    Err(stg_core::Error::runtime("stg-probe is not implemented yet").into())
}
