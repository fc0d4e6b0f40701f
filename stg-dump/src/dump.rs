//! The dump itself: connect, take a snapshot, check the rules against the live schema,
//! then stream `pg_dump` on that snapshot through the rewriter ([`crate::pipeline`]) with
//! the manifest first and the trailer last, only after `pg_dump` succeeded.

use std::io::{BufReader, IsTerminal, Write};

use anyhow::Context;
use stg_core::stream::{self, Manifest, MaskedColumn, MaskingSummary, TableDecisions};
use stg_core::{exit, timestamp, Error};

use crate::check::{report_check, undecided_line};
use crate::schema::{self, Finding, Schema};
use crate::{compress, connections, large_objects, mask_init, pg_dump, pipeline, rules, Config};

/// What the manifest says was masked and excluded: every table a rule or an exclusion
/// reached, partitions and inheritance children included.
fn masking_summary(
    config: &Config,
    schema: &Schema,
    had_connections: bool,
    large_objects: Option<&large_objects::Plan>,
) -> MaskingSummary {
    let foreign_connections = had_connections.then(|| config.foreign_connections.name().to_owned());
    if !config.masked {
        return MaskingSummary {
            foreign_connections,
            ..MaskingSummary::default()
        };
    }
    let mut columns = Vec::new();
    let mut tables = Vec::new();
    for (table, cols) in &schema.tables {
        if schema.excluded(&config.rules, table) {
            continue;
        }
        // A partition (or child) with no columns of its own is decided entirely by its
        // parent: listing thousands of partitions would only repeat the parent's line.
        let parent = schema.ancestors.get(table).and_then(|a| a.first());
        let follows_parent =
            parent.is_some_and(|p| cols.iter().all(|c| schema.column(p, &c.name).is_some()));
        for c in cols {
            if let schema::Decision::Rule(rule) = schema.decision(&config.rules, table, &c.name) {
                columns.push(MaskedColumn {
                    table: table.to_string(),
                    column: c.name.clone(),
                    transform: rule.transform.name().to_owned(),
                });
            }
        }
        if follows_parent {
            continue;
        }
        tables.push(TableDecisions {
            table: table.to_string(),
            columns: cols
                .iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        schema
                            .decision(&config.rules, table, &c.name)
                            .name()
                            .to_owned(),
                    )
                })
                .collect(),
        });
    }
    MaskingSummary {
        rules_sha256: Some(config.rules.sha256.clone()),
        columns,
        excluded_tables: excluded_tables(config, schema)
            .iter()
            .map(ToString::to_string)
            .collect(),
        foreign_connections,
        undecided: Some(config.rules.undecided.name().to_owned()),
        tables,
        large_objects: large_objects.map(large_objects::Plan::summary),
    }
}

