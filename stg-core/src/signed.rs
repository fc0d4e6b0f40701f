//! Signed streams: the signature lines stg-dump writes and stg-restore checks, and the
//! exact message each one signs. The signing (stg-dump) and the checking against an
//! allowed-signers file (stg-restore) live in the tools; what both ends must agree on is
//! here.
//!
//! A signed stream is cut into **parts**, each followed by a signature line, a SQL comment
//! at the top level of the SQL, so `zstdcat | psql` still reads the stream:
//!
//! ```text
//! -- stg-dump manifest: {...}                          part 0: the manifest line alone
//! -- stg-dump signature: {"part":0,...}
//! <SQL and COPY blocks>                                part 1 (about --signature-part-size)
//! -- stg-dump signature: {"part":1,...}
//! ...
//! -- stg-dump signature: {"part":N,"final":true,...}   after the last part
//! -- stg-dump trailer: {...}
//! ```
//!
//! A part is every byte after the previous signature line (part 0: from the start) up to
//! its own signature line. A COPY block longer than a part is written as several blocks of
//! the same table (each a whole `COPY ... FROM stdin;` ... `\.`), so a signature line can
//! sit between them. Each signature is an OpenSSH `SSHSIG` (namespace [`NAMESPACE`]) over
//! the [`message`] of its part: a few lines of text naming the stream (the SHA-256 of its
//! manifest line), the part's index, whether it is the last, its length, and the SHA-256 of
//! the stream from its first byte up to the signature line (so each side hashes the stream
//! once, the trailer's own running hash serving the signatures too).
//! Parts cannot be reordered, dropped, replayed from another stream or cut off at the end
//! without the signatures saying so, and each part is checked before any statement of it
//! runs. The trailer still covers every byte before it, signature lines included.
//! See: docs/stream.md, "Signed streams"; OpenSSH's PROTOCOL.sshsig.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How a signature line starts.
pub const SIGNATURE_PREFIX: &str = "-- stg-dump signature: ";

/// The `SSHSIG` namespace of a stream's signatures (`ssh-keygen -Y ... -n stg-stream`).
pub const NAMESPACE: &str = "stg-stream";

/// Longest signature line read (a signature is a few hundred bytes).
const MAX_LINE: usize = 8 * 1024;

/// What a signature line says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// The part's index: 0 is the manifest line, then 1, 2, ...
    pub part: u64,
    /// True after the stream's last part (the trailer follows).
    #[serde(rename = "final")]
    pub last: bool,
    /// The part's length in bytes.
    pub bytes: u64,
    /// The SHA-256 of every byte of the stream before this signature line (this part, and
    /// every part and signature line before it), hex.
    pub sha256: String,
    /// The `SSHSIG` of the part's [`message`]: the base64 between the armour lines of
    /// `ssh-keygen -Y sign`'s output, without line breaks.
    pub sshsig: String,
}

/// The stream's name in every signed message: the SHA-256 of its manifest line, hex.
#[must_use]
pub fn stream_id(manifest_line: &[u8]) -> String {
    hex::encode(Sha256::digest(manifest_line))
}

/// The text a part's signature signs (what `ssh-keygen -Y verify` is given on stdin).
#[must_use]
pub fn message(stream: &str, sig: &Signature) -> Vec<u8> {
    format!(
        "stg-stream signature v1\nstream {stream}\npart {}\nfinal {}\nbytes {}\nsha256 {}\n",
        sig.part,
        if sig.last { "yes" } else { "no" },
        sig.bytes,
        sig.sha256
    )
    .into_bytes()
}

/// The signature line for `sig`, with its newline.
#[must_use]
pub fn line(sig: &Signature) -> String {
    format!(
        "{SIGNATURE_PREFIX}{}\n",
        serde_json::to_string(sig).expect("a signature serializes")
    )
}

/// `Some(Ok(..))` for a well-formed signature line, `Some(Err(..))` for a line that starts
/// like one but is not, `None` for any other line.
///
/// Well-formed is exactly the bytes [`line()`] writes for the signature it holds: no other
/// JSON layout (a CR is JSON whitespace, and ends a `--` comment for the SQL lexer, so the
/// rest of such a line, signed by no one, would be SQL), no CRLF, nothing after it.
pub fn parse_line(line: &[u8]) -> Option<Result<Signature, String>> {
    let rest = line.strip_prefix(SIGNATURE_PREFIX.as_bytes())?;
    if line.len() > MAX_LINE {
        return Some(Err(format!(
            "a signature line of {} bytes (at most {MAX_LINE})",
            line.len()
        )));
    }
    let text = match std::str::from_utf8(rest) {
        Ok(text) => text.trim_end_matches(['\n', '\r']),
        Err(_) => return Some(Err("a signature line that is not UTF-8".into())),
    };
    Some(
        serde_json::from_str::<Signature>(text)
            .map_err(|e| format!("a malformed signature line ({e})"))
            .and_then(|sig| {
                let hex_ok = sig.sha256.len() == 64
                    && sig
                        .sha256
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
                if !hex_ok {
                    Err("a signature line whose sha256 is not 64 lower-case hex digits".into())
                } else if self::line(&sig).as_bytes() != line {
                    Err(
                        "a signature line not written as stg-dump writes one (its JSON \
                         laid out otherwise, a CR, or no newline)"
                            .into(),
                    )
                } else {
                    Ok(sig)
                }
            }),
    )
}

