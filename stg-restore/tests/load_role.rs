//! The load role: the stream's SQL runs on connections that logged in as a role that is
//! not a superuser (`src/load_role.rs`), against a real cluster.
//!
//! What is tested: the load role is created when missing and checked at every run (a role
//! that is, or can act as, a superuser or reaches the server's files is refused by name);
//! it logs in with a password valid for the run only (SCRAM where pg_hba.conf asks for it,
//! no password left afterwards), and a server that will not let it in gets a message naming
//! the pg_hba.conf line to add; the load's statements ran as it (the server's log says
//! so); objects the stream gives to a superuser go to `--owner` or the load role, and
//! application owners are kept; a FAS-like and a pagila-like database restore with their
//! contents and schema, and with nothing owned by a superuser.

mod support;

use support::Setup;

fn role_password(setup: &Setup, role: &str) -> String {
    setup
        .cluster
        .sql(
            "postgres",
            &format!(
                "SELECT coalesce(rolpassword, '<none>') FROM pg_authid WHERE rolname = '{role}'"
            ),
        )
        .trim()
        .to_owned()
}

/// Objects of `db` owned by a superuser, extension members and system objects aside.
fn superuser_owned(setup: &Setup, db: &str) -> String {
    setup
        .cluster
        .sql(
            db,
            "SELECT string_agg(k || ' ' || n, ', ' ORDER BY k, n) FROM ( \
               SELECT 'relation' AS k, relname::text AS n, relowner AS o, oid, 'pg_class'::regclass AS c FROM pg_class \
               UNION ALL SELECT 'function', proname::text, proowner, oid, 'pg_proc'::regclass FROM pg_proc \
               UNION ALL SELECT 'type', typname::text, typowner, oid, 'pg_type'::regclass FROM pg_type \
               UNION ALL SELECT 'schema', nspname::text, nspowner, oid, 'pg_namespace'::regclass FROM pg_namespace \
               UNION ALL SELECT 'large object', oid::text, lomowner, oid, 'pg_largeobject_metadata'::regclass FROM pg_largeobject_metadata \
               UNION ALL SELECT 'database', datname::text, datdba, oid, 'pg_database'::regclass FROM pg_database WHERE datname = current_database() \
             ) x JOIN pg_roles r ON r.oid = x.o \
             WHERE r.rolsuper AND x.oid >= 16384 \
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = x.c AND d.objid = x.oid \
                 AND (d.deptype = 'e' OR (d.deptype IN ('i', 'a') AND EXISTS ( \
                   SELECT 1 FROM pg_depend e WHERE e.classid = d.refclassid AND e.objid = d.refobjid \
                   AND e.deptype = 'e'))))",
        )
        .trim()
        .to_owned()
}

