//! stg-age's readers of what git prints about the scanned repository (docs/security.md,
//! 3b): `git log -p --raw -U0` (`stg_age::patches::history`, `stg_age::patches::parse_all`),
//! `git blame --porcelain` (`stg_age::git::parse_porcelain_named`, `parse_porcelain`), and
//! the repository's own `.stg-age-ignore` (`stg_age::ignore_file::IgnoreList::parse`).
//! (The cache, `stg_age::cache`, is not read unless it and its directory are writable by
//! their owner only, so it is no input of the repository's.)
//!
//! The first byte of an input chooses (modulo 6) what the rest is: `0`, the output of
//! stg-age's `git log` (as `patches::fetch` runs it); `1`, `git blame --porcelain` output;
//! `2`, an ignore file; `3`, `4`, `5`, the bytes an `arbitrary` model of, in turn, a blame,
//! a log and an ignore file is drawn from, printed here as git (or a person) would write
//! it. Seeded (`fuzz/seeds/age_git_output/`) with the output of the exact git commands
//! stg-age runs on a small real repository (renames, a copy, multi-hunk edits, file
//! contents that look like headers, quoted names, uncommitted lines), and with dates git
//! accepts that no `OffsetDateTime` holds.
//!
//! Properties:
//! - nothing panics or hangs, on any bytes;
//! - log, any bytes: what is read refers only to commits and paths of the history read
//!   from the same output, no blob id is all zeros, there are no more hunks than `@@ `
//!   lines; reading is deterministic;
//! - log, model (commits newest first with parents, authors with any bytes, author and
//!   committer times as git prints them: any digits, or none for a date git cannot read;
//!   per commit, additions, deletions, modifications (with a mode change, or only
//!   whitespace so that `-w` shows no diff), renames, each with its raw line and hunks
//!   whose lines are any bytes, also lines that look like commit, raw, diff, hunk and
//!   binary headers, `\ No newline` markers, function names after `@@`; paths of any
//!   bytes, quoted as git quotes them, with `core.quotePath` on or off), cut in parts at
//!   commit boundaries as `fetch` cuts it: the history and the changes read are exactly
//!   the model's, the times those `git blame` gives (digits saturating, none as 0);
//! - blame, any bytes: `parse_porcelain` is `parse_porcelain_named` without the names;
//!   no more lines than content (tab) lines; each line number is the final-line field of
//!   a header in the input; a commit line's id is a 40- or 64-digit hex header id, not
//!   all zeros;
//! - blame, model (commits with SHA-1, SHA-256 or the null id, authors and summaries of
//!   any bytes, times up to `u64::MAX` as git prints them, boundary and previous lines;
//!   groups of lines whose content is any bytes, also lines that look like porcelain or
//!   log headers; file names quoted as git quotes them, repeated for a commit seen under
//!   more than one name): parses back to exactly the model's lines, numbers, origins
//!   (the null id uncommitted) and names, a time past what `OffsetDateTime` holds read as
//!   its last second (a date in the future, never an error);
//! - ignore file, any bytes: parsing is deterministic; each entry's pattern is on its
//!   line, its reason non-empty and trimmed; the entries written back as
//!   `PATH[:LINE] until=DATE REASON` parse to the same entries; each entry silences its
//!   own path (its pattern with `*` and `?` read as `x`, and below it; patterns up to 256
//!   bytes) up to its `until` day, and not the day after;
//! - ignore file, model (entries with any patterns that can be written, lines, dates and
//!   reasons, indented or not, space or tab separated, among comments and blank lines,
//!   LF or CRLF): parses to exactly the model's entries, with their line numbers.

#![no_main]

use std::collections::{HashMap, HashSet};

use libfuzzer_sys::arbitrary::{self, Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use stg_age::git::{parse_porcelain, parse_porcelain_named, Origin};
use stg_age::history::History;
use stg_age::ignore_file::IgnoreList;
use stg_age::patches::{self, FileChange, Hunk, Patches};
use time::macros::format_description;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 6 {
        0 => log_bytes(rest),
        1 => blame_bytes(rest),
        2 => ignore_bytes(rest),
        3 => {
            if let Ok(model) = BlameModel::arbitrary(&mut Unstructured::new(rest)) {
                blame_model(&model);
            }
        }
        4 => {
            if let Ok(model) = LogModel::arbitrary(&mut Unstructured::new(rest)) {
                log_model(&model);
            }
        }
        _ => {
            if let Ok(model) = IgnoreModel::arbitrary(&mut Unstructured::new(rest)) {
                ignore_model(&model);
            }
        }
    }
});

// ---------------------------------------------------------------------------------------
// Shared: lines that look like the headers of the formats read, quoting, times.

/// File content that is not plain text: a line that looks like something the readers
/// look for.
#[derive(Arbitrary, Debug)]
enum Content {
    Text(Vec<u8>),
    Looks(u8, u8),
}

const ID: &str = "0123456789abcdef0123456789abcdef01234567";

