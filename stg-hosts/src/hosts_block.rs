//! The managed block inside a hosts file: finding it, checking its hash, putting it in and
//! taking it out, byte for byte.
//!
//! A block is
//!
//! ```text
//! # BEGIN stg-hosts <inventory name> sha256=<hex sha256 of the body>
//! <body lines>
//! # END stg-hosts <inventory name>
//! ```
//!
//! The hash covers the body's lines, each with its line ending replaced by a single `\n`, so
//! converting the file between LF and CRLF does not count as a hand edit. Everything outside
//! the blocks is kept exactly as it was: the file is handled as bytes, split after each `\n`,
//! and only the block's own lines are ever replaced, added or removed. A file without a final
//! newline gets one added before a new block, and the block's END line is then written
//! without one; removing that block strips the added newline again, so `apply` then
//! `remove` gives back the original bytes.
//!
//! Pure functions on bytes, no I/O: reading and writing the file safely is
//! [`crate::hosts_file`]. Not for deciding what the block says (that is
//! [`crate::overrides`]).

use std::fmt::Write as _;
use std::net::IpAddr;

use sha2::{Digest, Sha256};

const BEGIN: &[u8] = b"# BEGIN stg-hosts";
const END: &[u8] = b"# END stg-hosts";

/// A malformed hosts file: broken or duplicated markers. `line` is 1-based.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// The line of the problem.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// One managed block found in a file. Line numbers are 0-based indexes into
/// [`HostsFile::lines`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// The inventory name in the markers.
    pub name: String,
    /// The hash written in the BEGIN line.
    pub recorded_sha256: String,
    /// The hash of the body as it is now.
    pub actual_sha256: String,
    /// Index of the BEGIN line.
    pub begin: usize,
    /// Index of the END line.
    pub end: usize,
}

impl Block {
    /// True when the body was changed since stg-hosts wrote it.
    pub fn is_hand_edited(&self) -> bool {
        self.recorded_sha256 != self.actual_sha256
    }
}

/// A hosts file split into lines (each with its own ending) and its managed blocks.
#[derive(Debug)]
pub struct HostsFile<'a> {
    /// Every line, with its `\n` or `\r\n` (the last may have none).
    pub lines: Vec<&'a [u8]>,
    /// The managed blocks, in file order.
    pub blocks: Vec<Block>,
}

/// One address line of a hosts file: the address and its names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// 0-based line index.
    pub line: usize,
    /// The address.
    pub address: IpAddr,
    /// The names, as written.
    pub names: Vec<String>,
}

/// Splits bytes into lines, each keeping its `\n`; a last line without one is kept too.
pub fn split_lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut start = 0;
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' {
            lines.push(&bytes[start..=i]);
            start = i + 1;
        }
    }
    if start < bytes.len() {
        lines.push(&bytes[start..]);
    }
    lines
}

/// A line without its ending (`\n`, `\r\n`).
pub fn content(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The ending of a line: `\r\n`, `\n` or nothing.
fn ending(line: &[u8]) -> &'static [u8] {
    if line.ends_with(b"\r\n") {
        b"\r\n"
    } else if line.ends_with(b"\n") {
        b"\n"
    } else {
        b""
    }
}

/// The sha256 (lowercase hex) of a body: each line's content followed by `\n`.
pub fn body_sha256<L: AsRef<[u8]>>(lines: &[L]) -> String {
    let mut hash = Sha256::new();
    for line in lines {
        hash.update(content(line.as_ref()));
        hash.update(b"\n");
    }
    hex::encode(hash.finalize())
}

fn is_block_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Parses a marker line's words after the BEGIN/END keyword.
fn marker_words(rest: &[u8]) -> Option<Vec<&str>> {
    let text = std::str::from_utf8(rest).ok()?;
    if !text.is_empty() && !text.starts_with([' ', '\t']) {
        return None;
    }
    Some(text.split_ascii_whitespace().collect())
}

