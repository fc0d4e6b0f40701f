//! `stg-restore`: A stg-dump stream into a fresh staging database: verified, swapped in atomically, the previous copy kept.
//!
//! Not implemented yet: see the project's issue for this tool.

use clap::Parser;

/// Exit statuses for errors (see [`stg_core::exit`]).
pub const EXIT_CODES: stg_core::exit::Codes = stg_core::exit::Codes::STANDARD;

/// A stg-dump stream into a fresh staging database: verified, swapped in atomically, the previous copy kept.
#[derive(Parser, Debug)]
#[command(name = "stg-restore", version, about, long_about = None)]
pub struct Cli {}

/// Runs the tool; returns the exit status of a completed run.
pub fn run(_cli: Cli) -> anyhow::Result<u8> {
    Err(stg_core::Error::runtime("stg-restore is not implemented yet").into())
}
