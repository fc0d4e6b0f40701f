//! The compressed output: a multi-threaded `.xz` encoder writing to stdout.
//!
//! Written on `liblzma`'s `Stream` rather than its `XzEncoder` writer because that writer
//! finishes the `.xz` stream when dropped. A failed dump must leave a stream that is
//! *visibly* broken — no trailer, and no `.xz` end either, so `xzcat` fails too — so the
//! stream is finished only by an explicit [`XzSink::finish`].

use std::io::Write;

use liblzma::stream::{Action, Check, MtStreamBuilder, Status, Stream};

/// Output buffer size: one write to the pipe per this many compressed bytes at most.
const OUT_CHUNK: usize = 256 * 1024;

/// An `.xz` encoder in front of a writer.
pub struct XzSink<W: Write> {
    stream: Stream,
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> XzSink<W> {
    /// A multi-threaded encoder with `threads` workers at `preset` (0-9).
    pub fn new(out: W, preset: u32, threads: u32) -> anyhow::Result<Self> {
        let stream = MtStreamBuilder::new()
            .threads(threads.max(1))
            .preset(preset)
            .check(Check::Crc64)
            .encoder()
            .map_err(|e| {
                anyhow::anyhow!(
                    "could not start the xz encoder (preset {preset}, {threads} threads): {e}"
                )
            })?;
        Ok(Self {
            stream,
            out,
            buf: Vec::with_capacity(OUT_CHUNK),
        })
    }

    /// Compresses `data`, writing whatever output is ready.
    pub fn write_all(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let before = self.stream.total_in();
            self.stream
                .process_vec(data, &mut self.buf, Action::Run)
                .map_err(std::io::Error::other)?;
            let consumed = usize::try_from(self.stream.total_in() - before).expect("fits in usize");
            data = &data[consumed..];
            if self.buf.len() == self.buf.capacity() || consumed == 0 {
                self.out.write_all(&self.buf)?;
                self.buf.clear();
            }
        }
        Ok(())
    }

    /// Ends the `.xz` stream and flushes; returns the writer and the compressed size.
    pub fn finish(mut self) -> std::io::Result<(W, u64)> {
        loop {
            let status = self
                .stream
                .process_vec(&[], &mut self.buf, Action::Finish)
                .map_err(std::io::Error::other)?;
            self.out.write_all(&self.buf)?;
            self.buf.clear();
            if status == Status::StreamEnd {
                break;
            }
        }
        self.out.flush()?;
        Ok((self.out, self.stream.total_out()))
    }

    /// Compressed bytes produced so far.
    pub fn bytes_out(&self) -> u64 {
        self.stream.total_out()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn output_decodes_and_unfinished_output_does_not() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("row {i}\n").into_bytes())
            .collect();
        let mut sink = XzSink::new(Vec::new(), 1, 2).unwrap();
        sink.write_all(&data).unwrap();
        let (out, total) = sink.finish().unwrap();
        assert_eq!(total, out.len() as u64);
        let mut decoded = Vec::new();
        liblzma::read::XzDecoder::new(&out[..])
            .read_to_end(&mut decoded)
            .unwrap();
        assert_eq!(decoded, data);

        let mut sink = XzSink::new(Vec::new(), 1, 2).unwrap();
        sink.write_all(&data).unwrap();
        let partial = std::mem::take(&mut sink.out);
        drop(sink);
        let mut decoded = Vec::new();
        assert!(liblzma::read::XzDecoder::new(&partial[..])
            .read_to_end(&mut decoded)
            .is_err());
    }
}
