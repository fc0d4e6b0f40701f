//! The text format of `COPY ... FROM stdin` blocks in a plain `pg_dump`, as both ends of the
//! dump stream need it: `stg-dump` rewrites masked columns inside the rows, `stg-restore`
//! counts the rows per table to check the trailer.
//!
//! A block is a header line `COPY schema.table (col, ...) FROM stdin;`, one line per row
//! (fields separated by tabs, `\N` for NULL, backslash escapes for tab, newline and the
//! rest), and the end marker `\.` alone on a line. Because newlines inside values are
//! escaped, one line is always one row. Not for CSV or binary COPY, which plain `pg_dump`
//! does not write.
//! See: <https://www.postgresql.org/docs/current/sql-copy.html> ("Text Format").

use crate::sql_lexer;

/// A parsed `COPY ... FROM stdin;` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyHeader {
    /// Schema name, unquoted.
    pub schema: String,
    /// Table name, unquoted.
    pub table: String,
    /// Column names in the order the rows carry them, unquoted.
    pub columns: Vec<String>,
    /// The qualified name as `pg_dump` wrote it (quoted where needed), e.g. `public.people`
    /// or `public."Odd Table"`: the key of the trailer's row counts.
    pub qualified: String,
}

/// Reads one identifier (quoted with `""` escapes, or bare) from the start of `s`; returns
/// its name as the server reads it and the rest of `s`: a bare one folded to lower case,
/// either cut to 63 bytes (the lexer's rules, [`crate::sql_lexer`]).
fn take_identifier(s: &str) -> Option<(String, &str)> {
    let bytes = s.as_bytes();
    if let Some(rest) = s.strip_prefix('"') {
        let mut out = Vec::new();
        let rest_bytes = rest.as_bytes();
        let mut i = 0;
        while i < rest_bytes.len() {
            if rest_bytes[i] == b'"' {
                if rest_bytes.get(i + 1) == Some(&b'"') {
                    out.push(b'"');
                    i += 2;
                    continue;
                }
                let name = String::from_utf8(sql_lexer::truncate_name(out)).ok()?;
                return (!name.is_empty()).then(|| (name, &rest[i + 1..]));
            }
            out.push(rest_bytes[i]);
            i += 1;
        }
        None
    } else {
        if !bytes.first().is_some_and(|b| sql_lexer::is_ident_start(*b)) {
            return None;
        }
        let end = bytes
            .iter()
            .position(|b| !sql_lexer::is_ident_cont(*b))
            .unwrap_or(bytes.len());
        let name = sql_lexer::truncate_name(bytes[..end].to_ascii_lowercase());
        Some((String::from_utf8(name).ok()?, &s[end..]))
    }
}

/// Parses a `COPY schema.table (columns) FROM stdin;` line (with or without its newline).
/// Returns `None` for any other line.
#[must_use]
pub fn parse_copy_header(line: &[u8]) -> Option<CopyHeader> {
    let line = std::str::from_utf8(line).ok()?;
    let line = line.trim_end_matches(['\n', '\r']);
    let rest = line.strip_prefix("COPY ")?;
    let body = rest.strip_suffix(" FROM stdin;")?;
    let (schema, after_schema) = take_identifier(body)?;
    let after_dot = after_schema.strip_prefix('.')?;
    let (table, after_table) = take_identifier(after_dot)?;
    let qualified = body[..body.len() - after_table.len()].to_owned();
    let mut columns = Vec::new();
    let list = after_table.trim_start();
    if !list.is_empty() {
        let mut inner = list.strip_prefix('(')?.strip_suffix(')')?;
        loop {
            inner = inner.trim_start();
            let (column, after) = take_identifier(inner)?;
            columns.push(column);
            let after = after.trim_start();
            if after.is_empty() {
                break;
            }
            inner = after.strip_prefix(',')?;
        }
    }
    Some(CopyHeader {
        schema,
        table,
        columns,
        qualified,
    })
}

/// True for the end-of-data marker line `\.`.
#[must_use]
pub fn is_end_of_copy(line: &[u8]) -> bool {
    matches!(line, b"\\.\n" | b"\\.\r\n" | b"\\.")
}

/// The row without its line ending.
#[must_use]
pub fn strip_newline(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
}

/// The raw (still escaped) fields of a row; `row` is without its newline.
pub fn split_fields(row: &[u8]) -> std::slice::Split<'_, u8, impl FnMut(&u8) -> bool> {
    row.split(|b| *b == b'\t')
}

/// The NULL marker.
pub const NULL: &[u8] = b"\\N";

/// Decodes one raw field: `None` for NULL (`\N`), otherwise the value's bytes.
#[must_use]
pub fn unescape(field: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(field.len());
    unescape_into(field, &mut out).then_some(out)
}

/// Decodes one raw field, appending the value's bytes to `out`; returns `false` (and
/// appends nothing) for NULL. Fields without a backslash, the common case, are copied whole.
pub fn unescape_into(field: &[u8], out: &mut Vec<u8>) -> bool {
    if field == NULL {
        return false;
    }
    let mut rest = field;
    while let Some(pos) = memchr::memchr(b'\\', rest) {
        out.extend_from_slice(&rest[..pos]);
        rest = &rest[pos..];
        if rest.len() == 1 {
            out.push(b'\\');
            return true;
        }
        let c = rest[1];
        let mut i = 2;
        match c {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut value = u32::from(c - b'0');
                while i < 4 && i < rest.len() && (b'0'..=b'7').contains(&rest[i]) {
                    value = value * 8 + u32::from(rest[i] - b'0');
                    i += 1;
                }
                out.push((value & 0xff) as u8);
            }
            b'x' if rest.len() > 2 && rest[2].is_ascii_hexdigit() => {
                let mut value = 0u32;
                while i < 4 && i < rest.len() && rest[i].is_ascii_hexdigit() {
                    value = value * 16 + char::from(rest[i]).to_digit(16).unwrap_or(0);
                    i += 1;
                }
                out.push(value as u8);
            }
            other => out.push(other),
        }
        rest = &rest[i..];
    }
    out.extend_from_slice(rest);
    true
}

