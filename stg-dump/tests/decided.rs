//! Every column decided (issue 17): undecided columns refused and named, drift caught by
//! `--check`, keep mistakes, `--mask-init`, json paths, unique columns, generated columns.
//! Against a real PostgreSQL cluster.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use stg_tests::run::{Run, RunExt};
use stg_tests::{cmd, pg};

const KEY: &str = "test-key-0123456789abcdef";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fas2-rules.json")
}

fn cluster_with(db: &str, sql: &str) -> pg::Cluster {
    let cluster = pg::Cluster::start();
    cluster.createdb(db);
    cluster.script(db, sql);
    cluster
}

fn cluster_with_fas2() -> pg::Cluster {
    let sql = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/fas2.sql"),
    )
    .unwrap();
    cluster_with("fas2", &sql)
}

fn dump(cluster: &pg::Cluster, args: &[&str]) -> Run {
    cmd::stg("stg-dump")
        .args(cluster.conn_args())
        .args(args)
        .env("STG_MASK_KEY", KEY)
        .stdin(Stdio::null())
        .run()
}

/// `--check` with these rules finds nothing.
fn check_passes(cluster: &pg::Cluster, rules: &str) {
    let _ = dump(
        cluster,
        &["--mask", rules, "--check", "--format", "json", "fas2"],
    )
    .ok();
}

/// The decompressed stream of a dump that must succeed.
fn dump_ok(cluster: &pg::Cluster, args: &[&str]) -> String {
    String::from_utf8(stg_tests::decompress(&dump(cluster, args).ok().bytes)).unwrap()
}

