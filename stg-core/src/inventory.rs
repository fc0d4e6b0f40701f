//! The inventory: one JSON file describing production and staging, read by `stg-hosts` and
//! `stg-probe`. The format is documented in `docs/inventory.md`.
//!
//! [`Inventory::load`] parses and validates: unknown fields, malformed names, a name claimed
//! by two services, a staging target inside a production range, a staging host given two
//! addresses, an allow-list entry without a reason are all usage errors that name the field
//! (`services[2].staging.address: ...`). Addresses and ranges are compared as the addresses
//! they are, whatever their spelling (`::ffff:10.5.126.10` is `10.5.126.10`): see
//! [`crate::address`]. What each tool derives from the inventory (hosts lines, probe
//! targets) lives in that tool.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::address;
use crate::exit::Error;
use crate::files;

/// The largest inventory read, from a file or stdin: 4 MiB, some hundred times what a
/// large site's inventory takes (Fedora's would be tens of KiB).
pub const MAX_INVENTORY_BYTES: u64 = 4 << 20;

/// The whole inventory file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// Short name (letters, digits, `.`, `_`, `-`); names the managed `/etc/hosts` block.
    pub name: String,
    /// The production environment.
    pub production: Environment,
    /// The staging environment.
    pub staging: Environment,
    /// The services, each with its production names and staging counterpart.
    pub services: Vec<Service>,
    /// Production endpoints staging may reach on purpose (Fedora's `staging_friendly`).
    #[serde(default)]
    pub allow: Vec<Allow>,
}

/// One environment's domain and address ranges.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// DNS domain, e.g. `fedoraproject.org` or `stg.fedoraproject.org`.
    #[serde(default)]
    pub domain: Option<String>,
    /// Address ranges in CIDR notation (IPv4 or IPv6).
    #[serde(default)]
    pub ranges: Vec<IpNet>,
}

/// A service known by one or more production names, served in staging by one host.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Short service name (`fas`, `koji`).
    pub name: String,
    /// Every production host name the service is reached by.
    pub production: Vec<String>,
    /// The staging counterpart.
    pub staging: Target,
    /// TCP ports the service listens on (used by `stg-probe`).
    #[serde(default)]
    pub ports: Vec<u16>,
}

/// A staging host: a name, an address, or both. Several services may share one (one staging
/// server standing in for several production services); they must then agree on its address.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Staging host name, e.g. `fas01.stg.fedoraproject.org`.
    #[serde(default)]
    pub name: Option<String>,
    /// Staging address; when absent, tools resolve `name` (and say so).
    #[serde(default)]
    pub address: Option<IpAddr>,
}

/// A production endpoint staging may reach on purpose.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Allow {
    /// Production host name or address.
    pub host: String,
    /// Ports allowed; empty means all of the host's ports.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Why staging may reach it (monitoring, log host...). Required.
    pub reason: String,
}

