//! Untrusted text (file names and lines of a scanned repository, names in a hosts file,
//! reasons in an inventory) made safe to print in text output, for a person at a terminal.
//!
//! A terminal acts on control characters: ESC starts sequences that clear the screen, move
//! the cursor over earlier lines, retitle the window or write the clipboard (OSC 52); a
//! newline or carriage return in a file name forges rows of a table; bidirectional
//! overrides reorder what is shown. [`escape`] returns text without any of these as it is,
//! and otherwise quotes it the way git quotes a path name (`core.quotePath`): in double
//! quotes, with `\"` and `\\`, C escapes for `\n \r \a \b \v \f`, `\xNN` for the other
//! ASCII controls (ESC is `\x1b`) and `\u{NNNN}` for the other characters escaped (C1
//! controls, bidirectional controls, line and paragraph separators). A tab is left as it is:
//! harmless, and common in hosts files. [`escape_bytes`] does the same for bytes that need
//! not be UTF-8, writing each invalid byte as `\xNN`, so two names that differ only in such
//! bytes are shown differently.
//!
//! Not for JSON output (serde_json escapes what JSON needs) nor for messages on stderr,
//! which quote with `{:?}`.

use std::borrow::Cow;
use std::fmt::Write as _;

/// True for a character a terminal may act on, or that reorders or breaks displayed text.
/// A tab is neither (it moves to the next tab stop, and hosts files are full of them).
fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\t' => out.push('\t'),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\u{07}' => out.push_str("\\a"),
        '\u{08}' => out.push_str("\\b"),
        '\u{0B}' => out.push_str("\\v"),
        '\u{0C}' => out.push_str("\\f"),
        c if c.is_ascii_control() => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if needs_escape(c) => {
            let _ = write!(out, "\\u{{{:04x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// `text` as it is when it holds nothing a terminal acts on, else quoted and escaped.
#[must_use]
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    out.push('"');
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    out.push('"');
    Cow::Owned(out)
}

/// Like [`escape`] for bytes: valid UTF-8 without anything to escape is shown as it is;
/// otherwise the whole is quoted and each byte that is not UTF-8 is written `\xNN`.
#[must_use]
pub fn escape_bytes(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return escape(text);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_escaped(&mut out, c);
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('"');
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_unchanged() {
        for text in [
            "roles/web/tasks/main.yml",
            "when: env == \"staging\" and x != 'a\\b'",
            "café résumé 日本",
            "",
        ] {
            assert!(
                matches!(escape(text), Cow::Borrowed(t) if t == text),
                "{text}"
            );
        }
        assert_eq!(escape_bytes(b"plain"), "plain");
    }

    #[test]
    fn controls_are_quoted_and_escaped() {
        assert_eq!(escape("a\nb"), "\"a\\nb\"");
        assert_eq!(
            escape("x\u{1b}]0;owned\u{07}\"\\"),
            "\"x\\x1b]0;owned\\a\\\"\\\\\""
        );
        assert_eq!(escape("tab\there\r"), "\"tab\there\\r\"");
        assert_eq!(
            escape("10.5.128.10\tfas.example.org"),
            "10.5.128.10\tfas.example.org"
        );
        assert_eq!(escape("del\u{7f}"), "\"del\\x7f\"");
        assert_eq!(escape("csi\u{9b}2J"), "\"csi\\u{009b}2J\"");
        assert_eq!(escape("abc\u{202e}fed"), "\"abc\\u{202e}fed\"");
        assert_eq!(escape("line\u{2028}sep"), "\"line\\u{2028}sep\"");
        // Nothing a terminal acts on is left.
        let out = escape("\u{0}\u{1}\u{1b}[2J\u{7f}\u{85}\u{9b}");
        assert!(!out.chars().any(needs_escape), "{out}");
    }

    #[test]
    fn invalid_utf8_is_shown_as_bytes() {
        assert_eq!(escape_bytes(b"caf\xe9"), "\"caf\\xe9\"");
        assert_eq!(escape_bytes(b"caf\xc3\xa9"), "café");
        assert_eq!(escape_bytes(b"a\xff\n"), "\"a\\xff\\n\"");
        assert_ne!(escape_bytes(b"r\xe9"), escape_bytes(b"r\xe8"));
    }
}
