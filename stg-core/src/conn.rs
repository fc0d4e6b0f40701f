//! Connection options that follow libpq's habits, for `tokio-postgres` and for spawned
//! `pg_dump`/`psql` alike.
//!
//! Flags `-h/--host`, `-p/--port`, `-U/--username` fall back to `PGHOST`, `PGPORT`, `PGUSER`
//! (clap reads them); the password comes only from `PGPASSWORD` or the password file
//! (`PGPASSFILE`, default `~/.pgpass`), never from a flag, so it never shows in a process
//! listing. Children get the resolved values through their environment, not their argv;
//! a password found in the password file is not copied into their environment at all: they
//! get `PGPASSFILE` and find the same line.
//! `--sslmode` (`PGSSLMODE`) and the certificate files of [`crate::tls`] apply to the tools'
//! own connection and, through the environment, to the children alike.
//! See: <https://www.postgresql.org/docs/current/libpq-envars.html> and
//! <https://www.postgresql.org/docs/current/libpq-pgpass.html>.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use crate::tls::{SslMode, TlsFiles};

/// The connection flags every database-facing tool accepts. They are global: a tool with
/// subcommands takes them before or after the subcommand (`stg-restore -h db list fas2` and
/// `stg-restore list -h db fas2`), so flatten them once, at the top.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConnArgs {
    /// Database server host, or a directory holding its Unix socket.
    #[arg(
        short = 'h',
        long = "host",
        env = "PGHOST",
        value_name = "HOST",
        global = true
    )]
    pub host: Option<String>,
    /// Database server port.
    #[arg(
        short = 'p',
        long = "port",
        env = "PGPORT",
        value_name = "PORT",
        global = true
    )]
    pub port: Option<u16>,
    /// Database user name.
    #[arg(
        short = 'U',
        long = "username",
        env = "PGUSER",
        value_name = "USER",
        global = true
    )]
    pub username: Option<String>,
    /// TLS over TCP, as libpq's sslmode (default prefer). verify-full checks the server's
    /// certificate against PGSSLROOTCERT (default ~/.postgresql/root.crt, or "system") and its
    /// host name; a client certificate is sent from PGSSLCERT/PGSSLKEY when present.
    #[arg(
        long = "sslmode",
        env = "PGSSLMODE",
        value_name = "MODE",
        value_enum,
        global = true
    )]
    pub sslmode: Option<SslMode>,
}

impl ConnArgs {
    /// The first connection flag given on the command line (a value its environment
    /// variable does not explain), for refusing it where nothing connects.
    #[must_use]
    pub fn first_given(&self) -> Option<&'static str> {
        let env = |name: &str| std::env::var(name).ok();
        let differs = |value: Option<String>, name: &str| value.is_some() && value != env(name);
        let sslmode = self
            .sslmode
            .and_then(|m| clap::ValueEnum::to_possible_value(&m))
            .map(|v| v.get_name().to_owned());
        [
            ("-h/--host", differs(self.host.clone(), "PGHOST")),
            (
                "-p/--port",
                self.port.is_some()
                    && self.port != env("PGPORT").and_then(|p| p.trim().parse().ok()),
            ),
            ("-U/--username", differs(self.username.clone(), "PGUSER")),
            ("--sslmode", differs(sslmode, "PGSSLMODE")),
        ]
        .into_iter()
        .find_map(|(flag, given)| given.then_some(flag))
    }
}

/// A resolved connection: every field filled in the way libpq would.
#[derive(Clone)]
pub struct Conn {
    /// Host name, address, or socket directory (starts with `/`).
    pub host: String,
    /// Port.
    pub port: u16,
    /// User name.
    pub user: String,
    /// Database name.
    pub dbname: String,
    /// The TLS mode asked for (flag or `PGSSLMODE`); `None` is libpq's default.
    pub sslmode: Option<SslMode>,
    password: Option<String>,
    /// The password file `password` was found in, for this very connection (so a child
    /// given `PGPASSFILE` finds the same line).
    password_file: Option<PathBuf>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password is deliberately left out: Debug output ends up in logs.
        write!(f, "Conn({})", self.describe())
    }
}

