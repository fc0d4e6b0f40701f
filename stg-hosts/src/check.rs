//! Comparing a hosts file with what the inventory says its block should be: missing, stale
//! and extra entries, a hand-edited block, and conflicting lines elsewhere in the file.
//!
//! A conflict is a line outside the block (hand-written, or another inventory's block)
//! giving one of our names another address: resolvers take the first match, so it can
//! silently win. Addresses are compared as the addresses they are
//! ([`stg_core::address::same`]): `::ffff:10.2.0.5` is `10.2.0.5`, and `::ffff:10.1.0.5` is
//! another address than `10.2.0.5` however it is spelled. Not for output formatting (see
//! `lib.rs`) or for changing files.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;
use stg_core::address;

use crate::hosts_block::HostsFile;
use crate::overrides::Override;

/// What kind of difference a [`Drift`] is.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The block's body no longer matches the hash in its BEGIN line.
    HandEdited,
    /// A name the inventory maps is not in the block (or there is no block).
    Missing,
    /// A name is in the block with another address.
    Stale,
    /// A name is in the block but not in the inventory.
    Extra,
    /// A line outside the block gives one of the names another address.
    Conflict,
}

/// One difference, as a `{"type":"drift",...}` JSON Lines record.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Drift {
    /// The kind of difference.
    pub kind: Kind,
    /// The host name concerned (absent for `hand-edited`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The address the inventory wants.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    /// The address found in the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<IpAddr>,
    /// The service of the name, from the inventory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// 1-based line in the hosts file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// For `conflict`: the other stg-hosts block the line is in; for `hand-edited`: ours.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block: Option<String>,
    /// For `hand-edited`: the hash in the BEGIN line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_sha256: Option<String>,
    /// For `hand-edited`: the hash of the body now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual_sha256: Option<String>,
}

impl stg_core::format::Record for Drift {
    const TYPE: &'static str = "drift";
}

impl Drift {
    fn new(kind: Kind) -> Drift {
        Drift {
            kind,
            name: None,
            address: None,
            found: None,
            service: None,
            line: None,
            block: None,
            recorded_sha256: None,
            actual_sha256: None,
        }
    }

    /// One line for people.
    pub fn to_text(&self) -> String {
        // Names and block names come from the hosts file: escaped for the terminal.
        let name = stg_core::terminal::escape(self.name.as_deref().unwrap_or(""));
        let at = self
            .line
            .map(|l| format!(" (line {l})"))
            .unwrap_or_default();
        let want = self.address.map(|a| a.to_string()).unwrap_or_default();
        let found = self.found.map(|a| a.to_string()).unwrap_or_default();
        match self.kind {
            Kind::HandEdited => format!(
                "hand-edited  block {}{at}: sha256 {} recorded, {} now",
                self.block.as_deref().unwrap_or(""),
                self.recorded_sha256.as_deref().unwrap_or(""),
                self.actual_sha256.as_deref().unwrap_or("")
            ),
            Kind::Missing => format!("missing      {name} -> {want}"),
            Kind::Stale => format!("stale        {name} -> {found}, should be {want}{at}"),
            Kind::Extra => format!("extra        {name} -> {found}{at}"),
            Kind::Conflict => format!(
                "conflict     {name} -> {found}{at}{}, inventory says {want}",
                self.block
                    .as_deref()
                    .map(|b| format!(" in block {b}"))
                    .unwrap_or_default()
            ),
        }
    }
}

/// Every difference between the file and the overrides for block `block_name`, in a stable
/// order: hand edit first, then by kind and name.
pub fn compare(file: &HostsFile<'_>, block_name: &str, overrides: &[Override]) -> Vec<Drift> {
    let mut drifts = Vec::new();
    let ours = file.block(block_name);
    let want: BTreeMap<String, &Override> = overrides.iter().map(|o| (key(&o.name), o)).collect();
    // Names in our block: key -> (name as written, address, 1-based line).
    let mut have: BTreeMap<String, (String, IpAddr, usize)> = BTreeMap::new();
    if let Some(block) = ours {
        if block.is_hand_edited() {
            let mut d = Drift::new(Kind::HandEdited);
            d.block = Some(block.name.clone());
            d.line = Some(block.begin + 1);
            d.recorded_sha256 = Some(block.recorded_sha256.clone());
            d.actual_sha256 = Some(block.actual_sha256.clone());
            drifts.push(d);
        }
    }
    let mut rest = Vec::new();
    for entry in file.entries() {
        let in_ours = ours.is_some_and(|b| entry.line > b.begin && entry.line < b.end);
        for name in &entry.names {
            if in_ours {
                have.entry(key(name))
                    .or_insert((name.clone(), entry.address, entry.line + 1));
            } else if let Some(o) = want.get(&key(name)) {
                if !address::same(o.address, entry.address) {
                    let mut d = Drift::new(Kind::Conflict);
                    d.name = Some(name.clone());
                    d.address = Some(o.address);
                    d.found = Some(entry.address);
                    d.service = Some(o.service.clone());
                    d.line = Some(entry.line + 1);
                    d.block = file.block_at(entry.line).map(|b| b.name.clone());
                    rest.push(d);
                }
            }
        }
    }
    for (k, o) in &want {
        match have.get(k) {
            None => {
                let mut d = Drift::new(Kind::Missing);
                d.name = Some(o.name.clone());
                d.address = Some(o.address);
                d.service = Some(o.service.clone());
                rest.push(d);
            }
            Some((_, found, line)) if !address::same(*found, o.address) => {
                let mut d = Drift::new(Kind::Stale);
                d.name = Some(o.name.clone());
                d.address = Some(o.address);
                d.found = Some(*found);
                d.service = Some(o.service.clone());
                d.line = Some(*line);
                rest.push(d);
            }
            Some(_) => {}
        }
    }
    for (k, (name, found, line)) in &have {
        if !want.contains_key(k) {
            let mut d = Drift::new(Kind::Extra);
            d.name = Some(name.clone());
            d.found = Some(*found);
            d.line = Some(*line);
            rest.push(d);
        }
    }
    rest.sort_by(|a, b| (a.kind, &a.name, a.line).cmp(&(b.kind, &b.name, b.line)));
    drifts.extend(rest);
    drifts
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}
