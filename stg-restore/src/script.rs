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
use stg_core::sql_lexer::{Kind, SqlLexer, Token};

use crate::policy::{self, Allowed, Class, Policy, RoleRef};

/// Target size of one [`Item::CopyData`] chunk.
const DATA_CHUNK: usize = 128 * 1024;

/// Most tokens one statement may have (a bound on memory next to the statement's size;
/// pg_dump's largest statements, a table of 1,600 columns or a long enum, have tens of
/// thousands).
pub const MAX_TOKENS: usize = 1_000_000;

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
    /// The roles it makes owners of something (`OWNER TO r`...), where in `sql` each is
    /// named: the loader gives a superuser's objects to a role that is not one instead.
    pub owners: Vec<RoleRef>,
}

/// Where a statement ends: at a `;` outside parentheses and outside the `BEGIN ... END`
/// body of `CREATE [OR REPLACE] FUNCTION|PROCEDURE` (a SQL-standard body, PostgreSQL 14
/// and later, holds `;`s of its own), followed the way psql follows it, so that a stream
/// `zstdcat | psql` would run is split into the same statements.
/// See: `src/fe_utils/psqlscan.l` in PostgreSQL's source (`begin_depth`).
#[derive(Clone, Debug, Default)]
pub struct Boundary {
    parens: u64,
    begins: u64,
    words: usize,
    /// First letters of the statement's first four words, where they are `create`, `or`,
    /// `replace`, `function` or `procedure`.
    head: [u8; 4],
}