fn looks(which: u8, arg: u8) -> Vec<u8> {
    let n = arg % 4;
    let lines: [String; 24] = [
        format!("{ID} {n} {n} {n}"),
        format!("{ID} {n} {n}"),
        format!("{} 1 1 1", "0".repeat(40)),
        format!("{} {n} {n}", "ab".repeat(32)),
        "author Mallory".to_owned(),
        format!("author-time {n}"),
        "author-time 99999999999999999999".to_owned(),
        "filename /etc/shadow".to_owned(),
        "\tcontent".to_owned(),
        String::new(),
        "summary x".to_owned(),
        "boundary".to_owned(),
        format!("\x01{ID}\x00{n}\x00{n}\x00\x00Mallory"),
        format!(":100644 100644 {ID} {ID} M\tx"),
        format!(":000000 100644 {} {ID} A\tx", "0".repeat(40)),
        "diff --git a/x b/x".to_owned(),
        format!("index {ID}..{ID} 100644"),
        "--- a/x".to_owned(),
        "+++ b/x".to_owned(),
        format!("@@ -{n},{n} +{n},{n} @@"),
        "\\ No newline at end of file".to_owned(),
        "rename from x".to_owned(),
        "Binary files a/x and b/x differ".to_owned(),
        format!("+commit {ID}"),
    ];
    lines[usize::from(which) % lines.len()].clone().into_bytes()
}

fn content(c: &Content) -> Vec<u8> {
    match c {
        Content::Text(t) => t
            .iter()
            .map(|&b| if b == b'\n' { b' ' } else { b })
            .collect(),
        Content::Looks(w, a) => looks(*w, *a),
    }
}

fn no_newline(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .map(|&b| if b == b'\n' { b' ' } else { b })
        .collect()
}

/// A path as git writes it (`quote_c_style`): quoted with C escapes when it holds a
/// control character, `"`, `\`, DEL, or (with `core.quotePath`, the default) a byte
/// above 0x7f; `prefix` (`a/`, `b/`) inside the quotes.
fn quote(path: &[u8], prefix: &[u8], quote_path: bool) -> Vec<u8> {
    let must =
        |b: u8| b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f || (quote_path && b >= 0x80);
    if !path.iter().any(|&b| must(b)) {
        return [prefix, path].concat();
    }
    let mut out = vec![b'"'];
    out.extend_from_slice(prefix);
    for &b in path {
        match b {
            7 => out.extend_from_slice(b"\\a"),
            8 => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            11 => out.extend_from_slice(b"\\v"),
            12 => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b if must(b) => out.extend_from_slice(format!("\\{b:03o}").as_bytes()),
            b => out.push(b),
        }
    }
    out.push(b'"');
    out
}

/// A path git could have: not empty, no NUL.
fn path_of(raw: &[u8]) -> Vec<u8> {
    let mut p: Vec<u8> = raw.iter().map(|&b| if b == 0 { b'_' } else { b }).collect();
    if p.is_empty() {
        p.push(b'p');
    }
    p
}

/// The last second an `OffsetDateTime` holds (9999-12-31T23:59:59Z).
const LAST_SECOND: i64 = 253_402_300_799;

/// Seconds as `git blame` reads a commit's date from these digits: an unsigned decimal,
/// saturating; no digits (a date git could not read) is 0. Here at most `i64::MAX`.
fn git_seconds(digits: &[u8]) -> i64 {
    let mut n: u128 = 0;
    for &d in digits {
        n = (n * 10 + u128::from(d - b'0')).min(u128::from(u64::MAX));
    }
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn count_lines(text: &[u8], prefix: &[u8]) -> usize {
    text.split(|b| *b == b'\n')
        .filter(|l| l.starts_with(prefix))
        .count()
}

// ---------------------------------------------------------------------------------------
// git blame --porcelain

fn blame_bytes(out: &[u8]) {
    let named = parse_porcelain_named(out);
    let plain = parse_porcelain(out);
    match (&named, &plain) {
        (Ok(named), Ok(plain)) => {
            let stripped: Vec<(usize, Origin)> =
                named.iter().map(|(l, o, _)| (*l, o.clone())).collect();
            assert_eq!(&stripped, plain, "parse_porcelain differs from _named");
        }
        (Err(_), Err(_)) => return,
        _ => panic!("one of parse_porcelain and _named failed: {named:?} {plain:?}"),
    }
    let named = named.expect("checked");
    assert!(
        named.len() <= count_lines(out, b"\t"),
        "more lines than content lines"
    );
    // The headers: `<id> <orig> <final>[ <n>]`.
    let mut finals: HashSet<usize> = HashSet::new();
    let mut ids: HashSet<String> = HashSet::new();
    for line in out.split(|b| *b == b'\n') {
        let text = String::from_utf8_lossy(line);
        let mut fields = text.split(' ');
        let id = fields.next().unwrap_or_default();
        if matches!(id.len(), 40 | 64) && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            ids.insert(id.to_owned());
            if let Some(n) = fields.nth(1).and_then(|f| f.parse().ok()) {
                finals.insert(n);
            }
        }
    }
    for (line, origin, _) in &named {
        assert!(finals.contains(line), "line {line} is in no header");
        if let Origin::Commit { id, .. } = origin {
            assert!(ids.contains(id), "commit {id} is in no header");
            assert!(!id.bytes().all(|b| b == b'0'), "the null id as a commit");
        }
    }
}

#[derive(Arbitrary, Debug)]
enum BlameId {
    Sha1([u8; 20]),
    Sha256([u8; 32]),
    Null,
}

