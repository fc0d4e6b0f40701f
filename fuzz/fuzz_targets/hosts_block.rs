//! The managed block of stg-hosts (`stg_hosts::hosts_block`), on arbitrary hosts files.
//!
//! Properties, for any file the parser accepts and a body as stg-hosts writes one:
//! - applying a block then removing it gives back the original bytes, whatever the line
//!   endings, final newline or content;
//! - everything before the block is byte-identical, and the applied block is found, with the
//!   body's hash (not hand-edited);
//! - applying the same block again changes nothing; applying a new body replaces only the
//!   block (bytes before and after are identical), and removing it still gives the original;
//! - with two blocks, removing them in either order gives the original;
//! - parsing any bytes never panics, and an error names a line that exists.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use stg_hosts::hosts_block::{parse, split_lines, with_block, without_block};

#[derive(Arbitrary, Debug)]
struct Input {
    file: Vec<u8>,
    body: Vec<(u8, u8, u8, u8, String)>,
    other_body: Vec<(u8, u8, u8, u8, String)>,
    name: u8,
}

/// Body lines as stg-hosts writes them: an address and host names.
fn body(entries: &[(u8, u8, u8, u8, String)]) -> Vec<String> {
    entries
        .iter()
        .map(|(a, b, c, d, name)| {
            let name: String = name
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
                .collect();
            format!(
                "{a}.{b}.{c}.{d}\t{}",
                if name.is_empty() { "x" } else { &name }
            )
        })
        .collect()
}

const NAMES: &[&str] = &["fedora-stg", "a", "inv.1", "x_y-z"];

fuzz_target!(|input: Input| {
    let original = &input.file;
    let name = NAMES[usize::from(input.name) % NAMES.len()];
    let other = if name == "a" { "b" } else { "a" };
    let body_a = body(&input.body);
    let body_b = body(&input.other_body);

    let parsed = match parse(original) {
        Ok(file) => file,
        Err(e) => {
            assert!(e.line >= 1 && e.line <= split_lines(original).len(), "{e}");
            assert!(with_block(original, name, &body_a).is_err());
            return;
        }
    };
    if parsed.block(name).is_some() || parsed.block(other).is_some() {
        // Round trips start from a file without the block.
        return;
    }

    let applied = with_block(original, name, &body_a).expect("apply on a parsed file");
    let file = parse(&applied).expect("applied file parses");
    let block = file.block(name).expect("block is there");
    assert!(!block.is_hand_edited(), "fresh block seen as hand-edited");
    let before: usize = file.lines[..block.begin].iter().map(|l| l.len()).sum();
    // Before the block: the original, plus at most the newline added to its last line.
    assert!(
        applied[..before].starts_with(original),
        "bytes before the block changed"
    );
    assert!(before - original.len() <= 2);
    assert_eq!(
        without_block(&applied, name).unwrap(),
        *original,
        "apply, remove"
    );

    assert_eq!(
        with_block(&applied, name, &body_a).unwrap(),
        applied,
        "idempotent"
    );
    let replaced = with_block(&applied, name, &body_b).unwrap();
    let after_end = applied.len()
        - (block.end + 1..file.lines.len())
            .map(|i| file.lines[i].len())
            .sum::<usize>();
    let tail = &applied[after_end..];
    assert!(replaced.starts_with(&applied[..before]));
    assert!(replaced.ends_with(tail));
    assert_eq!(
        without_block(&replaced, name).unwrap(),
        *original,
        "replace, remove"
    );

    let two = with_block(&applied, other, &body_b).unwrap();
    let one_first = without_block(&without_block(&two, name).unwrap(), other).unwrap();
    let other_first = without_block(&without_block(&two, other).unwrap(), name).unwrap();
    assert_eq!(one_first, *original, "two blocks, {name} removed first");
    assert_eq!(other_first, *original, "two blocks, {other} removed first");
});
