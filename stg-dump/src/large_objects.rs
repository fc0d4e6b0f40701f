//! Large objects in a masked dump: which objects may keep their bytes, and the filter that
//! drops the bytes of the others from `pg_dump`'s output as it streams.
//!
//! A large object lives outside every table; a row holds only its oid. `pg_dump` writes
//! each object's metadata with the schema (`SELECT pg_catalog.lo_create('OID');`, its
//! owner, comment and grants) and its bytes after the table data, as its plain format
//! writes them (`pg_backup_null.c`; checked against pg_dump 15's output):
//!
//! ```text
//! BEGIN;
//! SELECT pg_catalog.lo_open('OID', 131072);
//! SELECT pg_catalog.lowrite(0, '\x<hex, 16 KiB per line>');
//! SELECT pg_catalog.lo_close(0);
//! COMMIT;
//! ```
//!
//! Masking a row's `oid` does nothing to the object it points at, so the rules decide
//! objects too (`"large_objects"`, [`crate::rules::LargeObjects`]; `docs/masking.md`). An
//! excluded object keeps its metadata, `lo_open` and `lo_close`, and loses only its
//! `lowrite` lines: it is restored empty, and no oid in a kept row dangles.
//!
//! The filter follows `pg_dump`'s exact text at the top level of the SQL (the lines the
//! shared [`stg_core::copy_block::Classifier`] says start there; COPY rows are data and never
//! looked at). A line that calls a large-object writing function in any other form stops a
//! masked dump: a filter that only knows one spelling must not pass another. Unmasked dumps
//! are not filtered. Not for the schema's checks of the rules ([`crate::schema`]).
//! See: <https://www.postgresql.org/docs/current/lo-funcs.html>.

use std::collections::HashSet;

use anyhow::Context;
use serde::Serialize;
use stg_core::sql_lexer::{Kind, SqlLexer};
use stg_core::stream::LargeObjectsSummary;
use tokio_postgres::Client;

use crate::rules::{quote_if_needed, LargeObjects, Rules, TableName};
use crate::schema::{Decision, Schema};

/// A column of a table with rows whose values can be large-object oids: `oid`, a domain
/// over it (contrib's `lo`), or an array of either.
#[derive(Clone, Debug)]
struct OidColumn {
    table: TableName,
    column: String,
    data_type: String,
    array: bool,
}

/// One oid column that points at large objects, as `--check` reports it.
#[derive(Clone, Debug, Serialize)]
pub struct ColumnReport {
    /// `schema.table`.
    pub table: String,
    /// Column name.
    pub column: String,
    /// The column's type.
    pub data_type: String,
    /// How many distinct large objects its values point at.
    pub objects: u64,
    /// How the column is decided (a transform's name, `keep`, `excluded_table`...).
    pub decision: &'static str,
    /// True when the column is masked or its table's data excluded: the objects it points
    /// at are dumped without their bytes, whatever `"large_objects"` says.
    pub masked: bool,
}

/// What a masked dump does with each large object, decided before the first byte.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The decision in effect (`exclude` when the rules do not say).
    pub decision: LargeObjects,
    /// True when the rules do not say and the default applies.
    pub by_default: bool,
    /// Large objects in the snapshot.
    pub objects: u64,
    /// Under `keep`: the objects a masked oid column (or one of an excluded table) points
    /// at. Unused under `exclude`, which excludes all.
    excluded: HashSet<u32>,
    /// The oid columns that point at objects (all of them under `--check`; for a dump,
    /// only those whose objects are excluded under `keep`).
    pub columns: Vec<ColumnReport>,
}

/// Quotes an identifier for SQL text, whatever it holds.
fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// True when the column's objects must lose their bytes: its table's data is excluded or a
/// rule masks it.
fn masks_objects(schema: &Schema, rules: &Rules, table: &TableName, column: &str) -> bool {
    schema.excluded(rules, table)
        || matches!(schema.decision(rules, table, column), Decision::Rule(_))
}

