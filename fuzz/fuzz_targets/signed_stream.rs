//! stg-restore's check of a signed stream (`stg_core::signed`, `stg_restore::signers`,
//! `stg_restore::reader`): what an attacker who can change the stream's bytes, but holds no
//! allowed key, can make the reader hand on to the loader.
//!
//! Once per process the target makes two Ed25519 keys from fixed seeds, one named in an
//! allowed-signers file (`namespaces="stg-stream"`), one not, and writes two genuine
//! signed streams of the same few pg_dump-like statements and COPY blocks, in parts of a
//! few dozen bytes: one by stg-dump's own pipeline (`stg_dump::pipeline::stream` with
//! `stg_dump::signing::Signer`), which cuts the COPY block of `public.t` (ended, signed,
//! started again); one with the `Signer` alone, cut by hand where docs/stream.md lets a
//! part end, inside statements too (the pipeline, today, never ends a part after a plain
//! SQL line). Each is written again signed by the other key, and again, by the allowed
//! key, under another manifest (another stream's signature lines to replay). Each genuine
//! stream, read with the allowed signers in effect, is accepted whole; the items it hands
//! on are its reference.
//!
//! An input is a flags byte, a key byte and edits. Flags bit 0: the edits apply to the
//! whole stream, trailer included, and the trailer is kept (else they apply to what comes
//! before the trailer, and the trailer is recomputed over the edited bytes, as an attacker
//! can always do: only the signatures stand in the way); bit 1: `fill` is given a budget
//! of one byte (else 64 KiB); bit 2: the stream cut by hand (else the pipeline's). Key
//! byte bit `i % 8`: part `i`'s signature line is the other key's. Then edits of 4 bytes
//! each (offset high, offset low, taken modulo the length + 1; operation; byte):
//! overwrite, insert or delete a byte, truncate, delete lines, copy a line, insert a line
//! of the other stream, put a line of the other stream in place of one; edits stop at 64
//! KiB. Empty input: the pipeline's genuine stream.
//!
//! Properties:
//! - reading never panics;
//! - every item handed on (also those `fill` appends before it fails, which the loader
//!   sends) is the reference's item at its position: the same tokens, the same text but
//!   for signature lines (a part may end inside a statement, so a signature line, a
//!   comment, can be inside a statement's text), the same class and owners; the same
//!   COPY headers, data and row counts. Nothing of an unauthenticated part, and nothing of
//!   a signature line but a comment, reaches the loader;
//! - a stream read to the end and verified (trailer and every signature) hands on the
//!   reference exactly;
//! - where the first byte that differs from the stream as assembled lies inside part `k`
//!   (part 0: the manifest line), or part `k` is signed by the other key, the reader
//!   refuses the stream, and before that hands on no more items than the parts before `k`
//!   release (counted by reading, with no signatures checked, the stream cut after part
//!   `k - 1`'s signature): no item that needs a byte of part `k` is handed on.
//!
//! Seeded (`fuzz/seeds/signed_stream/`) with both genuine streams, an edit in part 1, a
//! truncation, a part signed by the other key, another stream's signature in place of
//! one, an edited trailer kept, a part dropped, a signature line with a space more.

#![no_main]

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use ssh_key::private::{Ed25519Keypair, KeypairData};
use ssh_key::{LineEnding, PrivateKey};
use stg_core::copy_text::CopyHeader;
use stg_core::signed::{self, SIGNATURE_PREFIX};
use stg_core::sql_lexer::{self, Kind};
use stg_core::stream::{manifest_line, trailer_line, Manifest, Tally};
use stg_dump::compress::{Compression, Sink};
use stg_dump::pipeline::{self, Masking, Progress};
use stg_dump::rules::Rules;
use stg_dump::schema::Schema;
use stg_dump::signing::Signer;
use stg_restore::policy::Class;
use stg_restore::reader::{Options, Reader};
use stg_restore::script::Item;
use stg_restore::signers::Trust;

/// What pg_dump writes, in small: settings, a table over several lines, its owner, two
/// COPY blocks, a constraint over two lines.
const DUMP: &str = "SET statement_timeout = 0;\n\
SET client_encoding = 'UTF8';\n\
CREATE TABLE public.t (\n    a integer,\n    b text,\n    c text\n);\n\
ALTER TABLE public.t OWNER TO fas2;\n\
COPY public.t (a, b, c) FROM stdin;\n1\tone\tx\n2\ttwo\ty\n3\tthree\tz\n4\tfour\t\\N\n\\.\n\
CREATE TABLE public.u (a integer);\n\
COPY public.u (a) FROM stdin;\n7\n\\.\n\
ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (a);\n";

