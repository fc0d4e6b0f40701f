//! What a change makes of the hosts file: the new bytes for `apply` and `remove`, planned
//! from the file's current bytes, with the refusals (a hand-edited block, a name mapped to two
//! addresses, an ambiguous `remove`) decided before anything is written. Pure: no I/O here;
//! [`crate::change`] reads, locks and writes.

use std::path::Path;

use stg_core::Error;

use crate::check;
use crate::hosts_block::{self, HostsFile};
use crate::hosts_file::Target;
use crate::overrides::{self, Override};

/// The parsed hosts file, or a usage error naming it.
pub(crate) fn parse_hosts<'a>(path: &Path, bytes: &'a [u8]) -> anyhow::Result<HostsFile<'a>> {
    hosts_block::parse(bytes).map_err(|e| {
        Error::usage(format!(
            "hosts file {}: {e} (fix the stg-hosts markers by hand; nothing was changed)",
            path.display()
        ))
        .into()
    })
}

/// The new bytes for `apply`, after refusing a hand-edited block or a conflicting block.
pub(crate) fn apply(
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
        stg_core::format::warn(format!(
            "{} line {line} maps {name} to {found}; resolvers may use it instead of the block's {want}",
            path.display()
        ));
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
pub(crate) fn remove(
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