/// The types whose values are oids: `oid`, domains over it (at any depth), their array
/// types, and domains over those; `true` for the arrays.
const OID_COLUMNS_SQL: &str = "
    WITH RECURSIVE oidish(oid, arr) AS (
        SELECT 'pg_catalog.oid'::pg_catalog.regtype::pg_catalog.oid, false
      UNION
        SELECT p.oid, CASE WHEN p.typtype = 'd' THEN o.arr ELSE true END
        FROM oidish o
        JOIN pg_catalog.pg_type base ON base.oid = o.oid
        JOIN pg_catalog.pg_type p
          ON (p.typtype = 'd' AND p.typbasetype = o.oid) OR (NOT o.arr AND p.oid = base.typarray)
    )
    SELECT n.nspname, c.relname, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), o.arr
    FROM pg_catalog.pg_attribute a
    JOIN oidish o ON o.oid = a.atttypid
    JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind = 'r'
    ORDER BY 1, 2, a.attnum";

impl Plan {
    /// Reads the large objects of the snapshot `client` is in and decides each. With
    /// `report` (`--check`), every oid column is read, to list what points where; else only
    /// the columns whose objects `keep` excludes. Run it before anything that can abort
    /// the transaction.
    pub async fn read(
        client: &Client,
        schema: &Schema,
        rules: &Rules,
        report: bool,
    ) -> anyhow::Result<Plan> {
        let objects: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_catalog.pg_largeobject_metadata",
                &[],
            )
            .await
            .context("while counting the large objects")?
            .get(0);
        let mut plan = Plan {
            decision: rules.large_objects.unwrap_or(LargeObjects::Exclude),
            by_default: rules.large_objects.is_none(),
            objects: u64::try_from(objects).unwrap_or(0),
            excluded: HashSet::new(),
            columns: Vec::new(),
        };
        let needed = report || plan.decision == LargeObjects::Keep;
        if plan.objects == 0 || !needed {
            return Ok(plan);
        }
        let columns: Vec<OidColumn> = client
            .query(OID_COLUMNS_SQL, &[])
            .await
            .context("while listing the oid columns")?
            .iter()
            .map(|r| OidColumn {
                table: TableName {
                    schema: r.get(0),
                    table: r.get(1),
                },
                column: r.get(2),
                data_type: r.get(3),
                array: r.get(4),
            })
            .filter(|c| schema.tables.contains_key(&c.table))
            .collect();
        for c in columns {
            let masked = masks_objects(schema, rules, &c.table, &c.column);
            if !report && !masked {
                continue;
            }
            let from = format!(
                "ONLY {}.{} AS t",
                quote(&c.table.schema),
                quote(&c.table.table)
            );
            let sql = if c.array {
                format!(
                    "SELECT DISTINCT m.oid FROM {from} CROSS JOIN LATERAL pg_catalog.unnest(t.{}) AS u(v)
                     JOIN pg_catalog.pg_largeobject_metadata m ON m.oid = u.v",
                    quote(&c.column)
                )
            } else {
                format!(
                    "SELECT DISTINCT m.oid FROM {from}
                     JOIN pg_catalog.pg_largeobject_metadata m ON m.oid = t.{}",
                    quote(&c.column)
                )
            };
            let oids: Vec<u32> = client
                .query(&sql, &[])
                .await
                .with_context(|| {
                    format!(
                        "while reading which large objects {}.{} points at",
                        c.table,
                        quote_if_needed(&c.column)
                    )
                })?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if oids.is_empty() {
                continue;
            }
            let decision = if schema.excluded(rules, &c.table) {
                "excluded_table"
            } else {
                schema.decision(rules, &c.table, &c.column).name()
            };
            plan.columns.push(ColumnReport {
                table: c.table.to_string(),
                column: c.column.clone(),
                data_type: c.data_type.clone(),
                objects: oids.len() as u64,
                decision,
                masked,
            });
            if masked {
                plan.excluded.extend(oids);
            }
        }
        Ok(plan)
    }

    /// True when the object's bytes are left out.
    #[must_use]
    pub fn excludes(&self, oid: u32) -> bool {
        match self.decision {
            LargeObjects::Exclude => true,
            LargeObjects::Keep => self.excluded.contains(&oid),
        }
    }

    /// How many objects are dumped without their bytes.
    #[must_use]
    pub fn excluded_count(&self) -> u64 {
        match self.decision {
            LargeObjects::Exclude => self.objects,
            LargeObjects::Keep => self.excluded.len() as u64,
        }
    }

    /// What the manifest records.
    #[must_use]
    pub fn summary(&self) -> LargeObjectsSummary {
        LargeObjectsSummary {
            decision: self.decision.name().to_owned(),
            by_default: self.by_default,
            objects: self.objects,
            excluded: self.excluded_count(),
        }
    }

    /// A plan with these exclusions, for tests of the filter.
    #[doc(hidden)]
    #[must_use]
    pub fn fixed(decision: LargeObjects, objects: u64, excluded: &[u32]) -> Plan {
        Plan {
            decision,
            by_default: false,
            objects,
            excluded: excluded.iter().copied().collect(),
            columns: Vec::new(),
        }
    }
}