/// stg-dump's `--signature-part-size`, small (its CLI minimum is 64 KiB; the pipeline
/// takes any size).
const PART_SIZE: u64 = 60;

/// The same SQL cut by hand where docs/stream.md lets a part end (a line between two
/// tokens: inside a statement too; inside a COPY block after a row, the block ended and
/// started again): parts 1 to N, each followed by its signature.
const HAND: &[&str] = &[
    "SET statement_timeout = 0;\nSET client_encoding = 'UTF8';\nCREATE TABLE public.t (\n    a integer,\n",
    "    b text,\n    c text\n);\nALTER TABLE public.t OWNER TO fas2;\n",
    "COPY public.t (a, b, c) FROM stdin;\n1\tone\tx\n2\ttwo\ty\n\\.\n",
    "COPY public.t (a, b, c) FROM stdin;\n3\tthree\tz\n4\tfour\t\\N\n\\.\nCREATE TABLE public.u (a integer);\n\
     COPY public.u (a) FROM stdin;\n7\n\\.\nALTER TABLE ONLY public.t\n",
    "    ADD CONSTRAINT t_pkey PRIMARY KEY (a);\n",
];

/// An item as compared with the reference.
#[derive(Debug, PartialEq)]
enum Seen {
    Statement {
        /// `None`: the text does not lex alone.
        tokens: Option<Vec<Kind>>,
        /// The text without its signature lines.
        text: String,
        class: Class,
        owners: Vec<String>,
    },
    CopyBegin(CopyHeader),
    CopyData(Vec<u8>),
    CopyEnd(u64),
}

fn seen(item: &Item) -> Seen {
    match item {
        Item::Statement(s) => Seen::Statement {
            tokens: sql_lexer::tokens(s.sql.as_bytes())
                .map(|tokens| tokens.into_iter().map(|t| t.kind).collect()),
            text: s
                .sql
                .split_inclusive('\n')
                .filter(|line| !line.starts_with(SIGNATURE_PREFIX))
                .collect(),
            class: s.class.clone(),
            owners: s.owners.iter().map(|o| o.name.clone()).collect(),
        },
        Item::CopyBegin { header, .. } => Seen::CopyBegin(header.clone()),
        Item::CopyData(data) => Seen::CopyData(data.clone()),
        Item::CopyEnd { rows } => Seen::CopyEnd(*rows),
    }
}

/// One genuine signed stream and what reading it gives.
struct Layout {
    /// Part `k`'s bytes (part 0: the manifest line).
    parts: Vec<Vec<u8>>,
    /// Part `k`'s signature line: `[allowed key, other key]`.
    signatures: Vec<[Vec<u8>; 2]>,
    /// The stream's trailer line.
    trailer: Vec<u8>,
    /// Lines of the same stream under another manifest, signed by the allowed key.
    other: Vec<Vec<u8>>,
    /// The items the stream hands on.
    reference: Vec<Seen>,
    /// `released[k]`: the items of the parts before `k` (what may be handed on before part
    /// `k`'s signature is checked).
    released: Vec<usize>,
}

struct Fixture {
    /// Reading with the allowed signers in effect.
    options: Options,
    /// As stg-dump's pipeline cuts [`DUMP`], and as [`HAND`] is cut.
    layouts: [Layout; 2],
}

fn zstd(plain: &[u8]) -> Vec<u8> {
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).expect("zstd");
    enc.write_all(plain).expect("compress");
    enc.finish().expect("finish")
}

fn trailer_for(body: &[u8]) -> Vec<u8> {
    let mut tally = Tally::new();
    for line in body.split_inclusive(|b| *b == b'\n') {
        tally.line(line);
    }
    trailer_line(&tally.finish()).into_bytes()
}

/// A private key file (0600) for the seed, and its public key line.
fn key(dir: &Path, name: &str, seed: u8) -> (PathBuf, String) {
    let pair = Ed25519Keypair::from_seed(&[seed; 32]);
    let key = PrivateKey::new(KeypairData::from(pair), format!("{name}@stg-fuzz")).expect("key");
    let path = dir.join(name);
    let text = key.to_openssh(LineEnding::LF).expect("private key text");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .expect("key file");
    file.write_all(text.as_bytes()).expect("write key");
    let public = key.public_key().to_openssh().expect("public key text");
    (path, public)
}

