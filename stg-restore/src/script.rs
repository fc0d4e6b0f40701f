//! A stream's SQL as the loader runs it: top-level statements (each checked by
//! [`crate::policy`]), and COPY blocks (header, data, end) to load with `COPY ... FROM
//! STDIN`.
//!
//! Where a COPY block starts and ends is not decided here: the reader asks the stream's
//! [`stg_core::stream::Tally`] (the code that counts rows for the trailer), so the rows
//! that are counted are the rows that are loaded. Outside COPY blocks, statements end at a
//! `;` at the top level of the SQL and outside parentheses, as psql splits them; a `\` at
//! the top level starts a psql meta-command, and every meta-command is refused except
//! pg_dump's own `\restrict KEY` / `\unrestrict KEY` pair, which is consumed. psql
//! recognises a meta-command anywhere on a line outside quotes (`SELECT 1 \g |cmd`), and so
//! does this splitter. A backslash inside a literal or a function body is data.
//!
//! Not here: running anything ([`crate::load`]), decoding and checking the stream
//! ([`crate::reader`]).

use stg_core::copy_text::{self, CopyHeader};
use stg_core::sql_lexer::SqlLexer;

use crate::policy::{self, Class};

/// Target size of one [`Item::CopyData`] chunk.
const DATA_CHUNK: usize = 128 * 1024;

/// One thing for the loader to do, in stream order.
#[derive(Debug)]
pub enum Item {
    /// A checked top-level statement.
    Statement(Statement),
    /// A COPY block starts.
    CopyBegin {
        /// Line of the header.
        line: u64,
        /// The parsed header.
        header: CopyHeader,
    },
    /// Whole data lines of the current COPY block (without the `\.` end marker).
    CopyData(Vec<u8>),
    /// The current COPY block ended.
    CopyEnd {
        /// Data lines the block carried.
        rows: u64,
    },
}

/// A statement as the loader sends it.
#[derive(Debug)]
pub struct Statement {
    /// Line of the stream where it starts.
    pub line: u64,
    /// Its text, `;` included.
    pub sql: String,
    /// How to run it.
    pub class: Class,
}

/// Turns lines into [`Item`]s.
#[derive(Default)]
pub struct Splitter {
    lexer: SqlLexer,
    /// The statement read so far.
    buf: Vec<u8>,
    /// Line where the statement's first non-blank, non-comment byte is.
    start: Option<u64>,
    depth: i64,
    /// Data lines of the current COPY block not yet handed on, and how many in the block.
    data: Vec<u8>,
    rows: u64,
    restrict: Option<String>,
    incoming: Option<String>,
}

/// The meta-command's name at the start of `text` (after its backslash), for messages.
fn meta_name(text: &[u8]) -> String {
    let end = text
        .iter()
        .skip(1)
        .position(|b| b.is_ascii_whitespace() || *b == b'\\')
        .map_or(text.len(), |p| p + 1);
    String::from_utf8_lossy(&text[..end.min(32)]).into_owned()
}

impl Splitter {
    /// A splitter. `incoming` is the incoming database's name where database-level
    /// statements may name it (a plain `pg_dump -C` stream, rewritten by the reader).
    pub fn new(incoming: Option<String>) -> Splitter {
        Splitter {
            incoming,
            ..Splitter::default()
        }
    }

    /// A line the tally took for a COPY header.
    pub fn copy_header(&mut self, no: u64, line: &[u8], out: &mut Vec<Item>) -> Result<(), String> {
        if self.start.is_some() {
            return Err(format!(
                "line {no}: a COPY header inside an unfinished statement (the statement from \
                 line {} has no `;`)",
                self.start.unwrap_or(no)
            ));
        }
        let header = copy_text::parse_copy_header(line)
            .ok_or_else(|| format!("line {no}: not a COPY header"))?;
        self.buf.clear();
        self.rows = 0;
        out.push(Item::CopyBegin { line: no, header });
        Ok(())
    }

    /// A data line of the current COPY block.
    pub fn copy_data(&mut self, line: &[u8], out: &mut Vec<Item>) {
        self.data.extend_from_slice(line);
        if !line.ends_with(b"\n") {
            self.data.push(b'\n');
        }
        self.rows += 1;
        if self.data.len() >= DATA_CHUNK {
            out.push(Item::CopyData(std::mem::take(&mut self.data)));
        }
    }

    /// The end marker of the current COPY block.
    pub fn copy_end(&mut self, out: &mut Vec<Item>) {
        if !self.data.is_empty() {
            out.push(Item::CopyData(std::mem::take(&mut self.data)));
        }
        out.push(Item::CopyEnd { rows: self.rows });
    }

    /// A line of SQL (outside COPY blocks).
    pub fn sql(&mut self, no: u64, line: &[u8], out: &mut Vec<Item>) -> Result<(), String> {
        let was_at_top = self.lexer.at_top();
        let mut events = Vec::new();
        self.lexer.scan(line, |i, b| {
            if !b.is_ascii_whitespace() {
                events.push((i, b));
            }
        });
        let mut from = 0;
        for (i, b) in events {
            match b {
                b'\\' if self.start.is_none() && was_at_top && from == 0 => {
                    return self.meta_command(no, &line[i..]);
                }
                b'\\' => {
                    return Err(format!(
                        "line {no}: psql meta-command `{}` is refused (a stream's SQL runs only \
                         in the incoming database; meta-commands run programs, switch databases \
                         and write files)",
                        meta_name(&line[i..])
                    ))
                }
                b';' if self.depth == 0 => {
                    self.buf.extend_from_slice(&line[from..=i]);
                    self.statement(out)?;
                    from = i + 1;
                    continue;
                }
                b'(' => self.depth += 1,
                b')' => self.depth -= 1,
                _ => {}
            }
            if self.start.is_none() {
                self.start = Some(no);
            }
        }
        if self.start.is_some() || !self.lexer.at_top() {
            self.buf.extend_from_slice(&line[from..]);
        } else {
            // Blank lines and comments between statements are not sent.
            self.buf.clear();
        }
        Ok(())
    }