/// What to do with one line of SQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Write it.
    Write,
    /// Leave it out: bytes of an excluded object.
    Drop,
}

/// pg_dump's spelling of the lines it writes an object's bytes with in plain format
/// (`_StartLO`, `_WriteLOData` and `_EndLO` in `pg_backup_null.c`, the bytes through
/// `appendByteaLiteral`, at most 16 KiB a line; 131072 is `INV_WRITE`).
const LO_OPEN: &[u8] = b"SELECT pg_catalog.lo_open('";
const LO_OPEN_END: &[u8] = b"', 131072);\n";
const LOWRITE: &[u8] = b"SELECT pg_catalog.lowrite(0, '";
const LOWRITE_END: &[u8] = b"');\n";
const LO_CLOSE: &[u8] = b"SELECT pg_catalog.lo_close(0);\n";

/// The server functions that write a large object's bytes or open one for writing: a call
/// of any of them outside pg_dump's exact lines stops a masked dump.
const WRITERS: [&[u8]; 5] = [
    b"lowrite",
    b"lo_put",
    b"lo_from_bytea",
    b"lo_import",
    b"lo_open",
];

/// The oid of `SELECT pg_catalog.lo_open('OID', 131072);`, exactly as pg_dump writes it.
fn parse_lo_open(line: &[u8]) -> Option<u32> {
    let digits = line.strip_prefix(LO_OPEN)?.strip_suffix(LO_OPEN_END)?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// True for `SELECT pg_catalog.lowrite(0, '\x<hex>');` exactly as pg_dump writes it: lower
/// case hex, `'\\x` where the source has `standard_conforming_strings` off.
fn is_lowrite(line: &[u8]) -> bool {
    let Some(literal) = line
        .strip_prefix(LOWRITE)
        .and_then(|l| l.strip_suffix(LOWRITE_END))
    else {
        return false;
    };
    let Some(hex) = literal
        .strip_prefix(b"\\x")
        .or_else(|| literal.strip_prefix(b"\\\\x"))
    else {
        return false;
    };
    hex.len() % 2 == 0 && hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The first large-object writing function a statement of pg_dump's own calls: a line
/// that starts with `SELECT` (pg_dump starts its own statements at the start of a line; a
/// view's query, a column default or a function body that mentions one of these functions
/// is indented, inside another statement, or in a literal, and writes no object's bytes),
/// read by the one SQL lexer ([`stg_core::sql_lexer`]): a name, plain or double-quoted,
/// schema-qualified or not, followed by `(`. (Folding case as the server does: `LOWRITE(`
/// calls `lowrite`, `"LOWRITE"(` does not.)
fn called_writer(line: &[u8]) -> Option<&'static str> {
    if !line
        .get(..6)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"SELECT"))
    {
        return None;
    }
    let mut tokens = Vec::new();
    let mut lexer = SqlLexer::new();
    lexer.feed(line, true, &mut |t| tokens.push(t));
    lexer.finish(true, &mut |t| tokens.push(t));
    tokens.windows(2).find_map(|pair| {
        if pair[1].kind != Kind::Char(b'(') {
            return None;
        }
        let name: &[u8] = match &pair[0].kind {
            Kind::Word(w) => w.as_bytes(),
            Kind::Quoted { unicode: false } => pair[0].value.as_deref()?,
            _ => return None,
        };
        WRITERS
            .iter()
            .find(|w| **w == name)
            .map(|w| std::str::from_utf8(w).unwrap_or("lo"))
    })
}

/// The start of a line for a message: up to its first quote (so no object's bytes reach a
/// log), at most 60 characters, control characters escaped.
fn shown(line: &[u8]) -> String {
    let end = line
        .iter()
        .position(|b| *b == b'\'')
        .map_or(line.len(), |p| p + 1)
        .min(60);
    let text: String = String::from_utf8_lossy(&line[..end])
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect();
    if end < line.len() {
        format!("{text}...")
    } else {
        text
    }
}

/// Follows the large-object lines of a masked dump's SQL and says which to leave out.
pub struct Follower<'a> {
    plan: &'a Plan,
    /// The object open for writing, and whether its bytes are left out.
    open: Option<(u32, bool)>,
}

