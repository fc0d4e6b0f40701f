//! The stream's compression, recognised by its magic bytes: zstd (stg-dump's default), xz
//! (`stg-dump --compress xz`, and the SOP's plain `pg_dump | xz`). A concatenation of frames
//! or streams of the same kind is one stream.
//!
//! The zstd decoder accepts windows of at most 8 MiB (what levels 1 to 19 write) and the
//! xz decoder dictionaries of at most 8 MiB (what presets 0 to 6 write; `xz -6` is xz's
//! default), so a stream cannot make stg-restore hold more than its memory bound; a larger
//! one is refused with a message saying so.
//! See: <https://github.com/facebook/zstd/blob/dev/doc/zstd_compression_format.md> (magic
//! number), <https://tukaani.org/xz/xz-file-format.txt> (header magic).

use std::io::{self, BufReader, Chain, Cursor, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;

/// Largest zstd window accepted, as a power of two (8 MiB).
pub const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// Largest xz (LZMA2) dictionary accepted: 8 MiB, what `xz -6` (xz's default, the SOP's)
/// and every lower preset use. The decoder's memory limit is this plus 1 MiB for its own
/// state, so the dictionary is what decides.
pub const XZ_DICT_MAX: u32 = 8 << 20;

/// The xz decoder's memory limit (see [`XZ_DICT_MAX`]). liblzma counts the dictionary and a
/// few tens of KiB of decoder state; a dictionary from 9 MiB up is refused.
/// See: <https://tukaani.org/xz/man/xz.1.html> (the presets' "DecMem" column).
const XZ_MEMLIMIT: u64 = XZ_DICT_MAX as u64 + (1 << 20);

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
const XZ_MAGIC: [u8; 6] = [0xFD, b'7', b'z', b'X', b'Z', 0x00];

/// A stream's compression (named so as not to be taken for the report's
/// [`stg_core::format::Format`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// zstd.
    Zstd,
    /// xz.
    Xz,
}

impl Codec {
    /// Its name in messages and reports.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Zstd => "zstd",
            Codec::Xz => "xz",
        }
    }
}

/// Counts the compressed bytes read.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

type Source<R> = Counting<Chain<Cursor<Vec<u8>>, R>>;

