//! Staging work before a sync (issue 18): the write counters recorded at a sync, the local
//! changes they show at the next one, `--if-unchanged`, `--notify`, and "unknown" wherever
//! the counters cannot be trusted. Against real PostgreSQL clusters.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use stg_core::provenance::Baseline;
use stg_tests::run::RunExt;
use support::{wait_for, Setup};

/// `n_tup_ins, n_tup_upd, n_tup_del` of a table as the server counts them now.
fn counters(setup: &Setup, db: &str, table: &str) -> (u64, u64, u64) {
    let row = setup.cluster.sql(
        db,
        &format!(
            "SELECT n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables \
             WHERE relname = '{table}'"
        ),
    );
    let f: Vec<u64> = row
        .trim()
        .split('|')
        .map(|v| v.parse().expect("a counter"))
        .collect();
    (f[0], f[1], f[2])
}

/// Edits in the synced `fas2`: 1 person inserted, 3 groups updated, 2 sessions deleted;
/// returns once the server counts them (a session's counters are reported as it ends).
fn edit_staging(setup: &Setup) {
    let people = counters(setup, "fas2", "people");
    let groups = counters(setup, "fas2", "groups");
    let sessions = counters(setup, "fas2", "sessions");
    setup.cluster.script(
        "fas2",
        "INSERT INTO people (username, human_name, email, password) \
         VALUES ('stagingonly', 'Staging Only', 'only@stg.example.org', 'x');\n\
         UPDATE groups SET display_name = 'edited in staging' WHERE id <= 3;\n\
         DELETE FROM sessions WHERE id IN (SELECT id FROM sessions ORDER BY id LIMIT 2);\n",
    );
    wait_for("the edits to be counted", || {
        counters(setup, "fas2", "people").0 == people.0 + 1
            && counters(setup, "fas2", "groups").1 == groups.1 + 3
            && counters(setup, "fas2", "sessions").2 == sessions.2 + 2
    });
}