/// The plain stream stg-dump writes for [`DUMP`] under `manifest`, signed with `key`:
/// everything before the trailer, and the trailer line.
fn dump(key: &Path, manifest: &Manifest) -> (Vec<u8>, Vec<u8>) {
    let schema = Schema {
        tables: Default::default(),
        ancestors: Default::default(),
        foreign_keys: Vec::new(),
        unique: Default::default(),
    };
    let rules = Rules::default();
    let masking = Masking {
        schema: &schema,
        rules: &rules,
        keyed: None,
        strip_connections: false,
        large_objects: None,
    };
    let signer = Signer::open(key, PART_SIZE).expect("signer");
    let mut sink = Sink::new(Vec::new(), Compression::Zstd(1), 1).expect("sink");
    let trailer = pipeline::stream(
        DUMP.as_bytes(),
        &manifest_line(manifest),
        &masking,
        &mut sink,
        &mut Progress::new(false),
        Some(signer),
    )
    .expect("the pipeline");
    let (out, _) = sink.finish().expect("finish");
    let body = zstd::decode_all(&out[..]).expect("decode");
    let trailer = trailer_line(&trailer).into_bytes();
    assert_eq!(trailer, trailer_for(&body), "the pipeline's trailer");
    (body, trailer)
}

/// The stream of [`HAND`]'s parts under `manifest`, signed with `key` by stg-dump's
/// `Signer` as the pipeline calls it: everything before the trailer, and the trailer line.
fn hand(key: &Path, manifest: &Manifest) -> (Vec<u8>, Vec<u8>) {
    let mut signer = Signer::open(key, u64::MAX).expect("signer");
    let manifest = manifest_line(manifest);
    let mut body = manifest.clone().into_bytes();
    body.extend_from_slice(signer.start(manifest.as_bytes()).expect("sign").as_bytes());
    for (i, part) in HAND.iter().enumerate() {
        signer.update(part.as_bytes());
        body.extend_from_slice(part.as_bytes());
        // What the signature signs: the stream so far, as the pipeline's tally hashes it.
        let mut tally = Tally::new();
        for line in body.split_inclusive(|b| *b == b'\n') {
            tally.line(line);
        }
        let sig = signer
            .sign(i + 1 == HAND.len(), tally.sha256_so_far())
            .expect("sign");
        body.extend_from_slice(sig.as_bytes());
    }
    let trailer = trailer_for(&body);
    (body, trailer)
}

/// Splits a signed stream's body into its parts and signature lines.
fn cut(body: &[u8]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (mut parts, mut signatures) = (Vec::new(), Vec::new());
    let mut part = Vec::new();
    for line in body.split_inclusive(|b| *b == b'\n') {
        match signed::parse_line(line) {
            Some(Ok(sig)) => {
                assert_eq!(sig.part, parts.len() as u64, "signature lines in order");
                parts.push(std::mem::take(&mut part));
                signatures.push(line.to_vec());
            }
            Some(Err(why)) => panic!("stg-dump wrote a bad signature line: {why}"),
            None => part.extend_from_slice(line),
        }
    }
    assert!(part.is_empty(), "the body ends with a signature line");
    (parts, signatures)
}

/// Reads `plain` (zstd-compressed first): the items handed on, and whether the stream was
/// read to the end (`Some(verified)`: its trailer matched, and with a trust in effect
/// every signature was checked) or refused (`None`).
fn read(plain: &[u8], options: &Options, budget: usize) -> (Vec<Seen>, Option<bool>) {
    let compressed = zstd(plain);
    let mut handed = Vec::new();
    let Ok(mut reader) = Reader::open(&compressed[..], options.clone()) else {
        return (handed, None);
    };
    loop {
        let mut items = Vec::new();
        let more = reader.fill(&mut items, budget);
        // The loader sends the items before an error too.
        handed.extend(items.iter().map(seen));
        match more {
            Ok(true) => {}
            Ok(false) => {
                let outcome = reader.finish();
                let verified =
                    outcome.verified() && outcome.signature_checked == options.trust.is_some();
                return (handed, Some(verified));
            }
            Err(_) => return (handed, None),
        }
    }
}

