//! Production connections hidden in a schema: foreign servers and user mappings (with the
//! production password in their options), subscriptions (with a production conninfo), and
//! connection strings written into functions and views (`dblink('host=db01 ...')`).
//!
//! Restored as they are, they let staging read production live, which the SOP forbids. So
//! stg-dump finds them in the catalog before it dumps and, by default, refuses
//! ([`Mode::Refuse`]): nothing is written, and the message lists them. `--foreign-connections
//! strip` keeps the objects but removes the options of `CREATE SERVER` and `CREATE USER
//! MAPPING` (host, port, dbname, user, password...) as the stream is written, and leaves
//! subscriptions out (`pg_dump --no-subscriptions`); a server without options points at
//! nothing, and a foreign table on it fails when queried instead of reading production.
//! Connection strings inside code cannot be removed safely, so `strip` still refuses them;
//! `keep` dumps everything as it is, for a staging that is meant to reach those servers.
//!
//! Why refuse by default rather than strip: a foreign server may be part of what staging is
//! supposed to test, and silently changing it would surprise; a refusal names every object,
//! and the operator decides once, in the job's flags.
//!
//! Option values are credentials: they are never printed, only their names.

use std::fmt;

use anyhow::Context;
use clap::ValueEnum;
use serde::Serialize;
use stg_core::sql_lexer::{self, Kind as TokenKind};
use tokio_postgres::Client;

/// What to do with production connections found in the schema.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Dump nothing and list them (the default).
    #[default]
    Refuse,
    /// Remove server and user-mapping options, leave subscriptions out; still refuse
    /// connection strings inside functions and views.
    Strip,
    /// Dump them as they are.
    Keep,
}

impl Mode {
    /// The flag's spelling, for the manifest and messages.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Refuse => "refuse",
            Mode::Strip => "strip",
            Mode::Keep => "keep",
        }
    }
}

/// What kind of connection an object holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A foreign server with connection options.
    ForeignServer,
    /// A user mapping with options (user, password).
    UserMapping,
    /// A logical-replication subscription.
    Subscription,
    /// A function or view whose text holds a connection string.
    ConnectionString,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::ForeignServer => "foreign server",
            Kind::UserMapping => "user mapping",
            Kind::Subscription => "subscription",
            Kind::ConnectionString => "connection string in",
        }
    }

    /// True when `strip` removes it.
    pub fn strippable(self) -> bool {
        self != Kind::ConnectionString
    }
}

/// One object that would carry a production connection into staging.
#[derive(Clone, Debug, Serialize)]
pub struct Connection {
    /// What it is.
    pub kind: Kind,
    /// Its name (`server`, `user@server`, `schema.function`).
    pub name: String,
    /// Option names or what matched; never values.
    pub detail: String,
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({})", self.kind.label(), self.name, self.detail)
    }
}

/// A libpq-style connection string inside code: a key that names a server or a secret,
/// followed by `=`. Case-insensitive, on the server's regex engine.
const CONNINFO_RE: &str = r"\m(host|hostaddr|password|passfile|service)\s*=\s*[^\s=]";

