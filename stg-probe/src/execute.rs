//! Running the checks: resolve every name once, then connect to every address that needs
//! it, with at most `concurrency` resolutions or connections in flight, a per-connect
//! timeout, and an overall deadline after which what is unfinished is reported as
//! `deadline` (inconclusive) instead of waited for.
//!
//! All connections of one wave run at once, so 1,000 endpoints that all time out take about
//! one timeout when `concurrency` is at least 1,000, and `ceil(n / concurrency)` timeouts
//! otherwise. Not for output: see [`crate::report`].

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::plan::{holds, Check, Kind, Ranges};
use crate::resolve::{resolve, Resolution};

/// The outcome of a check, or of one address of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A TCP connection was accepted.
    Open,
    /// The connection was refused (TCP reset): nothing listens, or a firewall rejects.
    Refused,
    /// No answer within the timeout: a firewall drops the traffic.
    Timeout,
    /// No route, or an ICMP unreachable / administratively prohibited answer.
    Unreachable,
    /// Another connection error (see `error`): proves nothing.
    Error,
    /// The name does not exist or has no address.
    Nxdomain,
    /// The resolver failed (no server answered...).
    DnsError,
    /// On the inventory's allow-list: staging may reach it on purpose; not connected to.
    Allowed,
    /// Blocked check: the name resolves only to staging addresses here (an override is in
    /// effect), so this host cannot reach production through it.
    Overridden,
    /// One address of a blocked check that is a staging address: not connected to.
    Staging,
    /// Resolves check: every address is an expected staging address.
    Ok,
    /// One address, or a resolves check: an address in a production range.
    Production,
    /// One address, or a resolves check: an address that is neither expected nor staging.
    Unexpected,
    /// One address of a resolves check: expected.
    Expected,
    /// One address of a resolves check with nothing to compare against (no expected
    /// address, no staging ranges); a resolves check whose addresses are all unchecked
    /// proved nothing.
    Unchecked,
    /// The overall deadline passed before the check finished.
    Deadline,
}

/// How a check's outcome counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Isolation holds for this check.
    Ok,
    /// Nothing was proven (a name that does not resolve, a resolver failure, the deadline).
    Inconclusive,
    /// A staging service that should answer does not.
    Down,
    /// Staging can reach production, or a name leads out of staging.
    Breach,
}

/// What one address of a check gave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AddressResult {
    /// The address.
    pub address: IpAddr,
    /// Its outcome.
    pub outcome: Outcome,
    /// Time the connection attempt took (connect checks only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<u64>,
    /// The error text of an `error` or `unreachable` outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The result of one check.
#[derive(Clone, Debug)]
pub struct CheckResult {
    /// The check.
    pub check: Check,
    /// Its outcome.
    pub outcome: Outcome,
    /// How that counts.
    pub status: Status,
    /// Evidence: each address the name resolved to, and what it gave.
    pub addresses: Vec<AddressResult>,
    /// The resolver's message for `nxdomain` and `dns_error`.
    pub error: Option<String>,
}

/// How to run.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Per-connection timeout.
    pub timeout: Duration,
    /// Most resolutions or connections in flight at once.
    pub concurrency: usize,
    /// Overall time limit.
    pub deadline: Duration,
}

/// Every check's result in check order, and whether the deadline cut the run short.
pub struct Run {
    /// One result per check, in the order given.
    pub results: Vec<CheckResult>,
    /// True when the overall deadline passed before everything finished.
    pub deadline_reached: bool,
}

/// The status an outcome has for a kind of check.
#[must_use]
pub fn status_of(kind: Kind, outcome: Outcome) -> Status {
    match (kind, outcome) {
        (
            _,
            Outcome::Nxdomain
            | Outcome::DnsError
            | Outcome::Deadline
            | Outcome::Error
            | Outcome::Unchecked,
        ) => Status::Inconclusive,
        (Kind::Blocked, Outcome::Open) | (_, Outcome::Production | Outcome::Unexpected) => {
            Status::Breach
        }
        (Kind::Reachable, Outcome::Refused | Outcome::Timeout | Outcome::Unreachable) => {
            Status::Down
        }
        _ => Status::Ok,
    }
}

/// Runs the checks on a fresh tokio runtime.
pub fn execute(checks: &[Check], ranges: &Ranges, options: Options) -> anyhow::Result<Run> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("while starting the async runtime: {e}"))?;
    let run = runtime.block_on(execute_async(checks, ranges, options));
    // A resolver call still blocked past the deadline must not hold the exit.
    runtime.shutdown_background();
    Ok(run)
}

/// Waits for every task of `set` until `deadline`; returns true if the deadline came first
/// (the remaining tasks are aborted).
async fn drain<T: 'static>(
    set: &mut JoinSet<T>,
    deadline: Instant,
    mut each: impl FnMut(T),
) -> bool {
    loop {
        tokio::select! {
            next = set.join_next() => match next {
                None => return false,
                Some(Ok(value)) => each(value),
                Some(Err(err)) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
                Some(Err(_)) => {}
            },
            () = tokio::time::sleep_until(deadline) => {
                set.abort_all();
                return true;
            }
        }
    }
}

