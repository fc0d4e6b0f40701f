//! Loading: a reader thread decodes stdin ([`crate::reader`]) and hands chunks of whole
//! SQL lines over a bounded channel; the restore writes them to
//! `psql -X -q -v ON_ERROR_STOP=1 -f -` connected to the incoming database, between a
//! `BEGIN;` written first and a `COMMIT;` written only after the trailer has been checked.
//!
//! Why an explicit `COMMIT` rather than `psql --single-transaction`: with `-1`, psql commits
//! when its input ends, and its input also ends when stg-restore is killed (SIGKILL, OOM
//! killer): a partial, unverified load would be committed. With the `COMMIT` sent by us,
//! an input that ends early leaves the transaction open, and the server rolls it back when
//! psql disconnects. Tables created and filled in one transaction still skip WAL under
//! `wal_level=minimal`. A failed load is dropped with the incoming database either way.
//!
//! psql runs in its own process group (a terminal's Ctrl-C reaches stg-restore, which
//! cleans up in order) and is killed and reaped on any failure, so no psql outlives a
//! failed restore. Its stdout (results of pg_dump's `SELECT set_config(...)`) is discarded;
//! its stderr is kept (the last 16 KiB) to report the SQL error.

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use stg_core::conn::Conn;
use stg_core::stream::Manifest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::reader::{Options, Outcome, Reader, StreamError, CHUNK};

/// How much of psql's stderr is kept.
const STDERR_TAIL: usize = 16 * 1024;

/// What the reader thread sends.
pub enum Event {
    /// The first line was read: the manifest (or `None` for an accepted plain stream).
    Opened(Result<Option<Manifest>, StreamError>),
    /// Whole SQL lines.
    Chunk(Vec<u8>),
    /// The stream ended (or failed).
    End(Result<Outcome, StreamError>),
}

/// Progress counters the reader thread updates.
#[derive(Default)]
pub struct Progress {
    /// Decoded bytes so far.
    pub bytes: AtomicU64,
    /// COPY rows so far.
    pub rows: AtomicU64,
}

/// Starts the reader thread on stdin. A plain thread, not a Tokio blocking task: when the
/// restore gives up while the thread waits on stdin, the process exits without it.
pub fn spawn_reader(options: Options, progress: Arc<Progress>) -> mpsc::Receiver<Event> {
    let (tx, rx) = mpsc::channel(8);
    std::thread::spawn(move || {
        let mut reader = match Reader::open(std::io::stdin(), options) {
            Ok(reader) => {
                let manifest = reader.manifest().cloned();
                if tx.blocking_send(Event::Opened(Ok(manifest))).is_err() {
                    return;
                }
                reader
            }
            Err(err) => {
                let _ = tx.blocking_send(Event::Opened(Err(err)));
                return;
            }
        };
        loop {
            let mut chunk = Vec::with_capacity(CHUNK + 4096);
            let more = match reader.fill(&mut chunk, CHUNK) {
                Ok(more) => more,
                Err(err) => {
                    let _ = tx.blocking_send(Event::End(Err(err)));
                    return;
                }
            };
            progress.bytes.store(reader.bytes(), Ordering::Relaxed);
            progress.rows.store(reader.rows(), Ordering::Relaxed);
            if !chunk.is_empty() && tx.blocking_send(Event::Chunk(chunk)).is_err() {
                return;
            }
            if !more {
                let _ = tx.blocking_send(Event::End(Ok(reader.finish())));
                return;
            }
        }
    });
    rx
}

/// A running psql loading the incoming database.
pub struct Psql {
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    /// `BEGIN;` has been written (by the first write, so that spawning never blocks).
    begun: bool,
}

/// Opens the load's transaction; nothing is committed without [`COMMIT`].
const BEGIN: &[u8] = b"BEGIN;\n";
/// Written after the trailer matched. The newline first ends a last line without one.
const COMMIT: &[u8] = b"\nCOMMIT;\n";

impl Psql {
    /// Starts psql on `conn` (the incoming database).
    pub fn spawn(psql: &Path, conn: &Conn) -> anyhow::Result<Psql> {
        let mut cmd = std::process::Command::new(psql);
        conn.apply_env(&mut cmd);
        cmd.env("PGAPPNAME", "stg-restore")
            // The script is stdin given as a file, so psql reads it as a script (no prompts,
            // no history) on every version.
            .args(["-X", "-w", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.process_group(0).kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("could not start {}", psql.display()))?;
        let stdin = child.stdin.take();
        let mut pipe = child.stderr.take().expect("stderr is piped");
        let stderr = tokio::spawn(async move {
            let mut tail = Vec::new();
            let mut buf = vec![0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > 2 * STDERR_TAIL {
                    tail.drain(..tail.len() - STDERR_TAIL);
                }
            }
            tail
        });
        Ok(Psql {
            child,
            stdin,
            stderr: Some(stderr),
            begun: false,
        })
    }

    /// Writes SQL; an error when psql has gone (it stopped on an SQL error, or was killed).
    pub async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        let Some(stdin) = &mut self.stdin else {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        };
        if !self.begun {
            stdin.write_all(BEGIN).await?;
            self.begun = true;
        }
        stdin.write_all(chunk).await
    }

    /// Waits for psql to exit by itself (it failed); returns the error to report.
    pub async fn failure(&mut self) -> anyhow::Error {
        self.stdin.take();
        let status = self.child.wait().await;
        let stderr = self.stderr_text().await;
        match status {
            Ok(status) => anyhow::anyhow!("psql stopped ({status}): {stderr}"),
            Err(err) => anyhow::anyhow!("psql could not be waited for: {err}"),
        }
    }

    /// Waits for psql's exit without closing its input (for a `select!`).
    pub async fn exited(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait().await
    }

    /// Commits the load (call it only once the stream is verified), closes psql's input
    /// and waits for it.
    pub async fn finish(&mut self) -> anyhow::Result<()> {
        if let Some(mut stdin) = self.stdin.take() {
            // A failed write means psql has gone; its exit status says why.
            let begin: &[u8] = if self.begun { b"" } else { BEGIN };
            let _ = async {
                stdin.write_all(begin).await?;
                stdin.write_all(COMMIT).await?;
                stdin.shutdown().await
            }
            .await;
        }
        let status = self.child.wait().await.context("while waiting for psql")?;
        if status.success() {
            return Ok(());
        }
        let stderr = self.stderr_text().await;
        anyhow::bail!("psql failed ({status}): {stderr}")
    }

    /// Kills psql before `COMMIT` is written (so nothing is committed) and reaps it.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        self.stdin.take();
    }

    /// The end of psql's stderr, trimmed to its last lines.
    async fn stderr_text(&mut self) -> String {
        let bytes = match self.stderr.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => Vec::new(),
        };
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let start = lines.len().saturating_sub(8);
        let tail = lines[start..].join(" | ");
        if tail.is_empty() {
            "(no message on its stderr)".to_owned()
        } else {
            tail
        }
    }
}
