//! `stg-hosts`: `/etc/hosts` override blocks from an inventory (emit, apply, check, remove).
//!
//! The flow is the house one: clap's [`Cli`] is validated into a [`Config`] (the inventory
//! loaded and its overrides computed, so every input error surfaces before any file is
//! touched), then [`run`] does the work. The block format is [`hosts_block`], what goes in
//! it is [`overrides`], comparing is [`check`], and writing safely is [`hosts_file`]. Not
//! for probing whether the overrides work (that is `stg-probe`, which reads `emit`'s JSON).

pub mod check;
pub mod diff;
pub mod hosts_block;
pub mod hosts_file;
pub mod overrides;

use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::json;
use stg_core::inventory::Inventory;
use stg_core::jsonl;
use stg_core::terminal::escape;
use stg_core::Error;

use crate::hosts_block::HostsFile;
use crate::hosts_file::{Method, Resolve, Target};
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
    #[arg(long, global = true, value_enum)]
    pub format: Option<Format>,
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Lines for people (hosts lines for `emit`).
    Text,
    /// JSON Lines with a closing summary record.
    Json,
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
        let format = cli.format.unwrap_or(if std::io::stdout().is_terminal() {
            Format::Text
        } else {
            Format::Json
        });
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
    let config = Config::from_cli(cli)?;
    let mut out = BufWriter::new(stg_core::output::stdout());
    let code = match config.action {
        Action::Emit {
            inventory,
            overrides,
        } => emit(config.format, &mut out, &inventory, &overrides)?,
        Action::Apply {
            inventory,
            overrides,
            change,
        } => apply(config.format, &mut out, &inventory, &overrides, &change)?,
        Action::Check {
            inventory,
            overrides,
            file,
        } => check(config.format, &mut out, &inventory, &overrides, &file)?,
        Action::Remove { name, change } => remove(config.format, &mut out, name, &change)?,
    };
    out.flush()?;
    Ok(code)
}

/// The report's output: stdout, which a reader may close early without changing the exit
/// status (see [`stg_core::output`]).
type Out = BufWriter<stg_core::output::Stdout>;

fn emit(
    format: Format,
    out: &mut Out,
    inventory: &str,
    overrides: &[Override],
) -> anyhow::Result<u8> {
    match format {
        Format::Text => {
            for line in overrides::hosts_lines(overrides) {
                writeln!(out, "{line}")?;
            }
        }
        Format::Json => {
            let mut w = jsonl::Writer::new(&mut *out);
            for o in overrides {
                w.write(o)?;
            }
            let mut addresses: Vec<_> = overrides.iter().map(|o| o.address).collect();
            addresses.dedup();
            w.write(&json!({
                "type": "summary",
                "inventory": inventory,
                "overrides": overrides.len(),
                "addresses": addresses.len(),
            }))?;
        }
    }
    Ok(stg_core::exit::OK)
}

fn parse_hosts<'a>(path: &Path, bytes: &'a [u8]) -> anyhow::Result<HostsFile<'a>> {
    hosts_block::parse(bytes).map_err(|e| {
        Error::usage(format!(
            "hosts file {}: {e} (fix the stg-hosts markers by hand; nothing was changed)",
            path.display()
        ))
        .into()
    })
}

/// The new bytes for `apply`, after refusing a hand-edited block or a conflicting block.
fn plan_apply(
    target: &Target,
    bytes: &[u8],
    inventory: &str,
    overrides: &[Override],
    force: bool,
) -> anyhow::Result<Vec<u8>> {
    let path = target.path();
    let file = parse_hosts(path, bytes)?;
    if let Some(block) = file.block(inventory) {
        if block.is_hand_edited() && !force {
            stg_core::bail_usage!(
                "hosts file {}: block {inventory} (line {}) was edited by hand; `stg-hosts check` shows how, --force overwrites it",
                path.display(),
                block.begin + 1
            );
        }
    }
    for d in check::compare(&file, inventory, overrides) {
        if d.kind != check::Kind::Conflict {
            continue;
        }
        let (name, line) = (d.name.unwrap_or_default(), d.line.unwrap_or(0));
        let (want, found) = (
            d.address.map(|a| a.to_string()).unwrap_or_default(),
            d.found.map(|a| a.to_string()).unwrap_or_default(),
        );
        if let Some(other) = d.block {
            stg_core::bail_usage!(
                "hosts file {}: {name} is {found} in block {other} (line {line}) but {want} in inventory {inventory}: a name mapped to two addresses",
                path.display()
            );
        }
        eprintln!(
            "stg-hosts: warning: {} line {line} maps {name} to {found}; resolvers may use it instead of the block's {want}",
            path.display()
        );
    }
    let body = overrides::block_body(inventory, overrides);
    with_context_usage(path, hosts_block::with_block(bytes, inventory, &body))
}

