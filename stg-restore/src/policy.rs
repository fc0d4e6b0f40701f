//! Which statements of a stream stg-restore sends to the incoming database, and how each
//! may be scheduled.
//!
//! The stream is untrusted input: anyone who can write one can write a matching trailer.
//! Every top-level statement is therefore checked here before it is sent, against an
//! **allow-list** of the statement forms `pg_dump` writes into a database dump (without
//! `-C`). An allow-list, not a deny-list, because what a forged stream might try is open
//! ended (a new PostgreSQL version adds commands), while what `pg_dump` writes is a known,
//! slowly growing set; a form missing here fails a restore loudly, which is the safe way to
//! be wrong. Inside the allowed forms, the ones that reach beyond the incoming database are
//! refused: `CREATE/ALTER/DROP DATABASE`, `ROLE`, `USER`, `GROUP`, `TABLESPACE`, `ALTER
//! SYSTEM`, role membership grants, grants and comments on shared objects (databases,
//! tablespaces, roles, parameters), subscriptions that connect, and every `SELECT` but
//! `pg_dump`'s own calls (`set_config`, `setval`, large-object writes, statistics) with
//! literal arguments. The rule and its reasons are in `docs/security.md`.
//!
//! What this cannot see: the code a statement makes the server run. A function the stream
//! defines runs during the load wherever the schema calls it (a CHECK constraint, a column
//! default, an index expression, a materialized view's REFRESH), with the load role's
//! privileges; checking statements does not close that (`docs/security.md`, section 5).
//!
//! Not here: splitting the stream into statements ([`crate::script`]) and psql
//! meta-commands, which never reach this module (the splitter refuses them).
//! See: <https://www.postgresql.org/docs/current/sql-commands.html>.

/// How an allowed statement is run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Class {
    /// A session setting (`SET`, `RESET`, `SELECT pg_catalog.set_config(...)`): replayed on
    /// every connection before its next statement, in stream order. `key` is the setting.
    Setting {
        /// The setting's name, lowercase.
        key: String,
    },
    /// `BEGIN;`: pg_dump groups large-object writes in a transaction (the descriptor of
    /// `lo_open` lives only inside it). Honoured on one connection; it decides nothing about
    /// what is kept, which only the swap after verification does.
    Begin,
    /// `COMMIT;`, ending a [`Class::Begin`] group.
    Commit,
    /// An index or a constraint (post-data): may run beside other work that touches none of
    /// `tables`.
    Parallel {
        /// The tables it reads or locks, as written in the statement.
        tables: Vec<String>,
    },
    /// Anything else allowed: runs alone, after everything before it.
    Serial,
}

/// One lexical token of a statement.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    /// A keyword or bare identifier, uppercased.
    Word(String),
    /// A double-quoted identifier, unquoted.
    Quoted(String),
    /// A string literal (any form), with its contents (escapes not processed).
    Str(String),
    /// A number.
    Num,
    /// `$1`.
    Param,
    /// `::`.
    Cast,
    /// Any other character.
    Punct(char),
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || !c.is_ascii()
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()
}

