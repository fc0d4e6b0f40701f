//! Where the COPY blocks of `pg_dump`'s plain SQL start and end: the one classifier both
//! ends of the dump stream use.
//!
//! A line is SQL, the header of a COPY block, a row of one, or the `\.` that ends it.
//! [`crate::stream::Tally`] counts rows per table by it (in `stg-dump` on the lines it
//! writes, in `stg-restore` on the lines it reads) and `stg-dump`'s rewriter asks it which
//! table's rows it is in, so what is counted as a row and what is masked as one are decided
//! by the same code and cannot disagree.
//!
//! Only a header that starts at the top level of the SQL begins a block: `pg_dump` writes
//! function bodies, view definitions and comments as they are, so a line inside one can look
//! exactly like `COPY ... FROM stdin;` ([`crate::sql_lexer`] follows where each line starts).
//! Rows are not SQL and are never lexed: each line is looked at once.

use crate::copy_text::{self, CopyHeader};
use crate::sql_lexer::SqlLexer;

/// What one line of the stream is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// SQL (or a comment) outside COPY blocks, including a COPY-looking line that does not
    /// start at the top level.
    Sql,
    /// `COPY schema.table (columns) FROM stdin;` at the top level: the next lines are rows.
    Header(CopyHeader),
    /// A row of the current COPY block.
    Row,
    /// `\.`: the end of the current COPY block.
    End,
}

/// Classifies the lines of `pg_dump`'s plain SQL one after the other.
#[derive(Clone, Debug, Default)]
pub struct Classifier {
    lexer: SqlLexer,
    in_copy: bool,
}

impl Classifier {
    /// A classifier before the first line.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Classifies the next line (with its newline, if it has one).
    pub fn line(&mut self, line: &[u8]) -> Line {
        if self.in_copy {
            if copy_text::is_end_of_copy(line) {
                self.in_copy = false;
                return Line::End;
            }
            return Line::Row;
        }
        let at_top = self.lexer.at_top();
        self.lexer.line(line);
        if at_top && line.starts_with(b"COPY ") {
            if let Some(header) = copy_text::parse_copy_header(line) {
                self.in_copy = true;
                return Line::Header(header);
            }
        }
        Line::Sql
    }

    /// True while inside a COPY block: the next line is a row or the end.
    #[must_use]
    pub fn in_copy(&self) -> bool {
        self.in_copy
    }

    /// True when the next line starts at the top level of the SQL: not in a COPY block, a
    /// string, a quoted name or a comment. Only there can a statement (or a COPY header, or
    /// the stream's trailer) start.
    #[must_use]
    pub fn at_top(&self) -> bool {
        !self.in_copy && self.lexer.at_top()
    }

    /// True when the next line starts between two tokens of the SQL: at the top level and
    /// not right after a literal that a next line starting with a quote would continue.
    /// Where stg-dump puts a signature line, and the only place stg-restore takes one.
    #[must_use]
    pub fn between_tokens(&self) -> bool {
        !self.in_copy && !self.lexer.pending()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(text: &str) -> Vec<&'static str> {
        let mut classifier = Classifier::new();
        text.split_inclusive('\n')
            .map(|line| match classifier.line(line.as_bytes()) {
                Line::Sql => "sql",
                Line::Header(_) => "header",
                Line::Row => "row",
                Line::End => "end",
            })
            .collect()
    }

    #[test]
    fn blocks_start_only_at_the_top_level() {
        let text = "SET x = 1;\n\
                    CREATE FUNCTION f() AS $b$ SELECT '\n\
                    COPY public.t (id) FROM stdin;\n\
                    ' $b$;\n\
                    COPY public.t (id) FROM stdin;\n\
                    1\n\
                    COPY public.t (id) FROM stdin;\n\
                    \\.\n\
                    COPY public.t (id) TO stdout;\n";
        assert_eq!(
            classes(text),
            ["sql", "sql", "sql", "sql", "header", "row", "row", "end", "sql"]
        );
    }

    #[test]
    fn rows_are_not_lexed() {
        // A quote in a row opens nothing: the next block is still seen.
        let mut classifier = Classifier::new();
        for line in ["COPY public.a (x) FROM stdin;\n", "it's $$\n", "\\.\n"] {
            classifier.line(line.as_bytes());
        }
        assert!(classifier.at_top());
        assert!(matches!(
            classifier.line(b"COPY public.b (x) FROM stdin;\n"),
            Line::Header(h) if h.qualified == "public.b"
        ));
        assert!(classifier.in_copy() && !classifier.at_top());
    }
}
