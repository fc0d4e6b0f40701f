//! The stream's compression: zstd by default, xz for the SOP's format (`--compress`).
//!
//! Both encoders are multi-threaded and both are finished only by an explicit
//! [`Sink::finish`]: a failed dump must leave a stream that is visibly broken (no trailer,
//! and no frame end either, so `zstdcat`/`xzcat` fail too). stg-restore tells the two apart
//! by their magic bytes.
//!
//! Memory: the encoder must stay within the tools' 64 MiB bound whatever the machine's core
//! count. zstd's multi-threaded encoder buffers whole jobs per worker, and jobs grow with the
//! level's window, so its memory grows with both (measured with the zstd library on 166 MB of
//! SQL, peak RSS: level 1 with 2/4/8/16 workers 16/22/32/48 MB; level 2 with 2/8 workers
//! 29/60 MB; level 3 with 1/2 workers 39/51 MB; level 6 with 1 worker 41 MB; level 9 with 1
//! worker 85 MB; level 19 228 MB). So the workers are capped by level ([`zstd_workers`]:
//! 8 at level 1, 4 at level 2, 1 from level 3), and levels above 6 are refused, as are
//! long-distance matching and the "ultra" levels, whose windows reach 128 MiB. A stream from
//! elsewhere with a window over 8 MiB is refused by stg-restore with a message.
//! See: <https://facebook.github.io/zstd/zstd_manual.html> (windowLog, ZSTD_c_nbWorkers).

use std::fmt;
use std::io::Write;
use std::str::FromStr;

use crate::xz_sink::XzSink;

/// The zstd level used when none is given, chosen by measurement (docs/benchmarks.md): on
/// the benchmark data level 1 wrote a smaller multi-threaded stream than level 3 (1.29x the
/// SOP's `xz -6` file against 1.38x), in less time and a third of the memory, and gave the
/// fastest sync through every link down to 100 Mbit/s.
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;
/// The xz preset used by `--compress xz` alone: the fastest, as before zstd was the default.
pub const DEFAULT_XZ_PRESET: u32 = 0;
/// Highest zstd level allowed: its encoder, with one worker, fits the memory bound.
pub const MAX_ZSTD_LEVEL: i32 = 6;

/// Most zstd workers at `level` that keep the encoder within the memory bound (see the
/// module doc for the measurements).
#[must_use]
pub fn zstd_workers(level: i32, threads: u32) -> u32 {
    let cap = match level {
        ..=1 => 8,
        2 => 4,
        _ => 1,
    };
    threads.clamp(1, cap)
}

/// A compression and its level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// zstd at a level from 1 to [`MAX_ZSTD_LEVEL`].
    Zstd(i32),
    /// xz at a preset from 0 to 9.
    Xz(u32),
}

impl Default for Compression {
    fn default() -> Self {
        Compression::Zstd(DEFAULT_ZSTD_LEVEL)
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::Zstd(level) => write!(f, "zstd:{level}"),
            Compression::Xz(preset) => write!(f, "xz:{preset}"),
        }
    }
}

impl FromStr for Compression {
    type Err = String;

    /// `zstd`, `zstd:LEVEL` (1-6), `xz`, `xz:PRESET` (0-9).
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let (name, level) = match spec.split_once(':') {
            Some((name, level)) => (name, Some(level)),
            None => (spec, None),
        };
        match name {
            "zstd" => {
                let level = match level {
                    None => DEFAULT_ZSTD_LEVEL,
                    Some(l) => l
                        .parse::<i32>()
                        .map_err(|_| format!("zstd level {l:?} is not a number"))?,
                };
                if !(1..=MAX_ZSTD_LEVEL).contains(&level) {
                    return Err(format!(
                        "zstd level {level} is refused: levels 1 to {MAX_ZSTD_LEVEL} keep \
                         stg-dump within its 64 MiB memory bound (level 9 needs about 85 MiB, \
                         19 about 230 MiB); zstd:1 was the fastest sync on every link measured (docs/benchmarks.md)"
                    ));
                }
                Ok(Compression::Zstd(level))
            }
            "xz" => {
                let preset = match level {
                    None => DEFAULT_XZ_PRESET,
                    Some(l) => l
                        .parse::<u32>()
                        .ok()
                        .filter(|p| *p <= 9)
                        .ok_or_else(|| format!("xz preset {l:?} is not 0 to 9"))?,
                };
                Ok(Compression::Xz(preset))
            }
            other => Err(format!(
                "unknown compression {other:?}: use zstd[:LEVEL] (1-{MAX_ZSTD_LEVEL}) or xz[:PRESET] (0-9)"
            )),
        }
    }
}

