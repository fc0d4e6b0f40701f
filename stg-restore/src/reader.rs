//! Reading a dump stream: decode (zstd or xz, [`crate::decode`]), split into lines, hold the manifest, count and hash
//! every line with [`stg_core::stream::Tally`], find the trailer, and hand the SQL on in
//! chunks of whole lines.
//!
//! Memory is bounded by one line plus one chunk: the stream is never held whole, and a
//! line longer than [`Options::max_line`] (`--max-line-size`, 64 MiB by default) is refused
//! once that much of it was read, naming its number. The
//! trailer counts only when it is outside a COPY block (inside one, a trailer-looking line
//! is data); anything after it is an error. For a plain `pg_dump [-C] | xz` stream (only with
//! `--accept-unverified`) the `CREATE DATABASE` and `\connect` lines of `-C` are dropped and
//! the database-level statements that name the dumped database are pointed at the incoming
//! one, so the data lands there and the live database is never touched.
//!
//! Not here: anything that talks to a database or to psql (see [`crate::load`]).

use std::io::{BufRead, BufReader, Read};

use stg_core::stream::{self, Manifest, Tally, Trailer};

use stg_core::signed::{self, Part, Signature};

use crate::decode::Decoder;
use crate::script::{Item, Splitter};
use crate::signers::{Signer, Trust};

/// Size of the decoded-side buffer and the target size of a chunk handed to psql.
pub const CHUNK: usize = 256 * 1024;

/// Longest first line accepted: a manifest is a few KiB; anything longer is not one.
const MAX_FIRST_LINE: usize = 16 * 1024 * 1024;

/// What is wrong with a stream. Always an input problem: the stream, not the machine. The
/// flag says the stream was refused for its signature (or for having none) where a trust
/// file is in effect, which stg-restore reports as a refusal (exit 1), not a bad stream.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StreamError(pub String, pub bool);

impl StreamError {
    /// A damaged or refused stream.
    pub fn new(message: impl Into<String>) -> Self {
        StreamError(message.into(), false)
    }

    /// A stream refused for its signature.
    pub fn signature(message: impl Into<String>) -> Self {
        StreamError(message.into(), true)
    }
}

/// The longest line accepted unless `--max-line-size` says otherwise (64 MiB).
pub const DEFAULT_MAX_LINE: usize = 64 << 20;

/// The smallest `--max-line-size` accepted: a manifest line alone is several hundred bytes.
pub const MIN_MAX_LINE: usize = 1 << 10;

/// Clap value parser for `--max-line-size`: a size ([`stg_core::size::parse`]) of at least
/// [`MIN_MAX_LINE`].
pub fn max_line_parser(text: &str) -> Result<usize, String> {
    let bytes = stg_core::size::parse(text)?;
    let bytes = usize::try_from(bytes).map_err(|_| format!("{text:?} is too large here"))?;
    if bytes < MIN_MAX_LINE {
        return Err(format!(
            "{text:?} is too small: a stream's first line alone needs more; at least 1K"
        ));
    }
    Ok(bytes)
}

/// How to read a stream: its bounds, and how to treat one that has no manifest.
#[derive(Clone, Debug)]
pub struct Options {
    /// Accept a plain `pg_dump` stream (no manifest, no trailer).
    pub accept_unverified: bool,
    /// For a plain `pg_dump -C` stream: the database name to put in place of the dumped
    /// one in database-level statements (the incoming database).
    pub rename_database_to: Option<String>,
    /// The longest line accepted, its newline included (`--max-line-size`, default
    /// [`DEFAULT_MAX_LINE`]): a longer one is refused, having held at most this much.
    pub max_line: usize,
    /// What the operator allows a stream beyond pg_dump's ordinary statements
    /// (`--allow-extension`, `--allow-foreign-data-wrapper`).
    pub allowed: crate::policy::Allowed,
    /// The keys a stream must be signed by (`--allowed-signers`); `None`: signatures are
    /// not required, and not checked.
    pub trust: Option<std::sync::Arc<Trust>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            accept_unverified: false,
            rename_database_to: None,
            max_line: DEFAULT_MAX_LINE,
            allowed: crate::policy::Allowed::default(),
            trust: None,
        }
    }
}