fn manifest(sql: &str) -> serde_json::Value {
    serde_json::from_str(
        sql.lines()
            .next()
            .unwrap()
            .strip_prefix("-- stg-dump manifest: ")
            .unwrap(),
    )
    .unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_new_column_is_caught_by_check_refused_by_the_dump_and_masked_once_ruled() {
    let cluster = cluster_with_fas2();
    let rules = fixture();
    let rules = rules.to_str().unwrap();
    // Every column decided: --check passes, the dump records each decision.
    check_passes(&cluster, rules);
    let sql = dump_ok(&cluster, &["--mask", rules, "fas2"]);
    let m = manifest(&sql);
    assert_eq!(m["masking"]["undecided"], "refuse");
    let people = m["masking"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.people")
        .unwrap();
    assert_eq!(people["columns"]["email"], "email");
    assert_eq!(people["columns"]["id"], "keep");
    assert_eq!(people["columns"].as_object().unwrap().len(), 9);

    // Production gains a column.
    cluster.sql(
        "fas2",
        "ALTER TABLE people ADD COLUMN recovery_email text;
         UPDATE people SET recovery_email = 'recovery-' || id || '@private.example'",
    );
    let check = dump(
        &cluster,
        &["--mask", rules, "--check", "--format", "json", "fas2"],
    );
    let check = check.code_is(1);
    let records = check.records();
    let undecided: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["type"] == "undecided")
        .collect();
    assert_eq!(undecided.len(), 1, "{records:?}");
    assert_eq!(undecided[0]["table"], "public.people");
    assert_eq!(undecided[0]["column"], "recovery_email");
    assert_eq!(undecided[0]["data_type"], "text");
    assert_eq!(undecided[0]["suggested_rule"]["transform"], "email");
    assert_eq!(records.last().unwrap()["undecided"], 1);

    let refused = dump(&cluster, &["--mask", rules, "fas2"]);
    let refused = refused.code_is(2);
    assert!(
        refused.bytes.is_empty(),
        "bytes written despite an undecided column"
    );
    assert!(
        refused
            .stderr
            .contains("public.people.recovery_email (text): suggested rule"),
        "{}",
        refused.stderr
    );

    // The column ruled: the stream holds none of its values.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture()).unwrap().replacen(
        "\"rules\": [",
        "\"rules\": [\n    {\"table\": \"people\", \"column\": \"recovery_email\", \"transform\": \"email\"},",
        1,
    );
    let with_rule = write(dir.path(), "rules.json", &text);
    let sql = dump_ok(&cluster, &["--mask", with_rule.to_str().unwrap(), "fas2"]);
    assert!(
        !sql.contains("@private.example"),
        "recovery addresses left production"
    );
    assert!(sql.contains("@example.invalid"));

    // The opt-out: an undecided column is copied, and the manifest says so.
    let text = std::fs::read_to_string(fixture()).unwrap().replacen(
        '{',
        "{\n  \"undecided\": \"keep\",",
        1,
    );
    let lax = write(dir.path(), "lax.json", &text);
    let sql = dump_ok(&cluster, &["--mask", lax.to_str().unwrap(), "fas2"]);
    let m = manifest(&sql);
    assert_eq!(m["masking"]["undecided"], "keep");
    assert!(
        m["masking"]["tables"]
            .to_string()
            .contains(r#""recovery_email":"undecided""#),
        "{m}"
    );
    assert!(sql.contains("@private.example"));
    // --check under the opt-out lists it as unmasked and sensitive-looking.
    let check = dump(
        &cluster,
        &[
            "--mask",
            lax.to_str().unwrap(),
            "--check",
            "--format",
            "json",
            "fas2",
        ],
    );
    let check = check.code_is(1);
    assert!(check
        .records()
        .iter()
        .any(|r| r["type"] == "unmasked_sensitive" && r["column"] == "recovery_email"));
}

#[test]
fn keep_mistakes_and_json_path_mistakes_are_named() {
    let cluster = cluster_with(
        "m",
        "CREATE TABLE people (id int PRIMARY KEY, email text UNIQUE, nick text, doc jsonb,
                              code text, tag text, UNIQUE (nick, tag));
         CREATE UNIQUE INDEX people_code_lower ON people (lower(code));
         INSERT INTO people VALUES (1, 'a@x.org', 'n', '{}', 'c', 't');",
    );
    let dir = tempfile::tempdir().unwrap();
    let refused = |name: &str, text: &str, wanted: &str| {
        let rules = write(dir.path(), name, text);
        let out = dump(&cluster, &["--mask", rules.to_str().unwrap(), "m"]);
        assert_eq!(out.code, 2, "{name}: {}", out.stderr);
        assert!(out.bytes.is_empty(), "{name}: bytes written");
        assert!(out.stderr.contains(wanted), "{name}: {}", out.stderr);
    };
    let keep_rest =
        r#""keep": [{"table": "people", "columns": ["id", "nick", "doc", "code", "tag"]}]"#;
    refused(
        "both.json",
        r#"{"rules": [{"table": "people", "column": "email", "transform": "null"}],
            "keep": [{"table": "people", "columns": ["id", "email"]}]}"#,
        "keep[0] (public.people): column email is kept here and masked by rules[0] (public.people.email); decide one",
    );
    refused(
        "missing.json",
        r#"{"keep": [{"table": "people", "columns": ["id", "emial"]}]}"#,
        "keep[0] (public.people): table public.people has no column emial (did you mean email?)",
    );
    refused(
        "table.json",
        r#"{"keep": [{"table": "peple", "all": true}]}"#,
        "no table public.peple in the database (did you mean people?)",
    );
    refused(
        "one-left.json",
        r#"{"keep": [{"table": "people", "columns": ["id", "nick", "doc", "code", "tag"]}]}"#,
        "1 undecided column(s)",
    );
    refused(
        "path.json",
        &format!(
            r#"{{"rules": [{{"table": "people", "column": "doc", "transform": "json", "paths": [{{"path": "$.a[x]", "transform": "null"}}]}}], {keep_rest}}}"#
        ),
        "paths[0]: malformed path \"$.a[x]\": expected [*], [N] or [\"name\"] at offset 3",
    );
    refused(
        "nonjson.json",
        r#"{"rules": [{"table": "people", "column": "email", "transform": "json", "paths": [{"path": "$.a", "transform": "null"}]}],
            "keep": [{"table": "people", "columns": ["id", "nick", "doc", "code", "tag"]}]}"#,
        "transform json rewrites values at paths inside json or jsonb documents, but the column's type is text",
    );
    // Many-to-one transforms on unique columns: a UNIQUE column, part of a multi-column
    // UNIQUE, inside a unique expression index.
    refused(
        "unique.json",
        r#"{"rules": [{"table": "people", "column": "email", "transform": "constant", "value": "x"}],
            "keep": [{"table": "people", "columns": ["id", "nick", "doc", "code", "tag"]}]}"#,
        "column is part of unique index people_email_key on public.people: transform constant",
    );
    refused(
        "multi.json",
        r#"{"rules": [{"table": "people", "column": "tag", "transform": "regex", "pattern": ".", "replacement": "x"}],
            "keep": [{"table": "people", "columns": ["id", "nick", "doc", "code", "email"]}]}"#,
        "column is part of unique index people_nick_tag_key",
    );
    refused(
        "expr.json",
        r#"{"rules": [{"table": "people", "column": "code", "transform": "replace", "from": "c", "to": "d"}],
            "keep": [{"table": "people", "columns": ["id", "nick", "doc", "tag", "email"]}]}"#,
        "column is part of unique index people_code_lower",
    );
    // null on a unique column is fine (NULLs are distinct), and so is a pseudonym.
    let ok = write(
        dir.path(),
        "ok.json",
        r#"{"rules": [{"table": "people", "column": "email", "transform": "null"},
                      {"table": "people", "column": "code", "transform": "pseudonym"}],
            "keep": [{"table": "people", "columns": ["id", "nick", "doc", "tag"]}]}"#,
    );
    let sql = dump_ok(&cluster, &["--mask", ok.to_str().unwrap(), "m"]);
    assert!(!sql.contains("a@x.org"));
}

