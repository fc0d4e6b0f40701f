//! Text and small files from places stg does not control (issue "Hardening, round 2",
//! items 6 and 9): names, lines and reasons shown on a terminal, and the bounded reader of
//! ignore files, key files, inventories and hosts files.
//!
//! Properties:
//! - `terminal::escape_bytes` never lets a control character (other than tab), an escape
//!   sequence's ESC, or a bidirectional override through, leaves printable ASCII as it is,
//!   and quotes whatever it changed;
//! - `files::read_stream` returns exactly the bytes when they fit the bound, and refuses them
//!   (never truncates silently) when they do not.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stg_core::files::{read_stream, ReadError};
use stg_core::terminal::escape_bytes;

fuzz_target!(|input: (Vec<u8>, u16)| {
    let (bytes, bound) = input;
    let shown = escape_bytes(&bytes);
    for c in shown.chars() {
        assert!(
            c == '\t'
                || !(c.is_control()
                    || ('\u{202a}'..='\u{202e}').contains(&c)
                    || ('\u{2066}'..='\u{2069}').contains(&c)),
            "{c:?} shown raw in {shown:?}"
        );
    }
    // Printable ASCII (and tab) is shown as it is; anything escaped is quoted whole.
    if bytes
        .iter()
        .all(|b| *b == b'\t' || (0x20..0x7f).contains(b))
    {
        assert_eq!(shown.as_bytes(), &bytes[..]);
    } else if shown.as_bytes() != &bytes[..] {
        assert!(shown.starts_with('"') && shown.ends_with('"'), "{shown:?}");
    }

    let bound = u64::from(bound);
    match read_stream(&bytes[..], "fuzz", bound) {
        Ok(read) => {
            assert!(read.len() as u64 <= bound);
            assert_eq!(read, bytes);
        }
        Err(ReadError::NotFound(_)) => panic!("a stream is never missing"),
        Err(_) => assert!(
            bytes.len() as u64 > bound,
            "refused {} bytes under {bound}",
            bytes.len()
        ),
    }
});
