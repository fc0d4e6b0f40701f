//! The line matcher: which lines of a text file compare the environment variable with
//! `"staging"`, and in what form (YAML `when:`, Jinja `{% if %}`, `ternary`, an inline dict
//! keyed by the environment, or any other expression).
//!
//! It is a regex-based line matcher, not a YAML or Jinja parser: the only state it keeps
//! across lines is whether it is inside a block-style `when:` (a list or a folded scalar), so
//! that `- env == "staging"` under `when:` is classified as a `when`. It never fails and never
//! panics on any input (it is fuzzed), and it knows nothing about git, files or ages.
//!
//! What is a hit, for variable `env` and the value `staging` (both configurable; several
//! values may be given, e.g. `production` too, for `when: env == 'production'`):
//! - `env == "staging"`, `env != 'staging'`, `env=="staging"`, `'staging' == env`;
//! - with filters on the variable: `env | default('') == 'staging'`;
//! - membership: `env in ['staging', 'dev']`, `env not in ("staging",)`;
//! - a dict keyed by the environment: `{'staging': 'a', 'production': 'b'}[env]`;
//! - quotes may be escaped (`\"staging\"`, as inside JSON strings).
//!
//! The variable must be a whole identifier (`my_env == 'staging'` is not a hit) and the value
//! a whole quoted word (`env == 'pagure-staging'` is not a hit). Lines whose first
//! non-blank character is `#` are comments (YAML, shell, Python) and never hits.

use regex::Regex;

/// How a staging-only difference is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// An Ansible condition: `when:`, `failed_when:`, `changed_when:` (string, list item,
    /// folded scalar, or inside an inline dict such as `- { role: x, when: ... }`).
    When,
    /// A Jinja statement: `{% if ... %}` or `{% elif ... %}`.
    JinjaIf,
    /// An expression feeding Ansible's `ternary` filter.
    Ternary,
    /// An inline dict keyed by the environment: `{'staging': ..., ...}[env]`.
    DictLookup,
    /// Any other comparison (`{{ 'a' if env == 'staging' else 'b' }}`, `set_fact` values...).
    Expression,
}

impl Kind {
    /// The name used in records (`"when"`, `"jinja_if"`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::When => "when",
            Kind::JinjaIf => "jinja_if",
            Kind::Ternary => "ternary",
            Kind::DictLookup => "dict_lookup",
            Kind::Expression => "expression",
        }
    }
}

/// One matching line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// 1-based line number.
    pub line: usize,
    /// The form of the condition.
    pub kind: Kind,
}

/// A compiled matcher for one variable name.
#[derive(Clone, Debug)]
pub struct Matcher {
    comparison: Regex,
    dict_key: Regex,
    dict_index: Regex,
    jinja_if: Regex,
    ternary: Regex,
    when_inline: Regex,
    when_block: Regex,
}

/// The value comparisons are against by default.
pub const STAGING: &str = "staging";

