//! Finding `pg_dump`, checking it can dump the server, and starting it.
//!
//! `pg_dump` refuses a server of a newer major version ("server version mismatch"), the
//! failure users hit with every wrapper. We check before dumping and name a `pg_dump` on
//! this machine that would work (Debian's `/usr/lib/postgresql/N/bin`, PGDG's
//! `/usr/pgsql-N/bin`). Not for reading its output ([`crate::pipeline`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::Context;
use stg_core::conn::Conn;
use stg_core::Error;

/// A `pg_dump` binary and its version.
#[derive(Clone, Debug)]
pub struct PgDump {
    /// Path (or bare name found in PATH).
    pub path: PathBuf,
    /// `pg_dump --version` output, trimmed.
    pub version: String,
    /// Major version as a number that orders like `server_version_num / 100`: 1500 for
    /// 15.x, 906 for 9.6.
    pub major: u32,
}

/// Major version code from `pg_dump (PostgreSQL) 15.18 (Debian ...)` (1500) or `... 9.6.24`
/// (906): the same scale as `server_version_num / 100`.
fn parse_major(version: &str) -> Option<u32> {
    let number = version.split(") ").nth(1)?.split_whitespace().next()?;
    let mut parts = number.split('.');
    let digits = |s: &str| {
        s.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
    };
    let first: u32 = digits(parts.next()?).parse().ok()?;
    if first >= 10 {
        Some(first * 100)
    } else {
        let second: u32 = digits(parts.next()?).parse().ok()?;
        Some(first * 100 + second)
    }
}

fn probe(path: &Path) -> Option<PgDump> {
    let out = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let major = parse_major(&version)?;
    Some(PgDump {
        path: path.to_path_buf(),
        version,
        major,
    })
}

/// Finds `pg_dump`: the one given, else the first in `PATH`.
pub fn locate(explicit: Option<&Path>) -> anyhow::Result<PgDump> {
    let path = explicit.map_or_else(|| PathBuf::from("pg_dump"), Path::to_path_buf);
    match Command::new(&path).arg("--version").stdin(Stdio::null()).output() {
        Err(e) => Err(Error::usage(format!(
            "cannot run {} ({e}); install the PostgreSQL client (Debian: postgresql-client, Fedora: postgresql) \
             or give its path with --pg-dump",
            path.display()
        ))
        .into()),
        Ok(_) => probe(&path).ok_or_else(|| {
            Error::usage(format!(
                "{} --version did not print a PostgreSQL version; is it pg_dump?",
                path.display()
            ))
            .into()
        }),
    }
}

/// Other `pg_dump` binaries on this machine, as Debian and PGDG packages install them.
fn candidates() -> Vec<PgDump> {
    let mut found = Vec::new();
    for (parent, prefix) in [("/usr/lib/postgresql", ""), ("/usr", "pgsql-")] {
        let Ok(entries) = std::fs::read_dir(parent) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name
                .strip_prefix(prefix)
                .is_some_and(|v| v.chars().all(|c| c.is_ascii_digit()) && !v.is_empty())
            {
                if let Some(p) = probe(&entry.path().join("bin/pg_dump")) {
                    found.push(p);
                }
            }
        }
    }
    found.sort_by_key(|p| p.major);
    found
}

/// Refuses a `pg_dump` older than the server, naming one that would work. `server_major`
/// is `server_version_num / 100`.
pub fn check_compatible(
    pg_dump: &PgDump,
    server_major: u32,
    server_version: &str,
) -> anyhow::Result<()> {
    if pg_dump.major >= server_major {
        return Ok(());
    }
    let better = candidates()
        .into_iter()
        .find(|c| c.major >= server_major)
        .map_or_else(
            || format!("install the PostgreSQL {server_version} client (or newer) and pass its pg_dump with --pg-dump"),
            |c| format!("use --pg-dump {}", c.path.display()),
        );
    Err(Error::usage(format!(
        "{} ({}) cannot dump a PostgreSQL {server_version} server (pg_dump must be at least as new as the server); {better}",
        pg_dump.path.display(),
        pg_dump.version
    ))
    .into())
}

/// Quotes a name for a `pg_dump` pattern so that it matches only itself.
/// See: <https://www.postgresql.org/docs/current/app-psql.html#APP-PSQL-PATTERNS>
#[must_use]
pub fn exact_pattern(schema: &str, table: &str) -> String {
    format!(
        "\"{}\".\"{}\"",
        schema.replace('"', "\"\""),
        table.replace('"', "\"\"")
    )
}

/// Starts `pg_dump` in plain format on the exported snapshot, stdout piped, stderr passed
/// through, connection (and password) given through the environment only.
pub fn spawn(
    pg_dump: &PgDump,
    conn: &Conn,
    snapshot: &str,
    exclude_data: &[String],
    no_subscriptions: bool,
    masked: bool,
) -> anyhow::Result<Child> {
    let mut cmd = Command::new(&pg_dump.path);
    conn.apply_env(&mut cmd);
    cmd.arg("--format=plain")
        .arg("--no-password")
        .arg(format!("--snapshot={snapshot}"));
    for pattern in exclude_data {
        cmd.arg(format!("--exclude-table-data={pattern}"));
    }
    if no_subscriptions {
        cmd.arg("--no-subscriptions");
    }
    if masked && pg_dump.major >= 1800 {
        // PostgreSQL 18's pg_dump can write optimizer statistics, whose most common values
        // and histograms are column values: never for a masked dump. (The pipeline also
        // drops any statistics of a column that is not kept: crate::pipeline.)
        cmd.arg("--no-statistics");
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd.spawn()
        .with_context(|| format!("could not start {}", pg_dump.path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(
            parse_major("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"),
            Some(1500)
        );
        assert_eq!(parse_major("pg_dump (PostgreSQL) 17beta1"), Some(1700));
        assert_eq!(parse_major("pg_dump (PostgreSQL) 9.6.24"), Some(906));
        assert_eq!(parse_major("something else"), None);
    }

    #[test]
    fn patterns_are_exact() {
        assert_eq!(
            exact_pattern("public", "sessions"),
            "\"public\".\"sessions\""
        );
        assert_eq!(exact_pattern("a\"b", "t*"), "\"a\"\"b\".\"t*\"");
    }
}
