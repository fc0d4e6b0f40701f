//! Fault injection for the sync: each case breaks something real in the middle of
//! `stg-dump | ssh | stg-restore` (pg_dump killed, ssh killed, the staging disk full, the
//! staging server restarted, stg-restore killed with SIGKILL during its load, between its
//! verification and its swap, and inside its swap) and checks that nothing is lost: the
//! live staging database keeps its data, nothing unverified is committed, and the next run
//! recovers by itself.
//!
//! The faults are placed without timing guesses: a stream is fed half-way and held, a hook
//! waits, a lock is held, until the test sees (in `pg_stat_activity`, in `/proc`) that the
//! run is where the fault belongs. stg-hosts' faults (SIGKILL between its temp write and
//! rename, read-only and full file systems) are in `stg-hosts/tests/`.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{mpsc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use stg_tests::run::{Run, RunExt};
use stg_tests::{cmd, pg::Cluster, sshd::Sshd};

const DB: &str = "fas2";
const INCOMING: &str = "fas2__stg_incoming";
/// Rows of the production table: a stream of a few MiB, enough to be caught mid-way.
const ROWS: u32 = 100_000;
/// How long any wait may take before the test fails (never reached when things work).
const DEADLINE: Duration = Duration::from_secs(120);

/// Polls `check` until it holds; fails the test naming `what` at the deadline.
#[track_caller]
fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < DEADLINE,
            "gave up waiting for {what} after {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for a child's exit; kills it and fails the test at the deadline.
#[track_caller]
fn wait_exit(child: &mut Child, what: &str) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("{what} did not exit within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A production cluster with `fas2`: one table of `rows` rows of hex text.
fn production(rows: u32) -> Cluster {
    let prod = Cluster::start();
    prod.createdb(DB);
    prod.script(
        DB,
        &format!(
            "CREATE TABLE big (id int PRIMARY KEY, payload text NOT NULL);\n\
             INSERT INTO big SELECT i, md5(i::text) || md5((i * 7)::text) \
             FROM generate_series(1, {rows}) i;\n"
        ),
    );
    prod
}

/// `stg-dump fas2` against `prod`, with the pg_dump of its version.
fn stg_dump(prod: &Cluster) -> Command {
    let mut dump = cmd::stg("stg-dump");
    dump.args(prod.conn_args())
        .arg("--pg-dump")
        .arg(prod.bindir().join("pg_dump"))
        .arg(DB);
    dump
}

/// A good stream of production's `fas2`, made once per test binary.
fn stream() -> &'static [u8] {
    static STREAM: OnceLock<Vec<u8>> = OnceLock::new();
    STREAM.get_or_init(|| {
        let prod = production(ROWS);
        stg_dump(&prod).run().ok().bytes
    })
}

/// Pids of the processes whose parent is `parent` and whose command name is `comm`.
fn children(parent: u32, comm: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // "pid (comm) state ppid ...": comm may hold spaces, so split at the last ')'.
            let Some((head, tail)) = stat.rsplit_once(')') else {
                return false;
            };
            let name = head.split_once('(').map_or("", |(_, n)| n);
            let mut fields = tail.split_whitespace();
            let state = fields.next().unwrap_or("");
            let ppid: u32 = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            name == comm && ppid == parent && state != "Z"
        })
        .collect()
}

/// A staging cluster holding a live `fas2` with staging work in it, on a host marked
/// staging.
struct Staging {
    cluster: Cluster,
    dir: tempfile::TempDir,
}

impl Staging {
    fn new() -> Staging {
        Staging::on(Cluster::start())
    }