impl Boundary {
    /// Follows one token; true when it ends the statement (the boundary then starts over).
    pub fn token(&mut self, t: &Token) -> bool {
        match &t.kind {
            Kind::Char(b'(') => self.parens += 1,
            Kind::Char(b')') => self.parens = self.parens.saturating_sub(1),
            Kind::Char(b';') if self.parens == 0 && self.begins == 0 => {
                *self = Boundary::default();
                return true;
            }
            Kind::Word(w) => {
                if self.words < self.head.len()
                    && matches!(
                        w.as_str(),
                        "create" | "or" | "replace" | "function" | "procedure"
                    )
                {
                    self.head[self.words] = w.as_bytes()[0];
                }
                self.words += 1;
                let h = self.head;
                let routine = h[0] == b'c'
                    && (matches!(h[1], b'f' | b'p')
                        || (h[1] == b'o' && h[2] == b'r' && matches!(h[3], b'f' | b'p')));
                if routine && self.parens == 0 {
                    match w.as_str() {
                        "begin" => self.begins += 1,
                        // CASE ends with END too; it counts only inside a BEGIN.
                        "case" if self.begins > 0 => self.begins += 1,
                        "end" => self.begins = self.begins.saturating_sub(1),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        false
    }
}

/// The statement the loader sends for a COPY block: `COPY <table as the stream wrote it>
/// (<columns, quoted>) FROM STDIN`, nothing of the header's text but its names.
pub fn copy_statement(header: &CopyHeader) -> String {
    if header.columns.is_empty() {
        return format!("COPY {} FROM STDIN", header.qualified);
    }
    let columns: Vec<String> = header
        .columns
        .iter()
        .map(|c| crate::sql::ident(c))
        .collect();
    format!(
        "COPY {} ({}) FROM STDIN",
        header.qualified,
        columns.join(", ")
    )
}

/// True when `tokens` are at most one statement: no token but the last ends one.
pub fn one_statement(tokens: &[Token]) -> bool {
    let mut boundary = Boundary::default();
    let n = tokens.len();
    tokens
        .iter()
        .enumerate()
        .all(|(i, t)| !boundary.token(t) || i + 1 == n)
}

/// Turns lines into [`Item`]s.
pub struct Splitter {
    lexer: SqlLexer,
    boundary: Boundary,
    /// The statement read so far (from the byte after the previous statement's `;`).
    buf: Vec<u8>,
    /// The lexer's offset of `buf[0]`.
    buf_from: u64,
    /// The statement's tokens so far (offsets are the lexer's).
    tokens: Vec<Token>,
    /// Where each line of `buf` starts (the lexer's offset) and its number.
    lines: Vec<(u64, u64)>,
    /// Data lines of the current COPY block not yet handed on, and how many in the block.
    data: Vec<u8>,
    rows: u64,
    restrict: Option<String>,
    /// The allow-list, with what it remembers of the stream.
    policy: Policy,
    /// Statements run after all others ([`Class::Deferred`]).
    deferred: Vec<Statement>,
    deferred_bytes: usize,
    /// Event-trigger statements left out ([`Class::EventTrigger`]): their lines.
    left_out: Vec<u64>,
    /// Longest statement accepted, in bytes.
    max_statement: usize,
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
    /// statements may name it (a plain `pg_dump -C` stream, rewritten by the reader);
    /// `allowed` what the operator allows beyond pg_dump's ordinary forms; a statement
    /// longer than `max_statement` bytes is refused.
    pub fn new(incoming: Option<String>, allowed: Allowed, max_statement: usize) -> Splitter {
        Splitter {
            lexer: SqlLexer::new(),
            boundary: Boundary::default(),
            buf: Vec::new(),
            buf_from: 0,
            tokens: Vec::new(),
            lines: Vec::new(),
            data: Vec::new(),
            rows: 0,
            restrict: None,
            policy: Policy::new(incoming, allowed),
            deferred: Vec::new(),
            deferred_bytes: 0,
            left_out: Vec::new(),
            max_statement,
        }
    }

    /// The stream has a manifest: it is stg-dump's, written without `-C`, and no statement
    /// of it may name a database.
    pub fn no_database_statements(&mut self) {
        self.policy.no_database_statements();
    }

    /// True when nothing of a statement is pending: no token, and the lexer between
    /// tokens (not inside a literal or comment, nor after a literal a next line could
    /// continue).
    fn idle(&self) -> bool {
        self.tokens.is_empty() && !self.lexer.pending()
    }

    /// A line the tally took for a COPY header.
    pub fn copy_header(&mut self, no: u64, line: &[u8], out: &mut Vec<Item>) -> Result<(), String> {
        if !self.idle() {
            let from = self.statement_line().unwrap_or(no);
            return Err(format!(
                "line {no}: a COPY header inside an unfinished statement (the statement from \
                 line {from} has no `;`)"
            ));
        }
        let header = copy_text::parse_copy_header(line)
            .ok_or_else(|| format!("line {no}: not a COPY header"))?;
        self.policy
            .copy_block(&header.qualified)
            .map_err(|why| format!("line {no}: {why}"))?;
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

    /// The line the statement under way starts on (its first token's).
    fn statement_line(&self) -> Option<u64> {
        let first = self.tokens.first()?.start;
        self.lines
            .iter()
            .rev()
            .find(|(offset, _)| *offset <= first)
            .or(self.lines.first())
            .map(|(_, no)| *no)
    }

    /// A line of SQL (outside COPY blocks).
    pub fn sql(&mut self, no: u64, line: &[u8], out: &mut Vec<Item>) -> Result<(), String> {
        let base = self.lexer.offset();
        if self.buf.is_empty() && self.tokens.is_empty() {
            self.buf_from = base;
            self.lines.clear();
        }
        self.lines.push((base, no));
        self.buf.extend_from_slice(line);
        let mut got = Vec::new();
        self.lexer.feed(line, true, &mut |t| got.push(t));
        let mut ended_here = false;
        for t in got {
            if t.kind == Kind::Char(b'\\') {
                let rel = usize::try_from(t.start.saturating_sub(base)).unwrap_or(0);
                if self.tokens.is_empty() && !ended_here && t.start >= base {
                    // psql reads the rest of the line as the meta-command.
                    self.meta_command(no, &line[rel..])?;
                    // The meta-command's own words are not SQL: the statement starts after it.
                    self.buf.clear();
                    return Ok(());
                }
                return Err(format!(
                    "line {no}: psql meta-command `{}` is refused (a stream's SQL runs only \
                     in the incoming database; meta-commands run programs, switch databases \
                     and write files)",
                    meta_name(&line[rel..])
                ));
            }
            let ends = self.boundary.token(&t);
            let end = t.end;
            self.tokens.push(t);
            if self.tokens.len() > MAX_TOKENS {
                return Err(format!(
                    "line {no}: the statement from line {} has more than {MAX_TOKENS} tokens",
                    self.statement_line().unwrap_or(no)
                ));
            }
            if ends {
                self.statement(end, out)?;
                self.lines = vec![(base, no)];
                ended_here = true;
            }
        }
        if self.tokens.is_empty() && self.idle() {
            // Blank lines and comments between statements are not sent.
            self.buf.clear();
        } else if self.buf.len() > self.max_statement {
            return Err(format!(
                "line {no}: the statement from line {} is longer than {} bytes (the bound \
                 on one statement; --max-line-size raises it)",
                self.statement_line().unwrap_or(no),
                self.max_statement
            ));
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

    /// The statement ending at the lexer's offset `end` (after its `;`) is complete: check
    /// it and hand it on.
    fn statement(&mut self, end: u64, out: &mut Vec<Item>) -> Result<(), String> {
        let line = self.statement_line().unwrap_or(0);
        let cut = usize::try_from(end - self.buf_from).expect("within the buffer");
        let rest = self.buf.split_off(cut);
        let text = std::mem::replace(&mut self.buf, rest);
        let from = self.buf_from;
        self.buf_from = end;
        let mut tokens = std::mem::take(&mut self.tokens);
        for t in &mut tokens {
            t.start -= from;
            t.end -= from;
        }
        if text.len() > self.max_statement {
            return Err(format!(
                "line {line}: the statement is longer than {} bytes (the bound on one \
                 statement; --max-line-size raises it)",
                self.max_statement
            ));
        }
        let sql = String::from_utf8(text).map_err(|_| {
            format!("line {line}: the statement is not UTF-8 (stg-restore loads UTF-8 dumps)")
        })?;
        if sql.contains('\0') {
            return Err(format!("line {line}: the statement holds a NUL byte"));
        }
        if tokens.len() == 1 {
            // A lone `;`: nothing to run.
            return Ok(());
        }
        let class = self
            .policy
            .classify(line, &tokens)
            .map_err(|why| format!("line {line}: {why}: {}", first_line(&sql)))?;
        let owners = policy::owner_roles(&tokens);
        match class {
            Class::EventTrigger => {
                self.left_out.push(line);
                Ok(())
            }
            Class::Deferred => {
                self.deferred_bytes += sql.len();
                if self.deferred_bytes > self.max_statement {
                    return Err(format!(
                        "line {line}: statements held back to the end of more than {} bytes in \
                         all",
                        self.max_statement
                    ));
                }
                self.deferred.push(Statement {
                    line,
                    sql,
                    class,
                    owners,
                });
                Ok(())
            }
            _ => {
                out.push(Item::Statement(Statement {
                    line,
                    sql,
                    class,
                    owners,
                }));
                Ok(())
            }
        }
    }

    /// What the restore should tell about statements it left out.
    pub fn warnings(&self) -> Vec<String> {
        if self.left_out.is_empty() {
            return Vec::new();
        }
        let lines: Vec<String> = self.left_out.iter().map(u64::to_string).collect();
        vec![format!(
            "left out {} event-trigger statement(s) (line {}): an event trigger must be owned \
             by a superuser and runs its function as whoever runs DDL in the database, and \
             nothing a stream restores is owned by a superuser; create them by hand if staging \
             needs them",
            self.left_out.len(),
            lines.join(", ")
        )]
    }

    /// The stream (or its SQL, at the trailer) ended: a statement without its `;` is an
    /// error (psql would run it; a pg_dump stream never ends so). The held-back
    /// event-trigger statements are handed on, last.
    pub fn finish(&mut self, out: &mut Vec<Item>) -> Result<(), String> {
        let mut got = Vec::new();
        let at_top = self.lexer.finish(true, &mut |t| got.push(t));
        self.tokens.extend(got);
        if !at_top || !self.tokens.is_empty() {
            let from = self
                .statement_line()
                .or_else(|| self.lines.first().map(|(_, no)| *no))
                .unwrap_or(0);
            return Err(format!(
                "the stream ends inside a statement (from line {from}, no `;`)"
            ));
        }
        out.extend(self.deferred.drain(..).map(Item::Statement));
        Ok(())
    }
}

/// The statement's first line with content, shortened, for messages; a control character
/// in it (a bare CR that would rewrite the terminal line, an escape sequence) is shown
/// escaped.
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
    stg_core::terminal::escape(&short).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Result<Vec<(u64, String)>, String> {
        split_with(text, 1 << 20)
    }

    fn split_with(text: &str, max: usize) -> Result<Vec<(u64, String)>, String> {
        let mut s = Splitter::new(None, Allowed::default(), max);
        let mut out = Vec::new();
        for (i, line) in text.split_inclusive('\n').enumerate() {
            s.sql(i as u64 + 1, line.as_bytes(), &mut out)?;
        }
        s.finish(&mut out)?;
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

    #[test]
    fn a_sql_standard_body_is_one_statement() {
        let got = split(
            "CREATE FUNCTION public.g(a integer) RETURNS integer\n    LANGUAGE sql\n    BEGIN ATOMIC\n \
             SELECT CASE WHEN a > 0 THEN 1 ELSE 2 END;\n SELECT (a + 1);\nEND;\n\
             CREATE OR REPLACE PROCEDURE public.p()\n    LANGUAGE sql\n    BEGIN ATOMIC\n SELECT 1;\nEND;\n\
             CREATE SCHEMA after;\n",
        )
        .unwrap();
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].1.ends_with("END;"), "{got:?}");
        assert_eq!(got[1].0, 7);
        assert_eq!(got[2].1.trim(), "CREATE SCHEMA after;");
    }

    /// See: issue 26, finding 1: the comment ends at the CR, and the statement is read as
    /// the server reads it.
    #[test]
    fn a_comment_ended_by_a_bare_cr_hides_nothing() {
        let err =
            split("CREATE --\rROLE evil SUPERUSER LOGIN /*\n SCHEMA x -- */\n;\n").unwrap_err();
        assert!(err.contains("line 1: CREATE ROLE is refused"), "{err}");
    }

    #[test]
    fn event_triggers_run_last_and_no_copy_follows_a_trigger() {
        let mut s = Splitter::new(None, Allowed::default(), 1 << 20);
        let mut out = Vec::new();
        for (i, line) in [
            "CREATE EVENT TRIGGER e ON ddl_command_end EXECUTE FUNCTION public.f();\n",
            "CREATE TRIGGER t BEFORE INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION public.g();\n",
            "REFRESH MATERIALIZED VIEW public.v;\n",
        ]
        .iter()
        .enumerate()
        {
            s.sql(i as u64 + 1, line.as_bytes(), &mut out).unwrap();
        }
        let err = s
            .copy_header(4, b"COPY public.t (a) FROM stdin;\n", &mut out)
            .unwrap_err();
        assert!(err.contains("line 4") && err.contains("line 2"), "{err}");
        s.finish(&mut out).unwrap();
        let order: Vec<u64> = out
            .iter()
            .map(|i| match i {
                Item::Statement(s) => s.line,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(order, [2, 3]);
        assert!(s.warnings()[0].contains("line 1"), "{:?}", s.warnings());
    }

    #[test]
    fn a_statement_longer_than_the_bound_is_refused() {
        let long = format!(
            "COMMENT ON SCHEMA a IS '{}\n{}';\n",
            "x".repeat(60),
            "y".repeat(60)
        );
        assert!(split_with(&long, 200).is_ok());
        let err = split_with(&long, 100).unwrap_err();
        assert!(err.contains("longer than 100 bytes"), "{err}");
        // Comments between statements are not kept, so they count for nothing.
        let comments = format!(
            "-- {}\n-- {}\nCREATE SCHEMA a;\n",
            "x".repeat(90),
            "y".repeat(90)
        );
        assert!(split_with(&comments, 100).is_ok());
    }

    #[test]
    fn messages_show_control_characters_escaped() {
        assert_eq!(
            first_line("\n-- c\nCREATE --\rROLE x;"),
            "\"CREATE --\\rROLE x;\""
        );
        assert_eq!(first_line("CREATE SCHEMA a;"), "CREATE SCHEMA a;");
    }
}
