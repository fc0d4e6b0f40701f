//! The masking rules file: which columns to rewrite and how, which tables to dump without
//! data. Format in `docs/masking.md`.
//!
//! Parsing is strict and by hand (not serde's derive) so that every mistake is reported with
//! where it is: `rules[3] (public.people.email): unknown field "domian" for transform email`.
//! A typo must never leave a real column unmasked. Checking the rules against the live
//! schema is [`crate::schema`]'s job; this module only checks the file itself.

use std::path::Path;

use anyhow::Context;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use stg_core::Error;

/// A table named by schema and name, both as stored (no case folding).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableName {
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub table: String,
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{}",
            quote_if_needed(&self.schema),
            quote_if_needed(&self.table)
        )
    }
}

/// Quotes an identifier the way `pg_dump` does when it is not a plain lower-case name.
#[must_use]
pub fn quote_if_needed(ident: &str) -> String {
    let plain = !ident.is_empty()
        && ident
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && ident
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if plain {
        ident.to_owned()
    } else {
        format!("\"{}\"", ident.replace('"', "\"\""))
    }
}

impl TableName {
    /// Parses `table`, `schema.table`, or quoted parts (`"My Schema"."T.1"`); the schema
    /// defaults to `public`. Names are taken as written: no case folding.
    pub fn parse(text: &str) -> Result<TableName, String> {
        let parts = split_qualified(text)?;
        match parts.as_slice() {
            [table] => Ok(TableName {
                schema: "public".into(),
                table: table.clone(),
            }),
            [schema, table] => Ok(TableName {
                schema: schema.clone(),
                table: table.clone(),
            }),
            _ => Err(format!(
                "{text:?} is not a table name (expected table or schema.table; quote names containing dots)"
            )),
        }
    }
}

fn split_qualified(text: &str) -> Result<Vec<String>, String> {
    let mut parts = vec![String::new()];
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', false) => quoted = true,
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                parts.last_mut().expect("non-empty").push('"');
            }
            ('"', true) => quoted = false,
            ('.', false) => parts.push(String::new()),
            (c, _) => parts.last_mut().expect("non-empty").push(c),
        }
    }
    if quoted {
        return Err(format!("{text:?}: unterminated quote"));
    }
    if parts.iter().any(String::is_empty) {
        return Err(format!("{text:?}: empty name part"));
    }
    Ok(parts)
}

/// How a column's values are rewritten.
#[derive(Clone, Debug)]
pub enum Transform {
    /// Every value becomes NULL.
    Null,
    /// Every non-NULL value becomes this text (or NULL).
    Constant(Option<String>),
    /// A keyed hash of the value: `<prefix><16 hex digits>`. The same input gives the same
    /// output in every table, so joins and UNIQUE constraints survive.
    Pseudonym {
        /// Text put before the hash.
        prefix: String,
    },
    /// A pseudonymous local part (keyed hash of the whole address) at a chosen domain, or
    /// the original domain when `domain` is `None`.
    Email {
        /// The domain to use; `None` keeps the original.
        domain: Option<String>,
    },
    /// Every occurrence of `from` becomes `to`.
    Replace {
        /// Text to find.
        from: Box<memchr::memmem::Finder<'static>>,
        /// Replacement.
        to: String,
    },
    /// Regular-expression replacement (Rust `regex` syntax, `$1` for groups).
    Regex {
        /// The compiled pattern.
        pattern: regex::bytes::Regex,
        /// The replacement.
        replacement: String,
    },
    /// Other transforms applied at paths inside a json/jsonb document
    /// ([`crate::json_path`]); the rest of the document is kept byte for byte.
    Json {
        /// Path and transform (never itself `Json`), in file order.
        paths: Vec<(crate::json_path::JsonPath, Transform)>,
    },
}

