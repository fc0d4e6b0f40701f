//! What the managed block says: from the inventory, every production name of every service
//! mapped to the address of its staging counterpart, sorted, and rendered as hosts lines.
//!
//! The staging address comes from the inventory; a target with only a name is resolved
//! (through the system resolver, so DNS and `/etc/hosts`) only when `--resolve` is given.
//! A resolved address inside a production range (in any spelling) is refused like one
//! written in the inventory. Addresses are written in their canonical form
//! ([`stg_core::address::canonical`]): `::ffff:10.5.128.10` in the inventory becomes
//! `10.5.128.10` in the hosts file, because glibc's `getaddrinfo` for IPv4 only
//! (`AF_INET`) skips a hosts line in the mapped form and would go on to DNS, that is, to
//! production. Not for reading or writing hosts files ([`crate::hosts_block`],
//! [`crate::hosts_file`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, ToSocketAddrs};

use serde::Serialize;
use stg_core::address;
use stg_core::inventory::Inventory;
use stg_core::Error;

/// Names per hosts line; more names for one address continue on another line. glibc reads
/// long lines, but other resolvers (busybox, old libcs) have small limits.
pub const NAMES_PER_LINE: usize = 8;

/// One production name pointed at a staging address: the record `stg-probe` reads.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Override {
    /// The production name, as written in the inventory.
    pub name: String,
    /// The staging address it now resolves to.
    pub address: IpAddr,
    /// The service the name belongs to.
    pub service: String,
}

impl stg_core::format::Record for Override {
    const TYPE: &'static str = "override";
}

/// The overrides of an inventory, sorted by address, then name. `resolve` allows looking up
/// staging names that have no address in the inventory.
pub fn from_inventory(inventory: &Inventory, resolve: bool) -> anyhow::Result<Vec<Override>> {
    let mut resolved: BTreeMap<String, IpAddr> = BTreeMap::new();
    // lower-cased name -> (address, service), to refuse a name mapped to two addresses.
    let mut seen: BTreeMap<String, (IpAddr, String)> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, service) in inventory.services.iter().enumerate() {
        let address = match (service.staging.address, &service.staging.name) {
            (Some(address), _) => address,
            (None, Some(name)) if resolve => {
                if let Some(address) = resolved.get(name) {
                    *address
                } else {
                    let address = resolve_name(name).map_err(|e| {
                        anyhow::anyhow!(
                            "service {:?} (services[{i}]): cannot resolve staging name {name:?} (--resolve uses the system resolver, so DNS must work): {e}",
                            service.name
                        )
                    })?;
                    if let Some(range) = inventory.production_range_of(address) {
                        return Err(Error::usage(format!(
                            "service {:?} (services[{i}]): staging name {name:?} resolves to {}, inside production range {range}",
                            service.name,
                            address::describe(address)
                        ))
                        .into());
                    }
                    resolved.insert(name.clone(), address);
                    address
                }
            }
            (None, name) => {
                return Err(Error::usage(format!(
                    "service {:?} (services[{i}]): staging target {} has no address; add services[{i}].staging.address to the inventory or pass --resolve to look it up in DNS",
                    service.name,
                    name.as_deref().unwrap_or("(unnamed)")
                ))
                .into())
            }
        };
        let address = address::canonical(address);
        for name in &service.production {
            let key = name.trim_end_matches('.').to_ascii_lowercase();
            if let Some((other, other_service)) = seen.get(&key) {
                if *other != address {
                    return Err(Error::usage(format!(
                        "name {name:?} is mapped to two addresses: {other} (service {other_service:?}) and {address} (service {:?})",
                        service.name
                    ))
                    .into());
                }
                continue;
            }
            seen.insert(key, (address, service.name.clone()));
            out.push(Override {
                name: name.clone(),
                address,
                service: service.name.clone(),
            });
        }
    }
    out.sort_by(|a, b| {
        (a.address, a.name.to_ascii_lowercase()).cmp(&(b.address, b.name.to_ascii_lowercase()))
    });
    Ok(out)
}