/// libpq's default socket directory: Debian's, then the upstream default.
fn default_host() -> String {
    ["/var/run/postgresql", "/tmp"]
        .iter()
        .find(|dir| Path::new(dir).is_dir())
        .map_or_else(|| "localhost".to_owned(), |dir| (*dir).to_owned())
}

fn os_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "postgres".to_owned())
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Conn {
    /// Resolves flags and environment. `dbname` overrides `PGDATABASE`, which overrides the
    /// user name (libpq's default database).
    #[must_use]
    pub fn resolve(args: &ConnArgs, dbname: Option<&str>) -> Conn {
        let host = args
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(default_host);
        let port = args.port.unwrap_or(5432);
        let user = args
            .username
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(os_user);
        let dbname = dbname
            .map(str::to_owned)
            .or_else(|| env_nonempty("PGDATABASE"))
            .unwrap_or_else(|| user.clone());
        let mut conn = Conn {
            host,
            port,
            user,
            dbname,
            sslmode: args.sslmode,
            password: None,
            password_file: None,
        };
        match env_nonempty("PGPASSWORD") {
            Some(password) => conn.password = Some(password),
            None => conn.use_pgpass(),
        }
        conn
    }

    /// The same server and user, another database.
    #[must_use]
    pub fn with_dbname(&self, dbname: &str) -> Conn {
        let mut other = self.clone();
        dbname.clone_into(&mut other.dbname);
        if env_nonempty("PGPASSWORD").is_none() {
            other.use_pgpass();
            if other.password.is_none() {
                // No line for the other database: keep this one's password, handed over in
                // PGPASSWORD since the file would not give it.
                other.password.clone_from(&self.password);
            }
        }
        other
    }

    /// The same server (host, port, TLS), as another user with this password: for a role
    /// stg-restore logs in itself. The password file and `PGPASSWORD` are not consulted.
    #[must_use]
    pub fn as_user(&self, user: &str, password: &str) -> Conn {
        let mut other = self.clone();
        user.clone_into(&mut other.user);
        other.password = Some(password.to_owned());
        other.password_file = None;
        other
    }

    /// True when `host` names a Unix socket directory.
    #[must_use]
    pub fn is_socket(&self) -> bool {
        self.host.starts_with('/')
    }

    /// `user@host:port/dbname`, for messages. Never includes the password.
    #[must_use]
    pub fn describe(&self) -> String {
        format!("{}@{}:{}/{}", self.user, self.host, self.port, self.dbname)
    }

    /// The configuration for `tokio-postgres`.
    #[must_use]
    pub fn pg_config(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        if self.is_socket() {
            config.host_path(&self.host);
        } else {
            config.host(&self.host);
        }
        config
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name("stg");
        if let Some(password) = &self.password {
            config.password(password);
        }
        config
    }

    /// Connects with `tokio-postgres` and drives the connection on the current runtime.
    /// TCP connections use TLS as `sslmode` says ([`crate::tls`]); Unix sockets never do.
    pub async fn connect(&self) -> anyhow::Result<tokio_postgres::Client> {
        self.connect_as("stg").await
    }

    /// [`Conn::connect`] with another `application_name` (what `pg_stat_activity` shows).
    pub async fn connect_as(
        &self,
        application_name: &str,
    ) -> anyhow::Result<tokio_postgres::Client> {
        let fail = || format!("could not connect to {}", self.describe());
        let mut config = self.pg_config();
        config.application_name(application_name);
        let files = TlsFiles::from_env();
        let mode = if self.is_socket() {
            SslMode::Disable
        } else {
            crate::tls::effective_mode(self.sslmode, &files).with_context(fail)?
        };
        if mode == SslMode::Disable {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            return spawn_connection(&config, tokio_postgres::NoTls)
                .await
                .with_context(fail);
        }
        config.ssl_mode(if mode.requires_tls() {
            tokio_postgres::config::SslMode::Require
        } else {
            tokio_postgres::config::SslMode::Prefer
        });
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(
            crate::tls::client_config(mode, &files).with_context(fail)?,
        );
        spawn_connection(&config, tls)
            .await
            .map_err(|e| crate::tls::explain(anyhow::Error::new(e), mode, &files))
            .with_context(fail)
    }

    /// Points a `pg_dump`/`psql` child at this connection through its environment (never its
    /// argv, so the password stays out of process listings). Inherited `PG*` variables that
    /// would change the target (service files, options) are removed.
    pub fn apply_env(&self, cmd: &mut Command) {
        for var in ["PGSERVICE", "PGSERVICEFILE", "PGOPTIONS", "PGHOSTADDR"] {
            cmd.env_remove(var);
        }
        cmd.env("PGHOST", &self.host)
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", &self.user)
            .env("PGDATABASE", &self.dbname);
        match (&self.password, &self.password_file) {
            (Some(_), Some(file)) => cmd.env_remove("PGPASSWORD").env("PGPASSFILE", file),
            (Some(password), None) => cmd.env("PGPASSWORD", password),
            (None, _) => cmd.env_remove("PGPASSWORD"),
        };
        // The mode stg itself uses, also when it is implied (PGSSLROOTCERT=system makes
        // verify-full the default, which a libpq before 16 would not know).
        match crate::tls::effective_mode(self.sslmode, &TlsFiles::from_env()) {
            Ok(mode) if self.sslmode.is_some() || mode != SslMode::Prefer => {
                cmd.env("PGSSLMODE", mode.as_str());
            }
            _ => {}
        }
    }

    /// Sets the password from the password file's first line matching this connection, or
    /// clears it. The file is remembered (for children's `PGPASSFILE`) only where libpq is
    /// sure to find the same line: a regular file, over TCP. libpq matches a socket directory
    /// against `localhost` only when it is libpq's compiled-in default, which stg cannot
    /// know, so socket connections accept either and hand the password over instead.
    fn use_pgpass(&mut self) {
        let found = pgpass_path().and_then(|path| {
            let (text, regular) = read_private_file(&path)?;
            let hosts: &[&str] = if self.is_socket() {
                &[&self.host, "localhost"]
            } else {
                &[&self.host]
            };
            let password = pgpass_find(&text, hosts, self.port, &self.dbname, &self.user)?;
            let file =
                (regular && !self.is_socket()).then(|| std::path::absolute(&path).unwrap_or(path));
            Some((password, file))
        });
        (self.password, self.password_file) = match found {
            Some((password, file)) => (Some(password), file),
            None => (None, None),
        };
    }
}

