//! The catalog queries: the manifest's facts about the source database, its tables'
//! columns, partition and inheritance parents, foreign keys and unique indexes, and the
//! server's own cast of a constant to a column's type.

use std::collections::BTreeMap;

use anyhow::Context;
use tokio_postgres::Client;

use super::Column;
use crate::rules::TableName;

/// The manifest's facts about the source database.
#[derive(Clone, Debug)]
pub struct SourceInfo {
    /// `server_version`.
    pub server_version: String,
    /// `server_version_num / 100`: 1500 for 15.x, 906 for 9.6.
    pub server_major: u32,
    /// Encoding name.
    pub encoding: String,
    /// `datcollate`.
    pub collate: String,
    /// `datctype`.
    pub ctype: String,
    /// `libc`, `icu` or `builtin`.
    pub provider: String,
    /// ICU (or builtin) locale, where the provider uses one.
    pub icu_locale: Option<String>,
    /// Database owner.
    pub owner: String,
    /// Roles the dump references.
    pub roles: Vec<String>,
}

/// Reads the manifest facts.
pub async fn source_info(client: &Client) -> anyhow::Result<SourceInfo> {
    // to_jsonb(d) reads the pg_database row whatever the server version calls its locale
    // columns (daticulocale in 15-16, datlocale from 17).
    let row = client
        .query_one(
            "SELECT to_jsonb(d)::text, pg_encoding_to_char(d.encoding), pg_get_userbyid(d.datdba),
                    current_setting('server_version'), current_setting('server_version_num')::int
             FROM pg_database d WHERE d.datname = current_database()",
            &[],
        )
        .await
        .context("while reading the source database's settings")?;
    let json: String = row.get(0);
    let db: serde_json::Value = serde_json::from_str(&json)?;
    let text = |key: &str| db.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let provider = match text("datlocprovider").as_deref() {
        Some("i") => "icu",
        Some("b") => "builtin",
        _ => "libc",
    };
    let version_num: i32 = row.get(4);
    let roles = client
        .query(ROLES_SQL, &[])
        .await
        .context("while listing the roles the dump references")?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    Ok(SourceInfo {
        server_version: row.get(3),
        server_major: u32::try_from(version_num / 100).unwrap_or(0),
        encoding: row.get(1),
        collate: text("datcollate").unwrap_or_default(),
        ctype: text("datctype").unwrap_or_default(),
        provider: provider.to_owned(),
        icu_locale: text("daticulocale").or_else(|| text("datlocale")),
        owner: row.get(2),
        roles,
    })
}

/// Owners of the database and of every object in it, and grantees of privileges on
/// schemas and relations: the roles a restore needs to exist. Built-in `pg_*` roles
/// exist everywhere and are left out.
const ROLES_SQL: &str = "
    WITH user_ns AS (
        SELECT oid, nspowner, nspacl FROM pg_namespace
        WHERE nspname NOT IN ('pg_catalog', 'information_schema')
          AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE 'pg\\_temp%'
    ), ids AS (
        SELECT datdba AS id FROM pg_database WHERE datname = current_database()
        UNION SELECT nspowner FROM user_ns
        UNION SELECT (aclexplode(nspacl)).grantee FROM user_ns WHERE nspacl IS NOT NULL
        UNION SELECT relowner FROM pg_class WHERE relnamespace IN (SELECT oid FROM user_ns)
        UNION SELECT (aclexplode(relacl)).grantee FROM pg_class
              WHERE relacl IS NOT NULL AND relnamespace IN (SELECT oid FROM user_ns)
        UNION SELECT proowner FROM pg_proc WHERE pronamespace IN (SELECT oid FROM user_ns)
        UNION SELECT typowner FROM pg_type WHERE typnamespace IN (SELECT oid FROM user_ns)
    )
    SELECT rolname FROM pg_roles WHERE oid IN (SELECT id FROM ids) AND rolname NOT LIKE 'pg\\_%'
    ORDER BY 1";

/// Every column of every ordinary or partitioned table, by table.
pub async fn columns(client: &Client) -> anyhow::Result<BTreeMap<TableName, Vec<Column>>> {
    let rows = client
        .query(
            "SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                    t.typcategory::text, a.attnotnull,
                    CASE WHEN a.atttypid IN ('varchar'::regtype, 'bpchar'::regtype) AND a.atttypmod > 4
                         THEN a.atttypmod - 4 END,
                    a.attgenerated::text <> ''
             FROM pg_attribute a
             JOIN pg_class c ON c.oid = a.attrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_type t ON t.oid = a.atttypid
             WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p')
               AND n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND n.nspname NOT LIKE 'pg\\_toast%'
             ORDER BY 1, 2, a.attnum",
            &[],
        )
        .await
        .context("while reading the source schema")?;
    let mut tables: BTreeMap<TableName, Vec<Column>> = BTreeMap::new();
    for row in rows {
        let table = TableName {
            schema: row.get(0),
            table: row.get(1),
        };
        let max: Option<i32> = row.get(6);
        tables.entry(table).or_default().push(Column {
            name: row.get(2),
            data_type: row.get(3),
            category: row.get(4),
            not_null: row.get(5),
            max_chars: max.and_then(|m| usize::try_from(m).ok()),
            generated: row.get(7),
        });
    }
    Ok(tables)
}

