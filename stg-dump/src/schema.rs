//! What the live source database says: its settings for the manifest, its columns and
//! foreign keys for checking the masking rules before the first byte is written.
//!
//! Every rule is checked against the schema: a missing table or column, a transform whose
//! output does not fit the column's type, a masked column whose foreign-key partner is
//! masked differently (the restore would fail), a NOT NULL column set to NULL. `--check`
//! also lists columns whose names look sensitive and have no rule. Not for reading the rules
//! file ([`crate::rules`]).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use serde::Serialize;
use tokio_postgres::Client;

use crate::masking::{ColumnPlan, TablePlan};
use crate::rules::{quote_if_needed, Rule, Rules, TableName, Transform};

/// A column of a table in the source database.
#[derive(Clone, Debug)]
pub struct Column {
    /// Name as stored.
    pub name: String,
    /// `format_type` of the column, e.g. `character varying(64)`.
    pub data_type: String,
    /// `pg_type.typcategory`: `S` for string types.
    pub category: String,
    /// NOT NULL constraint.
    pub not_null: bool,
    /// `n` of `varchar(n)`/`char(n)`.
    pub max_chars: Option<usize>,
    /// Generated column (never in COPY data).
    pub generated: bool,
}

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

/// How a column of a dumped table is decided.
#[derive(Clone, Copy, Debug)]
pub enum Decision<'r> {
    /// A rule masks it (the table's own, else the nearest ancestor's).
    Rule(&'r Rule),
    /// A keep entry names it (or keeps its whole table: `all` is `true`).
    Keep(&'r crate::rules::Keep),
    /// A generated column: never in the dump, computed again on restore from the
    /// (masked) columns it derives from.
    Generated,
    /// Nothing decides it.
    Undecided,
}

impl Decision<'_> {
    /// The decision as recorded in the manifest: the transform's name, `keep`,
    /// `keep_table` (a whole-table keep), `generated` or `undecided`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Decision::Rule(rule) => rule.transform.name(),
            Decision::Keep(keep) if keep.all => "keep_table",
            Decision::Keep(_) => "keep",
            Decision::Generated => "generated",
            Decision::Undecided => "undecided",
        }
    }
}

/// Everything the check needs from the database, read once.
pub struct Schema {
    /// Columns by table.
    pub tables: BTreeMap<TableName, Vec<Column>>,
    /// Table -> its ancestors (partition parents and inheritance parents), nearest first.
    pub ancestors: BTreeMap<TableName, Vec<TableName>>,
    /// Foreign-key column pairs.
    pub foreign_keys: Vec<ForeignKey>,
    /// Columns in unique indexes.
    pub unique: BTreeMap<(TableName, String), UniqueIndex>,
}

impl Schema {
    /// Reads the schema.
    pub async fn read(client: &Client) -> anyhow::Result<Schema> {
        Ok(Schema {
            tables: columns(client).await?,
            ancestors: ancestors(client).await?,
            foreign_keys: foreign_keys(client).await?,
            unique: unique_columns(client).await?,
        })
    }

    /// A column of a table, if both exist.
    #[must_use]
    pub fn column(&self, table: &TableName, column: &str) -> Option<&Column> {
        self.tables.get(table)?.iter().find(|c| c.name == column)
    }

    /// How a column is decided. Per-column decisions (a rule or a keep naming the column)
    /// come first, the table's own then the nearest ancestor's; then a whole-table keep
    /// (`"all": true`), the table's own then the nearest ancestor's having the column. So a
    /// parent's rule on `email` still masks a child the child's `all` keep would copy.
    pub fn decision<'r>(&self, rules: &'r Rules, table: &TableName, column: &str) -> Decision<'r> {
        if self.column(table, column).is_some_and(|c| c.generated) {
            return Decision::Generated;
        }
        let has = |t: &TableName| t == table || self.column(t, column).is_some();
        for t in self.lineage(table).filter(|t| has(t)) {
            if let Some(rule) = rules
                .rules
                .iter()
                .find(|r| &r.table == t && r.column == column)
            {
                return Decision::Rule(rule);
            }
            if let Some(keep) = rules
                .keep
                .iter()
                .find(|k| &k.table == t && k.columns.iter().any(|c| c == column))
            {
                return Decision::Keep(keep);
            }
        }
        for t in self.lineage(table).filter(|t| has(t)) {
            if let Some(keep) = rules.keep.iter().find(|k| &k.table == t && k.all) {
                return Decision::Keep(keep);
            }
        }
        Decision::Undecided
    }

    /// The table, then its ancestors nearest first.
    fn lineage<'a>(&'a self, table: &'a TableName) -> impl Iterator<Item = &'a TableName> {
        std::iter::once(table).chain(self.ancestors.get(table).into_iter().flatten())
    }

    /// The rule masking a column: the table's own, else the nearest ancestor's (a
    /// partition or an inheritance child carries its parent's rows).
    pub fn rule_for<'r>(
        &self,
        rules: &'r Rules,
        table: &TableName,
        column: &str,
    ) -> Option<&'r Rule> {
        match self.decision(rules, table, column) {
            Decision::Rule(rule) => Some(rule),
            _ => None,
        }
    }

    /// True when the table's data is excluded, by its own entry or an ancestor's.
    pub fn excluded(&self, rules: &Rules, table: &TableName) -> bool {
        self.lineage(table)
            .any(|t| rules.exclude_data.iter().any(|x| x == t))
    }

    /// `table` and every table descending from it, that exist in the database.
    pub fn with_descendants(&self, table: &TableName) -> Vec<TableName> {
        let mut out: Vec<TableName> = self
            .tables
            .keys()
            .filter(|t| self.lineage(t).any(|a| a == table))
            .cloned()
            .collect();
        out.sort();
        out
    }
}

/// Checks a constant against the column type by asking the server to cast it.
async fn constant_fits(client: &Client, value: &str, data_type: &str) -> Result<(), String> {
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
    for (table, columns) in &schema.tables {
        if schema.excluded(rules, table) {
            continue;
        }
        for col in columns {
            if !matches!(
                schema.decision(rules, table, &col.name),
                Decision::Undecided
            ) {
                continue;
            }
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
    }
    findings
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
    let mut findings = Vec::new();
    for (table, columns) in &schema.tables {
        if schema.excluded(rules, table) {
            continue;
        }
        for col in columns {
            if !matches!(
                schema.decision(rules, table, &col.name),
                Decision::Undecided
            ) {
                continue;
            }
            if let Some(matched) = looks_sensitive(schema, table, col) {
                findings.push(Finding::UnmaskedSensitive {
                    table: table.to_string(),
                    column: col.name.clone(),
                    data_type: col.data_type.clone(),
                    matched,
                });
            }
        }
    }
    findings
}

/// The masking plan of one COPY block, or `None` when nothing in it is masked.
pub fn plan_for(
    schema: &Schema,
    rules: &Rules,
    header: &stg_core::copy_text::CopyHeader,
) -> Option<TablePlan> {
    let table = TableName {
        schema: header.schema.clone(),
        table: header.table.clone(),
    };
    let columns: Vec<Option<ColumnPlan>> = header
        .columns
        .iter()
        .map(|name| {
            schema.rule_for(rules, &table, name).map(|rule| ColumnPlan {
                column: name.clone(),
                transform: rule.transform.clone(),
                max_chars: schema.column(&table, name).and_then(|c| c.max_chars),
            })
        })
        .collect();
    let plan = TablePlan {
        table: header.qualified.clone(),
        columns,
    };
    (!plan.is_identity()).then_some(plan)
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
