//! stg-restore against real PostgreSQL clusters: the restore, swap, keep, list and
//! rollback; every bad input of the issue, each leaving the previous database there,
//! unchanged and connectable, with no `__stg_incoming` left behind.

mod support;

use std::io::Write;
use std::process::Stdio;

use stg_core::provenance::Provenance;
use stg_tests::run::{run, Run, RunExt};
use support::{find, half_loaded, retrail, wait_for, without_trailer, xz, Codec, Setup};

/// Rows in `people` (table_contents splits rows with newlines into several lines).
fn people_rows(setup: &Setup, db: &str) -> u64 {
    setup
        .cluster
        .sql(db, "SELECT count(*) FROM people")
        .trim()
        .parse()
        .unwrap()
}

fn comment_of(setup: &Setup, db: &str) -> Provenance {
    let text = setup.cluster.sql(
        "postgres",
        &format!(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '{db}'"
        ),
    );
    Provenance::from_comment(text.trim_end()).expect("stg provenance")
}

#[test]
fn refuses_on_a_host_that_is_not_staging() {
    let setup = Setup::new();
    let stream = setup.stream();
    for contents in [None, Some("production\n"), Some("# staging\n")] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("environment");
        if let Some(text) = contents {
            std::fs::write(&file, text).unwrap();
        }
        for args in [vec![], vec!["rollback", "fas2"]] {
            let mut cmd = setup.restore_cmd(&[]);
            if !args.is_empty() {
                cmd = setup.cmd(&args);
            }
            cmd.env("STG_ENVIRONMENT_FILE", &file);
            let out = run(cmd, stream.as_slice());
            let out = out.code_is(2);
            let err = out.stderr.clone();
            assert!(err.contains("not marked as staging"), "{err}");
            assert!(err.contains("staging"), "{err}");
            assert!(out.stdout.is_empty());
        }
    }
    setup.assert_untouched();
    assert!(setup.stg_databases().is_empty());
}

/// Sets the server's `stg.environment` in `postgresql.conf` (before PostgreSQL 17,
/// `ALTER SYSTEM` refuses custom settings) and waits until new sessions see it.
fn mark_server(setup: &Setup, mark: &str) {
    let c = &setup.cluster;
    let mut conf = std::fs::OpenOptions::new()
        .append(true)
        .open(c.data_dir().join("postgresql.conf"))
        .unwrap();
    writeln!(conf, "stg.environment = '{mark}'").unwrap();
    c.reload();
    wait_for("the server to reload its settings", || {
        c.sql(
            "postgres",
            "SELECT current_setting('stg.environment', true)",
        )
        .trim()
            == mark
    });
}

#[test]
fn refuses_a_server_marked_as_not_staging() {
    let setup = Setup::new();
    let c = &setup.cluster;
    let stream = setup.stream();
    // A first restore, so that a rollback would have a kept copy to bring back.
    setup.restore(&stream, &[]).code_is(0);
    let live = c.table_contents("fas2");
    let databases = setup.stg_databases();

    mark_server(&setup, "production");
    for args in [vec![], vec!["rollback", "fas2"]] {
        let cmd = if args.is_empty() {
            setup.restore_cmd(&[])
        } else {
            setup.cmd(&args)
        };
        let out = run(cmd, stream.as_slice());
        let out = out.code_is(2);
        let err = out.stderr.clone();
        assert!(err.contains("stg.environment = 'production'"), "{err}");
        assert!(
            err.contains(&format!("@127.0.0.1:{}/", c.port())),
            "names the server: {err}"
        );
        if !out.stdout.is_empty() {
            assert_eq!(out.summary()["ok"], false);
        }
    }
    // A per-database setting cannot hide the configuration file's mark.
    c.sql(
        "postgres",
        "ALTER DATABASE postgres SET stg.environment = 'staging'",
    );
    let out = setup.restore(&stream, &[]);
    let out = out.code_is(2);
    assert!(
        out.stderr.contains("stg.environment = 'production'"),
        "{}",
        out.stderr
    );
    assert_eq!(c.table_contents("fas2"), live, "the live database changed");
    assert_eq!(
        setup.stg_databases(),
        databases,
        "databases were created or dropped"
    );

    // A server marked staging is restored into like an unmarked one.
    mark_server(&setup, "staging");
    setup.restore(&stream, &[]).code_is(0);
    assert_eq!(c.table_contents("fas2"), setup.source);
}

