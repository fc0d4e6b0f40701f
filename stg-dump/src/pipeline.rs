//! The stream itself: `pg_dump`'s plain SQL in, masked and counted, manifest first and
//! trailer last, into the encoder (zstd or xz, [`crate::compress`]).
//!
//! This is the hot path: one pass over the bytes, line by line, no line held longer than
//! it takes to rewrite it, so memory is bounded by the largest row whatever the database
//! size. Rows of unmasked tables are copied as they are.

use std::io::{BufRead, Write};
use std::time::Instant;

use stg_core::copy_block::{Classifier, Line};
use stg_core::copy_text;
use stg_core::stream::{self, Tally, Trailer};

use crate::compress::Sink;
use crate::connections;
use crate::large_objects::{self, Follower, Verdict};
use crate::masking::{Pseudonymizer, Scratch, TablePlan};
use crate::rules::{Rules, TableName};
use crate::schema::{self, Schema};
use crate::signing::Signer;

/// Compressed bytes are handed to the encoder in batches of this size.
const BATCH: usize = 1 << 20;

/// What the masking needs while streaming.
pub struct Masking<'a> {
    /// The live schema.
    pub schema: &'a Schema,
    /// The rules.
    pub rules: &'a Rules,
    /// The keyed hash, when rules need one.
    pub keyed: Option<&'a Pseudonymizer>,
    /// `--foreign-connections strip`: cut the options of `CREATE SERVER` and `CREATE USER
    /// MAPPING` ([`crate::connections::strip_options`]).
    pub strip_connections: bool,
    /// In a masked dump, which large objects keep their bytes ([`crate::large_objects`]);
    /// `None` in an unmasked dump, whose large objects pass as pg_dump wrote them.
    pub large_objects: Option<&'a large_objects::Plan>,
}

/// Progress on stderr, about once a second, only when asked (stderr is a terminal).
pub struct Progress {
    enabled: bool,
    started: Instant,
    last: Instant,
}

impl Progress {
    /// Progress reporting, on or off.
    #[must_use]
    pub fn new(enabled: bool) -> Self {
        let now = Instant::now();
        Self {
            enabled,
            started: now,
            last: now,
        }
    }

    fn tick(&mut self, bytes: u64, compressed: u64, rows: u64) {
        if !self.enabled || self.last.elapsed().as_millis() < 1000 {
            return;
        }
        self.last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        eprint!(
            "\rstg-dump: {:.1} MiB read, {:.1} MiB compressed, {rows} rows, {:.1} MiB/s   ",
            bytes as f64 / 1_048_576.0,
            compressed as f64 / 1_048_576.0,
            bytes as f64 / 1_048_576.0 / secs
        );
    }

    /// Ends the progress line.
    pub fn done(&self) {
        if self.enabled {
            eprintln!();
        }
    }
}

/// Counts one output piece of the class the classifier gave and queues it for the encoder;
/// a signed stream's part takes it in too.
fn emit<W: Write>(
    bytes: &[u8],
    class: &Line,
    tally: &mut Tally,
    batch: &mut Vec<u8>,
    sink: &mut Sink<W>,
    signer: &mut Option<Signer>,
) -> std::io::Result<()> {
    if let Some(signer) = signer {
        signer.update(bytes);
    }
    tally.counted(bytes, class);
    batch.extend_from_slice(bytes);
    if batch.len() >= BATCH {
        sink.write_all(batch)?;
        batch.clear();
    }
    Ok(())
}

/// A top-level statement the pipeline holds (a few lines) before it writes it rewritten.
#[derive(Default)]
struct Held {
    /// What the statement is: statistics are written or dropped whole, a connection
    /// statement is written without its options.
    kind: Option<HeldKind>,
    text: Vec<u8>,
}

#[derive(Clone, Copy)]
enum HeldKind {
    Statistics,
    Connection,
}

