//! stg-age's line matcher (`stg_age::conditions::Matcher`), on arbitrary files.
//!
//! Properties:
//! - `scan` never panics, on any bytes;
//! - hits come in file order, once per line, on lines that exist;
//! - a comment line (first non-blank character `#`) is never a hit;
//! - a line the matcher classifies on its own is still a hit inside any file (the block
//!   state can only turn its kind into `when`), so appending a known condition to any file
//!   finds it on the last line;
//! - a near miss (another variable, another value) appended to a file is never a hit.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use stg_age::conditions::{Kind, Matcher};

#[derive(Arbitrary, Debug)]
struct Input {
    file: Vec<u8>,
    line: String,
    which: u8,
}

const HITS: &[&str] = &[
    "  when: env == \"staging\"",
    "{% if env != 'staging' %}",
    "x: \"{{ (env == 'staging') | ternary('a', 'b') }}\"",
    "url: \"{{ {'staging': 'a.stg', 'production': 'a'}[env] }}\"",
    "host: \"{{ 'db.stg' if env == 'staging' else 'db' }}\"",
];

const MISSES: &[&str] = &[
    "when: my_env == 'staging'",
    "when: env == 'pagure-staging'",
    "    # when: env == 'staging'",
    "when: env == staging",
];

fn matcher() -> &'static Matcher {
    static M: std::sync::OnceLock<Matcher> = std::sync::OnceLock::new();
    M.get_or_init(|| Matcher::new("env").unwrap())
}

fn lines(file: &[u8]) -> usize {
    file.split(|b| *b == b'\n').count()
}

fuzz_target!(|input: Input| {
    let m = matcher();
    let hits = m.scan(&input.file);
    let n = lines(&input.file);
    let raw: Vec<&[u8]> = input.file.split(|b| *b == b'\n').collect();
    for pair in hits.windows(2) {
        assert!(pair[0].line < pair[1].line, "hits out of order: {hits:?}");
    }
    for hit in &hits {
        assert!(
            hit.line >= 1 && hit.line <= n,
            "hit on line {} of {n}",
            hit.line
        );
        let text = String::from_utf8_lossy(raw[hit.line - 1]);
        assert!(
            !text.trim_start().starts_with('#'),
            "comment is a hit: {text:?}"
        );
    }

    // A line with a verdict of its own keeps it inside the file (or becomes `when`).
    let line = input.line.replace(['\n', '\r'], " ");
    if let Some(kind) = m.match_line(&line) {
        let mut file = input.file.clone();
        file.push(b'\n');
        file.extend_from_slice(line.as_bytes());
        let hits = m.scan(&file);
        let last = hits
            .last()
            .unwrap_or_else(|| panic!("{line:?} lost in the file"));
        assert_eq!(last.line, lines(&file), "{line:?} lost in the file");
        assert!(last.kind == kind || last.kind == Kind::When);
    }

    let i = usize::from(input.which);
    let mut file = input.file.clone();
    file.push(b'\n');
    file.extend_from_slice(HITS[i % HITS.len()].as_bytes());
    let hits = m.scan(&file);
    assert_eq!(
        hits.last().map(|h| h.line),
        Some(lines(&file)),
        "known hit not found"
    );

    let mut file = input.file.clone();
    file.push(b'\n');
    file.extend_from_slice(MISSES[i % MISSES.len()].as_bytes());
    let hits = m.scan(&file);
    assert_ne!(
        hits.last().map(|h| h.line),
        Some(lines(&file)),
        "near miss is a hit"
    );
});
