//! Where a line of `pg_dump`'s plain SQL starts: at the top level, or inside a string
//! literal, a quoted identifier, a dollar-quoted body or a block comment.
//!
//! `pg_dump` writes function bodies, view definitions and comments as they are, so a line
//! inside one can look exactly like a `COPY ... FROM stdin;` header. Only a header that
//! starts at the top level begins a COPY block; [`crate::copy_block::Classifier`], which
//! both ends of the stream use, asks [`SqlLexer::at_top`] before taking a line for one. Lines of COPY data
//! are not SQL and must not be fed here.
//!
//! It knows just enough SQL lexing for that: `'...'` (with `''`), `E'...'` (with backslash
//! escapes), `"..."` (with `""`), `$tag$...$tag$`, `--` and nested `/* */` comments. Not a
//! parser, and not for anything but finding line starts.
//! See: <https://www.postgresql.org/docs/current/sql-syntax-lexical.html>.

/// What the next byte is inside of.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum State {
    /// Top-level SQL.
    #[default]
    Top,
    /// A string literal; `escapes` for `E'...'`.
    Literal { escapes: bool },
    /// A quoted identifier.
    Identifier,
    /// A dollar-quoted string with this tag (without the `$`s).
    Dollar(Vec<u8>),
    /// A block comment nested this deep.
    Comment(u32),
}

/// Follows the lexical state of SQL text line by line.
#[derive(Clone, Debug, Default)]
pub struct SqlLexer {
    state: State,
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

impl SqlLexer {
    /// A lexer at the top level.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// True when the next line starts at the top level (not inside a literal, identifier,
    /// dollar-quoted string or comment).
    #[must_use]
    pub fn at_top(&self) -> bool {
        self.state == State::Top
    }

    /// Reads one line (with its newline, if any).
    pub fn line(&mut self, line: &[u8]) {
        self.scan(line, |_, _| {});
    }

    /// Reads one line like [`SqlLexer::line`] and calls `at_top(index, byte)` for every byte
    /// that the server reads as top-level SQL: not inside a literal, a quoted name, a
    /// dollar-quoted body or a comment, and not the `--` or `/*` that opens a comment. The
    /// byte that opens a literal or quoted name is reported (it is part of a statement).
    /// stg-restore splits statements at the `;` and finds psql meta-commands at the `\`
    /// reported here.
    pub fn scan(&mut self, line: &[u8], mut at_top: impl FnMut(usize, u8)) {
        let mut i = 0;
        while i < line.len() {
            i = match &mut self.state {
                State::Top => {
                    let next = self.top(line, i);
                    let opens_comment = matches!(
                        (line[i], line.get(i + 1)),
                        (b'-', Some(b'-')) | (b'/', Some(b'*'))
                    );
                    if !opens_comment {
                        at_top(i, line[i]);
                    }
                    next
                }
                State::Literal { escapes } => {
                    let escapes = *escapes;
                    match line[i] {
                        b'\\' if escapes => i + 2,
                        b'\'' if line.get(i + 1) == Some(&b'\'') => i + 2,
                        b'\'' => {
                            self.state = State::Top;
                            i + 1
                        }
                        _ => i + 1,
                    }
                }
                State::Identifier => match line[i] {
                    b'"' if line.get(i + 1) == Some(&b'"') => i + 2,
                    b'"' => {
                        self.state = State::Top;
                        i + 1
                    }
                    _ => i + 1,
                },
                State::Dollar(tag) => {
                    let rest = &line[i..];
                    if rest[0] == b'$'
                        && rest[1..].starts_with(tag)
                        && rest.get(1 + tag.len()) == Some(&b'$')
                    {
                        let end = i + tag.len() + 2;
                        self.state = State::Top;
                        end
                    } else {
                        i + 1
                    }
                }
                State::Comment(depth) => {
                    if line[i..].starts_with(b"*/") {
                        *depth -= 1;
                        if *depth == 0 {
                            self.state = State::Top;
                        }
                        i + 2
                    } else if line[i..].starts_with(b"/*") {
                        *depth += 1;
                        i + 2
                    } else {
                        i + 1
                    }
                }
            };
        }
    }

    /// One step at the top level from `line[i]`; returns the next index.
    fn top(&mut self, line: &[u8], i: usize) -> usize {
        let prev = i.checked_sub(1).map(|p| line[p]);
        match line[i] {
            b'-' if line.get(i + 1) == Some(&b'-') => line.len(),
            b'/' if line.get(i + 1) == Some(&b'*') => {
                self.state = State::Comment(1);
                i + 2
            }
            b'\'' => {
                let escapes = matches!(prev, Some(b'E' | b'e'))
                    && (i < 2 || !is_ident_byte(line[i - 2]) && line[i - 2] != b'$');
                self.state = State::Literal { escapes };
                i + 1
            }
            b'"' => {
                self.state = State::Identifier;
                i + 1
            }
            b'$' if !prev.is_some_and(|p| is_ident_byte(p) || p == b'$') => {
                let tag_len = line[i + 1..]
                    .iter()
                    .position(|b| !is_ident_byte(*b))
                    .unwrap_or(line.len() - i - 1);
                let tag = &line[i + 1..i + 1 + tag_len];
                let starts_well = tag.first().is_none_or(|b| !b.is_ascii_digit());
                if starts_well && line.get(i + 1 + tag_len) == Some(&b'$') {
                    self.state = State::Dollar(tag.to_vec());
                    i + tag_len + 2
                } else {
                    i + 1
                }
            }
            _ => i + 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tops(text: &str) -> Vec<bool> {
        let mut lexer = SqlLexer::new();
        text.split_inclusive('\n')
            .map(|line| {
                let top = lexer.at_top();
                lexer.line(line.as_bytes());
                top
            })
            .collect()
    }

    #[test]
    fn literals_bodies_and_comments_span_lines() {
        let text = "CREATE FUNCTION f() AS $body$ SELECT '\nCOPY x\n' $body$;\n\
                    COMMENT ON TABLE t IS 'it''s\nCOPY x\n';\n\
                    SELECT E'a\\'\nCOPY x\n';\n\
                    CREATE TABLE \"a\nb\" (id int);\n\
                    /* a /* nested */\nCOPY x */\n\
                    -- it's a comment\n\
                    SELECT $1, a$b, $$ x\n$$;\n\
                    COPY public.t (id) FROM stdin;\n";
        assert_eq!(
            tops(text),
            [
                true, false, false, true, false, false, true, false, false, true, false, true,
                false, true, true, false, true
            ]
        );
    }

    #[test]
    fn dollar_tags_must_match() {
        assert_eq!(tops("SELECT $a$ x $b$\n$a$;\nx\n"), [true, false, true]);
        assert_eq!(tops("SELECT $1 $2\nx\n"), [true, true]);
    }
}