/// Connects and drives the connection on the current runtime; its errors surface on the
/// client's next query.
async fn spawn_connection<T>(
    config: &tokio_postgres::Config,
    tls: T,
) -> Result<tokio_postgres::Client, tokio_postgres::Error>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    let (client, connection) = config.connect(tls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// `$HOME`, or the user's home directory from the password database.
pub(crate) fn home_dir() -> Option<PathBuf> {
    env_nonempty("HOME").map(PathBuf::from).or_else(|| {
        nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| u.dir)
    })
}

fn pgpass_path() -> Option<PathBuf> {
    if let Some(path) = env_nonempty("PGPASSFILE") {
        return Some(PathBuf::from(path));
    }
    Some(home_dir()?.join(".pgpass"))
}

/// Reads the password file, ignoring it (as libpq does, with a warning) when others can
/// read it, and says whether it is a regular file (libpq ignores anything else; stg reads a pipe
/// too, say `PGPASSFILE=<(vault ...)`, and then hands the password to children itself).
fn read_private_file(path: &Path) -> Option<(String, bool)> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).ok()?;
    if meta.permissions().mode() & 0o077 != 0 {
        eprintln!(
            "warning: password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
            path.display()
        );
        return None;
    }
    std::fs::read_to_string(path)
        .ok()
        .map(|text| (text, meta.is_file()))
}