/// True when `name` is a valid variable name (`[A-Za-z_][A-Za-z0-9_]*`).
#[must_use]
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Matcher {
    /// A matcher for comparisons of `var` with `"staging"`; `Err` names a variable that is
    /// not an identifier.
    pub fn new(var: &str) -> Result<Matcher, String> {
        Self::with_values(var, &[STAGING])
    }

    /// A matcher for comparisons of `var` with any of `values`; `Err` names a variable that
    /// is not an identifier or a value that is empty or holds a quote, backslash or newline.
    pub fn with_values(var: &str, values: &[&str]) -> Result<Matcher, String> {
        if !is_identifier(var) {
            return Err(format!(
                "invalid variable name {var:?}: expected letters, digits and underscores, not starting with a digit"
            ));
        }
        if values.is_empty() {
            return Err("no value to compare with".to_owned());
        }
        for value in values {
            if value.is_empty() || value.contains(['\'', '"', '\\', '\n', '\r']) {
                return Err(format!(
                    "invalid value {value:?}: expected a non-empty word without quotes, backslashes or newlines"
                ));
            }
        }
        let var = regex::escape(var);
        let value = format!(
            "(?:{})",
            values
                .iter()
                .map(|v| regex::escape(v))
                .collect::<Vec<_>>()
                .join("|")
        );
        // A quoted value, either quote style, possibly backslash-escaped; the closing quote
        // must be the same as the opening one, so 'staging" is not a value.
        let quoted = format!(r#"(?:\\?'{value}\\?'|\\?"{value}\\?")"#);
        // Jinja filters applied to the variable before comparing: `env | default('x')`.
        let filters = r"(?:\s*\|\s*[A-Za-z_][A-Za-z0-9_]*(?:\s*\([^()]*\))?)*";
        let before = r"(?:^|[^A-Za-z0-9_])";
        let after = r"(?:[^A-Za-z0-9_]|$)";
        let comparison = format!(
            r"{before}{var}{filters}\s*(?:==|!=)\s*{quoted}|{quoted}\s*(?:==|!=)\s*{var}{after}|{before}{var}\s+(?:not\s+)?in\s*[\[(][^\])]*{quoted}"
        );
        let build = |pattern: &str| Regex::new(pattern).expect("the matcher's patterns are valid");
        Ok(Matcher {
            comparison: build(&comparison),
            dict_key: build(&format!(r"{quoted}\s*:")),
            dict_index: build(&format!(r"\[\s*{var}\s*\]")),
            jinja_if: build(r"\{%[-+]?\s*(?:el)?if\s"),
            ternary: build(r"\bternary\s*\("),
            when_inline: build(r#"(?:^|[\s{,"'])(?:[A-Za-z]+_)?when["']?\s*:"#),
            when_block: build(
                r"^(\s*)(-\s+)?(?:[A-Za-z]+_)?when\s*:\s*(?:[>|][-+0-9]*)?\s*(?:#.*)?$",
            ),
        })
    }

    /// Classifies one line on its own (no `when:` block context); `None` when it is not a
    /// hit.
    #[must_use]
    pub fn match_line(&self, line: &str) -> Option<Kind> {
        if line.trim_start().starts_with('#') {
            return None;
        }
        let compares = self.comparison.is_match(line);
        let looks_up = !compares && self.dict_index.is_match(line) && self.dict_key.is_match(line);
        if !compares && !looks_up {
            return None;
        }
        Some(if self.when_inline.is_match(line) {
            Kind::When
        } else if self.jinja_if.is_match(line) {
            Kind::JinjaIf
        } else if self.ternary.is_match(line) {
            Kind::Ternary
        } else if looks_up {
            Kind::DictLookup
        } else {
            Kind::Expression
        })
    }

    /// Scans a whole file (bytes; invalid UTF-8 is replaced, lines split on `\n`), keeping
    /// track of block-style `when:` so that list items and folded lines under it are
    /// classified as [`Kind::When`].
    #[must_use]
    pub fn scan(&self, text: &[u8]) -> Vec<Hit> {
        let mut hits = Vec::new();
        // Column of the key of the `when:` block we are in, if any.
        let mut block: Option<usize> = None;
        for (index, raw) in text.split(|b| *b == b'\n').enumerate() {
            let line = String::from_utf8_lossy(raw);
            let line = line.trim_end_matches('\r');
            let trimmed = line.trim_start();
            let indent = line.len() - trimmed.len();
            if let Some(key_col) = block {
                let inside = trimmed.is_empty()
                    || trimmed.starts_with('#')
                    || indent > key_col
                    || (indent == key_col && (trimmed == "-" || trimmed.starts_with("- ")));
                if !inside {
                    block = None;
                }
            }
            if let Some(caps) = self.when_block.captures(line) {
                let dash = caps.get(2).map_or(0, |m| m.len());
                block = Some(caps[1].len() + dash);
                continue;
            }
            if let Some(kind) = self.match_line(line) {
                let kind = if block.is_some() { Kind::When } else { kind };
                hits.push(Hit {
                    line: index + 1,
                    kind,
                });
            }
        }
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(line: &str) -> Option<Kind> {
        Matcher::new("env").unwrap().match_line(line)
    }

    #[test]
    fn comparisons_in_both_quote_styles_and_spacings() {
        for line in [
            r#"when: env == "staging""#,
            "when: env == 'staging'",
            r#"when: env=="staging""#,
            "when: env!='staging'",
            r#"when: "staging" == env"#,
            "when: env|default('production') == 'staging'",
            "when: env is defined and env == 'staging' and inventory_hostname in groups['x']",
            "when: env in ['staging', 'dev']",
            r#"{"when": "env == \"staging\""}"#,
        ] {
            assert_eq!(kind(line), Some(Kind::When), "{line}");
        }
    }

    #[test]
    fn forms_are_classified() {
        assert_eq!(kind(r#"{% if env == "staging" %}"#), Some(Kind::JinjaIf));
        assert_eq!(kind("{%- elif env != 'staging' -%}"), Some(Kind::JinjaIf));
        assert_eq!(
            kind("x: \"{{ (env == 'staging') | ternary('a', 'b') }}\""),
            Some(Kind::Ternary)
        );
        assert_eq!(
            kind("url: \"{{ {'staging': 'a.stg', 'production': 'a'}[env] }}\""),
            Some(Kind::DictLookup)
        );
        assert_eq!(
            kind("- { role: collectd/base, when: env == \"staging\" }"),
            Some(Kind::When)
        );
        assert_eq!(
            kind("host: \"{{ 'db.stg' if env == 'staging' else 'db' }}\""),
            Some(Kind::Expression)
        );
    }

    #[test]
    fn near_misses_are_not_hits() {
        for line in [
            "when: env == 'pagure-staging'",
            "when: env == 'staging-old'",
            "when: my_env == 'staging'",
            "when: env2 == 'staging'",
            "when: environment == 'staging'",
            "when: 'staging' == environment",
            "when: env == staging",
            "when: env == 'staging\"",
            "# when: env == 'staging'",
            "    # {% if env == 'staging' %}",
            "url: \"{{ {'staging': 'a'}[other] }}\"",
        ] {
            assert_eq!(kind(line), None, "{line}");
        }
    }

    #[test]
    fn block_when_lists_and_folded_scalars() {
        let text = "- name: a\n  command: x\n  when:\n    - env == \"staging\"\n    - y\n\
                    - name: b\n  when: >\n    x and\n    env != 'staging'\n\
                    - name: c\n  set_fact:\n    v: \"{{ env == 'staging' }}\"\n\
                    - name: d\n  when:\n  - env == 'staging'\n";
        let hits = Matcher::new("env").unwrap().scan(text.as_bytes());
        assert_eq!(
            hits,
            vec![
                Hit {
                    line: 4,
                    kind: Kind::When
                },
                Hit {
                    line: 9,
                    kind: Kind::When
                },
                Hit {
                    line: 12,
                    kind: Kind::Expression
                },
                Hit {
                    line: 15,
                    kind: Kind::When
                },
            ]
        );
    }

    #[test]
    fn variable_name_is_configurable_and_validated() {
        let m = Matcher::new("deployment").unwrap();
        assert_eq!(
            m.match_line("when: deployment == 'staging'"),
            Some(Kind::When)
        );
        assert_eq!(m.match_line("when: env == 'staging'"), None);
        assert!(Matcher::new("1env").is_err());
        assert!(Matcher::new("env)|(x").is_err());
        assert!(Matcher::new("").is_err());
    }

    #[test]
    fn values_are_configurable_and_validated() {
        let m = Matcher::with_values("env", &["staging", "production"]).unwrap();
        assert_eq!(
            m.match_line("when: env == 'production' and x"),
            Some(Kind::When)
        );
        assert_eq!(m.match_line("when: env == 'staging'"), Some(Kind::When));
        assert_eq!(m.match_line("when: env == 'production-old'"), None);
        assert!(Matcher::with_values("env", &["a'b"]).is_err());
        assert!(Matcher::with_values("env", &[""]).is_err());
        assert!(Matcher::with_values("env", &[]).is_err());
    }

    #[test]
    fn arbitrary_bytes_do_not_panic() {
        let m = Matcher::new("env").unwrap();
        let _ = m.scan(b"\xff\xfe when:\n\x00 - env == 'staging'\r\n\n");
        let _ = m.scan(b"");
    }
}