    fn on(cluster: Cluster) -> Staging {
        cluster.createdb(DB);
        cluster.sql(
            DB,
            "CREATE TABLE stale (note text); INSERT INTO stale VALUES ('staging work')",
        );
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("environment"), "staging\n").expect("write");
        Staging { cluster, dir }
    }

    fn env_file(&self) -> PathBuf {
        self.dir.path().join("environment")
    }

    /// The restore command line, for running it locally or over ssh.
    fn restore_args(&self) -> Vec<String> {
        let mut args = vec!["--format".to_owned(), "json".into()];
        args.extend(self.cluster.conn_args());
        args
    }

    /// `stg-restore` in a process group of its own (its hooks too), so that the test can
    /// kill it the way systemd or the OOM killer would.
    fn restore(&self, extra: &[&str]) -> Command {
        let mut restore = cmd::stg("stg-restore");
        restore
            .env("STG_ENVIRONMENT_FILE", self.env_file())
            .args(self.restore_args())
            .args(extra)
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        restore
    }

    /// Runs a restore of the whole stream to its end.
    fn restore_all(&self, extra: &[&str]) -> Run {
        let mut child = self.restore(extra).spawn().expect("spawn stg-restore");
        let feeder = Feeder::start(child.stdin.take().expect("stdin"), stream().len());
        wait_exit(&mut child, "stg-restore");
        feeder.finish(false);
        Run::from(child.wait_with_output().expect("collect output"))
    }

    fn sql(&self, db: &str, sql: &str) -> String {
        self.cluster.sql(db, sql).trim().to_owned()
    }

    fn exists(&self, db: &str) -> bool {
        self.sql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'"),
        ) == "1"
    }

    fn allows_connections(&self, db: &str) -> bool {
        self.sql(
            "postgres",
            &format!("SELECT datallowconn FROM pg_database WHERE datname = '{db}'"),
        ) == "t"
    }

    /// Sessions of stg-restore (`application_name` is `stg-restore`), or, with
    /// `db`, those on that database.
    fn sessions(&self, db: Option<&str>) -> u32 {
        let on = db.map_or(String::new(), |db| format!(" AND datname = '{db}'"));
        self.sql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'stg-restore'{on}"
            ),
        )
        .parse()
        .expect("a count")
    }

    /// stg-restore is connected to the incoming database: the load has begun.
    fn loading(&self) -> bool {
        self.sessions(Some(INCOMING)) > 0
    }

    /// The live database is the one from before, with its data, accepting connections.
    #[track_caller]
    fn assert_live_untouched(&self) {
        assert!(self.allows_connections(DB), "{DB} refuses connections");
        assert_eq!(self.sql(DB, "SELECT note FROM stale"), "staging work");
        assert_eq!(self.sql(DB, "SELECT to_regclass('big') IS NULL"), "t");
    }

    /// A good restore happened: the live database is production's, the one before is kept
    /// with its data, nothing is left in between.
    #[track_caller]
    fn assert_restored(&self, out: &Run) {
        assert_eq!(
            out.code, 0,
            "the restore after the fault failed: {}\n{}",
            out.stdout, out.stderr
        );
        assert_eq!(self.sql(DB, "SELECT count(*) FROM big"), ROWS.to_string());
        assert!(self.allows_connections(DB));
        let summary = out.summary();
        let previous = summary["previous"].as_str().expect("a kept copy");
        assert!(self.allows_connections(previous));
        assert_eq!(self.sql(previous, "SELECT note FROM stale"), "staging work");
        assert!(!self.exists(INCOMING), "{INCOMING} left behind");
    }
}

/// Waits for a running stg-dump (started with a piped stderr) that must fail with exit 3;
/// its stderr.
#[track_caller]
fn dump_failed(dump: &mut Child) -> String {
    let status = wait_exit(dump, "stg-dump");
    let mut stderr = String::new();
    dump.stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr");
    assert_eq!(status.code(), Some(3), "{stderr}");
    stderr
}

/// The run failed with exit 3 at step `load`, its error saying `error`; its summary.
#[track_caller]
fn failed_at_load(out: &Run, error: &str) -> serde_json::Value {
    assert_eq!(out.code, 3, "{}", out.stderr);
    let failed = out.summary();
    assert_eq!(failed["failed_step"], "load", "{failed}");
    assert!(
        failed["error"].as_str().unwrap_or("").contains(error),
        "{failed}"
    );
    failed
}