impl Transform {
    /// The transform's name as written in the rules file.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Transform::Null => "null",
            Transform::Constant(_) => "constant",
            Transform::Pseudonym { .. } => "pseudonym",
            Transform::Email { .. } => "email",
            Transform::Replace { .. } => "replace",
            Transform::Regex { .. } => "regex",
            Transform::Json { .. } => "json",
        }
    }

    /// True when the transform needs the masking key.
    #[must_use]
    pub fn needs_key(&self) -> bool {
        match self {
            Transform::Pseudonym { .. } | Transform::Email { .. } => true,
            Transform::Json { paths } => paths.iter().any(|(_, t)| t.needs_key()),
            _ => false,
        }
    }

    /// True when two different values can come out the same (a constant, a regex
    /// replacement...): refused on columns under a UNIQUE or PRIMARY KEY constraint.
    /// `null` counts only when `nulls_collide` (a `NULLS NOT DISTINCT` index).
    #[must_use]
    pub fn can_collide(&self, nulls_collide: bool) -> bool {
        match self {
            Transform::Null | Transform::Constant(None) => nulls_collide,
            Transform::Constant(Some(_)) | Transform::Replace { .. } | Transform::Regex { .. } => {
                true
            }
            Transform::Pseudonym { .. } | Transform::Email { .. } => false,
            Transform::Json { paths } => paths.iter().any(|(_, t)| t.can_collide(true)),
        }
    }
}

/// One column rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Position in the file's `rules` array, for messages.
    pub index: usize,
    /// The table.
    pub table: TableName,
    /// The column, as stored.
    pub column: String,
    /// What to do with it.
    pub transform: Transform,
}

impl Rule {
    /// `rules[3] (public.people.email)`, for messages.
    #[must_use]
    pub fn at(&self) -> String {
        format!(
            "rules[{}] ({}.{})",
            self.index,
            self.table,
            quote_if_needed(&self.column)
        )
    }
}

/// Columns kept as they are, by decision: one entry of the file's `keep` array.
#[derive(Clone, Debug)]
pub struct Keep {
    /// Position in the file's `keep` array, for messages.
    pub index: usize,
    /// The table.
    pub table: TableName,
    /// The columns kept, as stored (empty when `all`).
    pub columns: Vec<String>,
    /// `"all": true`: every column of the table that no rule masks, including columns
    /// added later (so drift in this table is not caught).
    pub all: bool,
}

impl Keep {
    /// `keep[2] (public.groups)`, for messages.
    #[must_use]
    pub fn at(&self) -> String {
        format!("keep[{}] ({})", self.index, self.table)
    }
}

/// What happens to a column that no rule, keep or exclusion decides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Undecided {
    /// The dump is refused, naming every such column (the default).
    #[default]
    Refuse,
    /// The column is copied as it is (the opt-out, `"undecided": "keep"`); the manifest
    /// records it.
    Keep,
}

impl Undecided {
    /// The setting as written in the file and the manifest.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Undecided::Refuse => "refuse",
            Undecided::Keep => "keep",
        }
    }
}

/// What a masked dump does with the database's large objects (`"large_objects"` in the
/// file; [`crate::large_objects`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LargeObjects {
    /// Every object is written, except those a masked `oid` column (or one of a table
    /// whose data is excluded) points at: those are created empty.
    Keep,
    /// Every object is created empty: no object's bytes reach the stream.
    Exclude,
}

impl LargeObjects {
    /// The setting as written in the file and the manifest.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            LargeObjects::Keep => "keep",
            LargeObjects::Exclude => "exclude",
        }
    }
}

/// A parsed rules file.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    /// Column rules, in file order.
    pub rules: Vec<Rule>,
    /// Columns and tables kept as they are.
    pub keep: Vec<Keep>,
    /// What happens to columns nothing decides.
    pub undecided: Undecided,
    /// Tables dumped without data (schema kept).
    pub exclude_data: Vec<TableName>,
    /// What happens to large objects; `None` when the file does not say, which excludes
    /// them like [`LargeObjects::Exclude`] (and `--check` reports them undecided).
    pub large_objects: Option<LargeObjects>,
    /// SHA-256 of the file's bytes, recorded in the manifest.
    pub sha256: String,
}

impl Rules {
    /// Reads and parses a rules file.
    pub fn load(path: &Path) -> anyhow::Result<Rules> {
        let bytes = std::fs::read(path).map_err(|e| {
            Error::usage(format!("cannot read masking rules {}: {e}", path.display()))
        })?;
        Self::parse(&bytes, &path.display().to_string())
    }

    /// Parses rules from bytes; `shown` names the source in messages.
    pub fn parse(bytes: &[u8], shown: &str) -> anyhow::Result<Rules> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::usage(format!("masking rules {shown}: not valid JSON: {e}")))?;
        parse_value(&value)
            .map(|mut rules| {
                rules.sha256 = hex::encode(Sha256::digest(bytes));
                rules
            })
            .map_err(|e| Error::usage(format!("masking rules {shown}: {e}")))
            .context("while reading the masking rules")
    }

    /// True when some rule needs the masking key.
    #[must_use]
    pub fn need_key(&self) -> bool {
        self.rules.iter().any(|r| r.transform.needs_key())
    }

    /// The rules for one table, in file order.
    pub fn for_table<'a>(
        &'a self,
        schema: &'a str,
        table: &'a str,
    ) -> impl Iterator<Item = &'a Rule> + 'a {
        self.rules
            .iter()
            .filter(move |r| r.table.schema == schema && r.table.table == table)
    }
}