/// Splits one statement into tokens; comments are skipped. `Err` for an unterminated
/// literal or comment (the splitter ended the statement where the server would not).
fn tokens(sql: &str) -> Result<Vec<Tok>, String> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let unterminated = |what: &str| Err(format!("unterminated {what}"));
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if b[i..].starts_with(b"--") {
            i = b[i..]
                .iter()
                .position(|&x| x == b'\n')
                .map_or(b.len(), |p| i + p);
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            loop {
                if i >= b.len() {
                    return unterminated("comment");
                }
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == b'\''
            || (matches!(c, b'E' | b'e' | b'B' | b'b' | b'X' | b'x' | b'N' | b'n')
                && b.get(i + 1) == Some(&b'\''))
            || ((c == b'U' || c == b'u') && b[i + 1..].starts_with(b"&'"))
        {
            let escapes = matches!(c, b'E' | b'e');
            let start = i + b[i..].iter().position(|&x| x == b'\'').unwrap_or(0) + 1;
            let mut j = start;
            loop {
                match b.get(j) {
                    None => return unterminated("string literal"),
                    Some(b'\\') if escapes => j += 2,
                    Some(b'\'') if b.get(j + 1) == Some(&b'\'') => j += 2,
                    Some(b'\'') => break,
                    Some(_) => j += 1,
                }
            }
            out.push(Tok::Str(sql[start..j].to_owned()));
            i = j + 1;
        } else if c == b'"' || ((c == b'U' || c == b'u') && b[i + 1..].starts_with(b"&\"")) {
            let start = i + b[i..].iter().position(|&x| x == b'"').unwrap_or(0) + 1;
            let mut j = start;
            let mut name = String::new();
            loop {
                match b.get(j) {
                    None => return unterminated("quoted identifier"),
                    Some(b'"') if b.get(j + 1) == Some(&b'"') => {
                        name.push('"');
                        j += 2;
                    }
                    Some(b'"') => break,
                    Some(_) => {
                        let ch = sql[j..].chars().next().expect("in bounds");
                        name.push(ch);
                        j += ch.len_utf8();
                    }
                }
            }
            out.push(Tok::Quoted(name));
            i = j + 1;
        } else if c == b'$' {
            let rest = &sql[i + 1..];
            if rest.starts_with(|ch: char| ch.is_ascii_digit()) {
                let len = rest
                    .find(|ch: char| !ch.is_ascii_digit())
                    .unwrap_or(rest.len());
                out.push(Tok::Param);
                i += 1 + len;
            } else {
                let len = rest.find(|ch: char| !is_ident_char(ch) || ch == '$');
                match len {
                    Some(len) if rest[len..].starts_with('$') => {
                        let tag = &sql[i..=i + 1 + len];
                        let body = i + tag.len();
                        let Some(end) = sql[body..].find(tag) else {
                            return unterminated("dollar-quoted string");
                        };
                        out.push(Tok::Str(sql[body..body + end].to_owned()));
                        i = body + end + tag.len();
                    }
                    _ => {
                        out.push(Tok::Punct('$'));
                        i += 1;
                    }
                }
            }
        } else if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            i += 1;
            while i < b.len() {
                let d = b[i];
                let exponent_sign = (d == b'+' || d == b'-') && matches!(b[i - 1], b'e' | b'E');
                if d.is_ascii_alphanumeric() || d == b'.' || d == b'_' || exponent_sign {
                    i += 1;
                } else {
                    break;
                }
            }
            out.push(Tok::Num);
        } else if c == b':' && b.get(i + 1) == Some(&b':') {
            out.push(Tok::Cast);
            i += 2;
        } else {
            let ch = sql[i..].chars().next().expect("in bounds");
            if is_ident_start(ch) {
                let len = sql[i..]
                    .find(|x: char| !is_ident_char(x))
                    .unwrap_or(sql.len() - i);
                out.push(Tok::Word(sql[i..i + len].to_ascii_uppercase()));
                i += len;
            } else {
                out.push(Tok::Punct(ch));
                i += ch.len_utf8();
            }
        }
    }
    Ok(out)
}

/// Session settings a dump may set, and that a restore replays on every connection.
/// `client_encoding` and `standard_conforming_strings` have their values checked too: the
/// loader speaks UTF-8, and stg-restore's own statement splitter reads literals as the
/// server does only with standard-conforming strings on.
const SETTINGS: &[&str] = &[
    "check_function_bodies",
    "client_encoding",
    "client_min_messages",
    "default_table_access_method",
    "default_tablespace",
    "default_toast_compression",
    "default_with_oids",
    "escape_string_warning",
    "idle_in_transaction_session_timeout",
    "lock_timeout",
    "role",
    "row_security",
    "search_path",
    "session_authorization",
    "standard_conforming_strings",
    "statement_timeout",
    "transaction_timeout",
    "xmloption",
];

