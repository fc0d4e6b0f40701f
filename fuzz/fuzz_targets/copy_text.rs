//! COPY text format (`stg_core::copy_text`), on arbitrary bytes.
//!
//! Properties:
//! - escaping then unescaping any value gives the value back, and an escaped field never holds
//!   a raw tab, newline or carriage return (so one line stays one row);
//! - a row built from escaped values splits back into exactly those values;
//! - decoding any raw field never panics, and decoding is stable: re-escaping a decoded value
//!   and decoding again gives the same value;
//! - parsing any line as a COPY header never panics, and a parsed header written back with
//!   every identifier quoted parses to the same schema, table and columns.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stg_core::copy_text::{escape_into, parse_copy_header, split_fields, unescape};

/// Quotes an identifier the way PostgreSQL does, always.
fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fuzz_target!(|data: &[u8]| {
    // Escape / unescape identity on the whole input as one value.
    let mut field = Vec::new();
    escape_into(Some(data), &mut field);
    assert!(
        !field.iter().any(|b| matches!(b, b'\t' | b'\n' | b'\r')),
        "escaped field holds a raw separator: {field:?}"
    );
    assert_eq!(unescape(&field).as_deref(), Some(data), "escape/unescape");

    // A row of values (split at 0xff; a piece starting with 0xfe is NULL).
    let values: Vec<Option<&[u8]>> = data
        .split(|b| *b == 0xff)
        .map(|piece| (piece.first() != Some(&0xfe)).then_some(piece))
        .collect();
    let mut row = Vec::new();
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            row.push(b'\t');
        }
        escape_into(*value, &mut row);
    }
    let decoded: Vec<Option<Vec<u8>>> = split_fields(&row).map(unescape).collect();
    let expected: Vec<Option<Vec<u8>>> = values.iter().map(|v| v.map(<[u8]>::to_vec)).collect();
    assert_eq!(decoded, expected, "row round trip");

    // Decoding arbitrary raw fields: no panic, and a stable result.
    for raw in split_fields(data) {
        let once = unescape(raw);
        let mut again = Vec::new();
        escape_into(once.as_deref(), &mut again);
        assert_eq!(unescape(&again), once, "decode is not stable for {raw:?}");
    }

    // Header parsing: no panic; a parsed header survives being written back quoted.
    if let Some(header) = parse_copy_header(data) {
        let columns = if header.columns.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = header.columns.iter().map(|c| quote(c)).collect();
            format!(" ({})", list.join(", "))
        };
        let line = format!(
            "COPY {}.{}{columns} FROM stdin;\n",
            quote(&header.schema),
            quote(&header.table)
        );
        let again = parse_copy_header(line.as_bytes())
            .unwrap_or_else(|| panic!("re-quoted header does not parse: {line:?}"));
        assert_eq!(again.schema, header.schema);
        assert_eq!(again.table, header.table);
        assert_eq!(again.columns, header.columns);
        assert!(
            std::str::from_utf8(data)
                .unwrap()
                .contains(header.qualified.as_str()),
            "qualified name {:?} is not in the line",
            header.qualified
        );
    }
});