/// Reads every object that holds a connection, in the dumped database.
pub async fn find(client: &Client) -> anyhow::Result<Vec<Connection>> {
    let mut found = Vec::new();
    let rows = client
        .query(
            "SELECT s.srvname, w.fdwname,
                    coalesce(array_to_string(ARRAY(SELECT split_part(o, '=', 1)
                        FROM unnest(s.srvoptions) o), ', '), '')
             FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
             WHERE s.srvoptions IS NOT NULL
             ORDER BY 1",
            &[],
        )
        .await
        .context("while reading foreign servers")?;
    for r in &rows {
        found.push(Connection {
            kind: Kind::ForeignServer,
            name: r.get(0),
            detail: format!(
                "wrapper {}, options {}",
                r.get::<_, String>(1),
                r.get::<_, String>(2)
            ),
        });
    }
    // pg_user_mappings shows options to the mapping's user, the server's owner and
    // superusers: what pg_dump itself would see and write.
    let rows = client
        .query(
            "SELECT srvname, usename,
                    coalesce(array_to_string(ARRAY(SELECT split_part(o, '=', 1)
                        FROM unnest(umoptions) o), ', '), '')
             FROM pg_user_mappings WHERE umoptions IS NOT NULL ORDER BY 1, 2",
            &[],
        )
        .await
        .context("while reading user mappings")?;
    for r in &rows {
        found.push(Connection {
            kind: Kind::UserMapping,
            name: format!("{}@{}", r.get::<_, String>(1), r.get::<_, String>(0)),
            detail: format!("options {}", r.get::<_, String>(2)),
        });
    }
    let rows = client
        .query(
            "SELECT subname FROM pg_subscription
             WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
             ORDER BY 1",
            &[],
        )
        .await
        .context("while reading subscriptions")?;
    for r in &rows {
        found.push(Connection {
            kind: Kind::Subscription,
            name: r.get(0),
            detail: "its conninfo names the publisher".into(),
        });
    }
    let rows = client
        .query(
            "SELECT n.nspname || '.' || p.proname, 'function'
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND NOT EXISTS (SELECT 1 FROM pg_depend d
                               WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                                 AND d.deptype = 'e')
               AND p.prosrc ~* $1
             UNION ALL
             SELECT n.nspname || '.' || c.relname, 'view'
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('v', 'm')
               AND n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND pg_get_viewdef(c.oid) ~* $1
             ORDER BY 1",
            &[&CONNINFO_RE],
        )
        .await
        .context("while looking for connection strings in functions and views")?;
    for r in &rows {
        found.push(Connection {
            kind: Kind::ConnectionString,
            name: r.get(0),
            detail: format!(
                "a {} whose text holds host=, password= or the like",
                r.get::<_, String>(1)
            ),
        });
    }
    Ok(found)
}

/// True for a top-level line that starts a statement whose options `strip` removes.
pub fn starts_strippable(line: &[u8]) -> bool {
    line.starts_with(b"CREATE SERVER ") || line.starts_with(b"CREATE USER MAPPING ")
}

/// A whole `CREATE SERVER` or `CREATE USER MAPPING` statement (as pg_dump writes it, over
/// several lines) without its `OPTIONS (...)` clause. The clause is found among the
/// statement's tokens ([`stg_core::sql_lexer`]), so an option value or a quoted name that
/// looks like one is not taken for it.
pub fn strip_options(statement: &[u8]) -> Vec<u8> {
    let Some(tokens) = sql_lexer::tokens(statement) else {
        return statement.to_vec();
    };
    let at = |t: &sql_lexer::Token| usize::try_from(t.start).unwrap_or(usize::MAX);
    let Some(options) = tokens
        .iter()
        .position(|t| t.kind == TokenKind::Word("options".into()))
    else {
        return statement.to_vec();
    };
    if tokens.get(options + 1).map(|t| &t.kind) != Some(&TokenKind::Char(b'(')) {
        return statement.to_vec();
    }
    let mut depth = 0i32;
    let Some(close) = tokens[options + 1..].iter().find(|t| {
        match t.kind {
            TokenKind::Char(b'(') => depth += 1,
            TokenKind::Char(b')') => depth -= 1,
            _ => {}
        }
        depth == 0
    }) else {
        return statement.to_vec();
    };
    let mut out = statement[..at(&tokens[options])].trim_ascii_end().to_vec();
    out.extend_from_slice(&statement[at(close) + 1..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_cut_at_the_top_level_only() {
        let server = b"CREATE SERVER prod FOREIGN DATA WRAPPER postgres_fdw OPTIONS (\n    dbname 'fas2',\n    host 'db01.prod'\n);\n";
        assert_eq!(
            String::from_utf8(strip_options(server)).unwrap(),
            "CREATE SERVER prod FOREIGN DATA WRAPPER postgres_fdw;\n"
        );
        let mapping = b"CREATE USER MAPPING FOR fas2 SERVER prod OPTIONS (\n    password 'a ) OPTIONS (x',\n    \"user\" 'fas2'\n);\n";
        assert_eq!(
            String::from_utf8(strip_options(mapping)).unwrap(),
            "CREATE USER MAPPING FOR fas2 SERVER prod;\n"
        );
        let none = b"CREATE SERVER \"OPTIONS (\" FOREIGN DATA WRAPPER x;\n";
        assert_eq!(strip_options(none), none.to_vec());
    }
}
