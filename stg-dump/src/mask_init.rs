//! `stg-dump --mask-init`: a complete rules file for a live database, so an operator edits
//! a file that already decides every column instead of writing one from memory.
//!
//! Every column of every table gets a decision: a sensitive-looking name
//! ([`crate::schema::suggest`]) a proposed rule valid for its type and constraints, every
//! other column a keep. A column is decided once, on the topmost table that has it, so
//! partitions and inheritance children follow their parent and only a child's own extra
//! columns are listed on the child. The two columns of a foreign key get the same rule
//! (else the restore fails). Not for checking a file against the schema
//! ([`crate::schema::check_rules`]).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::rules::TableName;
use crate::schema::{suggest, Schema};

/// The topmost table of `table`'s lineage that has `column` (the one where its decision
/// belongs).
fn owner(schema: &Schema, table: &TableName, column: &str) -> TableName {
    schema
        .ancestors
        .get(table)
        .into_iter()
        .flatten()
        .rfind(|a| schema.column(a, column).is_some())
        .unwrap_or(table)
        .clone()
}

/// How strongly a transform masks, to pick one for both ends of a foreign key.
fn strength(rule: &Value) -> u8 {
    match rule.get("transform").and_then(Value::as_str) {
        Some("email") => 3,
        Some("pseudonym") => 2,
        _ => 1,
    }
}

/// The rules file, as pretty JSON with one rule or keep entry per line. A database with
/// large objects (`large_objects` of them) gets `"large_objects": "exclude"`, and the comment
/// says why: nothing in the catalog says what an object holds.
#[must_use]
pub fn rules_file(schema: &Schema, database: &str, large_objects: u64) -> String {
    // (table, column) -> proposed rule, on the owning table only.
    let mut rules: BTreeMap<(TableName, String), Value> = BTreeMap::new();
    let mut keep: BTreeMap<TableName, Vec<String>> = BTreeMap::new();
    for (table, columns) in &schema.tables {
        for col in columns {
            if col.generated || owner(schema, table, &col.name) != *table {
                continue;
            }
            match suggest(schema, table, col) {
                Some(rule) => {
                    rules.insert((table.clone(), col.name.clone()), rule);
                }
                None => keep
                    .entry(table.clone())
                    .or_default()
                    .push(col.name.clone()),
            }
        }
    }
    // A non-text column of a foreign key (`phone_id integer REFERENCES phones`) holds a
    // key, not the data its name suggests: nulling it would break the key. Kept.
    for fk in &schema.foreign_keys {
        for (table, column) in [&fk.from, &fk.to] {
            let owning = owner(schema, table, column);
            let text = schema
                .column(&owning, column)
                .is_some_and(|c| c.category == "S");
            if !text && rules.remove(&(owning.clone(), column.clone())).is_some() {
                keep.entry(owning).or_default().push(column.clone());
            }
        }
    }
    // Both ends of a (text) foreign key masked alike, to a fixed point.
    for _ in 0..16 {
        let mut changed = false;
        for fk in &schema.foreign_keys {
            let a = (owner(schema, &fk.from.0, &fk.from.1), fk.from.1.clone());
            let b = (owner(schema, &fk.to.0, &fk.to.1), fk.to.1.clone());
            let (ra, rb) = (rules.get(&a).cloned(), rules.get(&b).cloned());
            let chosen = match (&ra, &rb) {
                (None, None) => continue,
                (Some(x), Some(y))
                    if x.get("transform") == y.get("transform")
                        && x.get("value") == y.get("value")
                        && x.get("domain") == y.get("domain") =>
                {
                    continue
                }
                (Some(x), Some(y)) => {
                    if strength(x) >= strength(y) {
                        x.clone()
                    } else {
                        y.clone()
                    }
                }
                (Some(x), None) | (None, Some(x)) => x.clone(),
            };
            // A constant or null would break the referenced side's uniqueness: text keys
            // get a pseudonym instead.
            let text = schema.column(&a.0, &a.1).is_some_and(|c| c.category == "S");
            if !text {
                continue;
            }
            let transform = if strength(&chosen) == 1 {
                json!({"transform": "pseudonym"})
            } else {
                chosen
            };
            for (table, column) in [&a, &b] {
                let mut rule = json!({"table": table.to_string(), "column": column});
                for (k, v) in transform.as_object().into_iter().flatten() {
                    if k != "table" && k != "column" {
                        rule[k] = v.clone();
                    }
                }
                if rules.get(&(table.clone(), column.clone())) != Some(&rule) {
                    if let Some(list) = keep.get_mut(table) {
                        list.retain(|c| c != column);
                    }
                    rules.insert((table.clone(), column.clone()), rule);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    keep.retain(|_, cols| !cols.is_empty());
    let mut comment = format!(
        "Written by stg-dump --mask-init for database {database}. Review it: columns whose names \
         look sensitive got a proposed rule, every other column is kept as it is. A column added \
         later stops the dump until this file decides it."
    );
    if large_objects > 0 {
        comment = format!(
            "{comment} The database has {large_objects} large objects, whose contents nothing \
             in the schema describes: \"large_objects\": \"exclude\" dumps them without their \
             bytes (each is created empty, so no oid dangles). Say \"keep\" to dump them, \
             except those a masked oid column points at."
        );
    }
    let mut out = String::from("{\n");
    out.push_str("  \"comment\": ");
    out.push_str(&json!(comment).to_string());
    out.push_str(",\n");
    out.push_str("  \"rules\": [");
    let lines: Vec<String> = rules
        .values()
        .map(|r| format!("\n    {}", compact(r)))
        .collect();
    out.push_str(&lines.join(","));
    out.push_str(if lines.is_empty() { "],\n" } else { "\n  ],\n" });
    out.push_str("  \"keep\": [");
    let lines: Vec<String> = keep
        .iter()
        .map(|(t, cols)| {
            format!(
                "\n    {}",
                compact(&json!({"table": t.to_string(), "columns": cols}))
            )
        })
        .collect();
    out.push_str(&lines.join(","));
    out.push_str(if lines.is_empty() { "],\n" } else { "\n  ],\n" });
    if large_objects > 0 {
        out.push_str("  \"large_objects\": \"exclude\",\n");
    }
    out.push_str("  \"exclude_data\": []\n}\n");
    out
}

/// One-line JSON with a space after `:` and `,` between members, for people to read.
fn compact(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", json!(k), compact(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        Value::Array(list) => {
            let parts: Vec<String> = list.iter().map(compact).collect();
            format!("[{}]", parts.join(", "))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_is_readable_json() {
        let v = json!({"table": "public.t", "columns": ["a", "b\"c"]});
        let text = compact(&v);
        assert_eq!(text, r#"{"table": "public.t", "columns": ["a", "b\"c"]}"#);
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
    }
}