/// One field of a `.pgpass` line: its text with escapes undone, and whether it was a bare
/// `*` (an escaped `\*` is a literal star, as in libpq).
struct PgpassField {
    text: String,
    wildcard: bool,
}

/// Splits one `.pgpass` line on unescaped colons, undoing `\:` and `\\`. As in libpq, the
/// password (fifth field) ends at the next unescaped colon.
fn pgpass_fields(line: &str) -> Vec<PgpassField> {
    let mut fields = vec![String::new()];
    let mut bare = vec![true];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("non-empty").push(next);
                    *bare.last_mut().expect("non-empty") = false;
                }
            }
            ':' if fields.len() < 5 => {
                fields.push(String::new());
                bare.push(true);
            }
            ':' => break,
            _ => fields.last_mut().expect("non-empty").push(c),
        }
    }
    fields
        .into_iter()
        .zip(bare)
        .map(|(text, bare)| PgpassField {
            wildcard: bare && text == "*",
            text,
        })
        .collect()
}

/// The password of the first `.pgpass` line matching the connection (`*` matches anything).
/// `hosts` are the names the host may match (a Unix socket directory matches its path and
/// `localhost`).
#[must_use]
pub fn pgpass_find(
    text: &str,
    hosts: &[&str],
    port: u16,
    dbname: &str,
    user: &str,
) -> Option<String> {
    let port = port.to_string();
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#') && !line.trim().is_empty())
        .map(pgpass_fields)
        .filter(|fields| fields.len() == 5)
        .find(|fields| {
            let matches = |field: &PgpassField, value: &str| field.wildcard || field.text == value;
            hosts.iter().any(|host| matches(&fields[0], host))
                && matches(&fields[1], &port)
                && matches(&fields[2], dbname)
                && matches(&fields[3], user)
        })
        .map(|fields| fields[4].text.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_matches_with_wildcards_and_escapes() {
        let text = "# comment\n\
                    db01:5432:fas2:fas:secret1\n\
                    *:*:*:postgres:pa\\:ss\\\\word\n";
        assert_eq!(
            pgpass_find(text, &["db01"], 5432, "fas2", "fas").as_deref(),
            Some("secret1")
        );
        assert_eq!(pgpass_find(text, &["db01"], 5433, "fas2", "fas"), None);
        assert_eq!(
            pgpass_find(text, &["other"], 1, "x", "postgres").as_deref(),
            Some("pa:ss\\word")
        );
    }

    #[test]
    fn pgpass_reads_as_libpq_does() {
        // The password ends at an unescaped colon; an escaped star is a literal star.
        let text = "h:1:d:u:before:after\n\\*:2:d:u:star\n";
        assert_eq!(
            pgpass_find(text, &["h"], 1, "d", "u").as_deref(),
            Some("before")
        );
        assert_eq!(pgpass_find(text, &["other"], 2, "d", "u"), None);
        assert_eq!(
            pgpass_find(text, &["*"], 2, "d", "u").as_deref(),
            Some("star")
        );
        // A socket directory matches its path or localhost.
        let text = "/run/pg:5432:*:u:by-path\nlocalhost:5433:*:u:by-name\n";
        let hosts = ["/run/pg", "localhost"];
        assert_eq!(
            pgpass_find(text, &hosts, 5432, "d", "u").as_deref(),
            Some("by-path")
        );
        assert_eq!(
            pgpass_find(text, &hosts, 5433, "d", "u").as_deref(),
            Some("by-name")
        );
    }

    #[test]
    fn debug_never_shows_password() {
        let conn = Conn {
            host: "db01".into(),
            port: 5432,
            user: "u".into(),
            dbname: "d".into(),
            sslmode: None,
            password: Some("hunter2".into()),
            password_file: None,
        };
        assert!(!format!("{conn:?}").contains("hunter2"));
        assert!(!conn.describe().contains("hunter2"));
    }
}
