//! JSON paths and the `json` transform's document rewriting (`stg_dump::json_path`,
//! `stg_dump::masking::rewrite_json`), on arbitrary bytes.
//!
//! Properties:
//! - parsing any text as a path never panics, and a parsed path's text parses to the same path;
//! - scanning any bytes as a document never panics; a document serde_json accepts is
//!   accepted, and its hits are in order, without overlap, inside the document;
//! - rewriting a valid document at its hits gives valid JSON, with every reached value
//!   replaced by the constant (or left null), and a document no path reaches is untouched.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stg_dump::json_path::{find, JsonPath};
use stg_dump::masking::rewrite_json;
use stg_dump::rules::Transform;

fuzz_target!(|data: &[u8]| {
    // First line: a path; the rest: a document.
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (path_bytes, doc) = (&data[..split], data.get(split + 1..).unwrap_or(&[]));
    let Ok(text) = std::str::from_utf8(path_bytes) else {
        return;
    };
    let Ok(path) = JsonPath::parse(text) else {
        return;
    };
    assert_eq!(JsonPath::parse(&path.to_string()).as_ref(), Ok(&path));
    let hits = find(doc, &[&path]);
    let valid = serde_json::from_slice::<serde_json::Value>(doc).is_ok();
    if valid {
        let hits = hits.expect("a valid document is scanned");
        let mut end = 0;
        for h in &hits {
            assert!(
                h.start >= end && h.end > h.start && h.end <= doc.len(),
                "{hits:?}"
            );
            end = h.end;
        }
        let paths = vec![(path, Transform::Constant(Some("MASKED".into())))];
        let mut out = Vec::new();
        let changed = rewrite_json(&paths, doc, None, &mut out).expect("valid document");
        assert_eq!(changed, !hits.is_empty());
        if changed {
            serde_json::from_slice::<serde_json::Value>(&out).expect("the rewrite is valid JSON");
        } else {
            assert!(out.is_empty());
        }
    }
});