fn with_context_usage(
    path: &Path,
    r: Result<Vec<u8>, hosts_block::ParseError>,
) -> anyhow::Result<Vec<u8>> {
    r.map_err(|e| Error::usage(format!("hosts file {}: {e}", path.display())).into())
}

/// The new bytes for `remove`, and the name of the block removed (`None`: no such block).
fn plan_remove(
    target: &Target,
    bytes: &[u8],
    name: Option<&str>,
    force: bool,
) -> anyhow::Result<(Vec<u8>, Option<String>)> {
    let path = target.path();
    let file = parse_hosts(path, bytes)?;
    let block = match name {
        Some(name) => file.block(name),
        None => match file.blocks.as_slice() {
            [] => None,
            [only] => Some(only),
            several => {
                let names: Vec<&str> = several.iter().map(|b| b.name.as_str()).collect();
                stg_core::bail_usage!(
                    "hosts file {} has several stg-hosts blocks ({}); say which with --name or --inventory",
                    path.display(),
                    names.join(", ")
                );
            }
        },
    };
    let Some(block) = block else {
        return Ok((bytes.to_vec(), None));
    };
    if block.is_hand_edited() && !force {
        stg_core::bail_usage!(
            "hosts file {}: block {} (line {}) was edited by hand; --force removes it anyway",
            path.display(),
            block.name,
            block.begin + 1
        );
    }
    let name = block.name.clone();
    let new = with_context_usage(path, hosts_block::without_block(bytes, &name))?;
    Ok((new, Some(name)))
}

/// The outcome of a change, for the report.
struct Outcome {
    changed: bool,
    written: Option<hosts_file::Written>,
    diff: String,
}

/// Plans on a plain read; when there is something to do and it is not a dry run, checks
/// that the host is staging (when `guard` names the action), takes the lock, re-reads and
/// plans again, and writes.
fn change_file(
    change: &ChangeConfig,
    guard: Option<&str>,
    plan: impl Fn(&Target, &[u8]) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<(Target, Outcome)> {
    let target = Target::new(&change.file.path, &change.file.resolve)?;
    let before = target.read()?;
    let after = plan(&target, &before)?;
    let diff = diff::unified(&before, &after, &target.path().display().to_string());
    if before == after || change.dry_run {
        let changed = before != after;
        return Ok((
            target,
            Outcome {
                changed,
                written: None,
                diff,
            },
        ));
    }
    if let Some(action) = guard {
        // Staging overrides on a production host would send production to staging.
        stg_core::host::require_staging(&format!("{action} in {}", target.path().display()))?;
    }
    let locked = target.lock()?;
    let before = locked.read()?;
    let after = plan(&target, &before)?;
    if before == after {
        drop(locked);
        return Ok((
            target,
            Outcome {
                changed: false,
                written: None,
                diff: String::new(),
            },
        ));
    }
    let diff = diff::unified(&before, &after, &target.path().display().to_string());
    let written = locked.replace(&before, &after, change.keep_backups)?;
    drop(locked);
    Ok((
        target,
        Outcome {
            changed: true,
            written: Some(written),
            diff,
        },
    ))
}

/// What a change was about, for the report.
struct Subject<'a> {
    action: &'a str,
    block: Option<&'a str>,
    overrides: Option<usize>,
}

