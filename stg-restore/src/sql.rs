//! SQL text built by stg-restore: quoting, the incoming database's `CREATE DATABASE`, and
//! the rules for the names stg-restore gives databases.
//!
//! Utility statements (`CREATE/ALTER/DROP DATABASE`, `COMMENT`) take no bind parameters,
//! so names and literals are quoted here; everything else uses parameters. Literals assume
//! `standard_conforming_strings = on`, which [`crate::db`] sets on its session.
//! See: <https://www.postgresql.org/docs/current/sql-syntax-lexical.html>.

use stg_core::provenance::{self, Role, INCOMING_SUFFIX, PREVIOUS_INFIX};
use stg_core::stream::Manifest;

/// PostgreSQL's longest identifier in bytes (NAMEDATALEN - 1).
pub const MAX_NAME: usize = 63;
/// Length of a compact UTC stamp (`20261128T015426Z`).
const STAMP_LEN: usize = 16;
/// Longest database name stg-restore can restore: `<db>__stg_prev_<stamp>` must fit.
pub const MAX_TARGET: usize = MAX_NAME - PREVIOUS_INFIX.len() - STAMP_LEN;

/// A double-quoted identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A single-quoted string literal (standard-conforming strings).
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The incoming database's name.
pub fn incoming_name(db: &str) -> String {
    format!("{db}{INCOMING_SUFFIX}")
}

/// The name of a kept previous copy retired at `stamp`.
pub fn previous_name(db: &str, stamp: &str) -> String {
    format!("{db}{PREVIOUS_INFIX}{stamp}")
}

/// Checks that `db` can be a restore target; the message names the problem.
pub fn check_target(db: &str, maintenance_db: &str) -> Result<(), String> {
    if db.is_empty() {
        return Err("the target database name is empty".into());
    }
    if db.contains('\0') {
        return Err(format!("database name {db:?} contains a NUL byte"));
    }
    if db.len() > MAX_TARGET {
        return Err(format!(
            "database name {db:?} is {} bytes; stg-restore handles names of at most {MAX_TARGET} \
             bytes, so that its kept copy `{db}{PREVIOUS_INFIX}<stamp>` fits PostgreSQL's \
             {MAX_NAME}-byte limit",
            db.len()
        ));
    }
    if provenance::role_of(db) != Role::Live {
        return Err(format!(
            "database name {db:?} is one of stg-restore's own working names \
             (`*{INCOMING_SUFFIX}` or `*{PREVIOUS_INFIX}*`); name the live database instead"
        ));
    }
    if ["postgres", "template0", "template1", maintenance_db].contains(&db) {
        return Err(format!(
            "refusing to restore over {db:?}: it is a template or the maintenance database"
        ));
    }
    Ok(())
}

/// Server facts that shape `CREATE DATABASE`.
#[derive(Clone, Debug)]
pub struct DbSettings {
    /// Owner role.
    pub owner: String,
    /// Encoding name (`UTF8`).
    pub encoding: String,
    /// `LC_COLLATE`.
    pub collate: String,
    /// `LC_CTYPE`.
    pub ctype: String,
    /// `libc`, `icu` or `builtin`.
    pub provider: String,
    /// ICU (or builtin) locale.
    pub icu_locale: Option<String>,
}

impl DbSettings {
    /// The settings a manifest asks for.
    pub fn from_manifest(m: &Manifest) -> DbSettings {
        DbSettings {
            owner: m.owner.clone(),
            encoding: m.encoding.clone(),
            collate: m.locale.clone(),
            ctype: m.lc_ctype.clone(),
            provider: m.locale_provider.clone(),
            icu_locale: m.icu_locale.clone(),
        }
    }
}

/// `CREATE DATABASE` for the incoming database, for a server of `server_version_num`.
pub fn create_database(
    name: &str,
    s: &DbSettings,
    server_version_num: i32,
) -> Result<String, String> {
    let mut sql = format!(
        "CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}",
        ident(name),
        ident(&s.owner),
        literal(&s.encoding),
        literal(&s.collate),
        literal(&s.ctype)
    );
    match s.provider.as_str() {
        "libc" | "" | "c" => {}
        "icu" | "i" => {
            if server_version_num < 150_000 {
                return Err(
                    "the dump's database uses the ICU locale provider, which needs PostgreSQL 15 \
                     or later on the staging server"
                        .into(),
                );
            }
            let locale = s.icu_locale.as_deref().ok_or(
                "the manifest says locale provider icu but names no ICU locale".to_owned(),
            )?;
            sql = format!("{sql} LOCALE_PROVIDER icu ICU_LOCALE {}", literal(locale));
        }
        "builtin" | "b" => {
            if server_version_num < 170_000 {
                return Err(
                    "the dump's database uses the builtin locale provider, which needs \
                     PostgreSQL 17 or later on the staging server"
                        .into(),
                );
            }
            let locale = s.icu_locale.as_deref().unwrap_or("C");
            sql = format!(
                "{sql} LOCALE_PROVIDER builtin BUILTIN_LOCALE {}",
                literal(locale)
            );
        }
        other => return Err(format!("unknown locale provider {other:?} in the manifest")),
    }
    Ok(sql)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
    }

    #[test]
    fn target_names_are_checked() {
        assert!(check_target("fas2", "postgres").is_ok());
        assert!(check_target(&"x".repeat(MAX_TARGET), "postgres").is_ok());
        let err = check_target(&"x".repeat(MAX_TARGET + 1), "postgres").unwrap_err();
        assert!(err.contains("at most 36 bytes"), "{err}");
        assert!(check_target("fas2__stg_incoming", "postgres").is_err());
        assert!(check_target("fas2__stg_prev_20261128T010000Z", "postgres").is_err());
        assert!(check_target("template1", "postgres").is_err());
        assert!(check_target("", "postgres").is_err());
        assert_eq!(
            previous_name(&"x".repeat(MAX_TARGET), "20261128T010000Z").len(),
            MAX_NAME
        );
    }

    #[test]
    fn create_database_follows_the_provider() {
        let mut s = DbSettings {
            owner: "fas2".into(),
            encoding: "UTF8".into(),
            collate: "C.UTF-8".into(),
            ctype: "C.UTF-8".into(),
            provider: "libc".into(),
            icu_locale: None,
        };
        let sql = create_database("fas2__stg_incoming", &s, 150_000).unwrap();
        assert_eq!(
            sql,
            "CREATE DATABASE \"fas2__stg_incoming\" OWNER \"fas2\" TEMPLATE template0 \
             ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'"
        );
        s.provider = "icu".into();
        s.icu_locale = Some("und".into());
        assert!(create_database("x", &s, 150_000)
            .unwrap()
            .ends_with("LOCALE_PROVIDER icu ICU_LOCALE 'und'"));
        assert!(create_database("x", &s, 140_000)
            .unwrap_err()
            .contains("15"));
    }
}
