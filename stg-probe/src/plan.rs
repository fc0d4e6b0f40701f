//! What to check: the [`Check`] list derived from the inventory, plus the input records
//! ([`crate::input`]), and the address ranges that classify what a name resolves to
//! ([`Ranges`]).
//!
//! From the inventory: every production name of every service x each of its ports must be
//! `blocked` (unless the allow-list names it: then it is `allowed`, with the reason, and not
//! connected to); every production name of a service without ports, which no connection can
//! test, `resolves` to its staging address (or into the staging ranges), unless the
//! allow-list names the host for all ports; every staging name `resolves` to its staging
//! address (or into the staging ranges); every staging host x port is `reachable`. No
//! service and no name is left without a check. Addresses are compared as the addresses
//! they are, in any spelling ([`stg_core::address`]). Not for running the checks: see
//! [`crate::execute`].

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use stg_core::address;
use stg_core::inventory::Inventory;

/// The kind of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A production endpoint must not accept a TCP connection.
    Blocked,
    /// A name must resolve, through the system resolver, only to staging addresses.
    Resolves,
    /// A staging endpoint must accept a TCP connection.
    Reachable,
}

impl Kind {
    /// The name used in records and tables.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Blocked => "blocked",
            Kind::Resolves => "resolves",
            Kind::Reachable => "reachable",
        }
    }
}

/// One check to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What is checked.
    pub kind: Kind,
    /// Host name or address literal.
    pub host: String,
    /// TCP port (blocked, reachable); `None` for resolves.
    pub port: Option<u16>,
    /// The inventory service this check belongs to, if known.
    pub service: Option<String>,
    /// Where the check came from: `inventory` or `<input>:<line>`.
    pub source: String,
    /// Resolves: the addresses the name may resolve to (besides the staging ranges).
    /// Blocked: addresses known to be staging, which are not production and not connected to.
    pub expect: Vec<IpAddr>,
    /// Blocked: the allow-list reason when staging may reach this endpoint on purpose.
    pub allowed: Option<String>,
}

/// Address ranges from the inventory (empty without one).
#[derive(Clone, Debug, Default)]
pub struct Ranges {
    /// Production ranges: an address inside is a production address.
    pub production: Vec<IpNet>,
    /// Staging ranges: an address inside is a staging address (unless also production).
    pub staging: Vec<IpNet>,
}

impl Ranges {
    /// True when `addr`, in any spelling, is in a production range, or reaches one through
    /// the NAT64 well-known prefix ([`address::production_range`]).
    #[must_use]
    pub fn is_production(&self, addr: IpAddr) -> bool {
        address::production_range(&self.production, addr).is_some()
    }

    /// True when `addr`, in any spelling, is in a staging range ([`address::in_ranges`]).
    #[must_use]
    pub fn is_staging(&self, addr: IpAddr) -> bool {
        address::in_ranges(&self.staging, addr).is_some()
    }
}

/// True when `addrs` holds `addr` in any spelling ([`address::same`]).
#[must_use]
pub fn holds(addrs: &[IpAddr], addr: IpAddr) -> bool {
    addrs.iter().any(|a| address::same(*a, addr))
}

/// The ranges of an inventory.
#[must_use]
pub fn ranges(inventory: &Inventory) -> Ranges {
    Ranges {
        production: inventory.production.ranges.clone(),
        staging: inventory.staging.ranges.clone(),
    }
}

/// Two hosts are the same: equal names (without case, a trailing dot ignored), or the same
/// address in any spelling.
fn same_host(a: &str, b: &str) -> bool {
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(a), Ok(b)) => address::same(a, b),
        _ => a
            .trim_end_matches('.')
            .eq_ignore_ascii_case(b.trim_end_matches('.')),
    }
}

/// A host as a key: a lower-cased name without its trailing dot, or the canonical address.
fn host_key(host: &str) -> String {
    match host.parse::<IpAddr>() {
        Ok(addr) => address::canonical(addr).to_string(),
        Err(_) => host.trim_end_matches('.').to_ascii_lowercase(),
    }
}

