//! The role the stream's SQL runs as: a role that logs in, is not a superuser, and can
//! reach no server file, program or role of the server's.
//!
//! A stream's schema runs on the server as it loads (CHECK constraints, defaults, index
//! expressions, materialized views), with the rights of the session that loads it. A
//! superuser's session could not be made safe from inside: code running in it can `RESET
//! ROLE` after a `SET ROLE`, and `SET SESSION AUTHORIZATION` is undone the same way. So
//! stg-restore keeps its own privileged connection for the database-level steps (the guard,
//! `CREATE DATABASE`, allowed extensions, provenance, the swap) and runs every statement and
//! COPY block of the stream on connections that *logged in* as the load role:
//!
//! - **The role.** `stg_load` unless `--load-role` names another; created (`LOGIN`, nothing
//!   else) when missing. At every run it is checked, and refused by name, if it, or any
//!   role it can act as through membership, is a superuser, has `CREATEROLE`, `BYPASSRLS`
//!   or `REPLICATION`, or is a member of `pg_execute_server_program`,
//!   `pg_read_server_files` or `pg_write_server_files`.
//! - **Ownership.** A role is *privileged* here when it is any of those. The load role is
//!   made a member of each role the stream names that is not privileged (so its `ALTER ...
//!   OWNER TO` works and application owners are kept); an object, a default privilege or
//!   the database itself that the stream gives to a privileged role is given to `--owner`
//!   or the load role instead, and the report counts them. After the load, no object of
//!   the restored database but extension members is owned by a privileged role, or the
//!   restore fails before the swap.
//! - **Logging in.** A random password, sent to the server as a SCRAM verifier (never the
//!   password itself), set under an advisory lock, used to open the load's connections and
//!   then removed (`PASSWORD NULL`): it is valid only while the load connects. The server
//!   must accept password authentication for the role (`pg_hba.conf`); when it does not,
//!   the error names the line to add.
//!
//! Not here: which statements may run at all ([`crate::policy`]), running them
//! ([`crate::load`]).
//! See: <https://www.postgresql.org/docs/current/sql-set-role.html> ("SET ROLE does not
//! process session variables..."), <https://www.postgresql.org/docs/current/predefined-roles.html>.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::Context;
use stg_core::conn::Conn;
use stg_core::Error;
use tokio_postgres::Client;

use crate::policy::RoleRef;
use crate::script::Statement;
use crate::sql::{ident, literal};

/// The load role's name unless `--load-role` says otherwise.
pub const DEFAULT_ROLE: &str = "stg_load";

/// Predefined roles that reach the server's files and programs.
const SERVER_ROLES: [&str; 3] = [
    "pg_execute_server_program",
    "pg_read_server_files",
    "pg_write_server_files",
];