impl<'a> Follower<'a> {
    /// A follower before the first line.
    #[must_use]
    pub fn new(plan: &'a Plan) -> Self {
        Follower { plan, open: None }
    }

    fn unknown(line_no: u64, line: &[u8], what: &str) -> String {
        format!(
            "pg_dump's output line {line_no} ({}) {what}; stg-dump follows only pg_dump's own \
             large-object lines (lo_open, lowrite, lo_close) in a masked dump, and refuses \
             the dump rather than let a large object's bytes through unfiltered \
             (docs/masking.md, \"Large objects\")",
            shown(line)
        )
    }

    /// Reads one line of SQL (not a COPY row): `starts_top` when it starts at the top level
    /// of the SQL, `held` when it belongs to a statement the pipeline holds to rewrite.
    pub fn sql_line(
        &mut self,
        line: &[u8],
        line_no: u64,
        starts_top: bool,
        held: bool,
    ) -> Result<Verdict, String> {
        if let Some((oid, excluded)) = self.open {
            if starts_top && !held && is_lowrite(line) {
                return Ok(if excluded {
                    Verdict::Drop
                } else {
                    Verdict::Write
                });
            }
            if starts_top && !held && line == LO_CLOSE {
                self.open = None;
                return Ok(Verdict::Write);
            }
            if starts_top && !held && line.trim_ascii().is_empty() {
                return Ok(Verdict::Write);
            }
            return Err(Self::unknown(
                line_no,
                line,
                &format!(
                    "is not a lowrite or lo_close line of pg_dump's, inside large object {oid}"
                ),
            ));
        }
        if !starts_top {
            return Ok(Verdict::Write);
        }
        if !held && line.starts_with(&LO_OPEN[..LO_OPEN.len() - 1]) {
            let Some(oid) = parse_lo_open(line) else {
                return Err(Self::unknown(
                    line_no,
                    line,
                    "opens a large object in a form stg-dump cannot read",
                ));
            };
            self.open = Some((oid, self.plan.excludes(oid)));
            return Ok(Verdict::Write);
        }
        if let Some(name) = called_writer(line) {
            return Err(Self::unknown(
                line_no,
                line,
                &format!("calls {name} in a form that is not pg_dump's large-object data"),
            ));
        }
        Ok(Verdict::Write)
    }

