//! The dump stream (`stg_core::stream`: manifest, trailer, `Tally`) and its xz framing.
//!
//! A valid stream is built the way stg-dump builds it (manifest line, SQL and COPY blocks,
//! a trailer computed by `Tally`), then read by a model of stg-restore's reader that follows
//! the reading rules of docs/stream.md with the same stg-core functions.
//!
//! Properties:
//! - `stg_core::copy_block::Classifier` (what stg-dump's rewriter and both tallies ask)
//!   classifies every written line as what it was written as: SQL, a COPY header, a row, the
//!   end of a block; stg-dump's side counts the class it was given (`Tally::counted`), the
//!   reader's side classifies again (`Tally::line`), and the two agree;
//! - the whole stream is accepted, with the row counts that were written, also when a
//!   function body holds lines that look like COPY headers;
//! - every truncation (cut at any byte offset before the end) is refused — all offsets for
//!   small streams, a fuzzer-chosen sample for larger ones. The one exception is a cut of
//!   only the final newline: every byte of data and the whole trailer are still there, and
//!   stg-restore accepts it (as serde_json does trailing whitespace);
//! - flipping any bit before the trailer is refused (checksum);
//! - the stream compressed with liblzma (`.xz`, CRC64, as `stg-dump --compress xz` writes
//!   it) and with zstd (with its frame checksum, as stg-dump writes it by default): every
//!   truncation of the compressed bytes, and a fuzzer-chosen bit flip, fails to decode or
//!   decodes to a stream that is refused;
//! - parsing arbitrary bytes as a manifest or a trailer line never panics, and what parses
//!   writes back to a line that parses to the same value.

#![no_main]

use std::io::Read;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use stg_core::copy_block::{Classifier, Line};
use stg_core::copy_text::escape_into;
use stg_core::stream::{
    manifest_line, parse_manifest_line, parse_trailer_line, trailer_line, trailer_mismatches,
    Manifest, Tally, TRAILER_PREFIX,
};

#[derive(Arbitrary, Debug)]
enum Piece {
    /// A line of SQL (made safe: never a COPY header or a trailer-looking line).
    Sql(String),
    /// Lines inside a dollar-quoted function body, where anything may look like a COPY
    /// header (but is not one).
    Body(Vec<(bool, String)>),
    /// A COPY block.
    Copy {
        schema: String,
        table: String,
        columns: Vec<String>,
        rows: Vec<Vec<Option<Vec<u8>>>>,
    },
}

/// What a line was written as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Written {
    Sql,
    Header,
    Row,
    End,
}