/// The end of a fully read stream.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The compression the stream was in.
    pub format: crate::decode::Codec,
    /// The manifest, when the stream has one.
    pub manifest: Option<Manifest>,
    /// What the trailer states (`None` for a plain stream).
    pub stated: Option<Trailer>,
    /// What was counted.
    pub counted: Trailer,
    /// Disagreements between stated and counted (empty when they agree or unverified).
    pub mismatches: Vec<String>,
    /// Decoded lines read, trailer included.
    pub lines: u64,
    /// Compressed bytes read from the input.
    pub compressed_bytes: u64,
    /// Things worth telling (lines of a `-C` dump handled, ...).
    pub warnings: Vec<String>,
    /// Who signed the stream: checked against the allowed signers when a trust file is in
    /// effect (then every part was), else only read from its first signature.
    pub signed_by: Option<String>,
    /// True when every part's signature was checked.
    pub signature_checked: bool,
}

impl Outcome {
    /// True when the stream had a manifest and its trailer matched.
    pub fn verified(&self) -> bool {
        self.stated.is_some() && self.mismatches.is_empty()
    }
}

/// Handling of a plain `pg_dump -C` stream's database-level lines.
#[derive(Default)]
struct DashC {
    /// The dumped database's name as pg_dump wrote it (quoted where needed), learnt from
    /// its `CREATE DATABASE` line.
    written_name: Option<String>,
    skipped_create: u32,
    skipped_connect: u32,
    rewritten: u32,
}

/// A stream being read.
pub struct Reader<R: Read> {
    input: BufReader<Decoder<R>>,
    tally: Tally,
    line: Vec<u8>,
    lines: u64,
    manifest: Option<Manifest>,
    options: Options,
    pending_first: Option<Vec<u8>>,
    stated: Option<Trailer>,
    dash_c: DashC,
    splitter: Splitter,
    /// Bytes of items handed out by the current [`Reader::fill`].
    filled: usize,
    ended: bool,
    /// The check of a signed stream's parts, where a trust file is in effect.
    signing: Option<Signing>,
    /// The first signature's key where nothing is checked (for the report).
    unchecked_signer: Option<String>,
    /// The signature line of part 0, read by [`Reader::open`], fed after the manifest.
    pending_second: Option<Vec<u8>>,
}

/// Where a signed stream's check has got to.
struct Signing {
    trust: std::sync::Arc<Trust>,
    /// The stream's name in its signed messages.
    stream: String,
    /// The index the next signature must have.
    next: u64,
    /// The part being read.
    part: Part,
    /// Items of the part being read, held until its signature is checked.
    held: Vec<Item>,
    /// Bytes of the part being read.
    held_bytes: usize,
    /// The signer of the parts checked so far.
    signer: Option<Signer>,
    /// The final signature was read: only the trailer may follow.
    last_seen: bool,
}

impl Signing {
    /// Checks the signature line `sig` against the part read since the last one;
    /// `so_far` is the SHA-256 (hex) of every byte of the stream before the line.
    fn check(&mut self, sig: &Signature, line_no: u64, so_far: &str) -> Result<(), StreamError> {
        let at = |why: String| {
            StreamError::signature(format!(
                "line {line_no}: the stream's signature is refused: {why}"
            ))
        };
        if self.last_seen {
            return Err(at("a signature after the final one".into()));
        }
        if sig.part != self.next {
            return Err(at(format!(
                "it signs part {} where part {} comes (parts reordered, dropped or from \
                 another stream)",
                sig.part, self.next
            )));
        }
        let bytes = self.part.finish();
        if sig.bytes != bytes || sig.sha256 != so_far {
            return Err(at(format!(
                "part {} is not what was signed ({bytes} bytes read, {} signed; a byte \
                 changed?)",
                sig.part, sig.bytes
            )));
        }
        let message = signed::message(&self.stream, sig);
        let signer = self
            .trust
            .check(&message, &sig.sshsig, stg_core::timestamp::now())
            .map_err(at)?;
        if let Some(first) = &self.signer {
            if first.fingerprint != signer.fingerprint {
                return Err(at(format!(
                    "part {} is signed by {signer}, part 0 by {first}",
                    sig.part
                )));
            }
        }
        self.signer = Some(signer);
        self.next += 1;
        self.last_seen = sig.last;
        Ok(())
    }
}