/// The allow-list reason for `host:port`, if the inventory allows it.
#[must_use]
pub fn allowed_reason(inventory: &Inventory, host: &str, port: u16) -> Option<String> {
    inventory
        .allow
        .iter()
        .find(|a| same_host(&a.host, host) && (a.ports.is_empty() || a.ports.contains(&port)))
        .map(|a| a.reason.clone())
}

/// Every staging address the inventory names (a blocked check does not connect to these).
fn staging_addresses(inventory: &Inventory) -> Vec<IpAddr> {
    let mut seen = Vec::new();
    for service in &inventory.services {
        if let Some(addr) = service.staging.address {
            if !holds(&seen, addr) {
                seen.push(addr);
            }
        }
    }
    seen
}

/// The allow-list reason for every port of `host`: only an entry without ports covers a
/// service whose ports the inventory does not list.
fn allowed_everywhere(inventory: &Inventory, host: &str) -> Option<String> {
    inventory
        .allow
        .iter()
        .find(|a| same_host(&a.host, host) && a.ports.is_empty())
        .map(|a| a.reason.clone())
}

/// A check the inventory implies for one of its services: nothing expected, nothing allowed
/// until the caller says so.
fn of_service(kind: Kind, host: &str, port: Option<u16>, service: &str) -> Check {
    Check {
        kind,
        host: host.to_owned(),
        port,
        service: Some(service.to_owned()),
        source: "inventory".into(),
        expect: Vec::new(),
        allowed: None,
    }
}

/// The checks an inventory implies, in inventory order.
#[must_use]
pub fn from_inventory(inventory: &Inventory) -> Vec<Check> {
    let staging = staging_addresses(inventory);
    let mut checks = Vec::new();
    for service in &inventory.services {
        for name in &service.production {
            for &port in &service.ports {
                checks.push(Check {
                    expect: staging.clone(),
                    allowed: allowed_reason(inventory, name, port),
                    ..of_service(Kind::Blocked, name, Some(port), &service.name)
                });
            }
            if service.ports.is_empty() {
                // No port to connect to, so no connection can prove this name blocked: it
                // must lead to staging (an override in effect), or the allow-list must say
                // why staging may reach it.
                checks.push(Check {
                    expect: service.staging.address.into_iter().collect(),
                    allowed: allowed_everywhere(inventory, name),
                    ..of_service(Kind::Resolves, name, None, &service.name)
                });
            }
        }
    }
    for service in &inventory.services {
        let target = &service.staging;
        if let Some(name) = &target.name {
            checks.push(Check {
                expect: target.address.into_iter().collect(),
                ..of_service(Kind::Resolves, name, None, &service.name)
            });
        }
        let host = target
            .address
            .map(|a| a.to_string())
            .or_else(|| target.name.clone());
        if let Some(host) = host {
            for &port in &service.ports {
                checks.push(of_service(
                    Kind::Reachable,
                    &host,
                    Some(port),
                    &service.name,
                ));
            }
        }
    }
    checks
}

/// Applies the inventory to checks read from input: blocked targets on the allow-list
/// become `allowed`, and the inventory's staging addresses are not connected to.
pub fn apply_inventory(checks: &mut [Check], inventory: &Inventory) {
    let staging = staging_addresses(inventory);
    for check in checks.iter_mut().filter(|c| c.kind == Kind::Blocked) {
        if let Some(port) = check.port {
            check.allowed = allowed_reason(inventory, &check.host, port);
        }
        for addr in &staging {
            if !holds(&check.expect, *addr) {
                check.expect.push(*addr);
            }
        }
    }
}