#[test]
fn restore_swaps_keeps_lists_and_rolls_back() {
    let setup = Setup::new();
    let c = &setup.cluster;
    let stream = setup.stream();

    let out = setup.restore(&stream, &[]);
    let out = out.code_is(0);
    let s = out.summary();
    assert_eq!(s["ok"], true);
    assert_eq!(s["database"], "fas2");
    assert_eq!(s["incoming"], "fas2__stg_incoming");
    assert_eq!(s["verification"]["verified"], true);
    assert_eq!(
        s["verification"]["sha256"],
        s["verification"]["trailer_sha256"]
    );
    assert_eq!(
        s["rows"]["public.people"].as_u64(),
        Some(people_rows(&setup, "src"))
    );
    assert_eq!(s["source"]["host"], "db01.test");
    for phase in ["connect", "prepare", "load", "swap", "prune", "total"] {
        assert!(s["timings_ms"][phase].is_u64(), "timing {phase}: {s}");
    }
    let first_prev = s["previous"].as_str().expect("previous").to_owned();
    assert!(first_prev.starts_with("fas2__stg_prev_"), "{first_prev}");

    assert_eq!(c.table_contents("fas2"), setup.source);
    assert_eq!(c.table_contents(&first_prev), setup.before);
    assert_eq!(setup.stg_databases(), vec![first_prev.clone()]);
    let p = comment_of(&setup, "fas2");
    assert!(p.verified);
    assert_eq!(p.source_host, "db01.test");
    assert_eq!(p.source_database, "fas2");
    assert_eq!(p.dumped_at.as_deref(), Some("2026-11-28T01:00:00Z"));
    assert_eq!(
        p.stream_sha256.as_deref(),
        s["verification"]["sha256"].as_str()
    );
    // The owner comes from the manifest.
    assert_eq!(
        c.sql(
            "postgres",
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'fas2'"
        )
        .trim(),
        "fas2"
    );

    // A second restore keeps one copy (the default): the first kept copy is pruned.
    let out = setup.restore(&stream, &[]);
    let out = out.code_is(0);
    let s = out.summary();
    let second_prev = s["previous"].as_str().unwrap().to_owned();
    assert_ne!(second_prev, first_prev);
    assert_eq!(s["dropped"], serde_json::json!([first_prev]));
    assert_eq!(setup.stg_databases(), vec![second_prev.clone()]);

    // list: current and kept copy, both with provenance.
    let out = setup.cmd(&["list", "fas2", "--format", "json"]).run();
    let out = out.code_is(0);
    let recs = out.records();
    assert_eq!(recs.len(), 3, "{recs:?}");
    assert_eq!(recs[0]["kind"], "current");
    assert_eq!(recs[0]["name"], "fas2");
    assert_eq!(recs[0]["provenance"]["source_host"], "db01.test");
    assert_eq!(recs[1]["kind"], "previous");
    assert_eq!(recs[1]["name"], second_prev.as_str());
    assert!(recs[1]["provenance"]["restored_at"].is_string());
    let stamp = second_prev.trim_start_matches("fas2__stg_prev_");
    let retired_at = recs[1]["retired_at"].as_str().unwrap();
    assert_eq!(
        stg_core::timestamp::compact(stg_core::timestamp::parse(retired_at).unwrap()),
        stamp
    );
    // The swap recorded when it retired the copy, beside its provenance; that orders it.
    assert_eq!(recs[1]["ordered_by"], "retired_at");
    assert_eq!(
        retired_at_of(&setup, &second_prev).as_deref(),
        Some(retired_at)
    );
    assert_eq!(retired_at_of(&setup, "fas2"), None);
    assert_eq!(recs[2]["type"], "summary");
    assert_eq!(recs[2]["previous"], 1);
    assert_eq!(recs[2]["warnings"], serde_json::json!([]));
    let text = setup.cmd(&["list", "fas2", "--format", "text"]).run();
    let text = text.stdout;
    assert!(
        text.contains("current") && text.contains(&second_prev),
        "{text}"
    );
    // The connection flags and -d/--dbname go before the command word as well.
    let mut before = stg_tests::cmd::stg("stg-restore");
    before
        .env("STG_ENVIRONMENT_FILE", setup.env_file())
        .args(setup.cluster.conn_args())
        .args(["-d", "fas2", "list", "--format", "json"]);
    let out = before.run();
    let out = out.code_is(0);
    assert_eq!(out.records(), recs);
    // A restore's option before a command is refused, named.
    let out = setup.cmd(&["--keep", "3", "list", "fas2"]).run();
    let out = out.code_is(2);
    assert!(
        out.stderr
            .contains("--keep is an option of a restore, not of list"),
        "{}",
        out.stderr
    );

    // rollback: the kept copy (same data as the first restore) comes back; the current
    // becomes a kept copy; a second rollback undoes the first.
    c.script(
        "fas2",
        "INSERT INTO sessions VALUES ('marker', 'x', now());",
    );
    let marked = c.table_contents("fas2");
    let out = setup.cmd(&["rollback", "fas2"]).run();
    let out = out.code_is(0);
    let s = out.summary();
    assert_eq!(s["restored_from"], second_prev.as_str());
    let retired = s["previous"].as_str().unwrap().to_owned();
    assert_eq!(c.table_contents("fas2"), setup.source);
    assert_eq!(c.table_contents(&retired), marked);
    let out = setup.cmd(&["rollback", "fas2"]).run();
    out.code_is(0);
    assert_eq!(c.table_contents("fas2"), marked);
    assert_eq!(setup.stg_databases().len(), 1);
    // Live again, a copy carries no retire time; the one it replaced does.
    assert_eq!(retired_at_of(&setup, "fas2"), None);
    assert!(retired_at_of(&setup, &setup.stg_databases()[0]).is_some());
}

