//! Masking in flight: rewrite the configured columns of each COPY row, leave every other
//! byte as `pg_dump` wrote it.
//!
//! A [`TablePlan`] says, for each column position of one COPY block, which transform (if
//! any) applies. Unmasked fields are copied raw (still escaped); masked fields are
//! unescaped, transformed and escaped again. NULL stays NULL under every transform but
//! `constant` with a null value and `null` itself. Not for checking rules against the
//! schema ([`crate::schema`]) or reading the rules file ([`crate::rules`]).

use hmac::{Hmac, Mac};
use memchr::memmem::Finder;
use sha2::Sha256;
use stg_core::copy_text;

use crate::rules::Transform;

/// The keyed hash behind `pseudonym` and `email`.
#[derive(Clone)]
pub struct Pseudonymizer {
    mac: Hmac<Sha256>,
}

impl Pseudonymizer {
    /// A pseudonymizer for a secret key (at least 16 bytes, checked by the caller).
    #[must_use]
    pub fn new(key: &[u8]) -> Self {
        Self {
            mac: Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length"),
        }
    }

    /// 16 lowercase hex digits (64 bits) of HMAC-SHA256(key, value): collisions among a
    /// million distinct values have a probability around 3e-8.
    #[must_use]
    pub fn digest_hex(&self, value: &[u8]) -> String {
        let mut out = Vec::with_capacity(16);
        self.digest_hex_into(value, &mut out);
        String::from_utf8(out).expect("hex is ASCII")
    }

    /// [`Self::digest_hex`], appended to `out`.
    pub fn digest_hex_into(&self, value: &[u8], out: &mut Vec<u8>) {
        let mut mac = self.mac.clone();
        mac.update(value);
        let mut hex = [0u8; 16];
        hex::encode_to_slice(&mac.finalize().into_bytes()[..8], &mut hex)
            .expect("16 hex digits for 8 bytes");
        out.extend_from_slice(&hex);
    }
}

/// One masked column of a COPY block.
#[derive(Clone, Debug)]
pub struct ColumnPlan {
    /// Column name, for messages.
    pub column: String,
    /// The transform.
    pub transform: Transform,
    /// Character limit of `varchar(n)`/`char(n)` columns; longer output is an error.
    pub max_chars: Option<usize>,
}

/// The masking of one COPY block, by column position.
#[derive(Clone, Debug)]
pub struct TablePlan {
    /// Table as written in the COPY header, for messages.
    pub table: String,
    /// One entry per column of the COPY header.
    pub columns: Vec<Option<ColumnPlan>>,
}

/// Scratch buffers reused across rows, so the hot loop does not allocate.
#[derive(Default)]
pub struct Scratch {
    value: Vec<u8>,
    masked: Vec<u8>,
}

/// Applies a text transform (`pseudonym`, `email`, `replace`, `regex`) to a decoded
/// value, appending the result to `out`. `null` and `constant` never reach here.
fn transform_text(transform: &Transform, v: &[u8], keyed: Option<&Pseudonymizer>, m: &mut Vec<u8>) {
    match transform {
        Transform::Pseudonym { prefix } => {
            m.extend_from_slice(prefix.as_bytes());
            keyed
                .expect("key checked before dumping")
                .digest_hex_into(v, m);
        }
        Transform::Email { domain } => {
            m.push(b'u');
            keyed
                .expect("key checked before dumping")
                .digest_hex_into(v, m);
            m.push(b'@');
            match domain {
                Some(d) => m.extend_from_slice(d.as_bytes()),
                None => match memchr::memrchr(b'@', v) {
                    Some(at) => m.extend_from_slice(&v[at + 1..]),
                    None => m.extend_from_slice(b"example.invalid"),
                },
            }
        }
        Transform::Replace { from, to } => replace_all(v, from, to.as_bytes(), m),
        Transform::Regex {
            pattern,
            replacement,
        } => {
            m.extend_from_slice(&pattern.replace_all(v, replacement.as_bytes()));
        }
        Transform::Null | Transform::Constant(_) | Transform::Json { .. } => {
            unreachable!("not a text transform")
        }
    }
}