/// Roles whose rights reach beyond a database: superusers, roles with `CREATEROLE`,
/// `BYPASSRLS` or `REPLICATION`, the [`SERVER_ROLES`], and every role that is a member of
/// any of them.
async fn privileged_roles(client: &Client) -> anyhow::Result<BTreeSet<String>> {
    let rows = client
        .query(
            "WITH strong AS ( \
               SELECT oid FROM pg_catalog.pg_roles \
               WHERE rolsuper OR rolcreaterole OR rolbypassrls OR rolreplication \
                  OR rolname = ANY ($1) \
             ) \
             SELECT r.rolname::text FROM pg_catalog.pg_roles r \
             WHERE EXISTS (SELECT 1 FROM strong s WHERE s.oid = r.oid \
                             OR pg_catalog.pg_has_role(r.oid, s.oid, 'MEMBER'))",
            &[&SERVER_ROLES.as_slice()],
        )
        .await
        .context("while listing the roles that are superusers or reach the server")?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Who owns what the stream gives to a privileged role, and the roles that are.
#[derive(Clone, Debug)]
pub struct Owners {
    /// Roles that may not own anything the stream restores.
    pub privileged: Arc<BTreeSet<String>>,
    /// Who gets their objects instead (`--owner`, else the load role).
    pub replacement: String,
    /// The load role (made a member of an owner the stream names, where it is not yet).
    pub load_role: String,
}

impl Owners {
    /// `role`, or the replacement when it is privileged.
    pub fn owner_for(&self, role: &str) -> String {
        if self.privileged.contains(role) {
            self.replacement.clone()
        } else {
            role.to_owned()
        }
    }

    /// Gives `statement`'s objects that go to a privileged role to the replacement, in its
    /// text; how many it gave.
    pub fn rewrite(&self, statement: &mut Statement) -> u64 {
        let moved: Vec<&RoleRef> = statement
            .owners
            .iter()
            .filter(|r| self.privileged.contains(&r.name))
            .collect();
        if moved.is_empty() {
            return 0;
        }
        let mut sql = String::with_capacity(statement.sql.len() + 16);
        let mut from = 0;
        for r in &moved {
            sql.push_str(&statement.sql[from..r.start]);
            sql.push_str(&ident(&self.replacement));
            from = r.end;
        }
        sql.push_str(&statement.sql[from..]);
        statement.sql = sql;
        moved.len() as u64
    }
}

/// The load role, checked and ready for this run.
#[derive(Clone, Debug)]
pub struct LoadRole {
    /// Its name.
    pub name: String,
    /// Created by this run.
    pub created: bool,
    /// Roles it was made a member of by this run.
    pub granted: Vec<String>,
    /// Ownership of what the stream gives to privileged roles.
    pub owners: Owners,
}

/// Makes the load role ready on the server of `client` (the privileged connection): created
/// when missing, checked, made a member of the stream's roles that are not privileged
/// (`roles`, which exist), and the owner map built (`owner`: `--owner`).
pub async fn prepare(
    client: &Client,
    name: &str,
    owner: Option<&str>,
    roles: &[String],
) -> anyhow::Result<LoadRole> {
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1",
            &[&name],
        )
        .await
        .context("while looking up the load role")?
        .is_some();
    if !exists {
        client
            .batch_execute(&format!(
                "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION \
                 NOBYPASSRLS INHERIT",
                ident(name)
            ))
            .await
            .with_context(|| {
                format!(
                    "while creating the load role {name} (the restoring role needs to be a \
                     superuser or have CREATEROLE; or create it beforehand: CREATE ROLE {} LOGIN)",
                    ident(name)
                )
            })?;
    }
    let privileged = privileged_roles(client).await?;
    if privileged.contains(name) {
        return Err(Error::usage(refused_role(client, name).await?).into());
    }
    let replacement = owner.unwrap_or(name).to_owned();
    if privileged.contains(&replacement) {
        return Err(Error::usage(format!(
            "--owner {replacement}: it is a superuser, or can act as one or reach the server's \
             files (CREATEROLE, BYPASSRLS, REPLICATION, or a member of such a role); name a \
             role that is not"
        ))
        .into());
    }
    let mut wanted: Vec<&str> = roles.iter().map(String::as_str).collect();
    if replacement != name {
        wanted.push(&replacement);
    }
    let mut granted = Vec::new();
    for role in wanted {
        if role == name || privileged.contains(role) || role.starts_with("pg_") {
            continue;
        }
        let member: bool = client
            .query_one(
                "SELECT pg_catalog.pg_has_role($1, r.oid, 'MEMBER') FROM pg_catalog.pg_roles r \
                 WHERE r.rolname = $2",
                &[&name, &role],
            )
            .await
            .with_context(|| format!("while checking the load role's membership in {role}"))?
            .get(0);
        if !member {
            client
                .batch_execute(&format!("GRANT {} TO {}", ident(role), ident(name)))
                .await
                .with_context(|| format!("while making the load role {name} a member of {role}"))?;
            granted.push(role.to_owned());
        }
    }
    // Granting can only have added roles that are not privileged; check again all the same
    // (a membership made by hand between the two queries).
    if privileged_roles(client).await?.contains(name) {
        return Err(Error::usage(refused_role(client, name).await?).into());
    }
    Ok(LoadRole {
        name: name.to_owned(),
        created: !exists,
        granted,
        owners: Owners {
            privileged: Arc::new(privileged),
            replacement,
            load_role: name.to_owned(),
        },
    })
}

