//! Paths inside json/jsonb documents, and the rewriting of a document at those paths
//! (the `json` transform, `docs/masking.md`).
//!
//! A path is `$` followed by steps: `.name` or `["any name"]` (a member of an object),
//! `.*` (every member), `[3]` (an array element, from 0) and `[*]` (every element). There
//! is no recursive descent: `$.email` is the top-level `email` only, never a nested one.
//!
//! The document is scanned, not parsed into a tree: the values a path reaches are replaced
//! in place and every other byte is kept as the server wrote it (key order, spacing, number
//! spelling), and a document no path reaches is not rewritten at all. Not for the
//! transforms themselves ([`crate::masking`]) or reading the rules file ([`crate::rules`]).

use std::fmt;

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A member of an object, by name.
    Key(String),
    /// Every member of an object.
    AnyKey,
    /// An element of an array, from 0.
    Index(usize),
    /// Every element of an array.
    AnyIndex,
}

/// A parsed path, e.g. `$.contacts[*].email`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    steps: Vec<Step>,
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The characters allowed in a `.name` step; other names are written `["..."]`.
fn plain_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-' || c == '$' || c == '@'
}

impl JsonPath {
    /// Parses a path; the error says what is wrong and where.
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let mut rest = text
            .strip_prefix('$')
            .ok_or("a path starts with $ (the whole document), e.g. $.address.street")?;
        let mut steps = Vec::new();
        while !rest.is_empty() {
            let at = text.len() - rest.len();
            if let Some(after) = rest.strip_prefix(".*") {
                steps.push(Step::AnyKey);
                rest = after;
            } else if let Some(after) = rest.strip_prefix('.') {
                let len = after
                    .find(|c: char| !plain_name_char(c))
                    .unwrap_or(after.len());
                if len == 0 {
                    return Err(format!(
                        "expected a name after the dot at offset {at} (write other names as [\"name\"])"
                    ));
                }
                steps.push(Step::Key(after[..len].to_owned()));
                rest = &after[len..];
            } else if let Some(after) = rest.strip_prefix("[*]") {
                steps.push(Step::AnyIndex);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("[\"") {
                // A JSON string literal, then ].
                let end = string_end(after.as_bytes(), 0)
                    .ok_or_else(|| format!("unterminated quoted name at offset {at}"))?;
                let name: String = serde_json::from_str(&rest[1..end + 3])
                    .map_err(|e| format!("bad quoted name at offset {at}: {e}"))?;
                rest = after[end + 1..]
                    .strip_prefix(']')
                    .ok_or_else(|| format!("expected ] after the quoted name at offset {at}"))?;
                steps.push(Step::Key(name));
            } else if let Some(after) = rest.strip_prefix('[') {
                let len = after
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(after.len());
                let index: usize = after[..len]
                    .parse()
                    .map_err(|_| format!("expected [*], [N] or [\"name\"] at offset {at}"))?;
                rest = after[len..]
                    .strip_prefix(']')
                    .ok_or_else(|| format!("expected ] after the index at offset {at}"))?;
                steps.push(Step::Index(index));
            } else {
                return Err(format!(
                    "unexpected {:?} at offset {at} (steps are .name, .*, [N], [*], [\"name\"])",
                    rest.chars().next().unwrap_or(' ')
                ));
            }
        }
        Ok(JsonPath {
            text: text.to_owned(),
            steps,
        })
    }

    /// The steps after `$`.
    #[must_use]
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }
}

/// Offset of the closing quote of a JSON string whose body starts at `from`.
fn string_end(doc: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let i = from + memchr::memchr2(b'"', b'\\', &doc[from..])?;
        if doc[i] == b'"' {
            return Some(i);
        }
        from = i + 2;
        if from > doc.len() {
            return None;
        }
    }
}

/// A value a path reaches: bytes `start..end` of the document, and which path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    /// First byte of the value.
    pub start: usize,
    /// One past its last byte.
    pub end: usize,
    /// Index of the path (in the order given to [`find`]).
    pub path: usize,
}

struct Scanner<'a> {
    doc: &'a [u8],
}

const MALFORMED: &str = "not a valid JSON document";

