//! What several fuzz targets need alike (each target is its own binary; this module is
//! included with `#[path]`).

use std::io::Write;

use stg_core::stream::{manifest_line, trailer_line, Manifest, Tally};

/// The stream stg-dump would write around `sql`: a manifest line in front, a trailer
/// computed over every line before it, zstd-compressed.
pub fn wrap(sql: &[u8]) -> Vec<u8> {
    let mut body = manifest_line(&Manifest::example()).into_bytes();
    body.extend_from_slice(sql);
    if !body.ends_with(b"\n") {
        body.push(b'\n');
    }
    let mut tally = Tally::new();
    for line in body.split_inclusive(|b| *b == b'\n') {
        tally.line(line);
    }
    body.extend_from_slice(trailer_line(&tally.finish()).as_bytes());
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).expect("zstd");
    enc.write_all(&body).expect("compress");
    enc.finish().expect("finish")
}
