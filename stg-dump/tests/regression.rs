//! Regression tests for bugs found while fuzzing (`make fuzz`), named after what broke.

use std::process::Stdio;

use stg_tests::{cmd, pg};

// See: fuzz target `stream` (fuzz/fuzz_targets/stream.rs), whose generator had to keep
// newlines out of identifiers: pg_dump writes a quoted name as it is, so a table or column
// whose name holds a newline gets a COPY header spanning two lines. stg-dump did not see
// the COPY block and its rows went out unmasked, with a trailer that agreed.
#[test]
fn a_masked_table_whose_name_holds_a_newline_is_never_dumped_unmasked() {
    let cluster = pg::Cluster::start();
    cluster.createdb("nl");
    cluster.script(
        "nl",
        "CREATE TABLE \"people\nlist\" (id int PRIMARY KEY, secret text);
         INSERT INTO \"people\nlist\" VALUES (1, 'hunter2-secret'), (2, 'swordfish-secret');
         CREATE TABLE plain (id int, \"odd\ncolumn\" text, secret text);
         INSERT INTO plain VALUES (1, 'x', 'plain-secret');",
    );
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.json");
    std::fs::write(
        &rules,
        r#"{"rules": [
            {"table": "\"people\nlist\"", "column": "secret", "transform": "constant", "value": "MASKED"},
            {"table": "plain", "column": "secret", "transform": "constant", "value": "MASKED"}
        ]}"#,
    )
    .unwrap();
    let out = cmd::stg("stg-dump")
        .args(cluster.conn_args())
        .args(["--preset", "0", "--mask", rules.to_str().unwrap(), "nl"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("has a name with a newline"), "{stderr}");
    // Refused before the first byte: nothing, masked or not, was written.
    assert!(out.stdout.is_empty(), "{} bytes written", out.stdout.len());
}

// See: the `stream` fuzz target's generator, which keeps COPY-looking lines out of SQL:
// pg_dump writes function bodies and string literals as they are, so a line inside one can
// look exactly like a COPY header. stg-dump took it for one and treated every line up to
// the next `\.` as rows of that table: the first real COPY block went out unmasked.
#[test]
fn a_copy_header_inside_a_function_body_or_a_literal_does_not_unmask_the_next_block() {
    let cluster = pg::Cluster::start();
    cluster.createdb("lit");
    cluster.script(
        "lit",
        "CREATE TABLE aaa (id int, secret text);
         INSERT INTO aaa VALUES (1, 'hunter2-secret');
         CREATE TABLE zzz (id int);
         CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $body$ SELECT '
COPY public.zzz (id) FROM stdin;
'::text $body$;
         COMMENT ON TABLE zzz IS E'x\\nCOPY public.zzz (id) FROM stdin;\\ny';
         CREATE VIEW v AS SELECT 'a
COPY public.nosuch (id) FROM stdin;
b'::text AS t;",
    );
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.json");
    std::fs::write(
        &rules,
        r#"{"rules": [{"table": "aaa", "column": "secret", "transform": "constant", "value": "MASKED"}]}"#,
    )
    .unwrap();
    let out = cmd::stg("stg-dump")
        .args(cluster.conn_args())
        .args(["--preset", "0", "--mask", rules.to_str().unwrap(), "lit"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let mut sql = Vec::new();
    let _ = std::io::Read::read_to_end(
        &mut liblzma::read::XzDecoder::new(&out.stdout[..]),
        &mut sql,
    );
    let text = String::from_utf8_lossy(&sql);
    assert!(
        !text.contains("hunter2-secret"),
        "secret left unmasked:\n{text}"
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("1\tMASKED\n"), "{text}");
}

// See: issue "Hardening, round 2", item 1. pg_dump 15's --exclude-table-data does not
// cover the partitions of an excluded partitioned table (session tokens went out), and a
// rule on a parent's column did not reach an inheritance child (`staff INHERITS (people)`:
// staff's notes went out unmasked). Exclusions and rules now cover every descendant, and
// --check lists what each reached.
#[test]
fn exclusions_and_rules_reach_partitions_and_inheritance_children() {
    let cluster = pg::Cluster::start();
    cluster.createdb("kids");
    cluster.script(
        "kids",
        "CREATE TABLE sessions (id int, token text) PARTITION BY RANGE (id);
         CREATE TABLE sessions_a PARTITION OF sessions FOR VALUES FROM (0) TO (100)
             PARTITION BY RANGE (id);
         CREATE TABLE sessions_a1 PARTITION OF sessions_a FOR VALUES FROM (0) TO (50);
         CREATE TABLE sessions_b PARTITION OF sessions FOR VALUES FROM (100) TO (200);
         INSERT INTO sessions VALUES (1, 'token-one-secret'), (150, 'token-two-secret');
         CREATE TABLE people (id int, notes text);
         CREATE TABLE staff (badge text) INHERITS (people);
         CREATE TABLE contractors (agency text) INHERITS (staff);
         INSERT INTO people VALUES (1, 'people-notes-secret');
         INSERT INTO staff VALUES (2, 'staff-notes-secret', 'B-2');
         INSERT INTO contractors VALUES (3, 'contractor-notes-secret', 'B-3', 'ACME');",
    );
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.json");
    std::fs::write(
        &rules,
        r#"{"rules": [{"table": "people", "column": "notes", "transform": "constant", "value": "MASKED"}],
            "exclude_data": ["sessions"]}"#,
    )
    .unwrap();
    let dump = |extra: &[&str]| {
        cmd::stg("stg-dump")
            .args(cluster.conn_args())
            .args(["--preset", "0", "--mask", rules.to_str().unwrap()])
            .args(extra)
            .arg("kids")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = dump(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut sql = Vec::new();
    std::io::Read::read_to_end(
        &mut liblzma::read::XzDecoder::new(&out.stdout[..]),
        &mut sql,
    )
    .unwrap();
    let sql = String::from_utf8(sql).unwrap();
    for secret in [
        "token-one-secret",
        "token-two-secret",
        "people-notes-secret",
        "staff-notes-secret",
        "contractor-notes-secret",
    ] {
        assert!(!sql.contains(secret), "{secret} left production:\n{sql}");
    }
    // The rest of the children's rows is there, masked where the parent's rule says.
    assert!(sql.contains("2\tMASKED\tB-2"), "{sql}");
    assert!(sql.contains("3\tMASKED\tB-3\tACME"), "{sql}");
    let manifest: serde_json::Value = serde_json::from_str(
        sql.lines()
            .next()
            .unwrap()
            .strip_prefix("-- stg-dump manifest: ")
            .unwrap(),
    )
    .unwrap();
    let excluded = manifest["masking"]["excluded_tables"].to_string();
    for table in ["sessions_a1", "sessions_b"] {
        assert!(excluded.contains(table), "{excluded}");
    }
    assert!(
        manifest["masking"]["columns"]
            .to_string()
            .contains("contractors"),
        "{manifest}"
    );

    // --check says what each rule and exclusion reached.
    let out = dump(&["--check", "--format", "json"]);
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let applied = |rule: &str| -> Vec<String> {
        records
            .iter()
            .find(|r| r["type"] == "applied" && r["rule"].as_str().unwrap().contains(rule))
            .unwrap_or_else(|| panic!("no applied record for {rule}: {records:?}"))["tables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        applied("public.people.notes"),
        ["public.contractors", "public.people", "public.staff"]
    );
    assert_eq!(
        applied("exclude_data[0]"),
        [
            "public.sessions",
            "public.sessions_a",
            "public.sessions_a1",
            "public.sessions_b"
        ]
    );
}
