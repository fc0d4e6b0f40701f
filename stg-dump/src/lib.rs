//! `stg-dump`: A production database as one masked, compressed, self-verifying stream on stdout.
//!
//! Not implemented yet: see the project's issue for this tool.

use clap::Parser;

/// Exit statuses for errors (see [`stg_core::exit`]).
pub const EXIT_CODES: stg_core::exit::Codes = stg_core::exit::Codes::STANDARD;

/// A production database as one masked, compressed, self-verifying stream on stdout.
#[derive(Parser, Debug)]
#[command(name = "stg-dump", version, about, long_about = None)]
pub struct Cli {}

/// Runs the tool; returns the exit status of a completed run.
pub fn run(_cli: Cli) -> anyhow::Result<u8> {
    Err(stg_core::Error::runtime("stg-dump is not implemented yet").into())
}