/// Streams `input` (pg_dump's stdout) into `sink` with the manifest line first; returns the
/// trailer for everything written. The caller writes the trailer only after `pg_dump` has
/// exited successfully.
///
/// Each line is classified once ([`Classifier`], the code stg-restore's tally uses too):
/// rows of a masked table are rewritten, and the tally counts the class it was given.
///
/// With a [`Signer`], the stream is signed in parts ([`stg_core::signed`]): part 0 is the
/// manifest line; a part ends where it has reached the signer's size at the next line
/// boundary between two tokens of the SQL, or, inside a COPY block, after a row, by ending
/// the block and starting another of the same table after the signature line; the last
/// part ends before the trailer.
pub fn stream<R: BufRead, W: Write>(
    mut input: R,
    manifest_line: &str,
    masking: &Masking<'_>,
    sink: &mut Sink<W>,
    progress: &mut Progress,
    mut signer: Option<Signer>,
) -> anyhow::Result<Trailer> {
    let mut tally = Tally::new();
    let mut batch: Vec<u8> = Vec::with_capacity(BATCH + 64 * 1024);
    let mut line: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut row: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut scratch = Scratch::default();
    let mut classifier = Classifier::new();
    // The plan of the COPY block the rows belong to (`None`: copied as they are).
    let mut plan: Option<TablePlan> = None;
    let mut rows: u64 = 0;
    let mut block_row: u64 = 0;
    let mut held = Held::default();
    let mut objects = masking.large_objects.map(Follower::new);
    let mut line_no: u64 = 0;

    emit(
        manifest_line.as_bytes(),
        &Line::Sql,
        &mut tally,
        &mut batch,
        sink,
        &mut None,
    )?;
    if let Some(signer) = &mut signer {
        let line = signer.start(manifest_line.as_bytes())?;
        tally.counted(line.as_bytes(), &Line::Sql);
        batch.extend_from_slice(line.as_bytes());
    }
    // The current COPY block's header, to start it again after a signature line.
    let mut header_line: Option<(Vec<u8>, Line)> = None;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        line_no += 1;
        let starts_top = classifier.at_top();
        let class = classifier.line(&line);
        match &class {
            Line::Row => {
                rows += 1;
                block_row += 1;
                if let Some(plan) = &plan {
                    row.clear();
                    plan.rewrite_row(
                        copy_text::strip_newline(&line),
                        block_row,
                        masking.keyed,
                        &mut scratch,
                        &mut row,
                    )
                    .map_err(|e| anyhow::anyhow!(e))?;
                    emit(&row, &class, &mut tally, &mut batch, sink, &mut signer)?;
                } else {
                    emit(&line, &class, &mut tally, &mut batch, sink, &mut signer)?;
                }
                if rows % 4096 == 0 {
                    progress.tick(tally.bytes(), sink.bytes_out(), rows);
                }
            }
            Line::End => {
                plan = None;
                header_line = None;
                emit(&line, &class, &mut tally, &mut batch, sink, &mut signer)?;
            }
            Line::Header(header) => {
                if let Some(objects) = &objects {
                    objects
                        .outside("a COPY block")
                        .map_err(|e| anyhow::anyhow!(e))?;
                }
                // Never inside a held statement: that one is written as one piece of SQL.
                anyhow::ensure!(
                    held.kind.is_none(),
                    "pg_dump wrote a COPY header inside a statement stg-dump rewrites \
                     (statistics or connection options); refusing the dump"
                );
                // Fail closed: the data of excluded tables (and their partitions and
                // children) was left out of pg_dump's run; rows of one here mean the
                // exclusion did not work, and they must not leave.
                let table = TableName {
                    schema: header.schema.clone(),
                    table: header.table.clone(),
                };
                anyhow::ensure!(
                    !masking.schema.excluded(masking.rules, &table),
                    "pg_dump wrote rows of {table}, whose data the rules exclude \
                     (exclude_data names it or a parent of it); refusing the dump"
                );
                block_row = 0;
                plan = schema::plan_for(masking.schema, masking.rules, header);
                emit(&line, &class, &mut tally, &mut batch, sink, &mut signer)?;
                header_line = Some((line.clone(), class.clone()));
            }
            Line::Sql => {
                if let Some(objects) = &mut objects {
                    // Before anything else looks at the line: bytes of an excluded large
                    // object never reach the stream, whatever else the line might be.
                    let verdict = objects
                        .sql_line(&line, line_no, starts_top, held.kind.is_some())
                        .map_err(|e| anyhow::anyhow!(e))?;
                    if verdict == Verdict::Drop {
                        continue;
                    }
                }
                if held.kind.is_none() && starts_top {
                    if line.starts_with(ATTRIBUTE_STATS) {
                        // pg_dump 18 can write optimizer statistics: most common values
                        // and histograms are values of the column. The statement is held
                        // and written only for a column kept as it is.
                        held.kind = Some(HeldKind::Statistics);
                    } else if masking.strip_connections && connections::starts_strippable(&line) {
                        // A whole CREATE SERVER / USER MAPPING statement is held, then
                        // written without its options.
                        held.kind = Some(HeldKind::Connection);
                    }
                }
                // A line not held is written at once; either way a part may end after
                // it (below).
                if let Some(kind) = held.kind {
                    held.text.extend_from_slice(&line);
                    if classifier.at_top() && line.trim_ascii_end().ends_with(b";") {
                        match kind {
                            HeldKind::Statistics => {
                                if statistics_allowed(&held.text, masking.schema, masking.rules) {
                                    emit(
                                        &held.text,
                                        &class,
                                        &mut tally,
                                        &mut batch,
                                        sink,
                                        &mut signer,
                                    )?;
                                }
                            }
                            HeldKind::Connection => {
                                let stripped = connections::strip_options(&held.text);
                                emit(&stripped, &class, &mut tally, &mut batch, sink, &mut signer)?;
                            }
                        }
                        held = Held::default();
                    }
                } else {
                    emit(&line, &class, &mut tally, &mut batch, sink, &mut signer)?;
                }
            }
        }
        if signer.as_ref().is_some_and(Signer::due) {
            let at_boundary = classifier.between_tokens() && held.kind.is_none();
            let between_rows = classifier.in_copy() && block_row > 0;
            if at_boundary || between_rows {
                let split = if between_rows {
                    header_line.clone()
                } else {
                    None
                };
                if split.is_some() {
                    emit(
                        b"\\.\n",
                        &Line::End,
                        &mut tally,
                        &mut batch,
                        sink,
                        &mut signer,
                    )?;
                }
                let sig = signer
                    .as_mut()
                    .expect("due")
                    .sign(false, tally.sha256_so_far())?;
                tally.counted(sig.as_bytes(), &Line::Sql);
                batch.extend_from_slice(sig.as_bytes());
                if let Some((header, class)) = split {
                    emit(&header, &class, &mut tally, &mut batch, sink, &mut signer)?;
                }
            }
        }
    }
    anyhow::ensure!(
        !classifier.in_copy(),
        "pg_dump's output ended inside a COPY block: the dump is incomplete"
    );
    if let Some(objects) = &objects {
        objects.outside("its end").map_err(|e| anyhow::anyhow!(e))?;
    }
    // Had the lexer lost track (it never should on pg_dump's SQL), COPY headers after that
    // point would have gone unseen and unmasked: refuse rather than write a trailer.
    anyhow::ensure!(
        classifier.at_top(),
        "pg_dump's output ended inside a string literal, quoted name or comment: stg-dump \
         could not follow its SQL and refuses the dump rather than risk an unmasked table"
    );
    if !line.is_empty() && !line.ends_with(b"\n") {
        // Keep the trailer on a line of its own.
        emit(b"\n", &Line::Sql, &mut tally, &mut batch, sink, &mut signer)?;
    }
    if let Some(signer) = &mut signer {
        // The last part ends before the trailer; its signature says it is the last.
        let sig = signer.sign(true, tally.sha256_so_far())?;
        tally.counted(sig.as_bytes(), &Line::Sql);
        batch.extend_from_slice(sig.as_bytes());
    }
    sink.write_all(&batch)?;
    progress.tick(tally.bytes(), sink.bytes_out(), rows);
    Ok(tally.finish())
}

