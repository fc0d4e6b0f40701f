//! The COPY row rewriter of stg-dump (`stg_dump::masking::TablePlan::rewrite_row`).
//!
//! Transforms are built the way stg-dump builds them: from a rules file through
//! `stg_dump::rules::Rules::parse`, so only transforms the rules parser accepts are used.
//!
//! Properties:
//! - with no masked column, rewriting is the identity on every row with the header's field
//!   count (byte for byte, plus the newline), and an error on every other row;
//! - with masking, a row with the right field count gives exactly one line (no raw newline
//!   inside), with the same number of fields; unmasked fields are byte-identical; every
//!   masked field decodes to what a plain reference implementation of the transform gives
//!   (NULL stays NULL except under `null` and `constant` null).

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use stg_core::copy_text::{escape_into, split_fields, unescape};
use stg_dump::masking::{ColumnPlan, Pseudonymizer, Scratch, TablePlan};
use stg_dump::rules::{Rules, Transform};

/// A transform as a rules-file entry would give it.
#[derive(Arbitrary, Debug)]
enum Rule {
    Keep,
    Null,
    Constant(Option<String>),
    Pseudonym(String),
    Email(Option<String>),
    KeepDomainEmail,
    Replace(String, String),
    Regex(u8, String),
}

/// Patterns small enough never to time out, and one built from fuzzed text.
const PATTERNS: &[&str] = &["[0-9]", "(?-u:.)", "^", "$", "a+", r"\t", r"\n", "(.)(.)"];

#[derive(Arbitrary, Debug)]
struct Input {
    columns: Vec<Rule>,
    /// Raw rows (escaped text, as pg_dump writes them).
    rows: Vec<Vec<u8>>,
    /// Decoded rows, escaped here so their field count is right.
    values: Vec<Vec<Option<Vec<u8>>>>,
}

fn rule_json(i: usize, rule: &Rule) -> Option<serde_json::Value> {
    let column = format!("c{i}");
    let base = |transform: &str| json!({"table": "t", "column": column, "transform": transform});
    let v = match rule {
        Rule::Keep => return None,
        Rule::Null => base("null"),
        Rule::Constant(value) => {
            let mut v = base("constant");
            v["value"] = json!(value);
            v
        }
        Rule::Pseudonym(prefix) => {
            let mut v = base("pseudonym");
            v["prefix"] = json!(prefix);
            v
        }
        Rule::Email(domain) => {
            let mut v = base("email");
            if let Some(d) = domain {
                v["domain"] = json!(d);
            }
            v
        }
        Rule::KeepDomainEmail => {
            let mut v = base("email");
            v["keep_domain"] = json!(true);
            v
        }
        Rule::Replace(from, to) => {
            let mut v = base("replace");
            v["from"] = json!(from);
            v["to"] = json!(to);
            v
        }
        Rule::Regex(which, replacement) => {
            let mut v = base("regex");
            v["pattern"] = json!(PATTERNS[usize::from(*which) % PATTERNS.len()]);
            v["replacement"] = json!(replacement);
            v
        }
    };
    Some(v)
}

/// The plan stg-dump would build, or `None` when the rules parser refuses the rules.
fn plan_of(columns: &[Rule]) -> Option<TablePlan> {
    let rules: Vec<serde_json::Value> = columns
        .iter()
        .enumerate()
        .filter_map(|(i, r)| rule_json(i, r))
        .collect();
    let text = serde_json::to_vec(&json!({ "rules": rules })).unwrap();
    let parsed = Rules::parse(&text, "fuzz.json").ok()?;
    let mut plan = TablePlan {
        table: "public.t".into(),
        columns: vec![None; columns.len()],
    };
    for rule in parsed.for_table("public", "t") {
        let i: usize = rule.column[1..].parse().unwrap();
        plan.columns[i] = Some(ColumnPlan {
            column: rule.column.clone(),
            transform: rule.transform.clone(),
            max_chars: None,
        });
    }
    Some(plan)
}

