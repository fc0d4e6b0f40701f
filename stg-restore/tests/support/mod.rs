//! Test support for stg-restore: a cluster with a live `fas2` and a changed copy `src` to
//! restore from, streams built the way stg-dump builds them (the cluster's `pg_dump`, a
//! manifest from `pg_database`, every line through `stg_core::stream::Tally`, the trailer,
//! xz), and the hermetic `stg-restore` command.
//!
//! Until the cross-tool pipeline tests exist, this is how streams are made here.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use stg_core::stream::{self, Manifest, MaskingSummary, Tally};
use stg_tests::pg::Cluster;
use stg_tests::run::{run, Run};

/// Rows of every table, per table.
pub type Contents = BTreeMap<String, Vec<String>>;

/// A cluster with `fas2` (the live staging database) and `src` (what production looks like
/// now: `fas2` plus a new person and renamed groups), and a staging environment file.
pub struct Setup {
    /// The cluster.
    pub cluster: Cluster,
    /// Holds the environment file.
    pub dir: tempfile::TempDir,
    /// `fas2`'s contents before any restore.
    pub before: Contents,
    /// `src`'s contents: what a restore must produce.
    pub source: Contents,
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/fas2.sql")
}

impl Setup {
    /// Starts a cluster and creates both databases.
    pub fn new() -> Setup {
        let cluster = Cluster::start();
        cluster.createdb("fas2");
        let sql = std::fs::read_to_string(fixture()).expect("read fixture");
        cluster.script("fas2", &sql);
        cluster.sql("postgres", "CREATE DATABASE src TEMPLATE fas2 OWNER fas2");
        cluster.script(
            "src",
            "INSERT INTO people (username, human_name, email, password) \
             VALUES ('newcomer', 'New Comer', 'new@fedoraproject.org', 'x');\n\
             UPDATE groups SET display_name = display_name || ' (renamed)';\n",
        );
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("environment"), "# test host\nstaging\n").expect("write");
        let before = cluster.table_contents("fas2");
        let source = cluster.table_contents("src");
        assert_ne!(before, source);
        Setup {
            cluster,
            dir,
            before,
            source,
        }
    }

    /// The staging environment file.
    pub fn env_file(&self) -> PathBuf {
        self.dir.path().join("environment")
    }

    /// Hermetic `stg-restore ARGS` on this host marked staging, connection flags appended.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = stg_tests::cmd::stg("stg-restore");
        cmd.env("STG_ENVIRONMENT_FILE", self.env_file());
        cmd.args(args);
        cmd.args(self.cluster.conn_args());
        cmd
    }

    /// A restore command, extra args appended.
    pub fn restore_cmd(&self, extra: &[&str]) -> Command {
        self.cmd(extra)
    }

    /// Runs a restore with `stream` on stdin.
    pub fn restore(&self, stream: &[u8], extra: &[&str]) -> Run {
        run(self.restore_cmd(extra), stream)
    }

    /// The manifest stg-dump would write for `db`, named `as_name`.
    pub fn manifest(&self, db: &str, as_name: &str) -> Manifest {
        let row = self.cluster.sql(
            "postgres",
            &format!(
                "SELECT pg_encoding_to_char(encoding), datcollate, datctype, datlocprovider, \
                 coalesce(daticulocale, ''), pg_get_userbyid(datdba), current_setting('server_version') \
                 FROM pg_database WHERE datname = '{db}'"
            ),
        );
        let f: Vec<&str> = row.trim_end().split('|').collect();
        Manifest {
            format: stream::FORMAT,
            database: as_name.into(),
            source_host: "db01.test".into(),
            dumped_on: "db01.test".into(),
            dumped_at: "2026-11-28T01:00:00Z".into(),
            server_version: f[6].into(),
            pg_dump_version: "pg_dump (test)".into(),
            encoding: f[0].into(),
            locale: f[1].into(),
            lc_ctype: f[2].into(),
            locale_provider: if f[3] == "i" { "icu" } else { "libc" }.into(),
            icu_locale: (!f[4].is_empty()).then(|| f[4].to_owned()),
            owner: f[5].into(),
            roles: vec![f[5].to_owned()],
            masking: MaskingSummary::default(),
            tool: "stg-restore tests".into(),
        }
    }

    /// Plain `pg_dump [extra] db` output.
    pub fn pg_dump(&self, db: &str, extra: &[&str]) -> Vec<u8> {
        let mut cmd = stg_tests::cmd::program(
            self.cluster
                .bindir()
                .join("pg_dump")
                .to_str()
                .expect("utf-8"),
        );
        self.cluster.apply_env(&mut cmd);
        let out = cmd.args(extra).arg(db).output().expect("run pg_dump");
        assert!(
            out.status.success(),
            "pg_dump failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// The uncompressed stream of `src` as stg-dump would write it for database `fas2`.
    pub fn plain_stream(&self) -> Vec<u8> {
        let manifest = self.manifest("src", "fas2");
        with_manifest_and_trailer(&manifest, &self.pg_dump("src", &[]))
    }

    /// The stream of `src` for `fas2`, zstd as stg-dump writes it by default (tests that
    /// need xz compress [`Setup::plain_stream`] with [`xz`]).
    pub fn stream(&self) -> Vec<u8> {
        Codec::Zstd.compress(&self.plain_stream())
    }

    /// Names of databases whose name contains `__stg_`.
    pub fn stg_databases(&self) -> Vec<String> {
        self.cluster
            .databases()
            .into_iter()
            .filter(|d| d.contains("__stg_"))
            .collect()
    }

    /// The previous database is there, unchanged, connectable, and nothing was left behind.
    #[track_caller]
    pub fn assert_untouched(&self) {
        assert_eq!(
            self.cluster.table_contents("fas2"),
            self.before,
            "fas2 changed"
        );
        assert_eq!(self.cluster.sql("fas2", "SELECT 1").trim(), "1");
        let left: Vec<String> = self
            .stg_databases()
            .into_iter()
            .filter(|d| d.ends_with("__stg_incoming"))
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
        assert_eq!(
            self.psql_processes(),
            Vec::<i32>::new(),
            "a psql of stg-restore is still running"
        );
    }

    /// Pids of psql processes stg-restore started against this cluster (found by the
    /// environment stg-restore gives them).
    pub fn psql_processes(&self) -> Vec<i32> {
        let port = format!("PGPORT={}\0", self.cluster.port());
        std::fs::read_dir("/proc")
            .expect("read /proc")
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                    find(&env, b"PGAPPNAME=stg-restore\0").is_some()
                        && find(&env, port.as_bytes()).is_some()
                })
            })
            .collect()
    }
}