#[test]
fn the_load_logs_in_as_a_role_that_is_no_superuser_and_leaves_no_password() {
    let setup = Setup::new();
    let c = &setup.cluster;
    c.sql("postgres", "ALTER SYSTEM SET log_statement = 'all'");
    c.sql(
        "postgres",
        "ALTER SYSTEM SET log_line_prefix = '%m [%p] @%u@%d@ '",
    );
    c.reload();
    support::wait_for("the server to log statements", || {
        c.sql("postgres", "SHOW log_line_prefix")
            .contains("@%u@%d@")
    });
    // Over TCP the server asks the load role for a SCRAM password; everyone else is trusted.
    c.prepend_hba("host all stg_load 127.0.0.1/32 scram-sha-256");
    let log_from = c.log().len();
    let out = setup.restore(&setup.stream(), &["--format", "json"]).ok();
    let s = out.summary();
    assert_eq!(s["load_role"], "stg_load", "{s}");
    assert!(
        s["warnings"]
            .to_string()
            .contains("created the load role stg_load"),
        "{s}"
    );
    assert_eq!(setup.cluster.table_contents("fas2"), setup.source);
    assert_eq!(role_password(&setup, "stg_load"), "<none>");
    assert_eq!(
        c.sql(
            "postgres",
            "SELECT rolsuper, rolcreaterole, rolbypassrls, rolreplication, rolcanlogin \
             FROM pg_roles WHERE rolname = 'stg_load'"
        )
        .trim(),
        "f|f|f|f|t"
    );
    let log = c.log()[log_from..].to_owned();
    // Every statement of the stream ran in the incoming database as the load role; the
    // restoring superuser worked there only for its own checks and the owner statements.
    let mut load = 0;
    let statements = log.lines().filter(|l| {
        l.contains("@fas2__stg_incoming@")
            && (l.contains(" LOG:  statement: ") || l.contains(" LOG:  execute "))
    });
    for line in statements {
        if line.contains("@stg_load@") {
            load += 1;
            continue;
        }
        // stg-restore's own reads (baseline, checks) and the owner statements are the
        // restoring user's; nothing else of the stream is.
        for stream_form in [
            "CREATE TABLE",
            "CREATE INDEX",
            "CREATE FUNCTION",
            "CREATE SEQUENCE",
            "CREATE VIEW",
            "COPY ",
            "ADD CONSTRAINT",
            "pg_catalog.setval",
            "pg_catalog.set_config",
            "GRANT SELECT",
        ] {
            assert!(
                !line.contains(stream_form),
                "a statement of the stream ran as someone else: {line}"
            );
        }
    }
    assert!(
        load > 10,
        "the load's statements are not the load role's:\n{log}"
    );
    assert!(
        log.contains("SCRAM-SHA-256$") || !log.contains("PASSWORD '"),
        "a plain password reached the server's log"
    );
    assert!(!log.contains("PASSWORD '0") && !log.contains("PASSWORD 'a"));
    // A second run reuses the role (no warning about creating it).
    let out = setup.restore(&setup.stream(), &["--format", "json"]).ok();
    assert!(!out.summary()["warnings"].to_string().contains("created"));
}

#[test]
fn a_load_role_that_could_act_as_a_superuser_is_refused_by_name() {
    let setup = Setup::new();
    let c = &setup.cluster;
    for (grant, says) in [
        ("ALTER ROLE stg_load SUPERUSER", "SUPERUSER"),
        ("ALTER ROLE stg_load CREATEROLE", "CREATEROLE"),
        ("ALTER ROLE stg_load BYPASSRLS", "BYPASSRLS"),
        ("ALTER ROLE stg_load REPLICATION", "REPLICATION"),
        (
            "GRANT pg_read_server_files TO stg_load",
            "server-files role",
        ),
        (
            "GRANT pg_execute_server_program TO stg_load",
            "server-files role",
        ),
        (
            "GRANT admin_group TO stg_load",
            "through membership in admin_group",
        ),
    ] {
        c.sql("postgres", "DROP ROLE IF EXISTS stg_load");
        c.sql("postgres", "DROP ROLE IF EXISTS admin_group");
        c.sql("postgres", "CREATE ROLE admin_group SUPERUSER NOLOGIN");
        c.sql("postgres", "CREATE ROLE stg_load LOGIN");
        c.sql("postgres", grant);
        let out = setup
            .restore(&setup.stream(), &["--format", "json"])
            .code_is(2);
        let s = out.summary();
        let error = s["error"].as_str().unwrap_or("");
        assert_eq!(s["failed_step"], "prepare", "{grant}: {s}");
        assert!(
            error.contains("the load role stg_load") && error.contains(says),
            "{grant}: {error}"
        );
        setup.assert_untouched();
    }
    // --owner may not name one either.
    c.sql("postgres", "DROP ROLE stg_load");
    let out = setup
        .restore(
            &setup.stream(),
            &["--owner", "admin_group", "--format", "json"],
        )
        .code_is(2);
    assert!(
        out.summary()["error"]
            .as_str()
            .unwrap_or("")
            .contains("--owner admin_group"),
        "{}",
        out.stdout
    );
    // Another name, and an owner for what the stream gives to a superuser.
    c.sql("postgres", "CREATE ROLE keeper NOLOGIN");
    c.script(
        "src",
        "CREATE FUNCTION public.by_superuser() RETURNS integer LANGUAGE sql AS $$ SELECT 1 $$;\n",
    );
    let out = setup
        .restore(
            &setup.stream(),
            &[
                "--load-role",
                "loader",
                "--owner",
                "keeper",
                "--format",
                "json",
            ],
        )
        .ok();
    let s = out.summary();
    assert_eq!(s["load_role"], "loader", "{s}");
    assert_eq!(
        c.sql(
            "fas2",
            "SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE proname = 'by_superuser'"
        )
        .trim(),
        "keeper"
    );
    assert_eq!(superuser_owned(&setup, "fas2"), "");
}