    fn meta_command(&mut self, no: u64, text: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(text).unwrap_or("").trim_end();
        let mut words = text.split_ascii_whitespace();
        let command = words.next().unwrap_or("");
        let key = words.next();
        let valid_key = key.is_some_and(|k| k.bytes().all(|b| b.is_ascii_alphanumeric()))
            && words.next().is_none();
        match command {
            "\\restrict" if valid_key && self.restrict.is_none() => {
                self.restrict = key.map(str::to_owned);
                Ok(())
            }
            "\\unrestrict" if valid_key && self.restrict.as_deref() == key => {
                // pg_dump -C writes the pair again around each `\connect`.
                self.restrict = None;
                Ok(())
            }
            _ => Err(format!(
                "line {no}: psql meta-command `{}` is refused (a stream's SQL runs only in the \
                 incoming database; meta-commands run programs, switch databases and write \
                 files; only pg_dump's \\restrict/\\unrestrict pair is accepted, and consumed)",
                meta_name(text.as_bytes())
            )),
        }
    }

    /// The statement in `buf` is complete: check it and hand it on.
    fn statement(&mut self, out: &mut Vec<Item>) -> Result<(), String> {
        let buf = std::mem::take(&mut self.buf);
        self.depth = 0;
        let Some(line) = self.start.take() else {
            // Only blanks and comments before a lone `;`: nothing to run.
            return Ok(());
        };
        let sql = String::from_utf8(buf).map_err(|_| {
            format!("line {line}: the statement is not UTF-8 (stg-restore loads UTF-8 dumps)")
        })?;
        let class = policy::classify(&sql, self.incoming.as_deref())
            .map_err(|why| format!("line {line}: {why}: {}", first_line(&sql)))?;
        out.push(Item::Statement(Statement { line, sql, class }));
        Ok(())
    }

    /// The stream ended: a statement without its `;` is an error (psql would run it; a
    /// pg_dump stream never ends so).
    pub fn finish(&self) -> Result<(), String> {
        match self.start {
            Some(line) => Err(format!(
                "the stream ends inside a statement (from line {line}, no `;`)"
            )),
            None => Ok(()),
        }
    }
}

/// The statement's first line with content, shortened, for messages.
pub fn first_line(sql: &str) -> String {
    let line = sql
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("--"))
        .unwrap_or("");
    let mut short: String = line.chars().take(80).collect();
    if short.len() < line.len() {
        short.push_str("...");
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Result<Vec<(u64, String)>, String> {
        let mut s = Splitter::new(None);
        let mut out = Vec::new();
        for (i, line) in text.split_inclusive('\n').enumerate() {
            s.sql(i as u64 + 1, line.as_bytes(), &mut out)?;
        }
        s.finish()?;
        Ok(out
            .into_iter()
            .map(|item| match item {
                Item::Statement(s) => (s.line, s.sql),
                other => panic!("{other:?}"),
            })
            .collect())
    }

    #[test]
    fn statements_end_at_top_level_semicolons() {
        let got =
            split("--\n-- comment; not a statement\n--\n\nSET x_not_allowed_but_unchecked = 1;\n");
        assert!(got.unwrap_err().contains("line 5"));
        let got = split(
            "\nCREATE FUNCTION public.f() RETURNS int\n    LANGUAGE sql\n    AS $$ SELECT 1; \\! rm $$;\n\
             CREATE RULE r AS ON INSERT TO public.t DO INSTEAD (INSERT INTO public.u VALUES (1); INSERT INTO public.u VALUES (2));\n\
             /* a\n multi-line comment; */ CREATE SCHEMA a; CREATE SCHEMA b;\n",
        )
        .unwrap();
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0].0, 2);
        assert!(got[0].1.starts_with("CREATE FUNCTION") && got[0].1.ends_with("$$;"));
        assert_eq!(got[1].0, 5);
        assert!(got[2].1.contains("*/ CREATE SCHEMA a;"), "{got:?}");
        assert_eq!(got[3].1, " CREATE SCHEMA b;");
    }

    #[test]
    fn meta_commands_are_refused_anywhere_at_top_level() {
        for text in [
            "\\! touch /tmp/x\n",
            "\\connect fas2\n",
            "CREATE SCHEMA a;\n  \\c fas2\n",
            "SELECT 1 \\g |cmd\n",
            "CREATE SCHEMA\n\\o /tmp/x\na;\n",
            "\\unrestrict abc\n",
        ] {
            let err = split(text).unwrap_err();
            assert!(err.contains("meta-command"), "{text}: {err}");
        }
        assert!(split("\\restrict abc\nCREATE SCHEMA a;\n\\unrestrict abc\n").is_ok());
        assert!(split("\\restrict abc\n\\unrestrict abd\n").is_err());
        assert!(split("CREATE SCHEMA a")
            .unwrap_err()
            .contains("ends inside"));
    }
}
