//! The JSON Lines reader (`stg_core::jsonl::read`), on arbitrary bytes.
//!
//! Properties, checked against an independent model of the format (lines split at `\n`, a
//! `\r` before it dropped, blank lines skipped, every other line one JSON record):
//! - no panic on any input;
//! - the reader yields exactly the model's sequence: each good line as its 1-based line
//!   number and record, each bad line (not UTF-8, not JSON, not a record) as an error
//!   naming that line number;
//! - every error is a usage error (exit 2), as bad input must be.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use stg_core::exit::{classify, ErrorClass};

/// A record as stg-probe reads them: a type and optional fields.
#[derive(Debug, Deserialize, PartialEq)]
struct Record {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    port: Option<u16>,
}

/// The model: `Ok((line, record))` or `Err(line)` for each non-blank line.
fn model(data: &[u8]) -> Vec<Result<(usize, Record), usize>> {
    let mut out = Vec::new();
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    if data.is_empty() {
        return out;
    }
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        let line_no = i + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Ok(text) = std::str::from_utf8(line) else {
            out.push(Err(line_no));
            continue;
        };
        if text.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(text)
                .map(|r| (line_no, r))
                .map_err(|_| line_no),
        );
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let got: Vec<_> = stg_core::jsonl::read::<Record>(data, "in.jsonl").collect();
    let expected = model(data);
    assert_eq!(got.len(), expected.len(), "number of items");
    for (got, expected) in got.into_iter().zip(expected) {
        match (got, expected) {
            (Ok(g), Ok(e)) => assert_eq!(g, e),
            (Err(err), Err(line)) => {
                let message = err.to_string();
                assert!(
                    message.starts_with(&format!("in.jsonl: line {line}: ")),
                    "error names the wrong line (expected {line}): {message}"
                );
                assert_eq!(classify(&err), ErrorClass::Usage, "{message}");
            }
            (g, e) => panic!("reader gave {g:?}, model {e:?}"),
        }
    }
});
