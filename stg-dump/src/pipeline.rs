//! The stream itself: `pg_dump`'s plain SQL in, masked and counted, manifest first and
//! trailer last, into the encoder (zstd or xz, [`crate::compress`]).
//!
//! This is the hot path: one pass over the bytes, line by line, no line held longer than
//! it takes to rewrite it, so memory is bounded by the largest row whatever the database
//! size. Rows of unmasked tables are copied as they are.

use std::io::{BufRead, Write};
use std::time::Instant;

use stg_core::copy_text;
use stg_core::sql_lexer::SqlLexer;
use stg_core::stream::{self, Tally, Trailer};

use crate::compress::Sink;
use crate::connections;
use crate::masking::{Pseudonymizer, Scratch, TablePlan};
use crate::rules::{Rules, TableName};
use crate::schema::{self, Schema};

/// Compressed bytes are handed to the encoder in batches of this size.
const BATCH: usize = 1 << 20;

/// What the masking needs while streaming.
pub struct Masking<'a> {
    /// The live schema.
    pub schema: &'a Schema,
    /// The rules.
    pub rules: &'a Rules,
    /// The keyed hash, when rules need one.
    pub keyed: Option<&'a Pseudonymizer>,
    /// `--foreign-connections strip`: cut the options of `CREATE SERVER` and `CREATE USER
    /// MAPPING` ([`crate::connections::strip_options`]).
    pub strip_connections: bool,
}

/// Progress on stderr, about once a second, only when asked (stderr is a terminal).
pub struct Progress {
    enabled: bool,
    started: Instant,
    last: Instant,
}

impl Progress {
    /// Progress reporting, on or off.
    #[must_use]
    pub fn new(enabled: bool) -> Self {
        let now = Instant::now();
        Self {
            enabled,
            started: now,
            last: now,
        }
    }

    fn tick(&mut self, bytes: u64, compressed: u64, rows: u64) {
        if !self.enabled || self.last.elapsed().as_millis() < 1000 {
            return;
        }
        self.last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        eprint!(
            "\rstg-dump: {:.1} MiB read, {:.1} MiB compressed, {rows} rows, {:.1} MiB/s   ",
            bytes as f64 / 1_048_576.0,
            compressed as f64 / 1_048_576.0,
            bytes as f64 / 1_048_576.0 / secs
        );
    }

    /// Ends the progress line.
    pub fn done(&self) {
        if self.enabled {
            eprintln!();
        }
    }
}

/// Where the SQL is: between statements, or inside a COPY block (masked or not).
enum State {
    Sql,
    Copy(Option<TablePlan>),
}

/// Counts one output line and queues it for the encoder.
fn emit<W: Write>(
    bytes: &[u8],
    tally: &mut Tally,
    batch: &mut Vec<u8>,
    sink: &mut Sink<W>,
) -> std::io::Result<()> {
    tally.line(bytes);
    batch.extend_from_slice(bytes);
    if batch.len() >= BATCH {
        sink.write_all(batch)?;
        batch.clear();
    }
    Ok(())
}

/// Streams `input` (pg_dump's stdout) into `sink` with the manifest line first; returns the
/// trailer for everything written. The caller writes the trailer only after `pg_dump` has
/// exited successfully.
pub fn stream<R: BufRead, W: Write>(
    mut input: R,
    manifest_line: &str,
    masking: &Masking<'_>,
    sink: &mut Sink<W>,
    progress: &mut Progress,
) -> anyhow::Result<Trailer> {
    let mut tally = Tally::new();
    let mut batch: Vec<u8> = Vec::with_capacity(BATCH + 64 * 1024);
    let mut line: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut row: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut scratch = Scratch::default();
    let mut state = State::Sql;
    let mut lexer = SqlLexer::new();
    let mut rows: u64 = 0;
    let mut block_row: u64 = 0;
    let mut connection: Vec<u8> = Vec::new();

    emit(manifest_line.as_bytes(), &mut tally, &mut batch, sink)?;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        match &mut state {
            State::Copy(plan) => {
                if copy_text::is_end_of_copy(&line) {
                    state = State::Sql;
                    emit(&line, &mut tally, &mut batch, sink)?;
                } else {
                    rows += 1;
                    block_row += 1;
                    if let Some(plan) = plan {
                        row.clear();
                        plan.rewrite_row(
                            copy_text::strip_newline(&line),
                            block_row,
                            masking.keyed,
                            &mut scratch,
                            &mut row,
                        )
                        .map_err(|e| anyhow::anyhow!(e))?;
                        emit(&row, &mut tally, &mut batch, sink)?;
                    } else {
                        emit(&line, &mut tally, &mut batch, sink)?;
                    }
                    if rows % 4096 == 0 {
                        progress.tick(tally.bytes(), sink.bytes_out(), rows);
                    }
                }
            }
            State::Sql
                if !connection.is_empty()
                    || (masking.strip_connections
                        && lexer.at_top()
                        && connections::starts_strippable(&line)) =>
            {
                // A whole CREATE SERVER / USER MAPPING statement is held (a few lines),
                // then written without its options.
                lexer.line(&line);
                connection.extend_from_slice(&line);
                if lexer.at_top() && line.trim_ascii_end().ends_with(b";") {
                    let stripped = connections::strip_options(&connection);
                    connection.clear();
                    emit(&stripped, &mut tally, &mut batch, sink)?;
                }
            }
            State::Sql => {
                // A COPY-looking line inside a function body or a literal is SQL: taking it
                // for a header would pass the next real COPY block through unmasked.
                // See: tests/regression.rs.
                let at_top = lexer.at_top();
                lexer.line(&line);
                if at_top && line.starts_with(b"COPY ") {
                    if let Some(header) = copy_text::parse_copy_header(&line) {
                        // Fail closed: the data of excluded tables (and their partitions
                        // and children) was left out of pg_dump's run; rows of one here
                        // mean the exclusion did not work, and they must not leave.
                        let table = TableName {
                            schema: header.schema.clone(),
                            table: header.table.clone(),
                        };
                        anyhow::ensure!(
                            !masking.schema.excluded(masking.rules, &table),
                            "pg_dump wrote rows of {table}, whose data the rules exclude \
                             (exclude_data names it or a parent of it); refusing the dump"
                        );
                        block_row = 0;
                        state =
                            State::Copy(schema::plan_for(masking.schema, masking.rules, &header));
                    }
                }
                emit(&line, &mut tally, &mut batch, sink)?;
            }
        }
    }
    anyhow::ensure!(
        matches!(state, State::Sql),
        "pg_dump's output ended inside a COPY block: the dump is incomplete"
    );
    // Had the lexer lost track (it never should on pg_dump's SQL), COPY headers after that
    // point would have gone unseen and unmasked: refuse rather than write a trailer.
    anyhow::ensure!(
        lexer.at_top(),
        "pg_dump's output ended inside a string literal, quoted name or comment: stg-dump \
         could not follow its SQL and refuses the dump rather than risk an unmasked table"
    );
    if !line.is_empty() && !line.ends_with(b"\n") {
        // Keep the trailer on a line of its own.
        emit(b"\n", &mut tally, &mut batch, sink)?;
    }
    sink.write_all(&batch)?;
    progress.tick(tally.bytes(), sink.bytes_out(), rows);
    Ok(tally.finish())
}

/// Writes the trailer line and ends the `.xz` stream.
pub fn finish<W: Write>(mut sink: Sink<W>, trailer: &Trailer) -> std::io::Result<u64> {
    sink.write_all(stream::trailer_line(trailer).as_bytes())?;
    Ok(sink.finish()?.1)
}