fn warnings(summary: &serde_json::Value) -> Vec<String> {
    summary["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| w.as_str().expect("a string").to_owned())
        .collect()
}

/// Writes the stream to a child's stdin from a thread: the first `cut` bytes at once, the
/// rest only when told, so that a run can be held mid-load. A whole stream is written and
/// closed at once.
struct Feeder {
    go: mpsc::Sender<bool>,
    thread: JoinHandle<()>,
}

impl Feeder {
    fn start(mut stdin: ChildStdin, cut: usize) -> Feeder {
        let (go, told) = mpsc::channel::<bool>();
        let thread = std::thread::spawn(move || {
            let data = stream();
            // A broken pipe is expected once the child has died.
            if stdin.write_all(&data[..cut]).is_err() || cut == data.len() {
                return;
            }
            if told.recv() == Ok(true) {
                let _ = stdin.write_all(&data[cut..]);
            }
        });
        Feeder { go, thread }
    }

    /// Writes the rest (`rest`) or not, then closes the pipe.
    fn finish(self, rest: bool) {
        let _ = self.go.send(rest);
        self.thread.join().expect("feeder thread");
    }
}

/// SIGKILL during the load: the load's connections close with the process, and what they
/// had committed stays in the incoming database only. It carries no provenance (that is
/// written after verification), is never swapped in, and the next run drops it and succeeds.
#[test]
fn sigkill_during_load_changes_nothing_live_and_the_next_run_recovers() {
    let staging = Staging::new();
    let mut child = staging.restore(&[]).spawn().expect("spawn stg-restore");
    let feeder = Feeder::start(child.stdin.take().expect("stdin"), stream().len() / 2);
    wait_for("stg-restore to load the incoming database", || {
        staging.loading()
    });
    killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL).expect("kill stg-restore");
    let status = wait_exit(&mut child, "the killed stg-restore");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    feeder.finish(false);
    wait_for("the load's sessions to end", || !staging.loading());

    assert!(
        staging.exists(INCOMING),
        "the leftover is what the next run must handle"
    );
    assert_eq!(
        staging.sql(
            "postgres",
            &format!(
                "SELECT shobj_description(oid, 'pg_database') IS NULL FROM pg_database \
                 WHERE datname = '{INCOMING}'"
            )
        ),
        "t",
        "a partial, unverified load carries provenance"
    );
    staging.assert_live_untouched();

    let out = staging.restore_all(&[]);
    staging.assert_restored(&out);
    assert!(
        warnings(&out.summary())
            .iter()
            .any(|w| w.contains(&format!("dropped {INCOMING} left over"))),
        "{}",
        out.summary()
    );
}

/// SIGKILL (of stg-restore and its pre-hook) after the load was verified and committed,
/// before the swap: the live database is untouched and the next run drops the complete but
/// never swapped-in copy.
#[test]
fn sigkill_between_verify_and_swap_leaves_the_live_database_and_the_next_run_recovers() {
    let staging = Staging::new();
    let mark = staging.dir.path().join("pre-hook-started");
    let hook = format!("touch '{}' && exec sleep 600", mark.display());
    let mut child = staging
        .restore(&["--pre-hook", &hook])
        .spawn()
        .expect("spawn stg-restore");
    let feeder = Feeder::start(child.stdin.take().expect("stdin"), stream().len());
    wait_for("the pre-hook to start", || mark.exists());
    killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL).expect("kill stg-restore");
    wait_exit(&mut child, "the killed stg-restore");
    feeder.finish(false);
    wait_for("stg-restore's sessions to end", || {
        staging.sessions(None) == 0
    });

    // The verified copy was complete, with its provenance; it was never swapped in.
    assert_eq!(
        staging.sql(INCOMING, "SELECT count(*) FROM big"),
        ROWS.to_string()
    );
    let comment = staging.sql(
        "postgres",
        &format!("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '{INCOMING}'"),
    );
    let provenance: serde_json::Value = serde_json::from_str(&comment).expect("provenance");
    assert_eq!(provenance["verified"], true, "{provenance}");
    staging.assert_live_untouched();

    let out = staging.restore_all(&[]);
    staging.assert_restored(&out);
}

