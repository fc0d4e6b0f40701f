//! A real, throwaway PostgreSQL cluster: `initdb` into a temporary directory, a free
//! loopback port, the Unix socket in that directory, settings for speed (`fsync=off`).
//! When the tests run as root, the server runs as the unprivileged `postgres` user (the
//! server refuses to run as root). The cluster is stopped and removed on drop, also when
//! the test panics.
//!
//! Server binaries are found the way a Debian or Fedora user has them: `STG_PG_BINDIR`,
//! `pg_config --bindir`, `/usr/lib/postgresql/<newest>/bin`, `/usr/pgsql-<newest>/bin`,
//! then `PATH`.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The superuser every test cluster is created with.
pub const SUPERUSER: &str = "postgres";

/// A running throwaway cluster.
pub struct Cluster {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    port: u16,
    run_as: Option<(nix::unistd::Uid, nix::unistd::Gid)>,
    /// The data directory is a tmpfs of its own (see [`Cluster::start_on_tmpfs`]).
    tmpfs: bool,
}

fn has_server(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres"]
        .iter()
        .all(|b| dir.join(b).is_file())
}

fn newest_versioned(pattern_parent: &str, prefix: &str, suffix: &str) -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(pattern_parent)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let version: u32 = name.strip_prefix(prefix)?.parse().ok()?;
            let dir = entry.path().join(suffix);
            has_server(&dir).then_some((version, dir))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, dir)| dir)
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`, or `None`.
#[must_use]
pub fn find_bindir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("STG_PG_BINDIR").map(PathBuf::from) {
        return has_server(&dir).then_some(dir);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_server(&dir) {
            return Some(dir);
        }
    }
    if let Some(dir) = newest_versioned("/usr/lib/postgresql", "", "bin") {
        return Some(dir);
    }
    if let Some(dir) = newest_versioned("/usr", "pgsql-", "bin") {
        return Some(dir);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|dir| has_server(dir))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free loopback port")
        .port()
}

fn check(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Cluster {
    /// Starts a new cluster; panics with an install hint when PostgreSQL is missing.
    #[must_use]
    pub fn start() -> Cluster {
        Self::start_inner(None)
    }

    /// Starts a new cluster whose data directory is a tmpfs of `bytes` (WAL outside it, as
    /// `initdb -X` puts it), so that a test can fill the disk under the data, resizing it
    /// with [`Cluster::resize_data_fs`]. Needs root (to mount); unmounted on drop.
    #[must_use]
    pub fn start_on_tmpfs(bytes: u64) -> Cluster {
        assert!(
            crate::is_root(),
            "this test mounts a tmpfs and must run as root (CI does)"
        );
        Self::start_inner(Some(bytes))
    }

    fn start_inner(tmpfs: Option<u64>) -> Cluster {
        let Some(bindir) = find_bindir() else {
            crate::require(
                "the PostgreSQL server (initdb, pg_ctl, postgres)",
                "postgresql",
            );
        };
        let run_as = if crate::is_root() {
            let user = nix::unistd::User::from_name("postgres")
                .ok()
                .flatten()
                .unwrap_or_else(|| {
                    crate::require(
                        "an unprivileged `postgres` user to run the server as root",
                        "postgresql",
                    )
                });
            Some((user.uid, user.gid))
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("stg-pg-")
            .tempdir()
            .expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        if let Some((uid, gid)) = run_as {
            nix::unistd::chown(dir.path(), Some(uid), Some(gid))
                .expect("chown temp dir to postgres");
        }
        let mut cluster = Cluster {
            dir,
            bindir,
            port: 0,
            run_as,
            tmpfs: false,
        };
        let mut initdb = cluster.server_cmd("initdb");
        if let Some(bytes) = tmpfs {
            let data = cluster.data_dir();
            std::fs::create_dir(&data).expect("create the data directory");
            let (uid, gid) = run_as.map_or((0, 0), |(u, g)| (u.as_raw(), g.as_raw()));
            mount(&[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes},mode=0700,uid={uid},gid={gid}"),
                "tmpfs",
                data.to_str().expect("utf-8 path"),
            ]);
            cluster.tmpfs = true;
            initdb.arg("-X").arg(cluster.dir.path().join("wal"));
        }
        let out = initdb
            .args([
                "-D",
                "data",
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ])
            .output()
            .expect("run initdb");
        check(&out, "initdb");
        // A port can be taken between picking and binding it (another test's cluster):
        // pick again and retry.
        let mut last = String::new();
        for _ in 0..8 {
            cluster.port = free_port();
            let conf = format!(
                "port = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
                 fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n\
                 max_connections = 40\nshared_buffers = 32MB\nmax_wal_size = 1GB\n",
                cluster.port,
                cluster.dir.path().display()
            );
            std::fs::write(cluster.data_dir().join("postgresql.auto.conf"), conf)
                .expect("write conf");
            if let Some((uid, gid)) = run_as {
                nix::unistd::chown(
                    &cluster.data_dir().join("postgresql.auto.conf"),
                    Some(uid),
                    Some(gid),
                )
                .expect("chown conf");
            }
            let out = cluster
                .server_cmd("pg_ctl")
                .args(["-D", "data", "-l", "server.log", "-w", "-t", "60", "start"])
                .output()
                .expect("run pg_ctl");
            if out.status.success() {
                return cluster;
            }
            last = format!(
                "{}{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(cluster.dir.path().join("server.log")).unwrap_or_default()
            );
        }
        panic!("PostgreSQL test cluster did not start:\n{last}");
    }

    /// A command for a server binary, run as the server's user in the cluster directory.
    fn server_cmd(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.bindir.join(name));
        cmd.current_dir(self.dir.path())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LC_ALL", "C")
            .env("TZ", "UTC");
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid.as_raw()).gid(gid.as_raw());
        }
        cmd
    }

    /// The data directory.
    #[must_use]
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory holding the server's Unix socket.
    #[must_use]
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The directory of the server binaries (and `psql`, `pg_dump` of the same version).
    #[must_use]
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// The loopback port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host to connect to.
    #[must_use]
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// `-h 127.0.0.1 -p PORT -U postgres`, for a tool's argv.
    #[must_use]
    pub fn conn_args(&self) -> Vec<String> {
        vec![
            "-h".into(),
            self.host().into(),
            "-p".into(),
            self.port.to_string(),
            "-U".into(),
            SUPERUSER.into(),
        ]
    }

    /// Sets `PGHOST`, `PGPORT` and `PGUSER` on a command.
    pub fn apply_env<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("PGHOST", self.host())
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", SUPERUSER)
    }

    /// A hermetic `psql -X -q -At -v ON_ERROR_STOP=1` against database `db`.
    #[must_use]
    pub fn psql_cmd(&self, db: &str) -> Command {
        let mut cmd = crate::cmd::program(self.bindir.join("psql").to_str().expect("utf-8 path"));
        self.apply_env(&mut cmd);
        cmd.args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", db]);
        cmd
    }

    /// Runs SQL in `db`; `Err(stderr)` if it fails.
    pub fn try_sql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = self
            .psql_cmd(db)
            .args(["-c", sql])
            .output()
            .expect("run psql");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs SQL in `db` and returns its unaligned output; panics on error.
    #[track_caller]
    pub fn sql(&self, db: &str, sql: &str) -> String {
        match self.try_sql(db, sql) {
            Ok(out) => out,
            Err(err) => panic!("SQL failed in {db}: {sql}\n{err}"),
        }
    }

    /// Runs a multi-statement SQL script (fed on stdin) in `db`; panics on error.
    #[track_caller]
    pub fn script(&self, db: &str, script: &str) {
        use std::io::Write;
        let mut child = self
            .psql_cmd(db)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn psql");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(script.as_bytes())
            .expect("write script");
        let out = child.wait_with_output().expect("wait psql");
        check(&out, "SQL script");
    }

    /// `CREATE DATABASE name`.
    pub fn createdb(&self, name: &str) {
        self.sql("postgres", &format!("CREATE DATABASE \"{name}\""));
    }

    /// The names of all non-template databases, sorted.
    #[must_use]
    pub fn databases(&self) -> Vec<String> {
        self.sql(
            "postgres",
            "SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1",
        )
        .lines()
        .map(str::to_owned)
        .collect()
    }

    /// Every row of every user table of `db`, as sorted text, per table: for comparing two
    /// databases' contents.
    #[must_use]
    pub fn table_contents(&self, db: &str) -> std::collections::BTreeMap<String, Vec<String>> {
        let tables = self.sql(
            db,
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables \
             WHERE schemaname NOT IN ('pg_catalog','information_schema') ORDER BY 1",
        );
        tables
            .lines()
            .map(|t| {
                let mut rows: Vec<String> = self
                    .sql(db, &format!("SELECT x::text FROM {t} AS x"))
                    .lines()
                    .map(str::to_owned)
                    .collect();
                rows.sort();
                (t.to_owned(), rows)
            })
            .collect()
    }

    /// Reloads the server configuration (after changing `pg_hba.conf`).
    pub fn reload(&self) {
        let out = self
            .server_cmd("pg_ctl")
            .args(["-D", "data", "reload"])
            .output()
            .expect("pg_ctl reload");
        check(&out, "pg_ctl reload");
    }

    /// Requires a password (SCRAM) for `role` over TCP, keeping trust for everyone else.
    pub fn require_password(&self, role: &str, password: &str) {
        self.sql(
            "postgres",
            &format!(
                "ALTER ROLE \"{role}\" PASSWORD '{}'",
                password.replace('\'', "''")
            ),
        );
        self.prepend_hba(&format!("host all {role} 127.0.0.1/32 scram-sha-256"));
    }

    /// Turns TLS on with this server certificate chain and key (PEM), logging every
    /// connection; with `client_ca` (PEM), client certificates signed by it are accepted.
    /// Calling it again replaces the certificate (the server reloads it).
    pub fn enable_tls(&self, cert_pem: &str, key_pem: &str, client_ca: Option<&str>) {
        let mut files = vec![("server.crt", cert_pem), ("server.key", key_pem)];
        if let Some(ca) = client_ca {
            files.push(("client-ca.crt", ca));
        }
        for (name, text) in &files {
            let path = self.data_dir().join(name);
            std::fs::write(&path, text).expect("write a TLS file");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .expect("chmod a TLS file");
            if let Some((uid, gid)) = self.run_as {
                nix::unistd::chown(&path, Some(uid), Some(gid)).expect("chown a TLS file");
            }
        }
        let mut settings = vec![
            ("ssl", "on"),
            ("log_connections", "on"),
            ("ssl_cert_file", "server.crt"),
            ("ssl_key_file", "server.key"),
        ];
        if client_ca.is_some() {
            settings.push(("ssl_ca_file", "client-ca.crt"));
        }
        // ALTER SYSTEM cannot run in a transaction block: one statement each.
        for (name, value) in settings {
            self.sql("postgres", &format!("ALTER SYSTEM SET {name} = '{value}'"));
        }
        self.reload();
    }

    /// Prepends lines to `pg_hba.conf` (the first matching line wins) and reloads.
    pub fn prepend_hba(&self, lines: &str) {
        let hba = self.data_dir().join("pg_hba.conf");
        let old = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
        std::fs::write(&hba, format!("{lines}\n{old}")).expect("write pg_hba.conf");
        self.reload();
    }

    /// Bytes in use on the data directory's file system.
    #[must_use]
    pub fn data_fs_used(&self) -> u64 {
        let st = nix::sys::statvfs::statvfs(&self.data_dir()).expect("statvfs");
        (st.blocks() - st.blocks_free()) * st.fragment_size()
    }

    /// Changes the size of the data directory's tmpfs (see [`Cluster::start_on_tmpfs`]).
    pub fn resize_data_fs(&self, bytes: u64) {
        assert!(self.tmpfs, "the cluster was not started on a tmpfs");
        mount(&[
            "-o",
            &format!("remount,size={bytes}"),
            self.data_dir().to_str().expect("utf-8 path"),
        ]);
    }

    /// The server log so far, for assertion messages.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Stops the server immediately (like a crash), keeping the data directory.
    pub fn stop_immediate(&self) {
        let _ = self
            .server_cmd("pg_ctl")
            .args(["-D", "data", "-m", "immediate", "-w", "stop"])
            .output();
    }

    /// Starts a stopped server again on the same port.
    pub fn restart(&self) {
        let out = self
            .server_cmd("pg_ctl")
            .args(["-D", "data", "-l", "server.log", "-w", "-t", "60", "start"])
            .output()
            .expect("run pg_ctl");
        check(&out, "pg_ctl start");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_immediate();
        if self.tmpfs {
            let _ = Command::new("umount").arg(self.data_dir()).status();
        }
    }
}

/// Runs `mount ARGS`; panics when it fails.
fn mount(args: &[&str]) {
    let out = Command::new("mount")
        .args(args)
        .output()
        .unwrap_or_else(|_| crate::require("mount", "mount"));
    check(&out, &format!("mount {args:?}"));
}