#[test]
fn mask_init_writes_a_complete_file_that_masks_every_sensitive_column() {
    let cluster = cluster_with_fas2();
    cluster.sql(
        "fas2",
        "CREATE TABLE events (id int, at date NOT NULL, client_ip inet, details jsonb) PARTITION BY RANGE (id);
         CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM (0) TO (100);
         INSERT INTO events VALUES (1, '2024-01-01', '198.51.100.7', '{\"a\": 1}');
         CREATE TABLE staff (badge text, home_address text NOT NULL DEFAULT '') INHERITS (people);
         INSERT INTO staff (username, human_name, email, password, badge, home_address)
             VALUES ('staffer', 'Staff Person', 'staffer@private.example', 'pw-secret', 'B-1', 'secret street 1');
         CREATE TABLE phones (id int PRIMARY KEY, number text);
         CREATE TABLE contacts (id int, phone_id int REFERENCES phones (id), session_token text NOT NULL);
         INSERT INTO phones VALUES (1, '555-0101');
         INSERT INTO contacts VALUES (1, 1, 'tok-secret');",
    );
    let out = dump(&cluster, &["--mask-init", "fas2"]);
    let text = out.ok().stdout;
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    // Partitions and children follow their parent: only the child's own columns on it.
    assert!(!text.contains("events_1"), "{text}");
    assert!(
        text.contains(r#""table": "public.staff", "column": "home_address""#),
        "{text}"
    );
    assert!(
        text.contains(r#"{"table": "public.staff", "columns": ["badge"]}"#),
        "{text}"
    );
    // The foreign keys into people.username make it masked alike on both ends.
    let rule = |table: &str, column: &str| {
        file["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["table"] == table && r["column"] == column)
            .cloned()
    };
    assert_eq!(
        rule("public.people", "username").map(|r| r["transform"].clone()),
        rule("public.groups", "owner_username").map(|r| r["transform"].clone())
    );
    // A non-text foreign-key column holds a key, whatever its name: kept.
    assert!(
        text.contains(r#"{"table": "public.contacts", "columns": ["id", "phone_id"]}"#),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let rules = write(dir.path(), "init.json", &text);
    let rules = rules.to_str().unwrap();
    check_passes(&cluster, rules);
    let sql = dump_ok(&cluster, &["--mask", rules, "fas2"]);
    // Every column the sensitive-name check flags (without rules) is masked.
    let flagged = dump(&cluster, &["--check", "--format", "json", "fas2"]);
    let flagged: Vec<(String, String)> = flagged
        .records()
        .iter()
        .filter(|r| r["type"] == "unmasked_sensitive")
        .map(|r| {
            (
                r["table"].as_str().unwrap().to_owned(),
                r["column"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(flagged.len() >= 6, "{flagged:?}");
    let m = manifest(&sql);
    // A partition is decided by its parent and listed under it only.
    assert!(
        !m["masking"]["tables"].to_string().contains("events_1"),
        "{m}"
    );
    for (table, column) in &flagged {
        let listed = if table == "public.events_1" {
            "public.events"
        } else {
            table.as_str()
        };
        let decision = m["masking"]["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == listed)
            .map(|t| t["columns"][column.as_str()].clone());
        let decision = decision.unwrap_or_else(|| panic!("{table} not in {m}"));
        assert!(
            !matches!(
                decision.as_str(),
                Some("keep" | "keep_table" | "undecided") | None
            ),
            "{table}.{column}: {decision}"
        );
    }
    for secret in [
        "@fedoraproject.org",
        "staffer@private.example",
        "secret street",
        "198.51.100.7",
        "pw-secret",
    ] {
        assert!(!sql.contains(secret), "{secret} left production");
    }
}

#[test]
fn json_paths_mask_inside_documents_and_keep_the_rest_byte_for_byte() {
    let cluster = cluster_with(
        "j",
        r#"CREATE TABLE docs (id int PRIMARY KEY, name text, j jsonb, t json);
           INSERT INTO docs VALUES
             (1, 'alice', '{"name": "alice", "email": "alice@private.example", "contacts": [{"email": "c1@private.example", "note": "x"}, {"email": null}], "nested": {"email": "keep-nested@ok.example"}}',
                         '{"z": 1,  "email": "t1@private.example", "a": [1, 2]}'),
             (2, 'bob', '[1, "two", {"email": "not-top@ok.example"}]', '"just a string"'),
             (3, 'carol', '"scalar"', 'null'),
             (4, 'dave', 'null', NULL),
             (5, 'erin', NULL, '{"deep": [[[[[[{"email": "deep@ok.example"}]]]]]], "email": 42}'),
             (6, 'fred', '{"other": "tab\there \\ and \"quotes\" ünï"}', '{ "email" : "spaced@private.example" }');"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let rules = write(
        dir.path(),
        "rules.json",
        r#"{"rules": [
            {"table": "docs", "column": "name", "transform": "pseudonym", "prefix": "p_"},
            {"table": "docs", "column": "j", "transform": "json", "paths": [
                {"path": "$.name", "transform": "pseudonym", "prefix": "p_"},
                {"path": "$.email", "transform": "email", "domain": "stg.example"},
                {"path": "$.contacts[*].email", "transform": "constant", "value": "hidden"}
            ]},
            {"table": "docs", "column": "t", "transform": "json", "paths": [
                {"path": "$.email", "transform": "null"}
            ]}
        ], "keep": [{"table": "docs", "columns": ["id"]}]}"#,
    );
    let plain = dump_ok(
        &cluster,
        &[
            "--mask",
            write(
                dir.path(),
                "keep.json",
                r#"{"keep": [{"table": "docs", "all": true}]}"#,
            )
            .to_str()
            .unwrap(),
            "j",
        ],
    );
    let sql = dump_ok(&cluster, &["--mask", rules.to_str().unwrap(), "j"]);
    for secret in [
        "alice@private.example",
        "c1@private.example",
        "t1@private.example",
        "spaced@private.example",
        "alice",
    ] {
        assert!(!sql.contains(secret), "{secret} left production:\n{sql}");
    }
    let rows = |s: &str| -> Vec<String> {
        s.lines()
            .skip_while(|l| !l.starts_with("COPY public.docs"))
            .skip(1)
            .take_while(|l| *l != "\\.")
            .map(str::to_owned)
            .collect()
    };
    let (before, after) = (rows(&plain), rows(&sql));
    assert_eq!(before.len(), 6);
    // The same input gives the same pseudonym in a text column and at a jsonb path.
    let fields: Vec<&str> = after[0].split('\t').collect();
    assert!(
        fields[2].contains(&format!("\"name\": \"{}\"", fields[1])),
        "{}",
        after[0]
    );
    assert!(
        fields[2].contains(r#"[{"note": "x", "email": "hidden"}, {"email": null}]"#),
        "{}",
        after[0]
    );
    assert!(fields[2].contains("keep-nested@ok.example"), "{}", after[0]);
    // json keeps its own spelling; only the value changed.
    assert!(
        fields[3].starts_with(r#"{"z": 1,  "email": null, "a": [1, 2]}"#),
        "{}",
        after[0]
    );
    // Where no path reached a value the document is byte-for-byte pg_dump's.
    for i in 1..5 {
        let (b, a): (Vec<&str>, Vec<&str>) = (
            before[i].split('\t').collect(),
            after[i].split('\t').collect(),
        );
        assert_eq!(b[2], a[2], "row {i}");
        if i < 4 {
            assert_eq!(b[3], a[3], "row {i}");
        }
    }
    // A number at the path is masked too (deep keys of the same name are not).
    assert!(
        after[4].ends_with(r#"{"email": "deep@ok.example"}]]]]]], "email": null}"#),
        "{}",
        after[4]
    );
    let (b, a): (Vec<&str>, Vec<&str>) = (
        before[5].split('\t').collect(),
        after[5].split('\t').collect(),
    );
    assert_eq!(b[2], a[2]);
    assert_eq!(a[3], r#"{ "email" : null }"#);
    // The masked stream loads.
    let file = dir.path().join("j.zst");
    let out = dump(&cluster, &["--mask", rules.to_str().unwrap(), "j"]);
    std::fs::write(&file, &out.bytes).unwrap();
    cluster.createdb("j_copy");
    let body = String::from_utf8(stg_tests::decompress(&out.bytes)).unwrap();
    cluster.script("j_copy", &body);
    assert_eq!(
        cluster
            .sql(
                "j_copy",
                "SELECT count(*) FROM docs WHERE j ? 'email' OR j IS NULL"
            )
            .trim(),
        "2"
    );
}

#[test]
fn a_generated_column_derived_from_a_masked_one_carries_no_original_value() {
    let cluster = cluster_with(
        "g",
        "CREATE TABLE people (id int, email text,
                              email_lower text GENERATED ALWAYS AS (lower(email)) STORED);
         CREATE INDEX people_domain ON people (split_part(email, '@', 2));
         INSERT INTO people (id, email) VALUES (1, 'Secret.Person@Private.Example');",
    );
    let dir = tempfile::tempdir().unwrap();
    let rules = write(
        dir.path(),
        "rules.json",
        r#"{"rules": [{"table": "people", "column": "email", "transform": "email"}],
            "keep": [{"table": "people", "columns": ["id"]}]}"#,
    );
    let sql = dump_ok(&cluster, &["--mask", rules.to_str().unwrap(), "g"]);
    assert!(!sql.to_lowercase().contains("secret.person"), "{sql}");
    let m = manifest(&sql);
    assert!(
        m["masking"]["tables"]
            .to_string()
            .contains(r#""email_lower":"generated""#),
        "{m}"
    );
    cluster.createdb("g_copy");
    cluster.script("g_copy", &sql);
    let lower = cluster.sql(
        "g_copy",
        "SELECT email_lower = lower(email) AND email LIKE 'u%@example.invalid' FROM people",
    );
    assert_eq!(lower.trim(), "t");
}
