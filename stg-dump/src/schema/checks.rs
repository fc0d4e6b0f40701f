//! The checks of the masking rules against the schema: a missing table or column (with a
//! close name suggested), a transform that does not fit the column's type or constraints or
//! can collide on a unique index, foreign keys masked differently at their two ends, and
//! undecided columns. Each problem is a [`Finding`].

use std::collections::BTreeSet;

use serde::Serialize;
use tokio_postgres::Client;

use super::catalog::constant_fits;
use super::sensitive::suggest;
use super::{Column, Schema};
use crate::rules::{quote_if_needed, Rule, Rules, Transform};

/// A finding of `--check` (and, for rule problems, the reason a dump is refused).
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Finding {
    /// A rule that cannot be applied as written.
    RuleProblem {
        /// Where the rule is (`rules[3] (public.people.email)`, `exclude_data[0]`).
        rule: String,
        /// What is wrong.
        message: String,
    },
    /// An object that would let staging reach production (`docs/stg-dump.md`,
    /// `--foreign-connections`).
    ForeignConnection {
        /// What it is.
        kind: crate::connections::Kind,
        /// Its name.
        name: String,
        /// Option names or what matched (never values).
        detail: String,
    },
    /// A column of a dumped table that no rule, keep or `exclude_data` decides: the dump
    /// is refused (unless the rules say `"undecided": "keep"`).
    Undecided {
        /// `schema.table`.
        table: String,
        /// Column name.
        column: String,
        /// The column's type.
        data_type: String,
        /// `rule` or `keep`: what `suggested_rule` or a keep entry would say.
        suggested: &'static str,
        /// A rule to paste into `rules` (from the sensitive-name check), when one is
        /// suggested.
        #[serde(skip_serializing_if = "Option::is_none")]
        suggested_rule: Option<serde_json::Value>,
    },
    /// The database has large objects and the rules do not say what to do with them: a
    /// masked dump leaves out their bytes (the default), but nobody decided it
    /// ([`crate::large_objects`]).
    UndecidedLargeObjects {
        /// How many large objects the database has.
        objects: u64,
        /// What `"large_objects"` should say for the dump to do what it does now.
        suggested: &'static str,
    },
    /// A column whose name looks sensitive and that no rule masks.
    UnmaskedSensitive {
        /// `schema.table`.
        table: String,
        /// Column name.
        column: String,
        /// The column's type.
        data_type: String,
        /// The name part that looked sensitive.
        matched: String,
    },
}

/// Edit distance between two short names (case-insensitive), for "did you mean" hints.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

fn similar<'a>(wanted: &str, names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| (distance(wanted, n), n))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, n)| format!(" (did you mean {}?)", quote_if_needed(n)))
        .unwrap_or_default()
}

/// True for the json and jsonb types (and arrays of neither).
fn is_json(col: &Column) -> bool {
    matches!(col.data_type.as_str(), "json" | "jsonb")
}

fn transform_problem(transform: &Transform, col: &Column) -> Option<String> {
    let is_string = col.category == "S";
    match transform {
        Transform::Json { .. } if !is_json(col) => Some(format!(
            "transform json rewrites values at paths inside json or jsonb documents, but the column's type is {}",
            col.data_type
        )),
        Transform::Null | Transform::Constant(None) if col.not_null => Some(format!(
            "column is NOT NULL, so transform {} would make the restore fail",
            transform.name()
        )),
        Transform::Null | Transform::Constant(_) | Transform::Json { .. } => None,
        _ if !is_string => Some(format!(
            "transform {} writes text, but the column's type is {}; use constant or null for it",
            transform.name(),
            col.data_type
        )),
        Transform::Pseudonym { prefix } => col
            .max_chars
            .filter(|max| prefix.chars().count() + 16 > *max)
            .map(|max| {
                format!(
                    "pseudonyms are {} characters, the column holds {max}",
                    prefix.chars().count() + 16
                )
            }),
        Transform::Email {
            domain: Some(domain),
        } => col
            .max_chars
            .filter(|max| 18 + domain.chars().count() > *max)
            .map(|max| {
                format!(
                    "masked addresses are {} characters, the column holds {max}",
                    18 + domain.chars().count()
                )
            }),
        _ => None,
    }
}