#[test]
fn a_server_that_will_not_let_the_load_role_in_is_named_with_the_line_to_add() {
    let setup = Setup::new();
    setup
        .cluster
        .prepend_hba("host all stg_load 127.0.0.1/32 reject");
    let out = setup
        .restore(&setup.stream(), &["--format", "json"])
        .code_is(3);
    let s = out.summary();
    let error = s["error"].as_str().unwrap_or("");
    assert_eq!(s["failed_step"], "load", "{s}");
    for part in [
        "the server refused the load role stg_load",
        "pg_hba.conf",
        "host    all   stg_load   127.0.0.1/32   scram-sha-256",
    ] {
        assert!(error.contains(part), "{part:?} not in: {error}");
    }
    setup.assert_untouched();
    assert_eq!(role_password(&setup, "stg_load"), "<none>");
}

#[test]
fn a_pagila_like_database_restores_whole_with_nothing_owned_by_a_superuser() {
    let setup = Setup::new();
    let c = &setup.cluster;
    c.sql("postgres", "CREATE ROLE pagila NOLOGIN");
    c.sql("postgres", "CREATE ROLE reporting NOLOGIN");
    c.sql("postgres", "CREATE DATABASE pagila_src OWNER pagila");
    let fixture = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/pagila-like.sql"),
    )
    .expect("read the pagila-like fixture");
    c.script("pagila_src", &fixture);
    let mut manifest = setup.manifest("pagila_src", "pagila");
    manifest.roles = vec!["pagila".into(), "reporting".into()];
    let plain = support::with_manifest_and_trailer(&manifest, &setup.pg_dump("pagila_src", &[]));
    let out = setup
        .restore(
            &support::Codec::Zstd.compress(&plain),
            &["--format", "json"],
        )
        .ok();
    let s = out.summary();
    assert!(s["owners_reassigned"].as_u64() >= Some(2), "{s}");
    assert_eq!(c.table_contents("pagila"), c.table_contents("pagila_src"));
    let schema = |db: &str| {
        String::from_utf8_lossy(&setup.pg_dump(db, &["--schema-only", "--no-owner"]))
            .lines()
            .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    // The same schema, but that the superuser's default privileges are the load role's.
    let superuser = c.sql("postgres", "SELECT current_user").trim().to_owned();
    assert_eq!(
        schema("pagila").replace("FOR ROLE stg_load", &format!("FOR ROLE {superuser}")),
        schema("pagila_src")
    );
    assert_eq!(superuser_owned(&setup, "pagila"), "");
    // Owners that were application roles are kept.
    assert_eq!(
        c.sql(
            "pagila",
            "SELECT string_agg(DISTINCT pg_get_userbyid(relowner), ' ') FROM pg_class \
             WHERE relnamespace = 'public'::regnamespace AND relname IN ('film', 'rental', 'payment')"
        )
        .trim(),
        "pagila"
    );
    // And FAS-like: the fixture's own database.
    setup.restore(&setup.stream(), &[]).ok();
    assert_eq!(superuser_owned(&setup, "fas2"), "");
}
