//! The inventory reader (`stg_core::inventory::Inventory::parse`), on arbitrary text, and the
//! address normalisation every inventory check goes through (`stg_core::address`).
//!
//! Properties:
//! - no panic on any input;
//! - every refusal is a usage error (exit 2) whose message names the file;
//! - what is accepted validates, and written back as JSON parses to the same inventory;
//! - every host name an accepted inventory gives stg-hosts is a valid host name, so nothing
//!   it writes into /etc/hosts can hold a space, a `#` or a newline;
//! - no staging address of an accepted inventory is production in any spelling (itself,
//!   IPv4, IPv4-mapped, IPv4-compatible IPv6);
//! - validation does not depend on spelling: any inventory that deserializes gives the same
//!   verdict with a staging address, or a range, rewritten in another spelling;
//! - on the first 17 bytes as an IPv6 address and a prefix length: `canonical` is idempotent
//!   and keeps the address the same; a range around the address holds every spelling of it,
//!   and one around its IPv4 form too; the NAT64 form of an address in a range reaches it.

#![no_main]

use std::net::{IpAddr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use libfuzzer_sys::fuzz_target;
use stg_core::address::{canonical, production_range, range_contains, same};
use stg_core::exit::{classify, ErrorClass};
use stg_core::inventory::{is_valid_hostname, Inventory};

/// The spellings of one address: itself, its canonical form and, for an IPv4 address, the
/// mapped form and (unless in 0.0.0.0/8, which stays IPv6) the compatible form.
fn spellings(addr: IpAddr) -> Vec<IpAddr> {
    let canonical = canonical(addr);
    let mut out = vec![addr, canonical];
    if let IpAddr::V4(v4) = canonical {
        out.push(IpAddr::V6(v4.to_ipv6_mapped()));
        if v4.octets()[0] != 0 {
            out.push(IpAddr::V6(v4.to_ipv6_compatible()));
        }
    }
    out
}

/// The spellings of one range: itself and, for an IPv4 range, the mapped IPv6 range.
fn range_spellings(range: IpNet) -> Vec<IpNet> {
    let mut out = vec![range];
    if let IpNet::V4(v4) = range {
        let mapped = Ipv6Net::new(v4.network().to_ipv6_mapped(), v4.prefix_len() + 96)
            .expect("a mapped prefix is at most 128");
        out.push(IpNet::V6(mapped));
    }
    out
}

/// The NAT64 well-known-prefix form of an IPv4 address.
fn nat64(addr: IpAddr) -> Option<IpAddr> {
    match canonical(addr) {
        IpAddr::V4(v4) => {
            let bits = (0x0064_ff9b_u128 << 96) | u128::from(v4.to_bits());
            Some(IpAddr::V6(Ipv6Addr::from_bits(bits)))
        }
        IpAddr::V6(_) => None,
    }
}

fn addresses(data: &[u8]) {
    let Some((bytes, rest)) = data.split_first_chunk::<16>() else {
        return;
    };
    let Some(&prefix) = rest.first() else {
        return;
    };
    let v6 = Ipv6Addr::from(*bytes);
    let addr = IpAddr::V6(v6);
    let canon = canonical(addr);
    assert_eq!(canonical(canon), canon, "{addr}");
    assert!(same(addr, canon), "{addr}");
    let around = IpNet::V6(Ipv6Net::new(v6, prefix % 129).expect("prefix in range"));
    let mut ranges = vec![around];
    if let IpAddr::V4(v4) = canon {
        ranges.push(IpNet::V4(
            Ipv4Net::new(v4, prefix % 33).expect("prefix in range"),
        ));
    }
    for range in &ranges {
        for spelled in spellings(addr) {
            assert!(range_contains(range, spelled), "{range} {spelled}");
            assert!(same(spelled, addr), "{spelled} {addr}");
        }
        if let (IpNet::V4(_), Some(translated)) = (range, nat64(addr)) {
            assert!(
                production_range(std::slice::from_ref(range), translated).is_some(),
                "{range} {translated}"
            );
            assert!(!same(translated, addr), "{translated} {addr}");
        }
    }
}

/// Validation gives the same verdict for every spelling of each staging address and range.
fn spelling_does_not_change_the_verdict(raw: &Inventory) {
    let verdict = raw.validate().is_ok();
    for (i, service) in raw.services.iter().enumerate() {
        let Some(addr) = service.staging.address else {
            continue;
        };
        for spelled in spellings(addr) {
            let mut other = raw.clone();
            other.services[i].staging.address = Some(spelled);
            assert_eq!(
                other.validate().is_ok(),
                verdict,
                "services[{i}]: {spelled}"
            );
        }
    }
    for (field, ranges) in [
        ("production", &raw.production.ranges),
        ("staging", &raw.staging.ranges),
    ] {
        for (j, range) in ranges.iter().enumerate() {
            for spelled in range_spellings(*range) {
                let mut other = raw.clone();
                let target = if field == "production" {
                    &mut other.production.ranges
                } else {
                    &mut other.staging.ranges
                };
                target[j] = spelled;
                assert_eq!(
                    other.validate().is_ok(),
                    verdict,
                    "{field}.ranges[{j}]: {spelled}"
                );
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    addresses(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(raw) = serde_json::from_str::<Inventory>(text) {
        spelling_does_not_change_the_verdict(&raw);
    }
    match Inventory::parse(text, "fuzz.json") {
        Err(e) => {
            assert_eq!(classify(&e), ErrorClass::Usage, "{e:#}");
            assert!(e.to_string().starts_with("inventory fuzz.json: "), "{e:#}");
        }
        Ok(inv) => {
            assert_eq!(inv.validate(), Ok(()));
            let again = serde_json::to_string(&inv).unwrap();
            assert_eq!(Inventory::parse(&again, "again").unwrap(), inv);
            for service in &inv.services {
                for name in &service.production {
                    assert!(is_valid_hostname(name));
                    assert!(!name.contains([' ', '\t', '#', '\n', '\r']));
                }
                if let Some(name) = &service.staging.name {
                    assert!(!name.contains([' ', '\t', '#', '\n', '\r']));
                }
                if let Some(addr) = service.staging.address {
                    for spelled in spellings(addr) {
                        assert!(
                            inv.production_range_of(spelled).is_none(),
                            "staging address {addr} is production as {spelled}"
                        );
                    }
                }
            }
        }
    }
});