/// The retire time recorded in a database's comment.
fn retired_at_of(setup: &Setup, db: &str) -> Option<String> {
    let text = setup.cluster.sql(
        "postgres",
        &format!(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '{db}'"
        ),
    );
    stg_core::provenance::retired_at(text.trim_end())
}

#[test]
fn rollback_brings_back_the_data_before_the_restore() {
    let setup = Setup::new();
    let out = setup.restore(&setup.stream(), &[]);
    out.code_is(0);
    assert_eq!(setup.cluster.table_contents("fas2"), setup.source);
    let out = setup.cmd(&["rollback", "fas2", "--format", "json"]).run();
    let out = out.code_is(0);
    assert_eq!(setup.cluster.table_contents("fas2"), setup.before);
    assert_eq!(out.summary()["warnings"], serde_json::json!([]));
    // A run killed inside its swap leaves the live database refusing connections
    // (tests/tests/faults.rs kills one there): a rollback allows them again first.
    setup
        .cluster
        .sql("postgres", "ALTER DATABASE fas2 ALLOW_CONNECTIONS false");
    let out = setup.cmd(&["rollback", "fas2", "--format", "json"]).run();
    let out = out.code_is(0);
    assert!(
        out.summary()["warnings"][0]
            .as_str()
            .unwrap()
            .contains("fas2 did not accept connections"),
        "{}",
        out.summary()
    );
    assert_eq!(setup.cluster.table_contents("fas2"), setup.source);
    let previous = out.summary()["previous"].as_str().unwrap().to_owned();
    assert_eq!(setup.cluster.table_contents(&previous), setup.before);
    // Nothing to roll back to in a database without copies.
    let out = setup.cmd(&["rollback", "src"]).run();
    let out = out.code_is(2);
    assert!(out.stderr.contains("no kept copy of src"), "{}", out.stderr);
}

#[test]
fn first_restore_and_no_keep() {
    let setup = Setup::new();
    // --db: the old name of --dbname, still accepted.
    let out = setup.restore(&setup.stream(), &["--db", "fresh"]);
    let out = out.code_is(0);
    let s = out.summary();
    assert_eq!(s["database"], "fresh");
    assert!(s["previous"].is_null());
    assert_eq!(setup.cluster.table_contents("fresh"), setup.source);
    let out = setup.restore(&setup.stream(), &["-d", "fresh", "--no-keep", "--analyze"]);
    let out = out.code_is(0);
    let s = out.summary();
    assert!(s["timings_ms"]["analyze"].is_u64());
    assert_eq!(s["dropped"].as_array().unwrap().len(), 1);
    assert!(
        setup.stg_databases().is_empty(),
        "{:?}",
        setup.stg_databases()
    );
    let analyzed = setup.cluster.sql(
        "fresh",
        "SELECT count(*) FROM pg_stats WHERE schemaname = 'public' AND tablename = 'people'",
    );
    assert_ne!(analyzed.trim(), "0");
}

