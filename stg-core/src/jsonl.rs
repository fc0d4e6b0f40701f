//! JSON Lines: one JSON object per line, each with a `"type"` field, the last one of a
//! report a `"summary"`.
//!
//! Output goes through [`Writer`], which refuses records without a string `"type"` (a
//! programming error, caught in tests) and writes each record as one line. Input goes
//! through [`read`], which skips blank lines and names the line number of a malformed one.
//! Not for reading whole JSON documents (the inventory is one; see [`crate::inventory`]).

use std::io::{BufRead, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Writes JSON Lines records to an output.
pub struct Writer<W: Write> {
    out: W,
    flush_each: bool,
}

impl<W: Write> Writer<W> {
    /// A writer that leaves flushing to the caller (or to drop of a buffered output).
    pub fn new(out: W) -> Self {
        Self {
            out,
            flush_each: false,
        }
    }

    /// A writer that flushes after every record, for long-running tools whose readers
    /// (a pipe into `jq`, a monitoring agent) want each record as soon as it is known.
    pub fn flushing(out: W) -> Self {
        Self {
            out,
            flush_each: true,
        }
    }

    /// Writes one record. The record must serialize to an object with a string `"type"`.
    pub fn write<T: Serialize + ?Sized>(&mut self, record: &T) -> anyhow::Result<()> {
        let value = serde_json::to_value(record)?;
        anyhow::ensure!(
            value.get("type").is_some_and(serde_json::Value::is_string),
            "internal error: JSON Lines record without a \"type\": {value}"
        );
        // An I/O failure comes back as the io::Error itself, so a closed stdout is seen as
        // a broken pipe by `exit::is_broken_pipe` (serde_json's own error hides it).
        serde_json::to_writer(&mut self.out, &value).map_err(std::io::Error::from)?;
        self.out.write_all(b"\n")?;
        if self.flush_each {
            self.out.flush()?;
        }
        Ok(())
    }

    /// Writes one typed record: `{"type":R::TYPE,...the record's fields}` on one line, the
    /// type first. The record must serialize to a JSON object without a `type` field.
    pub fn record<R: crate::format::Record>(&mut self, record: &R) -> anyhow::Result<()> {
        let body = serde_json::to_vec(record)?;
        anyhow::ensure!(
            body.first() == Some(&b'{') && body.last() == Some(&b'}'),
            "internal error: a {} record does not serialize to a JSON object",
            R::TYPE
        );
        let mut line = serde_json::to_vec(&serde_json::json!({ "type": R::TYPE }))?;
        if body.len() > 2 {
            line.pop(); // the closing brace of {"type":...}
            line.push(b',');
            line.extend_from_slice(&body[1..]);
        }
        line.push(b'\n');
        self.out.write_all(&line)?;
        if self.flush_each {
            self.out.flush()?;
        }
        Ok(())
    }

    /// Flushes the output.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.out.flush()?;
        Ok(())
    }

    /// The output, back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// A malformed input line.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The line is not valid JSON or does not fit the expected record.
    #[error("{source_name}: line {line}: {message}")]
    Malformed {
        /// Where the input came from (`<stdin>` or a path).
        source_name: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The input could not be read.
    #[error("{source_name}: line {line}: {source}")]
    Io {
        /// Where the input came from.
        source_name: String,
        /// 1-based line number of the line being read.
        line: usize,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Reads JSON Lines records, skipping blank lines. Each item is `(line number, record)` or
/// the error of the first bad line; a malformed line (not JSON, not the record, or not
/// UTF-8) is a usage error (exit 2) when it reaches [`crate::exit::run_main`].
pub fn read<'a, T: DeserializeOwned + 'a>(
    input: impl BufRead + 'a,
    source_name: &'a str,
) -> impl Iterator<Item = anyhow::Result<(usize, T)>> + 'a {
    input.lines().enumerate().filter_map(move |(index, line)| {
        let line_no = index + 1;
        let text = match line {
            Ok(text) => text,
            Err(source) => {
                let invalid_text = source.kind() == std::io::ErrorKind::InvalidData;
                let error = ReadError::Io {
                    source_name: source_name.to_owned(),
                    line: line_no,
                    source,
                };
                // A line that is not UTF-8 is bad input (exit 2), not a failure to read.
                return Some(Err(if invalid_text {
                    crate::exit::Error::usage(error.to_string()).into()
                } else {
                    anyhow::Error::from(error)
                }));
            }
        };
        if text.trim().is_empty() {
            return None;
        }
        Some(
            serde_json::from_str(&text)
                .map(|v| (line_no, v))
                .map_err(|e| {
                    let malformed = ReadError::Malformed {
                        source_name: source_name.to_owned(),
                        line: line_no,
                        message: e.to_string(),
                    };
                    anyhow::Error::from(crate::exit::Error::usage(malformed.to_string()))
                }),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Rec {
        r#type: String,
        n: u32,
    }

    #[test]
    fn writes_one_object_per_line() {
        let mut w = Writer::new(Vec::new());
        w.write(&Rec {
            r#type: "check".into(),
            n: 1,
        })
        .unwrap();
        w.write(&serde_json::json!({"type": "summary", "count": 1}))
            .unwrap();
        let out = String::from_utf8(w.into_inner()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        // Keys keep their declared order, so a person reading the stream sees the type first.
        assert!(lines[0].starts_with("{\"type\":\"check\""), "{}", lines[0]);
        let last: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(last["type"], "summary");
    }

    #[test]
    fn typed_records_take_their_type_from_the_type() {
        #[derive(Serialize)]
        struct Finding<'a> {
            path: &'a str,
            line: usize,
        }
        impl crate::format::Record for Finding<'_> {
            const TYPE: &'static str = "finding";
        }
        #[derive(Serialize)]
        struct Empty {}
        impl crate::format::Record for Empty {
            const TYPE: &'static str = "summary";
        }
        let mut w = Writer::new(Vec::new());
        w.record(&Finding {
            path: "roles/a \"b\".yml",
            line: 3,
        })
        .unwrap();
        w.record(&Empty {}).unwrap();
        let out = String::from_utf8(w.into_inner()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                r#"{"type":"finding","path":"roles/a \"b\".yml","line":3}"#,
                r#"{"type":"summary"}"#
            ]
        );
        for line in lines {
            serde_json::from_str::<serde_json::Value>(line).expect("valid JSON");
        }
    }

    #[test]
    fn closed_output_is_a_broken_pipe() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let err = Writer::new(Closed)
            .write(&serde_json::json!({"type": "summary"}))
            .unwrap_err();
        assert!(crate::exit::is_broken_pipe(&err), "{err:#}");
    }

    #[test]
    fn refuses_records_without_type() {
        let mut w = Writer::new(Vec::new());
        assert!(w.write(&serde_json::json!({"n": 1})).is_err());
    }

    #[test]
    fn malformed_line_names_its_number() {
        let input = "{\"type\":\"check\",\"n\":1}\n\n{\"type\":\"check\",\"n\":\n";
        let results: Vec<_> = read::<Rec>(input.as_bytes(), "<stdin>").collect();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].as_ref().unwrap().0, 1);
        let err = results[1].as_ref().unwrap_err();
        assert!(err.to_string().contains("<stdin>: line 3:"), "{err}");
        assert_eq!(crate::exit::classify(err), crate::exit::ErrorClass::Usage);
    }
}