/// Finds the managed blocks. Markers that are malformed, nested, unmatched or duplicated
/// are errors naming the line: changing such a file could lose someone's lines.
pub fn parse(bytes: &[u8]) -> Result<HostsFile<'_>, ParseError> {
    let lines = split_lines(bytes);
    let mut blocks: Vec<Block> = Vec::new();
    // (name, recorded hash, begin index) of the block being read.
    let mut open: Option<(String, String, usize)> = None;
    for (i, line) in lines.iter().enumerate() {
        let text = content(line);
        let err = |message: String| ParseError {
            line: i + 1,
            message,
        };
        if let Some(rest) = text.strip_prefix(BEGIN) {
            let words = marker_words(rest);
            let (name, sha) = match words.as_deref() {
                Some([name, sha])
                    if is_block_name(name)
                        && sha.strip_prefix("sha256=").is_some_and(|h| {
                            h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())
                        }) =>
                {
                    (
                        (*name).to_owned(),
                        sha["sha256=".len()..].to_ascii_lowercase(),
                    )
                }
                _ => {
                    return Err(err(
                        "malformed marker: expected '# BEGIN stg-hosts NAME sha256=HEX'".into(),
                    ))
                }
            };
            if let Some((other, _, at)) = &open {
                return Err(err(format!(
                    "BEGIN stg-hosts {name} inside block {other} (begun at line {})",
                    at + 1
                )));
            }
            if let Some(dup) = blocks.iter().find(|b| b.name == name) {
                return Err(err(format!(
                    "block {name} appears twice (first at line {})",
                    dup.begin + 1
                )));
            }
            open = Some((name, sha, i));
        } else if let Some(rest) = text.strip_prefix(END) {
            let name = match marker_words(rest).as_deref() {
                Some([name]) if is_block_name(name) => (*name).to_owned(),
                _ => {
                    return Err(err(
                        "malformed marker: expected '# END stg-hosts NAME'".into()
                    ))
                }
            };
            match open.take() {
                Some((open_name, recorded, begin)) if open_name == name => {
                    let actual = body_sha256(&lines[begin + 1..i]);
                    blocks.push(Block {
                        name,
                        recorded_sha256: recorded,
                        actual_sha256: actual,
                        begin,
                        end: i,
                    });
                }
                Some((open_name, _, begin)) => {
                    return Err(err(format!(
                        "END stg-hosts {name} does not match block {open_name} (begun at line {})",
                        begin + 1
                    )))
                }
                None => return Err(err(format!("END stg-hosts {name} without a BEGIN"))),
            }
        }
    }
    if let Some((name, _, begin)) = open {
        return Err(ParseError {
            line: begin + 1,
            message: format!("block {name} has no '# END stg-hosts {name}' line"),
        });
    }
    Ok(HostsFile { lines, blocks })
}

impl HostsFile<'_> {
    /// The block with this name, if present.
    pub fn block(&self, name: &str) -> Option<&Block> {
        self.blocks.iter().find(|b| b.name == name)
    }

    /// The address lines of the whole file (comments and lines whose first word is not an
    /// address are skipped).
    pub fn entries(&self) -> Vec<Entry> {
        self.lines
            .iter()
            .enumerate()
            .filter_map(|(i, line)| parse_entry(i, line))
            .collect()
    }

    /// The name of the block containing line `index`, if any.
    pub fn block_at(&self, index: usize) -> Option<&Block> {
        self.blocks
            .iter()
            .find(|b| (b.begin..=b.end).contains(&index))
    }
}

/// Parses one hosts line: `address name...`, with `#` starting a comment.
pub fn parse_entry(index: usize, line: &[u8]) -> Option<Entry> {
    let text = String::from_utf8_lossy(content(line));
    let text = text.split('#').next().unwrap_or("");
    let mut words = text.split_ascii_whitespace();
    let address = words.next()?.parse().ok()?;
    let names: Vec<String> = words.map(str::to_owned).collect();
    if names.is_empty() {
        return None;
    }
    Some(Entry {
        line: index,
        address,
        names,
    })
}

/// The full block text for `name` with `body` lines, each line ended with `eol`; the END
/// line gets `eol` only when `final_newline`.
pub fn render_block(name: &str, body: &[String], eol: &str, final_newline: bool) -> Vec<u8> {
    let mut out = String::new();
    let _ = write!(
        out,
        "# BEGIN stg-hosts {name} sha256={}{eol}",
        body_sha256(body)
    );
    for line in body {
        out.push_str(line);
        out.push_str(eol);
    }
    let _ = write!(out, "# END stg-hosts {name}");
    if final_newline {
        out.push_str(eol);
    }
    out.into_bytes()
}

/// The file with block `name` set to `body`: replaced where it is, or appended at the end.
/// The file's line-ending style (from its first line) is used for a new block.
pub fn with_block(bytes: &[u8], name: &str, body: &[String]) -> Result<Vec<u8>, ParseError> {
    let file = parse(bytes)?;
    let mut out = Vec::with_capacity(bytes.len() + 64 * body.len());
    if let Some(block) = file.block(name) {
        let eol = if ending(file.lines[block.begin]) == b"\r\n" {
            "\r\n"
        } else {
            "\n"
        };
        let final_newline = !ending(file.lines[block.end]).is_empty();
        for line in &file.lines[..block.begin] {
            out.extend_from_slice(line);
        }
        out.extend_from_slice(&render_block(name, body, eol, final_newline));
        for line in &file.lines[block.end + 1..] {
            out.extend_from_slice(line);
        }
    } else {
        // A block ending the file without a newline added the newline before it to the
        // file's last line; when that was the only line, its ending is the block's doing,
        // so take the style from the block itself, or removing both blocks in apply order
        // would lose a lone `\r` at the end of a one-line file.
        // See: fuzz/fuzz_targets/hosts_block.rs and tests/regression.rs.
        let style_line = match file.blocks.last() {
            Some(last)
                if last.end + 1 == file.lines.len() && ending(file.lines[last.end]).is_empty() =>
            {
                file.lines.get(last.begin)
            }
            _ => file.lines.first(),
        };
        let eol = match style_line {
            Some(line) if ending(line) == b"\r\n" => "\r\n",
            _ => "\n",
        };
        out.extend_from_slice(bytes);
        let final_newline = bytes.is_empty() || bytes.ends_with(b"\n");
        if !final_newline {
            out.extend_from_slice(eol.as_bytes());
        }
        out.extend_from_slice(&render_block(name, body, eol, final_newline));
    }
    Ok(out)
}