/// Why a head word not on the allow-list is refused, for the message.
fn refused_head(head: &str) -> &'static str {
    match head {
        "LOAD" => "loads a shared library into the server",
        "DO" => "runs an anonymous code block, which pg_dump never writes",
        "CALL" | "EXECUTE" | "PREPARE" => "runs code, which pg_dump never writes",
        "COPY" => {
            "is not a `COPY table (columns) FROM stdin;` data block (COPY TO or FROM a file \
             or a program reads or writes the server's files)"
        }
        "DROP" | "REASSIGN" => "removes objects, which a dump into a fresh database never needs",
        "IMPORT" => "connects to a foreign server",
        "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "TRUNCATE" | "WITH" => {
            "changes rows outside a COPY data block, which stg-dump never writes"
        }
        "ROLLBACK" | "ABORT" | "END" | "START" | "SAVEPOINT" | "RELEASE" => {
            "controls transactions in a way pg_dump never writes"
        }
        "LISTEN" | "NOTIFY" | "UNLISTEN" => "signals other sessions",
        "CHECKPOINT" | "VACUUM" | "CLUSTER" | "REINDEX" | "ANALYZE" | "LOCK" | "DISCARD" => {
            "is maintenance that pg_dump never writes"
        }
        _ => "is not a statement pg_dump writes into a database dump",
    }
}

/// A refusal message for a statement whose head is `what`.
fn refuse(what: &str, why: &str) -> String {
    format!("{what} is refused: it {why}")
}

/// Checks one statement (its text as the splitter cut it, `;` included or not) and says
/// how to run it. `incoming` names the incoming database: a plain `pg_dump -C` stream's
/// database-level statements, rewritten to it by the reader, may name it and no other.
pub fn classify(sql: &str, incoming: Option<&str>) -> Result<Class, String> {
    let mut toks = tokens(sql)?;
    if toks.last() == Some(&Tok::Punct(';')) {
        toks.pop();
    }
    if at_depth0(&toks).iter().any(|&i| toks[i] == Tok::Punct(';')) {
        return Err("more than one statement in one piece of SQL".into());
    }
    let words: Vec<&str> = toks
        .iter()
        .map(|t| match t {
            Tok::Word(w) => w.as_str(),
            _ => "",
        })
        .collect();
    let Some(&head) = words.first() else {
        return Err("not a statement".into());
    };
    match head {
        "SET" | "RESET" => setting(&toks, &words),
        "SELECT" => select(&toks, &words),
        "BEGIN" if toks.len() == 1 => Ok(Class::Begin),
        "COMMIT" if toks.len() == 1 => Ok(Class::Commit),
        "BEGIN" | "COMMIT" => Err(refuse(
            head,
            "controls transactions in a way pg_dump never writes",
        )),
        "CREATE" => create(&toks, &words),
        "ALTER" => alter(&toks, &words, incoming),
        "COMMENT" | "SECURITY" => on_object(head, &toks, &words, incoming),
        "GRANT" | "REVOKE" => grant(head, &toks, &words, incoming),
        "REFRESH" if words.get(1) == Some(&"MATERIALIZED") => Ok(Class::Serial),
        "" => Err("not a statement (it does not start with a command)".into()),
        other => Err(refuse(other, refused_head(other))),
    }
}

/// The name of an object at `toks[i..]`, as written (`schema.table`, quoted parts
/// re-quoted), and the index after it.
fn object_name(toks: &[Tok], mut i: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    loop {
        match toks.get(i)? {
            Tok::Word(w) => name.push_str(&w.to_ascii_lowercase()),
            Tok::Quoted(q) => {
                name.push('"');
                name.push_str(&q.replace('"', "\"\""));
                name.push('"');
            }
            _ => return None,
        }
        i += 1;
        if toks.get(i) == Some(&Tok::Punct('.')) {
            name.push('.');
            i += 1;
        } else {
            return Some((name, i));
        }
    }
}

/// True when `toks[i..]` names exactly the incoming database.
fn is_incoming(toks: &[Tok], i: usize, incoming: Option<&str>) -> bool {
    let Some(incoming) = incoming else {
        return false;
    };
    match toks.get(i) {
        Some(Tok::Quoted(q)) => q == incoming,
        Some(Tok::Word(w)) => {
            w.eq_ignore_ascii_case(incoming) && incoming == incoming.to_lowercase()
        }
        _ => false,
    }
}