/// Rewrites a json/jsonb document at the rule's paths, appending the new document to
/// `out`; returns false (and appends nothing) when no path reaches a value, so the
/// caller can keep the original bytes. A value reached: JSON null stays null; `null`
/// makes it null; `constant` makes it the constant (a JSON string, or null); the text
/// transforms take a string's decoded text, or the JSON text of a number, boolean,
/// object or array, and give a JSON string.
pub fn rewrite_json(
    paths: &[(crate::json_path::JsonPath, Transform)],
    doc: &[u8],
    keyed: Option<&Pseudonymizer>,
    out: &mut Vec<u8>,
) -> Result<bool, &'static str> {
    let refs: Vec<&crate::json_path::JsonPath> = paths.iter().map(|(p, _)| p).collect();
    let hits = crate::json_path::find(doc, &refs)?;
    if hits.is_empty() {
        return Ok(false);
    }
    let mut text = Vec::new();
    let mut pos = 0;
    for hit in hits {
        out.extend_from_slice(&doc[pos..hit.start]);
        pos = hit.end;
        let value = &doc[hit.start..hit.end];
        let transform = &paths[hit.path].1;
        match transform {
            _ if value == b"null" => out.extend_from_slice(b"null"),
            Transform::Null | Transform::Constant(None) => out.extend_from_slice(b"null"),
            Transform::Constant(Some(c)) => {
                out.extend_from_slice(serde_json::to_string(c).expect("strings encode").as_bytes());
            }
            _ => {
                text.clear();
                if value.first() == Some(&b'"') {
                    let decoded: String =
                        serde_json::from_slice(value).map_err(|_| "not a valid JSON document")?;
                    transform_text(transform, decoded.as_bytes(), keyed, &mut text);
                } else {
                    transform_text(transform, value, keyed, &mut text);
                }
                let encoded =
                    serde_json::to_string(&String::from_utf8_lossy(&text)).expect("strings encode");
                out.extend_from_slice(encoded.as_bytes());
            }
        }
    }
    out.extend_from_slice(&doc[pos..]);
    Ok(true)
}

/// Applies a transform to one raw (escaped) field, appending the raw result to `out`.
/// Returns the masked value's length in characters when `count_chars` (for length limits).
fn apply_field(
    transform: &Transform,
    field: &[u8],
    keyed: Option<&Pseudonymizer>,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) -> Result<Option<usize>, &'static str> {
    let is_null = field == copy_text::NULL;
    let masked: Option<&[u8]> = match transform {
        // These two never look at the value: no decoding needed.
        Transform::Null => None,
        Transform::Constant(constant) => {
            if is_null {
                None
            } else {
                constant.as_ref().map(String::as_bytes)
            }
        }
        _ if is_null => None,
        Transform::Json { paths } => {
            scratch.value.clear();
            scratch.masked.clear();
            copy_text::unescape_into(field, &mut scratch.value);
            if !rewrite_json(paths, &scratch.value, keyed, &mut scratch.masked)? {
                // No path reached a value: the field as pg_dump wrote it.
                out.extend_from_slice(field);
                return Ok(None);
            }
            Some(&scratch.masked[..])
        }
        _ => {
            scratch.value.clear();
            scratch.masked.clear();
            copy_text::unescape_into(field, &mut scratch.value);
            transform_text(transform, &scratch.value, keyed, &mut scratch.masked);
            Some(&scratch.masked[..])
        }
    };
    copy_text::escape_into(masked, out);
    Ok(masked.map(|m| {
        if m.is_ascii() {
            m.len()
        } else {
            String::from_utf8_lossy(m).chars().count()
        }
    }))
}

fn replace_all(haystack: &[u8], from: &Finder, to: &[u8], out: &mut Vec<u8>) {
    let mut rest = haystack;
    while let Some(pos) = from.find(rest) {
        out.extend_from_slice(&rest[..pos]);
        out.extend_from_slice(to);
        rest = &rest[pos + from.needle().len()..];
    }
    out.extend_from_slice(rest);
}

