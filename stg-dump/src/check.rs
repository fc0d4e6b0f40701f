//! The report of `--check`: what each rule reaches, the findings, and a summary, as a
//! table or JSON Lines.

use std::io::Write;

use stg_core::format::Record;
use stg_core::{exit, jsonl};

use crate::large_objects::{ColumnReport, Plan};
use crate::schema::{Finding, Schema};
use crate::{rules, Config, Format};

/// What each rule and exclusion reaches: its table and every partition or inheritance
/// child of it, so a reader of `--check` sees the rule on `people` also mask `staff`.
#[derive(serde::Serialize)]
struct Applied {
    rule: String,
    tables: Vec<String>,
}

impl Record for Applied {
    const TYPE: &'static str = "applied";
}

/// The large objects of the database and what a masked dump does with them: how many,
/// the decision, how many lose their bytes, and the oid columns that point at them.
#[derive(serde::Serialize)]
struct LargeObjects<'a> {
    objects: u64,
    decision: &'static str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    by_default: bool,
    excluded: u64,
    columns: &'a [ColumnReport],
}

impl Record for LargeObjects<'_> {
    const TYPE: &'static str = "large_objects";
}

/// The last record of `--check`: the counts, and whether nothing was found.
#[derive(serde::Serialize)]
struct Summary<'a> {
    database: &'a str,
    rules: usize,
    excluded_tables: usize,
    rule_problems: usize,
    undecided: usize,
    unmasked_sensitive: usize,
    foreign_connections: usize,
    large_objects: u64,
    ok: bool,
}

impl Record for Summary<'_> {
    const TYPE: &'static str = "summary";
}

fn applied(config: &Config, schema: &Schema) -> Vec<Applied> {
    let names = |table: &rules::TableName| -> Vec<String> {
        schema
            .with_descendants(table)
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    let mut out: Vec<Applied> = config
        .rules
        .rules
        .iter()
        .map(|r| Applied {
            rule: r.at(),
            tables: names(&r.table),
        })
        .collect();
    out.extend(
        config
            .rules
            .exclude_data
            .iter()
            .enumerate()
            .map(|(i, t)| Applied {
                rule: format!("exclude_data[{i}] ({t})"),
                tables: names(t),
            }),
    );
    out
}

/// `public.people.email (text): suggested rule {...}` or `... suggested: keep`.
pub(crate) fn undecided_line(finding: &Finding) -> String {
    let Finding::Undecided {
        table,
        column,
        data_type,
        suggested_rule,
        ..
    } = finding
    else {
        return String::new();
    };
    format!(
        "{table}.{} ({data_type}): {}",
        rules::quote_if_needed(column),
        suggested_rule.as_ref().map_or_else(
            || "suggested: keep (add it to \"keep\")".to_owned(),
            |r| format!("suggested rule {r}")
        )
    )
}

pub(crate) fn report_check(
    config: &Config,
    findings: &[Finding],
    schema: &Schema,
    large_objects: Option<&Plan>,
) -> anyhow::Result<u8> {
    let applied = if config.masked {
        applied(config, schema)
    } else {
        Vec::new()
    };
    let rule_problems = findings
        .iter()
        .filter(|f| matches!(f, Finding::RuleProblem { .. }))
        .count();
    let connections = findings
        .iter()
        .filter(|f| matches!(f, Finding::ForeignConnection { .. }))
        .count();
    let undecided = findings
        .iter()
        .filter(|f| {
            matches!(
                f,
                Finding::Undecided { .. } | Finding::UndecidedLargeObjects { .. }
            )
        })
        .count();
    // Reported in masked checks of a database that has any.
    let objects = large_objects
        .filter(|p| p.objects > 0)
        .map(|p| LargeObjects {
            objects: p.objects,
            decision: p.decision.name(),
            by_default: p.by_default,
            excluded: p.excluded_count(),
            columns: &p.columns,
        });
    let unmasked = findings.len() - rule_problems - connections - undecided;
    // A reader gone early does not change the verdict: see stg_core::output.
    let stdout = stg_core::output::stdout();
    match config.format {
        Format::Json => {
            let mut out = jsonl::Writer::new(stdout);
            for record in &applied {
                out.record(record)?;
            }
            if let Some(objects) = &objects {
                out.record(objects)?;
            }
            for finding in findings {
                out.write(finding)?;
            }
            out.record(&Summary {
                database: &config.conn.dbname,
                rules: config.rules.rules.len(),
                excluded_tables: config.rules.exclude_data.len(),
                rule_problems,
                undecided,
                unmasked_sensitive: unmasked,
                foreign_connections: connections,
                large_objects: objects.as_ref().map_or(0, |o| o.objects),
                ok: findings.is_empty(),
            })?;
            out.flush()?;
        }
        Format::Text | Format::Nagios => {
            let mut out = std::io::BufWriter::new(stdout);
            for record in &applied {
                writeln!(
                    out,
                    "APPLIES    {}: {}",
                    record.rule,
                    record.tables.join(", ")
                )?;
            }
            if let Some(objects) = &objects {
                writeln!(
                    out,
                    "LARGEOBJ   {} large objects, \"large_objects\": {}{}: {} dumped without their bytes",
                    objects.objects,
                    objects.decision,
                    if objects.by_default { " (the default)" } else { "" },
                    objects.excluded
                )?;
                for c in objects.columns {
                    writeln!(
                        out,
                        "LARGEOBJ   {}.{} ({}) points at {} of them: {}",
                        c.table,
                        rules::quote_if_needed(&c.column),
                        c.data_type,
                        c.objects,
                        if c.masked {
                            format!(
                                "masked ({}), so they are dumped without their bytes",
                                c.decision
                            )
                        } else {
                            format!(
                                "not masked ({}), so they follow \"large_objects\"",
                                c.decision
                            )
                        }
                    )?;
                }
            }
            for finding in findings {
                match finding {
                    Finding::RuleProblem { rule, message } => writeln!(out, "PROBLEM    {rule}: {message}")?,
                    Finding::ForeignConnection { kind, name, detail } => writeln!(
                        out,
                        "CONNECTION {} {name} ({detail}): staging would reach production through it",
                        serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
                    )?,
                    Finding::Undecided { .. } => writeln!(out, "UNDECIDED  {}", undecided_line(finding))?,
                    Finding::UndecidedLargeObjects { objects, suggested } => writeln!(
                        out,
                        "UNDECIDED  large objects: the database has {objects} and the rules do not say \"large_objects\"; \
                         a dump leaves out their bytes (the default): say \"large_objects\": \"{suggested}\" or \"keep\""
                    )?,
                    Finding::UnmaskedSensitive { table, column, data_type, matched } => writeln!(
                        out,
                        "UNMASKED   {table}.{} ({data_type}): name contains \"{matched}\" and no rule masks it",
                        rules::quote_if_needed(column)
                    )?,
                }
            }
            let undecided_objects = findings
                .iter()
                .any(|f| matches!(f, Finding::UndecidedLargeObjects { .. }));
            writeln!(
                out,
                "{}: {} rules, {rule_problems} rule problems, {} undecided columns{}, {unmasked} unmasked sensitive-looking columns, {connections} connections to other servers",
                config.conn.dbname,
                config.rules.rules.len(),
                undecided - usize::from(undecided_objects),
                if undecided_objects { " and undecided large objects" } else { "" },
            )?;
            out.flush()?;
        }
    }
    Ok(if findings.is_empty() {
        exit::OK
    } else {
        exit::FOUND
    })
}
