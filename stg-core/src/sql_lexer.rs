//! The one SQL lexer for untrusted SQL: PostgreSQL's own lexical rules (its `scan.l`), fed
//! line by line.
//!
//! Both ends of the dump stream use it. [`crate::copy_block::Classifier`] asks
//! [`SqlLexer::at_top`] whether a line starts at the top level before it takes the line for
//! a COPY header (`pg_dump` writes function bodies, view definitions and comments as they
//! are, so a line inside one can look exactly like `COPY ... FROM stdin;`); stg-restore's
//! statement splitter and its allow-list read the [`Token`]s it hands out, so where a
//! statement ends and what it says are decided by the same code, and that code reads SQL
//! the way the server does. Lines of COPY data are not SQL and must not be fed here.
//!
//! The rules followed, from PostgreSQL's lexer (a wrong guess here is what lets a forged
//! statement hide from a check, so each is exact, not approximate):
//! - Whitespace is space, tab, LF, CR, form feed and vertical tab; a `--` comment ends at
//!   LF **or CR**; `/* */` comments nest.
//! - `'...'` with `''` for a quote (standard-conforming strings: stg-restore pins them on);
//!   `E'...'` with backslash escapes (`\'` is a quote, `\\`, octal, `\xHH`, `\uXXXX`...);
//!   `B'...'`, `X'...'`, `N'...'`, `U&'...'`. A literal followed by whitespace holding a
//!   newline (comments allowed) and another `'` goes on: `'a'<LF>'b'` is the one literal
//!   `ab`, and the part after the break is read with the first part's rules (after `E'`,
//!   backslashes escape in every part).
//! - `"..."` with `""`, `U&"..."`; `$tag$...$tag$` (a tag is an identifier without `$`),
//!   ending at the first identical tag; `$1` is a parameter, a lone `$` a character.
//! - Identifiers start with a letter, `_` or a byte >= 0x80 and go on with those, digits
//!   and `$`; unquoted ones are folded to lower case (ASCII only). Names, quoted or not,
//!   are cut to 63 bytes at a character boundary, as the server keeps them. A prefix
//!   (`E`, `B`, `X`, `N`, `U&`) counts only at the start of a token: `abce'x'` is the
//!   identifier `abce` and a plain literal.
//! - An operator is a run of `~!@#^&|`?+-*/%<>=` cut before an embedded `--` or `/*`,
//!   and a trailing `+`/`-` is split off unless the run holds one of `~!@#^&|`?%`.
//!
//! Where PostgreSQL versions differ, the newer rule is followed when the older server
//! rejects the text anyway (vertical tab became whitespace in 16; before, it is a
//! character no statement accepts), so no version runs text this lexer reads otherwise.
//! Numbers are cut where 16 and later cut them (`0x1F`, `1_000`, `1.5e-3`), and a number
//! that older versions read otherwise (those forms, a number run into a word: `123abc`)
//! is [`Kind::Junk`], which the allow-list refuses: `SELECT 0x1F` is one number to 16,
//! an error to 15, and `0 AS x1F` to 14.
//!
//! Not a parser: it says what the tokens are, not what they mean.
//! See: <https://www.postgresql.org/docs/current/sql-syntax-lexical.html> and
//! `src/backend/parser/scan.l` in PostgreSQL's source.

/// What kind of string literal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrKind {
    /// `'...'`.
    Standard,
    /// `E'...'`: backslash escapes.
    Escape,
    /// `U&'...'`: Unicode escapes (and `UESCAPE`), decoded by the parser, not here.
    Unicode,
    /// `B'...'`.
    Bit,
    /// `X'...'`.
    Hex,
    /// `$tag$...$tag$`.
    Dollar,
}

/// What a token is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A keyword or an unquoted identifier, folded to lower case (ASCII letters only, as
    /// the server folds them).
    Word(String),
    /// A quoted identifier; `unicode` for `U&"..."`, whose escapes are not decoded here.
    Quoted {
        /// `U&"..."`.
        unicode: bool,
    },
    /// A string literal.
    Str(StrKind),
    /// A number (integer, decimal or with an exponent), in the form every PostgreSQL
    /// version reads alike: decimal digits without `_`.
    Number,
    /// A number that PostgreSQL versions read differently, or that they refuse: `0x1F`,
    /// `0o17`, `0b1`, `1_000` (one number from 16; on 15 an error, before it a number and
    /// a word), and a number run into a word (`123abc`, `1e`: an error from 15; before
    /// it a number and a word). pg_dump writes none of them; the
    /// allow-list refuses a statement that holds one.
    Junk,
    /// `$1`.
    Param,
    /// `::`.
    Typecast,
    /// An operator of two or more characters (`<>`, `->>`, `=>`...).
    Op(String),
    /// Any single character that is not one of the above (`;`, `(`, `,`, `=`, `\`...).
    Char(u8),
}