impl TablePlan {
    /// True when no column of the block is masked: rows pass through untouched.
    #[must_use]
    pub fn is_identity(&self) -> bool {
        self.columns.iter().all(Option::is_none)
    }

    /// Rewrites one row (`row` without its newline), appending the result and a newline
    /// to `out`. `row_no` is for messages.
    pub fn rewrite_row(
        &self,
        row: &[u8],
        row_no: u64,
        keyed: Option<&Pseudonymizer>,
        scratch: &mut Scratch,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let mut count = 0;
        for (i, field) in copy_text::split_fields(row).enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            count += 1;
            match self.columns.get(i) {
                Some(Some(plan)) => {
                    let chars =
                        apply_field(&plan.transform, field, keyed, scratch, out).map_err(|e| {
                            format!(
                                "table {}, row {row_no}: column {}: {e}; refusing the dump",
                                self.table, plan.column
                            )
                        })?;
                    if let (Some(limit), Some(chars)) = (plan.max_chars, chars) {
                        if chars > limit {
                            return Err(format!(
                                "table {}, row {row_no}: transform {} of column {} gives {chars} characters, \
                                 more than the column's limit of {limit}",
                                self.table,
                                plan.transform.name(),
                                plan.column
                            ));
                        }
                    }
                }
                Some(None) => out.extend_from_slice(field),
                None => break,
            }
        }
        if count != self.columns.len() {
            return Err(format!(
                "table {}, row {row_no}: {count} fields where the COPY header has {} columns; \
                 the dump is not in the format stg-dump understands",
                self.table,
                self.columns.len()
            ));
        }
        out.push(b'\n');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(transforms: Vec<Option<Transform>>) -> TablePlan {
        TablePlan {
            table: "public.t".into(),
            columns: transforms
                .into_iter()
                .enumerate()
                .map(|(i, t)| {
                    t.map(|transform| ColumnPlan {
                        column: format!("c{i}"),
                        transform,
                        max_chars: None,
                    })
                })
                .collect(),
        }
    }

    fn rewrite(plan: &TablePlan, row: &[u8]) -> Vec<u8> {
        let keyed = Pseudonymizer::new(b"0123456789abcdef0123456789abcdef");
        let mut out = Vec::new();
        plan.rewrite_row(row, 1, Some(&keyed), &mut Scratch::default(), &mut out)
            .unwrap();
        out
    }

    #[test]
    fn unmasked_fields_are_byte_identical() {
        let p = plan(vec![
            None,
            Some(Transform::Constant(Some("INVALID".into()))),
            None,
        ]);
        let row = b"1\tsecret\\twith tab\tkeep\\nthis \\\\ \\N-ish";
        assert_eq!(rewrite(&p, row), b"1\tINVALID\tkeep\\nthis \\\\ \\N-ish\n");
    }

    #[test]
    fn nulls_stay_null_and_null_transform_nulls() {
        let p = plan(vec![
            Some(Transform::Pseudonym { prefix: "u".into() }),
            Some(Transform::Null),
        ]);
        assert_eq!(rewrite(&p, b"\\N\tx"), b"\\N\t\\N\n");
    }

    #[test]
    fn pseudonyms_are_deterministic_and_keyed() {
        let a = Pseudonymizer::new(b"key-one-key-one-key-one");
        let b = Pseudonymizer::new(b"key-two-key-two-key-two");
        assert_eq!(a.digest_hex(b"user1"), a.digest_hex(b"user1"));
        assert_ne!(a.digest_hex(b"user1"), a.digest_hex(b"user2"));
        assert_ne!(a.digest_hex(b"user1"), b.digest_hex(b"user1"));
        assert_eq!(a.digest_hex(b"user1").len(), 16);
    }

    #[test]
    fn email_keeps_or_replaces_domain() {
        let keep = plan(vec![Some(Transform::Email { domain: None })]);
        let out = String::from_utf8(rewrite(&keep, b"ann@fedoraproject.org")).unwrap();
        assert!(
            out.starts_with('u') && out.ends_with("@fedoraproject.org\n"),
            "{out}"
        );
        assert!(!out.contains("ann"));
        let chosen = plan(vec![Some(Transform::Email {
            domain: Some("stg.example.org".into()),
        })]);
        let out = String::from_utf8(rewrite(&chosen, b"ann@fedoraproject.org")).unwrap();
        assert!(out.ends_with("@stg.example.org\n"), "{out}");
    }