/// Reads the decoded input up to and including the next newline (or to the end) into
/// `line`, which must be empty. `Ok(None)` when the line is longer than `limit` bytes: by
/// then `line` holds at most `limit` bytes, and the input's buffer the rest of one read.
fn read_line<R: Read>(
    input: &mut BufReader<Decoder<R>>,
    line: &mut Vec<u8>,
    limit: usize,
) -> Result<Option<usize>, StreamError> {
    loop {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(decode_error(input.get_ref(), &e)),
        };
        if buf.is_empty() {
            return Ok(Some(line.len()));
        }
        let (take, ends) = match buf.iter().position(|b| *b == b'\n') {
            Some(at) => (at + 1, true),
            None => (buf.len(), false),
        };
        if take > limit - line.len() {
            return Ok(None);
        }
        // Grown by doubling, but never past the bound (`extend` alone could reserve twice it).
        if line.capacity() - line.len() < take {
            let want = (line.capacity() * 2).max(line.len() + take).min(limit);
            line.reserve_exact(want - line.len());
        }
        line.extend_from_slice(&buf[..take]);
        input.consume(take);
        if ends {
            return Ok(Some(line.len()));
        }
    }
}

/// What a decoder's error means for the stream, in words an operator can act on.
fn decode_error<R: Read>(source: &Decoder<R>, e: &std::io::Error) -> StreamError {
    let decoded = source.total_out();
    let format = source.codec().name();
    let message = e.to_string();
    if let Some(refused) = crate::decode::refusal(source.codec(), e) {
        StreamError::new(refused)
    } else if e.kind() == std::io::ErrorKind::UnexpectedEof
        || message.contains("incomplete frame")
        || message.contains("premature end")
    {
        StreamError::new(format!(
            "the stream is truncated: the {format} data ends early, after {decoded} decoded bytes"
        ))
    } else {
        StreamError::new(format!(
            "the {format} data is corrupt ({e}), after {decoded} decoded bytes"
        ))
    }
}

/// The error for line `no`, longer than `limit`.
fn too_long(no: u64, limit: usize) -> StreamError {
    let bound = stg_core::size::describe(limit as u64);
    StreamError::new(format!(
        "line {no} of the stream is longer than {bound}, the bound on one line \
         (--max-line-size); stg-restore refuses it rather than hold it in memory. If the \
         stream is genuine (a row with very large values), restore it with a larger \
         --max-line-size, e.g. 1G"
    ))
}

/// Reads one SQL identifier as written (bare or double-quoted) from the start of `s`;
/// returns it as written and the rest.
fn written_identifier(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('"') {
        let bytes = rest.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'"' {
                if bytes.get(i + 1) == Some(&b'"') {
                    i += 2;
                    continue;
                }
                return Some((&s[..i + 2], &s[i + 2..]));
            }
            i += 1;
        }
        None
    } else {
        let end = s
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
            .unwrap_or(s.len());
        (end > 0).then(|| (&s[..end], &s[end..]))
    }
}