/// One token: its kind, where it is (byte offsets counted from the first byte fed to the
/// lexer), and for string literals and quoted identifiers the value the server reads,
/// when the lexer was asked to collect values and the value is short enough.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// What it is.
    pub kind: Kind,
    /// Offset of its first byte.
    pub start: u64,
    /// Offset after its last byte.
    pub end: u64,
    /// For [`Kind::Str`] (but `Unicode`, `Bit`, `Hex`) and [`Kind::Quoted`] (but unicode):
    /// the value as the server reads it (escapes decoded, continued parts joined). `None`
    /// when values are not collected, for the kinds not decoded here, and for values longer
    /// than [`MAX_VALUE`].
    pub value: Option<Vec<u8>>,
}

/// Longest literal value collected; a longer one has no [`Token::value`] (it is still
/// lexed exactly). A check that needs a value refuses a literal without one.
pub const MAX_VALUE: usize = 64 * 1024;

/// Where the lexer is inside a token that goes on past the end of a line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum State {
    /// Between tokens.
    #[default]
    Top,
    /// A `--` comment.
    LineComment,
    /// A `/* */` comment, this many levels deeper than the first.
    BlockComment(u32),
    /// Inside a string literal.
    Str(StrKind),
    /// Right after a string literal's closing quote: it may go on (`'a'<LF>'b'`).
    StrStop { kind: StrKind, stop: Stop },
    /// Inside a quoted identifier.
    Quoted { unicode: bool },
    /// Inside a dollar-quoted string with this delimiter (`$tag$`).
    Dollar(Vec<u8>),
}

/// How far the look for a continued literal has come (`quotecontinue` in scan.l: blanks
/// and comments, a newline, then blanks, newlines and comments ended by a newline, then a
/// quote).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// No newline yet.
    BeforeNewline,
    /// In a `--` comment before the newline.
    BeforeNewlineComment,
    /// After the newline.
    AfterNewline,
    /// In a `--` comment after the newline (it must end with one too).
    AfterNewlineComment,
}

/// The token being built across lines.
#[derive(Clone, Debug, Default)]
struct Pending {
    start: u64,
    /// Offset after the closing quote, while the literal may still go on.
    end: u64,
    value: Vec<u8>,
    too_long: bool,
}

/// Follows SQL text line by line and hands out its tokens.
#[derive(Clone, Debug, Default)]
pub struct SqlLexer {
    state: State,
    /// Bytes fed so far.
    offset: u64,
    pending: Pending,
}

/// Bytes PostgreSQL reads as whitespace (vertical tab since 16; see the module doc).
#[must_use]
pub fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c | 0x0b)
}

fn is_newline(b: u8) -> bool {
    b == b'\n' || b == b'\r'
}

/// `ident_start`: a letter, `_` or any byte >= 0x80.
#[must_use]
pub fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

/// `ident_cont`: `ident_start`, a digit or `$`.
#[must_use]
pub fn is_ident_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

fn is_op_char(b: u8) -> bool {
    b"~!@#^&|`?+-*/%<>=".contains(&b)
}

