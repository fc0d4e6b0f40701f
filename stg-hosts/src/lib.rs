//! `stg-hosts`: `/etc/hosts` override blocks from an inventory (emit, apply, check, remove).
//!
//! The flow is the house one: clap's [`Cli`] is validated into a [`Config`] (the inventory
//! loaded and its overrides computed, so every input error surfaces before any file is
//! touched), then [`run`] does the work. The block format is [`hosts_block`], what goes in
//! it is [`overrides`], the new bytes of a change are planned in [`plan`] and written by
//! [`change`] through [`hosts_file`] (locked, backed up, renamed), comparing is [`check`],
//! and what is printed is [`report`]. Not
//! for probing whether the overrides work (that is `stg-probe`, which reads `emit`'s JSON).

pub mod change;
pub mod check;
pub mod diff;
pub mod hosts_block;
pub mod hosts_file;
pub mod overrides;
pub mod plan;
pub mod report;
mod resolve;

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use stg_core::format::Format;
use stg_core::inventory::Inventory;

use crate::hosts_file::Resolve;
use crate::overrides::Override;

/// Exit statuses for errors (see [`stg_core::exit`]).
pub const EXIT_CODES: stg_core::exit::Codes = stg_core::exit::Codes::STANDARD;

/// The hosts file used when `--file` is not given.
pub const DEFAULT_HOSTS_FILE: &str = "/etc/hosts";

/// /etc/hosts override blocks from an inventory: emit, apply, check, remove.
#[derive(Parser, Debug)]
#[command(
    name = "stg-hosts",
    version,
    about,
    long_about = "Points a staging host's production names at their staging counterparts through a \
managed, checksummed block in /etc/hosts, built from the inventory (docs/inventory.md).\n\n\
Exit status: 0 done / in sync, 1 drift (check), 2 usage or input error, 3 I/O or runtime failure."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Output format: text for people, json for JSON Lines [default: text on a terminal, json otherwise]
    #[arg(long, global = true, value_parser = Format::text_or_json())]
    pub format: Option<Format>,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the overrides (hosts lines, or JSON Lines override records); change nothing.
    Emit {
        /// Where the overrides come from.
        #[command(flatten)]
        source: Source,
    },
    /// Write or update the inventory's managed block in the hosts file.
    Apply {
        /// Where the overrides come from.
        #[command(flatten)]
        source: Source,
        /// How to change the file.
        #[command(flatten)]
        change: Change,
    },
    /// Compare the hosts file with the inventory: exit 0 in sync, 1 on drift.
    Check {
        /// Where the overrides come from.
        #[command(flatten)]
        source: Source,
        /// The hosts file to check.
        #[command(flatten)]
        file: FileArgs,
    },
    /// Take a managed block out of the hosts file again.
    Remove {
        /// Remove this inventory's block (only its name is used) [default: the only block]
        #[arg(short, long, value_name = "PATH", conflicts_with = "name")]
        inventory: Option<PathBuf>,
        /// Remove the block of this inventory name [default: the only block]
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// How to change the file.
        #[command(flatten)]
        change: Change,
    },
}

/// Inventory options.
#[derive(Args, Debug)]
pub struct Source {
    /// The inventory JSON file, or - for stdin
    #[arg(short, long, value_name = "PATH")]
    pub inventory: PathBuf,
    /// Look up staging names that have no address in the inventory (needs working DNS)
    #[arg(long)]
    pub resolve: bool,
}

/// Which hosts file, and how symbolic links on the way to it are treated.
#[derive(Args, Debug)]
pub struct FileArgs {
    /// The hosts file (a path inside --root when given)
    #[arg(long, value_name = "PATH", default_value = DEFAULT_HOSTS_FILE)]
    pub file: PathBuf,
    /// Resolve --file inside DIR as if DIR were / (a chroot or container tree): no link leads out of it
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Follow symbolic links to the hosts file, only below the directory holding it (or inside --root); refused otherwise
    #[arg(long)]
    pub follow_symlink: bool,
}

impl FileArgs {
    fn into_config(self) -> FileConfig {
        FileConfig {
            path: self.file,
            resolve: Resolve {
                root: self.root,
                follow_symlink: self.follow_symlink,
            },
        }
    }
}

/// Validated [`FileArgs`].
#[derive(Debug)]
pub struct FileConfig {
    /// The path as given.
    pub path: PathBuf,
    /// How links are resolved.
    pub resolve: Resolve,
}

/// Options of the commands that change the hosts file.
#[derive(Args, Debug)]
pub struct Change {
    /// The hosts file to change.
    #[command(flatten)]
    pub file: FileArgs,
    /// Show the diff; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Overwrite or remove a block that was edited by hand
    #[arg(long)]
    pub force: bool,
    /// Keep this many backups (FILE.stg-bak.YYYYMMDDTHHMMSSZ) of the file, deleting older ones
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_backups: u32,
}

