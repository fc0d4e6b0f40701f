//! Secrets never leave where they belong: the database passwords (given through
//! `PGPASSWORD` or a password file) and the masking key (given in a key file) must not show
//! in the argv of `stg-dump`, `stg-restore` or any process they start (what `ps` shows to
//! every user), nor in their stdout, stderr, reports or the dump stream.
//!
//! The runs are paused while they work: `stg-dump`'s stdout is not read until its
//! `pg_dump` child was inspected (a table large enough that `pg_dump` blocks on the full
//! pipe), and `stg-restore` gets only part of its stream until it was checked to have
//! started no child at all (it loads through its own connections). Both clusters require SCRAM passwords over TCP for the roles the tools use.
//!
//! Not for the masking itself (stg-dump's tests) or restore semantics (stg-restore's).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use stg_tests::run::{run, Run, RunExt};
use stg_tests::{cmd, pg::Cluster};

const DUMP_PASSWORD: &str = "dump-Pw-5e1f9b7c3a-secret";
const RESTORE_PASSWORD: &str = "restore-Pw-8d2c4a6e0b-secret";
const KEY: &str = "mask-key-Q7v2Lx9Rz4Kp1Wm6Jt";
const WRONG_PASSWORD: &str = "wrong-Pw-3b5d7f9a1c-guess";
/// Enough rows that the masked, compressed stream is far larger than the pipe buffers,
/// so `pg_dump` is still running while nobody reads `stg-dump`'s stdout.
const ROWS: u32 = 300_000;
/// How long to wait for a child process to appear before failing.
const DEADLINE: Duration = Duration::from_secs(60);

/// Every form a secret could leak in: as is, hex and base64 of its bytes.
fn forms(secret: &str) -> Vec<String> {
    use base64::Engine as _;
    let hex = hex::encode(secret);
    vec![
        secret.to_owned(),
        hex.to_uppercase(),
        hex,
        base64::engine::general_purpose::STANDARD.encode(secret),
    ]
}

/// Fails naming where a secret (in any of its forms) was found.
#[track_caller]
fn assert_no_secret(what: &str, text: &str) {
    for secret in [DUMP_PASSWORD, RESTORE_PASSWORD, KEY, WRONG_PASSWORD] {
        for form in forms(secret) {
            assert!(
                !text.contains(&form),
                "{what} contains the secret {secret:?} (as {form:?}):\n{}",
                &text[..text.len().min(4000)]
            );
        }
    }
}

/// Production: role `dumper` (superuser, password required over TCP) and database `shop`
/// with `customers(id, email, note)`, `email` masked by an `email` rule.
fn production() -> Cluster {
    let prod = Cluster::start();
    prod.sql("postgres", "CREATE ROLE dumper LOGIN SUPERUSER");
    prod.require_password("dumper", DUMP_PASSWORD);
    prod.createdb("shop");
    prod.script(
        "shop",
        &format!(
            "CREATE TABLE customers (id int PRIMARY KEY, email text NOT NULL, note text);\n\
             INSERT INTO customers SELECT i, 'person' || i || '@example.org', md5(i::text) \
             FROM generate_series(1, {ROWS}) AS i;\n"
        ),
    );
    prod
}

/// Staging: role `restorer` (superuser, password required over TCP).
fn staging() -> Cluster {
    let stg = Cluster::start();
    stg.sql("postgres", "CREATE ROLE restorer LOGIN SUPERUSER");
    stg.require_password("restorer", RESTORE_PASSWORD);
    stg
}

/// The rules file and the key file (mode 0600) in `dir`.
fn mask_files(dir: &Path) -> (PathBuf, PathBuf) {
    let rules = dir.join("rules.json");
    std::fs::write(
        &rules,
        serde_json::json!({"rules": [
            {"table": "public.customers", "column": "email", "transform": "email", "domain": "stg.example.org"}
        ], "keep": [{"table": "public.customers", "columns": ["id", "note"]}]})
        .to_string(),
    )
    .unwrap();
    let key = dir.join("mask.key");
    std::fs::write(&key, format!("{KEY}\n")).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    (rules, key)
}