#[derive(Arbitrary, Debug)]
struct BlameCommit {
    id: BlameId,
    author: Vec<u8>,
    time: u64,
    summary: Vec<u8>,
    boundary: bool,
    previous: Option<u8>,
}

#[derive(Arbitrary, Debug)]
struct Group {
    commit: u8,
    orig: u32,
    line: u32,
    path: u8,
    lines: Vec<Content>,
}

#[derive(Arbitrary, Debug)]
struct BlameModel {
    commits: Vec<BlameCommit>,
    paths: Vec<Vec<u8>>,
    quote_path: bool,
    groups: Vec<Group>,
}

fn blame_model(model: &BlameModel) {
    // Distinct ids, as git's.
    let mut seen_ids = HashSet::new();
    let commits: Vec<(String, &BlameCommit)> = model
        .commits
        .iter()
        .take(6)
        .map(|c| {
            let id = match &c.id {
                BlameId::Sha1(b) => hex(b),
                BlameId::Sha256(b) => hex(b),
                BlameId::Null => "0".repeat(40),
            };
            (id, c)
        })
        .filter(|(id, _)| seen_ids.insert(id.clone()))
        .collect();
    if commits.is_empty() {
        return;
    }
    let paths: Vec<Vec<u8>> = if model.paths.is_empty() {
        vec![b"f".to_vec()]
    } else {
        model.paths.iter().take(4).map(|p| path_of(p)).collect()
    };
    let groups: Vec<(usize, &Group, &Vec<u8>)> = model
        .groups
        .iter()
        .take(12)
        .filter(|g| !g.lines.is_empty())
        .map(|g| {
            (
                usize::from(g.commit) % commits.len(),
                g,
                &paths[usize::from(g.path) % paths.len()],
            )
        })
        .collect();
    // A commit blamed under more than one name gets `filename` with every group.
    let mut names: HashMap<usize, HashSet<&Vec<u8>>> = HashMap::new();
    for (c, _, p) in &groups {
        names.entry(*c).or_default().insert(*p);
    }
    let mut out = Vec::new();
    let mut expected: Vec<(usize, Origin, Vec<u8>)> = Vec::new();
    let mut shown = HashSet::new();
    for (c, g, path) in &groups {
        let (id, commit) = &commits[*c];
        let lines: Vec<Vec<u8>> = g.lines.iter().take(8).map(content).collect();
        out.extend_from_slice(format!("{id} {} {} {}\n", g.orig, g.line, lines.len()).as_bytes());
        let first = shown.insert(*c);
        if first {
            let author = no_newline(&commit.author);
            for who in ["author", "committer"] {
                out.extend_from_slice(format!("{who} ").as_bytes());
                out.extend_from_slice(&author);
                out.extend_from_slice(format!("\n{who}-mail <a@example.org>\n").as_bytes());
                out.extend_from_slice(
                    format!("{who}-time {}\n{who}-tz +0000\n", commit.time).as_bytes(),
                );
            }
            out.extend_from_slice(b"summary ");
            out.extend_from_slice(&no_newline(&commit.summary));
            out.push(b'\n');
            if commit.boundary {
                out.extend_from_slice(b"boundary\n");
            }
        }
        if first || names[c].len() > 1 {
            if let Some(p) = commit.previous {
                let prev = &commits[usize::from(p) % commits.len()].0;
                out.extend_from_slice(format!("previous {prev} ").as_bytes());
                out.extend_from_slice(&quote(path, b"", model.quote_path));
                out.push(b'\n');
            }
            out.extend_from_slice(b"filename ");
            out.extend_from_slice(&quote(path, b"", model.quote_path));
            out.push(b'\n');
        }
        for (k, text) in lines.iter().enumerate() {
            let k = k as u64;
            if k > 0 {
                out.extend_from_slice(
                    format!("{id} {} {}\n", u64::from(g.orig) + k, u64::from(g.line) + k)
                        .as_bytes(),
                );
            }
            out.push(b'\t');
            out.extend_from_slice(text);
            out.push(b'\n');
            let origin = if id.bytes().all(|b| b == b'0') {
                Origin::Uncommitted
            } else {
                let secs = i64::try_from(commit.time)
                    .unwrap_or(i64::MAX)
                    .min(LAST_SECOND);
                Origin::Commit {
                    id: id.clone(),
                    author: String::from_utf8_lossy(&no_newline(&commit.author)).into_owned(),
                    at: time::OffsetDateTime::from_unix_timestamp(secs).expect("in range"),
                }
            };
            expected.push(((u64::from(g.line) + k) as usize, origin, (*path).clone()));
        }
    }
    let got = parse_porcelain_named(&out).unwrap_or_else(|e| {
        panic!(
            "the blame of the model is refused ({e:#}):\n{}",
            String::from_utf8_lossy(&out)
        )
    });
    assert_eq!(
        got,
        expected,
        "the blame of the model reads back otherwise:\n{}",
        String::from_utf8_lossy(&out)
    );
}

// ---------------------------------------------------------------------------------------
// git log -p --raw