impl<R: Read> Reader<R> {
    /// Starts reading: decodes up to the end of the first line and checks it is a manifest
    /// (or, with `accept_unverified`, that the stream is plain SQL).
    pub fn open(input: R, options: Options) -> Result<Self, StreamError> {
        let splitter = Splitter::new(
            options.rename_database_to.clone(),
            options.allowed.clone(),
            options.max_line,
        );
        let decoder = Decoder::new(input).map_err(StreamError::new)?;
        let mut reader = Reader {
            input: BufReader::with_capacity(CHUNK, decoder),
            tally: Tally::new(),
            line: Vec::new(),
            lines: 0,
            manifest: None,
            options,
            pending_first: None,
            stated: None,
            dash_c: DashC::default(),
            splitter,
            filled: 0,
            ended: false,
            signing: None,
            unchecked_signer: None,
            pending_second: None,
        };
        let mut first = Vec::new();
        let limit = reader.options.max_line.min(MAX_FIRST_LINE);
        let Some(n) = read_line(&mut reader.input, &mut first, limit)? else {
            if limit < MAX_FIRST_LINE {
                return Err(too_long(1, limit));
            }
            return Err(StreamError::new(format!(
                "the stream's first line is longer than {}: not a dump stream",
                stg_core::size::describe(MAX_FIRST_LINE as u64)
            )));
        };
        if n == 0 {
            return Err(StreamError::new(format!(
                "the stream is empty (the {} data decodes to nothing)",
                reader.input.get_ref().codec().name()
            )));
        }
        if !first.ends_with(b"\n") {
            return Err(StreamError::new(
                "the stream's first line is incomplete (the stream ends inside it): not a dump \
                 stream",
            ));
        }
        match stream::parse_manifest_line(&first) {
            Err(message) => return Err(StreamError::new(message)),
            Ok(Some(manifest)) => {
                reader.manifest = Some(manifest);
                reader.splitter.no_database_statements();
            }
            Ok(None) if reader.options.accept_unverified => {}
            Ok(None) => {
                return Err(StreamError::new(
                    "the stream has no stg-dump manifest (its first line is not \
                     `-- stg-dump manifest: ...`); a plain `pg_dump | xz` stream is accepted \
                     only with --accept-unverified, and then nothing is verified",
                ))
            }
        }
        if let Some(trust) = reader.options.trust.clone() {
            reader.start_signed(&first, trust)?;
        }
        reader.pending_first = Some(first);
        Ok(reader)
    }

    /// A trust file is in effect: the line after the manifest must sign it (part 0), and is
    /// checked before the manifest is used for anything.
    fn start_signed(
        &mut self,
        first: &[u8],
        trust: std::sync::Arc<Trust>,
    ) -> Result<(), StreamError> {
        let unsigned = |why: &str| {
            StreamError::signature(format!(
                "the stream is refused: {why}, and {} requires every stream to be signed by \
                 one of its keys (stg-dump --signing-key)",
                trust.path().display()
            ))
        };
        if self.manifest.is_none() {
            return Err(unsigned("a plain pg_dump stream has no signature"));
        }
        let mut second = Vec::new();
        let Some(_) = read_line(&mut self.input, &mut second, self.options.max_line)? else {
            return Err(too_long(2, self.options.max_line));
        };
        let sig = match signed::parse_line(&second) {
            None => {
                return Err(unsigned(
                    "it is not signed (no signature after its manifest)",
                ))
            }
            Some(Err(why)) => return Err(StreamError::signature(format!("line 2: {why}"))),
            Some(Ok(sig)) => sig,
        };
        let mut signing = Signing {
            stream: signed::stream_id(first),
            trust,
            next: 0,
            part: Part::new(),
            held: Vec::new(),
            held_bytes: 0,
            signer: None,
            last_seen: false,
        };
        signing.part.update(first);
        // Before part 0's signature line the stream is its manifest line, whose SHA-256 is
        // the stream's name.
        let so_far = signing.stream.clone();
        signing.check(&sig, 2, &so_far)?;
        self.signing = Some(signing);
        self.pending_second = Some(second);
        Ok(())
    }