fn report_change(
    format: Format,
    out: &mut Out,
    subject: &Subject<'_>,
    change: &ChangeConfig,
    target: &Target,
    outcome: &Outcome,
) -> anyhow::Result<()> {
    let Subject {
        action,
        block,
        overrides,
    } = *subject;
    let file = target.path().display().to_string();
    let backup = outcome
        .written
        .as_ref()
        .map(|w| w.backup.display().to_string());
    let method = outcome.written.as_ref().map(|w| w.method);
    let pruned: Vec<String> = outcome
        .written
        .as_ref()
        .map(|w| w.pruned.iter().map(|p| p.display().to_string()).collect())
        .unwrap_or_default();
    match format {
        Format::Json => {
            let mut w = jsonl::Writer::new(&mut *out);
            if change.dry_run && outcome.changed {
                w.write(&json!({"type": "diff", "file": file, "diff": outcome.diff}))?;
            }
            w.write(&json!({
                "type": "summary",
                "action": action,
                "file": file,
                "block": block,
                "overrides": overrides,
                "changed": outcome.changed,
                "dry_run": change.dry_run,
                "method": method,
                "backup": backup,
                "pruned_backups": pruned,
            }))?;
        }
        Format::Text => {
            if change.dry_run {
                out.write_all(outcome.diff.as_bytes())?;
            }
            let block = block.unwrap_or("(none)");
            let verb = if !outcome.changed {
                "unchanged"
            } else if change.dry_run {
                "would change"
            } else {
                "changed"
            };
            // Paths resolved through links may hold any bytes: escaped for the terminal.
            let file = escape(&file);
            write!(out, "{verb} {file}: {action} block {block}")?;
            if let Some(n) = overrides {
                write!(out, " ({n} names)")?;
            }
            if let Some(backup) = &backup {
                write!(out, "; backup {}", escape(backup))?;
            }
            if method == Some(Method::InPlace) {
                write!(out, "; written in place (the file is a mount point)")?;
            }
            writeln!(out)?;
        }
    }
    Ok(())
}

fn apply(
    format: Format,
    out: &mut Out,
    inventory: &str,
    overrides: &[Override],
    change: &ChangeConfig,
) -> anyhow::Result<u8> {
    let (target, outcome) = change_file(
        change,
        Some("point production names at staging addresses"),
        |target, bytes| plan_apply(target, bytes, inventory, overrides, change.force),
    )?;
    report_change(
        format,
        out,
        &Subject {
            action: "apply",
            block: Some(inventory),
            overrides: Some(overrides.len()),
        },
        change,
        &target,
        &outcome,
    )?;
    Ok(stg_core::exit::OK)
}

fn remove(
    format: Format,
    out: &mut Out,
    name: Option<String>,
    change: &ChangeConfig,
) -> anyhow::Result<u8> {
    let found = std::cell::RefCell::new(None);
    let (target, outcome) = change_file(change, None, |target, bytes| {
        let (new, block) = plan_remove(target, bytes, name.as_deref(), change.force)?;
        *found.borrow_mut() = block;
        Ok(new)
    })?;
    let block = found.into_inner().or(name);
    report_change(
        format,
        out,
        &Subject {
            action: "remove",
            block: block.as_deref(),
            overrides: None,
        },
        change,
        &target,
        &outcome,
    )?;
    Ok(stg_core::exit::OK)
}

fn check(
    format: Format,
    out: &mut Out,
    inventory: &str,
    overrides: &[Override],
    file: &FileConfig,
) -> anyhow::Result<u8> {
    let target = Target::new(&file.path, &file.resolve)?;
    let bytes = target.read()?;
    let hosts = parse_hosts(target.path(), &bytes)?;
    let drifts = check::compare(&hosts, inventory, overrides);
    let count = |k: check::Kind| drifts.iter().filter(|d| d.kind == k).count();
    let present = hosts.block(inventory).is_some();
    let in_sync = drifts.is_empty() && present;
    let path = target.path().display().to_string();
    match format {
        Format::Json => {
            let mut w = jsonl::Writer::new(&mut *out);
            for d in &drifts {
                w.write(d)?;
            }
            w.write(&json!({
                "type": "summary",
                "file": path,
                "block": inventory,
                "present": present,
                "in_sync": in_sync,
                "hand_edited": count(check::Kind::HandEdited) > 0,
                "missing": count(check::Kind::Missing),
                "stale": count(check::Kind::Stale),
                "extra": count(check::Kind::Extra),
                "conflicts": count(check::Kind::Conflict),
                "overrides": overrides.len(),
            }))?;
        }
        Format::Text => {
            let path = escape(&path);
            for d in &drifts {
                writeln!(out, "{}", d.to_text())?;
            }
            if in_sync {
                writeln!(
                    out,
                    "in sync: {path} block {inventory} ({} names)",
                    overrides.len()
                )?;
            } else {
                writeln!(
                    out,
                    "drift: {path} block {inventory}{}: {} difference(s)",
                    if present { "" } else { " is missing" },
                    drifts.len()
                )?;
            }
        }
    }
    Ok(if in_sync {
        stg_core::exit::OK
    } else {
        stg_core::exit::FOUND
    })
}