/// `sshsig` (the base64 of a signature line) as `ssh-keygen -Y sign` writes it: armoured,
/// in lines of 70 characters.
#[must_use]
pub fn armored(sshsig: &str) -> String {
    let mut out = String::from("-----BEGIN SSH SIGNATURE-----\n");
    for chunk in sshsig.as_bytes().chunks(70) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END SSH SIGNATURE-----\n");
    out
}

/// The base64 of an armoured `SSHSIG` (the armour lines and line breaks removed).
#[must_use]
pub fn unarmored(pem: &str) -> String {
    pem.lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect()
}

/// The length of the part being written or read (its bytes are hashed once, by the
/// stream's [`crate::stream::Tally`], which gives each signature its digest).
#[derive(Clone, Debug, Default)]
pub struct Part {
    bytes: u64,
}

impl Part {
    /// A part before its first byte.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes to the part.
    pub fn update(&mut self, bytes: &[u8]) {
        self.bytes += bytes.len() as u64;
    }

    /// Bytes so far.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.bytes
    }

    /// True before the first byte.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Ends the part: its length; the next part starts empty.
    pub fn finish(&mut self) -> u64 {
        std::mem::take(self).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_messages_are_stable() {
        let sig = Signature {
            part: 3,
            last: true,
            bytes: 42,
            sha256: "a".repeat(64),
            sshsig: "U1NIU0lH".into(),
        };
        let text = line(&sig);
        assert!(text.starts_with("-- stg-dump signature: {\"part\":3,\"final\":true,"));
        assert_eq!(parse_line(text.as_bytes()), Some(Ok(sig.clone())));
        assert_eq!(
            String::from_utf8(message("s", &sig)).unwrap(),
            format!(
                "stg-stream signature v1\nstream s\npart 3\nfinal yes\nbytes 42\nsha256 {}\n",
                "a".repeat(64)
            )
        );
        assert_eq!(parse_line(b"-- something else\n"), None);
        for bad in [
            "-- stg-dump signature: {}\n",
            "-- stg-dump signature: {\"part\":1,\"final\":false,\"bytes\":1,\"sha256\":\"x\",\"sshsig\":\"\"}\n",
            "-- stg-dump signature: {\"part\":1,\"final\":false,\"bytes\":1,\"sha256\":\"x\",\"sshsig\":\"\",\"more\":1}\n",
        ] {
            assert!(matches!(parse_line(bad.as_bytes()), Some(Err(_))), "{bad}");
        }
        // Only the bytes stg-dump writes: a CR is JSON whitespace but ends the comment for
        // the SQL lexer, so what follows it would be unsigned SQL (found by the
        // signed_stream fuzz target); other layouts and line ends are refused alike.
        let json = text.strip_prefix(SIGNATURE_PREFIX).unwrap().trim_end();
        for bad in [
            format!("{SIGNATURE_PREFIX}{{\r{}\n", &json[1..]),
            format!("{SIGNATURE_PREFIX}{{ {}\n", &json[1..]),
            format!("{SIGNATURE_PREFIX}{json}\r\n"),
            format!("{SIGNATURE_PREFIX}{json} \n"),
            format!("{SIGNATURE_PREFIX}{json}"),
            format!(
                "{SIGNATURE_PREFIX}{}\n",
                json.replace("\"part\":3", "\"part\": 3")
            ),
        ] {
            assert!(
                matches!(parse_line(bad.as_bytes()), Some(Err(_))),
                "{bad:?}"
            );
        }
        let long = "x".repeat(200);
        assert_eq!(unarmored(&armored(&long)), long);
        assert!(armored(&long)
            .lines()
            .all(|l| l.len() <= 70 || l.starts_with("-----")));
    }

    #[test]
    fn a_part_counts_what_it_was_given() {
        let mut part = Part::new();
        part.update(b"ab");
        part.update(b"c");
        assert_eq!(part.finish(), 3);
        assert!(part.is_empty());
        // What a signature signs is the stream so far, as the trailer's tally hashes it.
        let mut tally = crate::stream::Tally::new();
        tally.line(b"-- manifest\n");
        tally.line(b"SELECT 1;\n");
        assert_eq!(
            tally.sha256_so_far(),
            hex::encode(Sha256::digest(b"-- manifest\nSELECT 1;\n"))
        );
        assert_eq!(tally.sha256_so_far(), tally.finish().sha256);
    }
}