/// SIGKILL inside the swap, after `ALLOW_CONNECTIONS false` and before the renames
/// commit (held there by a transaction that locks the live database). The renames are
/// rolled back with the dead session; the live database keeps its data but refuses
/// connections, `list` says so, and the next restore allows them again before anything
/// else and then succeeds.
#[test]
fn sigkill_during_the_swap_loses_nothing_and_the_next_run_reopens_the_database() {
    let staging = Staging::new();
    let mut holder = staging
        .cluster
        .psql_cmd("postgres")
        .env("PGAPPNAME", "fault-holder")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn psql");
    let mut hold = holder.stdin.take().expect("stdin");
    // COMMENT ON DATABASE locks the database object until the transaction ends; RENAME
    // needs that lock exclusively.
    hold.write_all(format!("BEGIN;\nCOMMENT ON DATABASE {DB} IS 'held by the test';\n").as_bytes())
        .expect("write to psql");
    wait_for("the holding transaction", || {
        staging.sql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fault-holder' \
             AND state = 'idle in transaction'",
        ) == "1"
    });

    let mut child = staging.restore(&[]).spawn().expect("spawn stg-restore");
    let feeder = Feeder::start(child.stdin.take().expect("stdin"), stream().len());
    wait_for("the swap to wait for the rename's lock", || {
        staging.sql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'stg-restore' \
             AND wait_event_type = 'Lock'",
        ) == "1"
    });
    assert!(
        !staging.allows_connections(DB),
        "the swap blocks new connections before renaming"
    );
    killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL).expect("kill stg-restore");
    wait_exit(&mut child, "the killed stg-restore");
    feeder.finish(false);
    hold.write_all(b"ROLLBACK;\n").expect("write to psql");
    drop(hold);
    assert!(holder.wait().expect("psql").success());
    wait_for("stg-restore's sessions to end", || {
        staging.sessions(None) == 0
    });

    // Nothing was renamed: fas2 is the old database, still closed; the loaded copy waits.
    assert!(!staging.allows_connections(DB));
    assert!(staging.exists(INCOMING));
    assert_eq!(
        staging
            .cluster
            .databases()
            .iter()
            .filter(|d| d.contains("__stg_prev_"))
            .count(),
        0
    );
    let list = cmd::stg("stg-restore")
        .args(["list", DB, "--format", "json"])
        .args(staging.cluster.conn_args())
        .output()
        .expect("run stg-restore list");
    let live = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON"))
        .find(|r| r["name"] == DB)
        .expect("the live database is listed");
    assert_eq!(live["allow_connections"], false, "{live}");

    let out = staging.restore_all(&[]);
    staging.assert_restored(&out);
    let warnings = warnings(&out.summary());
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("did not accept connections")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("left over")),
        "{warnings:?}"
    );
}

/// The staging server restarts (an immediate stop, as a crash) while stg-restore loads: the
/// restore fails at `load`, the live database is untouched, and the next run
/// succeeds whether or not the failed one could drop its incoming database.
#[test]
fn staging_server_restarted_mid_load_fails_cleanly_and_the_next_run_recovers() {
    let staging = Staging::new();
    let mut child = staging.restore(&[]).spawn().expect("spawn stg-restore");
    let feeder = Feeder::start(child.stdin.take().expect("stdin"), stream().len() / 2);
    wait_for("stg-restore to load the incoming database", || {
        staging.loading()
    });
    staging.cluster.stop_immediate();
    staging.cluster.restart();
    feeder.finish(true);
    wait_exit(&mut child, "stg-restore");
    let out = Run::from(child.wait_with_output().expect("output"));
    failed_at_load(&out, "");
    staging.assert_live_untouched();

    let out = staging.restore_all(&[]);
    staging.assert_restored(&out);
}

/// The staging data directory fills up during the load: PostgreSQL's "No space left on
/// device" fails the restore at `load`, the incoming database is dropped (its space comes
/// back), the live database is untouched, and once there is room the same stream restores.
#[test]
fn full_disk_under_the_staging_data_fails_the_load_and_gives_the_space_back() {
    const MIB: u64 = 1 << 20;
    let staging = Staging::on(Cluster::start_on_tmpfs(512 * MIB));
    // Written out, so that what is used is on the disk, not in shared buffers.
    staging.sql("postgres", "CHECKPOINT");
    let used = staging.cluster.data_fs_used();
    // Room for the incoming database's catalog (a copy of template0), not for its data.
    staging.cluster.resize_data_fs(used + 14 * MIB);

    let out = staging.restore_all(&[]);
    let failed = failed_at_load(&out, "No space left on device");
    assert_eq!(failed["incoming_dropped"], true, "{failed}");
    assert!(!staging.exists(INCOMING));
    let now = staging.cluster.data_fs_used();
    assert!(
        now < used + 4 * MIB,
        "the failed load's space was not given back: {used} bytes before, {now} after"
    );
    staging.assert_live_untouched();
    // The server still takes writes.
    staging.sql(
        "postgres",
        "CREATE TABLE after_the_fault (); DROP TABLE after_the_fault",
    );

    staging.cluster.resize_data_fs(used + 256 * MIB);
    let out = staging.restore_all(&[]);
    staging.assert_restored(&out);
}