fn parse_value(value: &Value) -> Result<Rules, String> {
    let top = value
        .as_object()
        .ok_or("the file must be a JSON object with \"rules\", \"keep\" and/or \"exclude_data\"")?;
    for key in top.keys() {
        if !matches!(
            key.as_str(),
            "rules" | "keep" | "exclude_data" | "undecided" | "large_objects" | "comment"
        ) {
            return Err(format!(
                "unknown top-level field {key:?} (expected \"rules\", \"keep\", \"exclude_data\", \"undecided\", \"large_objects\", \"comment\")"
            ));
        }
    }
    let mut rules = Rules::default();
    if let Some(list) = top.get("rules") {
        let list = list.as_array().ok_or("\"rules\" must be an array")?;
        for (index, item) in list.iter().enumerate() {
            let rule = parse_rule(index, item)?;
            if let Some(prev) = rules
                .rules
                .iter()
                .find(|r| r.table == rule.table && r.column == rule.column)
            {
                return Err(format!(
                    "{}: the column already has a rule at rules[{}]",
                    rule.at(),
                    prev.index
                ));
            }
            rules.rules.push(rule);
        }
    }
    if let Some(list) = top.get("exclude_data") {
        let list = list
            .as_array()
            .ok_or("\"exclude_data\" must be an array of table names")?;
        for (i, item) in list.iter().enumerate() {
            let name = item
                .as_str()
                .ok_or_else(|| format!("exclude_data[{i}]: must be a string"))?;
            let table = TableName::parse(name).map_err(|e| format!("exclude_data[{i}]: {e}"))?;
            rules.exclude_data.push(table);
        }
    }
    rules.undecided = match top.get("undecided") {
        None => Undecided::Refuse,
        Some(Value::String(s)) if s == "refuse" => Undecided::Refuse,
        Some(Value::String(s)) if s == "keep" => Undecided::Keep,
        Some(other) => {
            return Err(format!(
                "\"undecided\" must be \"refuse\" (the default: columns that no rule, keep or \
                 exclude_data decides stop the dump) or \"keep\" (copy them as they are), not {other}"
            ))
        }
    };
    rules.large_objects = match top.get("large_objects") {
        None => None,
        Some(Value::String(s)) if s == "keep" => Some(LargeObjects::Keep),
        Some(Value::String(s)) if s == "exclude" => Some(LargeObjects::Exclude),
        Some(other) => {
            return Err(format!(
                "\"large_objects\" must be \"exclude\" (no large object's bytes are dumped; each \
                 object is created empty) or \"keep\" (dump them, except those a masked oid column \
                 points at), not {other}"
            ))
        }
    };
    if let Some(list) = top.get("keep") {
        let list = list.as_array().ok_or("\"keep\" must be an array")?;
        for (index, item) in list.iter().enumerate() {
            let keep = parse_keep(index, item)?;
            if let Some(prev) = rules.keep.iter().find(|k| k.table == keep.table) {
                return Err(format!(
                    "{}: the table already has a keep entry at keep[{}]; list its columns there",
                    keep.at(),
                    prev.index
                ));
            }
            for column in &keep.columns {
                if let Some(rule) = rules
                    .rules
                    .iter()
                    .find(|r| r.table == keep.table && &r.column == column)
                {
                    return Err(format!(
                        "{}: column {} is kept here and masked by {}; decide one",
                        keep.at(),
                        quote_if_needed(column),
                        rule.at()
                    ));
                }
            }
            rules.keep.push(keep);
        }
    }
    Ok(rules)
}

