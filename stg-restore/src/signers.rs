//! Who may sign a stream: an allowed-signers file in ssh-keygen(1)'s format ("ALLOWED
//! SIGNERS"), and a list of revoked keys; and the check of one part's signature against
//! them.
//!
//! Each line of the allowed-signers file is `principals [options] keytype key [comment]`;
//! blank lines and `#` comments are skipped. Understood: Ed25519 keys (`ssh-ed25519`), the
//! options `namespaces="..."` (a list of patterns, `*` and `?`, that must match
//! `stg-stream`), `valid-after="..."` and `valid-before="..."` (`YYYYMMDD[HHMM[SS]][Z]`,
//! read as UTC, checked against the time of the restore as `ssh-keygen -Y verify` does).
//! A line with `cert-authority`, or a key of another type, never matches (and is named in
//! a warning). A key that appears in the revoked-signers file (one public key a line, as
//! `ssh-keygen -Y verify -r` reads a plain list) is refused even where it is allowed;
//! removing a key's line from the allowed-signers file revokes it too.
//!
//! Not here: where signatures are in a stream and what they sign ([`stg_core::signed`]),
//! reading the stream ([`crate::reader`]).
//! See: ssh-keygen(1), "ALLOWED SIGNERS".

use std::path::{Path, PathBuf};

use ssh_key::{HashAlg, PublicKey, SshSig};
use stg_core::files::{self, Limits, ReadError};
use stg_core::signed::{self, NAMESPACE};
use time::{OffsetDateTime, PrimitiveDateTime};

/// Where stg-restore looks for the allowed signers when `--allowed-signers` is not given;
/// when the file exists, every stream must be signed by one of them.
pub const DEFAULT_ALLOWED: &str = "/etc/stg/allowed_signers";

/// Where stg-restore looks for revoked keys when `--revoked-signers` is not given.
pub const DEFAULT_REVOKED: &str = "/etc/stg/revoked_signers";

/// Largest trust file read.
const MAX_FILE: u64 = 1024 * 1024;

/// One allowed key.
#[derive(Clone, Debug)]
struct Allowed {
    principals: String,
    key: PublicKey,
    namespaces: Option<Vec<String>>,
    valid_after: Option<OffsetDateTime>,
    valid_before: Option<OffsetDateTime>,
    line: usize,
}

/// The keys that may sign.
#[derive(Clone, Debug)]
pub struct Trust {
    path: PathBuf,
    allowed: Vec<Allowed>,
    revoked: Vec<PublicKey>,
    /// Lines that can never match (certificate authorities, other key types).
    pub warnings: Vec<String>,
}

/// Who signed a part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signer {
    /// The principals of its allowed-signers line.
    pub principals: String,
    /// Its key's fingerprint (`SHA256:...`).
    pub fingerprint: String,
}

impl std::fmt::Display for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.principals, self.fingerprint)
    }
}

fn read(path: &Path) -> Result<Option<String>, String> {
    match files::read_small(
        path,
        Limits {
            max_bytes: MAX_FILE,
            no_symlink: false,
        },
    ) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| format!("{}: not UTF-8 text", path.display())),
        Err(ReadError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// `YYYYMMDD[HHMM[SS]][Z]` as UTC.
fn parse_time(text: &str) -> Option<OffsetDateTime> {
    let digits = text.strip_suffix(['Z', 'z']).unwrap_or(text);
    if !digits.bytes().all(|b| b.is_ascii_digit()) || ![8, 12, 14].contains(&digits.len()) {
        return None;
    }
    let n = |from: usize, len: usize| digits.get(from..from + len)?.parse::<u32>().ok();
    let date = time::Date::from_calendar_date(
        i32::try_from(n(0, 4)?).ok()?,
        time::Month::try_from(u8::try_from(n(4, 2)?).ok()?).ok()?,
        u8::try_from(n(6, 2)?).ok()?,
    )
    .ok()?;
    let (h, m, s) = match digits.len() {
        8 => (0, 0, 0),
        12 => (n(8, 2)?, n(10, 2)?, 0),
        _ => (n(8, 2)?, n(10, 2)?, n(12, 2)?),
    };
    let at = time::Time::from_hms(
        u8::try_from(h).ok()?,
        u8::try_from(m).ok()?,
        u8::try_from(s).ok()?,
    )
    .ok()?;
    Some(PrimitiveDateTime::new(date, at).assume_utc())
}

/// `*` and `?` patterns, as ssh matches principals and namespaces.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Positions after the last `*` seen, to backtrack to.
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// A comma-separated pattern list matched as ssh does: a negated (`!`) match refuses, else
/// any match accepts.
fn list_matches(list: &[String], text: &str) -> bool {
    let mut matched = false;
    for pattern in list {
        match pattern.strip_prefix('!') {
            Some(negated) if glob(negated, text) => return false,
            Some(_) => {}
            None => matched |= glob(pattern, text),
        }
    }
    matched
}

/// Splits the options field (`a,b="x,y",c`) at commas outside quotes.
fn split_options(field: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in field.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => out.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    out.push(current);
    out
}

/// The next whitespace-separated field of `rest`, quotes kept together.
fn next_field(rest: &str) -> (&str, &str) {
    let rest = rest.trim_start();
    let mut quoted = false;
    for (i, c) in rest.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return (&rest[..i], &rest[i..]),
            _ => {}
        }
    }
    (rest, "")
}

