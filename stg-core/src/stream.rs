//! The dump stream between `stg-dump` and `stg-restore` (format in `docs/stream.md`).
//!
//! An `.xz` stream holding plain SQL as `pg_dump` writes it (without `-C`), masked, between
//! two SQL comment lines: a manifest first (what `stg-restore` needs to recreate the
//! database) and a trailer last (byte count and SHA-256 of everything before it, rows per
//! table). Both are comments, so `xzcat dump.xz | psql db` still works by hand.
//!
//! [`Tally`] is the one piece of code that computes what the trailer states; `stg-dump` feeds
//! it the lines it writes, `stg-restore` the lines it reads, so the two ends cannot count
//! differently. Compression is not here: each tool drives `liblzma` itself.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::copy_block::{Classifier, Line};

/// The stream format version this code writes and reads.
pub const FORMAT: u32 = 1;
/// The manifest line starts with this.
pub const MANIFEST_PREFIX: &str = "-- stg-dump manifest: ";
/// The trailer line starts with this.
pub const TRAILER_PREFIX: &str = "-- stg-dump trailer: ";

/// What `stg-restore` needs to recreate the database, and where the data came from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// Stream format version ([`FORMAT`]).
    pub format: u32,
    /// Source database name.
    pub database: String,
    /// Source server host as `stg-dump` connected to it (a socket directory means local).
    pub source_host: String,
    /// Host name of the machine `stg-dump` ran on.
    #[serde(default)]
    pub dumped_on: String,
    /// When the snapshot was taken (RFC 3339 UTC).
    pub dumped_at: String,
    /// Source server version (`server_version`).
    pub server_version: String,
    /// `pg_dump --version` of the dumping client.
    pub pg_dump_version: String,
    /// Database encoding (`UTF8`).
    pub encoding: String,
    /// `LC_COLLATE` of the source database.
    pub locale: String,
    /// `LC_CTYPE` of the source database.
    pub lc_ctype: String,
    /// Collation provider: `libc` or `icu`.
    pub locale_provider: String,
    /// ICU locale when the provider is `icu`.
    #[serde(default)]
    pub icu_locale: Option<String>,
    /// Owner of the source database.
    pub owner: String,
    /// Every role the dump references (owners, grantees); they must exist on the target.
    pub roles: Vec<String>,
    /// What masking was applied.
    pub masking: MaskingSummary,
    /// The tool that wrote the stream, e.g. `stg-dump 0.1.0`.
    pub tool: String,
}

/// The masking applied to a stream, as recorded in its manifest and the restored
/// database's provenance.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MaskingSummary {
    /// SHA-256 of the rules file, or `None` for an unmasked dump.
    pub rules_sha256: Option<String>,
    /// Masked columns.
    pub columns: Vec<MaskedColumn>,
    /// Tables whose data was left out (schema kept).
    #[serde(default)]
    pub excluded_tables: Vec<String>,
    /// What stg-dump did with foreign servers, user mappings, subscriptions
    /// (`strip` or `keep`), when the database had any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreign_connections: Option<String>,
    /// What the rules said about columns nothing decides: `refuse` (the default; the dump
    /// had none) or `keep` (copied as they are). `None` in unmasked dumps and in streams
    /// written before stg-dump decided every column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undecided: Option<String>,
    /// Every dumped table (excluded ones are in `excluded_tables`) with each of its
    /// columns and how it was decided; a partition or inheritance child with no columns of
    /// its own is decided by its parent and not listed. Empty in unmasked dumps and older
    /// streams.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<TableDecisions>,
    /// What a masked dump did with the database's large objects. `None` in unmasked dumps
    /// (every object as pg_dump wrote it) and in streams written before stg-dump decided
    /// large objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub large_objects: Option<LargeObjectsSummary>,
}

/// The large objects of a masked dump (`docs/masking.md`, "Large objects").
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LargeObjectsSummary {
    /// `keep` (objects written, except those a masked oid column points at) or `exclude`
    /// (no object's bytes written).
    pub decision: String,
    /// True when the rules file did not say, and the default (`exclude`) applied.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub by_default: bool,
    /// Large objects in the dump's snapshot of the database.
    pub objects: u64,
    /// How many of them were written without their bytes (created, empty).
    pub excluded: u64,
}

/// The columns of one dumped table and how each was decided.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableDecisions {
    /// `schema.table`.
    pub table: String,
    /// Column name -> decision: a transform name (`pseudonym`, `json`...), `keep`,
    /// `keep_table` (the whole table is kept), `generated` (computed on restore) or
    /// `undecided` (copied as it is under `"undecided": "keep"`).
    pub columns: BTreeMap<String, String>,
}

