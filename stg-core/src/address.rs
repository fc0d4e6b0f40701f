//! IP addresses compared as the addresses they are, not as the text they were written in.
//!
//! One IPv4 host has several IPv6 spellings. An IPv6 socket reaches `10.5.126.10` through
//! the IPv4-mapped form `::ffff:10.5.126.10`, and glibc's resolver hands that form out for an
//! `/etc/hosts` line written that way; the IPv4-compatible form `::10.5.126.10` (deprecated
//! by RFC 4291) names the same host. A production range written `10.5.126.0/24` must
//! therefore hold both. [`canonical`] is the one function that turns an address into the form
//! stg compares it in; every comparison and range check of the inventory, `stg-hosts` and
//! `stg-probe` goes through it ([`same`], [`in_ranges`], [`production_range`],
//! [`range_reaches`]).
//!
//! - `::ffff:a.b.c.d` (mapped) is `a.b.c.d`.
//! - `::a.b.c.d` (compatible) is `a.b.c.d`, except `::` and `::1` and the rest of `::/104`,
//!   whose IPv4 reading (`0.0.0.0/8`, "this network") is never a destination: `::1` stays
//!   IPv6 loopback.
//! - A range is the set of addresses it holds: an IPv6 range over the mapped or compatible
//!   block (`::ffff:10.5.126.0/120`) holds the IPv4 addresses it spells (`10.5.126.0/24`), and
//!   one that covers the whole block (`::/0`) holds every IPv4 address.
//! - NAT64 (RFC 6052): `64:ff9b::a.b.c.d`, the well-known prefix, is a different address: it
//!   is routed to a translator, not to the host, so it is never *equal* to `a.b.c.d` and never
//!   staging because `a.b.c.d` is. But a translator delivers it to `a.b.c.d`, so it *is*
//!   production when `a.b.c.d` is ([`production_range`]). Network-specific NAT64 prefixes
//!   (RFC 6052's other lengths, `64:ff9b:1::/48`) are the network's own choice and unknown to
//!   stg: list them in the inventory's production ranges.
//!
//! Not for parsing or printing: addresses keep the form they were written in, in reports.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The IPv4-mapped block, `::ffff:0:0/96`.
const MAPPED: u128 = 0xffff_0000_0000;
/// The NAT64 well-known prefix, `64:ff9b::/96` (RFC 6052).
const NAT64_WKP: u128 = 0x0064_ff9b_u128 << 96;
/// The low 32 bits: the IPv4 address inside a /96.
const LOW32: u128 = 0xffff_ffff;

/// The IPv4 address an IPv6 address spells, when it is mapped (`::ffff:a.b.c.d`) or
/// compatible (`::a.b.c.d`, `a` not 0).
fn spelled_ipv4(addr: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = addr.to_bits();
    let high = bits & !LOW32;
    let v4 = Ipv4Addr::from_bits((bits & LOW32) as u32);
    if high == MAPPED || (high == 0 && v4.octets()[0] != 0) {
        Some(v4)
    } else {
        None
    }
}

/// The address `addr` is: an IPv4-mapped (`::ffff:a.b.c.d`) or IPv4-compatible
/// (`::a.b.c.d`) IPv6 address becomes the IPv4 address `a.b.c.d`; every other address is
/// itself. Idempotent. The one normalisation every address comparison in stg uses.
#[must_use]
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => spelled_ipv4(v6).map_or(addr, IpAddr::V4),
    }
}

/// True when `a` and `b` are the same address in any spelling ([`canonical`]).
#[must_use]
pub fn same(a: IpAddr, b: IpAddr) -> bool {
    canonical(a) == canonical(b)
}

/// The IPv4 address a NAT64 translator would deliver `addr` to: `a.b.c.d` for
/// `64:ff9b::a.b.c.d` (the well-known prefix), else `None`.
#[must_use]
pub fn nat64_target(addr: IpAddr) -> Option<Ipv4Addr> {
    match addr {
        IpAddr::V6(v6) if v6.to_bits() & !LOW32 == NAT64_WKP => {
            Some(Ipv4Addr::from_bits((v6.to_bits() & LOW32) as u32))
        }
        _ => None,
    }
}