fn literal_text(t: Option<&Tok>) -> Option<String> {
    match t? {
        Tok::Str(s) => Some(s.replace("''", "'")),
        Tok::Word(w) => Some(w.to_ascii_lowercase()),
        _ => None,
    }
}

/// A setting and its value: only the names in [`SETTINGS`], with the values the loader
/// needs for the two that change how SQL is read.
fn check_setting(name: &str, value: Option<String>) -> Result<Class, String> {
    let key = name.to_ascii_lowercase();
    if !SETTINGS.contains(&key.as_str()) {
        return Err(format!(
            "setting {key} is refused: it is not one pg_dump sets (allowed: {})",
            SETTINGS.join(", ")
        ));
    }
    let value = value.unwrap_or_default().to_ascii_lowercase();
    if key == "client_encoding" && !matches!(value.as_str(), "utf8" | "utf-8" | "unicode") {
        return Err(format!(
            "client_encoding {value:?} is refused: stg-restore loads UTF-8 (dump with \
             stg-dump, or pg_dump --encoding=UTF8)"
        ));
    }
    if key == "standard_conforming_strings" && !matches!(value.as_str(), "on" | "true" | "1") {
        return Err(
            "standard_conforming_strings other than on is refused: it changes where string \
             literals end"
                .into(),
        );
    }
    Ok(Class::Setting { key })
}

fn setting(toks: &[Tok], words: &[&str]) -> Result<Class, String> {
    let mut i = 1;
    if matches!(words.get(i), Some(&("SESSION" | "LOCAL"))) {
        if words.get(i + 1) == Some(&"AUTHORIZATION") {
            return check_setting("session_authorization", None);
        }
        i += 1;
    }
    let (name, next) = object_name(toks, i).ok_or("SET without a setting name")?;
    if words[0] == "RESET" {
        // RESET of client_encoding or standard_conforming_strings goes back to the server's
        // default, which may not be what the loader needs: refused by the value check.
        return check_setting(&name, None);
    }
    let value_at = match toks.get(next) {
        Some(Tok::Punct('=')) => next + 1,
        Some(Tok::Word(w)) if w == "TO" => next + 1,
        _ => next,
    };
    check_setting(&name, literal_text(toks.get(value_at)))
}

/// Functions pg_dump calls with `SELECT`, with literal arguments only.
const SELECT_CALLS: &[&str] = &[
    "SET_CONFIG",
    "SETVAL",
    "LO_CREATE",
    "LO_OPEN",
    "LOWRITE",
    "LO_CLOSE",
    "PG_RESTORE_RELATION_STATS",
    "PG_RESTORE_ATTRIBUTE_STATS",
];

fn select(toks: &[Tok], words: &[&str]) -> Result<Class, String> {
    let refused = || {
        refuse(
            "SELECT",
            "is not one of pg_dump's own calls (pg_catalog.set_config, setval, lo_create, \
             lo_open, lowrite, lo_close, pg_restore_*_stats) with literal arguments; a query \
             can read files or reach other servers",
        )
    };
    let mut i = 1;
    if toks.get(1) == Some(&Tok::Punct('*')) && words.get(2) == Some(&"FROM") {
        i = 3;
    }
    if words.get(i) != Some(&"PG_CATALOG") || toks.get(i + 1) != Some(&Tok::Punct('.')) {
        return Err(refused());
    }
    let function = *words.get(i + 2).ok_or_else(refused)?;
    if !SELECT_CALLS.contains(&function) || toks.get(i + 3) != Some(&Tok::Punct('(')) {
        return Err(refused());
    }
    // Arguments: literals, numbers (signed), true/false/null, casts to a type name.
    let mut args: Vec<Option<String>> = vec![None];
    let mut j = i + 4;
    loop {
        match toks.get(j) {
            Some(Tok::Punct(')')) if j + 1 == toks.len() => break,
            Some(Tok::Str(s)) => {
                *args.last_mut().expect("one") = Some(s.replace("''", "'"));
            }
            Some(Tok::Num | Tok::Punct('-' | '+')) => {}
            Some(Tok::Word(w)) if matches!(w.as_str(), "TRUE" | "FALSE" | "NULL") => {}
            Some(Tok::Punct(',')) => args.push(None),
            Some(Tok::Cast) => {
                j += 1;
                // A type name: words, dots, `[]`, a quoted `"char"`.
                while matches!(
                    toks.get(j),
                    Some(Tok::Word(_) | Tok::Quoted(_) | Tok::Punct('.' | '[' | ']'))
                ) {
                    j += 1;
                }
                continue;
            }
            _ => return Err(refused()),
        }
        j += 1;
    }
    if function == "SET_CONFIG" {
        let name = args.first().cloned().flatten().ok_or_else(refused)?;
        return check_setting(&name, args.get(1).cloned().flatten());
    }
    Ok(Class::Serial)
}