/// How pg_dump 18 starts the statement restoring one column's statistics.
const ATTRIBUTE_STATS: &[u8] = b"SELECT * FROM pg_catalog.pg_restore_attribute_stats(";

/// The string literals of a statement, in order (`''` unescaped).
fn literals(statement: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(start) = statement[i..]
        .iter()
        .position(|b| *b == b'\'')
        .map(|p| p + i)
    {
        let mut value = Vec::new();
        let mut j = start + 1;
        loop {
            match statement.get(j) {
                None => return out,
                Some(b'\'') if statement.get(j + 1) == Some(&b'\'') => {
                    value.push(b'\'');
                    j += 2;
                }
                Some(b'\'') => break,
                Some(b) => {
                    value.push(*b);
                    j += 1;
                }
            }
        }
        out.push(String::from_utf8_lossy(&value).into_owned());
        i = j + 1;
    }
    out
}

/// True when a `pg_restore_attribute_stats` statement may go into the stream: its table's
/// data is dumped and its column is kept as it is (by a keep, or undecided under
/// `"undecided": "keep"`). Statistics of a masked column (or a generated column derived
/// from columns that may be masked), of an excluded table, of an index expression, or of
/// anything the statement does not name plainly are left out: their most common values
/// and histograms are the column's production values.
#[must_use]
pub fn statistics_allowed(statement: &[u8], schema: &Schema, rules: &Rules) -> bool {
    let lits = literals(statement);
    let arg = |key: &str| {
        lits.chunks(2)
            .find(|pair| pair[0] == key && pair.len() == 2)
            .map(|pair| pair[1].clone())
    };
    let table = match (arg("schemaname"), arg("relname"), arg("relation")) {
        (Some(schema), Some(table), _) => TableName { schema, table },
        (_, _, Some(relation)) => match TableName::parse(&relation) {
            Ok(t) => t,
            Err(_) => return false,
        },
        _ => return false,
    };
    let Some(column) = arg("attname") else {
        return false;
    };
    if !schema.tables.contains_key(&table) || schema.excluded(rules, &table) {
        return false;
    }
    matches!(
        schema.decision(rules, &table, &column),
        schema::Decision::Keep(_) | schema::Decision::Undecided
    )
}

