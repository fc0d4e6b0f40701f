//! Path patterns for staging variant files (`--variant`) and for `.stg-age-ignore` entries.
//!
//! A small glob dialect, matched against a path relative to the repository's top level, as
//! bytes (paths need not be UTF-8): `*` matches within one path component, `**` across
//! components, `?` one byte other than `/`; everything else is literal. A pattern matches a
//! file or any file below a matching directory. A *floating* pattern (variants) may match at
//! any depth (`group_vars/staging` matches `inventory/group_vars/staging`); an *anchored*
//! one (ignore entries, and variants starting with `/`) only from the top level.
//! Not a gitignore implementation: no negation, no character classes.

use regex::bytes::Regex;

/// A compiled pattern.
#[derive(Clone, Debug)]
pub struct Glob {
    text: String,
    regex: Regex,
}

impl Glob {
    /// Compiles `pattern`; `anchored` decides whether it must match from the top level
    /// (a leading `/` always anchors). `Err` for an empty pattern.
    pub fn new(pattern: &str, anchored: bool) -> Result<Glob, String> {
        let body = pattern.strip_prefix('/');
        let anchored = anchored || body.is_some();
        let body = body.unwrap_or(pattern).trim_end_matches('/');
        if body.is_empty() {
            return Err(format!("empty path pattern {pattern:?}"));
        }
        let mut re = String::from(if anchored { "(?s-u)^" } else { "(?s-u)(?:^|/)" });
        let mut rest = body;
        while let Some(c) = rest.chars().next() {
            if rest.starts_with("**") {
                re.push_str(".*");
                rest = &rest[2..];
                continue;
            }
            match c {
                '*' => re.push_str("[^/]*"),
                '?' => re.push_str("[^/]"),
                other => re.push_str(&regex::escape(other.encode_utf8(&mut [0; 4]))),
            }
            rest = &rest[c.len_utf8()..];
        }
        re.push_str("(?:/|$)");
        let regex = Regex::new(&re).map_err(|e| format!("bad path pattern {pattern:?}: {e}"))?;
        Ok(Glob {
            text: pattern.to_owned(),
            regex,
        })
    }

    /// True when `path` (relative to the top level, `/`-separated) is matched.
    #[must_use]
    pub fn matches(&self, path: &[u8]) -> bool {
        self.regex.is_match(path)
    }

    /// The pattern as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// The default staging variant patterns: the SOP's `*.staging` files, per-host files of
/// staging hosts (`main.cf.mailman01.stg.example.org`), `-stg` variants (`cron-stg`), and
/// the inventory naming Fedora uses (`group_vars/staging`, `group_vars/*_stg`,
/// `host_vars/*stg*`).
pub const DEFAULT_VARIANTS: &[&str] = &[
    "*.staging",
    "*.stg.*",
    "*-stg",
    "group_vars/staging",
    "group_vars/*_stg",
    "host_vars/*stg*",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floating_patterns_match_at_any_depth_and_below_directories() {
        let g = Glob::new("group_vars/staging", false).unwrap();
        assert!(g.matches(b"inventory/group_vars/staging"));
        assert!(g.matches(b"group_vars/staging/main.yml"));
        assert!(!g.matches(b"inventory/group_vars/staging_old"));
        assert!(!g.matches(b"xgroup_vars/staging"));
        let s = Glob::new("*.staging", false).unwrap();
        assert!(s.matches(b"roles/base/files/resolv.conf.staging"));
        assert!(s.matches(b"a \xff b.staging"));
        assert!(!s.matches(b"resolv.conf.staging.bak"));
        let h = Glob::new("host_vars/*stg*", false).unwrap();
        assert!(h.matches(b"inventory/host_vars/db01.stg.iad2.example.org"));
        assert!(!h.matches(b"inventory/host_vars/db01.iad2.example.org"));
    }

    #[test]
    fn anchored_patterns_start_at_the_top() {
        let g = Glob::new("roles/**/x.j2", true).unwrap();
        assert!(g.matches(b"roles/a/b/x.j2"));
        assert!(!g.matches(b"other/roles/a/x.j2"));
        let d = Glob::new("roles/web/", true).unwrap();
        assert!(d.matches(b"roles/web/tasks/main.yml"));
        assert!(!d.matches(b"roles/webapp/tasks/main.yml"));
        assert!(Glob::new("/a.txt", false).unwrap().matches(b"a.txt"));
        assert!(!Glob::new("/a.txt", false).unwrap().matches(b"b/a.txt"));
        assert!(Glob::new("", false).is_err());
        assert!(Glob::new("a+(b).txt", true).unwrap().matches(b"a+(b).txt"));
    }
}