impl Trust {
    /// Reads the allowed signers from `allowed` and the revoked keys from `revoked` (a
    /// missing revoked file is an empty list). An error names the file and line.
    pub fn load(allowed: &Path, revoked: Option<&Path>) -> Result<Trust, String> {
        let text = read(allowed)?
            .ok_or_else(|| format!("{}: no such file (the allowed signers)", allowed.display()))?;
        let mut trust = Trust {
            path: allowed.to_path_buf(),
            allowed: Vec::new(),
            revoked: Vec::new(),
            warnings: Vec::new(),
        };
        for (i, line) in text.lines().enumerate() {
            let no = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let where_ = || format!("{}, line {no}", allowed.display());
            let (principals, rest) = next_field(line);
            let (second, after) = next_field(rest);
            // Options come before the key type; a key type starts with a letter and holds
            // a dash (ssh-ed25519, ecdsa-sha2-...), options have `=` or are flags.
            let (options, key_text) = if second.starts_with("ssh-")
                || second.starts_with("ecdsa-")
                || second.starts_with("sk-")
            {
                ("", rest)
            } else {
                (second, after)
            };
            let mut entry_namespaces = None;
            let (mut after_t, mut before_t, mut ca) = (None, None, false);
            for option in split_options(options).into_iter().filter(|o| !o.is_empty()) {
                let (name, value) = option
                    .split_once('=')
                    .map_or((option.as_str(), None), |(n, v)| {
                        (n, Some(v.trim_matches('"')))
                    });
                match (name.to_ascii_lowercase().as_str(), value) {
                    ("cert-authority", None) => ca = true,
                    ("namespaces", Some(v)) => {
                        entry_namespaces = Some(v.split(',').map(str::to_owned).collect());
                    }
                    ("valid-after", Some(v)) => {
                        after_t = Some(parse_time(v).ok_or_else(|| {
                            format!(
                                "{}: valid-after {v:?} is not YYYYMMDD[HHMM[SS]][Z]",
                                where_()
                            )
                        })?);
                    }
                    ("valid-before", Some(v)) => {
                        before_t = Some(parse_time(v).ok_or_else(|| {
                            format!(
                                "{}: valid-before {v:?} is not YYYYMMDD[HHMM[SS]][Z]",
                                where_()
                            )
                        })?);
                    }
                    _ => return Err(format!("{}: unknown option {option:?}", where_())),
                }
            }
            let key = PublicKey::from_openssh(key_text.trim())
                .map_err(|e| format!("{}: not a public key ({e})", where_()))?;
            if ca || key.algorithm() != ssh_key::Algorithm::Ed25519 {
                trust.warnings.push(format!(
                    "{}: {} never matches (stg-restore takes Ed25519 keys, not certificate \
                     authorities)",
                    where_(),
                    if ca {
                        "a certificate authority"
                    } else {
                        "a key that is not Ed25519"
                    }
                ));
                continue;
            }
            trust.allowed.push(Allowed {
                principals: principals.to_owned(),
                key,
                namespaces: entry_namespaces,
                valid_after: after_t,
                valid_before: before_t,
                line: no,
            });
        }
        if let Some(revoked) = revoked {
            if let Some(text) = read(revoked)? {
                for (i, line) in text.lines().enumerate() {
                    let line = line.trim();
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    let key = PublicKey::from_openssh(line).map_err(|e| {
                        format!(
                            "{}, line {}: not a public key ({e})",
                            revoked.display(),
                            i + 1
                        )
                    })?;
                    trust.revoked.push(key);
                }
            }
        }
        Ok(trust)
    }