/// The genuine stream `write` makes with the allowed key, the same with the other key and
/// with the allowed key under another manifest; and what reading the genuine one gives.
fn layout(
    write: fn(&Path, &Manifest) -> (Vec<u8>, Vec<u8>),
    allowed_key: &Path,
    other_key: &Path,
    options: &Options,
) -> Layout {
    let manifest = Manifest::example();
    let (body, trailer) = write(allowed_key, &manifest);
    let (parts, allowed) = cut(&body);
    let (other_body, other_trailer) = write(other_key, &manifest);
    let (other_parts, foreign) = cut(&other_body);
    assert_eq!(parts, other_parts, "the parts do not depend on the key");
    assert_eq!(trailer.len(), other_trailer.len());
    let mut replay = manifest.clone();
    replay.dumped_at = "2026-11-29T01:00:00Z".into();
    let (replay_body, replay_trailer) = write(allowed_key, &replay);
    let mut other: Vec<Vec<u8>> = replay_body
        .split_inclusive(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    other.push(replay_trailer);

    let text = String::from_utf8(body.clone()).expect("UTF-8");
    assert!(parts.len() >= 4, "{} parts:\n{text}", parts.len());
    let mut full = body.clone();
    full.extend_from_slice(&trailer);
    let (reference, end) = read(&full, options, 64 * 1024);
    assert_eq!(end, Some(true), "the genuine stream is refused:\n{text}");
    let (unchecked, end) = read(&full, &Options::default(), 64 * 1024);
    assert_eq!(end, Some(true), "the genuine stream, unchecked");
    assert_eq!(unchecked, reference, "checked and unchecked items differ");
    let statements = reference
        .iter()
        .filter(|s| matches!(s, Seen::Statement { .. }))
        .count();
    assert!(statements >= 6, "{reference:?}");

    // The parts before k release what an unchecked read of the stream cut after the
    // signature of part k - 1 hands on.
    let mut released = vec![0];
    let mut upto = Vec::new();
    for (part, sig) in parts.iter().zip(&allowed) {
        upto.extend_from_slice(part);
        upto.extend_from_slice(sig);
        let (items, end) = read(&upto, &Options::default(), 64 * 1024);
        assert_eq!(end, None, "a stream without its trailer is refused");
        assert_eq!(items[..], reference[..items.len()]);
        released.push(items.len());
    }
    assert!(released.windows(2).all(|w| w[0] <= w[1]));
    let signatures = allowed
        .into_iter()
        .zip(foreign)
        .map(|(a, f)| [a, f])
        .collect();
    Layout {
        parts,
        signatures,
        trailer,
        other,
        reference,
        released,
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("stg-fuzz-signed-stream-{}", std::process::id()));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .expect("temp dir");
        let (allowed_key, allowed_public) = key(&dir, "allowed", 7);
        let (other_key, _) = key(&dir, "other", 8);
        let allowed_signers = dir.join("allowed_signers");
        std::fs::write(
            &allowed_signers,
            format!("fuzz@stg namespaces=\"stg-stream\" {allowed_public}\n"),
        )
        .expect("allowed_signers");
        let trust = Trust::load(&allowed_signers, None).expect("the allowed signers");
        assert!(trust.warnings.is_empty(), "{:?}", trust.warnings);
        let options = Options {
            max_line: 1 << 20,
            trust: Some(Arc::new(trust)),
            ..Options::default()
        };
        let pipeline = layout(dump, &allowed_key, &other_key, &options);
        let cut_by_hand = layout(hand, &allowed_key, &other_key, &options);
        let _ = std::fs::remove_dir_all(&dir);
        // The pipeline cuts the COPY block of public.t; the hand-cut parts end inside
        // statements too, where the documented cutting rule lets a part end.
        let copies = |l: &Layout| {
            l.reference
                .iter()
                .filter(|s| matches!(s, Seen::CopyBegin(h) if h.table == "t"))
                .count()
        };
        assert!(copies(&pipeline) >= 2 && copies(&cut_by_hand) >= 2);
        assert!(cut_by_hand.parts[1..]
            .iter()
            .any(|p| !(p.ends_with(b";\n") || p.ends_with(b"\\.\n"))));
        Fixture {
            options,
            layouts: [pipeline, cut_by_hand],
        }
    })
}

/// The start and end of the line that holds byte `at` (the end of `body`: an empty line
/// there).
fn line_at(body: &[u8], at: usize) -> (usize, usize) {
    let start = body[..at]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |p| p + 1);
    let end = body[at..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(body.len(), |p| at + p + 1);
    (start, end)
}

/// The `n`th line of `body` (modulo the number of lines).
fn nth_line(body: &[u8], n: usize) -> Vec<u8> {
    let lines: Vec<&[u8]> = body.split_inclusive(|b| *b == b'\n').collect();
    if lines.is_empty() {
        return Vec::new();
    }
    lines[n % lines.len()].to_vec()
}