/// The `\x01<id>` of the first commit header, the head `fetch` reads from.
fn first_header_id(out: &[u8]) -> String {
    out.split(|b| *b == b'\n')
        .find_map(|l| l.strip_prefix(b"\x01"))
        .map(|h| {
            String::from_utf8_lossy(h.split(|b| *b == 0).next().unwrap_or_default()).into_owned()
        })
        .unwrap_or_default()
}

fn check_refs(p: &Patches, h: &History) {
    let commits = h.ids.len();
    let paths = h.paths.len();
    for (&(c, path), change) in &p.changes {
        assert!((c as usize) < commits && (path as usize) < paths);
        if let Some(from) = change.from {
            assert!((from as usize) < paths);
        }
        for blob in [&change.old, &change.new].into_iter().flatten() {
            assert!(!blob.bytes().all(|b| b == b'0'), "null blob {blob:?}");
        }
    }
    assert!(p.authors.keys().all(|&c| (c as usize) < commits));
    assert!(p.unreadable.iter().all(|&c| (c as usize) < commits));
}

type Summary = (
    Vec<(u32, String, i64, i64)>,
    Vec<(
        (u32, u32),
        Vec<Hunk>,
        Option<String>,
        Option<String>,
        Option<u32>,
    )>,
    Vec<u32>,
);

/// Everything read, in a comparable order.
fn summary(p: &Patches) -> Summary {
    let mut authors: Vec<_> = p
        .authors
        .iter()
        .map(|(&c, a)| (c, a.name.clone(), a.at, a.committed))
        .collect();
    authors.sort();
    let mut changes: Vec<_> = p
        .changes
        .iter()
        .map(|(&k, f)| (k, f.hunks.clone(), f.old.clone(), f.new.clone(), f.from))
        .collect();
    changes.sort_by_key(|c| c.0);
    let mut unreadable: Vec<u32> = p.unreadable.iter().copied().collect();
    unreadable.sort_unstable();
    (authors, changes, unreadable)
}

fn log_bytes(out: &[u8]) {
    let outputs = vec![out.to_vec()];
    let head = first_header_id(out);
    let history = match patches::history(&outputs, &head) {
        Ok(h) => {
            assert!(h.is_consistent());
            h
        }
        Err(_) => {
            // The headers alone, so that the diffs are read even when the raw lines are
            // not (nothing is recorded for paths the history does not know).
            let mut ids: Vec<String> = out
                .split(|b| *b == b'\n')
                .filter_map(|l| l.strip_prefix(b"\x01"))
                .map(|h| {
                    String::from_utf8_lossy(h.split(|b| *b == 0).next().unwrap_or_default())
                        .into_owned()
                })
                .collect();
            let mut seen = HashSet::new();
            ids.retain(|id| seen.insert(id.clone()));
            let mut h = History::default();
            h.absorb(
                ids.into_iter()
                    .map(|id| (id, Vec::new(), Vec::new()))
                    .collect(),
                &head,
            );
            h
        }
    };
    let Ok(p) = patches::parse_all(&outputs, &history) else {
        return;
    };
    check_refs(&p, &history);
    let hunks: usize = p.changes.values().map(|c| c.hunks.len()).sum();
    assert!(
        hunks <= count_lines(out, b"@@ "),
        "more hunks than hunk headers"
    );
    let again = patches::parse_all(&outputs, &history).expect("read once");
    assert_eq!(summary(&p), summary(&again), "not deterministic");
}

#[derive(Arbitrary, Debug)]
enum LogTime {
    Secs(u64),
    /// Whatever digits the commit holds (`%at` prints them as they are).
    Digits(Vec<u8>),
    /// A date git cannot read: `%at` prints nothing.
    None,
}

