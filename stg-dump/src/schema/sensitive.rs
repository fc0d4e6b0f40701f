//! The sensitive-name heuristic: column names whose parts suggest personal or secret data,
//! the findings of `--check` for such columns copied undecided, and the rule `--mask-init`
//! and a refusal suggest for them.

use super::checks::Finding;
use super::{Column, Schema};
use crate::rules::{Rules, TableName};

/// Name parts that suggest personal or secret data.
const SENSITIVE: &[&str] = &[
    "email",
    "mail",
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "key",
    "phone",
    "telephone",
    "mobile",
    "address",
    "street",
    "ssn",
    "salt",
    "hash",
    "otp",
    "totp",
    "ip",
    "birth",
    "birthday",
    "dob",
    "iban",
    "card",
    "credential",
    "apikey",
    "session",
    "cookie",
    "gpg",
    "ssh",
    "postal",
    "zip",
    "surname",
    "firstname",
    "lastname",
    "fullname",
    "realname",
    "forename",
    "givenname",
    "answer",
    "passport",
    "birthdate",
];

/// Compound names that mean a person's name, matched anywhere in the column name.
const NAME_WORDS: &[&str] = &[
    "first_name",
    "last_name",
    "full_name",
    "real_name",
    "human_name",
    "given_name",
    "family_name",
    "middle_name",
    "maiden_name",
    "person_name",
    "legal_name",
    "security_question",
    "secret_question",
];

fn sensitive_part(column: &str) -> Option<String> {
    let lower = column.to_lowercase();
    lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find(|part| SENSITIVE.contains(part))
        .map(str::to_owned)
        .or_else(|| {
            ["password", "passwd", "email", "secret", "token", "phone"]
                .iter()
                .chain(NAME_WORDS)
                .find(|w| lower.contains(*w))
                .map(|w| (*w).to_owned())
        })
}

/// The name part that makes a column look sensitive, if any. A non-text column of a
/// foreign key (`phone_id integer REFERENCES phones`) holds a key, not what its name
/// suggests, and does not count.
fn looks_sensitive(schema: &Schema, table: &TableName, col: &Column) -> Option<String> {
    let matched = sensitive_part(&col.name)?;
    let in_key = |t: &TableName| {
        schema.foreign_keys.iter().any(|fk| {
            (&fk.from.0 == t && fk.from.1 == col.name) || (&fk.to.0 == t && fk.to.1 == col.name)
        })
    };
    if col.category != "S" && schema.lineage(table).any(in_key) {
        return None;
    }
    Some(matched)
}

/// Name parts after which a constant (or NULL) is the natural mask: secrets, not identities.
const SECRET_PARTS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "key",
    "salt",
    "hash",
    "otp",
    "totp",
    "credential",
    "apikey",
    "session",
    "cookie",
    "gpg",
    "ssh",
    "answer",
    "security_question",
    "secret_question",
];

/// A constant every value of a type category accepts, for NOT NULL non-text columns.
fn constant_for(col: &Column) -> Option<&'static str> {
    Some(match (col.category.as_str(), col.data_type.as_str()) {
        (_, "json" | "jsonb") => "{}",
        (_, "uuid") => "00000000-0000-0000-0000-000000000000",
        (_, "date") => "2000-01-01",
        (_, t) if t.starts_with("timestamp") => "2000-01-01 00:00:00+00",
        (_, "inet" | "cidr") => "192.0.2.1",
        (_, "bytea") => "",
        ("N", _) => "0",
        ("B", _) => "false",
        _ => return None,
    })
}

/// A rule for a column whose name looks sensitive, valid for its type and constraints, as
/// a rules-file object; `None` when the name looks harmless (keep it) or no transform fits.
/// Text columns get `email` or `pseudonym` (or a constant for secrets), others `null` when
/// nullable, else a constant of their type; a unique column only gets one-to-one transforms.
#[must_use]
pub fn suggest(schema: &Schema, table: &TableName, col: &Column) -> Option<serde_json::Value> {
    let matched = looks_sensitive(schema, table, col)?;
    if col.generated {
        return None;
    }
    let unique = schema
        .with_descendants(table)
        .iter()
        .chain(std::iter::once(table))
        .find_map(|t| schema.unique.get(&(t.clone(), col.name.clone())))
        .map(|u| u.nulls_not_distinct);
    let fits = |chars: usize| col.max_chars.is_none_or(|max| chars <= max);
    let base = serde_json::json!({"table": table.to_string(), "column": col.name});
    let mut rule = base.as_object().expect("object").clone();
    let mut set = |fields: serde_json::Value| {
        for (k, v) in fields.as_object().expect("object") {
            rule.insert(k.clone(), v.clone());
        }
    };
    let nullable_ok = !col.not_null && unique != Some(true);
    if col.category == "S" {
        if SECRET_PARTS.contains(&matched.as_str()) && unique.is_none() && fits(7) {
            if col.not_null {
                set(serde_json::json!({"transform": "constant", "value": "INVALID"}));
            } else {
                set(serde_json::json!({"transform": "null"}));
            }
        } else if matched.contains("mail") && fits(33) {
            set(serde_json::json!({"transform": "email", "domain": "example.invalid"}));
        } else if fits(16) {
            set(serde_json::json!({"transform": "pseudonym"}));
        } else if nullable_ok {
            set(serde_json::json!({"transform": "null"}));
        } else {
            return None;
        }
    } else if nullable_ok {
        set(serde_json::json!({"transform": "null"}));
    } else if unique.is_none() {
        set(serde_json::json!({"transform": "constant", "value": constant_for(col)?}));
    } else {
        return None;
    }
    Some(serde_json::Value::Object(rule))
}

/// Columns that look sensitive and are copied because nothing decides them
/// (`"undecided": "keep"`); tables whose data is excluded and columns a keep names are
/// decisions, not findings.
pub fn unmasked_sensitive(schema: &Schema, rules: &Rules) -> Vec<Finding> {
    schema
        .undecided_columns(rules)
        .filter_map(|(table, col)| {
            let matched = looks_sensitive(schema, table, col)?;
            Some(Finding::UnmaskedSensitive {
                table: table.to_string(),
                column: col.name.clone(),
                data_type: col.data_type.clone(),
                matched,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_names_are_found_by_part() {
        assert_eq!(sensitive_part("email").as_deref(), Some("email"));
        assert_eq!(sensitive_part("recovery_email").as_deref(), Some("email"));
        assert_eq!(sensitive_part("ssh_key").as_deref(), Some("ssh"));
        assert_eq!(sensitive_part("userPassword").as_deref(), Some("password"));
        assert_eq!(sensitive_part("monkey"), None);
        assert_eq!(sensitive_part("display_name"), None);
        assert_eq!(sensitive_part("human_name").as_deref(), Some("human_name"));
        assert_eq!(sensitive_part("LastName").as_deref(), Some("lastname"));
        assert_eq!(sensitive_part("security_answer").as_deref(), Some("answer"));
        assert_eq!(sensitive_part("surname").as_deref(), Some("surname"));
    }
}