/// pg_dump wraps large-object data in its own `BEGIN; ... COMMIT;` (the descriptor of
/// `lo_open` lives only inside it): the group runs on one connection and the blob arrives
/// whole. Whatever the stream's transaction control says, only the swap after verification
/// decides what becomes live: a stream whose trailer does not match leaves the blob in no
/// live database.
/// See: issue "Hardening, round 2", item 8 (large objects committed before the trailer).
#[test]
fn large_objects_load_in_pg_dumps_transaction_and_only_a_verified_stream_goes_live() {
    let setup = Setup::new();
    let oid = setup
        .cluster
        .sql("src", "SELECT lo_from_bytea(0, '\\x00ff68656c6c6f'::bytea)");
    let plain = setup.plain_stream();
    let text = String::from_utf8_lossy(&plain);
    assert!(
        text.contains("BEGIN;") && text.contains("lowrite"),
        "{text}"
    );

    // A damaged copy first: the trailer's SHA-256 no longer matches.
    let damaged = String::from_utf8_lossy(&plain).replace("68656c6c6f", "68656c6c6e");
    let out = setup.restore(&xz(damaged.as_bytes()), &["--jobs", "3"]);
    out.code_is(2);
    setup.assert_untouched();
    assert!(
        setup.stg_databases().is_empty(),
        "{:?}",
        setup.stg_databases()
    );

    let out = setup.restore(&xz(&plain), &["--jobs", "3"]);
    out.code_is(0);
    assert_eq!(
        setup
            .cluster
            .sql(
                "fas2",
                &format!("SELECT encode(lo_get({}), 'hex')", oid.trim())
            )
            .trim(),
        "00ff68656c6c6f"
    );
}

#[test]
fn truncated_streams_change_nothing() {
    let setup = Setup::new();
    for codec in Codec::ALL {
        let plain = setup.plain_stream();
        let manifest_end = find(&plain, b"\n").unwrap();
        let copy_at = find(&plain, b"COPY public.people").unwrap();
        let mid_copy = copy_at + find(&plain[copy_at..], b"\n").unwrap() + 40;
        let before_trailer = without_trailer(&plain).len();
        // Content cut, xz stream itself complete.
        for (what, at) in [
            ("inside the manifest", manifest_end / 2),
            ("mid-COPY", mid_copy),
            ("just before the trailer", before_trailer),
            ("inside the trailer", before_trailer + 30),
        ] {
            let out = setup.restore(&codec.compress(&plain[..at]), &[]);
            let out = out.code_is(2);
            let s = out.summary();
            assert_eq!(s["ok"], false, "{what}");
            let err = out.stderr.clone();
            if what == "inside the manifest" {
                assert_eq!(s["failed_step"], "read", "{what}");
                assert!(err.contains("first line is incomplete"), "{what}: {err}");
            } else {
                assert_eq!(s["failed_step"], "load", "{what}");
                assert!(
                    err.contains("truncated") || err.contains("malformed"),
                    "{what}: {err}"
                );
                assert_eq!(s["incoming_dropped"], true, "{what}");
            }
            setup.assert_untouched();
        }
        // The xz data itself cut.
        let data = codec.compress(&plain);
        for at in [20, data.len() / 2, data.len() - 1] {
            let out = setup.restore(&data[..at], &[]);
            let out = out.code_is(2);
            let err = out.stderr.clone();
            assert!(err.contains("truncated"), "{codec:?} cut at {at}: {err}");
            let s = out.summary();
            assert_eq!(s["ok"], false);
            setup.assert_untouched();
        }
        // Nothing at all.
        let out = setup.restore(b"", &[]);
        let out = out.code_is(2);
        assert!(out.stderr.contains("empty"));
        setup.assert_untouched();
    }
}