/// Makes the load role a member of `role` when it exists, is not privileged, and the load
/// role is not one yet (an owner the stream names that the manifest did not list); true
/// when it granted.
pub async fn ensure_member(client: &Client, owners: &Owners, role: &str) -> anyhow::Result<bool> {
    if owners.privileged.contains(role) || role == owners.load_role || role.starts_with("pg_") {
        return Ok(false);
    }
    let member = client
        .query_opt(
            "SELECT pg_catalog.pg_has_role($1, r.oid, 'MEMBER') FROM pg_catalog.pg_roles r \
             WHERE r.rolname = $2",
            &[&owners.load_role, &role],
        )
        .await
        .with_context(|| format!("while checking the load role's membership in {role}"))?;
    match member {
        Some(row) if !row.get::<_, bool>(0) => {
            client
                .batch_execute(&format!(
                    "GRANT {} TO {}",
                    ident(role),
                    ident(&owners.load_role)
                ))
                .await
                .with_context(|| {
                    format!(
                        "while making the load role {} a member of {role}",
                        owners.load_role
                    )
                })?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Why `name` cannot be the load role, naming what it has.
async fn refused_role(client: &Client, name: &str) -> anyhow::Result<String> {
    let rows = client
        .query(
            "SELECT r.rolname::text, r.rolsuper, r.rolcreaterole, r.rolbypassrls, \
             r.rolreplication, r.rolname = ANY ($2) \
             FROM pg_catalog.pg_roles r \
             WHERE pg_catalog.pg_has_role($1, r.oid, 'MEMBER') \
               AND (r.rolsuper OR r.rolcreaterole OR r.rolbypassrls OR r.rolreplication \
                    OR r.rolname = ANY ($2))",
            &[&name, &SERVER_ROLES.as_slice()],
        )
        .await
        .context("while looking at the load role's rights")?;
    let mut what = Vec::new();
    for r in rows {
        let role: String = r.get(0);
        let mut has = Vec::new();
        for (i, attr) in ["SUPERUSER", "CREATEROLE", "BYPASSRLS", "REPLICATION"]
            .iter()
            .enumerate()
        {
            if r.get::<_, bool>(i + 1) {
                has.push(*attr);
            }
        }
        if r.get::<_, bool>(5) {
            has.push("a server-files role");
        }
        let via = if role == name {
            String::new()
        } else {
            format!(" (through membership in {role})")
        };
        what.push(format!("{}{via}", has.join(", ")));
    }
    Ok(format!(
        "the load role {name} can act beyond one database: {}; stg-restore runs a stream's SQL \
         only as a role that is not a superuser and holds none of CREATEROLE, BYPASSRLS, \
         REPLICATION, pg_execute_server_program, pg_read_server_files, pg_write_server_files \
         (name another with --load-role, or ALTER ROLE {} NOSUPERUSER ... / REVOKE the \
         membership)",
        what.join("; "),
        ident(name)
    ))
}

/// A password for one run, 192 random bits as hex.
pub fn new_password() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("could not draw a random password: {e}"))?;
    let mut out = String::with_capacity(48);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    Ok(out)
}

/// Lets the load role log in with `password` (sent as a SCRAM verifier) while the caller
/// holds the lock that [`lock`] took.
pub async fn open(client: &Client, name: &str, password: &str) -> anyhow::Result<()> {
    let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
    client
        .batch_execute(&format!(
            "ALTER ROLE {} LOGIN PASSWORD {}",
            ident(name),
            literal(&verifier)
        ))
        .await
        .with_context(|| format!("while setting the load role {name}'s password for this run"))
}

/// Removes the load role's password: no one logs in as it until the next run.
pub async fn close(client: &Client, name: &str) -> anyhow::Result<()> {
    client
        .batch_execute(&format!("ALTER ROLE {} PASSWORD NULL", ident(name)))
        .await
        .with_context(|| format!("while removing the load role {name}'s password"))
}

/// Takes the session lock that serializes restores setting the load role's password
/// (restores of other databases may run at once).
pub async fn lock(client: &Client, name: &str) -> anyhow::Result<()> {
    client
        .execute(
            "SELECT pg_catalog.pg_advisory_lock(hashtext('stg-restore load role'), hashtext($1))",
            &[&name],
        )
        .await
        .context("while waiting for the load role's lock")?;
    Ok(())
}

/// Releases [`lock`].
pub async fn unlock(client: &Client, name: &str) -> anyhow::Result<()> {
    client
        .execute(
            "SELECT pg_catalog.pg_advisory_unlock(hashtext('stg-restore load role'), hashtext($1))",
            &[&name],
        )
        .await
        .context("while releasing the load role's lock")?;
    Ok(())
}

/// The error when the server would not let the load role in: what it said, and the
/// `pg_hba.conf` line that lets it.
pub fn login_refused(err: &anyhow::Error, conn: &Conn, name: &str) -> anyhow::Error {
    let line = if conn.is_socket() {
        format!("local   all   {name}   scram-sha-256")
    } else {
        format!("host    all   {name}   {}/32   scram-sha-256", conn.host)
    };
    Error::runtime(format!(
        "the server refused the load role {name} ({err:#}). stg-restore runs the stream's \
         SQL as {name}, a role that is not a superuser, logging it in with a password valid \
         for this run only: let it in with a line in pg_hba.conf before any line that would \
         match it first, such as `{line}` (for a host name or another network, its address \
         or range), then reload the server; or name a role the server accepts with \
         --load-role"
    ))
    .into()
}

/// Objects of the restored database owned by a privileged role (extension members, what
/// belongs to them — an extension type's array type, a table's index — and the system's
/// own objects aside), at most `limit`, described; and how many in all.
pub async fn privileged_objects(
    client: &Client,
    privileged: &BTreeSet<String>,
    limit: usize,
) -> anyhow::Result<(Vec<String>, i64)> {
    let roles: Vec<&str> = privileged.iter().map(String::as_str).collect();
    // Every catalog with an owner column, and the database itself.
    let catalogs = [
        ("pg_class", "relowner", "relname"),
        ("pg_proc", "proowner", "proname"),
        ("pg_type", "typowner", "typname"),
        ("pg_namespace", "nspowner", "nspname"),
        ("pg_operator", "oprowner", "oprname"),
        ("pg_opclass", "opcowner", "opcname"),
        ("pg_opfamily", "opfowner", "opfname"),
        ("pg_collation", "collowner", "collname"),
        ("pg_conversion", "conowner", "conname"),
        ("pg_ts_config", "cfgowner", "cfgname"),
        ("pg_ts_dict", "dictowner", "dictname"),
        ("pg_event_trigger", "evtowner", "evtname"),
        ("pg_publication", "pubowner", "pubname"),
        ("pg_foreign_server", "srvowner", "srvname"),
        ("pg_foreign_data_wrapper", "fdwowner", "fdwname"),
        ("pg_language", "lanowner", "lanname"),
        ("pg_statistic_ext", "stxowner", "stxname"),
    ];
    let mut parts: Vec<String> = catalogs
        .iter()
        .map(|(cat, owner, name)| {
            format!(
                "SELECT '{cat}'::text AS catalog, x.{name}::text AS name, \
                 pg_catalog.pg_get_userbyid(x.{owner})::text AS owner \
                 FROM pg_catalog.{cat} x WHERE x.oid >= 16384 \
                 AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
                   WHERE d.classid = 'pg_catalog.{cat}'::regclass AND d.objid = x.oid \
                   AND (d.deptype = 'e' OR (d.deptype IN ('i', 'a') AND EXISTS ( \
                     SELECT 1 FROM pg_catalog.pg_depend e WHERE e.classid = d.refclassid \
                     AND e.objid = d.refobjid AND e.deptype = 'e'))))"
            )
        })
        .collect();
    parts.push(
        "SELECT 'pg_largeobject_metadata', x.oid::text, \
         pg_catalog.pg_get_userbyid(x.lomowner)::text FROM pg_catalog.pg_largeobject_metadata x"
            .into(),
    );
    parts.push(
        "SELECT 'pg_database', d.datname::text, pg_catalog.pg_get_userbyid(d.datdba)::text \
         FROM pg_catalog.pg_database d WHERE d.datname = current_database()"
            .into(),
    );
    let sql = format!(
        "SELECT catalog, name, owner, count(*) OVER () FROM ({}) o WHERE owner = ANY ($1) \
         ORDER BY catalog, name LIMIT {limit}",
        parts.join(" UNION ALL ")
    );
    let rows = client
        .query(&sql, &[&roles])
        .await
        .context("while looking for objects owned by a superuser")?;
    let total = rows.first().map_or(0, |r| r.get::<_, i64>(3));
    let shown = rows
        .iter()
        .map(|r| {
            format!(
                "{} {} (owner {})",
                r.get::<_, String>(0).trim_start_matches("pg_"),
                r.get::<_, String>(1),
                r.get::<_, String>(2)
            )
        })
        .collect();
    Ok((shown, total))
}