impl Scanner<'_> {
    fn ws(&self, mut pos: usize) -> usize {
        while pos < self.doc.len() && matches!(self.doc[pos], b' ' | b'\t' | b'\n' | b'\r') {
            pos += 1;
        }
        pos
    }

    /// End of the value at `pos` (no leading space), whatever its nesting depth.
    fn skip(&self, pos: usize) -> Result<usize, &'static str> {
        let doc = self.doc;
        match doc.get(pos) {
            None => Err(MALFORMED),
            Some(b'"') => string_end(doc, pos + 1).map(|e| e + 1).ok_or(MALFORMED),
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                let mut i = pos;
                while i < doc.len() {
                    match doc[i] {
                        b'"' => i = string_end(doc, i + 1).ok_or(MALFORMED)?,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                return Ok(i + 1);
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                Err(MALFORMED)
            }
            Some(_) => {
                let len = doc[pos..]
                    .iter()
                    .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                    .unwrap_or(doc.len() - pos);
                if len == 0 {
                    Err(MALFORMED)
                } else {
                    Ok(pos + len)
                }
            }
        }
    }

    /// Walks the value at `pos` with `active` (path index, steps matched so far); records
    /// hits; returns the value's end.
    /// The value of one object member or array element at `pos`: walked for the paths whose
    /// next step `matches` it (each then one step further), skipped when none does.
    fn member(
        &self,
        pos: usize,
        paths: &[&JsonPath],
        deeper: &[(usize, usize)],
        hits: &mut Vec<Hit>,
        matches: impl Fn(&Step) -> bool,
    ) -> Result<usize, &'static str> {
        let next: Vec<(usize, usize)> = deeper
            .iter()
            .filter(|&&(p, m)| matches(&paths[p].steps[m]))
            .map(|&(p, m)| (p, m + 1))
            .collect();
        if next.is_empty() {
            self.skip(pos)
        } else {
            self.walk(pos, paths, &next, hits)
        }
    }

    fn walk(
        &self,
        pos: usize,
        paths: &[&JsonPath],
        active: &[(usize, usize)],
        hits: &mut Vec<Hit>,
    ) -> Result<usize, &'static str> {
        let end_if_needed = || self.skip(pos);
        let mut end = None;
        for &(p, matched) in active {
            if matched == paths[p].steps.len() {
                let e = match end {
                    Some(e) => e,
                    None => *end.insert(end_if_needed()?),
                };
                hits.push(Hit {
                    start: pos,
                    end: e,
                    path: p,
                });
            }
        }
        let deeper: Vec<(usize, usize)> = active
            .iter()
            .copied()
            .filter(|&(p, matched)| matched < paths[p].steps.len())
            .collect();
        let doc = self.doc;
        match doc.get(pos) {
            Some(b'{') if !deeper.is_empty() => {
                let mut i = self.ws(pos + 1);
                if doc.get(i) == Some(&b'}') {
                    return Ok(i + 1);
                }
                loop {
                    if doc.get(i) != Some(&b'"') {
                        return Err(MALFORMED);
                    }
                    let key_end = string_end(doc, i + 1).ok_or(MALFORMED)? + 1;
                    let raw_key = &doc[i..key_end];
                    let key: Option<String> = if raw_key.contains(&b'\\') {
                        serde_json::from_slice(raw_key).ok()
                    } else {
                        std::str::from_utf8(&raw_key[1..raw_key.len() - 1])
                            .ok()
                            .map(str::to_owned)
                    };
                    let key = key.ok_or(MALFORMED)?;
                    i = self.ws(key_end);
                    if doc.get(i) != Some(&b':') {
                        return Err(MALFORMED);
                    }
                    i = self.ws(i + 1);
                    i = self.member(i, paths, &deeper, hits, |step| match step {
                        Step::Key(k) => *k == key,
                        Step::AnyKey => true,
                        _ => false,
                    })?;
                    i = self.ws(i);
                    match doc.get(i) {
                        Some(b',') => i = self.ws(i + 1),
                        Some(b'}') => return Ok(i + 1),
                        _ => return Err(MALFORMED),
                    }
                }
            }
            Some(b'[') if !deeper.is_empty() => {
                let mut i = self.ws(pos + 1);
                if doc.get(i) == Some(&b']') {
                    return Ok(i + 1);
                }
                let mut index = 0usize;
                loop {
                    i = self.member(i, paths, &deeper, hits, |step| match step {
                        Step::Index(n) => *n == index,
                        Step::AnyIndex => true,
                        _ => false,
                    })?;
                    i = self.ws(i);
                    match doc.get(i) {
                        Some(b',') => i = self.ws(i + 1),
                        Some(b']') => return Ok(i + 1),
                        _ => return Err(MALFORMED),
                    }
                    index += 1;
                }
            }
            _ => match end {
                Some(e) => Ok(e),
                None => self.skip(pos),
            },
        }
    }
}

