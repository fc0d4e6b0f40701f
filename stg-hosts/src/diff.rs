//! A unified diff of two versions of a hosts file, for `--dry-run`.
//!
//! A change by stg-hosts touches one contiguous region (one block), so the diff is one hunk:
//! the lines between the common prefix and the common suffix, with three lines of context.
//! Not a general diff algorithm.

use std::fmt::Write as _;

use stg_core::terminal::{escape, escape_bytes};

use crate::hosts_block::{content, split_lines};

const CONTEXT: usize = 3;

/// The diff of `old` to `new` (empty when equal); `label` names the file in the header.
pub fn unified(old: &[u8], new: &[u8], label: &str) -> String {
    if old == new {
        return String::new();
    }
    let label = escape(label);
    let a = split_lines(old);
    let b = split_lines(new);
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let max_suffix = a.len().min(b.len()) - prefix;
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(max_suffix)
        .take_while(|(x, y)| x == y)
        .count();
    let start = prefix.saturating_sub(CONTEXT);
    let tail = suffix.min(CONTEXT);
    let a_end = a.len() - suffix + tail;
    let b_end = b.len() - suffix + tail;
    let mut out = format!(
        "--- {label}\n+++ {label} (new)\n@@ -{},{} +{},{} @@\n",
        start + 1,
        a_end - start,
        start + 1,
        b_end - start
    );
    let mut line = |mark: char, text: &[u8]| {
        // Lines of the file as they would print, quoted and escaped when they hold control
        // characters or bytes that are not UTF-8 (stg_core::terminal): a hosts file in a
        // chroot is not the operator's, and a terminal acts on what it is sent.
        let _ = writeln!(out, "{mark}{}", escape_bytes(content(text)));
        if !text.ends_with(b"\n") {
            out.push_str("\\ No newline at end of file\n");
        }
    };
    for l in &a[start..prefix] {
        line(' ', l);
    }
    for l in &a[prefix..a.len() - suffix] {
        line('-', l);
    }
    for l in &b[prefix..b.len() - suffix] {
        line('+', l);
    }
    for l in &a[a.len() - suffix..a_end] {
        line(' ', l);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hunk_with_context() {
        let d = unified(b"a\nb\nc\n", b"a\nb\nc\nx\n", "hosts");
        assert_eq!(
            d,
            "--- hosts\n+++ hosts (new)\n@@ -1,3 +1,4 @@\n a\n b\n c\n+x\n"
        );
        assert_eq!(unified(b"a\n", b"a\n", "hosts"), "");
    }

    #[test]
    fn control_characters_and_bad_bytes_are_escaped() {
        let d = unified(
            b"# \x1b]0;x\x07 caf\xe9\n",
            b"# \x1b]0;x\x07 caf\xe9\nx\n",
            "h\nosts",
        );
        assert_eq!(
            d,
            "--- \"h\\nosts\"\n+++ \"h\\nosts\" (new)\n@@ -1,1 +1,2 @@\n \"# \\x1b]0;x\\a caf\\xe9\"\n+x\n"
        );
    }
}
