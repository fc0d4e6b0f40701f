//! Name resolution through the system resolver (getaddrinfo, so `/etc/hosts`, nsswitch and
//! DNS all count, as they do for every program on the host), with "no such name" told apart
//! from a resolver that failed. Blocking: call it from `spawn_blocking`.
//!
//! Not for deciding what an address means: see [`crate::execute`].

use std::net::IpAddr;

use dns_lookup::{AddrInfoHints, LookupErrorKind};

/// What a name resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The addresses, IPv4 and IPv6, in the resolver's order, without repeats.
    Addresses(Vec<IpAddr>),
    /// The name does not exist or has no addresses (EAI_NONAME, EAI_NODATA).
    NoName(String),
    /// The resolver failed (EAI_AGAIN: no server answered, EAI_FAIL, a system error).
    Failed(String),
}

/// Resolves `host`: an address literal is its own answer; a name goes to getaddrinfo.
#[must_use]
pub fn resolve(host: &str) -> Resolution {
    if let Ok(addr) = host.parse::<IpAddr>() {
        return Resolution::Addresses(vec![addr]);
    }
    let hints = AddrInfoHints {
        socktype: libc::SOCK_STREAM,
        ..AddrInfoHints::default()
    };
    match dns_lookup::getaddrinfo(Some(host), None, Some(hints)) {
        Ok(iter) => {
            let mut addrs = Vec::new();
            for info in iter {
                match info {
                    Ok(info) => {
                        let ip = info.sockaddr.ip();
                        if !addrs.contains(&ip) {
                            addrs.push(ip);
                        }
                    }
                    Err(e) => return Resolution::Failed(e.to_string()),
                }
            }
            if addrs.is_empty() {
                Resolution::NoName("no addresses".into())
            } else {
                Resolution::Addresses(addrs)
            }
        }
        Err(e) => {
            let kind = e.kind();
            let message = std::io::Error::from(e).to_string();
            match kind {
                LookupErrorKind::NoName | LookupErrorKind::NoData => Resolution::NoName(message),
                _ => Resolution::Failed(message),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_localhost() {
        assert_eq!(
            resolve("10.1.2.3"),
            Resolution::Addresses(vec!["10.1.2.3".parse().unwrap()])
        );
        assert_eq!(
            resolve("::1"),
            Resolution::Addresses(vec!["::1".parse().unwrap()])
        );
        match resolve("localhost") {
            Resolution::Addresses(addrs) => assert!(addrs.iter().all(IpAddr::is_loopback)),
            other => panic!("localhost: {other:?}"),
        }
    }
}