/// What each transform must give, written plainly (as docs/masking.md states it), to check
/// the optimised rewriter against.
fn reference(t: &Transform, value: Option<Vec<u8>>, keyed: &Pseudonymizer) -> Option<Vec<u8>> {
    let v = value?;
    Some(match t {
        Transform::Null | Transform::Constant(None) => return None,
        Transform::Constant(Some(c)) => c.as_bytes().to_vec(),
        Transform::Pseudonym { prefix } => format!("{prefix}{}", keyed.digest_hex(&v)).into_bytes(),
        Transform::Email { domain } => {
            let domain = match domain {
                Some(d) => d.as_bytes().to_vec(),
                None => match v.iter().rposition(|&b| b == b'@') {
                    Some(at) => v[at + 1..].to_vec(),
                    None => b"example.invalid".to_vec(),
                },
            };
            let mut out = format!("u{}@", keyed.digest_hex(&v)).into_bytes();
            out.extend_from_slice(&domain);
            out
        }
        Transform::Replace { from, to } => {
            let (from, to) = (from.needle(), to.as_bytes());
            let mut out = Vec::new();
            let mut i = 0;
            while i < v.len() {
                if v[i..].starts_with(from) {
                    out.extend_from_slice(to);
                    i += from.len();
                } else {
                    out.push(v[i]);
                    i += 1;
                }
            }
            out
        }
        Transform::Regex {
            pattern,
            replacement,
        } => pattern.replace_all(&v, replacement.as_bytes()).into_owned(),
        // The generator writes no json rules: fuzz target json_path covers them.
        Transform::Json { .. } => unreachable!("no json rules are generated"),
    })
}

fn check_identity(n: usize, row: &[u8], scratch: &mut Scratch) {
    let plan = TablePlan {
        table: "public.t".into(),
        columns: vec![None; n],
    };
    assert!(plan.is_identity());
    let mut out = Vec::new();
    let result = plan.rewrite_row(row, 1, None, scratch, &mut out);
    if split_fields(row).count() == n {
        result.unwrap_or_else(|e| panic!("identity plan refused a good row: {e}"));
        assert_eq!(&out[..out.len() - 1], row, "identity plan changed the row");
        assert_eq!(out.last(), Some(&b'\n'));
    } else {
        assert!(result.is_err(), "row with the wrong field count accepted");
    }
}

fn check_masked(plan: &TablePlan, keyed: &Pseudonymizer, row: &[u8], scratch: &mut Scratch) {
    let mut out = Vec::new();
    if split_fields(row).count() != plan.columns.len() {
        assert!(plan
            .rewrite_row(row, 1, Some(keyed), scratch, &mut out)
            .is_err());
        return;
    }
    plan.rewrite_row(row, 1, Some(keyed), scratch, &mut out)
        .unwrap_or_else(|e| panic!("masking refused a good row: {e}"));
    assert_eq!(out.pop(), Some(b'\n'), "row does not end with a newline");
    assert!(!out.contains(&b'\n'), "raw newline inside a rewritten row");
    let before: Vec<&[u8]> = split_fields(row).collect();
    let after: Vec<&[u8]> = split_fields(&out).collect();
    assert_eq!(after.len(), before.len(), "field count changed");
    for ((field_in, field_out), column) in before.iter().zip(&after).zip(&plan.columns) {
        let Some(column) = column else {
            assert_eq!(field_in, field_out, "unmasked field changed");
            continue;
        };
        assert!(
            !field_out.contains(&b'\r'),
            "raw carriage return in a masked field"
        );
        let value_in = unescape(field_in);
        let value_out = unescape(field_out);
        let expected = reference(&column.transform, value_in, keyed);
        assert_eq!(
            value_out,
            expected,
            "transform {} of field {:?}",
            column.transform.name(),
            String::from_utf8_lossy(field_in)
        );
    }
}

fuzz_target!(|input: Input| {
    let n = input.columns.len().clamp(1, 16);
    let columns = &input.columns[..input.columns.len().min(n)];
    let keyed = Pseudonymizer::new(b"fuzz-key-fuzz-key-fuzz-key-fuzz!");
    let plan = plan_of(columns);
    // One scratch for every row, as in stg-dump: nothing may leak from one row to the next.
    let mut scratch = Scratch::default();
    for raw in &input.rows {
        // A row reaches the rewriter without its newline; a newline inside is a new row.
        for row in raw.split(|b| *b == b'\n') {
            check_identity(columns.len().max(1), row, &mut scratch);
            if let Some(plan) = &plan {
                if !plan.columns.is_empty() {
                    check_masked(plan, &keyed, row, &mut scratch);
                }
            }
        }
    }
    for values in &input.values {
        let mut row = Vec::new();
        for i in 0..columns.len().max(1) {
            if i > 0 {
                row.push(b'\t');
            }
            let value = values.get(i).and_then(Option::as_deref);
            escape_into(value, &mut row);
        }
        check_identity(columns.len().max(1), &row, &mut scratch);
        if let Some(plan) = &plan {
            if !plan.columns.is_empty() {
                check_masked(plan, &keyed, &row, &mut scratch);
            }
        }
    }
});