fn parse_keep(index: usize, item: &Value) -> Result<Keep, String> {
    let mut at = format!("keep[{index}]");
    let obj = item.as_object().ok_or_else(|| {
        format!("{at}: must be an object like {{\"table\": \"public.groups\", \"columns\": [\"id\", \"name\"]}} or {{\"table\": \"public.audit\", \"all\": true}}")
    })?;
    let table_text = required(obj, "table", &at)?;
    let table = TableName::parse(&table_text).map_err(|e| format!("{at}: table: {e}"))?;
    at = format!("{at} ({table})");
    for key in obj.keys() {
        if !matches!(key.as_str(), "table" | "columns" | "all" | "comment") {
            return Err(format!(
                "{at}: unknown field {key:?} (allowed: table, columns, all, comment)"
            ));
        }
    }
    let all = match obj.get("all") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(format!("{at}: \"all\" must be true or false, not {other}")),
    };
    let mut columns: Vec<String> = Vec::new();
    match obj.get("columns") {
        None => {}
        Some(Value::Array(list)) => {
            for (i, c) in list.iter().enumerate() {
                let name = c
                    .as_str()
                    .ok_or_else(|| format!("{at}: columns[{i}] must be a string"))?;
                if columns.iter().any(|x| x == name) {
                    return Err(format!(
                        "{at}: column {} is listed twice",
                        quote_if_needed(name)
                    ));
                }
                columns.push(name.to_owned());
            }
        }
        Some(other) => {
            return Err(format!(
                "{at}: \"columns\" must be an array of column names, not {other}"
            ))
        }
    }
    match (all, columns.is_empty()) {
        (true, false) => Err(format!(
            "{at}: give either \"columns\" or \"all\": true, not both"
        )),
        (false, true) => Err(format!(
            "{at}: needs \"columns\" (a non-empty list) or \"all\": true"
        )),
        _ => Ok(Keep {
            index,
            table,
            columns,
            all,
        }),
    }
}

fn string_field(obj: &Map<String, Value>, key: &str, at: &str) -> Result<Option<String>, String> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("{at}: field {key:?} must be a string, not {other}")),
    }
}

fn required(obj: &Map<String, Value>, key: &str, at: &str) -> Result<String, String> {
    string_field(obj, key, at)?.ok_or_else(|| format!("{at}: missing field {key:?}"))
}

fn parse_rule(index: usize, item: &Value) -> Result<Rule, String> {
    let mut at = format!("rules[{index}]");
    let obj = item
        .as_object()
        .ok_or_else(|| format!("{at}: must be an object"))?;
    let table_text = required(obj, "table", &at)?;
    let table = TableName::parse(&table_text).map_err(|e| format!("{at}: table: {e}"))?;
    let column = required(obj, "column", &at)?;
    at = format!("{at} ({table}.{})", quote_if_needed(&column));
    let transform = parse_transform(obj, &at, &["table", "column"], false)?;
    Ok(Rule {
        index,
        table,
        column,
        transform,
    })
}