impl MaskingSummary {
    /// Counts of column decisions across the tables, e.g. `[("keep", 40), ("pseudonym", 3)]`.
    #[must_use]
    pub fn decision_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for table in &self.tables {
            for decision in table.columns.values() {
                *counts.entry(decision.clone()).or_insert(0) += 1;
            }
        }
        counts
    }
}

/// One masked column.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MaskedColumn {
    /// `schema.table`.
    pub table: String,
    /// Column name.
    pub column: String,
    /// Transform name (`constant`, `pseudonym`, `email`...).
    pub transform: String,
}

impl Manifest {
    /// A fixed, plausible manifest for tests and fuzz targets of any crate (database
    /// `fas2` on `db01`, unmasked); not for real streams.
    #[doc(hidden)]
    #[must_use]
    pub fn example() -> Manifest {
        Manifest {
            format: FORMAT,
            database: "fas2".into(),
            source_host: "db01".into(),
            dumped_on: "db01".into(),
            dumped_at: "2026-11-28T01:00:00Z".into(),
            server_version: "15.18".into(),
            pg_dump_version: "pg_dump (PostgreSQL) 15.18".into(),
            encoding: "UTF8".into(),
            locale: "C.UTF-8".into(),
            lc_ctype: "C.UTF-8".into(),
            locale_provider: "libc".into(),
            icu_locale: None,
            owner: "fas2".into(),
            roles: vec!["fas2".into()],
            masking: MaskingSummary::default(),
            tool: "stg-dump 0.1.0".into(),
        }
    }
}

/// What the stream's last line states.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Trailer {
    /// Bytes before the trailer line.
    pub bytes: u64,
    /// Lowercase hex SHA-256 of those bytes.
    pub sha256: String,
    /// Rows per table, keyed by the qualified name as in the COPY header.
    pub tables: BTreeMap<String, u64>,
}

/// The manifest as its stream line, newline included.
#[must_use]
pub fn manifest_line(manifest: &Manifest) -> String {
    format!(
        "{MANIFEST_PREFIX}{}\n",
        serde_json::to_string(manifest).expect("manifest serializes")
    )
}

/// The trailer as its stream line, newline included.
#[must_use]
pub fn trailer_line(trailer: &Trailer) -> String {
    format!(
        "{TRAILER_PREFIX}{}\n",
        serde_json::to_string(trailer).expect("trailer serializes")
    )
}

/// Parses a manifest line. `Ok(None)` when the line is not a manifest at all (a plain
/// `pg_dump` stream); `Err` when it claims to be one but is malformed or of another format.
pub fn parse_manifest_line(line: &[u8]) -> Result<Option<Manifest>, String> {
    let Some(json) = line.strip_prefix(MANIFEST_PREFIX.as_bytes()) else {
        return Ok(None);
    };
    let value: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("malformed stream manifest: {e}"))?;
    let format = value.get("format").and_then(serde_json::Value::as_u64);
    if format != Some(u64::from(FORMAT)) {
        return Err(format!(
            "stream format {} is not supported by this version (it reads format {FORMAT})",
            format.map_or_else(|| "(missing)".to_owned(), |f| f.to_string())
        ));
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| format!("malformed stream manifest: {e}"))
}

/// Parses a trailer line; `None` when the line is not a trailer.
pub fn parse_trailer_line(line: &[u8]) -> Option<Result<Trailer, String>> {
    let json = line.strip_prefix(TRAILER_PREFIX.as_bytes())?;
    Some(serde_json::from_slice(json).map_err(|e| format!("malformed stream trailer: {e}")))
}

/// Counts bytes, hashes them, and counts COPY rows per table, line by line.
///
/// Where blocks start and end is decided by [`Classifier`], the code stg-dump's rewriter
/// asks too: [`Tally::line`] classifies a line and counts it; a caller that has already
/// classified the line (stg-dump, which must know what it rewrites) hands the class to
/// [`Tally::counted`] instead, so no line is lexed twice.
#[derive(Default)]
pub struct Tally {
    hasher: Sha256,
    bytes: u64,
    in_copy: Option<String>,
    tables: BTreeMap<String, u64>,
    classifier: Classifier,
}

impl Tally {
    /// A fresh tally.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The SHA-256 (hex) of every byte fed so far: what a signature line at this point
    /// signs ([`crate::signed`]), with no second pass over the bytes.
    #[must_use]
    pub fn sha256_so_far(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }

    /// Feeds one line (with its newline, if it has one).
    pub fn line(&mut self, line: &[u8]) {
        let class = self.classifier.line(line);
        self.counted(line, &class);
    }

