//! Test support shared by every stg crate's tests, and home of the cross-tool pipeline
//! tests (`tests/tests/`).
//!
//! - [`pg::Cluster`]: a real, throwaway PostgreSQL cluster on a free loopback port.
//! - [`git::Repo`]: a temporary git repository with fixed commit dates.
//! - [`cmd::stg`]: a hermetic command for one of the workspace's binaries.
//! - [`run::Tool`] and [`run::Run`]: the test vocabulary: run a tool with arguments, env and
//!   stdin, assert its exit code, read its JSON Lines and summary.
//! - [`sshd::Sshd`]: a real OpenSSH server on a free loopback port.
//! - [`netns::Netns`]: a network namespace (veth links, nftables, its own /etc/hosts).
//!
//! Missing system tools (PostgreSQL, git) are test failures with an install hint, never
//! silent skips: see [`require`].

pub mod cmd;
pub mod git;
pub mod netns;
pub mod pg;
pub mod run;
pub mod sshd;

/// Fails the test with an install hint: used when a system tool a test needs is missing.
/// There is no skip: under `CI=true` and everywhere else, a missing tool is a failure.
#[track_caller]
pub fn require(what: &str, debian_package: &str) -> ! {
    panic!(
        "{what} is needed by this test but was not found; install it (Debian: apt-get install {debian_package}; \
         Fedora: dnf install {debian_package}) or run .ci/run, which installs everything the tests need"
    )
}

/// A TCP port where a connection is refused, and stays refused while the returned descriptor
/// lives: a socket bound to `at` (port 0: any free port) without `listen`. A port bound and
/// then released can be handed to any other process, or another test, before the check runs;
/// to take a listener down, drop it and take its port at once with this.
///
/// # Panics
/// When the address cannot be bound.
#[must_use]
pub fn refused_port(at: std::net::SocketAddr) -> (std::os::fd::OwnedFd, u16) {
    use nix::sys::socket::{
        bind, getsockname, socket, AddressFamily, SockFlag, SockType, SockaddrStorage,
    };
    let ip = at.ip();
    let family = if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).expect("a socket");
    let addr = SockaddrStorage::from(at);
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr).expect("bind a port without listening");
    let bound: SockaddrStorage =
        getsockname(std::os::fd::AsRawFd::as_raw_fd(&fd)).expect("the bound port");
    let port = bound
        .as_sockaddr_in()
        .map(nix::sys::socket::SockaddrIn::port)
        .or_else(|| {
            bound
                .as_sockaddr_in6()
                .map(nix::sys::socket::SockaddrIn6::port)
        })
        .expect("an inet address");
    (fd, port)
}

/// True when running as root (tests then run servers as an unprivileged user).
#[must_use]
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A dump stream decompressed, zstd or xz by its magic bytes (what stg-restore accepts).
///
/// # Panics
/// When the data is in neither format or does not decode completely.
#[must_use]
pub fn decompress(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    if bytes.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
        zstd::stream::read::Decoder::new(bytes)
            .expect("zstd decoder")
            .read_to_end(&mut out)
            .expect("a complete zstd stream");
    } else {
        liblzma::read::XzDecoder::new_multi_decoder(bytes)
            .read_to_end(&mut out)
            .expect("a complete xz stream");
    }
    out
}