/// The value of an `E'...'` escape starting at `text[i]` (a backslash): the bytes it
/// stands for, and how many bytes of input it takes. `None` for a malformed Unicode escape
/// (the server refuses the literal).
fn escape(text: &[u8], at: usize) -> (Option<Vec<u8>>, usize) {
    let Some(&kind) = text.get(at + 1) else {
        return (Some(vec![b'\\']), 1);
    };
    let hex_run = |from: usize, max: usize| {
        text[from..]
            .iter()
            .take(max)
            .take_while(|b| b.is_ascii_hexdigit())
            .count()
    };
    let number = |from: usize, len: usize, radix: u32| {
        std::str::from_utf8(&text[from..from + len])
            .ok()
            .and_then(|digits| u32::from_str_radix(digits, radix).ok())
    };
    match kind {
        b'0'..=b'7' => {
            let len = text[at + 1..]
                .iter()
                .take(3)
                .take_while(|b| (b'0'..=b'7').contains(*b))
                .count();
            // Three octal digits can exceed a byte; the server keeps the low eight bits.
            let value = number(at + 1, len, 8).unwrap_or(0) & 0xff;
            (Some(vec![u8::try_from(value).unwrap_or(0)]), 1 + len)
        }
        b'x' if hex_run(at + 2, 2) > 0 => {
            let len = hex_run(at + 2, 2);
            let value = number(at + 2, len, 16).unwrap_or(0);
            (Some(vec![u8::try_from(value).unwrap_or(0)]), 2 + len)
        }
        b'u' | b'U' => {
            let want = if kind == b'u' { 4 } else { 8 };
            let len = hex_run(at + 2, want);
            if len < want {
                return (None, 2 + len);
            }
            // A surrogate pair is two escapes; decoded values are only for the allow-list,
            // which never needs one, so a lone or paired surrogate has no value.
            let value = number(at + 2, len, 16)
                .and_then(char::from_u32)
                .map(|ch| ch.to_string().into_bytes());
            (value, 2 + len)
        }
        b'b' => (Some(vec![0x08]), 2),
        b'f' => (Some(vec![0x0c]), 2),
        b'n' => (Some(vec![b'\n']), 2),
        b'r' => (Some(vec![b'\r']), 2),
        b't' => (Some(vec![b'\t']), 2),
        other => (Some(vec![other]), 2),
    }
}

/// Longest run of operator characters looked at. The server refuses an operator of 64
/// bytes or more ("operator too long"), so how a longer run splits never matters, and
/// not looking further keeps a long run of them linear.
const OPERATOR_SCAN: usize = 128;

/// Length of the operator starting at `text[i]` (an op char), as scan.l cuts it.
fn operator_len(text: &[u8], i: usize) -> usize {
    let run = text[i..]
        .iter()
        .take(OPERATOR_SCAN)
        .take_while(|b| is_op_char(**b))
        .count();
    let run_text = &text[i..i + run];
    // Cut before an embedded comment start (one at the first byte is a comment, handled
    // before this is called).
    let mut n = (1..run)
        .find(|&k| run_text[k..].starts_with(b"--") || run_text[k..].starts_with(b"/*"))
        .unwrap_or(run);
    // A trailing + or - is its own token unless the operator holds a character that no
    // SQL-standard operator has (+ and - are not such characters, so whether one is there
    // does not change as they are split off).
    if !run_text[..n].iter().any(|b| b"~!@#^&|`?%".contains(b)) {
        while n > 1 && matches!(run_text[n - 1], b'+' | b'-') {
            n -= 1;
        }
    }
    n
}

impl SqlLexer {
    /// A lexer at the top level.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// True when the next line starts at the top level: not inside a literal, a quoted
    /// name, a dollar-quoted body or a comment. (Right after a literal that a next line
    /// starting with `'` would continue is the top level too: a COPY header or a new
    /// statement does not start with a quote.)
    #[must_use]
    pub fn at_top(&self) -> bool {
        matches!(self.state, State::Top | State::StrStop { .. })
    }

    /// True when a token is under way: inside a literal, a quoted name, a dollar-quoted body
    /// or a comment, or after a literal that the next line could continue.
    #[must_use]
    pub fn pending(&self) -> bool {
        self.state != State::Top
    }

    /// Bytes fed so far: the offset the next byte fed will have.
    #[must_use]
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads one line (with its newline, if any) for its state only.
    pub fn line(&mut self, line: &[u8]) {
        self.feed(line, false, &mut |_| {});
    }