fn connect_outcome(err: &io::Error) -> (Outcome, Option<String>) {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => (Outcome::Refused, None),
        io::ErrorKind::TimedOut => (Outcome::Timeout, None),
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            (Outcome::Unreachable, Some(err.to_string()))
        }
        // EPERM/EACCES: a local firewall rule rejected the packet on its way out.
        _ if matches!(err.raw_os_error(), Some(libc::EPERM | libc::EACCES)) => {
            (Outcome::Unreachable, Some(err.to_string()))
        }
        _ => (Outcome::Error, Some(err.to_string())),
    }
}

async fn connect(addr: SocketAddr, timeout: Duration) -> AddressResult {
    let start = Instant::now();
    let (outcome, error) = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(_stream)) => (Outcome::Open, None),
        Ok(Err(err)) => connect_outcome(&err),
        Err(_) => (Outcome::Timeout, None),
    };
    AddressResult {
        address: addr.ip(),
        outcome,
        elapsed_ms: Some(u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)),
        error,
    }
}

/// True when a blocked check need not connect to `addr`: it is a known staging address
/// (in any spelling) and in no production range.
fn is_known_staging(check: &Check, ranges: &Ranges, addr: IpAddr) -> bool {
    !ranges.is_production(addr) && (holds(&check.expect, addr) || ranges.is_staging(addr))
}

/// What one address of a resolves check is. A production address is production even when
/// an input record expected it: no expectation makes production staging.
fn classify_resolved(check: &Check, ranges: &Ranges, addr: IpAddr) -> Outcome {
    if ranges.is_production(addr) {
        Outcome::Production
    } else if holds(&check.expect, addr) || ranges.is_staging(addr) {
        Outcome::Expected
    } else if check.expect.is_empty() && ranges.staging.is_empty() {
        Outcome::Unchecked
    } else {
        Outcome::Unexpected
    }
}

/// The least conclusive outcome first: what a check reports when its addresses differ.
const CONNECT_PRIORITY: [Outcome; 5] = [
    Outcome::Deadline,
    Outcome::Error,
    Outcome::Timeout,
    Outcome::Unreachable,
    Outcome::Refused,
];

fn summarize(check: &Check, addresses: &[AddressResult]) -> Outcome {
    let has = |o: Outcome| addresses.iter().any(|a| a.outcome == o);
    match check.kind {
        Kind::Resolves => {
            if has(Outcome::Production) {
                Outcome::Production
            } else if has(Outcome::Unexpected) {
                Outcome::Unexpected
            } else if !addresses.is_empty()
                && addresses.iter().all(|a| a.outcome == Outcome::Unchecked)
            {
                Outcome::Unchecked
            } else {
                Outcome::Ok
            }
        }
        Kind::Blocked | Kind::Reachable => {
            if has(Outcome::Open) {
                return Outcome::Open;
            }
            if check.kind == Kind::Blocked
                && addresses.iter().all(|a| a.outcome == Outcome::Staging)
            {
                return Outcome::Overridden;
            }
            CONNECT_PRIORITY
                .into_iter()
                .find(|o| has(*o))
                .unwrap_or(Outcome::Error)
        }
    }
}