#[test]
fn flipped_bytes_are_caught() {
    let setup = Setup::new();
    // Enough data that psql is well into the load when the damage arrives.
    setup.cluster.sql(
        "src",
        "CREATE TABLE bulk AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 30000) g",
    );
    // One byte in the compressed data: the decoder refuses it (its own check), mid-load.
    for codec in Codec::ALL {
        let mut data = codec.compress(&setup.plain_stream());
        let at = data.len() * 2 / 3;
        data[at] ^= 0x55;
        let out = setup.restore(&data, &[]);
        let out = out.code_is(2);
        let s = out.summary();
        assert_eq!(s["failed_step"], "load", "{s}");
        let corrupt = format!("{} data is corrupt", codec.name());
        assert!(s["error"].as_str().unwrap().contains(&corrupt), "{s}");
        assert_eq!(s["incoming_dropped"], true);
        setup.assert_untouched();
    }

    // One byte in the SQL, xz recomputed: the checksum catches it.
    let plain = setup.plain_stream();
    let mut changed = plain.clone();
    let at = find(&changed, b"Person Number 7\t").unwrap();
    changed[at + 7] = b'm';
    let out = setup.restore(&xz(&changed), &[]);
    let out = out.code_is(2);
    let s = out.summary();
    assert_eq!(s["failed_step"], "verify");
    assert_eq!(s["verification"]["verified"], false);
    let problems = s["verification"]["problems"].to_string();
    assert!(problems.contains("SHA-256"), "{problems}");
    assert!(out.stderr.contains("does not match its trailer"));
    setup.assert_untouched();

    // A row dropped (sessions has no foreign keys), trailer kept: row counts disagree too.
    let copy = find(&plain, b"COPY public.sessions ").unwrap();
    let start = copy + find(&plain[copy..], b"\n").unwrap() + 1;
    let end = start + find(&plain[start..], b"\n").unwrap() + 1;
    let mut dropped = plain[..start].to_vec();
    dropped.extend_from_slice(&plain[end..]);
    let out = setup.restore(&xz(&dropped), &[]);
    let out = out.code_is(2);
    let problems = out.summary()["verification"]["problems"].to_string();
    assert!(
        problems.contains("table public.sessions: trailer says"),
        "{problems}"
    );
    setup.assert_untouched();

    // verify says the same without touching a database (and without a staging host).
    let mut cmd =
        stg_tests::cmd::program(stg_tests::cmd::bin_path("stg-restore").to_str().unwrap());
    cmd.arg("verify");
    let out = run(cmd, xz(&changed));
    let out = out.code_is(1);
    let s = out.summary();
    assert_eq!(s["verification"]["verified"], false);
    let mut cmd = stg_tests::cmd::stg("stg-restore");
    cmd.arg("verify");
    let out = run(cmd, xz(&plain));
    let out = out.code_is(0);
    let s = out.summary();
    assert_eq!(s["verification"]["verified"], true);
    assert_eq!(s["database"], "fas2");
    assert_eq!(
        s["rows"]["public.people"].as_u64(),
        Some(people_rows(&setup, "src"))
    );
}

#[test]
fn data_after_the_trailer_and_sql_errors_are_refused() {
    let setup = Setup::new();
    let mut plain = setup.plain_stream();
    plain.extend_from_slice(b"DROP TABLE people;\n");
    let out = setup.restore(&xz(&plain), &[]);
    let out = out.code_is(2);
    assert!(out.stderr.contains("after its trailer"), "{}", out.stderr);
    setup.assert_untouched();

    // Checksum right, SQL wrong: the server's error is reported.
    let mut body = without_trailer(&setup.plain_stream());
    body.extend_from_slice(b"COMMENT ON TABLE no_such_table_here IS 'x';\n");
    let out = setup.restore(&xz(&retrail(&body)), &[]);
    let out = out.code_is(3);
    let s = out.summary();
    assert_eq!(s["failed_step"], "load");
    assert!(
        s["error"].as_str().unwrap().contains("no_such_table_here"),
        "{s}"
    );
    setup.assert_untouched();
}