    /// The manifest, when the stream has one.
    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }

    /// Decoded bytes counted so far (trailer excluded).
    pub fn bytes(&self) -> u64 {
        self.tally.bytes()
    }

    /// Rows counted so far, all tables.
    pub fn rows(&self) -> u64 {
        self.tally.tables().values().sum()
    }

    /// Appends [`Item`]s to `out` until about `target` bytes were handed out or the
    /// stream ends. Returns `false` once the stream has ended (`out` may still hold the
    /// last items). An error names what is wrong with the stream: damaged data, or a
    /// statement that is refused ([`crate::policy`]).
    pub fn fill(&mut self, out: &mut Vec<Item>, target: usize) -> Result<bool, StreamError> {
        self.filled = 0;
        if let Some(first) = self.pending_first.take() {
            self.lines += 1;
            self.feed(first, out)?;
            if let Some(second) = self.pending_second.take() {
                self.lines += 1;
                self.feed(second, out)?;
            }
        }
        while self.filled < target {
            if self.ended {
                return Ok(false);
            }
            let mut line = std::mem::take(&mut self.line);
            line.clear();
            let Some(n) = read_line(&mut self.input, &mut line, self.options.max_line)? else {
                return Err(too_long(self.lines + 1, self.options.max_line));
            };
            if n == 0 {
                self.ended = true;
                let inside = if self.tally.in_copy() {
                    " (it ends inside a COPY block)"
                } else {
                    ""
                };
                if self.manifest.is_some() && self.stated.is_none() {
                    return Err(StreamError::new(format!(
                        "the stream is truncated: it ends after {} lines without the \
                         stg-dump trailer{inside}",
                        self.lines
                    )));
                }
                if self.tally.in_copy() {
                    return Err(StreamError::new(format!(
                        "the stream ends after {} lines{inside}",
                        self.lines
                    )));
                }
                self.splitter.finish(out).map_err(StreamError::new)?;
                self.line = line;
                return Ok(false);
            }
            self.lines += 1;
            if self.stated.is_some() {
                return Err(StreamError::new(format!(
                    "the stream has data after its trailer (line {})",
                    self.lines
                )));
            }
            // See: the trailer-lookalike regression test: a line inside a function body or a
            // string that looks like the trailer is data.
            if self.manifest.is_some() && self.tally.at_top_level() {
                if let Some(trailer) = stream::parse_trailer_line(&line) {
                    if let Some(signing) = &self.signing {
                        if !signing.last_seen {
                            return Err(StreamError::signature(format!(
                                "line {}: the stream's signature is refused: its trailer \
                                 comes before the final signature (the stream was cut short \
                                 and given a new trailer?)",
                                self.lines
                            )));
                        }
                    }
                    self.stated = Some(trailer.map_err(StreamError::new)?);
                    self.splitter.finish(out).map_err(StreamError::new)?;
                    self.line = line;
                    continue;
                }
            }
            if self.tally.between_tokens() {
                if let Some(sig) = signed::parse_line(&line) {
                    self.signature_line(sig, &line, out)?;
                    self.feed(line, out)?;
                    continue;
                }
            }
            let Some(signing) = &mut self.signing else {
                self.feed(line, out)?;
                continue;
            };
            if signing.last_seen {
                return Err(StreamError::signature(format!(
                    "line {}: the stream's signature is refused: data after its final \
                     signature",
                    self.lines
                )));
            }
            signing.part.update(&line);
            signing.held_bytes += line.len();
            if signing.held_bytes > self.options.max_line {
                return Err(StreamError::signature(format!(
                    "line {}: the stream's signature is refused: a part of more than {} without \
                     a signature (the bound on what is held before it is checked; \
                     --max-line-size raises it)",
                    self.lines,
                    stg_core::size::describe(self.options.max_line as u64)
                )));
            }
            let mut held = std::mem::take(&mut signing.held);
            let fed = self.feed(line, &mut held);
            if let Some(signing) = &mut self.signing {
                signing.held = held;
            }
            fed?;
        }
        Ok(!self.ended)
    }

    /// A signature line at the top level: where a trust file is in effect, the part before
    /// it is checked and its items handed on; else its key is noted for the report.
    fn signature_line(
        &mut self,
        sig: Result<Signature, String>,
        line: &[u8],
        out: &mut Vec<Item>,
    ) -> Result<(), StreamError> {
        let no = self.lines;
        let Some(signing) = &mut self.signing else {
            if self.unchecked_signer.is_none() {
                if let Ok(sig) = &sig {
                    self.unchecked_signer = crate::signers::fingerprint_of(&sig.sshsig);
                }
            }
            return Ok(());
        };
        let sig = sig.map_err(|why| StreamError::signature(format!("line {no}: {why}")))?;
        signing.check(&sig, no, &self.tally.sha256_so_far())?;
        out.append(&mut signing.held);
        signing.held_bytes = 0;
        let _ = line;
        Ok(())
    }

    /// Counts one line and hands it to the splitter as the tally sees it: a COPY header,
    /// data, end marker, or SQL (a `-C` dump's database lines first rewritten or dropped).
    fn feed(&mut self, line: Vec<u8>, out: &mut Vec<Item>) -> Result<(), StreamError> {
        let was_in_copy = self.tally.in_copy();
        self.tally.line(&line);
        self.filled += line.len();
        let no = self.lines;
        let result = match (was_in_copy, self.tally.in_copy()) {
            (false, true) => self.splitter.copy_header(no, &line, out),
            (true, true) => {
                self.splitter.copy_data(&line, out);
                Ok(())
            }
            (true, false) => {
                self.splitter.copy_end(out);
                Ok(())
            }
            (false, false) => {
                if self.manifest.is_none() {
                    if let Some(replacement) = self.dash_c_line(&line) {
                        let result = self.splitter.sql(no, &replacement, out);
                        self.line = line;
                        return result.map_err(StreamError::new);
                    }
                }
                self.splitter.sql(no, &line, out)
            }
        };
        self.line = line;
        result.map_err(StreamError::new)
    }

    /// For a plain stream: `Some(replacement)` when a `-C` line must not reach psql as is.
    fn dash_c_line(&mut self, line: &[u8]) -> Option<Vec<u8>> {
        let text = std::str::from_utf8(line).ok()?;
        if let Some(rest) = text.strip_prefix("CREATE DATABASE ") {
            if let Some((name, _)) = written_identifier(rest) {
                self.dash_c.written_name = Some(name.to_owned());
            }
            self.dash_c.skipped_create += 1;
            return Some(Vec::new());
        }
        if text.starts_with("\\connect ") || text.starts_with("\\c ") {
            self.dash_c.skipped_connect += 1;
            return Some(Vec::new());
        }
        let name = self.dash_c.written_name.as_deref()?;
        let target = self.options.rename_database_to.as_deref()?;
        let is_db_statement = text.starts_with("ALTER DATABASE ")
            || text.starts_with("COMMENT ON DATABASE ")
            || text.starts_with("SECURITY LABEL ")
            || ((text.starts_with("GRANT ") || text.starts_with("REVOKE "))
                && text.contains(" ON DATABASE "));
        if !is_db_statement {
            return None;
        }
        let needle = format!("DATABASE {name}");
        let at = text.find(&needle)?;
        let after = &text[at + needle.len()..];
        if !(after.starts_with(' ') || after.starts_with(';')) {
            return None;
        }
        self.dash_c.rewritten += 1;
        Some(
            format!(
                "{}DATABASE {}{after}",
                &text[..at],
                crate::sql::ident(target)
            )
            .into_bytes(),
        )
    }

    /// Ends reading (after [`Reader::fill`] returned `false`): compares the trailer with
    /// what was counted.
    pub fn finish(self) -> Outcome {
        let compressed_bytes = self.input.get_ref().total_in();
        let format = self.input.get_ref().codec();
        let counted = self.tally.finish();
        let mismatches = self
            .stated
            .as_ref()
            .map(|stated| stream::trailer_mismatches(stated, &counted))
            .unwrap_or_default();
        let mut warnings = self.splitter.warnings();
        if self.manifest.is_none() {
            warnings.push(
                "unverified stream: no stg-dump manifest or trailer, so no checksum or row \
                 count was checked (--accept-unverified)"
                    .to_owned(),
            );
            let d = &self.dash_c;
            if d.skipped_create > 0 || d.skipped_connect > 0 {
                warnings.push(format!(
                    "pg_dump -C stream: skipped {} CREATE DATABASE and {} \\connect line(s); \
                     rewrote {} database-level statement(s) to the incoming database",
                    d.skipped_create, d.skipped_connect, d.rewritten
                ));
            }
        }
        let signature_checked = self.signing.is_some();
        let signed_by = match &self.signing {
            Some(s) => s.signer.as_ref().map(ToString::to_string),
            None => self
                .unchecked_signer
                .as_ref()
                .map(|f| format!("{f} (not checked: no allowed signers)")),
        };
        Outcome {
            format,
            manifest: self.manifest,
            stated: self.stated,
            counted,
            mismatches,
            lines: self.lines,
            compressed_bytes,
            warnings,
            signed_by,
            signature_checked,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xz(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 1);
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn sample_manifest() -> String {
        stream::manifest_line(&Manifest::example())
    }

    fn with_trailer(body: &str) -> String {
        let mut tally = Tally::new();
        for line in body.split_inclusive('\n') {
            tally.line(line.as_bytes());
        }
        format!("{body}{}", stream::trailer_line(&tally.finish()))
    }

    /// The items as SQL text again (statements one per line, blanks and comments gone).
    fn render(items: &[Item]) -> String {
        let mut out = String::new();
        for item in items {
            match item {
                Item::Statement(s) => {
                    out.push_str(s.sql.trim_start());
                    out.push('\n');
                }
                Item::CopyBegin { header, .. } => {
                    let columns = header.columns.join(", ");
                    for part in [
                        "COPY ",
                        &header.qualified,
                        " (",
                        &columns,
                        ") FROM stdin;\n",
                    ] {
                        out.push_str(part);
                    }
                }
                Item::CopyData(data) => out.push_str(std::str::from_utf8(data).unwrap()),
                Item::CopyEnd { .. } => out.push_str("\\.\n"),
            }
        }
        out
    }

    fn read_all(data: &[u8], options: Options) -> Result<(Vec<u8>, Outcome), StreamError> {
        let mut reader = Reader::open(data, options)?;
        let mut out = Vec::new();
        loop {
            let mut chunk = Vec::new();
            let more = reader.fill(&mut chunk, 7)?;
            out.extend(chunk);
            if !more {
                break;
            }
        }
        Ok((render(&out).into_bytes(), reader.finish()))
    }

    #[test]
    fn verified_stream_passes_sql_on_without_the_trailer() {
        let sql = "SET search_path = public;\nCOPY public.t (a) FROM stdin;\n1\n-- stg-dump trailer: {}\n\\.\n";
        let body = format!("{}{sql}", sample_manifest());
        let (out, outcome) =
            read_all(&xz(with_trailer(&body).as_bytes()), Options::default()).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), sql);
        assert!(outcome.verified(), "{:?}", outcome.mismatches);
        assert_eq!(outcome.counted.tables["public.t"], 2);
    }

    #[test]
    fn concatenated_xz_streams_are_one_stream() {
        let whole = with_trailer(&format!("{}CREATE SCHEMA s1;\n", sample_manifest()));
        let (a, b) = whole.split_at(whole.len() / 2);
        let mut data = xz(a.as_bytes());
        data.extend(xz(b.as_bytes()));
        let (_, outcome) = read_all(&data, Options::default()).unwrap();
        assert!(outcome.verified());
    }

    #[test]
    fn missing_trailer_data_after_it_and_mismatch_are_refused() {
        let body = format!("{}CREATE SCHEMA s1;\n", sample_manifest());
        let err = read_all(&xz(body.as_bytes()), Options::default()).unwrap_err();
        assert!(err.0.contains("without the stg-dump trailer"), "{err}");

        let after = format!("{}CREATE SCHEMA s2;\n", with_trailer(&body));
        let err = read_all(&xz(after.as_bytes()), Options::default()).unwrap_err();
        assert!(err.0.contains("after its trailer"), "{err}");

        let flipped = with_trailer(&body).replace("SCHEMA s1", "SCHEMA s2");
        let (_, outcome) = read_all(&xz(flipped.as_bytes()), Options::default()).unwrap();
        assert!(!outcome.verified());
        assert!(
            outcome.mismatches[0].contains("SHA-256"),
            "{:?}",
            outcome.mismatches
        );
    }

    #[test]
    fn truncated_and_non_xz_input_are_named() {
        let data =
            xz(with_trailer(&format!("{}CREATE SCHEMA s1;\n", sample_manifest())).as_bytes());
        let err = read_all(&data[..data.len() - 9], Options::default()).unwrap_err();
        assert!(err.0.contains("truncated"), "{err}");
        let err = read_all(b"CREATE SCHEMA s1;\n", Options::default()).unwrap_err();
        assert!(err.0.contains("neither zstd nor xz"), "{err}");
        let err = read_all(b"", Options::default()).unwrap_err();
        assert!(err.0.contains("empty"), "{err}");
    }

    #[test]
    fn a_line_past_the_bound_is_refused_naming_it_and_the_flag() {
        let bounded = |max_line| Options {
            max_line,
            ..Options::default()
        };
        let manifest = sample_manifest();
        // The line of exactly the bound, newline included, passes; one byte more does not.
        let body = |len: usize| {
            let line = format!("--{}\n", "x".repeat(len - 3));
            with_trailer(&format!("{manifest}{line}CREATE SCHEMA s1;\n"))
        };
        let bound = 4 << 10;
        assert!(read_all(&xz(body(bound).as_bytes()), bounded(bound))
            .unwrap()
            .1
            .verified());
        let err = read_all(&xz(body(bound + 1).as_bytes()), bounded(bound)).unwrap_err();
        assert!(
            err.0
                .starts_with("line 2 of the stream is longer than 4 KiB")
                && err.0.contains("--max-line-size"),
            "{err}"
        );
        // The manifest itself is a line like the others.
        let err = read_all(&xz(body(bound).as_bytes()), bounded(manifest.len() - 1)).unwrap_err();
        assert!(err.0.starts_with("line 1 of the stream"), "{err}");
    }

    #[test]
    fn plain_stream_needs_the_flag_and_dash_c_lines_are_handled() {
        let plain = "--\nCREATE DATABASE \"my db\" WITH TEMPLATE = template0;\n\
                     ALTER DATABASE \"my db\" OWNER TO fas2;\n\\connect \"my db\"\n\
                     ALTER DATABASE \"my db\" SET work_mem TO '8MB';\n\
                     GRANT CONNECT ON DATABASE \"my db\" TO app;\nCREATE SCHEMA s1;\n";
        let err = read_all(&xz(plain.as_bytes()), Options::default()).unwrap_err();
        assert!(err.0.contains("--accept-unverified"), "{err}");
        let options = Options {
            accept_unverified: true,
            rename_database_to: Some("x__stg_incoming".into()),
            ..Options::default()
        };
        let (out, outcome) = read_all(&xz(plain.as_bytes()), options).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "ALTER DATABASE \"x__stg_incoming\" OWNER TO fas2;\n\
             ALTER DATABASE \"x__stg_incoming\" SET work_mem TO '8MB';\n\
             GRANT CONNECT ON DATABASE \"x__stg_incoming\" TO app;\nCREATE SCHEMA s1;\n"
        );
        assert!(!outcome.verified());
        assert!(outcome
            .warnings
            .iter()
            .any(|w| w.contains("skipped 1 CREATE")));
    }
}