/// The object kind after `CREATE`/`ALTER`, skipping modifiers; returns it and its index.
fn object_kind<'a>(words: &[&'a str], mut i: usize) -> (&'a str, usize) {
    while let Some(&w) = words.get(i) {
        match w {
            "OR" | "REPLACE" | "UNIQUE" | "TEMP" | "TEMPORARY" | "UNLOGGED" | "GLOBAL"
            | "LOCAL" | "TRUSTED" | "PROCEDURAL" | "DEFAULT" | "CONSTRAINT" | "RECURSIVE" => {
                i += 1;
            }
            _ => return (w, i),
        }
    }
    ("", i)
}

/// Objects outside any one database.
fn shared_object(kind: &str, next: Option<&&str>) -> Option<&'static str> {
    match kind {
        "DATABASE" => Some("acts on a database other than the incoming one"),
        "ROLE" | "GROUP" => Some("acts on roles, which are shared by every database of the server"),
        "USER" if next != Some(&"MAPPING") => {
            Some("acts on roles, which are shared by every database of the server")
        }
        "TABLESPACE" => Some("acts on a tablespace, a directory of the server"),
        "SYSTEM" => Some("changes the server's configuration"),
        "PARAMETER" => Some("changes privileges on a server setting"),
        _ => None,
    }
}

/// Token indexes at parenthesis depth 0.
fn at_depth0(toks: &[Tok]) -> Vec<usize> {
    let mut depth = 0i32;
    let mut out = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Punct('(' | '[') => depth += 1,
            Tok::Punct(')' | ']') => depth -= 1,
            _ if depth == 0 => out.push(i),
            _ => {}
        }
    }
    out
}

const CREATE_KINDS: &[&str] = &[
    "ACCESS",
    "AGGREGATE",
    "CAST",
    "COLLATION",
    "CONVERSION",
    "DOMAIN",
    "EVENT",
    "EXTENSION",
    "FOREIGN",
    "FUNCTION",
    "INDEX",
    "LANGUAGE",
    "MATERIALIZED",
    "OPERATOR",
    "POLICY",
    "PROCEDURE",
    "PUBLICATION",
    "RULE",
    "SCHEMA",
    "SEQUENCE",
    "SERVER",
    "STATISTICS",
    "SUBSCRIPTION",
    "TABLE",
    "TEXT",
    "TRANSFORM",
    "TRIGGER",
    "TYPE",
    "USER",
    "VIEW",
];