#[test]
fn missing_roles_are_named_before_anything_is_created() {
    let setup = Setup::new();
    let mut manifest = setup.manifest("src", "fas2");
    manifest.roles.push("ghost_role".into());
    manifest.roles.push("other_ghost".into());
    let stream = xz(&support::with_manifest_and_trailer(
        &manifest,
        &setup.pg_dump("src", &[]),
    ));
    let out = setup.restore(&stream, &[]);
    let out = out.code_is(2);
    let err = out.stderr.clone();
    assert!(err.contains("ghost_role, other_ghost"), "{err}");
    let s = out.summary();
    assert_eq!(s["failed_step"], "prepare");
    assert_eq!(s["incoming_dropped"], false, "nothing was created");
    setup.assert_untouched();
}

#[test]
fn bad_names_and_plain_streams_are_refused() {
    let setup = Setup::new();
    let long = "x".repeat(37);
    let out = setup.restore(&setup.stream(), &["--dbname", &long]);
    let out = out.code_is(2);
    assert!(out.stderr.contains("at most 36 bytes"), "{}", out.stderr);
    let out = setup.restore(&setup.stream(), &["--dbname", "fas2__stg_incoming"]);
    out.code_is(2);

    let plain = xz(&setup.pg_dump("src", &["-C"]));
    let out = setup.restore(&plain, &[]);
    let out = out.code_is(2);
    assert!(out.stderr.contains("--accept-unverified"), "{}", out.stderr);
    let out = setup.restore(&plain, &["--accept-unverified"]);
    let out = out.code_is(2);
    assert!(out.stderr.contains("needs --dbname"), "{}", out.stderr);
    setup.assert_untouched();
}

#[test]
fn accepts_a_plain_pg_dump_c_stream_when_told() {
    let setup = Setup::new();
    let c = &setup.cluster;
    c.sql("postgres", "ALTER DATABASE src SET work_mem = '8MB'");
    let plain = xz(&setup.pg_dump("src", &["-C"]));
    let out = setup.restore(&plain, &["--dbname", "fas2", "--accept-unverified"]);
    let out = out.code_is(0);
    let s = out.summary();
    assert_eq!(s["verification"]["verified"], false);
    let warnings = s["warnings"].to_string();
    assert!(warnings.contains("unverified"), "{warnings}");
    assert!(warnings.contains("skipped 1 CREATE DATABASE"), "{warnings}");
    assert_eq!(c.table_contents("fas2"), setup.source);
    // The database-level setting landed on the new fas2, not on src or the old fas2.
    let settings = c.sql(
        "postgres",
        "SELECT d.datname FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase ORDER BY 1",
    );
    assert_eq!(settings.trim(), "fas2\nsrc");
    assert!(!comment_of(&setup, "fas2").verified);
    assert_eq!(
        c.table_contents(s["previous"].as_str().unwrap()),
        setup.before
    );
}

#[test]
fn a_client_in_a_transaction_is_disconnected_and_reconnects_to_new_data() {
    let setup = Setup::new();
    let mut client = setup
        .cluster
        .psql_cmd("fas2")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = client.stdin.take().unwrap();
    input
        .write_all(b"BEGIN;\nSELECT count(*) FROM people;\n")
        .unwrap();
    input.flush().unwrap();
    wait_for("the client's open transaction", || {
        setup.cluster.sql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE datname = 'fas2' AND state = 'idle in transaction'",
        ).trim() == "1"
    });

    let out = setup.restore(&setup.stream(), &[]);
    let out = out.code_is(0);
    let s = out.summary();
    assert!(s["sessions_terminated"].as_u64().unwrap() >= 1, "{s}");
    // The old session is gone: its next statement fails and psql stops.
    let _ = input.write_all(b"SELECT count(*) FROM people;\nCOMMIT;\n");
    drop(input);
    let old = client.wait_with_output().unwrap();
    assert!(!old.status.success(), "the old session survived the swap");
    // A new connection sees the new data.
    assert_eq!(setup.cluster.table_contents("fas2"), setup.source);
}