    /// The file the allowed signers came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks `sshsig` (a signature line's base64) over `message` at time `now`: signed in
    /// the stream namespace by an allowed key, valid now, not revoked. `Err` says why not.
    pub fn check(
        &self,
        message: &[u8],
        sshsig: &str,
        now: OffsetDateTime,
    ) -> Result<Signer, String> {
        let sig = SshSig::from_pem(signed::armored(sshsig))
            .map_err(|e| format!("the signature is not an SSH signature ({e})"))?;
        let key = PublicKey::new(sig.public_key().clone(), "");
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        if sig.namespace() != NAMESPACE {
            return Err(format!(
                "the signature is for namespace {:?}, not {NAMESPACE:?}",
                sig.namespace()
            ));
        }
        if self.revoked.iter().any(|r| r.key_data() == key.key_data()) {
            return Err(format!("it is signed by a revoked key ({fingerprint})"));
        }
        let candidates: Vec<&Allowed> = self
            .allowed
            .iter()
            .filter(|a| a.key.key_data() == key.key_data())
            .collect();
        if candidates.is_empty() {
            return Err(format!(
                "it is signed by a key that {} does not list ({fingerprint})",
                self.path.display()
            ));
        }
        let mut why = Vec::new();
        for a in candidates {
            if let Some(ns) = &a.namespaces {
                if !list_matches(ns, NAMESPACE) {
                    why.push(format!(
                        "line {}: namespaces do not include {NAMESPACE}",
                        a.line
                    ));
                    continue;
                }
            }
            if a.valid_after.is_some_and(|t| now < t) {
                why.push(format!("line {}: the key is not valid yet", a.line));
                continue;
            }
            if a.valid_before.is_some_and(|t| now >= t) {
                why.push(format!(
                    "line {}: the key has expired (valid-before)",
                    a.line
                ));
                continue;
            }
            a.key.verify(NAMESPACE, message, &sig).map_err(|_| {
                "the signature does not match the part (a byte changed?)".to_owned()
            })?;
            return Ok(Signer {
                principals: a.principals.clone(),
                fingerprint,
            });
        }
        Err(format!(
            "its key ({fingerprint}) is listed in {} but not allowed now: {}",
            self.path.display(),
            why.join("; ")
        ))
    }
}

/// The fingerprint of the key that made `sshsig`, for a report when no trust file is in
/// effect (nothing checked).
pub fn fingerprint_of(sshsig: &str) -> Option<String> {
    let sig = SshSig::from_pem(signed::armored(sshsig)).ok()?;
    Some(
        PublicKey::new(sig.public_key().clone(), "")
            .fingerprint(HashAlg::Sha256)
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_and_times() {
        assert!(glob("stg-*", "stg-stream"));
        assert!(glob("*", "x"));
        assert!(glob("s?g-stream", "stg-stream"));
        assert!(!glob("git", "stg-stream"));
        let list = |s: &str| s.split(',').map(str::to_owned).collect::<Vec<_>>();
        assert!(list_matches(&list("git,stg-stream"), "stg-stream"));
        assert!(!list_matches(&list("*,!stg-*"), "stg-stream"));
        assert_eq!(
            parse_time("20261204Z").unwrap(),
            time::macros::datetime!(2026-12-04 00:00 UTC)
        );
        assert_eq!(
            parse_time("202612041530").unwrap(),
            time::macros::datetime!(2026-12-04 15:30 UTC)
        );
        assert!(parse_time("2026-12-04").is_none());
        assert!(parse_time("20261341").is_none());
        assert_eq!(
            split_options("cert-authority,namespaces=\"a,b\",valid-after=\"20260101\""),
            [
                "cert-authority",
                "namespaces=\"a,b\"",
                "valid-after=\"20260101\""
            ]
        );
    }
}