/// The transform of a rule or of a json path entry; `fixed` are the entry's other fields,
/// `nested` is true inside a json transform's paths.
fn parse_transform(
    obj: &Map<String, Value>,
    at: &str,
    fixed: &[&str],
    nested: bool,
) -> Result<Transform, String> {
    let name = required(obj, "transform", at)?;
    let (transform, allowed): (Transform, &[&str]) = match name.as_str() {
        "null" => (Transform::Null, &[]),
        "constant" => {
            let value = match obj.get("value") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Null) => None,
                Some(other) => return Err(format!("{at}: \"value\" must be a string or null, not {other}")),
                None => return Err(format!("{at}: transform constant needs a \"value\"")),
            };
            (Transform::Constant(value), &["value"])
        }
        "pseudonym" => (
            Transform::Pseudonym {
                prefix: string_field(obj, "prefix", at)?.unwrap_or_default(),
            },
            &["prefix"],
        ),
        "email" => {
            let domain = string_field(obj, "domain", at)?;
            let keep = match obj.get("keep_domain") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(other) => return Err(format!("{at}: \"keep_domain\" must be true or false, not {other}")),
            };
            if keep && domain.is_some() {
                return Err(format!("{at}: give either \"domain\" or \"keep_domain\": true, not both"));
            }
            if let Some(d) = &domain {
                if !stg_core::inventory::is_valid_hostname(d) {
                    return Err(format!("{at}: \"domain\" {d:?} is not a valid domain"));
                }
            }
            let domain = if keep {
                None
            } else {
                Some(domain.unwrap_or_else(|| "example.invalid".to_owned()))
            };
            (Transform::Email { domain }, &["domain", "keep_domain"])
        }
        "replace" => {
            let from = required(obj, "from", at)?;
            if from.is_empty() {
                return Err(format!("{at}: \"from\" must not be empty"));
            }
            let to = required(obj, "to", at)?;
            let from = Box::new(memchr::memmem::Finder::new(from.as_bytes()).into_owned());
            (Transform::Replace { from, to }, &["from", "to"])
        }
        "regex" => {
            let pattern_text = required(obj, "pattern", at)?;
            let pattern = regex::bytes::Regex::new(&pattern_text)
                .map_err(|e| format!("{at}: invalid \"pattern\": {e}"))?;
            let replacement = required(obj, "replacement", at)?;
            (Transform::Regex { pattern, replacement }, &["pattern", "replacement"])
        }
        "json" if nested => {
            return Err(format!(
                "{at}: transform json cannot be used inside json paths"
            ))
        }
        "json" => {
            let list = obj
                .get("paths")
                .and_then(Value::as_array)
                .filter(|l| !l.is_empty())
                .ok_or_else(|| {
                    format!("{at}: transform json needs \"paths\": a non-empty array of {{\"path\": \"$.a.b\", \"transform\": ...}}")
                })?;
            let mut paths = Vec::new();
            for (i, item) in list.iter().enumerate() {
                let inner_at = format!("{at} paths[{i}]");
                let inner = item
                    .as_object()
                    .ok_or_else(|| format!("{inner_at}: must be an object"))?;
                let text = required(inner, "path", &inner_at)?;
                let path = crate::json_path::JsonPath::parse(&text)
                    .map_err(|e| format!("{inner_at}: malformed path {text:?}: {e}"))?;
                let inner_at = format!("{at} paths[{i}] ({text})");
                let transform = parse_transform(inner, &inner_at, &["path"], true)?;
                paths.push((path, transform));
            }
            (Transform::Json { paths }, &["paths"])
        }
        other => {
            return Err(format!(
                "{at}: unknown transform {other:?} (known: null, constant, pseudonym, email, replace, regex, json)"
            ))
        }
    };
    for key in obj.keys() {
        if !matches!(key.as_str(), "transform" | "comment")
            && !fixed.contains(&key.as_str())
            && !allowed.contains(&key.as_str())
        {
            return Err(format!(
                "{at}: unknown field {key:?} for transform {name} (allowed: {})",
                allowed.join(", ")
            ));
        }
    }
    Ok(transform)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        format!("{:#}", Rules::parse(text.as_bytes(), "m.json").unwrap_err())
    }

    #[test]
    fn parses_every_transform() {
        let text = r#"{"rules": [
            {"table": "people", "column": "password", "transform": "constant", "value": "INVALID"},
            {"table": "public.people", "column": "username", "transform": "pseudonym", "prefix": "u"},
            {"table": "people", "column": "email", "transform": "email", "domain": "stg.fedoraproject.org"},
            {"table": "people", "column": "telephone", "transform": "null"},
            {"table": "groups", "column": "display_name", "transform": "replace", "from": "a", "to": "b"},
            {"table": "\"Odd Schema\".\"T.1\"", "column": "Notes", "transform": "regex", "pattern": "[0-9]+", "replacement": "N"}
        ], "exclude_data": ["sessions"]}"#;
        let rules = Rules::parse(text.as_bytes(), "m.json").unwrap();
        assert_eq!(rules.rules.len(), 6);
        assert!(rules.need_key());
        assert_eq!(rules.rules[5].table.schema, "Odd Schema");
        assert_eq!(rules.rules[5].table.table, "T.1");
        assert_eq!(rules.rules[5].table.to_string(), "\"Odd Schema\".\"T.1\"");
        assert_eq!(rules.exclude_data[0].to_string(), "public.sessions");
        assert_eq!(rules.sha256.len(), 64);
    }

    #[test]
    fn mistakes_are_named() {
        assert!(err("{").contains("not valid JSON"));
        assert!(err(r#"{"rule": []}"#).contains("unknown top-level field \"rule\""));
        let e = err(r#"{"rules": [{"table": "people", "column": "email", "transform": "emial"}]}"#);
        assert!(
            e.contains("rules[0] (public.people.email): unknown transform \"emial\""),
            "{e}"
        );
        let e = err(
            r#"{"rules": [{"table": "people", "column": "email", "transform": "email", "domian": "x.org"}]}"#,
        );
        assert!(
            e.contains("unknown field \"domian\" for transform email"),
            "{e}"
        );
        let e = err(
            r#"{"rules": [{"table": "people", "column": "password", "transform": "constant"}]}"#,
        );
        assert!(e.contains("needs a \"value\""), "{e}");
        let e = err(
            r#"{"rules": [{"table": "people", "column": "x", "transform": "regex", "pattern": "(", "replacement": ""}]}"#,
        );
        assert!(e.contains("invalid \"pattern\""), "{e}");
        let e = err(
            r#"{"rules": [{"table": "a", "column": "x", "transform": "null"}, {"table": "public.a", "column": "x", "transform": "null"}]}"#,
        );
        assert!(e.contains("already has a rule at rules[0]"), "{e}");
    }

    #[test]
    fn keep_entries_and_the_undecided_setting() {
        let rules = Rules::parse(
            br#"{"rules": [{"table": "people", "column": "email", "transform": "null"}],
                 "keep": [{"table": "people", "columns": ["id", "name"]}, {"table": "audit", "all": true}],
                 "undecided": "keep"}"#,
            "m.json",
        )
        .unwrap();
        assert_eq!(rules.keep.len(), 2);
        assert_eq!(rules.keep[0].columns, ["id", "name"]);
        assert!(rules.keep[1].all && rules.keep[1].columns.is_empty());
        assert_eq!(rules.undecided, Undecided::Keep);
        assert_eq!(
            Rules::parse(b"{}", "m.json").unwrap().undecided,
            Undecided::Refuse
        );
        assert_eq!(Rules::parse(b"{}", "m.json").unwrap().large_objects, None);
        assert_eq!(
            Rules::parse(br#"{"large_objects": "keep"}"#, "m.json")
                .unwrap()
                .large_objects,
            Some(LargeObjects::Keep)
        );
        for (text, wanted) in [
            (
                r#"{"rules": [{"table": "people", "column": "email", "transform": "null"}],
                    "keep": [{"table": "public.people", "columns": ["email"]}]}"#,
                "keep[0] (public.people): column email is kept here and masked by rules[0] (public.people.email); decide one",
            ),
            (
                r#"{"keep": [{"table": "a", "columns": ["x"]}, {"table": "a", "all": true}]}"#,
                "keep[1] (public.a): the table already has a keep entry at keep[0]",
            ),
            (
                r#"{"keep": [{"table": "a", "columns": ["x"], "all": true}]}"#,
                "not both",
            ),
            (r#"{"keep": [{"table": "a"}]}"#, "needs \"columns\""),
            (r#"{"keep": [{"table": "a", "columns": ["x", "x"]}]}"#, "listed twice"),
            (r#"{"keep": [{"table": "a", "colums": ["x"]}]}"#, "unknown field \"colums\""),
            (r#"{"undecided": "allow"}"#, "\"undecided\" must be \"refuse\""),
            (
                r#"{"large_objects": "drop"}"#,
                "\"large_objects\" must be \"exclude\"",
            ),
            (r#"{"large_objects": null}"#, "or \"keep\""),
        ] {
            let e = err(text);
            assert!(e.contains(wanted), "{text}: {e}");
        }
    }

    #[test]
    fn json_transforms_parse_and_their_mistakes_are_named() {
        let rules = Rules::parse(
            br#"{"rules": [{"table": "p", "column": "doc", "transform": "json", "paths": [
                {"path": "$.a.b", "transform": "pseudonym", "prefix": "x"},
                {"path": "$.c[*]", "transform": "constant", "value": "k"}]}]}"#,
            "m.json",
        )
        .unwrap();
        assert!(rules.need_key());
        let Transform::Json { paths } = &rules.rules[0].transform else {
            panic!("not json");
        };
        assert_eq!(paths.len(), 2);
        assert_eq!(paths[0].0.to_string(), "$.a.b");
        assert!(rules.rules[0].transform.can_collide(false));
        for (text, wanted) in [
            (
                r#"{"rules": [{"table": "p", "column": "d", "transform": "json", "paths": [{"path": "a.b", "transform": "null"}]}]}"#,
                "rules[0] (public.p.d) paths[0]: malformed path \"a.b\": a path starts with $",
            ),
            (
                r#"{"rules": [{"table": "p", "column": "d", "transform": "json"}]}"#,
                "needs \"paths\"",
            ),
            (
                r#"{"rules": [{"table": "p", "column": "d", "transform": "json", "paths": [{"path": "$.a", "transform": "json", "paths": []}]}]}"#,
                "cannot be used inside json paths",
            ),
            (
                r#"{"rules": [{"table": "p", "column": "d", "transform": "json", "paths": [{"path": "$.a", "transform": "null", "value": 1}]}]}"#,
                "paths[0] ($.a): unknown field \"value\" for transform null",
            ),
        ] {
            let e = err(text);
            assert!(e.contains(wanted), "{text}: {e}");
        }
    }
}