    /// Reads one line (with its newline, if any: feed whole lines, a line without one is
    /// the end of the input) and calls `token` for every token completed in it. With
    /// `values`, string literals and quoted identifiers carry their values.
    ///
    /// A literal at the end of a line is handed out only when the next line shows it does
    /// not go on; [`SqlLexer::finish`] hands out one still pending at the end of the input.
    pub fn feed(&mut self, text: &[u8], values: bool, token: &mut dyn FnMut(Token)) {
        let base = self.offset;
        let at = |i: usize| base + i as u64;
        let mut i = 0;
        while i < text.len() {
            let b = text[i];
            match &mut self.state {
                State::Top => i = self.top(text, i, base, values, token),
                State::LineComment => {
                    if is_newline(b) {
                        self.state = State::Top;
                    } else {
                        i += 1;
                    }
                }
                State::BlockComment(depth) => {
                    if text[i..].starts_with(b"/*") {
                        *depth += 1;
                        i += 2;
                    } else if text[i..].starts_with(b"*/") {
                        if *depth == 0 {
                            self.state = State::Top;
                        } else {
                            *depth -= 1;
                        }
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
                State::Str(kind) => {
                    let kind = *kind;
                    let doubles =
                        matches!(kind, StrKind::Standard | StrKind::Escape | StrKind::Unicode);
                    if b == b'\'' && doubles && text.get(i + 1) == Some(&b'\'') {
                        self.push_value(values, b"'");
                        i += 2;
                    } else if b == b'\'' {
                        self.pending.end = at(i + 1);
                        self.state = State::StrStop {
                            kind,
                            stop: Stop::BeforeNewline,
                        };
                        i += 1;
                    } else if b == b'\\' && kind == StrKind::Escape {
                        let (value, n) = escape(text, i);
                        match value {
                            Some(v) => self.push_value(values, &v),
                            None => self.pending.too_long = true,
                        }
                        i += n;
                    } else {
                        let run = text[i..]
                            .iter()
                            .take_while(|c| **c != b'\'' && **c != b'\\')
                            .count()
                            .max(1);
                        self.push_value(values, &text[i..i + run]);
                        i += run;
                    }
                }
                State::StrStop { kind, stop } => {
                    let (kind, phase) = (*kind, *stop);
                    let comment = text[i..].starts_with(b"--");
                    let step = match phase {
                        Stop::BeforeNewline if matches!(b, b' ' | b'\t' | 0x0c | 0x0b) => {
                            Some((Stop::BeforeNewline, 1))
                        }
                        Stop::BeforeNewline if comment => Some((Stop::BeforeNewlineComment, 2)),
                        Stop::BeforeNewline
                        | Stop::BeforeNewlineComment
                        | Stop::AfterNewlineComment
                            if is_newline(b) =>
                        {
                            Some((Stop::AfterNewline, 1))
                        }
                        Stop::BeforeNewlineComment => Some((Stop::BeforeNewlineComment, 1)),
                        Stop::AfterNewline if is_space(b) => Some((Stop::AfterNewline, 1)),
                        Stop::AfterNewline if comment => Some((Stop::AfterNewlineComment, 2)),
                        Stop::AfterNewlineComment => Some((Stop::AfterNewlineComment, 1)),
                        _ => None,
                    };
                    if let Some((next, len)) = step {
                        self.state = State::StrStop { kind, stop: next };
                        i += len;
                    } else if phase == Stop::AfterNewline && b == b'\'' {
                        // The literal goes on, read by its own rules.
                        self.state = State::Str(kind);
                        i += 1;
                    } else {
                        // Not continued: the literal ended at its quote; this byte is read
                        // again at the top level (what was skipped to reach it is blanks
                        // and comments there too).
                        self.emit_str(kind, values, token);
                        self.state = State::Top;
                    }
                }
                State::Quoted { unicode } => {
                    let unicode = *unicode;
                    if b == b'"' && text.get(i + 1) == Some(&b'"') {
                        self.push_value(values, b"\"");
                        i += 2;
                    } else if b == b'"' {
                        let p = std::mem::take(&mut self.pending);
                        token(Token {
                            kind: Kind::Quoted { unicode },
                            start: p.start,
                            end: at(i + 1),
                            value: (values && !unicode && !p.too_long)
                                .then(|| truncate_name(p.value)),
                        });
                        self.state = State::Top;
                        i += 1;
                    } else {
                        let run = text[i..].iter().take_while(|c| **c != b'"').count().max(1);
                        self.push_value(values, &text[i..i + run]);
                        i += run;
                    }
                }
                State::Dollar(tag) => {
                    if text[i..].starts_with(tag) {
                        let end = i + tag.len();
                        let p = std::mem::take(&mut self.pending);
                        token(Token {
                            kind: Kind::Str(StrKind::Dollar),
                            start: p.start,
                            end: at(end),
                            value: (values && !p.too_long).then_some(p.value),
                        });
                        self.state = State::Top;
                        i = end;
                    } else {
                        let run = text[i + 1..].iter().take_while(|c| **c != b'$').count() + 1;
                        self.push_value(values, &text[i..i + run]);
                        i += run;
                    }
                }
            }
        }
        self.offset += text.len() as u64;
    }

    /// The end of the input: a literal that could still have gone on is handed out. True
    /// when the input ended at the top level (not inside a literal, a quoted name, a
    /// dollar-quoted body or a block comment).
    pub fn finish(&mut self, values: bool, token: &mut dyn FnMut(Token)) -> bool {
        match self.state.clone() {
            State::StrStop { kind, .. } => {
                self.emit_str(kind, values, token);
                self.state = State::Top;
                true
            }
            State::LineComment => {
                self.state = State::Top;
                true
            }
            State::Top => true,
            _ => false,
        }
    }

    fn push_value(&mut self, values: bool, bytes: &[u8]) {
        let p = &mut self.pending;
        if values && !p.too_long {
            if p.value.len() + bytes.len() > MAX_VALUE {
                p.too_long = true;
                p.value = Vec::new();
            } else {
                p.value.extend_from_slice(bytes);
            }
        }
    }

    fn emit_str(&mut self, kind: StrKind, values: bool, token: &mut dyn FnMut(Token)) {
        let p = std::mem::take(&mut self.pending);
        let decoded = matches!(kind, StrKind::Standard | StrKind::Escape);
        token(Token {
            kind: Kind::Str(kind),
            start: p.start,
            end: p.end,
            value: (values && decoded && !p.too_long).then_some(p.value),
        });
    }

    /// Starts a multi-line token at `text[i]`.
    fn begin(&mut self, start: u64, state: State) {
        self.pending = Pending {
            start,
            ..Pending::default()
        };
        self.state = state;
    }

    /// One step at the top level from `text[i]`; returns the next index.
    fn top(
        &mut self,
        text: &[u8],
        i: usize,
        base: u64,
        _values: bool,
        token: &mut dyn FnMut(Token),
    ) -> usize {
        let at = |k: usize| base + k as u64;
        let b = text[i];
        let next = text.get(i + 1).copied();
        let mut emit = |kind: Kind, end: usize| {
            token(Token {
                kind,
                start: at(i),
                end: at(end),
                value: None,
            });
            end
        };
        if is_space(b) {
            return i + 1;
        }
        match (b, next) {
            (b'-', Some(b'-')) => {
                self.state = State::LineComment;
                return i + 2;
            }
            (b'/', Some(b'*')) => {
                self.state = State::BlockComment(0);
                return i + 2;
            }
            (b'\'', _) => {
                self.begin(at(i), State::Str(StrKind::Standard));
                return i + 1;
            }
            (b'"', _) => {
                self.begin(at(i), State::Quoted { unicode: false });
                return i + 1;
            }
            _ => {}
        }
        // Prefixed literals, only at the start of a token.
        let prefixed = match (b.to_ascii_lowercase(), next) {
            (b'e', Some(b'\'')) => Some((StrKind::Escape, 2)),
            (b'b', Some(b'\'')) => Some((StrKind::Bit, 2)),
            (b'x', Some(b'\'')) => Some((StrKind::Hex, 2)),
            (b'u', Some(b'&')) if text.get(i + 2) == Some(&b'\'') => Some((StrKind::Unicode, 3)),
            _ => None,
        };
        if let Some((kind, len)) = prefixed {
            self.begin(at(i), State::Str(kind));
            return i + len;
        }
        if b.eq_ignore_ascii_case(&b'u') && next == Some(b'&') && text.get(i + 2) == Some(&b'"') {
            self.begin(at(i), State::Quoted { unicode: true });
            return i + 3;
        }
        if b.eq_ignore_ascii_case(&b'n') && next == Some(b'\'') {
            // National character: the keyword NCHAR, then a plain literal.
            return emit(Kind::Word("nchar".into()), i + 1);
        }
        if b == b'$' {
            let digits = text[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            if digits > 0 {
                // `$1a` is `$1` and `a` to 18 as to 14 (15 to 17 refuse it).
                return emit(Kind::Param, i + 1 + digits);
            }
            let tag_len = match next {
                Some(c) if is_ident_start(c) => text[i + 1..]
                    .iter()
                    .take_while(|c| is_ident_cont(**c) && **c != b'$')
                    .count(),
                _ => 0,
            };
            if text.get(i + 1 + tag_len) == Some(&b'$') {
                let end = i + tag_len + 2;
                self.begin(at(i), State::Dollar(text[i..end].to_vec()));
                return end;
            }
            return emit(Kind::Char(b'$'), i + 1);
        }
        if b.is_ascii_digit() || (b == b'.' && next.is_some_and(|c| c.is_ascii_digit())) {
            let (end, junk) = number_end(text, i);
            return emit(if junk { Kind::Junk } else { Kind::Number }, end);
        }
        if is_ident_start(b) {
            let len = text[i..].iter().take_while(|c| is_ident_cont(**c)).count();
            let word = truncate_name(text[i..i + len].to_ascii_lowercase());
            let word = String::from_utf8_lossy(&word).into_owned();
            return emit(Kind::Word(word), i + len);
        }
        if b == b':' && next == Some(b':') {
            return emit(Kind::Typecast, i + 2);
        }
        if b == b'.' && next == Some(b'.') {
            return emit(Kind::Op("..".into()), i + 2);
        }
        if b == b':' && next == Some(b'=') {
            return emit(Kind::Op(":=".into()), i + 2);
        }
        if is_op_char(b) {
            let n = operator_len(text, i);
            let kind = if n == 1 {
                Kind::Char(b)
            } else {
                Kind::Op(String::from_utf8_lossy(&text[i..i + n]).into_owned())
            };
            return emit(kind, i + n);
        }
        emit(Kind::Char(b), i + 1)
    }
}

/// Longest name the server keeps, in bytes (`NAMEDATALEN - 1`).
pub const MAX_NAME: usize = 63;

/// A name as the server keeps it: cut to [`MAX_NAME`] bytes at a character boundary
/// (it does so, with a notice, for every identifier, quoted or not; keywords are looked up
/// before, and none is that long).
#[must_use]
pub fn truncate_name(mut name: Vec<u8>) -> Vec<u8> {
    if name.len() > MAX_NAME {
        let mut cut = MAX_NAME;
        while cut > 0 && name[cut] & 0xc0 == 0x80 {
            cut -= 1;
        }
        name.truncate(cut);
    }
    name
}

/// The decimal integer at `text[i..]` as PostgreSQL 16 reads one (digits, each `_`
/// between two digits): its end, and whether it holds a `_`.
fn decimal_run(text: &[u8], i: usize) -> (usize, bool) {
    let digit = |k: usize| text.get(k).is_some_and(u8::is_ascii_digit);
    let mut j = i;
    let mut underscore = false;
    while digit(j) {
        j += 1;
        if text.get(j) == Some(&b'_') && digit(j + 1) {
            underscore = true;
            j += 1;
        }
    }
    (j, underscore)
}

/// After a number ending at `j`: the end of a word run into it (`123abc`), else `j`.
fn junk_end(text: &[u8], j: usize) -> usize {
    match text.get(j) {
        Some(&b) if is_ident_start(b) => {
            j + text[j..].iter().take_while(|c| is_ident_cont(**c)).count()
        }
        _ => j,
    }
}

/// The number starting at `text[i]` (a digit, or `.` before one), by PostgreSQL 16's
/// rules (its `scan.l`: `decinteger`, `hexinteger`..., `numeric`, `real`, their `fail`
/// and `junk` forms, longest match first): its end, and whether it is [`Kind::Junk`].
fn number_end(text: &[u8], i: usize) -> (usize, bool) {
    let radix = match (text[i], text.get(i + 1).map(u8::to_ascii_lowercase)) {
        (b'0', Some(b'x')) => Some(16),
        (b'0', Some(b'o')) => Some(8),
        (b'0', Some(b'b')) => Some(2),
        _ => None,
    };
    if let Some(radix) = radix {
        // `0x1F`, `0x_1F`, `0x1_F`; `0x`, `0x_` alone fail. All junk to older servers.
        let digit = |k: usize| text.get(k).is_some_and(|c| char::from(*c).is_digit(radix));
        let mut j = i + 2;
        while text.get(j) == Some(&b'_') && digit(j + 1) || digit(j) {
            j += if digit(j) { 1 } else { 2 };
        }
        if j == i + 2 && text.get(j) == Some(&b'_') {
            j += 1;
        }
        // Longest match: `0xg` is `0` run into the word `xg`.
        return (junk_end(text, j).max(junk_end(text, i + 1)), true);
    }
    let (mut j, mut junk) = decimal_run(text, i);
    if text.get(j) == Some(&b'.') && text.get(j + 1) != Some(&b'.') {
        let (end, underscore) = decimal_run(text, j + 1);
        j = end;
        junk |= underscore;
    }
    if matches!(text.get(j), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(text.get(j + 1), Some(b'+' | b'-')));
        let (end, underscore) = decimal_run(text, j + 1 + sign);
        if end > j + 1 + sign {
            j = end;
            junk |= underscore;
        } else if sign == 1 {
            // `1e+`: fails on 16, a number and more on older servers.
            j += 2;
            junk = true;
        }
    }
    let end = junk_end(text, j);
    (end, junk || end > j)
}

/// All tokens of a whole text, values collected: for tests, fuzzing and short texts.
/// `None` when the text ends inside a literal, a quoted name, a dollar-quoted body or a
/// block comment.
#[must_use]
pub fn tokens(text: &[u8]) -> Option<Vec<Token>> {
    let mut lexer = SqlLexer::new();
    let mut out = Vec::new();
    for line in text.split_inclusive(|b| *b == b'\n') {
        lexer.feed(line, true, &mut |t| out.push(t));
    }
    lexer.finish(true, &mut |t| out.push(t)).then_some(out)
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

    /// The tokens as short strings: words as they are, `'value'` for literals (`'?'`
    /// without a value), `"value"` for quoted names, `#` numbers, `$n` parameters, other
    /// characters and operators as written.
    fn show(text: &str) -> Vec<String> {
        tokens(text.as_bytes())
            .expect("complete")
            .into_iter()
            .map(|t| {
                let value = t
                    .value
                    .as_deref()
                    .map_or("?".into(), |v| String::from_utf8_lossy(v).into_owned());
                match t.kind {
                    Kind::Word(w) => w,
                    Kind::Str(_) => format!("'{value}'"),
                    Kind::Quoted { .. } => format!("\"{value}\""),
                    Kind::Number => "#".into(),
                    Kind::Junk => "junk".into(),
                    Kind::Param => "$n".into(),
                    Kind::Typecast => "::".into(),
                    Kind::Op(o) => o,
                    Kind::Char(c) => (c as char).to_string(),
                }
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
        // `$b$a$`: the failed `$b$` gives back its last `$`, which opens the real end.
        assert_eq!(show("SELECT $a$x$b$a$;"), ["select", "'x$b'", ";"]);
        assert_eq!(show("SELECT $a$x$ab$a$;"), ["select", "'x$ab'", ";"]);
    }

    #[test]
    fn a_dash_dash_comment_ends_at_a_bare_cr() {
        // See: issue 26, finding 1. The server reads `CREATE ROLE evil ...`.
        let text = "CREATE --\rROLE evil SUPERUSER LOGIN /*\n SCHEMA x -- */\n;";
        assert_eq!(
            show(text),
            ["create", "role", "evil", "superuser", "login", ";"]
        );
        // CRLF and form feed are whitespace.
        assert_eq!(
            show("CREATE\r\nSCHEMA\x0ca;"),
            ["create", "schema", "a", ";"]
        );
    }

    #[test]
    fn literals_separated_by_a_newline_are_one() {
        // See: issue 26, finding 2.
        assert_eq!(
            show("SELECT set_config('session_replication_'\n'role', 'x', false);"),
            [
                "select",
                "set_config",
                "(",
                "'session_replication_role'",
                ",",
                "'x'",
                ",",
                "false",
                ")",
                ";"
            ]
        );
        // Comments and blank lines may sit between the parts; a comment must be followed
        // by a newline, and at least one newline is needed.
        assert_eq!(
            show("SELECT 'a' -- c\n  \n-- d\n 'b';"),
            ["select", "'ab'", ";"]
        );
        assert_eq!(show("SELECT 'a'\r'b';"), ["select", "'ab'", ";"]);
        assert_eq!(show("SELECT 'a' 'b';"), ["select", "'a'", "'b'", ";"]);
        assert_eq!(show("SELECT 'a'/*\n*/'b';"), ["select", "'a'", "'b'", ";"]);
        // After E' the continued part is read with backslash escapes too: here `\'` does
        // not end it.
        assert_eq!(
            show("SELECT E'a'\n'\\'; DROP'\n;"),
            ["select", "'a'; DROP'", ";"]
        );
        // Not continued: the bytes after the quote are read at the top level.
        assert_eq!(show("SELECT 'a'\n-1;"), ["select", "'a'", "-", "#", ";"]);
        assert_eq!(show("SELECT 'a'\n\n;"), ["select", "'a'", ";"]);
    }

    #[test]
    fn escapes_prefixes_and_identifiers() {
        assert_eq!(
            show("SELECT E'\\x41\\102\\u0043\\n\\'\\q', 'a\\b', abce'x', U&'d', B'1''0';"),
            [
                "select",
                "'ABC\n'q'",
                ",",
                "'a\\b'",
                ",",
                "abce",
                "'x'",
                ",",
                "'?'",
                ",",
                "'?'",
                "'0'",
                ";"
            ]
        );
        assert_eq!(
            show("SET \"Session_Replication_Role\" = x; SELECT N'n', u&\"x\", a$b$;"),
            [
                "set",
                "\"Session_Replication_Role\"",
                "=",
                "x",
                ";",
                "select",
                "nchar",
                "'n'",
                ",",
                "\"?\"",
                ",",
                "a$b$",
                ";"
            ]
        );
        // Keywords fold ASCII only; bytes >= 0x80 belong to identifiers.
        assert_eq!(show("SeLeCt ÉtÉ;"), ["select", "ÉtÉ", ";"]);
    }

    #[test]
    fn operators_stop_at_comment_starts() {
        assert_eq!(show("SELECT 1 +/* c */ 2;"), ["select", "#", "+", "#", ";"]);
        assert_eq!(show("SELECT 1 *--c\n2;"), ["select", "#", "*", "#", ";"]);
        assert_eq!(
            show("SELECT a =- 1, b @- c;"),
            ["select", "a", "=", "-", "#", ",", "b", "@-", "c", ";"]
        );
        assert_eq!(
            show("SELECT 1..2, 1.e5, .5, 1e-3, x::int;"),
            ["select", "#", "..", "#", ",", "#", ",", "#", ",", "#", ",", "x", "::", "int", ";"]
        );
        // `1e'x'`: a number run into a word, then a plain literal (16 refuses it, 14
        // reads `1 e'x'`), so junk to the allow-list.
        assert_eq!(show("SELECT 1e'x';"), ["select", "junk", "'x'", ";"]);
    }

    #[test]
    fn what_postgresql_s_parser_reads_otherwise() {
        // Each found by the sql_parser fuzz target (stg's lexer against libpg_query's).
        // `:=` is one token.
        assert_eq!(
            show("SELECT f(a := 1);"),
            ["select", "f", "(", "a", ":=", "#", ")", ";"]
        );
        // Numbers 16 and later read as one, and numbers run into words: junk, whatever
        // an older server makes of them.
        for junk in [
            "0x1F", "0X1f", "0o17", "0b101", "0x_1F", "1_000", "1.5_5", "123abc", "1e", "1e+",
            "0x", "1.5e3x",
        ] {
            let t = tokens(format!("SELECT {junk};").as_bytes()).unwrap();
            assert_eq!(t[1].kind, Kind::Junk, "{junk}");
            assert_eq!(t[1].end - t[1].start, junk.len() as u64, "{junk}");
            assert_eq!(t[2].kind, Kind::Char(b';'), "{junk}");
        }
        for number in ["0", "10", "1.5", ".5", "1.", "1e5", "1.5E-3", "00017"] {
            let t = tokens(format!("SELECT {number};").as_bytes()).unwrap();
            assert_eq!((t[1].kind.clone(), t.len()), (Kind::Number, 3), "{number}");
        }
        assert_eq!(show("SELECT 1..2;"), ["select", "#", "..", "#", ";"]);
        // `$1a` is `$1` then `a` to 18, as to 14 (15 to 17 refuse it).
        assert_eq!(show("SELECT $1a;"), ["select", "$n", "a", ";"]);
        // Names are cut to 63 bytes, at a character boundary, as the server keeps them.
        let long = "n".repeat(70);
        assert_eq!(show(&format!("SELECT {long};"))[1], "n".repeat(63));
        let quoted = format!("SELECT \"{}\u{e9}\";", "q".repeat(62));
        assert_eq!(show(&quoted)[1], format!("\"{}\"", "q".repeat(62)));
    }

    #[test]
    fn long_runs_are_linear() {
        // A long run of `+` (each its own token) is looked at a bounded piece at a time:
        // quadratic, this would take minutes. See: the restore_script fuzz target.
        let text = format!("SELECT 1 {}1;", "+".repeat(100_000));
        let t = tokens(text.as_bytes()).unwrap();
        assert_eq!(t.len(), 100_000 + 4);
        assert_eq!(operator_len(b"@-+-", 0), 4);
        assert_eq!(operator_len(b"=+-", 0), 1);
    }

    #[test]
    fn unfinished_input_is_said() {
        assert!(tokens(b"SELECT 'a").is_none());
        assert!(tokens(b"SELECT /* a").is_none());
        assert!(tokens(b"SELECT $x$ a").is_none());
        assert!(tokens(b"SELECT \"a").is_none());
        assert_eq!(show("SELECT 'a'"), ["select", "'a'"]);
        assert_eq!(show("SELECT 1 -- a"), ["select", "#"]);
    }

    #[test]
    fn long_values_are_lexed_but_not_kept() {
        let long = "x".repeat(MAX_VALUE + 1);
        let t = tokens(format!("SELECT '{long}';").as_bytes()).unwrap();
        assert_eq!(t[1].kind, Kind::Str(StrKind::Standard));
        assert_eq!(t[1].value, None);
        assert_eq!(t[2].kind, Kind::Char(b';'));
    }
}