#[test]
fn a_failing_pre_hook_keeps_everything_and_hooks_run_in_order() {
    let setup = Setup::new();
    let log = setup.dir.path().join("hooks.log");
    let post = format!("echo post >> {}", log.display());
    let out = setup.restore(
        &setup.stream(),
        &[
            "--pre-hook",
            "echo pre-failing >&2; exit 7",
            "--post-hook",
            &post,
        ],
    );
    let out = out.code_is(3);
    let s = out.summary();
    assert_eq!(s["failed_step"], "pre-hook");
    assert!(out.stderr.contains("exit status: 7"), "{}", out.stderr);
    assert!(!log.exists(), "the post-hook ran after a failed pre-hook");
    setup.assert_untouched();

    let pre = format!(
        "echo \"pre $STG_RESTORE_DATABASE $STG_RESTORE_INCOMING\" >> {}; echo to-stdout",
        log.display()
    );
    let post = format!("echo \"post $STG_RESTORE_PREVIOUS\" >> {}", log.display());
    let out = setup.restore(&setup.stream(), &["--pre-hook", &pre, "--post-hook", &post]);
    let out = out.code_is(0);
    let s = out.summary();
    // A hook's stdout goes to stderr: stdout stays one JSON summary.
    assert_eq!(out.stdout.lines().count(), 1);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        logged,
        format!(
            "pre fas2 fas2__stg_incoming\npost {}\n",
            s["previous"].as_str().unwrap()
        )
    );
}

#[test]
fn a_second_concurrent_restore_fails_clearly() {
    let setup = Setup::new();
    // Half the stream: the first restore holds the lock and loads, waiting for the rest.
    let (first, mut input, stream) = half_loaded(&setup);
    wait_for("the first restore's incoming database", || {
        setup
            .stg_databases()
            .contains(&"fas2__stg_incoming".to_owned())
    });

    let second = setup.restore(&stream, &[]);
    let second = second.code_is(3);
    let err = second.stderr.clone();
    assert!(
        err.contains("another stg-restore of fas2 is running"),
        "{err}"
    );
    assert_eq!(second.summary()["failed_step"], "prepare");
    // The second did not touch the first's incoming database.
    assert!(setup
        .stg_databases()
        .contains(&"fas2__stg_incoming".to_owned()));

    input.write_all(&stream[stream.len() / 2..]).unwrap();
    drop(input);
    let first = Run::from(first.wait_with_output().unwrap());
    first.code_is(0);
    assert_eq!(setup.cluster.table_contents("fas2"), setup.source);
}

