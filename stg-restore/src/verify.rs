//! `stg-restore verify`: reads a stream on stdin and checks everything a restore checks
//! (zstd or xz integrity, manifest, trailer checksum and row counts) without touching any database
//! or needing a staging host. Exit 0 when the stream is good, 1 when it is not.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;
use stg_core::format::{Format, Record};

use crate::reader::{Options, Reader, CHUNK};
use crate::report::{write_json, Source, Verification};
use crate::VerifyConfig;

/// The summary of `verify`.
#[derive(Debug, Serialize)]
pub struct VerifySummary {
    /// Always `verify`.
    pub command: &'static str,
    /// The database named in the manifest.
    pub database: Option<String>,
    /// Where the data came from.
    pub source: Option<Source>,
    /// The stream's compression (`zstd` or `xz`).
    pub format: Option<crate::decode::Codec>,
    /// Decoded bytes before the trailer.
    pub bytes: u64,
    /// Compressed bytes read.
    pub compressed_bytes: u64,
    /// Rows per table.
    pub rows: BTreeMap<String, u64>,
    /// What the stream's masking covered, from its manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masking: Option<MaskingBrief>,
    /// Who signed the stream, when it is signed (checked against the allowed signers when
    /// a trust file is in effect).
    pub signed_by: Option<String>,
    /// True when every part's signature was checked.
    pub signature_checked: bool,
    /// The result.
    pub verification: Verification,
}

impl Record for VerifySummary {
    const TYPE: &'static str = "summary";
}

/// What a stream's masking covered, in brief.
#[derive(Debug, Serialize)]
pub struct MaskingBrief {
    /// False for an unmasked dump.
    pub masked: bool,
    /// `refuse` (every column was decided) or `keep` (undecided columns were copied);
    /// `None` for streams that do not record it.
    pub undecided: Option<String>,
    /// Columns per decision (`keep`, `pseudonym`, `undecided`...), over every dumped table.
    pub decisions: BTreeMap<String, usize>,
    /// Tables whose data was left out.
    pub excluded_tables: usize,
}

impl MaskingBrief {
    fn of(m: &stg_core::stream::MaskingSummary) -> Self {
        MaskingBrief {
            masked: m.rules_sha256.is_some(),
            undecided: m.undecided.clone(),
            decisions: m.decision_counts(),
            excluded_tables: m.excluded_tables.len(),
        }
    }

    /// `masked (undecided: refuse): 40 keep, 3 pseudonym; 1 table excluded`.
    fn line(&self) -> String {
        if !self.masked {
            return "unmasked".to_owned();
        }
        let counts: Vec<String> = self
            .decisions
            .iter()
            .map(|(d, n)| format!("{n} {d}"))
            .collect();
        format!(
            "masked (undecided: {}){}{}; {} table(s) excluded",
            self.undecided.as_deref().unwrap_or("not recorded"),
            if counts.is_empty() { "" } else { ": " },
            counts.join(", "),
            self.excluded_tables
        )
    }
}

/// Runs `verify` on stdin.
pub fn run(config: &VerifyConfig, format: Format) -> anyhow::Result<u8> {
    let mut summary = VerifySummary {
        command: "verify",
        database: None,
        source: None,
        format: None,
        bytes: 0,
        compressed_bytes: 0,
        rows: BTreeMap::new(),
        masking: None,
        signed_by: None,
        signature_checked: false,
        verification: Verification::default(),
    };
    let stdin = std::io::stdin();
    let options = Options {
        max_line: config.max_line,
        allowed: config.allowed.clone(),
        trust: config.trust.clone(),
        ..Options::default()
    };
    match Reader::open(stdin.lock(), options) {
        Err(err) => summary.verification.problems.push(err.0),
        Ok(mut reader) => {
            if let Some(m) = reader.manifest() {
                summary.database = Some(m.database.clone());
                summary.masking = Some(MaskingBrief::of(&m.masking));
                summary.source = Some(Source {
                    database: m.database.clone(),
                    host: m.source_host.clone(),
                    dumped_at: m.dumped_at.clone(),
                    tool: m.tool.clone(),
                });
            }
            let mut sink = Vec::with_capacity(CHUNK * 2);
            let ended = loop {
                sink.clear();
                match reader.fill(&mut sink, CHUNK) {
                    Ok(true) => {}
                    Ok(false) => break Ok(()),
                    Err(err) => break Err(err),
                }
            };
            summary.bytes = reader.bytes();
            if let Err(err) = ended {
                summary.verification.problems.push(err.0);
            } else {
                let outcome = reader.finish();
                summary.compressed_bytes = outcome.compressed_bytes;
                summary.format = Some(outcome.format);
                summary.rows.clone_from(&outcome.counted.tables);
                summary.signed_by.clone_from(&outcome.signed_by);
                summary.signature_checked = outcome.signature_checked;
                summary.verification = Verification {
                    verified: outcome.verified(),
                    sha256: Some(outcome.counted.sha256.clone()),
                    trailer_sha256: outcome.stated.as_ref().map(|t| t.sha256.clone()),
                    problems: outcome.mismatches,
                };
            }
        }
    }
    if format == Format::Json {
        write_json(&summary)?;
    } else {
        // A reader gone early does not change the verdict: see stg_core::output.
        let mut out = stg_core::output::stdout();
        let v = &summary.verification;
        writeln!(
            out,
            "{}: {}",
            if v.verified {
                "verified"
            } else {
                "NOT verified"
            },
            summary.database.as_deref().unwrap_or("(no manifest)")
        )?;
        if let Some(sha) = &v.sha256 {
            writeln!(out, "  sha256:  {sha}")?;
        }
        writeln!(
            out,
            "  data:    {} bytes, {} tables, {} rows",
            summary.bytes,
            summary.rows.len(),
            summary.rows.values().sum::<u64>()
        )?;
        if let Some(masking) = &summary.masking {
            writeln!(out, "  masking: {}", masking.line())?;
        }
        if let Some(signer) = &summary.signed_by {
            writeln!(out, "  signed:  {}", stg_core::terminal::escape(signer))?;
        }
        for problem in &v.problems {
            writeln!(out, "  problem: {problem}")?;
        }
    }
    Ok(if summary.verification.verified {
        stg_core::exit::OK
    } else {
        stg_core::exit::FOUND
    })
}