/// Edits stop once the stream is this long (a line copied doubles a stream of one line).
const MAX_EDITED: usize = 64 * 1024;

fn apply(body: &mut Vec<u8>, edits: &[u8], other: &[Vec<u8>]) {
    for edit in edits.chunks_exact(4) {
        if body.len() > MAX_EDITED {
            break;
        }
        let &[hi, lo, op, byte] = edit else {
            unreachable!()
        };
        let at = (usize::from(hi) << 8 | usize::from(lo)) % (body.len() + 1);
        match op % 8 {
            0 => match body.get_mut(at) {
                Some(b) => *b = byte,
                None => body.push(byte),
            },
            1 => body.insert(at, byte),
            2 => {
                if at < body.len() {
                    body.remove(at);
                }
            }
            3 => body.truncate(at),
            4 => {
                let (start, mut end) = line_at(body, at);
                for _ in 0..byte % 8 {
                    if end < body.len() {
                        end = line_at(body, end).1;
                    }
                }
                body.drain(start..end);
            }
            5 => {
                let line = nth_line(body, usize::from(byte));
                let start = line_at(body, at).0;
                body.splice(start..start, line);
            }
            6 => {
                let line = &other[usize::from(byte) % other.len()];
                let start = line_at(body, at).0;
                body.splice(start..start, line.iter().copied());
            }
            _ => {
                let line = &other[usize::from(byte) % other.len()];
                let (start, end) = line_at(body, at);
                body.splice(start..end, line.iter().copied());
            }
        }
    }
}

/// `plain` as text, control characters but newlines and tabs escaped (a CR shows).
fn show(plain: &[u8]) -> String {
    String::from_utf8_lossy(plain)
        .chars()
        .map(|c| match c {
            '\n' | '\t' => c.to_string(),
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    let (flags, rest) = data.split_first().map_or((0, data), |(f, r)| (*f, r));
    let (keys, edits) = rest.split_first().map_or((0, rest), |(k, r)| (*k, r));
    let keep_trailer = flags & 1 != 0;
    let budget = if flags & 2 != 0 { 1 } else { 64 * 1024 };
    let fx = &fixture.layouts[usize::from(flags & 4 != 0)];
    let foreign = |k: usize| keys & (1 << (k % 8)) != 0;

    // The stream as assembled, and where its parts are.
    let mut assembled = Vec::new();
    let mut part_at = Vec::new();
    for (k, (part, sigs)) in fx.parts.iter().zip(&fx.signatures).enumerate() {
        part_at.push(assembled.len()..assembled.len() + part.len());
        assembled.extend_from_slice(part);
        assembled.extend_from_slice(&sigs[usize::from(foreign(k))]);
    }
    if keep_trailer {
        assembled.extend_from_slice(&fx.trailer);
    }
    let mut edited = assembled.clone();
    apply(&mut edited, edits, &fx.other);
    let first_change = edited
        .iter()
        .zip(&assembled)
        .position(|(a, b)| a != b)
        .or_else(|| (edited.len() != assembled.len()).then(|| edited.len().min(assembled.len())));
    if !keep_trailer {
        if !edited.is_empty() && !edited.ends_with(b"\n") {
            edited.push(b'\n');
        }
        let trailer = trailer_for(&edited);
        edited.extend_from_slice(&trailer);
    }

    // The first part whose bytes changed, and the first signed by the other key.
    let edited_part = first_change.and_then(|at| part_at.iter().position(|r| r.contains(&at)));
    let foreign_part = (0..fx.parts.len()).find(|k| foreign(*k));
    let untrusted = match (edited_part, foreign_part) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };

    let (handed, end) = read(&edited, &fixture.options, budget);
    for (i, item) in handed.iter().enumerate() {
        assert!(
            fx.reference.get(i) == Some(item),
            "item {i} handed on is not the genuine stream's (first change at {first_change:?}, \
             keys {keys:#04x}):\n{item:?}\nthe genuine stream's: {:?}\nthe stream read:\n{}",
            fx.reference.get(i),
            show(&edited)
        );
    }
    if end == Some(true) {
        assert_eq!(
            handed.len(),
            fx.reference.len(),
            "a verified stream hands on less"
        );
    }
    if let Some(k) = untrusted {
        assert_eq!(
            end, None,
            "the stream was read to its end though part {k} was changed or signed by another key"
        );
        assert!(
            handed.len() <= fx.released[k],
            "{} items handed on, {} released before part {k}, which was changed or signed by \
             another key",
            handed.len(),
            fx.released[k]
        );
    }
});