/// Every table's ancestors, nearest first: the parents of partitions (at every level of a
/// partition tree) and of inheritance children (`INHERITS`). Rules and `exclude_data` on a
/// table apply to all of its descendants, since their rows are the parent's rows.
/// See: <https://www.postgresql.org/docs/current/catalog-pg-inherits.html>.
pub async fn ancestors(client: &Client) -> anyhow::Result<BTreeMap<TableName, Vec<TableName>>> {
    let rows = client
        .query(
            "WITH RECURSIVE up(child, parent, depth) AS (
                 SELECT inhrelid, inhparent, 1 FROM pg_inherits
                 UNION ALL
                 SELECT up.child, i.inhparent, up.depth + 1
                 FROM up JOIN pg_inherits i ON i.inhrelid = up.parent
                 WHERE up.depth < 100
             )
             SELECT cn.nspname, c.relname, pn.nspname, p.relname
             FROM up
             JOIN pg_class c ON c.oid = up.child JOIN pg_namespace cn ON cn.oid = c.relnamespace
             JOIN pg_class p ON p.oid = up.parent JOIN pg_namespace pn ON pn.oid = p.relnamespace
             WHERE c.relkind IN ('r', 'p', 'f', 'm')
             ORDER BY cn.nspname, c.relname, up.depth, pn.nspname, p.relname",
            &[],
        )
        .await
        .context("while reading partitions and inheritance children")?;
    let mut map: BTreeMap<TableName, Vec<TableName>> = BTreeMap::new();
    for r in &rows {
        let parent = TableName {
            schema: r.get(2),
            table: r.get(3),
        };
        let list = map
            .entry(TableName {
                schema: r.get(0),
                table: r.get(1),
            })
            .or_default();
        if !list.contains(&parent) {
            list.push(parent);
        }
    }
    Ok(map)
}

/// One column pair of a foreign key.
#[derive(Clone, Debug)]
pub struct ForeignKey {
    /// Constraint name.
    pub name: String,
    /// Referencing table and column.
    pub from: (TableName, String),
    /// Referenced table and column.
    pub to: (TableName, String),
}

/// Every foreign-key column pair.
pub async fn foreign_keys(client: &Client) -> anyhow::Result<Vec<ForeignKey>> {
    let rows = client
        .query(
            "SELECT con.conname, n1.nspname, c1.relname, a1.attname, n2.nspname, c2.relname, a2.attname
             FROM pg_constraint con
             CROSS JOIN LATERAL unnest(con.conkey, con.confkey) AS k(attnum, fattnum)
             JOIN pg_class c1 ON c1.oid = con.conrelid
             JOIN pg_namespace n1 ON n1.oid = c1.relnamespace
             JOIN pg_attribute a1 ON a1.attrelid = con.conrelid AND a1.attnum = k.attnum
             JOIN pg_class c2 ON c2.oid = con.confrelid
             JOIN pg_namespace n2 ON n2.oid = c2.relnamespace
             JOIN pg_attribute a2 ON a2.attrelid = con.confrelid AND a2.attnum = k.fattnum
             WHERE con.contype = 'f'",
            &[],
        )
        .await
        .context("while reading foreign keys")?;
    Ok(rows
        .iter()
        .map(|r| ForeignKey {
            name: r.get(0),
            from: (
                TableName {
                    schema: r.get(1),
                    table: r.get(2),
                },
                r.get(3),
            ),
            to: (
                TableName {
                    schema: r.get(4),
                    table: r.get(5),
                },
                r.get(6),
            ),
        })
        .collect())
}

/// A unique index (or UNIQUE / PRIMARY KEY constraint) a column is part of, as a key
/// column or inside an expression.
#[derive(Clone, Debug)]
pub struct UniqueIndex {
    /// Index name.
    pub name: String,
    /// `NULLS NOT DISTINCT` (PostgreSQL 15+): two NULLs collide too.
    pub nulls_not_distinct: bool,
}

/// Every column that is part of a unique index: its key columns and the columns its
/// expressions use (`pg_depend`), PRIMARY KEY and UNIQUE constraints included.
pub async fn unique_columns(
    client: &Client,
) -> anyhow::Result<BTreeMap<(TableName, String), UniqueIndex>> {
    let rows = client
        .query(
            "WITH u AS (
                 SELECT i.indexrelid, i.indrelid, k.attnum
                 FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey::int2[]) AS k(attnum)
                 WHERE i.indisunique AND k.attnum > 0
                 UNION
                 SELECT i.indexrelid, i.indrelid, d.refobjsubid::int2
                 FROM pg_index i
                 JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
                  AND d.refclassid = 'pg_class'::regclass AND d.refobjid = i.indrelid
                  AND d.refobjsubid > 0
                 WHERE i.indisunique
             )
             SELECT n.nspname, c.relname, a.attname, ic.relname,
                    coalesce((to_jsonb(i) ->> 'indnullsnotdistinct')::bool, false)
             FROM u
             JOIN pg_index i ON i.indexrelid = u.indexrelid
             JOIN pg_class ic ON ic.oid = u.indexrelid
             JOIN pg_class c ON c.oid = u.indrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_attribute a ON a.attrelid = u.indrelid AND a.attnum = u.attnum
             ORDER BY 1, 2, 3, 5 DESC, 4",
            &[],
        )
        .await
        .context("while reading unique indexes")?;
    let mut map = BTreeMap::new();
    for r in &rows {
        map.entry((
            TableName {
                schema: r.get(0),
                table: r.get(1),
            },
            r.get::<_, String>(2),
        ))
        .or_insert_with(|| UniqueIndex {
            name: r.get(3),
            nulls_not_distinct: r.get(4),
        });
    }
    Ok(map)
}

/// Checks a constant against the column type by asking the server to cast it.
pub(super) async fn constant_fits(
    client: &Client,
    value: &str,
    data_type: &str,
) -> Result<(), String> {
    // data_type comes from format_type(), the server's own spelling of a type: safe to
    // put into SQL text.
    client
        .query_one(
            &format!("SELECT $1::text::{data_type} IS NOT NULL"),
            &[&value],
        )
        .await
        .map(|_| ())
        .map_err(|e| {
            e.as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_owned())
        })
}