/// Checks every rule against the schema; returns the problems (empty when all is well).
pub async fn check_rules(client: &Client, schema: &Schema, rules: &Rules) -> Vec<Finding> {
    let mut findings = Vec::new();
    let problem = |rule: String, message: String| Finding::RuleProblem { rule, message };
    for rule in &rules.rules {
        let Some(columns) = schema.tables.get(&rule.table) else {
            let hint = similar(
                &rule.table.table,
                schema.tables.keys().map(|t| t.table.as_str()),
            );
            findings.push(problem(
                rule.at(),
                format!("no table {} in the database{hint}", rule.table),
            ));
            continue;
        };
        // pg_dump writes quoted names as they are, so a newline in the schema, table or any
        // column name splits the COPY header over two lines: the block would not be seen,
        // and its rows would go out unmasked. See: tests/regression.rs.
        let names = [rule.table.schema.as_str(), rule.table.table.as_str()];
        if let Some(name) = names
            .into_iter()
            .chain(columns.iter().map(|c| c.name.as_str()))
            .find(|name| name.contains('\n'))
        {
            findings.push(problem(
                rule.at(),
                format!(
                    "table {} has a name with a newline ({name:?}), which splits its COPY header \
                     so its rows cannot be masked; rename it, or leave its data out with exclude_data",
                    rule.table
                ),
            ));
            continue;
        }
        let Some(col) = columns.iter().find(|c| c.name == rule.column) else {
            let hint = similar(&rule.column, columns.iter().map(|c| c.name.as_str()));
            findings.push(problem(
                rule.at(),
                format!(
                    "table {} has no column {}{hint}",
                    rule.table,
                    quote_if_needed(&rule.column)
                ),
            ));
            continue;
        };
        if col.generated {
            findings.push(problem(
                rule.at(),
                "generated column: its values are computed on restore, not dumped".into(),
            ));
            continue;
        }
        if let Some(message) = transform_problem(&rule.transform, col) {
            findings.push(problem(rule.at(), message));
            continue;
        }
        if let Some(message) = collision_problem(schema, rule) {
            findings.push(problem(rule.at(), message));
            continue;
        }
        if let Transform::Constant(Some(value)) = &rule.transform {
            if let Some(max) = col.max_chars.filter(|max| value.chars().count() > *max) {
                findings.push(problem(
                    rule.at(),
                    format!(
                        "constant has {} characters, the column holds {max}",
                        value.chars().count()
                    ),
                ));
            } else if let Err(message) = constant_fits(client, value, &col.data_type).await {
                findings.push(problem(
                    rule.at(),
                    format!(
                        "constant {value:?} is not a valid {}: {message}",
                        col.data_type
                    ),
                ));
            }
        }
    }
    for keep in &rules.keep {
        let Some(columns) = schema.tables.get(&keep.table) else {
            let hint = similar(
                &keep.table.table,
                schema.tables.keys().map(|t| t.table.as_str()),
            );
            findings.push(problem(
                keep.at(),
                format!("no table {} in the database{hint}", keep.table),
            ));
            continue;
        };
        for name in &keep.columns {
            if !columns.iter().any(|c| &c.name == name) {
                let hint = similar(name, columns.iter().map(|c| c.name.as_str()));
                findings.push(problem(
                    keep.at(),
                    format!(
                        "table {} has no column {}{hint}",
                        keep.table,
                        quote_if_needed(name)
                    ),
                ));
            }
        }
    }
    for (i, table) in rules.exclude_data.iter().enumerate() {
        if !schema.tables.contains_key(table) {
            let hint = similar(&table.table, schema.tables.keys().map(|t| t.table.as_str()));
            findings.push(problem(
                format!("exclude_data[{i}] ({table})"),
                format!("no table {table} in the database{hint}"),
            ));
        }
    }
    findings.extend(foreign_key_problems(schema, rules));
    findings
}