/// Every table whose data is left out: those `exclude_data` names and their descendants
/// (pg_dump before 16 does not extend `--exclude-table-data` to partitions, and no version
/// extends it to inheritance children).
fn excluded_tables(config: &Config, schema: &Schema) -> Vec<rules::TableName> {
    let mut out: Vec<rules::TableName> = config
        .rules
        .exclude_data
        .iter()
        .flat_map(|t| {
            let mut all = schema.with_descendants(t);
            if all.is_empty() {
                all.push(t.clone());
            }
            all
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

pub(crate) async fn async_main(config: &Config) -> anyhow::Result<u8> {
    let client = config.conn.connect().await?;
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .context("while opening the snapshot transaction")?;
    let info = schema::source_info(&client).await?;
    let schema = Schema::read(&client).await?;
    // Before the rule checks: a failed cast there aborts the snapshot's transaction.
    let connections = connections::find(&client).await?;
    // Large objects are decided in masked dumps only: unmasked, they pass as they are.
    let large_objects = if config.masked || config.mask_init {
        Some(large_objects::Plan::read(&client, &schema, &config.rules, config.check).await?)
    } else {
        None
    };
    if config.mask_init {
        let objects = large_objects.as_ref().map_or(0, |p| p.objects);
        let out = mask_init::rules_file(&schema, &config.conn.dbname, objects);
        let mut stdout = stg_core::output::stdout();
        stdout.write_all(out.as_bytes())?;
        stdout.flush()?;
        return Ok(exit::OK);
    }
    let mut problems = if config.masked {
        schema::check_rules(&client, &schema, &config.rules).await
    } else {
        Vec::new()
    };
    let refuse_undecided = config.masked && config.rules.undecided == rules::Undecided::Refuse;
    if refuse_undecided {
        problems.extend(schema::undecided(&schema, &config.rules));
    }
    if config.check {
        if !refuse_undecided {
            problems.extend(schema::unmasked_sensitive(&schema, &config.rules));
        }
        problems.extend(connections.iter().map(|c| Finding::ForeignConnection {
            kind: c.kind,
            name: c.name.clone(),
            detail: c.detail.clone(),
        }));
        if let Some(plan) = large_objects
            .as_ref()
            .filter(|p| p.by_default && p.objects > 0)
        {
            problems.push(Finding::UndecidedLargeObjects {
                objects: plan.objects,
                suggested: rules::LargeObjects::Exclude.name(),
            });
        }
        return report_check(config, &problems, &schema, large_objects.as_ref());
    }
    let refused: Vec<&connections::Connection> = connections
        .iter()
        .filter(|c| match config.foreign_connections {
            connections::Mode::Refuse => true,
            connections::Mode::Strip => !c.kind.strippable(),
            connections::Mode::Keep => false,
        })
        .collect();
    if !refused.is_empty() {
        let list: Vec<String> = refused.iter().map(|c| format!("  {c}")).collect();
        return Err(Error::usage(format!(
            "database {} holds connections that would let staging reach production \
             (nothing was dumped):\n{}\n{}",
            config.conn.dbname,
            list.join("\n"),
            if config.foreign_connections == connections::Mode::Refuse {
                "Dump with --foreign-connections strip (server and user-mapping options \
                 removed, subscriptions left out) or keep (as they are); see docs/stg-dump.md"
            } else {
                "Connection strings inside functions and views cannot be stripped: change \
                 them in production, or dump with --foreign-connections keep"
            }
        ))
        .into());
    }
    if config.foreign_connections == connections::Mode::Keep && !connections.is_empty() {
        stg_core::format::warn(format!(
            "--foreign-connections keep: {} object(s) with connections \
             go into the stream as they are: {}",
            connections.len(),
            connections
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    if !problems.is_empty() {
        let mut list: Vec<String> = problems
            .iter()
            .filter_map(|p| match p {
                Finding::RuleProblem { rule, message } => Some(format!("  {rule}: {message}")),
                _ => None,
            })
            .collect();
        let undecided: Vec<String> = problems
            .iter()
            .filter_map(|p| match p {
                Finding::Undecided { .. } => Some(format!("  {}", undecided_line(p))),
                _ => None,
            })
            .collect();
        if !undecided.is_empty() {
            list.push(format!(
                "{} undecided column(s): every column of a dumped table needs a rule, a \"keep\" \
                 entry or exclude_data (or \"undecided\": \"keep\" in the rules file; see docs/masking.md):",
                undecided.len()
            ));
            list.extend(undecided);
        }
        return Err(Error::usage(format!(
            "the masking rules do not fit database {} (nothing was dumped):\n{}",
            config.conn.dbname,
            list.join("\n")
        ))
        .into());
    }
    let pg_dump = pg_dump::locate(config.pg_dump.as_deref())?;
    pg_dump::check_compatible(&pg_dump, info.server_major, &info.server_version)?;
    if let Some(plan) = large_objects
        .as_ref()
        .filter(|p| p.by_default && p.objects > 0)
    {
        stg_core::format::warn(format!(
            "the database has {} large objects and the rules do not say \"large_objects\": \
             they are dumped without their bytes (created empty), the default; say \
             \"exclude\" or \"keep\" in the rules file (docs/masking.md)",
            plan.objects
        ));
    }

    let snapshot: String = client
        .query_one("SELECT pg_export_snapshot()", &[])
        .await
        .context("while exporting the snapshot for pg_dump")?
        .get(0);
    let manifest = Manifest {
        format: stream::FORMAT,
        database: config.conn.dbname.clone(),
        source_host: if config.conn.is_socket() {
            hostname()
        } else {
            config.conn.host.clone()
        },
        dumped_on: hostname(),
        dumped_at: timestamp::format(timestamp::now()),
        server_version: info.server_version.clone(),
        pg_dump_version: pg_dump.version.clone(),
        encoding: info.encoding.clone(),
        locale: info.collate.clone(),
        lc_ctype: info.ctype.clone(),
        locale_provider: info.provider.clone(),
        icu_locale: info.icu_locale.clone(),
        owner: info.owner.clone(),
        roles: info.roles.clone(),
        masking: masking_summary(
            config,
            &schema,
            !connections.is_empty(),
            large_objects.as_ref(),
        ),
        tool: format!("stg-dump {}", env!("CARGO_PKG_VERSION")),
    };
    let exclude: Vec<String> = excluded_tables(config, &schema)
        .iter()
        .map(|t| pg_dump::exact_pattern(&t.schema, &t.table))
        .collect();

    // The blocking part: pg_dump's output through the rewriter and the encoder. Blocking
    // here is fine: this current-thread runtime has nothing else to run meanwhile, and the
    // server keeps the snapshot transaction open without our help.
    let result = dump_stream(
        config,
        &pg_dump,
        &snapshot,
        &exclude,
        &manifest,
        &schema,
        large_objects.as_ref(),
    );
    // The snapshot only has to live until pg_dump has imported it; close it either way.
    let _ = client.batch_execute("COMMIT").await;
    result.map(|()| exit::OK)
}

/// Kills `pg_dump` if the dump fails before it has been waited for.
struct ChildGuard(Option<std::process::Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn output_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        // Not the quiet broken pipe of a report piped into `head`: an incomplete dump is a
        // failure, and the stream deliberately has no trailer.
        Error::runtime("stdout was closed before the dump was complete (did the reader, e.g. ssh, die?); the stream has no trailer and stg-restore will refuse it").into()
    } else {
        anyhow::Error::from(e).context("while writing the stream to stdout")
    }
}

fn dump_stream(
    config: &Config,
    pg_dump: &pg_dump::PgDump,
    snapshot: &str,
    exclude: &[String],
    manifest: &Manifest,
    schema: &Schema,
    large_objects: Option<&large_objects::Plan>,
) -> anyhow::Result<()> {
    let mut child = ChildGuard(Some(pg_dump::spawn(
        pg_dump,
        &config.conn,
        snapshot,
        exclude,
        config.foreign_connections == connections::Mode::Strip,
        config.masked,
    )?));
    let stdout = child
        .0
        .as_mut()
        .and_then(|c| c.stdout.take())
        .expect("piped stdout");
    let mut sink =
        compress::Sink::new(std::io::stdout().lock(), config.compression, config.threads)?;
    let mut progress = pipeline::Progress::new(std::io::stderr().is_terminal());
    let masking = pipeline::Masking {
        schema,
        rules: &config.rules,
        keyed: config.keyed.as_ref(),
        strip_connections: config.foreign_connections == connections::Mode::Strip,
        large_objects,
    };
    let signer = config
        .signing_key
        .as_deref()
        .map(|key| crate::signing::Signer::open(key, config.signature_part_size))
        .transpose()?;
    let streamed = pipeline::stream(
        BufReader::with_capacity(1 << 20, stdout),
        &stream::manifest_line(manifest),
        &masking,
        &mut sink,
        &mut progress,
        signer,
    );
    progress.done();
    let trailer = match streamed {
        Ok(trailer) => trailer,
        Err(e) => {
            return Err(match e.downcast::<std::io::Error>() {
                Ok(io) => output_error(io),
                Err(other) => other,
            })
        }
    };
    let status = child
        .0
        .take()
        .expect("child")
        .wait()
        .context("while waiting for pg_dump")?;
    if !status.success() {
        return Err(Error::runtime(format!(
            "pg_dump failed ({status}); see its message above. The stream has no trailer and stg-restore will refuse it"
        ))
        .into());
    }
    pipeline::finish(sink, &trailer).map_err(output_error)?;
    Ok(())
}