/// The IPv4 addresses an IPv6 range holds through the /96 block at `block`, as one IPv4
/// range: all of them when the range covers the block, the ones it spells when it lies
/// inside it.
fn ipv4_through(range: &Ipv6Net, block: u128) -> Option<Ipv4Net> {
    let block_net = Ipv6Net::new(Ipv6Addr::from_bits(block), 96).expect("a /96 is valid");
    if range.prefix_len() <= 96 && range.contains(&block_net.network()) {
        Some(Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 0).expect("a /0 is valid"))
    } else if block_net.contains(&range.network()) {
        let v4 = Ipv4Addr::from_bits((range.network().to_bits() & LOW32) as u32);
        Ipv4Net::new(v4, range.prefix_len() - 96).ok()
    } else {
        None
    }
}

/// A range as the canonical ranges it holds: itself, plus, for an IPv6 range over the
/// mapped or compatible block, the IPv4 range it spells.
fn pieces(range: &IpNet) -> Vec<IpNet> {
    let mut out = vec![*range];
    if let IpNet::V6(v6) = range {
        if let Some(v4) = ipv4_through(v6, MAPPED) {
            out.push(IpNet::V4(v4));
        }
        // The compatible block's IPv4 part, without 0.0.0.0/8 (those stay IPv6: `::1`).
        if let Some(v4) = ipv4_through(v6, 0) {
            if v4.prefix_len() < 8 || v4.network().octets()[0] != 0 {
                out.push(IpNet::V4(v4));
            }
        }
    }
    out
}

fn net_contains(net: &IpNet, addr: IpAddr) -> bool {
    match (net, addr) {
        (IpNet::V4(net), IpAddr::V4(a)) => net.contains(&a),
        (IpNet::V6(net), IpAddr::V6(a)) => net.contains(&a),
        _ => false,
    }
}

/// True when `range` holds `addr`, both taken as the addresses they are.
#[must_use]
pub fn range_contains(range: &IpNet, addr: IpAddr) -> bool {
    let addr = canonical(addr);
    pieces(range).iter().any(|piece| net_contains(piece, addr))
}

/// The first of `ranges` that holds `addr` ([`range_contains`]).
#[must_use]
pub fn in_ranges(ranges: &[IpNet], addr: IpAddr) -> Option<&IpNet> {
    ranges.iter().find(|r| range_contains(r, addr))
}

/// The first of `ranges` (production's) that `addr` reaches: one holding the address, or,
/// for a NAT64 address, one holding the IPv4 address the translator delivers it to.
#[must_use]
pub fn production_range(ranges: &[IpNet], addr: IpAddr) -> Option<&IpNet> {
    in_ranges(ranges, addr)
        .or_else(|| nat64_target(addr).and_then(|v4| in_ranges(ranges, IpAddr::V4(v4))))
}

/// True when some address of `range` is production by [`production_range`]'s rule: the two
/// ranges share an address (both taken as the addresses they hold), or `range` lies in the
/// NAT64 well-known prefix and translates into `production`.
#[must_use]
pub fn range_reaches(range: &IpNet, production: &IpNet) -> bool {
    let mut from = pieces(range);
    if let IpNet::V6(v6) = range {
        if let Some(v4) = ipv4_through(v6, NAT64_WKP) {
            from.push(IpNet::V4(v4));
        }
    }
    let to = pieces(production);
    from.iter().any(|x| {
        to.iter()
            .any(|y| net_contains(x, y.network()) || net_contains(y, x.network()))
    })
}

