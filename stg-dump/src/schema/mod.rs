//! What the live source database says: its settings for the manifest, its columns and
//! foreign keys for checking the masking rules before the first byte is written.
//!
//! Every rule is checked against the schema: a missing table or column, a transform whose
//! output does not fit the column's type, a masked column whose foreign-key partner is
//! masked differently (the restore would fail), a NOT NULL column set to NULL. `--check`
//! also lists columns whose names look sensitive and have no rule. Not for reading the rules
//! file ([`crate::rules`]).
//!
//! Here: the schema as read and how it decides each column, and the masking plan of a COPY
//! block. The catalog queries are in `catalog.rs`, the rule checks in `checks.rs`, the
//! sensitive-name heuristic and suggested rules in `sensitive.rs`.

mod catalog;
mod checks;
mod sensitive;

use std::collections::BTreeMap;

use tokio_postgres::Client;

use crate::masking::{ColumnPlan, TablePlan};
use crate::rules::{Rule, Rules, TableName};

pub use catalog::{source_info, ForeignKey, SourceInfo, UniqueIndex};
pub use checks::{check_rules, undecided, Finding};
pub use sensitive::{suggest, unmasked_sensitive};

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
            tables: catalog::columns(client).await?,
            ancestors: catalog::ancestors(client).await?,
            foreign_keys: catalog::foreign_keys(client).await?,
            unique: catalog::unique_columns(client).await?,
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

    /// Every column of a table whose rows are dumped that nothing decides, in table order.
    pub fn undecided_columns<'a>(
        &'a self,
        rules: &'a Rules,
    ) -> impl Iterator<Item = (&'a TableName, &'a Column)> + 'a {
        self.tables
            .iter()
            .filter(|(table, _)| !self.excluded(rules, table))
            .flat_map(|(table, columns)| columns.iter().map(move |col| (table, col)))
            .filter(|(table, col)| {
                matches!(self.decision(rules, table, &col.name), Decision::Undecided)
            })
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