impl LogTime {
    fn text(&self) -> Vec<u8> {
        match self {
            LogTime::Secs(s) => s.to_string().into_bytes(),
            LogTime::Digits(d) => d.iter().take(40).map(|b| b'0' + b % 10).collect(),
            LogTime::None => Vec::new(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct MHunk {
    old_start: u32,
    new_start: u32,
    old: Vec<Content>,
    new: Vec<Content>,
    old_no_newline: bool,
    new_no_newline: bool,
    function: Option<Vec<u8>>,
}

#[derive(Arbitrary, Debug)]
enum MKind {
    Add,
    Delete,
    /// `mode`: also a mode change; `shown`: false when only whitespace changed (`-w`
    /// shows no diff at all).
    Modify {
        mode: bool,
        shown: bool,
    },
    /// `similarity` 100 shows no hunks.
    Rename {
        from: u8,
        similarity: u8,
    },
}

#[derive(Arbitrary, Debug)]
struct MFile {
    kind: MKind,
    path: u8,
    old: [u8; 20],
    new: [u8; 20],
    hunks: Vec<MHunk>,
}

#[derive(Arbitrary, Debug)]
struct MCommit {
    at: LogTime,
    committed: LogTime,
    author: Vec<u8>,
    /// A merge: its second parent, counted from the commits after it.
    merge: Option<u8>,
    files: Vec<MFile>,
}

#[derive(Arbitrary, Debug)]
struct LogModel {
    salt: [u8; 16],
    commits: Vec<MCommit>,
    paths: Vec<Vec<u8>>,
    quote_path: bool,
    /// Where the output is cut in parts (commit indices).
    cuts: Vec<u8>,
}

/// A change as it is expected back: the key's path, hunks, blobs, the renamed path.
struct Expected {
    path: Vec<u8>,
    hunks: Vec<Hunk>,
    old: Option<String>,
    new: Option<String>,
    from: Option<Vec<u8>>,
}

fn range(start: u32, len: usize) -> String {
    if len == 1 {
        format!("{start}")
    } else {
        format!("{start},{len}")
    }
}

fn log_model(model: &LogModel) {
    let mut paths: Vec<Vec<u8>> = model.paths.iter().take(6).map(|p| path_of(p)).collect();
    let mut distinct = HashSet::new();
    paths.retain(|p| distinct.insert(p.clone()));
    let commits: Vec<&MCommit> = model.commits.iter().take(8).collect();
    if commits.is_empty() || paths.is_empty() {
        return;
    }
    let salt = hex(&model.salt);
    let ids: Vec<String> = (0..commits.len())
        .map(|i| format!("{i:08x}{salt}"))
        .collect();
    let q = |p: &[u8], prefix: &[u8]| quote(p, prefix, model.quote_path);
    let null = "0".repeat(40);
    // Each commit's text, its parents, the raw changes history() should read, and the
    // changes parse_all should.
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut parents_of: Vec<Vec<usize>> = Vec::new();
    let mut raw_of: Vec<Vec<(u8, Vec<u8>)>> = Vec::new();
    let mut expected: Vec<Vec<Expected>> = Vec::new();
    for (i, commit) in commits.iter().enumerate() {
        let mut parents = Vec::new();
        if i + 1 < commits.len() {
            parents.push(i + 1);
            if let Some(m) = commit.merge {
                let second = i + 1 + usize::from(m) % (commits.len() - i - 1);
                if second != i + 1 {
                    parents.push(second);
                }
            }
        }
        let mut out = vec![0x01];
        out.extend_from_slice(ids[i].as_bytes());
        out.push(0);
        out.extend_from_slice(&commit.at.text());
        out.push(0);
        out.extend_from_slice(&commit.committed.text());
        out.push(0);
        let parent_ids: Vec<&str> = parents.iter().map(|&p| ids[p].as_str()).collect();
        out.extend_from_slice(parent_ids.join(" ").as_bytes());
        out.push(0);
        out.extend_from_slice(&no_newline(&commit.author));
        out.push(b'\n');
        let mut used: HashSet<usize> = HashSet::new();
        let mut raw = Vec::new();
        let mut diff = Vec::new();
        let mut raws = Vec::new();
        let mut changes = Vec::new();
        for f in commit.files.iter().take(5) {
            let p = usize::from(f.path) % paths.len();
            let from = match f.kind {
                MKind::Rename { from, .. } => Some(usize::from(from) % paths.len()),
                _ => None,
            };
            if used.contains(&p) || from.is_some_and(|s| s == p || used.contains(&s)) {
                continue;
            }
            used.insert(p);
            used.extend(from);
            let path = &paths[p];
            let (old, new) = (hex(&f.old), hex(&f.new));
            let blob = |id: &str| (!id.bytes().all(|b| b == b'0')).then(|| id.to_owned());
            let hunks: Vec<&MHunk> = f.hunks.iter().take(4).collect();
            let mut hunk_text = Vec::new();
            let mut read_hunks = Vec::new();
            for h in &hunks {
                let old_lines: Vec<Vec<u8>> = h.old.iter().take(6).map(content).collect();
                let new_lines: Vec<Vec<u8>> = h.new.iter().take(6).map(content).collect();
                hunk_text.extend_from_slice(
                    format!(
                        "@@ -{} +{} @@",
                        range(h.old_start, old_lines.len()),
                        range(h.new_start, new_lines.len())
                    )
                    .as_bytes(),
                );
                if let Some(function) = &h.function {
                    hunk_text.push(b' ');
                    hunk_text.extend_from_slice(&no_newline(function));
                }
                hunk_text.push(b'\n');
                for (sign, lines, marker) in [
                    (b'-', &old_lines, h.old_no_newline),
                    (b'+', &new_lines, h.new_no_newline),
                ] {
                    for l in lines {
                        hunk_text.push(sign);
                        hunk_text.extend_from_slice(l);
                        hunk_text.push(b'\n');
                    }
                    if marker && !lines.is_empty() {
                        hunk_text.extend_from_slice(b"\\ No newline at end of file\n");
                    }
                }
                read_hunks.push(Hunk {
                    old_start: h.old_start,
                    old_len: old_lines.len() as u32,
                    new_start: h.new_start,
                    new_len: new_lines.len() as u32,
                });
            }
            let tab = |p: &[u8]| if p.contains(&b' ') { "\t" } else { "" };
            let dashes = |diff: &mut Vec<u8>, a: Option<&[u8]>, b: Option<&[u8]>| {
                diff.extend_from_slice(b"--- ");
                match a {
                    Some(a) => {
                        diff.extend_from_slice(&q(a, b"a/"));
                        diff.extend_from_slice(tab(a).as_bytes());
                    }
                    None => diff.extend_from_slice(b"/dev/null"),
                }
                diff.extend_from_slice(b"\n+++ ");
                match b {
                    Some(b) => {
                        diff.extend_from_slice(&q(b, b"b/"));
                        diff.extend_from_slice(tab(b).as_bytes());
                    }
                    None => diff.extend_from_slice(b"/dev/null"),
                }
                diff.push(b'\n');
            };
            let git_line = |diff: &mut Vec<u8>, a: &[u8], b: &[u8]| {
                diff.extend_from_slice(b"diff --git ");
                diff.extend_from_slice(&q(a, b"a/"));
                diff.push(b' ');
                diff.extend_from_slice(&q(b, b"b/"));
                diff.push(b'\n');
            };
            let mut expect = Expected {
                path: path.clone(),
                hunks: Vec::new(),
                old: None,
                new: None,
                from: None,
            };
            match f.kind {
                MKind::Add => {
                    raw.extend_from_slice(format!(":000000 100644 {null} {new} A\t").as_bytes());
                    raw.extend_from_slice(&q(path, b""));
                    raws.push((b'A', path.clone()));
                    git_line(&mut diff, path, path);
                    diff.extend_from_slice(
                        format!("new file mode 100644\nindex {null}..{new}\n").as_bytes(),
                    );
                    if !hunks.is_empty() {
                        dashes(&mut diff, None, Some(path));
                        diff.extend_from_slice(&hunk_text);
                        expect.hunks = read_hunks;
                    }
                    expect.new = blob(&new);
                }
                MKind::Delete => {
                    raw.extend_from_slice(format!(":100644 000000 {old} {null} D\t").as_bytes());
                    raw.extend_from_slice(&q(path, b""));
                    raws.push((b'D', path.clone()));
                    git_line(&mut diff, path, path);
                    diff.extend_from_slice(
                        format!("deleted file mode 100644\nindex {old}..{null}\n").as_bytes(),
                    );
                    if !hunks.is_empty() {
                        dashes(&mut diff, Some(path), None);
                        diff.extend_from_slice(&hunk_text);
                        expect.hunks = read_hunks;
                    }
                    expect.old = blob(&old);
                }
                MKind::Modify { mode, shown } => {
                    let new = if shown && hunks.is_empty() {
                        old.clone()
                    } else {
                        new
                    };
                    let new_mode = if mode { "100755" } else { "100644" };
                    raw.extend_from_slice(format!(":100644 {new_mode} {old} {new} M\t").as_bytes());
                    raw.extend_from_slice(&q(path, b""));
                    raws.push((b'M', path.clone()));
                    if shown {
                        git_line(&mut diff, path, path);
                        if mode {
                            diff.extend_from_slice(b"old mode 100644\nnew mode 100755\n");
                        }
                        if !hunks.is_empty() {
                            let index_mode = if mode { "" } else { " 100644" };
                            diff.extend_from_slice(
                                format!("index {old}..{new}{index_mode}\n").as_bytes(),
                            );
                            dashes(&mut diff, Some(path), Some(path));
                            diff.extend_from_slice(&hunk_text);
                            expect.hunks = read_hunks;
                        }
                    }
                    expect.old = blob(&old);
                    expect.new = blob(&new);
                }
                MKind::Rename { similarity, .. } => {
                    let src = &paths[from.expect("a rename")];
                    let similarity = if hunks.is_empty() {
                        100
                    } else {
                        similarity % 100
                    };
                    let new = if similarity == 100 { old.clone() } else { new };
                    raw.extend_from_slice(
                        format!(":100644 100644 {old} {new} R{similarity:03}\t").as_bytes(),
                    );
                    raw.extend_from_slice(&q(src, b""));
                    raw.push(b'\t');
                    raw.extend_from_slice(&q(path, b""));
                    raws.push((b'D', src.clone()));
                    raws.push((b'A', path.clone()));
                    git_line(&mut diff, src, path);
                    diff.extend_from_slice(
                        format!("similarity index {similarity}%\nrename from ").as_bytes(),
                    );
                    diff.extend_from_slice(&q(src, b""));
                    diff.extend_from_slice(b"\nrename to ");
                    diff.extend_from_slice(&q(path, b""));
                    diff.push(b'\n');
                    if similarity != 100 {
                        diff.extend_from_slice(format!("index {old}..{new} 100644\n").as_bytes());
                        dashes(&mut diff, Some(src), Some(path));
                        diff.extend_from_slice(&hunk_text);
                        expect.hunks = read_hunks;
                    }
                    expect.old = blob(&old);
                    expect.new = blob(&new);
                    expect.from = Some(src.clone());
                }
            }
            raw.push(b'\n');
            changes.push(expect);
        }
        if !changes.is_empty() {
            out.push(b'\n');
            out.extend_from_slice(&raw);
            out.push(b'\n');
            out.extend_from_slice(&diff);
        }
        chunks.push(out);
        parents_of.push(parents);
        raw_of.push(raws);
        expected.push(changes);
    }
    // The parts fetch would read: cut at commit boundaries.
    let mut cuts: Vec<usize> = model
        .cuts
        .iter()
        .take(4)
        .map(|&c| usize::from(c) % commits.len())
        .filter(|&c| c > 0)
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut outputs: Vec<Vec<u8>> = Vec::new();
    let mut start = 0;
    for end in cuts.into_iter().chain([commits.len()]) {
        outputs.push(chunks[start..end].concat());
        start = end;
    }
    let whole = chunks.concat();
    let shown = || String::from_utf8_lossy(&whole).into_owned();

    let history = patches::history(&outputs, &ids[0])
        .unwrap_or_else(|e| panic!("the model's history is refused ({e:#}):\n{}", shown()));
    assert_eq!(history.ids, ids, "commits:\n{}", shown());
    assert_eq!(history.head, ids[0]);
    for (i, commit) in history.commits.iter().enumerate() {
        let parents: Vec<usize> = commit.parents.iter().map(|&p| p as usize).collect();
        assert_eq!(parents, parents_of[i], "parents of {i}:\n{}", shown());
        let changes: Vec<(u8, Vec<u8>)> = commit
            .changes
            .iter()
            .map(|&(s, p)| (s, history.paths[p as usize].clone()))
            .collect();
        assert_eq!(changes, raw_of[i], "changes of {i}:\n{}", shown());
    }

    let read = patches::parse_all(&outputs, &history)
        .unwrap_or_else(|e| panic!("the model's log is refused ({e:#}):\n{}", shown()));
    check_refs(&read, &history);
    let one = patches::parse_all(&[whole.clone()], &history).expect("read in parts");
    assert_eq!(summary(&read), summary(&one), "parts and whole differ");
    for (i, commit) in commits.iter().enumerate() {
        let c = i as u32;
        let author = read
            .authors
            .get(&c)
            .unwrap_or_else(|| panic!("no author for {i}:\n{}", shown()));
        assert_eq!(
            author.name,
            String::from_utf8_lossy(&no_newline(&commit.author))
        );
        assert_eq!(
            author.at,
            git_seconds(&commit.at.text()),
            "author time of {i}"
        );
        assert_eq!(
            author.committed,
            git_seconds(&commit.committed.text()),
            "committer time of {i}"
        );
        for e in &expected[i] {
            let p = history.path_id(&e.path).expect("a path of the history");
            let got: &FileChange = read
                .changes
                .get(&(c, p))
                .unwrap_or_else(|| panic!("no change of {:?} in {i}:\n{}", e.path, shown()));
            let what = || {
                format!(
                    "{:?} in {i}:\n{}",
                    String::from_utf8_lossy(&e.path),
                    shown()
                )
            };
            assert_eq!(got.hunks, e.hunks, "hunks of {}", what());
            assert_eq!(got.old, e.old, "old blob of {}", what());
            assert_eq!(got.new, e.new, "new blob of {}", what());
            assert_eq!(
                got.from,
                e.from.as_ref().and_then(|f| history.path_id(f)),
                "rename source of {}",
                what()
            );
        }
    }
    let changes: usize = expected.iter().map(Vec::len).sum();
    assert_eq!(
        read.changes.len(),
        changes,
        "changes the model has not:\n{}",
        shown()
    );
    assert!(read.unreadable.is_empty(), "unreadable:\n{}", shown());
}

// ---------------------------------------------------------------------------------------
// .stg-age-ignore

const DATE: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]");

/// What an entry is, comparably.
fn entries(list: &IgnoreList) -> Vec<(String, Option<usize>, time::Date, String)> {
    list.entries
        .iter()
        .map(|e| {
            (
                e.path.as_str().to_owned(),
                e.line,
                e.until,
                e.reason.clone(),
            )
        })
        .collect()
}

/// The path an entry's pattern names: its `*` and `?` as `x`, without the anchoring `/`
/// or trailing slashes.
fn own_path(pattern: &str) -> Vec<u8> {
    let body = pattern
        .strip_prefix('/')
        .unwrap_or(pattern)
        .trim_end_matches('/');
    body.bytes()
        .map(|b| if b == b'*' || b == b'?' { b'x' } else { b })
        .collect()
}

fn check_entries(list: &IgnoreList, text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    for (i, e) in list.entries.iter().enumerate() {
        let line = lines
            .get(e.entry_line.wrapping_sub(1))
            .unwrap_or_else(|| panic!("entry {i} on line {} of {}", e.entry_line, lines.len()));
        assert!(
            line.trim().starts_with(e.path.as_str()),
            "entry {i}'s pattern is not on its line {line:?}"
        );
        assert!(!e.reason.is_empty() && e.reason.trim() == e.reason);
        assert_ne!(e.line, Some(0));
        // Matching costs pattern length times path length: a pattern of thousands of `*`
        // against its own path of as many bytes takes seconds, which real paths never do.
        if e.path.as_str().len() > 256 {
            continue;
        }
        let path = own_path(e.path.as_str());
        assert!(
            e.path.matches(&path),
            "{:?} does not match its own path {:?}",
            e.path.as_str(),
            String::from_utf8_lossy(&path)
        );
        let below = [path.as_slice(), b"/below"].concat();
        assert!(
            e.path.matches(&below),
            "{:?} does not match below itself",
            e.path.as_str()
        );
        let found = list
            .find(&path, e.line, e.until)
            .unwrap_or_else(|| panic!("entry {i} silences nothing on its last day"));
        assert!(found <= i);
        if let Some(next) = e.until.next_day() {
            assert!(!e.in_force(next), "entry {i} in force after its last day");
        }
    }
}

fn ignore_bytes(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let first = IgnoreList::parse(&text, "f");
    let second = IgnoreList::parse(&text, "f");
    match (&first, &second) {
        (Ok(a), Ok(b)) => assert_eq!(entries(a), entries(b), "not deterministic"),
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "not deterministic");
            assert!(a.starts_with("f:"), "an error that names no line: {a}");
            return;
        }
        _ => panic!("not deterministic"),
    }
    let list = first.expect("checked");
    check_entries(&list, &text);
    // Written back, the entries read the same.
    let mut written = String::new();
    for e in &list.entries {
        written.push_str(e.path.as_str());
        if let Some(n) = e.line {
            written.push_str(&format!(":{n}"));
        }
        let until = e.until.format(DATE).expect("a date formats");
        written.push_str(&format!(" until={until} {}\n", e.reason));
    }
    let again = IgnoreList::parse(&written, "g")
        .unwrap_or_else(|e| panic!("entries written back are refused: {e}\n{written}"));
    assert_eq!(entries(&again), entries(&list), "written back:\n{written}");
}

#[derive(Arbitrary, Debug)]
enum IgnoreLine {
    Entry {
        pattern: Vec<u8>,
        line: Option<u32>,
        year: u16,
        month: u8,
        day: u8,
        tabs: (bool, bool),
        indent: u8,
        reason: Vec<u8>,
        trailing: u8,
    },
    Comment(u8, Vec<u8>),
    Blank(u8),
}

#[derive(Arbitrary, Debug)]
struct IgnoreModel {
    lines: Vec<IgnoreLine>,
    crlf: bool,
    final_newline: bool,
}

const PATTERN_CHARS: &[&str] = &[
    "a", "b", "z", "0", "9", ".", "_", "-", "/", "*", "**", "?", ":", "@", "+", "(", ")", "[", "]",
    "{", "}", "!", "$", "^", "|", "\\", "#", "é", "ü", "=",
];

fn blanks(n: u8) -> String {
    (0..n % 4)
        .map(|i| if (n >> (i + 2)) & 1 == 1 { '\t' } else { ' ' })
        .collect()
}

fn ignore_model(model: &IgnoreModel) {
    let mut text = String::new();
    let mut expected = Vec::new();
    let eol = if model.crlf { "\r\n" } else { "\n" };
    let count = model.lines.len().min(16);
    for (i, l) in model.lines.iter().take(16).enumerate() {
        match l {
            IgnoreLine::Entry {
                pattern,
                line,
                year,
                month,
                day,
                tabs,
                indent,
                reason,
                trailing,
            } => {
                let mut p: String = pattern
                    .iter()
                    .take(24)
                    .map(|&b| PATTERN_CHARS[usize::from(b) % PATTERN_CHARS.len()])
                    .collect();
                // A pattern names something, and is not a comment.
                if p.starts_with('#') || p.trim_matches('/').is_empty() {
                    p.insert(0, 'a');
                }
                let line = line.map(|n| n.max(1) as usize);
                // Without a line, a pattern ending in `:DIGITS` would be read as one.
                if line.is_none() {
                    if let Some((_, n)) = p.rsplit_once(':') {
                        if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
                            p.push('x');
                        }
                    }
                }
                let month = time::Month::try_from(month % 12 + 1).expect("a month");
                let year = i32::from(*year % 10000);
                let day = day % time::util::days_in_month(month, year) + 1;
                let until = time::Date::from_calendar_date(year, month, day).expect("a date");
                let mut r: String = reason
                    .iter()
                    .take(40)
                    .map(|&b| match b % 64 {
                        0 => ' ',
                        1 => '\t',
                        2 => 'ü',
                        3 => '#',
                        n => char::from(b'0' + n),
                    })
                    .collect();
                r = r.trim().to_owned();
                if r.is_empty() {
                    r.push('r');
                }
                text.push_str(&blanks(*indent));
                text.push_str(&p);
                if let Some(n) = line {
                    text.push_str(&format!(":{n}"));
                }
                text.push(if tabs.0 { '\t' } else { ' ' });
                text.push_str(&format!("until={year:04}-{:02}-{day:02}", month as u8));
                text.push(if tabs.1 { '\t' } else { ' ' });
                text.push_str(&r);
                text.push_str(&blanks(*trailing));
                expected.push((p, line, until, r, i + 1));
            }
            IgnoreLine::Comment(indent, c) => {
                text.push_str(&blanks(*indent));
                text.push('#');
                text.push_str(&String::from_utf8_lossy(&no_newline(c)).replace('\r', " "));
            }
            IgnoreLine::Blank(n) => text.push_str(&blanks(*n)),
        }
        if i + 1 < count || model.final_newline {
            text.push_str(eol);
        }
    }
    let list = IgnoreList::parse(&text, "m")
        .unwrap_or_else(|e| panic!("the model's ignore file is refused: {e}\n{text:?}"));
    let got: Vec<_> = list
        .entries
        .iter()
        .map(|e| {
            (
                e.path.as_str().to_owned(),
                e.line,
                e.until,
                e.reason.clone(),
                e.entry_line,
            )
        })
        .collect();
    assert_eq!(got, expected, "{text:?}");
    check_entries(&list, &text);
}