#[test]
fn sigterm_mid_load_drops_the_incoming_database() {
    let setup = Setup::new();
    let (child, input, _) = half_loaded(&setup);
    wait_for("psql loading the incoming database", || {
        setup.cluster.sql(
            "postgres",
            "SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = 'stg-restore' AND datname = 'fas2__stg_incoming'",
        ).trim() == "t"
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = Run::from(child.wait_with_output().unwrap());
    drop(input);
    let out = out.code_is(3);
    let s = out.summary();
    assert_eq!(s["failed_step"], "load");
    assert_eq!(s["incoming_dropped"], true);
    assert!(
        out.stderr.contains("interrupted by SIGTERM"),
        "{}",
        out.stderr
    );
    setup.assert_untouched();
}

#[test]
fn a_leftover_incoming_database_is_dropped_and_reported() {
    let setup = Setup::new();
    setup.cluster.createdb("fas2__stg_incoming");
    let out = setup.restore(&setup.stream(), &[]);
    let out = out.code_is(0);
    let warnings = out.summary()["warnings"].to_string();
    assert!(warnings.contains("left over"), "{warnings}");
    assert_eq!(setup.cluster.table_contents("fas2"), setup.source);
}

#[test]
fn a_load_connection_terminated_mid_load_fails_the_restore() {
    let setup = Setup::new();
    let (child, mut input, stream) = half_loaded(&setup);
    let loading = "FROM pg_stat_activity WHERE application_name = 'stg-restore' \
                   AND datname = 'fas2__stg_incoming'";
    wait_for("stg-restore loading", || {
        setup
            .cluster
            .sql("postgres", &format!("SELECT count(*) {loading}"))
            .trim()
            != "0"
    });
    // The server ends the load's sessions (an administrator, an OOM kill of a backend).
    setup.cluster.sql(
        "postgres",
        &format!("SELECT count(pg_terminate_backend(pid)) {loading}"),
    );
    let _ = input.write_all(&stream[stream.len() / 2..]);
    drop(input);
    let out = Run::from(child.wait_with_output().unwrap());
    let out = out.code_is(3);
    let s = out.summary();
    assert_eq!(s["failed_step"], "load");
    assert!(!s["error"].as_str().unwrap().is_empty(), "{s}");
    setup.assert_untouched();
}

#[test]
fn help_and_text_output() {
    let out = stg_tests::cmd::stg("stg-restore").arg("--help").run();
    let out = out.code_is(0);
    let help = out.stdout;
    for word in [
        "--accept-unverified",
        "--keep",
        "--pre-hook",
        "verify",
        "rollback",
        "Exit status",
    ] {
        assert!(help.contains(word), "{word} missing from --help");
    }
}

#[test]
fn rollback_with_a_failing_pre_hook_changes_nothing() {
    let setup = Setup::new();
    let out = setup.restore(&setup.stream(), &[]);
    out.code_is(0);
    let copies = setup.stg_databases();
    let out = setup
        .cmd(&["rollback", "fas2", "--pre-hook", "exit 4"])
        .run();
    let out = out.code_is(3);
    assert!(out.stderr.contains("pre-hook"), "{}", out.stderr);
    assert_eq!(setup.cluster.table_contents("fas2"), setup.source);
    assert_eq!(setup.stg_databases(), copies);
}

#[test]
fn plain_dump_into_a_new_database_with_text_report() {
    let setup = Setup::new();
    let plain = xz(&setup.pg_dump("src", &[]));
    let out = setup.restore(
        &plain,
        &[
            "--dbname",
            "newdb",
            "--accept-unverified",
            "--format",
            "text",
        ],
    );
    let out = out.code_is(0);
    let text = out.stdout;
    assert!(text.starts_with("restored newdb\n"), "{text}");
    assert!(text.contains("verified:     NO"), "{text}");
    assert!(text.contains("warning:      unverified stream"), "{text}");
    assert_eq!(setup.cluster.table_contents("newdb"), setup.source);
    // No live database to copy settings from: the connecting user would own it, but it is
    // a superuser, so the load role does instead.
    assert_eq!(
        setup
            .cluster
            .sql(
                "postgres",
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'newdb'"
            )
            .trim(),
        "stg_load"
    );
}

#[test]
fn verify_keeps_its_verdict_when_stdout_is_closed() {
    // Issue 20, item 4: `stg-restore verify < bad | head -1` exited 0. The reader is gone
    // before verify writes (it writes only after reading the whole stream).
    let setup = Setup::new();
    let plain = setup.plain_stream();
    let mut changed = plain.clone();
    let at = find(&changed, b"Person Number 7\t").unwrap();
    changed[at + 7] = b'm';
    for format in ["json", "text"] {
        for (stream, code) in [(xz(&changed), 1), (xz(&plain), 0)] {
            let mut cmd = stg_tests::cmd::stg("stg-restore");
            cmd.args(["verify", "--format", format]);
            cmd.stdout(stg_tests::cmd::closed_pipe());
            let mut child = cmd
                .stdin(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn stg-restore verify");
            let mut stdin = child.stdin.take().expect("stdin");
            // A command that stops reading early fails the code check.
            let _ = stdin.write_all(&stream);
            drop(stdin);
            let out = Run::from(child.wait_with_output().expect("wait")).code_is(code);
            assert_eq!(out.stderr, "", "{format}: quiet on a closed pipe");
        }
    }
}

#[test]
fn verify_refuses_connection_flags_and_a_database_it_would_ignore() {
    // verify reads the stream and connects to nothing: a flag that names a server or a
    // database is a mistake worth saying, not a setting silently dropped.
    for args in [
        &["verify", "-h", "db02.stg"][..],
        &["-p", "5433", "verify"],
        &["verify", "-U", "fas"],
        &["verify", "--sslmode", "require"],
        &["-d", "fas2", "verify"],
    ] {
        let mut cmd = stg_tests::cmd::stg("stg-restore");
        cmd.args(args);
        let out = run(cmd, b"not read".to_vec()).code_is(2);
        assert!(
            out.stderr
                .contains("stg-restore verify reads the stream on stdin"),
            "{args:?}: {}",
            out.stderr
        );
    }
}
