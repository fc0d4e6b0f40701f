//! Regression tests for bugs found by fuzzing (`make fuzz`), named after what broke.

use stg_hosts::hosts_block::{parse, with_block, without_block};

fn body(address: &str) -> Vec<String> {
    vec![format!("{address}\tfas.example.org")]
}

// See: fuzz target `hosts_block` (fuzz/fuzz_targets/hosts_block.rs), crash input "\r": a
// one-line file ending in a lone `\r` without `\n` got "\n" added before the first block,
// which made its only line look CRLF, so the second block added "\r\n"; removing the
// blocks in the order they were applied then took the `\r` away with the last newline.
#[test]
fn two_blocks_on_a_one_line_file_ending_in_cr_remove_to_the_original_in_either_order() {
    for original in [
        &b"\r"[..],
        b"127.0.0.1 localhost\r",
        b"x\r\r",
        b"x",
        b"x\r\n",
    ] {
        let one = with_block(original, "a", &body("10.0.0.1")).unwrap();
        let two = with_block(&one, "b", &body("10.0.0.2")).unwrap();
        let file = parse(&two).unwrap();
        assert!(file.blocks.iter().all(|b| !b.is_hand_edited()));
        let a_first = without_block(&without_block(&two, "a").unwrap(), "b").unwrap();
        let b_first = without_block(&without_block(&two, "b").unwrap(), "a").unwrap();
        assert_eq!(a_first, original, "a then b, from {original:?}");
        assert_eq!(b_first, original, "b then a, from {original:?}");
    }
}

// See: the same fuzz target; the fix must not change the style of a new block on a file
// whose own first line sets it.
#[test]
fn a_new_block_follows_the_line_ending_style_of_the_file() {
    let crlf = with_block(b"127.0.0.1 localhost\r\n", "a", &body("10.0.0.1")).unwrap();
    let two = with_block(&crlf, "b", &body("10.0.0.2")).unwrap();
    assert!(!String::from_utf8(two)
        .unwrap()
        .replace("\r\n", "")
        .contains('\n'));
    let lf = with_block(b"127.0.0.1 localhost", "a", &body("10.0.0.1")).unwrap();
    let two = with_block(&lf, "b", &body("10.0.0.2")).unwrap();
    assert!(!two.contains(&b'\r'));
}