fn needs_escape(b: u8) -> bool {
    matches!(b, b'\\' | b'\n' | b'\r' | b'\t' | 8 | 11 | 12)
}

/// Encodes a value (or NULL) as a field, appending to `out`, the way `COPY TO` does. Runs
/// of bytes that need no escape are copied whole.
pub fn escape_into(value: Option<&[u8]>, out: &mut Vec<u8>) {
    let Some(mut rest) = value else {
        out.extend_from_slice(NULL);
        return;
    };
    while let Some(pos) = rest.iter().position(|&b| needs_escape(b)) {
        out.extend_from_slice(&rest[..pos]);
        out.extend_from_slice(match rest[pos] {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            8 => b"\\b",
            12 => b"\\f",
            _ => b"\\v",
        });
        rest = &rest[pos + 1..];
    }
    out.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_header() {
        let h =
            parse_copy_header(b"COPY public.people (id, username, email) FROM stdin;\n").unwrap();
        assert_eq!(h.schema, "public");
        assert_eq!(h.table, "people");
        assert_eq!(h.columns, ["id", "username", "email"]);
        assert_eq!(h.qualified, "public.people");
    }

    #[test]
    fn parses_quoted_identifiers() {
        let line =
            "COPY \"My \"\"Odd\"\" Schema\".\"Tåble.x\" (\"Col 1\", \"e-mail\", id) FROM stdin;\n";
        let h = parse_copy_header(line.as_bytes()).unwrap();
        assert_eq!(h.schema, "My \"Odd\" Schema");
        assert_eq!(h.table, "Tåble.x");
        assert_eq!(h.columns, ["Col 1", "e-mail", "id"]);
        assert_eq!(h.qualified, "\"My \"\"Odd\"\" Schema\".\"Tåble.x\"");
    }

    #[test]
    fn parses_header_without_columns() {
        let h = parse_copy_header(b"COPY public.empty  FROM stdin;\n").unwrap();
        assert!(h.columns.is_empty());
        assert_eq!(h.qualified, "public.empty");
    }

    #[test]
    fn names_are_read_as_the_server_reads_them() {
        // Found by the sql_parser fuzz target: a bare name was kept as written, so the
        // header named `SERVERstaff` where the server copies into `serverstaff`.
        let h = parse_copy_header(b"COPY Public.SERVERstaff (Id, \"Name\") FROM stdin;\n").unwrap();
        assert_eq!(
            (h.schema.as_str(), h.table.as_str()),
            ("public", "serverstaff")
        );
        assert_eq!(h.columns, ["id", "Name"]);
        assert_eq!(h.qualified, "Public.SERVERstaff");
        // Names longer than 63 bytes are cut, at a character boundary.
        let long = format!("COPY public.\"{}\u{e9}x\" FROM stdin;\n", "a".repeat(62));
        let h = parse_copy_header(long.as_bytes()).unwrap();
        assert_eq!(h.table, "a".repeat(62));
        // A bare name starts with a letter, `_` or a non-ASCII byte; `""` is no name.
        assert!(parse_copy_header(b"COPY public.1t FROM stdin;\n").is_none());
        assert!(parse_copy_header(b"COPY public.$t FROM stdin;\n").is_none());
        assert!(parse_copy_header(b"COPY public.\"\" FROM stdin;\n").is_none());
        let h = parse_copy_header("COPY public.\u{20ac}uro FROM stdin;\n".as_bytes()).unwrap();
        assert_eq!(h.table, "\u{20ac}uro");
    }

    #[test]
    fn rejects_other_lines() {
        assert!(parse_copy_header(b"COPY public.t (a) TO stdout;\n").is_none());
        assert!(parse_copy_header(b"-- COPY public.t (a) FROM stdin;\n").is_none());
        assert!(parse_copy_header(b"COPY public.t (a FROM stdin;\n").is_none());
    }

    #[test]
    fn escape_unescape_round_trip() {
        let values: [&[u8]; 5] = [
            b"plain",
            b"tab\there",
            b"line\nbreak\r",
            b"back\\slash \\. \\N",
            &[8, 11, 12, 0xc3, 0xa9],
        ];
        for value in values {
            let mut field = Vec::new();
            escape_into(Some(value), &mut field);
            assert!(!field.contains(&b'\t') && !field.contains(&b'\n'));
            assert_eq!(unescape(&field).unwrap(), value);
        }
        let mut field = Vec::new();
        escape_into(None, &mut field);
        assert_eq!(unescape(&field), None);
    }

    #[test]
    fn unescapes_octal_and_hex() {
        assert_eq!(unescape(b"\\101\\x42\\q").unwrap(), b"ABq");
        assert_eq!(unescape(b"a\\1234").unwrap(), b"aS4");
        assert_eq!(unescape(b"\\x4g\\xg").unwrap(), b"\x04gxg");
        assert_eq!(unescape(b"trailing\\").unwrap(), b"trailing\\");
    }

    #[test]
    fn end_marker() {
        assert!(is_end_of_copy(b"\\.\n"));
        assert!(!is_end_of_copy(b"\\.x\n"));
        assert!(!is_end_of_copy(b"a\\.\n"));
    }
}