/// The file without block `name` (unchanged when it has none). When the block ended the
/// file without a final newline, the newline added before it is taken away again.
pub fn without_block(bytes: &[u8], name: &str) -> Result<Vec<u8>, ParseError> {
    let file = parse(bytes)?;
    let Some(block) = file.block(name) else {
        return Ok(bytes.to_vec());
    };
    let mut out = Vec::with_capacity(bytes.len());
    for line in &file.lines[..block.begin] {
        out.extend_from_slice(line);
    }
    if ending(file.lines[block.end]).is_empty() && block.begin > 0 {
        let added = ending(file.lines[block.begin]);
        if out.ends_with(added) {
            out.truncate(out.len() - added.len());
        } else if out.ends_with(b"\n") {
            out.pop();
        }
    }
    for line in &file.lines[block.end + 1..] {
        out.extend_from_slice(line);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> Vec<String> {
        vec!["10.0.0.1\ta.example b.example".to_owned()]
    }

    #[test]
    fn round_trips_every_ending_style() {
        for original in [
            &b""[..],
            b"127.0.0.1 localhost\n",
            b"127.0.0.1 localhost",
            b"127.0.0.1 localhost\r\n::1 localhost\r\n",
            b"127.0.0.1 localhost\r\n::1 localhost",
            b"127.0.0.1 localhost\r",
            b"\n\n",
        ] {
            let applied = with_block(original, "inv", &body()).unwrap();
            let file = parse(&applied).unwrap();
            let block = file.block("inv").unwrap();
            assert!(!block.is_hand_edited());
            assert_eq!(with_block(&applied, "inv", &body()).unwrap(), applied);
            let removed = without_block(&applied, "inv").unwrap();
            assert_eq!(removed, original, "{:?}", String::from_utf8_lossy(original));
        }
    }

    #[test]
    fn two_blocks_remove_in_any_order() {
        let original = b"127.0.0.1 localhost";
        let one = with_block(original, "a", &body()).unwrap();
        let two = with_block(&one, "b", &body()).unwrap();
        let a_first = without_block(&without_block(&two, "a").unwrap(), "b").unwrap();
        let b_first = without_block(&without_block(&two, "b").unwrap(), "a").unwrap();
        assert_eq!(a_first, original);
        assert_eq!(b_first, original);
    }

    #[test]
    fn crlf_conversion_is_not_a_hand_edit() {
        let applied = with_block(b"x\n", "inv", &body()).unwrap();
        let crlf = String::from_utf8(applied).unwrap().replace('\n', "\r\n");
        let file = parse(crlf.as_bytes()).unwrap();
        assert!(!file.block("inv").unwrap().is_hand_edited());
    }

    #[test]
    fn hand_edit_is_seen() {
        let applied = with_block(b"x\n", "inv", &body()).unwrap();
        let edited = String::from_utf8(applied)
            .unwrap()
            .replace("10.0.0.1", "10.0.0.2");
        assert!(parse(edited.as_bytes()).unwrap().blocks[0].is_hand_edited());
    }

    #[test]
    fn broken_markers_name_the_line() {
        let applied = String::from_utf8(with_block(b"x\n", "inv", &body()).unwrap()).unwrap();
        let no_end = applied.replace("# END stg-hosts inv\n", "");
        assert_eq!(parse(no_end.as_bytes()).unwrap_err().line, 2);
        let twice = format!("{applied}{applied}");
        assert!(parse(twice.as_bytes())
            .unwrap_err()
            .message
            .contains("appears twice"));
        assert!(parse(b"# END stg-hosts x\n")
            .unwrap_err()
            .message
            .contains("without a BEGIN"));
        assert!(parse(b"# BEGIN stg-hosts x\n")
            .unwrap_err()
            .message
            .contains("malformed"));
    }

    #[test]
    fn entries_skip_comments() {
        let e = parse_entry(0, b"10.0.0.1\ta b # c\r\n").unwrap();
        assert_eq!(e.names, ["a", "b"]);
        assert!(parse_entry(0, b"# 10.0.0.1 a").is_none());
        assert!(parse_entry(0, b"not-an-address a").is_none());
    }
}