/// Counts the bytes written through it.
pub struct Counting<W: Write> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The compressed output.
pub enum Sink<W: Write> {
    /// zstd.
    Zstd(zstd::stream::write::Encoder<'static, Counting<W>>),
    /// xz.
    Xz(XzSink<W>),
}

impl<W: Write> Sink<W> {
    /// An encoder for `compression` with `threads` workers in front of `out`.
    pub fn new(out: W, compression: Compression, threads: u32) -> anyhow::Result<Self> {
        match compression {
            Compression::Xz(preset) => Ok(Sink::Xz(XzSink::new(out, preset, threads)?)),
            Compression::Zstd(level) => {
                let fail = |e: std::io::Error| {
                    anyhow::anyhow!("could not start the zstd encoder (level {level}): {e}")
                };
                let mut encoder = zstd::stream::write::Encoder::new(
                    Counting {
                        inner: out,
                        count: 0,
                    },
                    level,
                )
                .map_err(fail)?;
                // A frame checksum: a flipped byte is caught by the decoder, not only by
                // the trailer's SHA-256.
                encoder.include_checksum(true).map_err(fail)?;
                let workers = zstd_workers(level, threads);
                if workers > 1 {
                    encoder.multithread(workers).map_err(fail)?;
                }
                Ok(Sink::Zstd(encoder))
            }
        }
    }

    /// Compresses `data`, writing whatever output is ready.
    pub fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Zstd(encoder) => encoder.write_all(data),
            Sink::Xz(sink) => sink.write_all(data),
        }
    }

    /// Ends the stream and flushes; returns the writer and the compressed size.
    pub fn finish(self) -> std::io::Result<(W, u64)> {
        match self {
            Sink::Zstd(encoder) => {
                let mut counting = encoder.finish()?;
                counting.flush()?;
                Ok((counting.inner, counting.count))
            }
            Sink::Xz(sink) => sink.finish(),
        }
    }

    /// Compressed bytes produced so far.
    pub fn bytes_out(&self) -> u64 {
        match self {
            Sink::Zstd(encoder) => encoder.get_ref().count,
            Sink::Xz(sink) => sink.bytes_out(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_are_named() {
        assert_eq!("zstd".parse(), Ok(Compression::Zstd(DEFAULT_ZSTD_LEVEL)));
        assert_eq!("zstd:6".parse(), Ok(Compression::Zstd(6)));
        assert_eq!("xz".parse(), Ok(Compression::Xz(0)));
        assert_eq!("xz:6".parse(), Ok(Compression::Xz(6)));
        assert!("zstd:22"
            .parse::<Compression>()
            .unwrap_err()
            .contains("64 MiB"));
        assert!("zstd:7".parse::<Compression>().is_err());
        assert_eq!(zstd_workers(1, 32), 8);
        assert_eq!(zstd_workers(2, 32), 4);
        assert_eq!(zstd_workers(3, 32), 1);
        assert_eq!(zstd_workers(1, 0), 1);
        assert!("zstd:0".parse::<Compression>().is_err());
        assert!("xz:10".parse::<Compression>().is_err());
        assert!("gzip"
            .parse::<Compression>()
            .unwrap_err()
            .contains("unknown"));
    }

    #[test]
    fn an_unfinished_zstd_stream_is_visibly_broken() {
        let mut sink = Sink::new(Vec::new(), Compression::Zstd(3), 1).unwrap();
        sink.write_all(&b"SELECT 1;\n".repeat(10_000)).unwrap();
        let Sink::Zstd(encoder) = sink else {
            unreachable!()
        };
        // Dropped without finish: whatever was written does not decode as complete.
        let partial = encoder.get_ref().inner.clone();
        drop(encoder);
        assert!(zstd::stream::decode_all(&partial[..]).is_err());

        let mut sink = Sink::new(Vec::new(), Compression::Zstd(3), 2).unwrap();
        sink.write_all(b"SELECT 1;\n").unwrap();
        let (bytes, n) = sink.finish().unwrap();
        assert_eq!(n as usize, bytes.len());
        assert_eq!(
            zstd::stream::decode_all(&bytes[..]).unwrap(),
            b"SELECT 1;\n"
        );
    }
}