    /// Refuses a COPY block or the end of the output inside a large object (`what` says
    /// which).
    pub fn outside(&self, what: &str) -> Result<(), String> {
        match self.open {
            Some((oid, _)) => Err(format!(
                "pg_dump's output has {what} inside large object {oid} (no lo_close): stg-dump \
                 cannot follow it and refuses the masked dump (docs/masking.md, \"Large objects\")"
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `text` line by line (every line at the top level, none held); returns the
    /// lines written, or the first error.
    fn follow(plan: &Plan, text: &str) -> Result<String, String> {
        let mut follower = Follower::new(plan);
        let mut out = String::new();
        for (i, line) in text.split_inclusive('\n').enumerate() {
            if follower.sql_line(line.as_bytes(), i as u64 + 1, true, false)? == Verdict::Write {
                out.push_str(line);
            }
        }
        follower.outside("the end")?;
        Ok(out)
    }

    const BLOBS: &str = "BEGIN;\n\
        SELECT pg_catalog.lo_open('16392', 131072);\n\
        SELECT pg_catalog.lowrite(0, '\\x5345435245542d6f6e65');\n\
        SELECT pg_catalog.lowrite(0, '\\x6f6e65');\n\
        SELECT pg_catalog.lo_close(0);\n\
        \n\
        SELECT pg_catalog.lo_open('777', 131072);\n\
        SELECT pg_catalog.lo_close(0);\n\
        \n\
        SELECT pg_catalog.lo_open('424242', 131072);\n\
        SELECT pg_catalog.lowrite(0, '\\\\x6b6570742d6279746573');\n\
        SELECT pg_catalog.lo_close(0);\n\
        \n\
        COMMIT;\n";

    #[test]
    fn pg_dumps_lines_are_followed_and_excluded_bytes_dropped() {
        let keep = Plan::fixed(LargeObjects::Keep, 3, &[16392]);
        let out = follow(&keep, BLOBS).unwrap();
        assert!(!out.contains("5345435245542d6f6e65") && !out.contains("'\\x6f6e65'"));
        assert!(out.contains("6b6570742d6279746573"), "{out}");
        assert!(out.contains("lo_open('16392', 131072)"), "{out}");
        assert_eq!(out.matches("lo_close(0)").count(), 3);
        let exclude = Plan::fixed(LargeObjects::Exclude, 3, &[]);
        let out = follow(&exclude, BLOBS).unwrap();
        assert!(!out.contains("lowrite"), "{out}");
        assert_eq!(out.matches("lo_open(").count(), 3);
        // Metadata and everything else pass.
        let meta = "SELECT pg_catalog.lo_create('16392');\nALTER LARGE OBJECT 16392 OWNER TO x;\n\
                    COMMENT ON LARGE OBJECT 16392 IS 'c';\nCREATE TABLE slowrite (lo_open int);\n";
        assert_eq!(follow(&exclude, meta).unwrap(), meta);
    }

    #[test]
    fn any_other_form_stops_the_dump() {
        let plan = Plan::fixed(LargeObjects::Keep, 1, &[]);
        for (text, says) in [
            // Not pg_dump's exact form: escape-string syntax, unqualified, upper-case hex.
            (
                "SELECT pg_catalog.lo_open('1', 131072);\nSELECT pg_catalog.lowrite(0, E'\\\\x41');\n",
                "inside large object 1",
            ),
            ("SELECT lowrite(0, '\\x41');\n", "calls lowrite"),
            (
                "SELECT pg_catalog.lo_open('1', 131072);\nSELECT pg_catalog.lowrite(0, '\\x4A');\n",
                "inside large object 1",
            ),
            // An lo_open that cannot be read, pg_dump's pre-1.12 archive style.
            (
                "SELECT pg_catalog.lo_open(pg_catalog.lo_create('1'), 131072);\n",
                "cannot read",
            ),
            ("SELECT pg_catalog.lo_open('x', 131072);\n", "cannot read"),
            ("SELECT pg_catalog.lo_open('99999999999', 131072);\n", "cannot read"),
            // Other writers, quoted names, other case.
            ("SELECT lo_from_bytea(0, '\\x41');\n", "calls lo_from_bytea"),
            ("SELECT pg_catalog.\"lo_put\" (1, 0, '\\x41');\n", "calls lo_put"),
            ("select LOWRITE(0, '\\x41');\n", "calls lowrite"),
            ("SELECT lo_import('/tmp/x');\n", "calls lo_import"),
            // Something else inside an object; the end before lo_close.
            ("SELECT pg_catalog.lo_open('1', 131072);\nSELECT 1;\n", "inside large object 1"),
            ("SELECT pg_catalog.lo_open('1', 131072);\n", "no lo_close"),
        ] {
            let err = follow(&plan, text).unwrap_err();
            assert!(err.contains(says), "{text:?}: {err}");
            assert!(!err.contains("41'"), "{text:?}: bytes in the message: {err}");
        }
        // A call inside a literal, a dollar-quoted body or a comment is no call.
        let fine = "COMMENT ON TABLE t IS 'SELECT lowrite(0, x)';\n\
                    CREATE FUNCTION f() RETURNS int AS $$SELECT lowrite(0, '\\x41')$$ LANGUAGE sql;\n\
                    -- lo_open('1', 131072)\n\
                    CREATE VIEW public.v AS\n SELECT lo_from_bytea((0)::oid, t.b) AS o\n   FROM public.t;\n\
                    CREATE TABLE public.lowrite (lo_open oid DEFAULT lo_import('/x'));\n";
        assert_eq!(follow(&plan, fine).unwrap(), fine);
    }

    #[test]
    fn lines_that_do_not_start_at_the_top_level_are_data_unless_an_object_is_open() {
        let plan = Plan::fixed(LargeObjects::Exclude, 1, &[]);
        let mut f = Follower::new(&plan);
        let line = b"SELECT lowrite(0, 'x');\n";
        assert_eq!(f.sql_line(line, 1, false, false), Ok(Verdict::Write));
        assert!(f.sql_line(line, 1, true, true).is_err());
        f.sql_line(b"SELECT pg_catalog.lo_open('1', 131072);\n", 2, true, false)
            .unwrap();
        assert!(f
            .sql_line(b"SELECT pg_catalog.lowrite(0, '\\x41');\n", 3, false, false)
            .is_err());
        assert!(f
            .outside("a COPY block")
            .unwrap_err()
            .contains("a COPY block"));
    }
}