/// A password file (mode 0600) at `path` for `role` on `cluster`, any database.
fn write_pgpass(path: &Path, cluster: &Cluster, role: &str, password: &str) {
    std::fs::write(
        path,
        format!(
            "{}:{}:*:{role}:{password}\n",
            cluster.host(),
            cluster.port()
        ),
    )
    .unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Hermetic `stg-dump` of `shop` as `dumper`, masked, with the cluster's own `pg_dump`; the
/// password is set by the caller.
fn dump_cmd(prod: &Cluster, rules: &Path, key: &Path) -> Command {
    let mut cmd = cmd::stg("stg-dump");
    cmd.args([
        "-h",
        prod.host(),
        "-p",
        &prod.port().to_string(),
        "-U",
        "dumper",
    ])
    .arg("--mask")
    .arg(rules)
    .arg("--key-file")
    .arg(key)
    .arg("--pg-dump")
    .arg(prod.bindir().join("pg_dump"))
    .args(["--threads", "1", "shop"]);
    cmd
}

/// Hermetic `stg-restore` as `restorer` on a host marked staging (environment file in
/// `dir`), with the cluster's own `psql`; the password is set by the caller.
fn restore_cmd(stg: &Cluster, dir: &Path) -> Command {
    let env_file = dir.join("environment");
    std::fs::write(&env_file, "staging\n").unwrap();
    let mut cmd = cmd::stg("stg-restore");
    cmd.env("STG_ENVIRONMENT_FILE", env_file)
        .args([
            "-h",
            stg.host(),
            "-p",
            &stg.port().to_string(),
            "-U",
            "restorer",
        ])
        .args(["--format", "json"]);
    cmd
}

/// The parent pid and state of a process, from `/proc/<pid>/stat` (`None` once it is gone).
fn stat(pid: u32) -> Option<(u32, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
    let mut rest = text[text.rfind(')')? + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let parent = rest.next()?.parse().ok()?;
    Some((parent, state))
}

/// `pid` and all its live descendants, found by scanning `/proc/*/stat` for parent pids.
fn family(pid: u32) -> Vec<u32> {
    let mut parents: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if let Some((ppid, _)) = stat(child) {
            parents.entry(ppid).or_default().push(child);
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        found.extend(parents.get(&found[i]).cloned().unwrap_or_default());
        i += 1;
    }
    found
}

/// The argv of a process, arguments joined by spaces.
fn cmdline(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw).replace('\0', " ")
}

/// Waits until `parent` has a live descendant whose program is `name` (e.g. `pg_dump`)
/// and whose argv contains `marker` (so a short `pg_dump --version` probe does not count),
/// then checks the argv of `parent` and of every descendant for secrets, and with `environ`
/// their environment too (`/proc/<pid>/environ`, readable by the same user and root).
/// Returns that descendant's pid; panics if `parent` exits first or the deadline passes.
fn inspect_while_running(parent: &mut Child, name: &str, marker: &str, environ: bool) -> u32 {
    let start = Instant::now();
    let target = loop {
        if let Some(status) = parent.try_wait().unwrap() {
            panic!("{name} was never seen: the parent exited first ({status})");
        }
        let found = family(parent.id()).into_iter().skip(1).find(|&pid| {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
            exe.file_name().is_some_and(|n| n == name)
                && cmdline(pid).contains(marker)
                && stat(pid).is_some_and(|(_, state)| state != 'Z')
        });
        if let Some(pid) = found {
            break pid;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no {name} child of pid {} within {DEADLINE:?}",
            parent.id()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let pids = family(parent.id());
    assert!(
        pids.contains(&target),
        "{name} (pid {target}) is still a descendant"
    );
    for pid in pids {
        let argv = cmdline(pid);
        assert_no_secret(&format!("the argv of pid {pid} ({argv})"), &argv);
        if environ {
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let env = String::from_utf8_lossy(&env).replace('\0', "\n");
            assert_no_secret(&format!("the environment of pid {pid} ({argv})"), &env);
        }
    }
    // Still alive after the inspection: the argv read above was the running program's.
    assert!(
        stat(target).is_some_and(|(_, state)| state != 'Z'),
        "{name} (pid {target}) ended during the inspection"
    );
    target
}

/// What a dump left: its stderr and the decompressed stream.
struct Dumped {
    stream: Vec<u8>,
    sql: String,
}

/// Runs `cmd` (a `stg-dump`), inspects its processes while `pg_dump` runs, then drains it
/// and checks stderr, the manifest and the decompressed stream for secrets.
fn dump_and_inspect(mut cmd: Command, dir: &Path, environ: bool) -> Dumped {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn stg-dump");
    inspect_while_running(&mut child, "pg_dump", "--snapshot=", environ);
    let out = Run::from(child.wait_with_output().unwrap()).ok();
    assert_no_secret("stg-dump's stderr", &out.stderr);

    let file = dir.join("shop.stg.zst");
    std::fs::write(&file, &out.bytes).unwrap();
    let unxz = cmd::program("zstdcat").arg(&file).run().ok();
    let sql = String::from_utf8(unxz.bytes).expect("UTF-8 SQL");
    let first = sql.lines().next().unwrap_or_default();
    let manifest: Value = serde_json::from_str(
        first
            .strip_prefix("-- stg-dump manifest: ")
            .unwrap_or_else(|| panic!("no manifest line: {first}")),
    )
    .unwrap();
    assert_eq!(manifest["database"], "shop", "{manifest}");
    assert_eq!(
        manifest["masking"]["columns"][0]["transform"], "email",
        "{manifest}"
    );
    assert_no_secret("the manifest", &manifest.to_string());
    assert_no_secret("the dump stream", &sql);
    // The key was used: every address is masked.
    assert!(
        !sql.contains("@example.org"),
        "unmasked addresses in the stream"
    );
    assert_eq!(sql.matches("@stg.example.org").count(), ROWS as usize);
    Dumped {
        stream: out.bytes,
        sql,
    }
}

/// Runs `cmd` (a `stg-restore`) with `stream` on stdin: writes the first half, checks that
/// it started no child (it loads through its own connections; no psql is handed a
/// password) and that its argv holds no secret, writes the rest, and checks the report and
/// stderr.
fn restore_and_inspect(mut cmd: Command, stream: &[u8]) -> Run {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn stg-restore");
    let mut stdin = child.stdin.take().unwrap();
    let (head, tail) = stream.split_at(stream.len() / 2);
    stdin
        .write_all(head)
        .expect("write the first half of the stream");
    let pids = family(child.id());
    assert_eq!(
        pids,
        vec![child.id()],
        "stg-restore started a child process"
    );
    let argv = cmdline(child.id());
    assert_no_secret(&format!("the argv of stg-restore ({argv})"), &argv);
    stdin.write_all(tail).expect("write the rest of the stream");
    drop(stdin);
    let run = Run::from(child.wait_with_output().unwrap()).ok();
    assert_no_secret("stg-restore's report", &run.stdout);
    assert_no_secret("stg-restore's stderr", &run.stderr);
    assert_eq!(run.summary()["ok"], true, "{}", run.stdout);
    run
}

/// The restored copy has every row, masked.
fn assert_restored(stg: &Cluster) {
    assert_eq!(
        stg.sql(
            "shop",
            "SELECT count(*), count(*) FILTER (WHERE email LIKE '%@stg.example.org') FROM customers"
        )
        .trim(),
        format!("{ROWS}|{ROWS}")
    );
}

#[test]
fn passwords_in_pgpassword_and_the_key_stay_out_of_argv_output_and_stream() {
    let dir = tempfile::tempdir().unwrap();
    let (prod, stg) = std::thread::scope(|s| {
        let stg = s.spawn(staging);
        (production(), stg.join().unwrap())
    });
    let (rules, key) = mask_files(dir.path());

    let mut dump = dump_cmd(&prod, &rules, &key);
    dump.env("PGPASSWORD", DUMP_PASSWORD);
    // The children's environment holds PGPASSWORD: the caller put it there.
    let dumped = dump_and_inspect(dump, dir.path(), false);

    let mut restore = restore_cmd(&stg, dir.path());
    restore.env("PGPASSWORD", RESTORE_PASSWORD);
    restore_and_inspect(restore, &dumped.stream);
    assert_restored(&stg);
    assert_no_secret("the production server log", &prod.log());
    assert_no_secret("the staging server log", &stg.log());
}

#[test]
fn passwords_in_password_files_and_the_key_stay_out_of_argv_output_and_stream() {
    let dir = tempfile::tempdir().unwrap();
    let (prod, stg) = std::thread::scope(|s| {
        let stg = s.spawn(staging);
        (production(), stg.join().unwrap())
    });
    let (rules, key) = mask_files(dir.path());

    // stg-dump: PGPASSFILE.
    let pgpass = dir.path().join("dump.pgpass");
    write_pgpass(&pgpass, &prod, "dumper", DUMP_PASSWORD);
    let mut dump = dump_cmd(&prod, &rules, &key);
    dump.env("PGPASSFILE", &pgpass);
    // A password from a file is not copied into any environment: children get PGPASSFILE.
    let dumped = dump_and_inspect(dump, dir.path(), true);
    assert!(dumped.sql.contains("COPY public.customers"));

    // stg-restore: ~/.pgpass.
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    write_pgpass(&home.join(".pgpass"), &stg, "restorer", RESTORE_PASSWORD);
    let mut restore = restore_cmd(&stg, dir.path());
    restore.env("HOME", &home);
    restore_and_inspect(restore, &dumped.stream);
    assert_restored(&stg);
}

#[test]
fn a_wrong_password_is_refused_without_echoing_it() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start();
    cluster.sql("postgres", "CREATE ROLE dumper LOGIN SUPERUSER");
    cluster.require_password("dumper", DUMP_PASSWORD);
    cluster.sql("postgres", "CREATE ROLE restorer LOGIN SUPERUSER");
    cluster.require_password("restorer", RESTORE_PASSWORD);
    cluster.createdb("shop");
    cluster.sql(
        "shop",
        "CREATE TABLE customers (id int PRIMARY KEY, email text NOT NULL, note text); \
         INSERT INTO customers VALUES (1, 'a@example.org', 'x')",
    );
    let (rules, key) = mask_files(dir.path());

    let mut dump = dump_cmd(&cluster, &rules, &key);
    let out = dump.env("PGPASSWORD", WRONG_PASSWORD).run().code_is(3);
    assert!(out.bytes.is_empty(), "nothing dumped");
    assert!(
        out.stderr.contains("password authentication failed"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("dumper"),
        "names the user: {}",
        out.stderr
    );
    assert_no_secret("stg-dump's error", &out.stderr);

    let mut good = dump_cmd(&cluster, &rules, &key);
    let stream = good.env("PGPASSWORD", DUMP_PASSWORD).run().ok();

    let mut restore = restore_cmd(&cluster, dir.path());
    restore.env("PGPASSWORD", WRONG_PASSWORD);
    let out = run(restore, stream.bytes).code_is(3);
    let (stdout, stderr) = (&out.stdout, &out.stderr);
    assert!(
        stderr.contains("password authentication failed"),
        "{stderr}"
    );
    let summary = out.summary();
    assert_eq!(
        (&summary["ok"], &summary["failed_step"]),
        (&Value::from(false), &Value::from("connect")),
        "{stdout}"
    );
    assert_no_secret("stg-restore's report", stdout);
    assert_no_secret("stg-restore's error", stderr);
    assert_eq!(cluster.databases(), ["postgres", "shop"], "nothing created");
}