enum Inner<R: Read> {
    Zstd(zstd::stream::read::Decoder<'static, BufReader<Source<R>>>),
    Xz(liblzma::read::XzDecoder<Source<R>>),
}

/// A decoder for whichever format the input is in.
pub struct Decoder<R: Read> {
    inner: Inner<R>,
    codec: Codec,
    compressed: Arc<AtomicU64>,
    decoded: u64,
}

impl<R: Read> Decoder<R> {
    /// Reads the first bytes of `input` and starts the matching decoder. An empty input,
    /// or one in neither format, is an error naming what was found.
    pub fn new(mut input: R) -> Result<Self, String> {
        let mut head = Vec::with_capacity(XZ_MAGIC.len());
        let mut buf = [0u8; 6];
        while head.len() < XZ_MAGIC.len() {
            let n = loop {
                match input.read(&mut buf[..XZ_MAGIC.len() - head.len()]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("could not read the stream: {e}")),
                }
            };
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        if head.is_empty() {
            return Err("the stream is empty (nothing on stdin)".into());
        }
        let codec = if head.starts_with(&ZSTD_MAGIC) {
            Codec::Zstd
        } else if head.starts_with(&XZ_MAGIC) {
            Codec::Xz
        } else {
            return Err(format!(
                "the input is neither zstd nor xz (it starts with {}); stg-restore reads what \
                 stg-dump writes (or `pg_dump | xz`)",
                head.iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        };
        let compressed = Arc::new(AtomicU64::new(0));
        let source = Counting {
            inner: Cursor::new(head).chain(input),
            count: Arc::clone(&compressed),
        };
        let inner = match codec {
            Codec::Zstd => {
                let mut decoder = zstd::stream::read::Decoder::new(source)
                    .map_err(|e| format!("could not start the zstd decoder: {e}"))?;
                decoder
                    .window_log_max(ZSTD_WINDOW_LOG_MAX)
                    .map_err(|e| format!("could not start the zstd decoder: {e}"))?;
                Inner::Zstd(decoder)
            }
            Codec::Xz => {
                // Every concatenated stream, with the memory limit: liblzma refuses a block
                // whose dictionary would take more before allocating it.
                let stream = liblzma::stream::Stream::new_stream_decoder(
                    XZ_MEMLIMIT,
                    liblzma::stream::CONCATENATED,
                )
                .map_err(|e| format!("could not start the xz decoder: {e}"))?;
                Inner::Xz(liblzma::read::XzDecoder::new_stream(source, stream))
            }
        };
        Ok(Decoder {
            inner,
            codec,
            compressed,
            decoded: 0,
        })
    }

    /// The compression being read.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Compressed bytes read so far.
    pub fn total_in(&self) -> u64 {
        self.compressed.load(Ordering::Relaxed)
    }

    /// Decoded bytes so far.
    pub fn total_out(&self) -> u64 {
        self.decoded
    }
}

/// The message for a decoder error that is a refusal of the stream's memory needs (a zstd
/// window past [`ZSTD_WINDOW_LOG_MAX`], an xz dictionary past [`XZ_DICT_MAX`]), saying
/// what to do; `None` for other errors.
pub fn refusal(codec: Codec, e: &io::Error) -> Option<String> {
    let message = e.to_string();
    let lzma = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<liblzma::stream::Error>());
    match codec {
        Codec::Xz if matches!(lzma, Some(liblzma::stream::Error::MemLimit)) => Some(format!(
            "the xz stream has a dictionary larger than {} MiB, more than stg-restore accepts \
             (it keeps its memory bounded): recompress it with `xz -6` or a lower preset \
             (xz's default is -6), or use zstd (stg-dump's default)",
            XZ_DICT_MAX >> 20
        )),
        Codec::Zstd if message.to_lowercase().contains("memory") || message.contains("window") => {
            Some(format!(
                "the zstd stream needs a window larger than {} MiB ({e}); stg-restore keeps \
                 its memory bounded: compress at a zstd level of at most 19 (stg-dump writes \
                 1 to 6), without long-distance matching",
                1u32 << (ZSTD_WINDOW_LOG_MAX - 20)
            ))
        }
        _ => None,
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match &mut self.inner {
            Inner::Zstd(d) => d.read(buf),
            Inner::Xz(d) => d.read(buf),
        }?;
        self.decoded += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(data: &[u8]) -> Result<Vec<u8>, String> {
        let mut d = Decoder::new(data)?;
        let mut out = Vec::new();
        d.read_to_end(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    #[test]
    fn formats_are_told_apart_and_frames_concatenate() {
        let a = zstd::stream::encode_all(&b"one\n"[..], 3).unwrap();
        let mut both = a.clone();
        both.extend(zstd::stream::encode_all(&b"two\n"[..], 3).unwrap());
        assert_eq!(decode(&both).unwrap(), b"one\ntwo\n");
        let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 0);
        std::io::Write::write_all(&mut enc, b"xz\n").unwrap();
        let xz = enc.finish().unwrap();
        assert_eq!(decode(&xz).unwrap(), b"xz\n");
        assert!(decode(b"").unwrap_err().contains("empty"));
        assert!(decode(b"SELECT 1;\n")
            .unwrap_err()
            .contains("neither zstd nor xz"));
    }

    #[test]
    fn truncated_and_flipped_zstd_is_an_error() {
        // As stg-dump writes it: with the frame checksum.
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.include_checksum(true).unwrap();
        let text: Vec<u8> = (0..5000)
            .flat_map(|i| format!("{i}\tname {i}\n").into_bytes())
            .collect();
        std::io::Write::write_all(&mut enc, &text).unwrap();
        let data = enc.finish().unwrap();
        assert!(decode(&data[..data.len() - 3]).is_err());
        let mut flipped = data.clone();
        let at = flipped.len() / 2;
        flipped[at] ^= 0x40;
        assert!(decode(&flipped).is_err());
    }

    /// xz of `data` with LZMA2 at `preset` and, if given, that dictionary size.
    fn xz_with(data: &[u8], preset: u32, dict_size: Option<u32>) -> Vec<u8> {
        use liblzma::stream::{Check, Filters, LzmaOptions, Stream};
        let mut options = LzmaOptions::new_preset(preset).unwrap();
        if let Some(size) = dict_size {
            options.dict_size(size);
        }
        let mut filters = Filters::new();
        filters.lzma2(&options);
        let stream = Stream::new_stream_encoder(&filters, Check::Crc64).unwrap();
        let mut enc = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
        std::io::Write::write_all(&mut enc, data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn xz_presets_up_to_6_decode() {
        // `xz -6` is xz's default and the SOP's; stg-dump's `--compress xz` writes preset 0.
        let text: Vec<u8> = (0..2000)
            .flat_map(|i| format!("{i}\tname {i}\n").into_bytes())
            .collect();
        for preset in [0, 1, 6, 6 | liblzma::stream::PRESET_EXTREME] {
            assert_eq!(
                decode(&xz_with(&text, preset, None)).unwrap(),
                text,
                "{preset}"
            );
        }
        let exactly = xz_with(&text, 6, Some(XZ_DICT_MAX));
        assert_eq!(decode(&exactly).unwrap(), text);
    }

    #[test]
    fn an_xz_dictionary_past_the_bound_is_refused() {
        // See: issue 26, finding 9: a 1.5 GiB dictionary took 1.5 GB resident.
        for stream in [
            xz_with(b"x\n", 7, None),
            xz_with(b"x\n", 6, Some(XZ_DICT_MAX * 2)),
            xz_with(b"x\n", 0, Some(1536 << 20)),
        ] {
            let err = decode(&stream).unwrap_err();
            let refused = Decoder::new(&stream[..])
                .and_then(|mut d| {
                    std::io::copy(&mut d, &mut std::io::sink()).map_err(|e| {
                        refusal(Codec::Xz, &e).unwrap_or_else(|| format!("not a refusal: {e}"))
                    })
                })
                .unwrap_err();
            assert!(!err.is_empty());
            assert!(
                refused.contains("dictionary larger than 8 MiB")
                    && refused.contains("xz -6")
                    && refused.contains("zstd"),
                "{refused}"
            );
        }
    }

    #[test]
    fn a_window_past_the_bound_is_refused() {
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.window_log(27).unwrap();
        enc.long_distance_matching(true).unwrap();
        std::io::Write::write_all(&mut enc, &vec![b'x'; 1 << 20]).unwrap();
        let data = enc.finish().unwrap();
        let err = decode(&data).unwrap_err();
        assert!(
            err.to_lowercase().contains("memory") || err.contains("window"),
            "{err}"
        );
    }
}