    #[test]
    fn replace_and_regex_work_on_decoded_values() {
        let p = plan(vec![
            Some(Transform::Replace {
                from: Box::new(Finder::new("@fedoraproject.org").into_owned()),
                to: "@stg.fedoraproject.org".into(),
            }),
            Some(Transform::Regex {
                pattern: regex::bytes::Regex::new("[0-9]").unwrap(),
                replacement: "#".into(),
            }),
        ]);
        assert_eq!(
            rewrite(&p, b"a@fedoraproject.org\tcall 555\\t12"),
            b"a@stg.fedoraproject.org\tcall ###\\t##\n"
        );
    }

    #[test]
    fn wrong_field_count_is_an_error() {
        let p = plan(vec![None, Some(Transform::Null)]);
        let mut out = Vec::new();
        let err = p
            .rewrite_row(b"1\t2\t3", 7, None, &mut Scratch::default(), &mut out)
            .unwrap_err();
        assert!(
            err.contains("row 7: 3 fields where the COPY header has 2"),
            "{err}"
        );
    }

    #[test]
    fn length_limit_is_enforced() {
        let mut p = plan(vec![Some(Transform::Constant(Some("toolong".into())))]);
        p.columns[0].as_mut().unwrap().max_chars = Some(3);
        let mut out = Vec::new();
        assert!(p
            .rewrite_row(b"x", 1, None, &mut Scratch::default(), &mut out)
            .unwrap_err()
            .contains("limit of 3"));
    }

    #[test]
    fn json_paths_rewrite_only_what_they_reach_and_escape_for_copy() {
        let path = |p: &str| crate::json_path::JsonPath::parse(p).unwrap();
        let p = plan(vec![
            None,
            Some(Transform::Json {
                paths: vec![
                    (
                        path("$.name"),
                        Transform::Pseudonym {
                            prefix: "p_".into(),
                        },
                    ),
                    (path("$.n"), Transform::Constant(Some("tab\there".into()))),
                ],
            }),
        ]);
        let keyed = Pseudonymizer::new(b"0123456789abcdef0123456789abcdef");
        let pseudonym = format!("p_{}", keyed.digest_hex("ann \"a\"\t".as_bytes()));
        // COPY escapes the document's own backslashes; the JSON escapes survive both ways.
        let copy = |doc: &str| {
            let mut out = Vec::new();
            copy_text::escape_into(Some(doc.as_bytes()), &mut out);
            String::from_utf8(out).unwrap()
        };
        let doc = r#"{"x": "a\\b\tc", "name": "ann \"a\"\t", "n": 5}"#;
        let row = format!("1\t{}", copy(doc));
        assert!(row.contains(r"a\\\\b\\tc"), "{row}");
        let out = String::from_utf8(rewrite(&p, row.as_bytes())).unwrap();
        let wanted = format!(r#"{{"x": "a\\b\tc", "name": "{pseudonym}", "n": "tab\there"}}"#);
        assert_eq!(out, format!("1\t{}\n", copy(&wanted)));
        // No path reached: the field as it came, byte for byte.
        let row = format!("2\t{}", copy(r#"{"other": "a\\b", "deep": {"name": "x"}}"#));
        assert_eq!(rewrite(&p, row.as_bytes()), format!("{row}\n").into_bytes());
        // SQL NULL stays NULL; a broken document is an error naming the row and column.
        assert_eq!(rewrite(&p, b"3\t\\N"), b"3\t\\N\n");
        let err = p
            .rewrite_row(
                b"4\t{\"name\": ",
                4,
                Some(&keyed),
                &mut Scratch::default(),
                &mut Vec::new(),
            )
            .unwrap_err();
        assert!(
            err.contains("row 4: column c1: not a valid JSON document"),
            "{err}"
        );
    }
}