/// The validated configuration of one run.
#[derive(Debug)]
pub struct Config {
    /// Output format, with the terminal default applied.
    pub format: Format,
    /// What to do.
    pub action: Action,
}

/// A validated subcommand.
#[derive(Debug)]
pub enum Action {
    /// Print the overrides.
    Emit {
        /// The inventory's name.
        inventory: String,
        /// The overrides, sorted.
        overrides: Vec<Override>,
    },
    /// Write the block.
    Apply {
        /// The inventory's name, which names the block.
        inventory: String,
        /// The overrides, sorted.
        overrides: Vec<Override>,
        /// How to change the file.
        change: ChangeConfig,
    },
    /// Compare the file with the overrides.
    Check {
        /// The inventory's name.
        inventory: String,
        /// The overrides, sorted.
        overrides: Vec<Override>,
        /// The hosts file.
        file: FileConfig,
    },
    /// Remove a block.
    Remove {
        /// The block's name; `None` for the only block in the file.
        name: Option<String>,
        /// How to change the file.
        change: ChangeConfig,
    },
}

/// Validated [`Change`].
#[derive(Debug)]
pub struct ChangeConfig {
    /// The hosts file.
    pub file: FileConfig,
    /// Show the diff only.
    pub dry_run: bool,
    /// Overwrite a hand-edited block.
    pub force: bool,
    /// Backups to keep (at least 1).
    pub keep_backups: usize,
}

impl From<Change> for ChangeConfig {
    fn from(c: Change) -> Self {
        ChangeConfig {
            file: c.file.into_config(),
            dry_run: c.dry_run,
            force: c.force,
            keep_backups: c.keep_backups as usize,
        }
    }
}

fn load(source: &Source) -> anyhow::Result<(String, Vec<Override>)> {
    let inventory = Inventory::load(&source.inventory)?;
    let overrides = overrides::from_inventory(&inventory, source.resolve)?;
    Ok((inventory.name, overrides))
}

impl Config {
    /// Validates the command line: loads the inventory and computes the overrides.
    pub fn from_cli(cli: Cli) -> anyhow::Result<Config> {
        let format = Format::or_default(cli.format);
        let action = match cli.command {
            Command::Emit { source } => {
                let (inventory, overrides) = load(&source)?;
                Action::Emit {
                    inventory,
                    overrides,
                }
            }
            Command::Apply { source, change } => {
                let (inventory, overrides) = load(&source)?;
                Action::Apply {
                    inventory,
                    overrides,
                    change: change.into(),
                }
            }
            Command::Check { source, file } => {
                let (inventory, overrides) = load(&source)?;
                Action::Check {
                    inventory,
                    overrides,
                    file: file.into_config(),
                }
            }
            Command::Remove {
                inventory,
                name,
                change,
            } => {
                let name = match (inventory, name) {
                    (Some(path), _) => Some(Inventory::load(&path)?.name),
                    (None, Some(name)) => Some(name),
                    (None, None) => None,
                };
                Action::Remove {
                    name,
                    change: change.into(),
                }
            }
        };
        Ok(Config { format, action })
    }
}

/// Runs the tool; returns the exit status of a completed run.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    let Config { format, action } = Config::from_cli(cli)?;
    // stdout, which a reader may close early without changing the exit status.
    let mut out = BufWriter::new(stg_core::output::stdout());
    let code = match action {
        Action::Emit {
            inventory,
            overrides,
        } => {
            report::emit(format, &mut out, &inventory, &overrides)?;
            stg_core::exit::OK
        }
        Action::Apply {
            inventory,
            overrides,
            change,
        } => {
            let (target, outcome) = change::apply(&inventory, &overrides, &change)?;
            let subject = report::Subject {
                action: "apply",
                block: Some(&inventory),
                overrides: Some(overrides.len()),
            };
            report::change(format, &mut out, &subject, &change, &target, &outcome)?;
            stg_core::exit::OK
        }
        Action::Check {
            inventory,
            overrides,
            file,
        } => {
            let checked = change::check(&inventory, &overrides, &file)?;
            report::check(format, &mut out, &inventory, &overrides, &checked)?;
            if checked.in_sync() {
                stg_core::exit::OK
            } else {
                stg_core::exit::FOUND
            }
        }
        Action::Remove { name, change } => {
            let (target, outcome, block) = change::remove(name, &change)?;
            let subject = report::Subject {
                action: "remove",
                block: block.as_deref(),
                overrides: None,
            };
            report::change(format, &mut out, &subject, &change, &target, &outcome)?;
            stg_core::exit::OK
        }
    };
    out.flush()?;
    Ok(code)
}