/// Writes the trailer line and ends the `.xz` stream.
pub fn finish<W: Write>(mut sink: Sink<W>, trailer: &Trailer) -> std::io::Result<u64> {
    sink.write_all(stream::trailer_line(trailer).as_bytes())?;
    Ok(sink.finish()?.1)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::compress::{Compression, Sink};
    use crate::schema::Column;

    fn column(name: &str) -> Column {
        Column {
            name: name.into(),
            data_type: "text".into(),
            category: "S".into(),
            not_null: false,
            max_chars: None,
            generated: false,
        }
    }

    fn fixture() -> (Schema, Rules) {
        let t = |name: &str| TableName {
            schema: "public".into(),
            table: name.into(),
        };
        let mut tables = BTreeMap::new();
        tables.insert(
            t("people"),
            vec![column("id"), column("email"), column("locale")],
        );
        tables.insert(t("sessions"), vec![column("token")]);
        let schema = Schema {
            tables,
            ancestors: BTreeMap::new(),
            foreign_keys: Vec::new(),
            unique: BTreeMap::new(),
        };
        let rules = Rules::parse(
            br#"{"rules": [{"table": "people", "column": "email", "transform": "null"}],
                 "keep": [{"table": "people", "columns": ["id", "locale"]}],
                 "exclude_data": ["sessions"]}"#,
            "t.json",
        )
        .unwrap();
        (schema, rules)
    }

    /// A statement as PostgreSQL 18's pg_dump writes it.
    fn stats(table: &str, column_arg: &str) -> String {
        format!(
            "SELECT * FROM pg_catalog.pg_restore_attribute_stats(\n\t'version', '180000'::integer,\n\t\
             'schemaname', 'public',\n\t'relname', '{table}',\n\t{column_arg},\n\t'inherited', 'f'::boolean,\n\t\
             'null_frac', '0'::real,\n\t'most_common_vals', '{{secret-{table}@example.org,o''brien}}'::text\n);\n"
        )
    }

    #[test]
    fn statistics_of_masked_columns_never_pass() {
        let (schema, rules) = fixture();
        let allowed = |s: &str| statistics_allowed(s.as_bytes(), &schema, &rules);
        assert!(allowed(&stats("people", "'attname', 'locale'")));
        assert!(!allowed(&stats("people", "'attname', 'email'")));
        // Excluded table, index expression (attnum), unknown relation.
        assert!(!allowed(&stats("sessions", "'attname', 'token'")));
        assert!(!allowed(&stats("people", "'attnum', '1'::smallint")));
        assert!(!allowed(&stats("people_email_idx", "'attname', 'expr'")));
        // The older spelling with a regclass.
        let old = "SELECT * FROM pg_catalog.pg_restore_attribute_stats(\n\t'relation', 'public.people'::regclass,\n\t'attname', 'email', 'most_common_vals', '{a}'::text);\n";
        assert!(!allowed(old));
        assert!(allowed(&old.replace("'email'", "'locale'")));
        assert_eq!(
            literals(b"f('a''b', 'c')"),
            vec!["a'b".to_owned(), "c".to_owned()]
        );
    }

    /// A signed run of `input` in parts of `part_size`: the stream as text.
    fn signed(input: &str, part_size: u64) -> String {
        use ssh_key::private::{Ed25519Keypair, KeypairData};
        let dir = tempfile::tempdir().unwrap();
        let key = ssh_key::PrivateKey::new(
            KeypairData::from(Ed25519Keypair::from_seed(&[9; 32])),
            "test",
        )
        .unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, key.to_openssh(ssh_key::LineEnding::LF).unwrap()).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let (schema, rules) = fixture();
        let masking = Masking {
            schema: &schema,
            rules: &rules,
            keyed: None,
            strip_connections: false,
            large_objects: None,
        };
        let mut sink = Sink::new(Vec::new(), Compression::default(), 1).unwrap();
        let signer = Signer::open(&path, part_size).unwrap();
        stream(
            input.as_bytes(),
            "-- manifest\n",
            &masking,
            &mut sink,
            &mut Progress::new(false),
            Some(signer),
        )
        .unwrap();
        let (out, _) = sink.finish().unwrap();
        String::from_utf8(zstd::decode_all(&out[..]).unwrap()).unwrap()
    }

    #[test]
    fn parts_end_after_plain_sql_too() {
        // Found by the signed_stream fuzz target's author: a part ended only after a COPY
        // row or a held statement, so a schema of more than --max-line-size before the
        // first row was one part, refused by stg-restore (and held whole until checked).
        let schema = (0..200)
            .map(|i| format!("CREATE TABLE public.t{i} (\n    a integer\n);\n"))
            .collect::<Vec<_>>()
            .concat();
        let text = signed(&schema, 1024);
        let signatures: Vec<usize> = text
            .match_indices(stg_core::signed::SIGNATURE_PREFIX)
            .map(|(at, _)| at)
            .collect();
        // Part 0 (the manifest), parts of about 1 KiB, the final signature.
        assert!(
            signatures.len() > schema.len() / 1024,
            "{}",
            signatures.len()
        );
        for pair in signatures.windows(2) {
            // The part: after one signature line, up to the next.
            let from = pair[0] + text[pair[0]..].find('\n').unwrap() + 1;
            let part = &text[from..pair[1]];
            assert!(part.len() < 1024 + 64, "a part of {} bytes", part.len());
            // Whole lines, between tokens (inside a statement is allowed: the reader
            // holds a part's statements until its signature is checked).
            assert!(part.ends_with('\n'), "{part:?}");
        }
    }

    /// Runs the pipeline over `input` with the fixture's rules.
    fn run(input: &str) -> anyhow::Result<(Trailer, String)> {
        run_with(input, None)
    }

    /// Runs the pipeline over `input` with the fixture's rules and this large-object plan.
    fn run_with(
        input: &str,
        large_objects: Option<&large_objects::Plan>,
    ) -> anyhow::Result<(Trailer, String)> {
        let (schema, rules) = fixture();
        let masking = Masking {
            schema: &schema,
            rules: &rules,
            keyed: None,
            strip_connections: false,
            large_objects,
        };
        let mut sink = Sink::new(Vec::new(), Compression::default(), 1).unwrap();
        let trailer = stream(
            input.as_bytes(),
            "-- manifest\n",
            &masking,
            &mut sink,
            &mut Progress::new(false),
            None,
        )?;
        let (out, _) = sink.finish().unwrap();
        let text = String::from_utf8(zstd::decode_all(&out[..]).unwrap()).unwrap();
        Ok((trailer, text))
    }

    #[test]
    fn a_copy_header_inside_a_held_statement_refuses_the_dump() {
        // pg_dump never writes this; were it to, the statement is written as one piece of
        // SQL while a reader would take the line for a header: refused, not guessed at.
        let input = "SELECT * FROM pg_catalog.pg_restore_attribute_stats(\n\
                     COPY public.people (id, email, locale) FROM stdin;\n\
                     1\tsecret@example.org\ten\n\\.\n);\n";
        let err = run(input).unwrap_err().to_string();
        assert!(err.contains("COPY header inside a statement"), "{err}");
        // The same header at the top level is a block, masked and counted.
        let (trailer, text) = run(
            "COPY public.people (id, email, locale) FROM stdin;\n1\tsecret@example.org\ten\n\\.\n",
        )
        .unwrap();
        assert!(text.contains("1\t\\N\ten\n"), "{text}");
        assert_eq!(trailer.tables["public.people"], 1);
    }

    #[test]
    fn the_stream_drops_statistics_of_masked_columns() {
        let input = format!(
            "SET x = 1;\nCOPY public.people (id, email, locale) FROM stdin;\n1\tsecret-people@example.org\ten\n\\.\n\n{}{}SELECT * FROM pg_catalog.pg_restore_relation_stats(\n\t'version', '180000'::integer,\n\t'relpages', '1'::integer\n);\n",
            stats("people", "'attname', 'email'"),
            stats("people", "'attname', 'locale'").replace("secret-people@example.org", "en_US")
        );
        let (trailer, text) = run(&input).unwrap();
        assert!(!text.contains("secret-people@example.org"), "{text}");
        assert!(text.contains("'attname', 'locale'"), "{text}");
        assert!(text.contains("pg_restore_relation_stats"), "{text}");
        assert!(text.contains("1\t\\N\ten\n"), "{text}");
        assert_eq!(trailer.bytes, text.len() as u64);
    }

    #[test]
    fn bytes_of_excluded_large_objects_are_neither_written_nor_counted() {
        use crate::rules::LargeObjects;
        let input = "SELECT pg_catalog.lo_create('7');\nSELECT pg_catalog.lo_create('8');\n\
                     COPY public.people (id, email, locale) FROM stdin;\n\
                     SELECT pg_catalog.lo_open('9', 131072);\ta@example.org\ten\n\\.\n\
                     BEGIN;\nSELECT pg_catalog.lo_open('7', 131072);\n\
                     SELECT pg_catalog.lowrite(0, '\\x7365637265742d37');\n\
                     SELECT pg_catalog.lo_close(0);\n\n\
                     SELECT pg_catalog.lo_open('8', 131072);\n\
                     SELECT pg_catalog.lowrite(0, '\\x6b6570742d38');\n\
                     SELECT pg_catalog.lo_close(0);\n\nCOMMIT;\n";
        let plan = large_objects::Plan::fixed(LargeObjects::Keep, 2, &[7]);
        let (trailer, text) = run_with(input, Some(&plan)).unwrap();
        assert!(!text.contains("7365637265742d37"), "{text}");
        assert!(text.contains("6b6570742d38"), "{text}");
        assert!(text
            .contains("SELECT pg_catalog.lo_open('7', 131072);\nSELECT pg_catalog.lo_close(0);\n"));
        // A row is data, never taken for a large object's line (this one would have opened
        // object 9); the trailer counts what was written.
        assert_eq!(trailer.tables["public.people"], 1);
        assert_eq!(trailer.bytes, text.len() as u64);
        // Unmasked, everything passes as it came.
        let (_, text) = run_with(input, None).unwrap();
        assert!(text.contains("7365637265742d37"), "{text}");
        // A COPY block inside an object, or the end before its lo_close, stops the dump.
        let open = "SELECT pg_catalog.lo_open('7', 131072);\n";
        let err = run_with(
            &format!("{open}COPY public.people (id, email, locale) FROM stdin;\n\\.\n"),
            Some(&plan),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("a COPY block inside large object 7"),
            "{err}"
        );
        let err = run_with(open, Some(&plan)).unwrap_err();
        assert!(
            err.to_string().contains("its end inside large object 7"),
            "{err}"
        );
    }
}