    /// Feeds bytes whose class the caller's own [`Classifier`] gave: one line, or for
    /// [`Line::Sql`] any number of whole top-level SQL lines (a statement rewritten as one
    /// piece). [`Tally::at_top_level`] follows only what [`Tally::line`] classified.
    pub fn counted(&mut self, bytes: &[u8], class: &Line) {
        self.hasher.update(bytes);
        self.bytes += bytes.len() as u64;
        match class {
            Line::Sql => {}
            Line::Header(header) => {
                self.tables.entry(header.qualified.clone()).or_insert(0);
                self.in_copy = Some(header.qualified.clone());
            }
            Line::Row => {
                if let Some(table) = &self.in_copy {
                    *self.tables.get_mut(table).expect("entry made at header") += 1;
                }
            }
            Line::End => self.in_copy = None,
        }
    }

    /// True while inside a COPY block: a trailer-looking line there is data, not a trailer.
    #[must_use]
    pub fn in_copy(&self) -> bool {
        self.in_copy.is_some()
    }

    /// True when the next line starts at the top level of the SQL: not in a COPY block, a
    /// string, a quoted name or a comment. Only there can a trailer-looking line be the
    /// trailer; elsewhere (a function body, say) it is data.
    #[must_use]
    pub fn at_top_level(&self) -> bool {
        self.in_copy.is_none() && self.classifier.at_top()
    }

    /// True when the next line starts between two tokens of the SQL (see
    /// [`crate::copy_block::Classifier::between_tokens`]): where a signature line may be.
    #[must_use]
    pub fn between_tokens(&self) -> bool {
        self.in_copy.is_none() && self.classifier.between_tokens()
    }

    /// Bytes fed so far.
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Rows per table so far.
    #[must_use]
    pub fn tables(&self) -> &BTreeMap<String, u64> {
        &self.tables
    }

    /// The trailer for everything fed.
    #[must_use]
    pub fn finish(self) -> Trailer {
        Trailer {
            bytes: self.bytes,
            sha256: hex::encode(self.hasher.finalize()),
            tables: self.tables,
        }
    }
}

/// Compares what a stream's trailer states with what was counted; returns every
/// disagreement, empty when they agree.
#[must_use]
pub fn trailer_mismatches(stated: &Trailer, counted: &Trailer) -> Vec<String> {
    let mut problems = Vec::new();
    if stated.bytes != counted.bytes {
        problems.push(format!(
            "byte count: trailer says {}, stream has {}",
            stated.bytes, counted.bytes
        ));
    }
    if stated.sha256 != counted.sha256 {
        problems.push(format!(
            "SHA-256: trailer says {}, stream hashes to {}",
            stated.sha256, counted.sha256
        ));
    }
    for (table, rows) in &stated.tables {
        match counted.tables.get(table) {
            Some(n) if n == rows => {}
            Some(n) => problems.push(format!(
                "table {table}: trailer says {rows} rows, stream has {n}"
            )),
            None => problems.push(format!(
                "table {table}: in the trailer but not in the stream"
            )),
        }
    }
    for table in counted.tables.keys() {
        if !stated.tables.contains_key(table) {
            problems.push(format!(
                "table {table}: in the stream but not in the trailer"
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_manifest() -> Manifest {
        Manifest::example()
    }

    #[test]
    fn manifest_round_trips_as_one_comment_line() {
        let line = manifest_line(&sample_manifest());
        assert!(line.starts_with("-- ") && line.ends_with('\n'));
        assert_eq!(line.matches('\n').count(), 1);
        let parsed = parse_manifest_line(line.trim_end().as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(parsed, sample_manifest());
        assert_eq!(
            parse_manifest_line(b"--\n-- PostgreSQL database dump").unwrap(),
            None
        );
    }

    #[test]
    fn future_format_is_refused() {
        let line = manifest_line(&sample_manifest()).replace("\"format\":1", "\"format\":2");
        assert!(parse_manifest_line(line.as_bytes())
            .unwrap_err()
            .contains("format 2"));
    }

    #[test]
    fn tally_counts_rows_per_table_and_ignores_lookalikes() {
        let mut tally = Tally::new();
        for line in [
            "SET x = 1;\n",
            "COPY public.people (id, name) FROM stdin;\n",
            "1\tann\n",
            "2\t-- stg-dump trailer: {}\n",
            "\\.\n",
            "COPY public.empty (id) FROM stdin;\n",
            "\\.\n",
        ] {
            tally.line(line.as_bytes());
        }
        assert!(!tally.in_copy());
        let trailer = tally.finish();
        assert_eq!(trailer.tables["public.people"], 2);
        assert_eq!(trailer.tables["public.empty"], 0);
        assert_eq!(trailer.sha256.len(), 64);
    }

    #[test]
    fn mismatches_are_listed() {
        let mut a = Trailer::default();
        a.tables.insert("public.t".into(), 3);
        let mut b = a.clone();
        b.tables.insert("public.t".into(), 2);
        b.bytes = 1;
        let problems = trailer_mismatches(&a, &b);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(trailer_mismatches(&a, &a).is_empty());
    }
}