/// Drops repeated checks (same kind, host, port and expected addresses; host names
/// compared without case, addresses in any spelling), keeping the first: several services
/// sharing one staging host need one reachability check.
#[must_use]
pub fn dedup(checks: Vec<Check>) -> Vec<Check> {
    let mut seen = HashSet::new();
    checks
        .into_iter()
        .filter(|c| {
            let mut expect: Vec<IpAddr> = c.expect.iter().map(|a| address::canonical(*a)).collect();
            expect.sort_unstable();
            expect.dedup();
            seen.insert((c.kind, host_key(&c.host), c.port, expect))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INV: &str = r#"{
      "name": "t",
      "production": {"ranges": ["10.5.126.0/24"]},
      "staging": {"ranges": ["10.5.128.0/24"]},
      "services": [
        {"name": "fas", "production": ["fas01.example.org", "admin.example.org"],
         "staging": {"name": "fas01.stg.example.org", "address": "10.5.128.10"}, "ports": [443, 80]},
        {"name": "wiki", "production": ["wiki.example.org"],
         "staging": {"name": "fas01.stg.example.org", "address": "10.5.128.10"}, "ports": [443]}
      ],
      "allow": [{"host": "ADMIN.example.org", "ports": [80], "reason": "monitoring"}]
    }"#;

    #[test]
    fn inventory_gives_every_name_times_every_port() {
        let inv = Inventory::parse(INV, "t").unwrap();
        let checks = dedup(from_inventory(&inv));
        let blocked: Vec<_> = checks
            .iter()
            .filter(|c| c.kind == Kind::Blocked)
            .map(|c| (c.host.as_str(), c.port.unwrap(), c.allowed.is_some()))
            .collect();
        assert_eq!(
            blocked,
            [
                ("fas01.example.org", 443, false),
                ("fas01.example.org", 80, false),
                ("admin.example.org", 443, false),
                ("admin.example.org", 80, true),
                ("wiki.example.org", 443, false),
            ]
        );
        // One resolves check for the shared staging name, one reachable check per port.
        let resolves = checks.iter().filter(|c| c.kind == Kind::Resolves).count();
        let reachable: Vec<_> = checks
            .iter()
            .filter(|c| c.kind == Kind::Reachable)
            .map(|c| (c.host.as_str(), c.port.unwrap()))
            .collect();
        assert_eq!(resolves, 1);
        assert_eq!(reachable, [("10.5.128.10", 443), ("10.5.128.10", 80)]);
    }

    #[test]
    fn a_service_without_ports_still_has_its_production_names_checked() {
        // Issue 20, item 7: a service without ports got no check for its production names.
        let inv = Inventory::parse(
            r#"{
              "name": "t",
              "production": {"ranges": ["10.5.126.0/24"]},
              "staging": {"ranges": ["10.5.128.0/24"]},
              "services": [
                {"name": "mail", "production": ["smtp.example.org", "MX.example.org"],
                 "staging": {"address": "10.5.128.25"}},
                {"name": "log", "production": ["log.example.org"],
                 "staging": {"name": "log.stg.example.org"}}
              ],
              "allow": [{"host": "log.example.org", "reason": "central syslog"},
                        {"host": "mx.example.org", "ports": [25], "reason": "one port only"}]
            }"#,
            "t",
        )
        .unwrap();
        let checks = dedup(from_inventory(&inv));
        let names: Vec<_> = checks
            .iter()
            .map(|c| {
                (
                    c.kind,
                    c.host.as_str(),
                    c.expect.clone(),
                    c.allowed.as_deref(),
                )
            })
            .collect();
        let staging: IpAddr = "10.5.128.25".parse().unwrap();
        assert_eq!(
            names,
            [
                (Kind::Resolves, "smtp.example.org", vec![staging], None),
                // An allow entry for some ports does not cover a service without ports.
                (Kind::Resolves, "MX.example.org", vec![staging], None),
                (
                    Kind::Resolves,
                    "log.example.org",
                    vec![],
                    Some("central syslog")
                ),
                (Kind::Resolves, "log.stg.example.org", vec![], None),
            ]
        );
        assert!(checks.iter().all(|c| c.port.is_none()));
    }

    #[test]
    fn addresses_in_any_spelling_are_one_host() {
        assert!(same_host("::ffff:10.5.126.10", "10.5.126.10"));
        assert!(same_host("Fas.Example.org.", "fas.example.org"));
        assert!(!same_host("10.5.126.10", "10.5.126.11"));
        let check = |host: &str, expect: &str| Check {
            kind: Kind::Blocked,
            host: host.into(),
            port: Some(443),
            service: None,
            source: "t".into(),
            expect: vec![expect.parse().unwrap()],
            allowed: None,
        };
        let checks = dedup(vec![
            check("10.5.126.10", "10.5.128.10"),
            check("::ffff:10.5.126.10", "::ffff:10.5.128.10"),
        ]);
        assert_eq!(checks.len(), 1);
    }
}