/// The first address the system resolver gives for `name`.
fn resolve_name(name: &str) -> std::io::Result<IpAddr> {
    (name, 0)
        .to_socket_addrs()?
        .map(|a| a.ip())
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))
}

/// Hosts lines for sorted overrides: one address per line with its names, at most
/// [`NAMES_PER_LINE`] names a line. Fields are separated by a tab after the address.
pub fn hosts_lines(overrides: &[Override]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut i = 0;
    while i < overrides.len() {
        let address = overrides[i].address;
        let mut j = i;
        while j < overrides.len() && overrides[j].address == address {
            j += 1;
        }
        for chunk in overrides[i..j].chunks(NAMES_PER_LINE) {
            let names: Vec<&str> = chunk.iter().map(|o| o.name.as_str()).collect();
            lines.push(format!("{address}\t{}", names.join(" ")));
        }
        i = j;
    }
    lines
}

/// The body of the managed block: a comment saying who owns it, then the hosts lines.
pub fn block_body(inventory_name: &str, overrides: &[Override]) -> Vec<String> {
    let mut body = vec![format!(
        "# Managed by stg-hosts from inventory {inventory_name}: edit the inventory, not these lines."
    )];
    body.extend(hosts_lines(overrides));
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inventory(services: &str) -> Inventory {
        Inventory::parse(
            &format!(
                r#"{{"name":"t","production":{{"ranges":["10.1.0.0/16"]}},"staging":{{"ranges":["10.2.0.0/16"]}},"services":[{services}]}}"#
            ),
            "t.json",
        )
        .unwrap()
    }

    #[test]
    fn sorted_and_wrapped() {
        let names: Vec<String> = (0..10).map(|n| format!("\"n{n:02}.example\"")).collect();
        let inv = inventory(&format!(
            r#"{{"name":"b","production":[{}],"staging":{{"address":"10.2.0.9"}}}},
               {{"name":"a","production":["z.example","A.example"],"staging":{{"address":"10.2.0.10"}}}}"#,
            names.join(",")
        ));
        let o = from_inventory(&inv, false).unwrap();
        assert_eq!(o[0].address.to_string(), "10.2.0.9");
        let lines = hosts_lines(&o);
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("10.2.0.9\tn00.example n01.example"));
        assert_eq!(lines[1], "10.2.0.9\tn08.example n09.example");
        assert_eq!(lines[2], "10.2.0.10\tA.example z.example");
    }

    #[test]
    fn addresses_are_written_in_their_canonical_form() {
        let inv = inventory(
            r#"{"name":"a","production":["a.example"],"staging":{"address":"::ffff:10.2.0.9"}},
               {"name":"b","production":["b.example"],"staging":{"address":"10.2.0.9"}},
               {"name":"c","production":["c.example"],"staging":{"address":"2001:db8::9"}}"#,
        );
        let o = from_inventory(&inv, false).unwrap();
        assert_eq!(
            hosts_lines(&o),
            ["10.2.0.9\ta.example b.example", "2001:db8::9\tc.example"]
        );
    }

    #[test]
    fn missing_address_without_resolve_names_the_service() {
        let inv = inventory(
            r#"{"name":"fas","production":["fas.example"],"staging":{"name":"fas01.stg.example"}}"#,
        );
        let err = from_inventory(&inv, false).unwrap_err().to_string();
        assert!(err.contains("\"fas\""), "{err}");
        assert!(err.contains("--resolve"), "{err}");
    }

    #[test]
    fn resolve_uses_the_system_resolver() {
        let inv = inventory(
            r#"{"name":"fas","production":["fas.example"],"staging":{"name":"localhost"}}"#,
        );
        let o = from_inventory(&inv, true).unwrap();
        assert!(o[0].address.is_loopback());
    }
}