/// A transform that can give two rows the same value, on a column of a unique index (of
/// the rule's table or of any table the rule reaches), would make the restore fail after
/// the whole stream was loaded: refused. Part of a multi-column index counts too: whether
/// two rows then collide depends on the data, which the check cannot see.
fn collision_problem(schema: &Schema, rule: &Rule) -> Option<String> {
    schema
        .with_descendants(&rule.table)
        .iter()
        .chain(std::iter::once(&rule.table))
        .find_map(|t| {
            let index = schema.unique.get(&(t.clone(), rule.column.clone()))?;
            rule.transform
                .can_collide(index.nulls_not_distinct)
                .then(|| {
                    format!(
                        "column is part of unique index {} on {t}: transform {} can give two rows the same value \
                         and the restore would fail after loading the whole stream; use pseudonym or email \
                         (one value in, one value out)",
                        quote_if_needed(&index.name),
                        rule.transform.name()
                    )
                })
        })
}

/// A foreign key survives masking only when both of its columns are masked the same way
/// (or neither is), and the referenced table's data is dumped.
fn foreign_key_problems(schema: &Schema, rules: &Rules) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut seen = BTreeSet::new();
    for fk in &schema.foreign_keys {
        let from_rule = schema.rule_for(rules, &fk.from.0, &fk.from.1);
        let to_rule = schema.rule_for(rules, &fk.to.0, &fk.to.1);
        let from_sig = from_rule.map(|r| signature(&r.transform));
        let to_sig = to_rule.map(|r| signature(&r.transform));
        let at = from_rule
            .or(to_rule)
            .map_or_else(|| format!("foreign key {}", fk.name), Rule::at);
        if from_sig != to_sig && seen.insert((fk.name.clone(), fk.from.1.clone())) {
            findings.push(Finding::RuleProblem {
                rule: at,
                message: format!(
                    "foreign key {}: {}.{} references {}.{}, but they are masked differently ({} vs {}); \
                     give both the same pseudonym rule or the restore will fail",
                    fk.name,
                    fk.from.0,
                    quote_if_needed(&fk.from.1),
                    fk.to.0,
                    quote_if_needed(&fk.to.1),
                    from_sig.as_deref().unwrap_or("unmasked"),
                    to_sig.as_deref().unwrap_or("unmasked")
                ),
            });
        }
        if schema.excluded(rules, &fk.to.0)
            && !schema.excluded(rules, &fk.from.0)
            && seen.insert((fk.name.clone(), String::new()))
        {
            findings.push(Finding::RuleProblem {
                rule: format!("exclude_data ({})", fk.to.0),
                message: format!(
                    "foreign key {}: {} references {}, whose data is excluded; exclude {} too",
                    fk.name, fk.from.0, fk.to.0, fk.from.0
                ),
            });
        }
    }
    findings
}

fn signature(transform: &Transform) -> String {
    match transform {
        Transform::Pseudonym { prefix } => format!("pseudonym(prefix {prefix:?})"),
        Transform::Email { domain } => format!("email(domain {domain:?})"),
        Transform::Regex {
            pattern,
            replacement,
        } => format!("regex({:?} -> {replacement:?})", pattern.as_str()),
        other => format!("{other:?}"),
    }
}

/// Every undecided column of every table whose rows are dumped. A column that an
/// ancestor also has undecided is reported once, on the ancestor (deciding it there
/// decides it for every partition and child).
pub fn undecided(schema: &Schema, rules: &Rules) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (table, col) in schema.undecided_columns(rules) {
        let on_ancestor = schema
            .ancestors
            .get(table)
            .into_iter()
            .flatten()
            .any(|a| schema.column(a, &col.name).is_some());
        if on_ancestor {
            continue;
        }
        let suggested_rule = suggest(schema, table, col);
        findings.push(Finding::Undecided {
            table: table.to_string(),
            column: col.name.clone(),
            data_type: col.data_type.clone(),
            suggested: if suggested_rule.is_some() {
                "rule"
            } else {
                "keep"
            },
            suggested_rule,
        });
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_suggest_close_names() {
        assert_eq!(
            similar("peple", ["groups", "people"].into_iter()),
            " (did you mean people?)"
        );
        assert_eq!(
            similar("Email", ["email"].into_iter()),
            " (did you mean email?)"
        );
        assert_eq!(similar("sessions", ["people"].into_iter()), "");
    }
}