/// `addr` as written, with what it is when that differs: `::ffff:10.5.126.10 (IPv4
/// 10.5.126.10)`, `64:ff9b::a05:7e0a (NAT64 for 10.5.126.10)`. For messages.
#[must_use]
pub fn describe(addr: IpAddr) -> String {
    let canonical = canonical(addr);
    if canonical != addr {
        format!("{addr} (IPv4 {canonical})")
    } else if let Some(v4) = nat64_target(addr) {
        format!("{addr} (NAT64 for {v4})")
    } else {
        addr.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn mapped_and_compatible_forms_are_the_ipv4_address() {
        assert_eq!(canonical(ip("::ffff:10.5.126.10")), ip("10.5.126.10"));
        assert_eq!(canonical(ip("::ffff:a05:7e0a")), ip("10.5.126.10"));
        assert_eq!(canonical(ip("::10.5.126.10")), ip("10.5.126.10"));
        assert_eq!(canonical(ip("10.5.126.10")), ip("10.5.126.10"));
        assert!(same(ip("::FFFF:10.5.126.10"), ip("10.5.126.10")));
        assert!(same(ip("::10.5.126.10"), ip("::ffff:10.5.126.10")));
        assert!(!same(ip("10.5.126.10"), ip("10.5.126.11")));
    }

    #[test]
    fn loopback_unspecified_and_other_ipv6_stay_ipv6() {
        for text in [
            "::1",
            "::",
            "::2",
            "::0.255.0.1",
            "2620:52:3:1::10",
            "fe80::1",
        ] {
            assert_eq!(canonical(ip(text)), ip(text), "{text}");
        }
        // NAT64 is a different address (it goes to the translator).
        assert_eq!(
            canonical(ip("64:ff9b::10.5.126.10")),
            ip("64:ff9b::10.5.126.10")
        );
        assert!(!same(ip("64:ff9b::10.5.126.10"), ip("10.5.126.10")));
        // Idempotent.
        for text in ["::ffff:1.2.3.4", "::1.2.3.4", "::1", "64:ff9b::1.2.3.4"] {
            assert_eq!(canonical(canonical(ip(text))), canonical(ip(text)));
        }
    }

    #[test]
    fn ranges_hold_every_spelling() {
        let v4 = net("10.5.126.0/24");
        for text in [
            "10.5.126.10",
            "::ffff:10.5.126.10",
            "::10.5.126.10",
            "::ffff:a05:7e0a",
        ] {
            assert!(range_contains(&v4, ip(text)), "{text}");
        }
        assert!(!range_contains(&v4, ip("10.5.127.1")));
        assert!(!range_contains(&v4, ip("64:ff9b::10.5.126.10")));
        // A range written in the mapped form holds the IPv4 addresses.
        let mapped = net("::ffff:10.5.126.0/120");
        assert!(range_contains(&mapped, ip("10.5.126.10")));
        assert!(range_contains(&mapped, ip("::ffff:10.5.126.10")));
        assert!(!range_contains(&mapped, ip("10.5.127.10")));
        // ::/0 covers the mapped block, hence every IPv4 address; ::1/128 is loopback only.
        assert!(range_contains(&net("::/0"), ip("192.0.2.1")));
        assert!(!range_contains(&net("::1/128"), ip("0.0.0.1")));
        assert!(range_contains(&net("::1/128"), ip("::1")));
        assert!(!range_contains(&net("2620:52:3:1::/64"), ip("10.5.126.10")));
    }

    #[test]
    fn nat64_reaches_production_but_is_not_the_address() {
        let prod = [net("10.5.126.0/24")];
        assert_eq!(
            production_range(&prod, ip("64:ff9b::10.5.126.10")),
            Some(&prod[0])
        );
        assert_eq!(production_range(&prod, ip("64:ff9b::10.5.127.10")), None);
        assert_eq!(in_ranges(&prod, ip("64:ff9b::10.5.126.10")), None);
        assert_eq!(
            nat64_target(ip("64:ff9b::a05:7e0a")),
            Some("10.5.126.10".parse().unwrap())
        );
        assert_eq!(nat64_target(ip("64:ff9b:1::a05:7e0a")), None);
    }

    #[test]
    fn overlap_sees_through_spellings() {
        let prod = net("10.5.126.0/24");
        assert!(range_reaches(&net("::ffff:10.5.126.0/120"), &prod));
        assert!(range_reaches(&net("::ffff:10.5.126.128/121"), &prod));
        assert!(range_reaches(&net("::ffff:0:0/96"), &prod));
        assert!(range_reaches(&net("::10.5.126.0/120"), &prod));
        assert!(range_reaches(&net("64:ff9b::10.5.126.0/120"), &prod));
        assert!(range_reaches(&prod, &net("::ffff:10.5.126.7/128")));
        assert!(!range_reaches(&net("::ffff:10.5.128.0/120"), &prod));
        assert!(!range_reaches(&net("2620:52:3:2::/64"), &prod));
        assert!(range_reaches(&net("10.5.0.0/16"), &prod));
        assert!(!range_reaches(&net("10.5.128.0/24"), &prod));
        // A production NAT64 range does not make the IPv4 addresses it translates to
        // production: only what staging reaches through a translator counts.
        assert!(!range_reaches(&net("10.5.128.0/24"), &net("64:ff9b::/96")));
    }

    #[test]
    fn describe_says_what_an_address_is() {
        assert_eq!(
            describe(ip("::ffff:10.5.126.10")),
            "::ffff:10.5.126.10 (IPv4 10.5.126.10)"
        );
        assert_eq!(
            describe(ip("64:ff9b::a05:7e0a")),
            "64:ff9b::a05:7e0a (NAT64 for 10.5.126.10)"
        );
        assert_eq!(describe(ip("10.5.126.10")), "10.5.126.10");
    }
}