fn create(toks: &[Tok], words: &[&str]) -> Result<Class, String> {
    let (kind, at) = object_kind(words, 1);
    if let Some(why) = shared_object(kind, words.get(at + 1)) {
        return Err(refuse(&format!("CREATE {kind}"), why));
    }
    if !CREATE_KINDS.contains(&kind) {
        return Err(refuse(
            &format!("CREATE {kind}"),
            "is not a statement pg_dump writes into a database dump",
        ));
    }
    let top = at_depth0(toks);
    match kind {
        "TABLE" if top.iter().any(|&i| words[i] == "AS") => Err(refuse(
            "CREATE TABLE ... AS",
            "runs a query, which pg_dump never writes",
        )),
        // pg_dump creates a materialized view empty and fills it in post-data with
        // REFRESH; one created WITH DATA runs its query at once.
        "MATERIALIZED"
            if !(words.len() >= 3 && words[words.len() - 3..] == ["WITH", "NO", "DATA"]) =>
        {
            Err(refuse(
                "CREATE MATERIALIZED VIEW without WITH NO DATA",
                "runs its query as it is created, which pg_dump never writes",
            ))
        }
        "SUBSCRIPTION" => {
            // pg_dump writes `WITH (connect = false, ...)`: the subscription exists but
            // does not reach its publisher.
            let connects_not = toks.windows(3).any(|w| {
                w[0] == Tok::Word("CONNECT".into())
                    && w[1] == Tok::Punct('=')
                    && matches!(&w[2], Tok::Word(v) if v == "FALSE" || v == "OFF")
            });
            if connects_not {
                Ok(Class::Serial)
            } else {
                Err(refuse(
                    "CREATE SUBSCRIPTION without connect = false",
                    "connects to the publisher named in it",
                ))
            }
        }
        "INDEX" => {
            let on = top
                .iter()
                .find(|&&i| words[i] == "ON")
                .ok_or("CREATE INDEX without ON")?;
            let mut i = on + 1;
            if words.get(i) == Some(&"ONLY") {
                i += 1;
            }
            Ok(
                object_name(toks, i).map_or(Class::Serial, |(table, _)| Class::Parallel {
                    tables: vec![table],
                }),
            )
        }
        _ => Ok(Class::Serial),
    }
}

fn alter(toks: &[Tok], words: &[&str], incoming: Option<&str>) -> Result<Class, String> {
    let (kind, at) = object_kind(words, 1);
    if kind == "DATABASE" && is_incoming(toks, at + 1, incoming) {
        return match words.get(at + 2) {
            Some(&("SET" | "RESET" | "OWNER")) => Ok(Class::Serial),
            _ => Err(refuse(
                "ALTER DATABASE",
                "changes more than the incoming database's settings or owner",
            )),
        };
    }
    if let Some(why) = shared_object(kind, words.get(at + 1)) {
        return Err(refuse(&format!("ALTER {kind}"), why));
    }
    if kind == "SUBSCRIPTION" {
        return if words.get(at + 2) == Some(&"OWNER") {
            Ok(Class::Serial)
        } else {
            Err(refuse(
                "ALTER SUBSCRIPTION other than OWNER TO",
                "can enable or refresh a subscription, which connects to its publisher",
            ))
        };
    }
    if kind == "TABLE" {
        // `ALTER TABLE [ONLY] t ADD CONSTRAINT c ...` alone: an index or a check, run
        // beside other tables' work; a foreign key also locks the table it references.
        let mut i = at + 1;
        if words.get(i) == Some(&"ONLY") {
            i += 1;
        }
        if let Some((table, next)) = object_name(toks, i) {
            let single = !at_depth0(toks).iter().any(|&j| toks[j] == Tok::Punct(','));
            if single
                && words.get(next) == Some(&"ADD")
                && words.get(next + 1) == Some(&"CONSTRAINT")
            {
                let mut tables = vec![table];
                if let Some(r) = words.iter().position(|w| *w == "REFERENCES") {
                    let (target, _) =
                        object_name(toks, r + 1).ok_or("REFERENCES without a table")?;
                    tables.push(target);
                }
                return Ok(Class::Parallel { tables });
            }
        }
    }
    Ok(Class::Serial)
}

/// `COMMENT ON kind ...` and `SECURITY LABEL [FOR p] ON kind ...`.
fn on_object(
    head: &str,
    toks: &[Tok],
    words: &[&str],
    incoming: Option<&str>,
) -> Result<Class, String> {
    let Some(on) = words.iter().position(|w| *w == "ON") else {
        return Err(refuse(head, "is not a statement pg_dump writes"));
    };
    let kind = words.get(on + 1).copied().unwrap_or("");
    if kind == "DATABASE" && is_incoming(toks, on + 2, incoming) {
        return Ok(Class::Serial);
    }
    match shared_object(kind, words.get(on + 2)) {
        Some(why) => Err(refuse(&format!("{head} ON {kind}"), why)),
        None => Ok(Class::Serial),
    }
}

