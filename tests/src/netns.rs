//! Real test hosts as Linux network namespaces: [`Netns`] creates a namespace (loopback up,
//! no other interface, no route beyond its own links), [`link`] joins two with a veth pair,
//! [`Netns::nft`] loads an nftables ruleset into one, [`Netns::listen`] opens a TCP listener
//! inside one, [`Netns::set_hosts`] gives one its own `/etc/hosts` (through iproute2's
//! `/etc/netns/<name>/hosts`, which `ip netns exec` bind-mounts over `/etc/hosts`), and
//! [`Netns::exec`] runs a command inside one.
//!
//! Everything is removed on drop, also when the test panics: the namespace (and with it its
//! veth ends and ruleset) and `/etc/netns/<name>`. Names carry the process id and a counter,
//! so tests run in parallel. Needs root, `ip` (iproute2) and `nft` (nftables); a missing
//! tool fails the test with an install hint ([`crate::require`]), never a skip.
//!
//! Not for traffic beyond the namespaces: no default route is ever added, so nothing a test
//! sends can leave the machine.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique_suffix() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn tool_exists(name: &str) -> bool {
    Command::new(name)
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Fails the test unless it runs as root with `ip` and `nft` installed.
#[track_caller]
pub fn require_tools() {
    assert!(
        crate::is_root(),
        "network namespace tests need root (they create namespaces, veth links and nftables rules); \
         run them as root, as CI does"
    );
    if !tool_exists("ip") {
        crate::require("ip (iproute2)", "iproute2");
    }
    if !tool_exists("nft") {
        crate::require("nft (nftables)", "nftables");
    }
}

#[track_caller]
fn checked(cmd: &mut Command, input: Option<&str>) {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if let Some(text) = input {
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(text.as_bytes())
            .expect("write to child stdin");
    }
    let out = child.wait_with_output().expect("wait for child");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace that exists until dropped.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace named `stg-<role>-<pid>-<n>` with its loopback up. Panics (with an
    /// install hint where it helps) when that is impossible.
    #[must_use]
    pub fn new(role: &str) -> Netns {
        require_tools();
        let name = format!("stg-{role}-{}", unique_suffix());
        checked(Command::new("ip").args(["netns", "add", &name]), None);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's name (as `ip netns` knows it).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n <name> ARGS` and panics if it fails.
    #[track_caller]
    pub fn ip(&self, args: &[&str]) {
        checked(Command::new("ip").args(["-n", &self.name]).args(args), None);
    }

    /// Replaces the namespace's nftables ruleset with `ruleset` (`nft -f` syntax).
    #[track_caller]
    pub fn nft(&self, ruleset: &str) {
        let text = format!("flush ruleset\n{ruleset}\n");
        checked(
            Command::new("ip").args(["netns", "exec", &self.name, "nft", "-f", "-"]),
            Some(&text),
        );
    }

    /// Gives commands run through [`Netns::exec`] their own `/etc/hosts` with `content`.
    pub fn set_hosts(&self, content: &str) {
        self.set_etc_file("hosts", content);
    }

    /// Gives commands run through [`Netns::exec`] their own `/etc/<file_name>` (e.g.
    /// `nsswitch.conf`, `resolv.conf`) with `content`: `ip netns exec` bind-mounts every
    /// file of `/etc/netns/<name>/` over its namesake in `/etc`.
    pub fn set_etc_file(&self, file_name: &str, content: &str) {
        assert!(
            !file_name.contains('/') && !file_name.starts_with('.'),
            "a file directly in /etc, not {file_name:?}"
        );
        let dir = self.etc_dir();
        std::fs::create_dir_all(&dir).expect("create /etc/netns/<name>");
        std::fs::write(dir.join(file_name), content)
            .unwrap_or_else(|e| panic!("write /etc/netns/{}/{file_name}: {e}", self.name));
    }

    /// A command running `program` inside the namespace (`ip netns exec`), with a clean
    /// environment as in [`crate::cmd`]. Use [`Command::env`] to add what it needs.
    #[must_use]
    pub fn exec(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = crate::cmd::program("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// A TCP listener bound to `addr` inside the namespace. Connections complete their
    /// handshake in the kernel's backlog whether or not anyone accepts them; the listener
    /// closes when dropped.
    pub fn listen(&self, addr: SocketAddr) -> TcpListener {
        let path = PathBuf::from("/run/netns").join(&self.name);
        // setns changes only the calling thread's namespace, so a short-lived thread does
        // it; the socket stays in the namespace it was created in.
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path)
                .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("setns {}: {e}", path.display()));
            TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr} in namespace: {e}"))
        })
        .join()
        .expect("listener thread")
    }

    fn etc_dir(&self) -> PathBuf {
        PathBuf::from("/etc/netns").join(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Best effort: a failure here must not hide the test's own panic.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let dir = self.etc_dir();
        if dir.exists() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Joins `a` and `b` with a veth pair and gives each end its addresses (CIDR notation, e.g.
/// `10.231.0.1/24` or `fd00:231::1/64`; IPv6 addresses skip duplicate address detection so
/// they work at once). Both ends are up. The pair disappears with the namespaces.
#[track_caller]
pub fn link(a: &Netns, a_addrs: &[&str], b: &Netns, b_addrs: &[&str]) {
    // Interface names are at most 15 bytes and live in the creating (host) namespace for a
    // moment, so they must be unique across parallel tests.
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id() % 100_000;
    let a_if = format!("va{pid}x{n}");
    let b_if = format!("vb{pid}x{n}");
    checked(
        Command::new("ip").args([
            "link", "add", &a_if, "netns", &a.name, "type", "veth", "peer", "name", &b_if, "netns",
            &b.name,
        ]),
        None,
    );
    for (ns, ifname, addrs) in [(a, &a_if, a_addrs), (b, &b_if, b_addrs)] {
        for addr in addrs {
            if addr.contains(':') {
                ns.ip(&["addr", "add", addr, "dev", ifname, "nodad"]);
            } else {
                ns.ip(&["addr", "add", addr, "dev", ifname]);
            }
        }
        ns.ip(&["link", "set", ifname, "up"]);
    }
}
