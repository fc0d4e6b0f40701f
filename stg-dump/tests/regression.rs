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