fn grant(
    head: &str,
    toks: &[Tok],
    words: &[&str],
    incoming: Option<&str>,
) -> Result<Class, String> {
    let top = at_depth0(toks);
    let Some(&on) = top.iter().find(|&&i| words[i] == "ON") else {
        return Err(refuse(
            &format!("{head} of a role"),
            "changes role membership, which is shared by every database of the server",
        ));
    };
    // `ON ALL TABLES IN SCHEMA`, `ON LARGE OBJECT`, `ON FOREIGN SERVER`...: the kind is the
    // word after ON.
    let kind = words.get(on + 1).copied().unwrap_or("");
    if kind == "DATABASE" && is_incoming(toks, on + 2, incoming) {
        return Ok(Class::Serial);
    }
    match shared_object(kind, None) {
        Some(why) => Err(refuse(&format!("{head} ON {kind}"), why)),
        None => Ok(Class::Serial),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(sql: &str) -> Class {
        classify(sql, Some("x__stg_incoming")).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn no(sql: &str) -> String {
        classify(sql, Some("x__stg_incoming")).expect_err(sql)
    }

    #[test]
    fn what_pg_dump_writes_is_allowed() {
        for sql in [
            "SET statement_timeout = 0;",
            "SET client_encoding = 'UTF8';",
            "SET standard_conforming_strings = on;",
            "SELECT pg_catalog.set_config('search_path', '', false);",
            "SET default_tablespace = '';",
            "SET default_table_access_method = heap;",
            "RESET SESSION AUTHORIZATION;",
            "SET SESSION AUTHORIZATION 'fas2';",
        ] {
            assert!(matches!(ok(sql), Class::Setting { .. }), "{sql}");
        }
        for sql in [
            "CREATE SCHEMA app;",
            "CREATE TABLE public.people (\n    id integer NOT NULL,\n    n text GENERATED ALWAYS AS (upper(x)) STORED\n);",
            "ALTER TABLE public.people OWNER TO fas2;",
            "CREATE FUNCTION public.f() RETURNS trigger\n    LANGUAGE plpgsql\n    AS $$ BEGIN EXECUTE 'ALTER SYSTEM'; END $$;",
            "COMMENT ON TABLE public.people IS 'it''s ALTER SYSTEM';",
            "GRANT SELECT ON TABLE public.people TO app;",
            "REVOKE ALL ON SCHEMA public FROM PUBLIC;",
            "SELECT pg_catalog.setval('public.people_id_seq', 42, true);",
            "SELECT pg_catalog.lo_open('16385', 131072);",
            "SELECT pg_catalog.lowrite(0, '\\x48656c6c6f');",
            "SELECT * FROM pg_catalog.pg_restore_relation_stats(\n\t'version', '180000'::integer,\n\t'relpages', '1'::integer);",
            "CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public;",
            "CREATE SUBSCRIPTION s CONNECTION 'host=db01' PUBLICATION p WITH (connect = false, slot_name = 's');",
            "ALTER DATABASE \"x__stg_incoming\" SET work_mem TO '8MB';",
            "GRANT CONNECT ON DATABASE \"x__stg_incoming\" TO app;",
            "REFRESH MATERIALIZED VIEW public.mv;",
            "CREATE MATERIALIZED VIEW public.mv AS\n SELECT 1 AS x\n  WITH NO DATA;",
            "CREATE USER MAPPING FOR fas2 SERVER s OPTIONS (\"user\" 'x');",
            "ALTER TABLE ONLY public.people ALTER COLUMN id SET DEFAULT nextval('public.people_id_seq'::regclass);",
        ] {
            assert_eq!(ok(sql), Class::Serial, "{sql}");
        }
        assert_eq!(ok("BEGIN;"), Class::Begin);
        assert_eq!(ok("COMMIT;"), Class::Commit);
    }

    #[test]
    fn post_data_is_parallel_with_its_tables() {
        assert_eq!(
            ok("CREATE INDEX people_email ON public.people USING btree (lower(email));"),
            Class::Parallel {
                tables: vec!["public.people".into()]
            }
        );
        assert_eq!(
            ok("CREATE UNIQUE INDEX i ON ONLY public.\"Odd\" USING btree (a);"),
            Class::Parallel {
                tables: vec!["public.\"Odd\"".into()]
            }
        );
        assert_eq!(
            ok("ALTER TABLE ONLY public.people\n    ADD CONSTRAINT people_pkey PRIMARY KEY (id);"),
            Class::Parallel {
                tables: vec!["public.people".into()]
            }
        );
        assert_eq!(
            ok("ALTER TABLE ONLY public.memberships\n    ADD CONSTRAINT m_fk FOREIGN KEY (person_id) REFERENCES public.people(id) ON DELETE CASCADE;"),
            Class::Parallel {
                tables: vec!["public.memberships".into(), "public.people".into()]
            }
        );
    }

    #[test]
    fn what_reaches_beyond_the_database_is_refused() {
        for (sql, says) in [
            ("ALTER SYSTEM SET archive_command = 'x';", "ALTER SYSTEM"),
            ("CREATE DATABASE other;", "CREATE DATABASE"),
            ("DROP DATABASE fas2;", "DROP"),
            ("ALTER DATABASE fas2 RENAME TO y;", "ALTER DATABASE"),
            (
                "ALTER DATABASE \"x__stg_incoming\" RENAME TO fas2;",
                "ALTER DATABASE",
            ),
            ("CREATE ROLE evil SUPERUSER;", "CREATE ROLE"),
            ("ALTER USER postgres PASSWORD 'x';", "ALTER USER"),
            ("ALTER ROLE fas2 SUPERUSER;", "ALTER ROLE"),
            ("GRANT pg_read_server_files TO fas2;", "of a role"),
            ("GRANT ALL ON DATABASE fas2 TO evil;", "ON DATABASE"),
            ("GRANT SET ON PARAMETER work_mem TO evil;", "ON PARAMETER"),
            ("COMMENT ON ROLE fas2 IS 'x';", "ON ROLE"),
            ("CREATE TABLESPACE t LOCATION '/tmp';", "TABLESPACE"),
            ("COPY public.people TO PROGRAM 'touch /tmp/x';", "COPY"),
            ("COPY public.people FROM '/etc/passwd';", "COPY"),
            ("LOAD '/tmp/evil.so';", "LOAD"),
            ("DO $$ BEGIN PERFORM 1; END $$;", "DO"),
            ("SELECT pg_read_file('/etc/shadow');", "SELECT"),
            ("SELECT pg_catalog.setval('s', (SELECT 1));", "SELECT"),
            (
                "SELECT pg_catalog.set_config('allow_system_table_mods', 'on', false);",
                "allow_system_table_mods",
            ),
            (
                "SET standard_conforming_strings = off;",
                "standard_conforming_strings",
            ),
            ("SET client_encoding = 'SJIS';", "client_encoding"),
            (
                "SET session_preload_libraries = 'x';",
                "session_preload_libraries",
            ),
            (
                "CREATE TABLE t AS SELECT pg_read_file('/etc/passwd');",
                "AS",
            ),
            (
                "CREATE SUBSCRIPTION s CONNECTION 'host=db01 connect = false' PUBLICATION p;",
                "SUBSCRIPTION",
            ),
            ("ALTER SUBSCRIPTION s ENABLE;", "SUBSCRIPTION"),
            (
                "IMPORT FOREIGN SCHEMA public FROM SERVER prod INTO x;",
                "IMPORT",
            ),
            ("PREPARE TRANSACTION 'x';", "PREPARE"),
            ("ROLLBACK;", "ROLLBACK"),
            ("SELECT 1; SELECT 2;", "more than one"),
            ("INSERT INTO t VALUES (1);", "INSERT"),
            (
                "CREATE MATERIALIZED VIEW v AS SELECT pg_read_file('/etc/hostname');",
                "WITH NO DATA",
            ),
        ] {
            let err = no(sql);
            assert!(err.contains(says), "{sql}: {err}");
        }
    }
}