/// pg_dump killed mid-stream (the test stops reading, so pg_dump is blocked on a full
/// pipe when it is killed): stg-dump fails, and what it wrote is refused by both zstd and
/// stg-restore, which leave the live database untouched.
#[test]
fn pg_dump_killed_mid_stream_gives_a_stream_nobody_accepts() {
    let prod = production(2 * ROWS);
    let staging = Staging::new();
    let mut dump = stg_dump(&prod)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn stg-dump");
    let mut stdout = dump.stdout.take().expect("stdout");
    let mut partial = vec![0u8; 1];
    stdout.read_exact(&mut partial).expect("the first byte");
    let mut pg_dump = Vec::new();
    wait_for("stg-dump's pg_dump", || {
        pg_dump = children(dump.id(), "pg_dump");
        !pg_dump.is_empty()
    });
    kill(Pid::from_raw(pg_dump[0]), Signal::SIGKILL).expect("kill pg_dump");
    stdout.read_to_end(&mut partial).expect("read the rest");
    let stderr = dump_failed(&mut dump);
    assert!(stderr.contains("pg_dump"), "{stderr}");

    let zstd = cmd::program("zstd")
        .args(["-t", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut zstd = zstd.unwrap_or_else(|_| stg_tests::require("zstd", "zstd"));
    // zstd may stop reading at the first error: a broken pipe here is fine.
    let _ = zstd.stdin.take().expect("stdin").write_all(&partial);
    assert!(
        !zstd.wait().expect("zstd").success(),
        "zstd accepted a cut stream"
    );

    let mut restore = staging.restore(&[]).spawn().expect("spawn stg-restore");
    let mut stdin = restore.stdin.take().expect("stdin");
    let _ = stdin.write_all(&partial);
    drop(stdin);
    let out = Run::from(restore.wait_with_output().expect("stg-restore")).code_is(2);
    // Refused at `read` (the cut came before the manifest decoded) or at `load` (after the
    // incoming database was made, and dropped): either way nothing is left.
    let s = out.summary();
    assert_eq!(s["ok"], false);
    assert!(
        s["failed_step"] == "read" || s["incoming_dropped"] == true,
        "{s}"
    );
    assert!(!staging.exists(INCOMING));
    staging.assert_live_untouched();
}

/// The ssh between stg-dump and a remote stg-restore (a real sshd on loopback) is killed
/// mid-stream: stg-restore sees the stream end early and drops its incoming database, and
/// stg-dump fails saying its reader went away.
#[test]
fn ssh_killed_between_dump_and_restore_changes_nothing() {
    let prod = production(ROWS);
    let staging = Staging::new();
    let sshd = Sshd::start();
    let remote = format!(
        "STG_ENVIRONMENT_FILE={} {} {}",
        staging.env_file().display(),
        cmd::bin_path("stg-restore").display(),
        staging.restore_args().join(" ")
    );
    let mut dump = stg_dump(&prod)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn stg-dump");
    let mut ssh = sshd
        .ssh(&remote)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ssh");
    // The test is the pipe between them: it passes 1 MiB on, then holds.
    let mut from_dump = dump.stdout.take().expect("stdout");
    let mut to_ssh = ssh.stdin.take().expect("stdin");
    let mut buf = vec![0u8; 64 * 1024];
    let mut passed = 0;
    while passed < 1 << 20 {
        let n = from_dump.read(&mut buf).expect("read stg-dump");
        assert!(
            n > 0,
            "the stream ended before 1 MiB; make the table bigger"
        );
        to_ssh.write_all(&buf[..n]).expect("write to ssh");
        passed += n;
    }
    wait_for("the remote stg-restore to load", || staging.loading());
    kill(Pid::from_raw(ssh.id() as i32), Signal::SIGKILL).expect("kill ssh");
    wait_exit(&mut ssh, "the killed ssh");
    // The pipe's writer finds its reader gone, as a shell's pipe would.
    let _ = std::io::copy(&mut from_dump, &mut to_ssh);
    drop(to_ssh);
    drop(from_dump);

    wait_for("the remote stg-restore to clean up", || {
        staging.sessions(None) == 0 && !staging.exists(INCOMING)
    });
    staging.assert_live_untouched();
    let stderr = dump_failed(&mut dump);
    assert!(stderr.contains("stdout was closed"), "{stderr}");
}
