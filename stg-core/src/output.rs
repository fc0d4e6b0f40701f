//! Report output on stdout, for readers that go away early (`stg-probe | head -1`).
//!
//! Every tool writes its report through [`stdout`]. When the reader has closed the pipe, the
//! first write that meets `EPIPE` marks stdout closed ([`is_closed`]); that write and every
//! later one are discarded as if written, with no error. The tool so runs its check to the
//! end and returns its verdict, and [`crate::exit::run_main`] exits with that verdict:
//! quiet on a closed pipe, and a breach, drift or expired change still exits non-zero
//! (under `set -o pipefail`, and in `${PIPESTATUS[0]}`).
//!
//! Only a broken pipe is absorbed: a full disk or an I/O error on stdout is still an error.
//! Not for a stream whose reader must see it whole (stg-dump's dump): there a closed stdout
//! must stop the tool and fail it, so that stream is written to [`std::io::stdout`] directly.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write to stdout met a closed pipe.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// True once a report write found stdout closed (its reader went away).
#[must_use]
pub fn is_closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}

/// A writer to stdout that discards what it is given once the reader has gone away (see the
/// module documentation). Wrap it in a `BufWriter` for many small writes.
#[derive(Debug)]
pub struct Stdout {
    inner: Closable<io::Stdout>,
}

/// The process's stdout as a report writer.
#[must_use]
pub fn stdout() -> Stdout {
    Stdout {
        inner: Closable::new(io::stdout(), &CLOSED),
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Any writer made to discard after its first broken pipe, with the flag that records it.
/// [`Stdout`] is this around the process's stdout; the type is public so the behaviour can
/// be tested on any writer.
#[derive(Debug)]
pub struct Closable<W> {
    inner: W,
    closed: &'static AtomicBool,
}

impl<W: Write> Closable<W> {
    /// `inner`, recording a broken pipe in `closed` (and discarding once it is set).
    pub fn new(inner: W, closed: &'static AtomicBool) -> Self {
        Self { inner, closed }
    }

    /// The writer, back.
    pub fn into_inner(self) -> W {
        self.inner
    }

    fn absorb<T>(&self, result: io::Result<T>, done: T) -> io::Result<T> {
        match result {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed.store(true, Ordering::Relaxed);
                Ok(done)
            }
            other => other,
        }
    }
}

impl<W: Write> Write for Closable<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed.load(Ordering::Relaxed) {
            return Ok(buf.len());
        }
        let result = self.inner.write(buf);
        self.absorb(result, buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.closed.load(Ordering::Relaxed) {
            return Ok(());
        }
        let result = self.inner.flush();
        self.absorb(result, ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts `room` bytes, then fails every write with `kind`.
    struct Pipe {
        room: usize,
        got: Vec<u8>,
        kind: io::ErrorKind,
        calls_after: usize,
    }

    impl Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                self.calls_after += 1;
                return Err(self.kind.into());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn pipe(room: usize, kind: io::ErrorKind) -> Pipe {
        Pipe {
            room,
            got: Vec::new(),
            kind,
            calls_after: 0,
        }
    }

    #[test]
    fn a_closed_pipe_is_recorded_and_the_rest_discarded() {
        static FLAG: AtomicBool = AtomicBool::new(false);
        let mut out = Closable::new(pipe(4, io::ErrorKind::BrokenPipe), &FLAG);
        out.write_all(b"abcdefgh").unwrap();
        assert!(FLAG.load(Ordering::Relaxed));
        writeln!(out, "more").unwrap();
        out.flush().unwrap();
        let inner = out.into_inner();
        assert_eq!(inner.got, b"abcd");
        // Once closed, nothing more is tried.
        assert_eq!(inner.calls_after, 1);
    }

    #[test]
    fn other_errors_are_errors() {
        static FLAG: AtomicBool = AtomicBool::new(false);
        let mut out = Closable::new(pipe(0, io::ErrorKind::StorageFull), &FLAG);
        let err = out.write_all(b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert!(!FLAG.load(Ordering::Relaxed));
    }

    #[test]
    fn an_open_pipe_gets_everything() {
        static FLAG: AtomicBool = AtomicBool::new(false);
        let mut out = Closable::new(Vec::new(), &FLAG);
        writeln!(out, "all of it").unwrap();
        assert_eq!(out.into_inner(), b"all of it\n");
        assert!(!FLAG.load(Ordering::Relaxed));
    }
}