async fn execute_async(checks: &[Check], ranges: &Ranges, options: Options) -> Run {
    let deadline = Instant::now() + options.deadline;
    let semaphore = Arc::new(Semaphore::new(options.concurrency));

    // Phase 1: each distinct name once.
    let mut names: Vec<String> = Vec::new();
    let mut name_index: HashMap<String, usize> = HashMap::new();
    for check in checks.iter().filter(|c| c.allowed.is_none()) {
        let key = check.host.to_ascii_lowercase();
        if let std::collections::hash_map::Entry::Vacant(slot) = name_index.entry(key) {
            slot.insert(names.len());
            names.push(check.host.clone());
        }
    }
    let mut resolutions: Vec<Option<Resolution>> = vec![None; names.len()];
    let mut set = JoinSet::new();
    for (index, name) in names.iter().enumerate() {
        let semaphore = Arc::clone(&semaphore);
        let name = name.clone();
        set.spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            let resolution = tokio::task::spawn_blocking(move || resolve(&name))
                .await
                .unwrap_or_else(|e| Resolution::Failed(format!("resolver task failed: {e}")));
            (index, resolution)
        });
    }
    let mut deadline_reached = drain(&mut set, deadline, |(index, resolution)| {
        resolutions[index] = Some(resolution);
    })
    .await;

    // Phase 2: addresses; connections where the check needs them.
    let mut addresses: Vec<Vec<AddressResult>> = vec![Vec::new(); checks.len()];
    let mut set = JoinSet::new();
    for (ci, check) in checks.iter().enumerate() {
        if check.allowed.is_some() {
            continue;
        }
        let Some(Resolution::Addresses(addrs)) =
            &resolutions[name_index[&check.host.to_ascii_lowercase()]]
        else {
            continue;
        };
        for (ai, &addr) in addrs.iter().enumerate() {
            let placeholder = |outcome| AddressResult {
                address: addr,
                outcome,
                elapsed_ms: None,
                error: None,
            };
            match check.kind {
                Kind::Resolves => {
                    addresses[ci].push(placeholder(classify_resolved(check, ranges, addr)));
                }
                Kind::Blocked if is_known_staging(check, ranges, addr) => {
                    addresses[ci].push(placeholder(Outcome::Staging));
                }
                Kind::Blocked | Kind::Reachable => {
                    addresses[ci].push(placeholder(Outcome::Deadline));
                    let semaphore = Arc::clone(&semaphore);
                    let target = SocketAddr::new(addr, check.port.unwrap_or_default());
                    let timeout = options.timeout;
                    set.spawn(async move {
                        let _permit = semaphore.acquire_owned().await;
                        (ci, ai, connect(target, timeout).await)
                    });
                }
            }
        }
    }
    deadline_reached |= drain(&mut set, deadline, |(ci, ai, result)| {
        addresses[ci][ai] = result;
    })
    .await;

    let results = checks
        .iter()
        .zip(addresses)
        .map(|(check, addresses)| {
            let (outcome, error) = if check.allowed.is_some() {
                (Outcome::Allowed, None)
            } else {
                match &resolutions[name_index[&check.host.to_ascii_lowercase()]] {
                    None => (Outcome::Deadline, None),
                    Some(Resolution::NoName(msg)) => (Outcome::Nxdomain, Some(msg.clone())),
                    Some(Resolution::Failed(msg)) => (Outcome::DnsError, Some(msg.clone())),
                    Some(Resolution::Addresses(_)) => (summarize(check, &addresses), None),
                }
            };
            CheckResult {
                check: check.clone(),
                outcome,
                status: status_of(check.kind, outcome),
                addresses,
                error,
            }
        })
        .collect();
    Run {
        results,
        deadline_reached,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(status_of(Kind::Blocked, Outcome::Open), Status::Breach);
        assert_eq!(status_of(Kind::Blocked, Outcome::Timeout), Status::Ok);
        assert_eq!(
            status_of(Kind::Blocked, Outcome::Nxdomain),
            Status::Inconclusive
        );
        assert_eq!(status_of(Kind::Blocked, Outcome::Allowed), Status::Ok);
        assert_eq!(status_of(Kind::Reachable, Outcome::Open), Status::Ok);
        assert_eq!(status_of(Kind::Reachable, Outcome::Refused), Status::Down);
        assert_eq!(
            status_of(Kind::Resolves, Outcome::Production),
            Status::Breach
        );
        assert_eq!(
            status_of(Kind::Resolves, Outcome::DnsError),
            Status::Inconclusive
        );
        assert_eq!(
            status_of(Kind::Resolves, Outcome::Unchecked),
            Status::Inconclusive
        );
    }

    fn resolves(expect: &[&str]) -> Check {
        Check {
            kind: Kind::Resolves,
            host: "fas.example.org".into(),
            port: None,
            service: None,
            source: "test".into(),
            expect: expect.iter().map(|a| a.parse().unwrap()).collect(),
            allowed: None,
        }
    }

    #[test]
    fn resolved_addresses_are_classified_in_any_spelling() {
        let ranges = Ranges {
            production: vec!["10.5.126.0/24".parse().unwrap()],
            staging: vec!["10.5.128.0/24".parse().unwrap()],
        };
        let classify =
            |check: &Check, addr: &str| classify_resolved(check, &ranges, addr.parse().unwrap());
        let none = resolves(&[]);
        // Issue 20, item 3: the mapped form of a production address is production.
        assert_eq!(classify(&none, "::ffff:10.5.126.10"), Outcome::Production);
        assert_eq!(classify(&none, "::10.5.126.10"), Outcome::Production);
        assert_eq!(classify(&none, "64:ff9b::10.5.126.10"), Outcome::Production);
        assert_eq!(classify(&none, "::ffff:10.5.128.10"), Outcome::Expected);
        // Even when an input record expected it.
        let expected_prod = resolves(&["::ffff:10.5.126.10"]);
        assert_eq!(
            classify(&expected_prod, "::ffff:10.5.126.10"),
            Outcome::Production
        );
        // An expectation matches the address in any spelling.
        let bare = Ranges::default();
        let check = resolves(&["::ffff:192.0.2.7"]);
        assert_eq!(
            classify_resolved(&check, &bare, "192.0.2.7".parse().unwrap()),
            Outcome::Expected
        );
        assert_eq!(
            classify_resolved(&check, &bare, "192.0.2.8".parse().unwrap()),
            Outcome::Unexpected
        );
        assert!(!is_known_staging(
            &resolves(&["::ffff:10.5.126.10"]),
            &ranges,
            "10.5.126.10".parse().unwrap()
        ));
        assert!(is_known_staging(
            &resolves(&["::ffff:192.0.2.7"]),
            &bare,
            "192.0.2.7".parse().unwrap()
        ));
    }
}