#[derive(Arbitrary, Debug)]
struct Input {
    database: String,
    pieces: Vec<Piece>,
    /// Offsets (taken modulo the length) to cut or flip at, for large streams.
    offsets: Vec<u32>,
    /// Offset and bit of the flip in the compressed stream.
    xz_flip: (u32, u8),
    /// Also run the (slower) xz checks.
    xz: bool,
    /// Bytes to parse as a manifest and as a trailer line.
    junk: Vec<u8>,
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn manifest(database: &str) -> Manifest {
    Manifest {
        database: database.to_owned(),
        tool: "stg-dump fuzz".into(),
        ..Manifest::example()
    }
}

/// Builds a stream as stg-dump does; returns it and the rows written per table.
fn build(input: &Input) -> (Vec<u8>, std::collections::BTreeMap<String, u64>) {
    let mut lines: Vec<(Vec<u8>, Written)> = vec![(
        manifest_line(&manifest(&input.database)).into_bytes(),
        Written::Sql,
    )];
    let mut rows_written = std::collections::BTreeMap::new();
    for piece in &input.pieces {
        match piece {
            Piece::Sql(text) => {
                // pg_dump's SQL is well formed: no line leaves a literal, quoted name or
                // comment open at the top level.
                let text = text.replace(['\n', '\r', '\'', '"', '$', '*'], " ");
                // pg_dump writes neither of these outside COPY data (see docs/security.md
                // for what a multi-line string literal could do).
                if text.starts_with("COPY ") || text.starts_with("-- stg-dump") {
                    continue;
                }
                lines.push((format!("{text}\n").into_bytes(), Written::Sql));
            }
            Piece::Body(body) => {
                lines.push((
                    b"CREATE FUNCTION f() RETURNS text AS $fz$\n".to_vec(),
                    Written::Sql,
                ));
                for (looks_like_copy, text) in body {
                    let text = text.replace(['\n', '\r'], " ").replace('$', "S");
                    let text = if *looks_like_copy {
                        format!("COPY public.{} (a) FROM stdin;", quote(&text))
                    } else {
                        text
                    };
                    // stg-restore takes a trailer-looking line outside COPY for the trailer
                    // wherever it is (a valid stream is then refused; docs/security.md).
                    if !text.starts_with("-- stg-dump") {
                        lines.push((format!("{text}\n").into_bytes(), Written::Sql));
                    }
                }
                lines.push((b"$fz$ LANGUAGE sql;\n".to_vec(), Written::Sql));
            }
            Piece::Copy {
                schema,
                table,
                columns,
                rows,
            } => {
                // A newline inside an identifier would split the header line; see
                // docs/security.md for what stg-dump does with such a table.
                let one_line = |s: &str| s.replace(['\n', '\r'], " ");
                let qualified = format!("{}.{}", quote(&one_line(schema)), quote(&one_line(table)));
                let cols: Vec<String> = columns.iter().map(|c| quote(&one_line(c))).collect();
                let header = if cols.is_empty() {
                    format!("COPY {qualified} FROM stdin;\n")
                } else {
                    format!("COPY {qualified} ({}) FROM stdin;\n", cols.join(", "))
                };
                lines.push((header.into_bytes(), Written::Header));
                let width = columns.len().max(1);
                for row in rows {
                    let mut line = Vec::new();
                    for i in 0..width {
                        if i > 0 {
                            line.push(b'\t');
                        }
                        escape_into(row.get(i).and_then(Option::as_deref), &mut line);
                    }
                    line.push(b'\n');
                    lines.push((line, Written::Row));
                }
                *rows_written.entry(qualified).or_insert(0) += rows.len() as u64;
                lines.push((b"\\.\n".to_vec(), Written::End));
            }
        }
    }
    // As stg-dump does: each line classified once, the class handed to the tally.
    let mut classifier = Classifier::new();
    let mut tally = Tally::new();
    let mut stream = Vec::new();
    for (line, written) in &lines {
        let class = classifier.line(line);
        let seen = match class {
            Line::Sql => Written::Sql,
            Line::Header(_) => Written::Header,
            Line::Row => Written::Row,
            Line::End => Written::End,
        };
        assert_eq!(seen, *written, "{:?}", String::from_utf8_lossy(line));
        tally.counted(line, &class);
        stream.extend_from_slice(line);
    }
    assert!(classifier.at_top(), "the stream ends at the top level");
    stream.extend_from_slice(trailer_line(&tally.finish()).as_bytes());
    (stream, rows_written)
}

/// stg-restore's reading rules (docs/stream.md): manifest first; a trailer-prefixed line
/// outside COPY is the trailer; nothing after it; counted bytes, checksum and rows must
/// agree with it. Returns the rows per table.
fn verify(stream: &[u8]) -> Result<std::collections::BTreeMap<String, u64>, String> {
    let mut lines = stream.split_inclusive(|b| *b == b'\n');
    let first = lines.next().ok_or("empty stream")?;
    parse_manifest_line(first)?.ok_or("no manifest")?;
    let mut tally = Tally::new();
    tally.line(first);
    let mut stated = None;
    for line in lines {
        if stated.is_some() {
            return Err("data after the trailer".into());
        }
        if !tally.in_copy() {
            if let Some(trailer) = parse_trailer_line(line) {
                stated = Some(trailer?);
                continue;
            }
        }
        tally.line(line);
    }
    let stated = stated.ok_or("truncated: no trailer")?;
    let counted = tally.finish();
    let problems = trailer_mismatches(&stated, &counted);
    if problems.is_empty() {
        Ok(counted.tables)
    } else {
        Err(problems.join("; "))
    }
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    liblzma::read::XzEncoder::new(data, 0)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn zstd(data: &[u8]) -> Vec<u8> {
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    enc.include_checksum(true).unwrap();
    std::io::Write::write_all(&mut enc, data).unwrap();
    enc.finish().unwrap()
}

/// Decodes and verifies; `Err` when either fails.
fn unzstd_verify(compressed: &[u8]) -> Result<(), String> {
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(compressed)
        .and_then(|mut d| d.read_to_end(&mut out))
        .map_err(|e| e.to_string())?;
    verify(&out).map(|_| ())
}

/// Decodes and verifies; `Err` when either fails.
fn unxz_verify(compressed: &[u8]) -> Result<(), String> {
    let mut out = Vec::new();
    liblzma::read::XzDecoder::new(compressed)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    verify(&out).map(|_| ())
}

fuzz_target!(|input: Input| {
    // Arbitrary lines: no panic; what parses round-trips.
    if let Ok(Some(m)) = parse_manifest_line(&input.junk) {
        let line = manifest_line(&m);
        assert_eq!(parse_manifest_line(line.trim_end().as_bytes()), Ok(Some(m)));
    }
    if let Some(Ok(t)) = parse_trailer_line(&input.junk) {
        let line = trailer_line(&t);
        assert_eq!(parse_trailer_line(line.as_bytes()), Some(Ok(t)));
    }

    let (stream, rows_written) = build(&input);
    let rows = verify(&stream).unwrap_or_else(|e| panic!("valid stream refused: {e}"));
    assert_eq!(rows, rows_written, "row counts");

    let len = stream.len();
    let trailer_at = stream[..len - 1].iter().rposition(|b| *b == b'\n').unwrap() + 1;
    assert!(stream[trailer_at..].starts_with(TRAILER_PREFIX.as_bytes()));
    let cuts: Vec<usize> = if len <= 2048 {
        (0..len).collect()
    } else {
        input.offsets.iter().map(|o| *o as usize % len).collect()
    };
    for &cut in &cuts {
        if cut == len - 1 {
            // Only the final newline is gone: everything else is there (see the module doc).
            assert!(verify(&stream[..cut]).is_ok());
            continue;
        }
        assert!(
            verify(&stream[..cut]).is_err(),
            "truncation at {cut} of {len} accepted"
        );
    }
    for &o in &input.offsets {
        let at = o as usize % trailer_at;
        let mut flipped = stream.clone();
        flipped[at] ^= 1u8 << (o % 8);
        assert!(verify(&flipped).is_err(), "bit flip at {at} accepted");
    }

    if input.xz {
        for (name, compress, check) in [
            (
                "xz",
                xz as fn(&[u8]) -> Vec<u8>,
                unxz_verify as fn(&[u8]) -> Result<(), String>,
            ),
            ("zstd", zstd, unzstd_verify),
        ] {
            framing(name, compress, check, &stream, input.xz_flip);
        }
    }
});

/// Every truncation of the compressed bytes, and one bit flip, is refused.
fn framing(
    name: &str,
    compress: fn(&[u8]) -> Vec<u8>,
    check: fn(&[u8]) -> Result<(), String>,
    stream: &[u8],
    flip: (u32, u8),
) {
    {
        let compressed = compress(stream);
        assert_eq!(check(&compressed), Ok(()));
        let step = (compressed.len() / 64).max(1);
        for cut in (0..compressed.len())
            .step_by(step)
            .chain([compressed.len() - 1])
        {
            assert!(
                check(&compressed[..cut]).is_err(),
                "{name} truncated at {cut} of {} accepted",
                compressed.len()
            );
        }
        let (offset, bit) = flip;
        let at = offset as usize % compressed.len();
        let mut flipped = compressed.clone();
        flipped[at] ^= 1 << (bit % 8);
        assert!(
            check(&flipped).is_err(),
            "{name} bit flip at {at} of {} accepted",
            compressed.len()
        );
    }
}