/// True for a valid DNS host name (labels of letters, digits, `-` and `_`, 1 to 63
/// characters, not starting or ending with `-`; 253 characters at most). Nothing that could
/// inject a line or a field into a hosts file passes.
#[must_use]
pub fn is_valid_hostname(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl Inventory {
    /// Reads and validates an inventory from a path, or from stdin when `path` is `-`.
    ///
    /// The file must be a regular file (a link to one is followed: the inventory is the
    /// operator's own file) of at most [`MAX_INVENTORY_BYTES`]; stdin is read up to that
    /// bound. A FIFO or a device named as the inventory is refused, not waited on, and
    /// `/dev/zero` costs at most the bound in memory.
    pub fn load(path: &Path) -> anyhow::Result<Inventory> {
        let shown = if path == Path::new("-") {
            "<stdin>".to_owned()
        } else {
            path.display().to_string()
        };
        let bytes = if path == Path::new("-") {
            files::read_stream(std::io::stdin().lock(), &shown, MAX_INVENTORY_BYTES)
        } else {
            files::read_small(
                path,
                files::Limits {
                    max_bytes: MAX_INVENTORY_BYTES,
                    no_symlink: false,
                },
            )
        }
        .map_err(|e| match e {
            files::ReadError::NotFound(_) => {
                Error::usage(format!("cannot read inventory {shown}: no such file"))
            }
            files::ReadError::Unsuitable(why) => {
                Error::usage(format!("cannot read inventory: {why}"))
            }
            files::ReadError::Refused(why) => {
                let prefix = format!("cannot read {shown}: ");
                let why = why.strip_prefix(&prefix).unwrap_or(&why);
                Error::usage(format!("cannot read inventory {shown}: {why}"))
            }
        })?;
        let text = String::from_utf8(bytes)
            .map_err(|e| Error::usage(format!("inventory {shown}: not UTF-8 ({e})")))?;
        Self::parse(&text, &shown)
    }

    /// Parses and validates inventory text; `shown` names it in messages.
    pub fn parse(text: &str, shown: &str) -> anyhow::Result<Inventory> {
        let inventory: Inventory = serde_json::from_str(text)
            .map_err(|e| Error::usage(format!("inventory {shown}: {e}")))?;
        inventory
            .validate()
            .map_err(|e| Error::usage(format!("inventory {shown}: {e}")))?;
        Ok(inventory)
    }

    /// The production range `addr` reaches, if any: one holding it in any spelling, or the
    /// IPv4 address a NAT64 translator delivers it to ([`address::production_range`]).
    #[must_use]
    pub fn production_range_of(&self, addr: IpAddr) -> Option<&IpNet> {
        address::production_range(&self.production.ranges, addr)
    }

    /// True when `addr`, in any spelling, lies in a staging range ([`address::in_ranges`]).
    #[must_use]
    pub fn is_staging_address(&self, addr: IpAddr) -> bool {
        address::in_ranges(&self.staging.ranges, addr).is_some()
    }

    /// Checks everything serde cannot: returns the first problem as `field: message`.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(format!(
                "name: {:?} must be letters, digits, '.', '_' or '-'",
                self.name
            ));
        }
        for (field, env) in [("production", &self.production), ("staging", &self.staging)] {
            if let Some(domain) = &env.domain {
                if !is_valid_hostname(domain) {
                    return Err(format!("{field}.domain: {domain:?} is not a valid domain"));
                }
            }
        }
        for range in &self.staging.ranges {
            if let Some(prod) = self
                .production
                .ranges
                .iter()
                .find(|p| address::range_reaches(range, p))
            {
                return Err(format!(
                    "staging.ranges: {range} overlaps production range {prod}"
                ));
            }
        }
        self.validate_services()?;
        self.validate_allow()
    }

    fn validate_services(&self) -> Result<(), String> {
        if self.services.is_empty() {
            return Err("services: the inventory lists no services".into());
        }
        let mut claimed: BTreeMap<String, String> = BTreeMap::new();
        let mut staging_hosts: BTreeMap<String, (IpAddr, String)> = BTreeMap::new();
        for (i, service) in self.services.iter().enumerate() {
            let at = format!("services[{i}]");
            if service.name.is_empty() {
                return Err(format!("{at}.name: empty service name"));
            }
            if service.production.is_empty() {
                return Err(format!(
                    "{at}.production: service {:?} lists no production names",
                    service.name
                ));
            }
            for (j, name) in service.production.iter().enumerate() {
                if !is_valid_hostname(name) {
                    return Err(format!(
                        "{at}.production[{j}]: {name:?} is not a valid host name"
                    ));
                }
                let key = name.trim_end_matches('.').to_ascii_lowercase();
                if let Some(other) = claimed.insert(key, format!("{at}.production[{j}]")) {
                    return Err(format!(
                        "{at}.production[{j}]: duplicate name {name:?} (also at {other})"
                    ));
                }
            }
            for (j, port) in service.ports.iter().enumerate() {
                if *port == 0 {
                    return Err(format!("{at}.ports[{j}]: port 0 is not a valid port"));
                }
            }
            let target = &service.staging;
            if target.name.is_none() && target.address.is_none() {
                return Err(format!("{at}.staging: needs a name, an address, or both"));
            }
            if let Some(name) = &target.name {
                if !is_valid_hostname(name) {
                    return Err(format!(
                        "{at}.staging.name: {name:?} is not a valid host name"
                    ));
                }
            }
            if let Some(addr) = target.address {
                if let Some(range) = self.production_range_of(addr) {
                    return Err(format!(
                        "{at}.staging.address: {} is inside production range {range}",
                        address::describe(addr)
                    ));
                }
                if let Some(name) = &target.name {
                    let key = name.trim_end_matches('.').to_ascii_lowercase();
                    if let Some((prev, prev_at)) = staging_hosts.get(&key) {
                        if !address::same(*prev, addr) {
                            return Err(format!(
                                "{at}.staging.address: staging host {name:?} is {addr} here but {prev} at {prev_at}"
                            ));
                        }
                    } else {
                        staging_hosts.insert(key, (addr, format!("{at}.staging.address")));
                    }
                }
            }
        }
        Ok(())
    }

    fn validate_allow(&self) -> Result<(), String> {
        for (i, allow) in self.allow.iter().enumerate() {
            let at = format!("allow[{i}]");
            if !is_valid_hostname(&allow.host) && allow.host.parse::<IpAddr>().is_err() {
                return Err(format!(
                    "{at}.host: {:?} is not a valid host name or address",
                    allow.host
                ));
            }
            if allow.reason.trim().is_empty() {
                return Err(format!(
                    "{at}.reason: every allow-list entry needs a reason"
                ));
            }
            if allow.ports.contains(&0) {
                return Err(format!("{at}.ports: port 0 is not a valid port"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
      "name": "fedora-stg",
      "production": {"domain": "fedoraproject.org", "ranges": ["10.5.126.0/24", "2620:52:3:1::/64"]},
      "staging": {"domain": "stg.fedoraproject.org", "ranges": ["10.5.128.0/24"]},
      "services": [
        {"name": "fas", "production": ["fas01.fedoraproject.org", "admin.fedoraproject.org"],
         "staging": {"name": "fas01.stg.fedoraproject.org", "address": "10.5.128.10"}, "ports": [443]},
        {"name": "wiki", "production": ["wiki.fedoraproject.org"],
         "staging": {"name": "fas01.stg.fedoraproject.org", "address": "10.5.128.10"}, "ports": [80]}
      ],
      "allow": [{"host": "noc01.fedoraproject.org", "ports": [5666], "reason": "nagios"}]
    }"#;

    fn err_of(text: &str) -> String {
        Inventory::parse(text, "t.json").unwrap_err().to_string()
    }

    #[test]
    fn good_inventory_parses() {
        let inv = Inventory::parse(GOOD, "t.json").unwrap();
        assert_eq!(inv.services.len(), 2);
        assert!(inv
            .production_range_of("10.5.126.9".parse().unwrap())
            .is_some());
        assert!(inv.is_staging_address("10.5.128.10".parse().unwrap()));
    }

    #[test]
    fn unknown_field_is_named() {
        let text = GOOD.replace("\"ports\": [443]", "\"port\": [443]");
        assert!(
            err_of(&text).contains("unknown field `port`"),
            "{}",
            err_of(&text)
        );
    }

    #[test]
    fn duplicate_name_is_named() {
        let text = GOOD.replace("wiki.fedoraproject.org", "admin.fedoraproject.org");
        let err = err_of(&text);
        assert!(
            err.contains("services[1].production[0]: duplicate name"),
            "{err}"
        );
    }

    #[test]
    fn staging_target_in_production_range_is_refused() {
        let text = GOOD.replacen("10.5.128.10", "10.5.126.10", 1);
        let err = err_of(&text);
        assert!(
            err.contains(
                "services[0].staging.address: 10.5.126.10 is inside production range 10.5.126.0/24"
            ),
            "{err}"
        );
    }

    #[test]
    fn staging_target_in_production_range_is_refused_in_every_spelling() {
        // Issue 20, item 3: the IPv4-mapped form was accepted as a staging address.
        for (spelled, shown) in [
            (
                "::ffff:10.5.126.10",
                "::ffff:10.5.126.10 (IPv4 10.5.126.10) is inside production range 10.5.126.0/24",
            ),
            (
                "::ffff:a05:7e0a",
                "::ffff:10.5.126.10 (IPv4 10.5.126.10) is inside production range 10.5.126.0/24",
            ),
            (
                "::10.5.126.10",
                "::a05:7e0a (IPv4 10.5.126.10) is inside production range 10.5.126.0/24",
            ),
            (
                "64:ff9b::10.5.126.10",
                "64:ff9b::a05:7e0a (NAT64 for 10.5.126.10) is inside production range 10.5.126.0/24",
            ),
        ] {
            let text = GOOD.replace("10.5.128.10", spelled);
            let err = err_of(&text);
            assert!(
                err.contains(&format!("services[0].staging.address: {shown}")),
                "{spelled}: {err}"
            );
        }
        // The same staging address spelled two ways is one address, not two.
        let text = GOOD.replacen("10.5.128.10", "::ffff:10.5.128.10", 1);
        let inv = Inventory::parse(&text, "t.json").unwrap();
        assert!(inv.is_staging_address("::ffff:10.5.128.10".parse().unwrap()));
        assert!(inv
            .production_range_of("::10.5.126.9".parse().unwrap())
            .is_some());
    }

    #[test]
    fn staging_range_spelled_over_a_production_range_is_refused() {
        let text = GOOD.replace("\"10.5.128.0/24\"", "\"::ffff:10.5.126.0/120\"");
        let err = err_of(&text);
        assert!(
            err.contains(
                "staging.ranges: ::ffff:10.5.126.0/120 overlaps production range 10.5.126.0/24"
            ),
            "{err}"
        );
    }

    #[test]
    fn staging_host_with_two_addresses_is_refused() {
        let text = GOOD.replacen("10.5.128.10", "10.5.128.11", 1);
        assert!(err_of(&text).contains("services[1].staging.address"));
    }

    #[test]
    fn injection_in_names_is_refused() {
        let text = GOOD.replace(
            "wiki.fedoraproject.org",
            "wiki.fedoraproject.org\\n1.2.3.4 evil",
        );
        assert!(err_of(&text).contains("is not a valid host name"));
        assert!(!is_valid_hostname("a b"));
        assert!(!is_valid_hostname("-a"));
        assert!(is_valid_hostname("fas01.stg.fedoraproject.org."));
    }

    #[test]
    fn allow_needs_reason() {
        let text = GOOD.replace("\"reason\": \"nagios\"", "\"reason\": \" \"");
        assert!(err_of(&text).contains("allow[0].reason"));
    }

    #[test]
    fn not_json_is_usage_error() {
        let err = Inventory::parse("{", "t.json").unwrap_err();
        assert_eq!(crate::exit::classify(&err), crate::exit::ErrorClass::Usage);
        assert!(err.to_string().starts_with("inventory t.json:"));
    }
    // See: issue "Hardening, round 2", item 9: a FIFO as the inventory hung the tool, a
    // device or a huge file filled memory.
    #[test]
    fn fifos_devices_and_huge_files_are_refused_quickly() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("inventory.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = Inventory::load(&fifo).unwrap_err().to_string();
        assert!(
            err.contains("is a FIFO; only a regular file is read"),
            "{err}"
        );
        let err = Inventory::load(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/dev/zero is a device"), "{err}");
        let huge = dir.path().join("huge.json");
        let mut text = GOOD.to_owned();
        text.push_str(&" ".repeat(MAX_INVENTORY_BYTES as usize));
        std::fs::write(&huge, &text).unwrap();
        let err = Inventory::load(&huge).unwrap_err().to_string();
        assert!(err.contains("at most 4194304 are read"), "{err}");
        let fine = dir.path().join("fine.json");
        std::fs::write(&fine, GOOD).unwrap();
        assert_eq!(Inventory::load(&fine).unwrap().name, "fedora-stg");
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&fine, &link).unwrap();
        assert_eq!(Inventory::load(&link).unwrap().name, "fedora-stg");
    }
}
