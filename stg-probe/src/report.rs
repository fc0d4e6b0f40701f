//! Output of a run: JSON Lines (`check` records then a `summary`), a text table, or one
//! Nagios status line with perfdata; and the exit status (0 OK, 1 inconclusive or a staging
//! service down, 2 breach), following Nagios.
//!
//! Not for running checks: see [`crate::execute`].

use std::io::Write;
use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use stg_core::format::{Format, Record, Table};

use crate::execute::{AddressResult, CheckResult, Run, Status};

/// One `check` record.
#[derive(Serialize)]
struct CheckRecord<'a> {
    check: &'static str,
    host: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service: Option<&'a str>,
    source: &'a str,
    outcome: crate::execute::Outcome,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "<[IpAddr]>::is_empty")]
    expect: &'a [IpAddr],
    addresses: &'a [AddressResult],
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

impl Record for CheckRecord<'_> {
    const TYPE: &'static str = "check";
}

/// The closing `summary` record.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Number of checks.
    pub checks: usize,
    /// Checks that passed.
    pub ok: usize,
    /// Checks that proved nothing.
    pub inconclusive: usize,
    /// Staging endpoints that did not answer.
    pub down: usize,
    /// Breaches.
    pub breach: usize,
    /// `OK`, `WARNING` or `CRITICAL`, as Nagios says it.
    pub status: &'static str,
    /// The exit status.
    pub exit_code: u8,
    /// True when the overall deadline cut the run short.
    pub deadline_reached: bool,
    /// Wall time of the run.
    pub elapsed_ms: u64,
}

impl Record for Summary {
    const TYPE: &'static str = "summary";
}

/// Counts the results into a summary.
#[must_use]
pub fn summarize(run: &Run, elapsed: Duration) -> Summary {
    let count = |s: Status| run.results.iter().filter(|r| r.status == s).count();
    let (ok, inconclusive, down, breach) = (
        count(Status::Ok),
        count(Status::Inconclusive),
        count(Status::Down),
        count(Status::Breach),
    );
    let (status, exit_code) = if breach > 0 {
        ("CRITICAL", 2)
    } else if inconclusive + down > 0 {
        ("WARNING", 1)
    } else {
        ("OK", 0)
    };
    Summary {
        checks: run.results.len(),
        ok,
        inconclusive,
        down,
        breach,
        status,
        exit_code,
        deadline_reached: run.deadline_reached,
        elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
    }
}

fn record(result: &CheckResult) -> CheckRecord<'_> {
    let check = &result.check;
    CheckRecord {
        check: check.kind.as_str(),
        host: &check.host,
        port: check.port,
        service: check.service.as_deref(),
        source: &check.source,
        outcome: result.outcome,
        status: result.status,
        reason: check.allowed.as_deref(),
        expect: &check.expect,
        addresses: &result.addresses,
        error: result.error.as_deref(),
    }
}

fn name_of<T: Serialize>(value: T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn endpoint(result: &CheckResult) -> String {
    match result.check.port {
        Some(port) if result.check.host.contains(':') => format!("[{}]:{port}", result.check.host),
        Some(port) => format!("{}:{port}", result.check.host),
        None => result.check.host.clone(),
    }
}

/// The DETAIL column. The allow-list reason is the inventory's free text and an error may
/// quote what a resolver or a peer said: escaped for the terminal (stg_core::terminal).
fn detail(result: &CheckResult) -> String {
    if let Some(reason) = &result.check.allowed {
        return format!("allowed: {}", stg_core::terminal::escape(reason));
    }
    if let Some(error) = &result.error {
        return stg_core::terminal::escape(error).into_owned();
    }
    result
        .addresses
        .iter()
        .map(|a| format!("{} {}", a.address, name_of(a.outcome)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes the report in `format`.
pub fn write(out: impl Write, format: Format, run: &Run, summary: &Summary) -> anyhow::Result<()> {
    match format {
        Format::Json => write_json(out, run, summary),
        Format::Text => write_text(out, run, summary),
        Format::Nagios => write_nagios(out, run, summary),
    }
}

fn write_json(out: impl Write, run: &Run, summary: &Summary) -> anyhow::Result<()> {
    let mut writer = stg_core::jsonl::Writer::new(out);
    for result in &run.results {
        writer.record(&record(result))?;
    }
    writer.record(summary)?;
    writer.flush()
}

fn write_text(mut out: impl Write, run: &Run, summary: &Summary) -> anyhow::Result<()> {
    let mut table = Table::new(["STATUS", "CHECK", "ENDPOINT", "OUTCOME", "DETAIL"]);
    for r in &run.results {
        table.row([
            name_of(r.status).to_uppercase(),
            r.check.kind.as_str().to_owned(),
            endpoint(r),
            name_of(r.outcome),
            detail(r),
        ]);
    }
    table.write(&mut out)?;
    writeln!(
        out,
        "\n{}: {}, {} ok, {} breach, {} inconclusive, {} down{} ({} ms)",
        summary.status,
        checks_phrase(summary.checks),
        summary.ok,
        summary.breach,
        summary.inconclusive,
        summary.down,
        if summary.deadline_reached {
            ", deadline reached"
        } else {
            ""
        },
        summary.elapsed_ms
    )?;
    out.flush()?;
    Ok(())
}

fn checks_phrase(n: usize) -> String {
    if n == 1 {
        "1 check".to_owned()
    } else {
        format!("{n} checks")
    }
}

/// `STG-PROBE CRITICAL - 1 breach (blocked db.example.org:5432 open), ... | perfdata`.
fn write_nagios(mut out: impl Write, run: &Run, summary: &Summary) -> anyhow::Result<()> {
    let mut problems: Vec<String> = Vec::new();
    for status in [Status::Breach, Status::Down, Status::Inconclusive] {
        for r in run.results.iter().filter(|r| r.status == status) {
            problems.push(format!(
                "{} {} {}",
                r.check.kind.as_str(),
                endpoint(r),
                name_of(r.outcome)
            ));
        }
    }
    let shown = 5;
    let mut text = format!(
        "STG-PROBE {} - {}: {} ok, {} breach, {} inconclusive, {} down",
        summary.status,
        checks_phrase(summary.checks),
        summary.ok,
        summary.breach,
        summary.inconclusive,
        summary.down
    );
    if summary.deadline_reached {
        text.push_str(", deadline reached");
    }
    if !problems.is_empty() {
        text.push_str("; ");
        text.push_str(
            &problems
                .iter()
                .take(shown)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        );
        if problems.len() > shown {
            text.push_str(" and ");
            text.push_str(&(problems.len() - shown).to_string());
            text.push_str(" more");
        }
    }
    // Nagios perfdata: label=value[UOM];warn;crit;min;max. The pipe separates it from the text,
    // so the text must not contain one (host names and outcomes never do).
    writeln!(
        out,
        "{text} | checks={};;;0 ok={};;;0 breach={};;1;0 inconclusive={};1;;0 down={};1;;0 time={:.3}s;;;0",
        summary.checks,
        summary.ok,
        summary.breach,
        summary.inconclusive,
        summary.down,
        summary.elapsed_ms as f64 / 1000.0
    )?;
    out.flush()?;
    Ok(())
}