/// Adds the manifest line in front and the trailer line after `sql`, counting every line
/// before the trailer with the shared `Tally`.
pub fn with_manifest_and_trailer(manifest: &Manifest, sql: &[u8]) -> Vec<u8> {
    let mut out = stream::manifest_line(manifest).into_bytes();
    out.extend_from_slice(sql);
    retrail(&out)
}

/// Appends the trailer for `body` (manifest and SQL, no trailer).
pub fn retrail(body: &[u8]) -> Vec<u8> {
    let mut tally = Tally::new();
    for line in body.split_inclusive(|b| *b == b'\n') {
        tally.line(line);
    }
    let mut out = body.to_vec();
    out.extend_from_slice(stream::trailer_line(&tally.finish()).as_bytes());
    out
}

/// Strips the trailer line off a plain stream.
pub fn without_trailer(plain: &[u8]) -> Vec<u8> {
    let at = find(plain, stream::TRAILER_PREFIX.as_bytes()).expect("has a trailer");
    plain[..at].to_vec()
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// xz-compresses.
/// The two compressions a stream can be in; stream tests run for both.
#[derive(Clone, Copy, Debug)]
pub enum Codec {
    /// stg-dump's default.
    Zstd,
    /// `--compress xz`, and the SOP's `pg_dump | xz`.
    Xz,
}

impl Codec {
    /// Both, for tests that loop over them.
    pub const ALL: [Codec; 2] = [Codec::Zstd, Codec::Xz];

    /// Compressed as stg-dump writes it (zstd with its frame checksum).
    pub fn compress(self, data: &[u8]) -> Vec<u8> {
        match self {
            Codec::Xz => xz(data),
            Codec::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("zstd");
                enc.include_checksum(true).expect("checksum");
                enc.write_all(data).expect("compress");
                enc.finish().expect("finish zstd")
            }
        }
    }

    /// Its name in stg-restore's messages and reports.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Zstd => "zstd",
            Codec::Xz => "xz",
        }
    }
}

pub fn xz(data: &[u8]) -> Vec<u8> {
    let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 1);
    enc.write_all(data).expect("compress");
    enc.finish().expect("finish xz")
}

/// Waits until `check` holds, for at most 120 s (a limit for a stuck test, not a timing).
#[track_caller]
pub fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !check() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A restore started with the first half of an xz stream of `fas2` on its stdin, so it
/// holds the lock and loads, waiting for the rest: the child, its stdin, the whole stream.
/// (xz decodes byte by byte, so half a stream is half loaded; zstd decodes whole blocks,
/// and a small stream is one block.)
pub fn half_loaded(setup: &Setup) -> (std::process::Child, std::process::ChildStdin, Vec<u8>) {
    let stream = xz(&setup.plain_stream());
    let mut child = setup
        .restore_cmd(&[])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(&stream[..stream.len() / 2]).unwrap();
    input.flush().unwrap();
    (child, input, stream)
}