/// The values of `doc` that `paths` reach, in document order, without overlaps: a value
/// inside one already reached is left to the outer hit, and of two paths reaching the same
/// value the first given wins. Errors on a document that is not valid JSON.
pub fn find(doc: &[u8], paths: &[&JsonPath]) -> Result<Vec<Hit>, &'static str> {
    let scanner = Scanner { doc };
    let start = scanner.ws(0);
    let active: Vec<(usize, usize)> = (0..paths.len()).map(|p| (p, 0)).collect();
    let mut hits = Vec::new();
    let end = scanner.walk(start, paths, &active, &mut hits)?;
    if scanner.ws(end) != doc.len() {
        return Err(MALFORMED);
    }
    hits.sort_by_key(|h| (h.start, std::cmp::Reverse(h.end), h.path));
    let mut kept: Vec<Hit> = Vec::with_capacity(hits.len());
    for h in hits {
        if kept.last().is_none_or(|last| h.start >= last.end) {
            kept.push(h);
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(doc: &str, paths: &[&str]) -> Vec<String> {
        let parsed: Vec<JsonPath> = paths.iter().map(|p| JsonPath::parse(p).unwrap()).collect();
        let refs: Vec<&JsonPath> = parsed.iter().collect();
        find(doc.as_bytes(), &refs)
            .unwrap()
            .iter()
            .map(|h| doc[h.start..h.end].to_owned())
            .collect()
    }

    #[test]
    fn paths_parse() {
        let p = JsonPath::parse("$.contacts[*].email").unwrap();
        assert_eq!(
            p.steps(),
            [
                Step::Key("contacts".into()),
                Step::AnyIndex,
                Step::Key("email".into())
            ]
        );
        let p = JsonPath::parse("$[\"odd.key\\\"\"][2].*").unwrap();
        assert_eq!(
            p.steps(),
            [Step::Key("odd.key\"".into()), Step::Index(2), Step::AnyKey]
        );
        assert!(JsonPath::parse("$").unwrap().steps().is_empty());
        assert_eq!(p.to_string(), "$[\"odd.key\\\"\"][2].*");
    }

    #[test]
    fn malformed_paths_are_explained() {
        for (path, wanted) in [
            ("address.street", "starts with $"),
            ("$.", "expected a name after the dot at offset 1"),
            ("$..a", "expected a name after the dot"),
            ("$[x]", "expected [*], [N] or [\"name\"] at offset 1"),
            ("$[1", "expected ] after the index"),
            ("$[\"a\"", "expected ] after the quoted name"),
            ("$[\"a", "unterminated quoted name"),
            ("$.a b", "unexpected ' ' at offset 3"),
        ] {
            let e = JsonPath::parse(path).unwrap_err();
            assert!(e.contains(wanted), "{path}: {e}");
        }
    }

    #[test]
    fn finds_values_at_their_depth_only() {
        let doc = r#"{"email": "a@x.org", "nested": {"email": "b@x.org", "deeper": {"email": 1}}, "list": [{"email": "c"}, {"email": null}, 3]}"#;
        assert_eq!(hits(doc, &["$.email"]), ["\"a@x.org\""]);
        assert_eq!(hits(doc, &["$.nested.deeper.email"]), ["1"]);
        assert_eq!(hits(doc, &["$.list[*].email"]), ["\"c\"", "null"]);
        assert_eq!(hits(doc, &["$.list[2]"]), ["3"]);
        assert_eq!(hits(doc, &["$.*.email"]), ["\"b@x.org\""]);
        assert!(hits(doc, &["$.missing", "$.email.x", "$.list[9]"]).is_empty());
    }

    #[test]
    fn outer_hits_win_over_inner_and_first_path_over_later() {
        let doc = r#"{"a": {"b": "x"}, "c": "y"}"#;
        assert_eq!(hits(doc, &["$.a.b", "$.a"]), [r#"{"b": "x"}"#]);
        assert_eq!(hits(doc, &["$", "$.c"]), [doc]);
    }

    #[test]
    fn arrays_scalars_and_deep_documents() {
        assert_eq!(hits("[1, [2, 3]]", &["$[1][0]"]), ["2"]);
        assert!(hits("\"just a string\"", &["$.a"]).is_empty());
        assert_eq!(hits("\"s\"", &["$"]), ["\"s\""]);
        assert!(hits("null", &["$[0]"]).is_empty());
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        assert!(hits(&deep, &["$[0][0].a"]).is_empty());
        let deep = format!("{{\"a\": {}1{}}}", "[".repeat(5000), "]".repeat(5000));
        assert_eq!(hits(&deep, &["$.b"]).len(), 0);
        assert_eq!(hits(&deep, &["$.a"]).len(), 1);
    }

    #[test]
    fn strings_with_brackets_and_escapes_do_not_confuse_the_scan() {
        let doc = r#"{"x": "a \"}] b", "k\u0065y": "v", "z": ["]", "}"]}"#;
        assert_eq!(hits(doc, &["$.key"]), ["\"v\""]);
        assert_eq!(hits(doc, &["$.z[1]"]), ["\"}\""]);
        for bad in [r#"{"a": "#, r#"{"a" 1}"#, "[1, 2", r#"{"a": 1} x"#] {
            let p = JsonPath::parse("$.a").unwrap();
            assert!(find(bad.as_bytes(), &[&p]).is_err(), "{bad}");
        }
    }
}