/// The changed tables of a `local_changes` object, as (table, change, ins, upd, del).
fn changed_tables(changes: &Value) -> Vec<(String, String, u64, u64, u64)> {
    changes["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| {
            (
                t["table"].as_str().unwrap().to_owned(),
                t["change"].as_str().unwrap().to_owned(),
                t["inserted"].as_u64().unwrap(),
                t["updated"].as_u64().unwrap(),
                t["deleted"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn the_edits() -> Vec<(String, String, u64, u64, u64)> {
    vec![
        ("public.groups".into(), "modified".into(), 0, 3, 0),
        ("public.people".into(), "modified".into(), 1, 0, 0),
        ("public.sessions".into(), "modified".into(), 0, 0, 2),
    ]
}

fn comment_of(setup: &Setup, db: &str) -> String {
    setup
        .cluster
        .sql(
            "postgres",
            &format!(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database \
                 WHERE datname = '{db}'"
            ),
        )
        .trim_end()
        .to_owned()
}

/// The issue's "done when": edits in a synced staging database are named and refused with
/// `--if-unchanged` (incoming dropped, live unchanged), then reported and kept without it.
#[test]
fn local_edits_are_refused_with_if_unchanged_and_kept_without() {
    let setup = Setup::new();
    let stream = setup.stream();
    let first = setup.restore(&stream, &[]);
    let first = first.code_is(0);
    let s = first.summary();
    assert_eq!(s["baseline_recorded"], true);
    let baseline = Baseline::from_comment(&comment_of(&setup, "fas2")).expect("a baseline");
    assert_eq!(baseline.tables["public.people"].inserted, 202);
    // The fixture's fas2 was not restored by stg-restore: no baseline, so unknown.
    assert_eq!(s["local_changes"]["status"], "unknown", "{s}");

    edit_staging(&setup);
    let live = setup.cluster.table_contents("fas2");

    let refused = setup.restore(&stream, &["--if-unchanged"]);
    let refused = refused.code_is(1);
    let s = refused.summary();
    assert_eq!(s["ok"], false);
    assert_eq!(s["refused"], true);
    assert_eq!(s["failed_step"], "check");
    assert_eq!(s["local_changes"]["status"], "changed");
    assert_eq!(changed_tables(&s["local_changes"]), the_edits());
    let err = refused.stderr.clone();
    for named in [
        "refusing to replace fas2 (--if-unchanged)",
        "public.people: 1 inserted, 0 updated, 0 deleted",
        "public.groups: 0 inserted, 3 updated, 0 deleted",
        "public.sessions: 0 inserted, 0 updated, 2 deleted",
        "stg-restore list fas2",
        "last write unknown (track_commit_timestamp is off)",
    ] {
        assert!(err.contains(named), "{named:?} not in: {err}");
    }
    assert_eq!(setup.cluster.table_contents("fas2"), live, "fas2 changed");
    assert!(
        !setup
            .stg_databases()
            .iter()
            .any(|d| d.ends_with("__stg_incoming")),
        "incoming left: {:?}",
        setup.stg_databases()
    );

    let swapped = setup.restore(&stream, &[]);
    let swapped = swapped.code_is(0);
    let s = swapped.summary();
    assert_eq!(s["local_changes"]["status"], "changed");
    assert_eq!(changed_tables(&s["local_changes"]), the_edits());
    assert!(
        swapped.stderr.contains("public.people: 1 inserted"),
        "{}",
        swapped.stderr
    );
    let previous = s["previous"].as_str().expect("a kept copy").to_owned();
    assert_eq!(setup.cluster.table_contents(&previous), live);
    assert_eq!(setup.cluster.table_contents("fas2"), setup.source);
    let list = setup.cmd(&["list", "fas2", "--format", "json"]).run();
    let list = list.code_is(0);
    let listed = list.records();
    let kept = listed
        .iter()
        .find(|r| r["name"] == previous.as_str() && r["kind"] == "previous")
        .unwrap_or_else(|| panic!("{previous} not listed"));
    // The kept copy carries the staging work, and list says so; the new copy has none.
    assert_eq!(changed_tables(&kept["local_changes"]), the_edits());
    let current = listed.iter().find(|r| r["kind"] == "current").unwrap();
    assert_eq!(current["local_changes"]["status"], "none", "{current}");
    let text = setup.cmd(&["list", "fas2", "--format", "text"]).run();
    let text = text.stdout;
    assert!(
        text.contains("local changes since the sync: none")
            && text.contains("public.people: 1 inserted"),
        "{text}"
    );
}

/// A sync right after a sync has no local changes: the baseline includes the load's own
/// writes (with parallel load connections), and VACUUM/ANALYZE are no changes.
#[test]
fn a_sync_right_after_a_sync_has_no_local_changes() {
    let setup = Setup::new();
    let stream = setup.stream();
    setup
        .restore(&stream, &["--jobs", "3", "--analyze"])
        .code_is(0);
    setup.cluster.sql("fas2", "VACUUM ANALYZE");
    let again = setup.restore(&stream, &["--jobs", "3", "--if-unchanged"]);
    let again = again.code_is(0);
    let s = again.summary();
    assert_eq!(s["local_changes"]["status"], "none", "{s}");
    assert_eq!(s["refused"], false);
    assert!(
        again
            .stderr
            .contains("local changes in fas2 since the sync at"),
        "{}",
        again.stderr
    );
    // A table created since the sync is a change, and so is a dropped one.
    setup.cluster.script(
        "fas2",
        "CREATE TABLE notes (t text); INSERT INTO notes VALUES ('x'); DROP TABLE memberships;",
    );
    let out = setup.restore(&stream, &["--if-unchanged"]);
    let out = out.code_is(1);
    let s = out.summary();
    let tables = changed_tables(&s["local_changes"]);
    assert!(
        tables
            .iter()
            .any(|t| t.0 == "public.notes" && t.1 == "created"),
        "{tables:?}"
    );
    assert!(
        tables
            .iter()
            .any(|t| t.0 == "public.memberships" && t.1 == "dropped"),
        "{tables:?}"
    );
}

/// Counters reset since the sync (`pg_stat_reset()`), a server crash, or no baseline at
/// all: "unknown", and `--if-unchanged` refuses. Refused before the load, when it can be.
#[test]
fn if_unchanged_refuses_when_the_counters_cannot_be_trusted() {
    let setup = Setup::new();
    let stream = setup.stream();
    // The fixture's fas2 has no provenance, hence no baseline: refused before the load.
    let out = setup.restore(&stream, &["--if-unchanged"]);
    let out = out.code_is(1);
    let s = out.summary();
    assert_eq!(s["local_changes"]["status"], "unknown");
    assert!(s["local_changes"]["reason"]
        .as_str()
        .unwrap()
        .contains("no baseline"));
    assert!(s["timings_ms"].get("load").is_none(), "loaded anyway: {s}");
    setup.assert_untouched();

    setup.restore(&stream, &[]).code_is(0);
    setup.cluster.sql("fas2", "SELECT pg_stat_reset()");
    let live = setup.cluster.table_contents("fas2");
    let out = setup.restore(&stream, &["--if-unchanged"]);
    let out = out.code_is(1);
    let s = out.summary();
    assert_eq!(s["local_changes"]["status"], "unknown");
    let reason = s["local_changes"]["reason"].as_str().unwrap();
    assert!(reason.contains("were reset at"), "{reason}");
    assert!(out.stderr.contains("unknown"), "{}", out.stderr);
    assert_eq!(setup.cluster.table_contents("fas2"), live);

    // A crash (immediate shutdown) discards every counter.
    setup.restore(&stream, &[]).code_is(0);
    setup.cluster.stop_immediate();
    setup.cluster.restart();
    let reason = refused_reason(&setup, &stream);
    assert!(reason.contains("crash"), "{reason}");
    // Without --if-unchanged the sync goes on and says unknown.
    let out = setup.restore(&stream, &[]);
    let out = out.code_is(0);
    assert_eq!(out.summary()["local_changes"]["status"], "unknown");

    // Statistics switched off: nothing is counted, so nothing can be told.
    set_and_reload(&setup, "track_counts", "off");
    let reason = refused_reason(&setup, &stream);
    assert!(reason.contains("track_counts is off"), "{reason}");
    // A sync with them off records no baseline, and says so.
    let out = setup.restore(&stream, &[]);
    let out = out.code_is(0);
    let s = out.summary();
    assert_eq!(s["baseline_recorded"], false);
    assert!(
        s["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("no baseline was recorded")),
        "{s}"
    );
    set_and_reload(&setup, "track_counts", "on");
    let reason = refused_reason(&setup, &stream);
    assert!(reason.contains("no baseline"), "{reason}");
}

/// `ALTER SYSTEM SET name = value`, reloaded, and waits until new sessions see it.
fn set_and_reload(setup: &Setup, name: &str, value: &str) {
    let c = &setup.cluster;
    c.sql("postgres", &format!("ALTER SYSTEM SET {name} = '{value}'"));
    c.reload();
    wait_for("the server to reload its settings", || {
        c.sql("postgres", &format!("SHOW {name}")).trim() == value
    });
}

/// With `track_commit_timestamp` on, the time of the last write is found per table.
#[test]
fn the_last_write_is_dated_with_commit_timestamps() {
    let setup = Setup::new();
    let c = &setup.cluster;
    c.sql("postgres", "ALTER SYSTEM SET track_commit_timestamp = on");
    // A restart to take it (immediate: it discards the counters, before any sync; the
    // checkpoint first, because the test cluster runs with fsync and synchronous_commit
    // off, and keeps what was just written).
    c.sql("postgres", "CHECKPOINT");
    c.stop_immediate();
    c.restart();
    let stream = setup.stream();
    setup.restore(&stream, &[]).code_is(0);
    std::thread::sleep(Duration::from_millis(1100));
    let before_edit = c
        .sql(
            "postgres",
            "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
        )
        .trim()
        .to_owned();
    edit_staging(&setup);
    let out = setup.restore(&stream, &["--if-unchanged"]);
    let out = out.code_is(1);
    let changes = &out.summary()["local_changes"];
    let last = changes["last_write_at"].as_str().expect("a last write");
    assert!(last > before_edit.as_str(), "{last} <= {before_edit}");
    assert!(last > changes["since"].as_str().unwrap(), "{changes}");
    let people = changes["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.people")
        .unwrap();
    assert!(people["last_write_at"].is_string(), "{people}");
    // Deletes leave no row to date: said so.
    assert!(
        changes["last_write"]
            .as_str()
            .unwrap()
            .contains("deletes and rewrites leave none"),
        "{changes}"
    );
    assert!(
        out.stderr.contains(&format!("last write {last}")),
        "{}",
        out.stderr
    );
}

/// `--notify` gets the pending summary on its stdin before the swap.
#[test]
fn notify_reads_the_pending_summary() {
    let setup = Setup::new();
    let stream = setup.stream();
    setup.restore(&stream, &[]).code_is(0);
    edit_staging(&setup);
    let file = setup.dir.path().join("pending.json");
    let command = format!(
        "cat > {} && test \"$STG_RESTORE_HOOK\" = notify",
        file.display()
    );
    let out = setup.restore(&stream, &["--notify", &command]);
    let out = out.code_is(0);
    let s = out.summary();
    assert_eq!(s["notify"]["ok"], true, "{s}");
    assert!(s["warnings"].as_array().unwrap().is_empty(), "{s}");
    let text = std::fs::read_to_string(&file).unwrap();
    let pending: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(pending["type"], "pending_swap");
    assert_eq!(pending["database"], "fas2");
    assert_eq!(pending["incoming"], "fas2__stg_incoming");
    assert_eq!(pending["replaces"], true);
    assert_eq!(pending["source"]["host"], "db01.test");
    assert_eq!(pending["source"]["dumped_at"], "2026-11-28T01:00:00Z");
    assert_eq!(pending["current"]["source_host"], "db01.test");
    assert!(pending["current"]["age_seconds"].as_u64().unwrap() < 600);
    assert_eq!(pending["local_changes"]["status"], "changed");
    assert_eq!(changed_tables(&pending["local_changes"]), the_edits());
}

/// A notify command that fails, is killed, reads nothing or hangs stops nothing: the
/// restore completes, and the report says what went wrong.
#[test]
fn a_failing_notify_is_a_warning() {
    let setup = Setup::new();
    let stream = setup.stream();
    let cases = [
        ("exit 3", "failed (exit status: 3)"),
        ("kill -9 $$", "killed by signal 9"),
        ("true", "exited without reading its input"),
        ("sleep 3001", "did not finish within 1 s"),
        (
            "sleep 3002 & cat >/dev/null; wait",
            "did not finish within 1 s",
        ),
    ];
    for (command, expected) in cases {
        let started = Instant::now();
        let out = setup.restore(&stream, &["--notify", command, "--notify-timeout", "1s"]);
        let out = out.code_is(0);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{command}: took {:?}",
            started.elapsed()
        );
        let s = out.summary();
        assert_eq!(s["ok"], true);
        assert_eq!(s["notify"]["ok"], false, "{command}: {s}");
        let warning = s["notify"]["error"].as_str().unwrap();
        assert!(warning.contains(expected), "{command}: {warning}");
        assert!(
            s["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w == warning),
            "{s}"
        );
        assert!(out.stderr.contains(expected), "{}", out.stderr);
        assert_eq!(setup.cluster.table_contents("fas2"), setup.source);
    }
    // The process groups of the hanging commands were killed, children included.
    for marker in ["3001", "3002", "3003"] {
        assert!(
            !sleeping(marker),
            "a `sleep {marker}` of a notify command is still running"
        );
    }
}

/// True when a `sleep ARG` process runs.
fn sleeping(arg: &str) -> bool {
    let wanted = format!("sleep\0{arg}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == wanted.as_bytes()))
}

/// `stg-age databases` shows the local changes next to the age of the sync.
#[test]
fn stg_age_databases_shows_local_changes() {
    let setup = Setup::new();
    let stream = setup.stream();
    setup.restore(&stream, &[]).code_is(0);
    let age = |format: &str| {
        let mut cmd = stg_tests::cmd::stg("stg-age");
        cmd.arg("databases")
            .args(setup.cluster.conn_args())
            .args(["--format", format]);
        cmd.run()
    };
    let out = age("json");
    let out = out.code_is(0);
    let fas2 = out
        .records()
        .into_iter()
        .find(|r| r["name"] == "fas2")
        .expect("fas2 listed");
    assert_eq!(fas2["local_changes"]["status"], "none", "{fas2}");
    edit_staging(&setup);
    let out = age("json");
    let all = out.records();
    let fas2 = all.iter().find(|r| r["name"] == "fas2").unwrap();
    assert_eq!(fas2["local_changes"]["status"], "changed");
    assert_eq!(changed_tables(&fas2["local_changes"]), the_edits());
    // The fixture's database, kept as the previous copy, has no baseline.
    let kept = all.iter().find(|r| r["role"] == "previous").unwrap();
    assert_eq!(kept["local_changes"]["status"], "unknown");
    let summary_line = all.last().unwrap();
    assert_eq!(summary_line["changed"], 1);
    let text = age("text").stdout;
    assert!(text.contains("CHANGES"), "{text}");
    assert!(text.contains("3 table(s): +1 ~3 -2"), "{text}");
    assert!(text.contains("unknown"), "{text}");
}

/// `make sync` passes `IF_UNCHANGED=1`, `NOTIFY=` and `NOTIFY_TIMEOUT=` on to stg-restore
/// (the "remote" shells are local ones; the cluster is both production and staging).
#[test]
fn make_sync_exposes_if_unchanged_and_notify() {
    let setup = Setup::new();
    let c = &setup.cluster;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let build = stg_tests::cmd::bin_path("stg-restore");
    let path = format!(
        "{}:{}:{}",
        build.parent().unwrap().display(),
        c.bindir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let conn = c.conn_args().join(" ");
    let pending = setup.dir.path().join("pending.json");
    let make = |extra: &[String]| {
        let mut cmd = stg_tests::cmd::program("make");
        cmd.arg("-C")
            .arg(&root)
            .arg("--no-print-directory")
            .env("PATH", &path)
            .env("STG_ENVIRONMENT_FILE", setup.env_file())
            .args(["sync", "DB=fas2", "FROM=db01", "TO=db02.stg", "FORMAT=json"])
            .arg(r#"SSH=sh -c 'shift; eval "$$*"' ssh"#)
            .arg(format!("DUMP_ARGS={conn}"))
            .arg(format!("RESTORE_ARGS={conn}"))
            .args(extra);
        let out = cmd.run();
        let last = out
            .stdout
            .lines()
            .rfind(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str::<Value>(l).expect("JSON line"));
        (out, last)
    };
    let (out, s) = make(&[
        format!("NOTIFY=cat > {}", pending.display()),
        "NOTIFY_TIMEOUT=20s".into(),
    ]);
    let s = s.unwrap_or_else(|| panic!("no summary: {}", out.stderr));
    out.ok();
    assert_eq!(s["notify"]["ok"], true, "{s}");
    let told: Value = serde_json::from_str(&std::fs::read_to_string(&pending).unwrap()).unwrap();
    assert_eq!(told["database"], "fas2");

    edit_staging(&setup);
    let live = c.table_contents("fas2");
    let (out, s) = make(&["IF_UNCHANGED=1".into()]);
    assert_ne!(out.code, 0, "make sync replaced a changed copy");
    let s = s.unwrap_or_else(|| panic!("no summary: {}", out.stderr));
    assert_eq!(s["refused"], true, "{s}");
    assert_eq!(changed_tables(&s["local_changes"]), the_edits());
    assert_eq!(c.table_contents("fas2"), live);
    // IF_UNCHANGED=0 is off: the sync goes on and reports the edits.
    let (out, s) = make(&["IF_UNCHANGED=0".into()]);
    out.ok();
    assert_eq!(s.unwrap()["local_changes"]["status"], "changed");
}

/// Runs a restore with `--if-unchanged`, which must be refused (exit 1) with the local
/// changes unknown: the reason it gives.
#[track_caller]
fn refused_reason(setup: &Setup, stream: &[u8]) -> String {
    let out = setup.restore(stream, &["--if-unchanged"]).code_is(1);
    out.summary()["local_changes"]["reason"]
        .as_str()
        .unwrap()
        .to_owned()
}
