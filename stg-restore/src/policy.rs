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
//! refused: database, role, tablespace and system DDL, role membership, grants and comments
//! on shared objects, foreign-data wrappers, servers, user mappings, foreign tables and
//! subscriptions (unless the operator allows a wrapper by name), extensions not on the
//! allowed list, code in C or `internal`, settings pg_dump never writes, and every `SELECT`
//! but `pg_dump`'s own calls with literal arguments. The rules and their reasons are in
//! `docs/security.md`.
//!
//! The checks read the [`Token`]s of [`stg_core::sql_lexer`], the same tokens the splitter
//! ended the statement on and the same rules the server reads it by; nothing here scans
//! text again.
//!
//! Some checks follow the stream's order ([`Policy`] keeps what they need): no COPY block
//! after a statement that creates or changes a trigger (a foreign key's checks are
//! triggers), so no trigger of a stream's can fire on a row it loads, whatever the session
//! says; event triggers are created after everything else; a user mapping or foreign
//! table only on a server the stream created on an allowed wrapper.
//!
//! What this cannot see: the code a statement makes the server run. An expression the
//! schema defines (a CHECK constraint, a column default, an index expression, a
//! materialized view's query on REFRESH) runs during the load with the load role's
//! privileges, whether it calls a function of the stream's or a built-in one;
//! `docs/security.md`, section 5.
//!
//! Not here: splitting the stream into statements ([`crate::script`]) and psql
//! meta-commands, which never reach this module (the splitter refuses them).
//! See: <https://www.postgresql.org/docs/current/sql-commands.html>.

use std::collections::BTreeSet;

use stg_core::sql_lexer::{self, Kind, StrKind, Token};

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
    /// Held back and run alone after every other statement of the stream:
    /// `FORCE ROW LEVEL SECURITY`, which would make the owner's own COPY blocks subject to
    /// the table's policies (pg_dump writes it with the table, before the data).
    Deferred,
    /// An event trigger, or a statement on one: left out of the restore (reported). An
    /// event trigger must be owned by a superuser, and it runs its function as whoever
    /// runs DDL in the database; nothing of the stream's is owned by a superuser.
    EventTrigger,
    /// `ALTER <object> OWNER TO <role>` and nothing else (after a privileged owner is given
    /// to a role that is not one, [`crate::load_role::Owners`]): run on stg-restore's
    /// privileged connection. Handing an object to a role runs no code, and a role that is
    /// not a superuser could not do it where pg_dump writes it: PostgreSQL wants the new
    /// owner to have CREATE on the object's schema, which pg_dump's privileges grant only
    /// at the end of the dump.
    Owner,
    /// `CREATE EXTENSION` (of an allowed extension) and `COMMENT ON EXTENSION`: run on
    /// stg-restore's privileged connection, since an extension's scripts may need a
    /// superuser and its comment its owner. Only before the stream made any object but a
    /// schema, so no object of the stream's can be in an extension script's way.
    Privileged,
}

/// Extensions a stream may create unless the operator says otherwise: PostgreSQL's own
/// trusted extensions, those a database owner may create without being a superuser (they
/// reach no file, program or other server).
/// See: <https://www.postgresql.org/docs/current/contrib.html> ("trusted").
pub const DEFAULT_EXTENSIONS: &[&str] = &[
    "btree_gin",
    "btree_gist",
    "citext",
    "cube",
    "dict_int",
    "earthdistance",
    "fuzzystrmatch",
    "hstore",
    "intarray",
    "isn",
    "lo",
    "ltree",
    "pg_trgm",
    "pgcrypto",
    "plperl",
    "plpgsql",
    "pltcl",
    "seg",
    "tablefunc",
    "tcn",
    "tsm_system_rows",
    "tsm_system_time",
    "unaccent",
    "uuid-ossp",
];

/// Option names a foreign table may never carry, whatever the wrapper: they name server
/// files, programs, or a connection (libpq's keywords).
pub const FOREIGN_TABLE_OPTIONS_REFUSED: &[&str] = &[
    "program",
    "filename",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "service",
    "options",
    "sslcert",
    "sslkey",
    "sslrootcert",
    "sslpassword",
    "require_auth",
];

/// Settings `ALTER DATABASE <incoming> SET` may not change (a plain `pg_dump -C` stream):
/// they load libraries into every new session, or change how the load itself runs.
const DATABASE_SETTINGS_REFUSED: &[&str] = &[
    "session_preload_libraries",
    "local_preload_libraries",
    "shared_preload_libraries",
    "dynamic_library_path",
    "session_replication_role",
    "role",
    "session_authorization",
    "allow_system_table_mods",
    "allow_in_place_tablespaces",
    "ignore_system_indexes",
    "ignore_checksum_failure",
    "zero_damaged_pages",
    "jit_provider",
    "standard_conforming_strings",
    "client_encoding",
    "default_transaction_read_only",
];

/// What the operator allows beyond pg_dump's ordinary forms.
#[derive(Clone, Debug, Default)]
pub struct Allowed {
    /// Extensions besides [`DEFAULT_EXTENSIONS`] (`--allow-extension`).
    pub extensions: Vec<String>,
    /// Foreign-data wrappers whose servers, user mappings and foreign tables a stream may
    /// create, without connection or program options (`--allow-foreign-data-wrapper`).
    pub wrappers: Vec<String>,
}

/// The checks, with what they need to remember of the stream so far.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// The incoming database's name, where a plain `pg_dump -C` stream's database-level
    /// statements (rewritten by the reader) may name it.
    incoming: Option<String>,
    allowed: Allowed,
    /// Servers the stream created on an allowed wrapper.
    servers: BTreeSet<String>,
    /// The first statement that created or changed a trigger: its line and form. No COPY
    /// block may follow it.
    triggers_from: Option<(u64, String)>,
    /// The first statement that made an object other than a schema: its line and form. No
    /// extension may be created after it.
    objects_from: Option<(u64, String)>,
}

/// One lexical token of a statement, as the checks read it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    /// A keyword or bare identifier, uppercased.
    Word(String),
    /// A double-quoted identifier, its name (`None`: `U&"..."`, not decoded).
    Quoted(Option<String>),
    /// A string literal, its value (`None`: one whose value is not decoded here, or too
    /// long to keep).
    Str(Option<String>),
    /// A number.
    Num,
    /// `$1`.
    Param,
    /// `::`.
    Cast,
    /// An operator of two or more characters.
    Op(String),
    /// Any other character.
    Punct(char),
}

impl Tok {
    fn from_token(t: &Token) -> Tok {
        let text = |v: &Option<Vec<u8>>| v.as_ref().map(|v| String::from_utf8_lossy(v).into());
        match &t.kind {
            Kind::Word(w) => Tok::Word(w.to_ascii_uppercase()),
            Kind::Quoted { unicode: false } => Tok::Quoted(text(&t.value)),
            Kind::Quoted { unicode: true } => Tok::Quoted(None),
            Kind::Str(StrKind::Standard | StrKind::Escape | StrKind::Dollar) => {
                Tok::Str(text(&t.value))
            }
            Kind::Str(_) => Tok::Str(None),
            Kind::Number | Kind::Junk => Tok::Num,
            Kind::Param => Tok::Param,
            Kind::Typecast => Tok::Cast,
            Kind::Op(o) => Tok::Op(o.clone()),
            Kind::Char(c) => Tok::Punct(char::from(*c)),
        }
    }
}

/// Session settings a dump may set, and that a restore replays on every connection.
/// `client_encoding` and `standard_conforming_strings` have their values checked too: the
/// loader speaks UTF-8, and the lexer reads literals as the server does only with
/// standard-conforming strings on.
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

/// Checks one piece of SQL standing alone: lexed, split as the stream's splitter splits,
/// and classified by a fresh [`Policy`] (for tests and callers without a stream). `Err`
/// for more than one statement, an unfinished one, or a refused one.
pub fn classify(sql: &str, incoming: Option<&str>) -> Result<Class, String> {
    let tokens = sql_lexer::tokens(sql.as_bytes())
        .ok_or("the statement ends inside a literal, a quoted name or a comment")?;
    if !crate::script::one_statement(&tokens) {
        return Err("more than one statement in one piece of SQL".into());
    }
    let mut policy = Policy::new(incoming.map(str::to_owned), Allowed::default());
    policy.classify(0, &tokens)
}

/// What the checks read a statement as: its command (`CREATE`, `ALTER`, `SET`...) and, for
/// `CREATE` and `ALTER`, the object kind after the modifiers (`TABLE` for `CREATE UNLOGGED
/// TABLE`, `MATERIALIZED` for a materialized view); both uppercase, the kind `""` for other
/// commands. For comparing with another parser (the `sql_parser` fuzz target).
pub fn statement_kind(tokens: &[Token]) -> (String, String) {
    let words: Vec<String> = tokens
        .iter()
        .map(|t| match &t.kind {
            Kind::Word(w) => w.to_ascii_uppercase(),
            _ => String::new(),
        })
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let head = words.first().copied().unwrap_or("");
    let kind = match head {
        "CREATE" | "ALTER" => object_kind(&words, 1).0,
        _ => "",
    };
    (head.to_owned(), kind.to_owned())
}

impl Policy {
    /// The checks for one stream. `incoming` names the incoming database where a plain
    /// `pg_dump -C` stream's database-level statements may name it.
    pub fn new(incoming: Option<String>, allowed: Allowed) -> Policy {
        Policy {
            incoming,
            allowed,
            ..Policy::default()
        }
    }

    /// Forgets the incoming database's name: the stream has a manifest, so it is stg-dump's
    /// (written without `-C`) and names no database.
    pub fn no_database_statements(&mut self) {
        self.incoming = None;
    }

    /// A COPY block into `table` starts: refused after a statement that made or
    /// changed a trigger (pg_dump writes every trigger and foreign key after all data).
    pub fn copy_block(&self, table: &str) -> Result<(), String> {
        match &self.triggers_from {
            Some((line, what)) => Err(format!(
                "a COPY block into {table} after `{what}` (line {line}) is refused: pg_dump \
                 writes triggers and foreign keys after all the data, so a trigger that exists \
                 before a COPY block would fire on the rows loaded"
            )),
            None => Ok(()),
        }
    }

    /// Checks one statement (its tokens, the last one its `;` or not), which starts at
    /// `line`, and says how to run it.
    pub fn classify(&mut self, line: u64, tokens: &[Token]) -> Result<Class, String> {
        if tokens.iter().any(|t| t.kind == Kind::Junk) {
            return Err(
                "a number written as 0x1F, 0o17, 0b1 or 1_000, or run into a word \
                        (123abc, 1e), is refused: PostgreSQL versions read it \
                        differently (one number from 16, an error on 15, a number and a \
                        word before), and pg_dump never writes one"
                    .into(),
            );
        }
        let mut toks: Vec<Tok> = tokens.iter().map(Tok::from_token).collect();
        if toks.last() == Some(&Tok::Punct(';')) {
            toks.pop();
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
        let s = Stmt {
            toks: &toks,
            words: &words,
        };
        match head {
            "SET" | "RESET" => setting(&s),
            "SELECT" => select(&s),
            "BEGIN" if toks.len() == 1 => Ok(Class::Begin),
            "COMMIT" if toks.len() == 1 => Ok(Class::Commit),
            "BEGIN" | "COMMIT" => Err(refuse(
                head,
                "controls transactions in a way pg_dump never writes",
            )),
            "CREATE" => self.create(line, &s),
            "ALTER" => self.alter(line, &s),
            "COMMENT" | "SECURITY" => self.on_object(head, &s),
            "GRANT" | "REVOKE" => self.grant(head, &s),
            "REFRESH" if words.get(1) == Some(&"MATERIALIZED") => Ok(Class::Serial),
            "" => Err("not a statement (it does not start with a command)".into()),
            other => Err(refuse(other, refused_head(other))),
        }
    }

    /// Remembers the first statement that made or changed a trigger.
    fn trigger_made(&mut self, line: u64, what: &str) {
        if self.triggers_from.is_none() {
            self.triggers_from = Some((line, what.to_owned()));
        }
    }

    fn wrapper_allowed(&self, name: &str) -> bool {
        self.allowed.wrappers.iter().any(|w| w == name)
    }

    fn create(&mut self, line: u64, s: &Stmt) -> Result<Class, String> {
        let (toks, words) = (s.toks, s.words);
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
        // `CREATE SCHEMA s` alone (not with schema elements, which would make objects).
        let schema_alone = kind == "SCHEMA" && !words[at + 1..].contains(&"CREATE");
        if kind != "EXTENSION" && !schema_alone && self.objects_from.is_none() {
            self.objects_from = Some((line, format!("CREATE {kind}")));
        }
        let top = at_depth0(toks);
        match kind {
            "TABLE" if top.iter().any(|&i| words[i] == "AS") => Err(refuse(
                "CREATE TABLE ... AS",
                "runs a query, which pg_dump never writes",
            )),
            "TABLE" => {
                // A REFERENCES clause makes the foreign key's check triggers at once;
                // pg_dump adds foreign keys after the data instead.
                if words.contains(&"REFERENCES") {
                    self.trigger_made(line, "CREATE TABLE ... REFERENCES");
                }
                Ok(Class::Serial)
            }
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
            "SUBSCRIPTION" => Err(refuse(
                "CREATE SUBSCRIPTION",
                "makes a subscription, which connects to a publisher and cannot be dropped \
                 with the incoming database while it has a replication slot (stg-dump leaves \
                 subscriptions out unless --foreign-connections keep)",
            )),
            "FOREIGN" => self.create_foreign(s, at),
            "SERVER" => self.create_server(s, at),
            "USER" => self.create_user_mapping(s),
            "EXTENSION" => {
                // Off the list is the first thing to say; then where it is.
                self.create_extension(s, at)?;
                if let Some((from, what)) = &self.objects_from {
                    return Err(refuse(
                        "CREATE EXTENSION",
                        &format!(
                            "comes after `{what}` (line {from}); pg_dump creates extensions \
                             before any object but schemas, and an extension's scripts run \
                             with a superuser's rights, where an object of the stream's could \
                             be in their way"
                        ),
                    ));
                }
                self.create_extension(s, at)
            }
            "LANGUAGE" => Err(refuse(
                "CREATE LANGUAGE",
                "installs a procedural language's handler (server code); languages come \
                 from extensions (--allow-extension)",
            )),
            "FUNCTION" | "PROCEDURE" => {
                check_language(s)?;
                Ok(Class::Serial)
            }
            "TRIGGER" => {
                self.trigger_made(line, "CREATE TRIGGER");
                Ok(Class::Serial)
            }
            "EVENT" => Ok(Class::EventTrigger),
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

    /// `CREATE EXTENSION [IF NOT EXISTS] name [WITH] [SCHEMA s]`: only an allowed name,
    /// without `CASCADE` (which would create extensions not named) or `VERSION`.
    fn create_extension(&self, s: &Stmt, at: usize) -> Result<Class, String> {
        let mut i = at + 1;
        if s.words.get(i..i + 3) == Some(&["IF", "NOT", "EXISTS"]) {
            i += 3;
        }
        let name = match s.toks.get(i) {
            Some(Tok::Word(w)) => w.to_ascii_lowercase(),
            Some(Tok::Quoted(Some(q))) => q.clone(),
            _ => return Err("CREATE EXTENSION without a name it can read".into()),
        };
        let allowed =
            DEFAULT_EXTENSIONS.contains(&name.as_str()) || self.allowed.extensions.contains(&name);
        if !allowed {
            return Err(refuse(
                &format!("CREATE EXTENSION {name}"),
                &format!(
                    "is not on the list of extensions a stream may create ({} and what \
                     --allow-extension adds; see docs/security.md)",
                    DEFAULT_EXTENSIONS.join(", ")
                ),
            ));
        }
        for (j, w) in s.words.iter().enumerate().skip(i + 1) {
            match *w {
                "SCHEMA" if object_name(s.toks, j + 1).is_none() => {
                    return Err("CREATE EXTENSION ... SCHEMA without a name".into());
                }
                "CASCADE" | "VERSION" | "FROM" => {
                    return Err(refuse(
                        &format!("CREATE EXTENSION ... {w}"),
                        "is not what pg_dump writes (CASCADE creates extensions not named)",
                    ))
                }
                _ => {}
            }
        }
        Ok(Class::Privileged)
    }

    /// `CREATE SERVER s [TYPE 't'] [VERSION 'v'] FOREIGN DATA WRAPPER w`, without OPTIONS,
    /// on a wrapper the operator allowed.
    fn create_server(&mut self, s: &Stmt, at: usize) -> Result<Class, String> {
        let mut i = at + 1;
        if s.words.get(i..i + 3) == Some(&["IF", "NOT", "EXISTS"]) {
            i += 3;
        }
        let (server, _) = object_name(s.toks, i).ok_or("CREATE SERVER without a name")?;
        let wrapper = s
            .words
            .windows(3)
            .position(|w| w == ["FOREIGN", "DATA", "WRAPPER"])
            .and_then(|p| object_name(s.toks, p + 3))
            .map(|(w, _)| w);
        match wrapper {
            Some(w) if self.wrapper_allowed(&w) => {
                if s.words.contains(&"OPTIONS") {
                    return Err(refuse(
                        &format!("CREATE SERVER {server} ... OPTIONS"),
                        "names where the server connects; a stream's foreign servers are \
                         created without options (stg-dump --foreign-connections strip)",
                    ));
                }
                self.servers.insert(server);
                Ok(Class::Serial)
            }
            _ => Err(foreign_refused("CREATE SERVER")),
        }
    }

    /// `CREATE USER MAPPING FOR r SERVER s`, without OPTIONS, for a server the stream
    /// created.
    fn create_user_mapping(&self, s: &Stmt) -> Result<Class, String> {
        let server = s
            .words
            .iter()
            .position(|w| *w == "SERVER")
            .and_then(|p| object_name(s.toks, p + 1))
            .map(|(n, _)| n);
        match server {
            Some(server) if self.servers.contains(&server) => {
                if s.words.contains(&"OPTIONS") {
                    return Err(refuse(
                        "CREATE USER MAPPING ... OPTIONS",
                        "holds a user name or password for a connection",
                    ));
                }
                Ok(Class::Serial)
            }
            _ => Err(foreign_refused("CREATE USER MAPPING")),
        }
    }

    /// `CREATE FOREIGN TABLE ... SERVER s [OPTIONS (...)]` on a server the stream created,
    /// no option naming a file, a program or a connection. (`CREATE FOREIGN DATA WRAPPER`
    /// is refused: a wrapper's handler is server code.)
    fn create_foreign(&self, s: &Stmt, at: usize) -> Result<Class, String> {
        if s.words.get(at + 1) != Some(&"TABLE") {
            return Err(foreign_refused("CREATE FOREIGN DATA WRAPPER"));
        }
        let top = at_depth0(s.toks);
        let server = top
            .iter()
            .find(|&&i| s.words[i] == "SERVER")
            .and_then(|&p| object_name(s.toks, p + 1))
            .map(|(n, _)| n);
        match server {
            Some(server) if self.servers.contains(&server) => {
                check_foreign_options(s)?;
                Ok(Class::Serial)
            }
            _ => Err(foreign_refused("CREATE FOREIGN TABLE")),
        }
    }

    fn alter(&mut self, line: u64, s: &Stmt) -> Result<Class, String> {
        let (toks, words) = (s.toks, s.words);
        let (kind, at) = object_kind(words, 1);
        let owner_only = owner_only(s);
        if kind == "DATABASE" && is_incoming(toks, at + 1, self.incoming.as_deref()) {
            return match words.get(at + 2) {
                Some(&"SET") => {
                    let (name, _) =
                        object_name(toks, at + 3).ok_or("ALTER DATABASE ... SET without a name")?;
                    if DATABASE_SETTINGS_REFUSED.contains(&name.as_str()) {
                        return Err(refuse(
                            &format!("ALTER DATABASE ... SET {name}"),
                            "loads code into every new session or changes how the load runs",
                        ));
                    }
                    Ok(Class::Serial)
                }
                Some(&"OWNER") if owner_only => Ok(Class::Owner),
                Some(&("RESET" | "OWNER")) => Ok(Class::Serial),
                _ => Err(refuse(
                    "ALTER DATABASE",
                    "changes more than the incoming database's settings or owner",
                )),
            };
        }
        if let Some(why) = shared_object(kind, words.get(at + 1)) {
            return Err(refuse(&format!("ALTER {kind}"), why));
        }
        if words.windows(3).any(|w| w == ["ALL", "IN", "TABLESPACE"]) {
            return Err(refuse(
                &format!("ALTER {kind} ALL IN TABLESPACE"),
                "moves every object of a tablespace, which pg_dump never writes",
            ));
        }
        let plain_kind = !matches!(
            kind,
            "SUBSCRIPTION" | "EXTENSION" | "LANGUAGE" | "EVENT" | "FOREIGN" | "SERVER" | "USER"
        );
        if owner_only && plain_kind {
            return Ok(Class::Owner);
        }
        match kind {
            "SUBSCRIPTION" => Err(refuse(
                "ALTER SUBSCRIPTION",
                "acts on a subscription, which a stream may not make",
            )),
            "EXTENSION" => Err(refuse(
                "ALTER EXTENSION",
                "runs an extension's update scripts or changes its members, which pg_dump \
                 writes only for binary upgrades",
            )),
            "LANGUAGE" => Err(refuse(
                "ALTER LANGUAGE",
                "acts on a procedural language, which comes from an extension",
            )),
            "EVENT" => Ok(Class::EventTrigger),
            "TRIGGER" => {
                self.trigger_made(line, "ALTER TRIGGER");
                Ok(Class::Serial)
            }
            "FUNCTION" | "PROCEDURE" | "ROUTINE" => {
                check_language(s)?;
                Ok(Class::Serial)
            }
            "FOREIGN" | "SERVER" | "USER" => self.alter_foreign(kind, at, s),
            "TABLE" if force_row_security(s) => Ok(Class::Deferred),
            "TABLE" => Ok(self.alter_table(line, at, s)),
            _ => Ok(Class::Serial),
        }
    }

    /// `ALTER SERVER`, `ALTER USER MAPPING`, `ALTER FOREIGN TABLE` / `DATA WRAPPER`: only
    /// on what the stream may have created, and never adding connection options.
    fn alter_foreign(&self, kind: &str, at: usize, s: &Stmt) -> Result<Class, String> {
        let words = s.words;
        match kind {
            "SERVER" => {
                let server = object_name(s.toks, at + 1).map(|(n, _)| n);
                let owner_only = words.get(at + 2) == Some(&"OWNER");
                if server.is_some_and(|n| self.servers.contains(&n)) && owner_only {
                    Ok(Class::Serial)
                } else {
                    Err(foreign_refused("ALTER SERVER other than OWNER TO"))
                }
            }
            "USER" => Err(foreign_refused("ALTER USER MAPPING")),
            _ if words.get(at + 1) == Some(&"TABLE") => {
                if self.servers.is_empty() {
                    return Err(foreign_refused("ALTER FOREIGN TABLE"));
                }
                check_foreign_options(s)?;
                Ok(Class::Serial)
            }
            _ => Err(foreign_refused("ALTER FOREIGN DATA WRAPPER")),
        }
    }

    /// `ALTER TABLE`: a constraint alone runs beside other tables' work; a trigger's state
    /// or a foreign key closes the data phase.
    fn alter_table(&mut self, line: u64, at: usize, s: &Stmt) -> Class {
        let (toks, words) = (s.toks, s.words);
        let top = at_depth0(toks);
        if top.iter().any(|&i| words[i] == "TRIGGER") {
            // ENABLE [ALWAYS | REPLICA] / DISABLE TRIGGER: pg_dump writes it right after
            // the trigger, after all the data.
            self.trigger_made(line, "ALTER TABLE ... TRIGGER");
        }
        let foreign_key = words.contains(&"REFERENCES");
        if foreign_key {
            self.trigger_made(line, "ALTER TABLE ... FOREIGN KEY");
        }
        // `ALTER TABLE [ONLY] t ADD CONSTRAINT c ...` alone: an index or a check, run
        // beside other tables' work; a foreign key also locks the table it references.
        let mut i = at + 1;
        if words.get(i) == Some(&"ONLY") {
            i += 1;
        }
        if let Some((table, next)) = object_name(toks, i) {
            let single = !top.iter().any(|&j| toks[j] == Tok::Punct(','));
            if single
                && words.get(next) == Some(&"ADD")
                && words.get(next + 1) == Some(&"CONSTRAINT")
            {
                let mut tables = vec![table];
                if let Some(r) = words.iter().position(|w| *w == "REFERENCES") {
                    match object_name(toks, r + 1) {
                        Some((target, _)) => tables.push(target),
                        None => return Class::Serial,
                    }
                }
                return Class::Parallel { tables };
            }
        }
        Class::Serial
    }

    /// `COMMENT ON kind ...` and `SECURITY LABEL [FOR p] ON kind ...`.
    fn on_object(&self, head: &str, s: &Stmt) -> Result<Class, String> {
        let (toks, words) = (s.toks, s.words);
        let Some(on) = words.iter().position(|w| *w == "ON") else {
            return Err(refuse(head, "is not a statement pg_dump writes"));
        };
        let kind = words.get(on + 1).copied().unwrap_or("");
        if kind == "DATABASE" && is_incoming(toks, on + 2, self.incoming.as_deref()) {
            return Ok(Class::Serial);
        }
        if let Some(why) = shared_object(kind, words.get(on + 2)) {
            return Err(refuse(&format!("{head} ON {kind}"), why));
        }
        match kind {
            "EVENT" => Ok(Class::EventTrigger),
            "EXTENSION" if head == "COMMENT" => Ok(Class::Privileged),
            "SUBSCRIPTION" => Err(refuse(
                &format!("{head} ON SUBSCRIPTION"),
                "acts on a subscription, which a stream may not make",
            )),
            "SERVER" => {
                let server = object_name(toks, on + 2).map(|(n, _)| n);
                if server.is_some_and(|n| self.servers.contains(&n)) {
                    Ok(Class::Serial)
                } else {
                    Err(foreign_refused(&format!("{head} ON SERVER")))
                }
            }
            "FOREIGN" if words.get(on + 2) == Some(&"TABLE") && !self.servers.is_empty() => {
                Ok(Class::Serial)
            }
            "FOREIGN" => Err(foreign_refused(&format!("{head} ON FOREIGN ..."))),
            _ => Ok(Class::Serial),
        }
    }

    fn grant(&self, head: &str, s: &Stmt) -> Result<Class, String> {
        let (toks, words) = (s.toks, s.words);
        let top = at_depth0(toks);
        let Some(&on) = top.iter().find(|&&i| words[i] == "ON") else {
            return Err(refuse(
                &format!("{head} of a role"),
                "changes role membership, which is shared by every database of the server",
            ));
        };
        // `ON ALL TABLES IN SCHEMA`, `ON LARGE OBJECT`, `ON FOREIGN SERVER`...: the kind is
        // the word after ON.
        let kind = words.get(on + 1).copied().unwrap_or("");
        if kind == "DATABASE" && is_incoming(toks, on + 2, self.incoming.as_deref()) {
            return Ok(Class::Serial);
        }
        if let Some(why) = shared_object(kind, None) {
            return Err(refuse(&format!("{head} ON {kind}"), why));
        }
        if kind == "FOREIGN" {
            let allowed = match words.get(on + 2) {
                Some(&"SERVER") => {
                    object_name(toks, on + 3).is_some_and(|(n, _)| self.servers.contains(&n))
                }
                Some(&"DATA") => {
                    object_name(toks, on + 4).is_some_and(|(n, _)| self.wrapper_allowed(&n))
                }
                _ => false,
            };
            if !allowed {
                return Err(foreign_refused(&format!("{head} ON FOREIGN ...")));
            }
        }
        Ok(Class::Serial)
    }
}

/// Object kinds an `ALTER <kind> <name> OWNER TO <role>` may name, as words.
const OWNED_KINDS: &[&[&str]] = &[
    &["TEXT", "SEARCH", "CONFIGURATION"],
    &["TEXT", "SEARCH", "DICTIONARY"],
    &["MATERIALIZED", "VIEW"],
    &["LARGE", "OBJECT"],
    &["OPERATOR", "CLASS"],
    &["OPERATOR", "FAMILY"],
    &["TABLE"],
    &["SEQUENCE"],
    &["VIEW"],
    &["FUNCTION"],
    &["PROCEDURE"],
    &["AGGREGATE"],
    &["ROUTINE"],
    &["OPERATOR"],
    &["TYPE"],
    &["DOMAIN"],
    &["SCHEMA"],
    &["COLLATION"],
    &["CONVERSION"],
    &["PUBLICATION"],
    &["STATISTICS"],
    &["DATABASE"],
];

/// True for `ALTER <kind> <name>[(signature)] [USING method] OWNER TO <role>` and nothing
/// more, as pg_dump writes each object's owner: a statement that can only change an owner.
fn owner_only(s: &Stmt) -> bool {
    let (toks, words) = (s.toks, s.words);
    let n = toks.len();
    if n < 6 || words[n - 3] != "OWNER" || words[n - 2] != "TO" {
        return false;
    }
    if !matches!(toks[n - 1], Tok::Word(_) | Tok::Quoted(Some(_))) {
        return false;
    }
    let Some(kind) = OWNED_KINDS
        .iter()
        .find(|k| words.get(1..=k.len()) == Some(k))
    else {
        return false;
    };
    let mut i = 1 + kind.len();
    let large_object = kind == &["LARGE", "OBJECT"];
    if large_object {
        return toks.get(i) == Some(&Tok::Num) && i + 1 == n - 3;
    }
    // The name: parts joined by dots (an operator's name may be an operator).
    loop {
        match toks.get(i) {
            Some(Tok::Word(_) | Tok::Quoted(Some(_)) | Tok::Op(_)) => i += 1,
            Some(Tok::Punct(c)) if kind == &["OPERATOR"] && "+-*/<>=~!@#%^&|`?".contains(*c) => {
                i += 1;
            }
            _ => return false,
        }
        if toks.get(i) == Some(&Tok::Punct('.')) {
            i += 1;
        } else {
            break;
        }
    }
    // A signature: anything between balanced parentheses but a `;` (type names only reach
    // the server there; nothing is evaluated).
    if toks.get(i) == Some(&Tok::Punct('(')) {
        let mut depth = 0;
        while i < n - 3 {
            match toks[i] {
                Tok::Punct('(') => depth += 1,
                Tok::Punct(')') => depth -= 1,
                Tok::Punct(';') => return false,
                _ => {}
            }
            i += 1;
            if depth == 0 {
                break;
            }
        }
        if depth != 0 {
            return false;
        }
    }
    if words.get(i) == Some(&"USING") && matches!(kind, [_, "CLASS" | "FAMILY"]) {
        i += 2;
    }
    i == n - 3
}

/// `ALTER TABLE ... FORCE ROW LEVEL SECURITY` (alone, as pg_dump writes it).
fn force_row_security(s: &Stmt) -> bool {
    let w = s.words;
    w.windows(4)
        .any(|x| x == ["FORCE", "ROW", "LEVEL", "SECURITY"])
        && !at_depth0(s.toks)
            .iter()
            .any(|&i| s.toks[i] == Tok::Punct(','))
}

/// A role named in a statement where it becomes an owner: `OWNER TO r`, `ALTER DEFAULT
/// PRIVILEGES FOR ROLE r, ...`, `CREATE SCHEMA ... AUTHORIZATION r`. Its bytes in the
/// statement and its name as the server reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleRef {
    /// Offset of the role's token in the statement.
    pub start: usize,
    /// Offset after it.
    pub end: usize,
    /// The role's name.
    pub name: String,
}

/// The roles `tokens` (one statement) makes owners of something, in order. `CURRENT_USER`,
/// `SESSION_USER` and `CURRENT_ROLE` are the load role itself and are left out.
pub fn owner_roles(tokens: &[Token]) -> Vec<RoleRef> {
    let word = |i: usize| match tokens.get(i).map(|t| &t.kind) {
        Some(Kind::Word(w)) => w.as_str(),
        _ => "",
    };
    let role_at = |i: usize| -> Option<RoleRef> {
        let t = tokens.get(i)?;
        let name = match &t.kind {
            Kind::Word(w)
                if !matches!(
                    w.as_str(),
                    "current_user" | "session_user" | "current_role" | "public"
                ) =>
            {
                w.clone()
            }
            Kind::Quoted { unicode: false } => String::from_utf8(t.value.clone()?).ok()?,
            _ => return None,
        };
        Some(RoleRef {
            start: usize::try_from(t.start).ok()?,
            end: usize::try_from(t.end).ok()?,
            name,
        })
    };
    let mut out = Vec::new();
    let mut depth = 0usize;
    let default_privileges = word(0) == "alter" && word(1) == "default" && word(2) == "privileges";
    let mut i = 0;
    while i < tokens.len() {
        match tokens[i].kind {
            Kind::Char(b'(') => depth += 1,
            Kind::Char(b')') => depth = depth.saturating_sub(1),
            _ if depth > 0 => {}
            _ => match word(i) {
                "owner" if word(i + 1) == "to" => out.extend(role_at(i + 2)),
                "authorization" if word(0) == "create" && word(1) == "schema" => {
                    out.extend(role_at(i + 1));
                }
                "for" if default_privileges && matches!(word(i + 1), "role" | "user") => {
                    let mut j = i + 2;
                    while let Some(r) = role_at(j) {
                        out.push(r);
                        if tokens.get(j + 1).map(|t| &t.kind) != Some(&Kind::Char(b',')) {
                            break;
                        }
                        j += 2;
                    }
                }
                _ => {}
            },
        }
        i += 1;
    }
    out
}

/// The tokens of one statement and their uppercased words (`""` for other tokens).
struct Stmt<'a> {
    toks: &'a [Tok],
    words: &'a [&'a str],
}

fn foreign_refused(what: &str) -> String {
    refuse(
        what,
        "makes or uses foreign data (a foreign server, user mapping, foreign table or \
         wrapper), through which the load could read or write another database or run a \
         program; only wrappers the operator names with --allow-foreign-data-wrapper are \
         accepted, for servers the stream creates without options",
    )
}

/// Every `OPTIONS (...)` clause of a foreign-table statement (the table's and its
/// columns'): no option name that names a file, a program or a connection. One pass over
/// the tokens.
fn check_foreign_options(s: &Stmt) -> Result<(), String> {
    let refused = |name: &str| {
        Err(refuse(
            &format!("a foreign table option {name}"),
            "names a server file, a program or a connection",
        ))
    };
    let mut depth = 0usize;
    // The depth inside an OPTIONS clause's parentheses, while in one.
    let mut clause: Option<usize> = None;
    let mut expect_name = false;
    for (i, t) in s.toks.iter().enumerate() {
        match t {
            Tok::Punct('(') => {
                depth += 1;
                if clause.is_none() && i > 0 && s.words[i - 1] == "OPTIONS" {
                    clause = Some(depth);
                    expect_name = true;
                }
            }
            Tok::Punct(')') => {
                if clause == Some(depth) {
                    clause = None;
                }
                depth = depth.saturating_sub(1);
            }
            _ if clause != Some(depth) => {}
            Tok::Punct(',') => expect_name = true,
            Tok::Word(w) if expect_name && matches!(w.as_str(), "ADD" | "SET" | "DROP") => {}
            Tok::Word(w) if expect_name => {
                let name = w.to_ascii_lowercase();
                if FOREIGN_TABLE_OPTIONS_REFUSED.contains(&name.as_str()) {
                    return refused(&name);
                }
                expect_name = false;
            }
            Tok::Quoted(q) if expect_name => {
                // A name the lexer did not decode (U&"...") could be any of them.
                let name = q.as_deref().unwrap_or("program");
                if FOREIGN_TABLE_OPTIONS_REFUSED.contains(&name) {
                    return refused(name);
                }
                expect_name = false;
            }
            _ => expect_name = false,
        }
    }
    Ok(())
}

/// `CREATE/ALTER FUNCTION|PROCEDURE`: no `LANGUAGE c` or `internal` (server code, loaded
/// by whoever creates it; pg_dump writes them only for C functions outside extensions).
fn check_language(s: &Stmt) -> Result<(), String> {
    for &i in &at_depth0(s.toks) {
        if s.words[i] != "LANGUAGE" {
            continue;
        }
        let language = match s.toks.get(i + 1) {
            Some(Tok::Word(w)) => Some(w.to_ascii_lowercase()),
            Some(Tok::Quoted(q) | Tok::Str(q)) => q.as_deref().map(str::to_ascii_lowercase),
            _ => None,
        };
        match language.as_deref() {
            Some("c" | "internal") | None => {
                return Err(refuse(
                    &format!(
                        "a function in LANGUAGE {}",
                        language.as_deref().unwrap_or("?")
                    ),
                    "is server code (C or internal), which the restoring role would load",
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The name of an object at `toks[i..]`, as written (`schema.table`, quoted parts
/// re-quoted), and the index after it.
fn object_name(toks: &[Tok], mut i: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    loop {
        match toks.get(i)? {
            Tok::Word(w) => name.push_str(&w.to_ascii_lowercase()),
            Tok::Quoted(Some(q)) => {
                if q.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    && !q.is_empty()
                    && name.is_empty()
                {
                    // `"x"` and `x` are the same name where it is all lower case.
                    name.push_str(q);
                } else {
                    name.push('"');
                    name.push_str(&q.replace('"', "\"\""));
                    name.push('"');
                }
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
        Some(Tok::Quoted(Some(q))) => q == incoming,
        Some(Tok::Word(w)) => {
            w.eq_ignore_ascii_case(incoming) && incoming == incoming.to_lowercase()
        }
        _ => false,
    }
}

/// The text of a literal or a bare word (a setting's value); `None` for anything else,
/// and for a literal whose value the lexer did not decode.
fn literal_text(t: Option<&Tok>) -> Option<String> {
    match t? {
        Tok::Str(s) => s.clone(),
        Tok::Word(w) => Some(w.to_ascii_lowercase()),
        Tok::Num => Some(String::new()),
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

fn setting(s: &Stmt) -> Result<Class, String> {
    let (toks, words) = (s.toks, s.words);
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
    // One value, or none the check can read (`on, off` is two: the server refuses it, and
    // the value checks below read one).
    let value = if value_at + 1 == toks.len() {
        literal_text(toks.get(value_at))
    } else {
        None
    };
    check_setting(&name, value)
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

fn select(s: &Stmt) -> Result<Class, String> {
    let (toks, words) = (s.toks, s.words);
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
    // Arguments: each a constant alone (a literal, a number with or without a `-`, true,
    // false, null), cast or not to a type name; nothing between two constants, where an
    // operator would run (`'' - false` calls whatever operator the search path finds).
    let mut args: Vec<Option<String>> = vec![None];
    let mut j = i + 4;
    let mut value = false;
    loop {
        match toks.get(j) {
            Some(Tok::Punct(')')) if j + 1 == toks.len() && value => break,
            Some(Tok::Punct(')')) if j + 1 == toks.len() && args.len() == 1 => break,
            Some(Tok::Str(v)) if !value => {
                args.last_mut().expect("one").clone_from(v);
                value = true;
            }
            Some(Tok::Num) if !value => value = true,
            Some(Tok::Punct('-')) if !value && toks.get(j + 1) == Some(&Tok::Num) => {}
            Some(Tok::Word(w)) if !value && matches!(w.as_str(), "TRUE" | "FALSE" | "NULL") => {
                value = true;
            }
            Some(Tok::Punct(',')) if value => {
                args.push(None);
                value = false;
            }
            Some(Tok::Cast) if value => {
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
        // The name must be a literal whose value is known (a joined or escaped literal is
        // decoded as the server reads it; one that is not decoded is refused).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(sql: &str) -> Class {
        classify(sql, Some("x__stg_incoming")).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn no(sql: &str) -> String {
        classify(sql, Some("x__stg_incoming")).expect_err(sql)
    }

    /// A policy that has seen `before` (each statement classified, all allowed).
    fn after(before: &[&str], allowed: Allowed) -> Policy {
        let mut policy = Policy::new(None, allowed);
        for sql in before {
            let tokens = sql_lexer::tokens(sql.as_bytes()).unwrap();
            policy
                .classify(1, &tokens)
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        policy
    }

    fn then(policy: &mut Policy, sql: &str) -> Result<Class, String> {
        policy.classify(2, &sql_lexer::tokens(sql.as_bytes()).unwrap())
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
            "CREATE FUNCTION public.f() RETURNS trigger\n    LANGUAGE plpgsql\n    AS $$ BEGIN EXECUTE 'ALTER SYSTEM'; END $$;",
            "CREATE FUNCTION public.g() RETURNS integer\n    LANGUAGE sql\n    BEGIN ATOMIC\n SELECT 1;\n SELECT 2;\nEND;",
            "COMMENT ON TABLE public.people IS 'it''s ALTER SYSTEM';",
            "GRANT SELECT ON TABLE public.people TO app;",
            "REVOKE ALL ON SCHEMA public FROM PUBLIC;",
            "SELECT pg_catalog.setval('public.people_id_seq', 42, true);",
            "SELECT pg_catalog.lo_open('16385', 131072);",
            "SELECT pg_catalog.lowrite(0, '\\x48656c6c6f');",
            "SELECT * FROM pg_catalog.pg_restore_relation_stats(\n\t'version', '180000'::integer,\n\t'relpages', '1'::integer);",
            "ALTER DATABASE \"x__stg_incoming\" SET work_mem TO '8MB';",
            "GRANT CONNECT ON DATABASE \"x__stg_incoming\" TO app;",
            "REFRESH MATERIALIZED VIEW public.mv;",
            "CREATE MATERIALIZED VIEW public.mv AS\n SELECT 1 AS x\n  WITH NO DATA;",
            "ALTER TABLE ONLY public.people ALTER COLUMN id SET DEFAULT nextval('public.people_id_seq'::regclass);",
            "CREATE TRIGGER t BEFORE INSERT ON public.people FOR EACH ROW EXECUTE FUNCTION public.f();",
            "ALTER TABLE public.people ENABLE ALWAYS TRIGGER t;",
        ] {
            assert_eq!(ok(sql), Class::Serial, "{sql}");
        }
        assert_eq!(ok("BEGIN;"), Class::Begin);
        assert_eq!(ok("COMMIT;"), Class::Commit);
        for sql in [
            "CREATE EVENT TRIGGER e ON ddl_command_end EXECUTE FUNCTION public.f();",
            "ALTER EVENT TRIGGER e ENABLE ALWAYS;",
            "COMMENT ON EVENT TRIGGER e IS 'x';",
        ] {
            assert_eq!(ok(sql), Class::EventTrigger, "{sql}");
        }
        for sql in [
            "CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public;",
            "CREATE EXTENSION IF NOT EXISTS \"uuid-ossp\" WITH SCHEMA public;",
            "COMMENT ON EXTENSION pgcrypto IS 'cryptographic functions';",
        ] {
            assert_eq!(ok(sql), Class::Privileged, "{sql}");
        }
        assert_eq!(
            ok("ALTER TABLE ONLY public.people FORCE ROW LEVEL SECURITY;"),
            Class::Deferred
        );
        for sql in [
            "ALTER TABLE public.people OWNER TO fas2;",
            "ALTER FUNCTION public.f(a integer, b character varying[]) OWNER TO \"Admin\";",
            "ALTER OPERATOR public.=== (integer, integer) OWNER TO fas2;",
            "ALTER OPERATOR CLASS public.c USING btree OWNER TO fas2;",
            "ALTER TEXT SEARCH CONFIGURATION public.c OWNER TO fas2;",
            "ALTER LARGE OBJECT 16385 OWNER TO fas2;",
            "ALTER SCHEMA app OWNER TO fas2;",
            "ALTER DATABASE \"x__stg_incoming\" OWNER TO fas2;",
        ] {
            assert_eq!(ok(sql), Class::Owner, "{sql}");
        }
        // Anything more than the owner runs as the load role.
        for sql in [
            "ALTER TABLE public.people OWNER TO fas2, ADD COLUMN x integer DEFAULT public.f();",
            "ALTER TABLE public.people ADD COLUMN x integer, OWNER TO fas2;",
            "ALTER TABLE ONLY public.people OWNER TO fas2;",
        ] {
            assert_eq!(ok(sql), Class::Serial, "{sql}");
        }
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
            (
                "ALTER DATABASE \"x__stg_incoming\" SET session_preload_libraries = '/tmp/x.so';",
                "session_preload_libraries",
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
                "CREATE SUBSCRIPTION s CONNECTION 'host=db01' PUBLICATION p WITH (connect = false, slot_name = 's');",
                "SUBSCRIPTION",
            ),
            ("ALTER SUBSCRIPTION s ENABLE;", "SUBSCRIPTION"),
            ("ALTER SUBSCRIPTION s OWNER TO fas2;", "SUBSCRIPTION"),
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
            // Foreign data, by default (and the wrapper itself, always).
            ("CREATE EXTENSION postgres_fdw;", "postgres_fdw"),
            ("CREATE EXTENSION dblink;", "dblink"),
            ("CREATE EXTENSION file_fdw;", "file_fdw"),
            ("CREATE EXTENSION plpython3u;", "plpython3u"),
            (
                "CREATE EXTENSION pgcrypto CASCADE;",
                "CASCADE",
            ),
            (
                "CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname 'fas2');",
                "foreign",
            ),
            ("CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw;", "foreign"),
            ("CREATE USER MAPPING FOR fas2 SERVER s;", "foreign"),
            (
                "CREATE FOREIGN TABLE t (a int) SERVER s OPTIONS (program 'id');",
                "foreign",
            ),
            (
                "CREATE FOREIGN DATA WRAPPER w HANDLER h;",
                "FOREIGN DATA WRAPPER",
            ),
            ("GRANT USAGE ON FOREIGN SERVER s TO app;", "foreign"),
            ("CREATE LANGUAGE plpython3u;", "LANGUAGE"),
            (
                "CREATE FUNCTION f() RETURNS int AS '/tmp/evil.so', 'f' LANGUAGE c;",
                "LANGUAGE c",
            ),
            (
                "CREATE FUNCTION f() RETURNS int LANGUAGE 'C' AS '/tmp/evil.so', 'f';",
                "LANGUAGE c",
            ),
            (
                "CREATE FUNCTION f(text) RETURNS text LANGUAGE internal AS 'pg_read_file_off_len';",
                "LANGUAGE internal",
            ),
            ("ALTER EXTENSION pgcrypto UPDATE;", "ALTER EXTENSION"),
        ] {
            let err = no(sql);
            assert!(err.contains(says), "{sql}: {err}");
        }
    }

    /// See: issue 26, findings 1 and 2. The tokens decide, read by the server's rules.
    #[test]
    fn statements_hidden_from_a_naive_reader_are_seen() {
        for (sql, says) in [
            (
                "CREATE --\rROLE evil SUPERUSER LOGIN /*\n SCHEMA x -- */\n;",
                "CREATE ROLE",
            ),
            (
                "SELECT pg_catalog.set_config('session_replication_'\n'role', 'origin', false);",
                "session_replication_role",
            ),
            (
                "SELECT pg_catalog.set_config(E'session\\137replication_role', 'origin', false);",
                "session_replication_role",
            ),
            (
                "SELECT pg_catalog.set_config(U&'session_replication_r\\006fle', 'origin', false);",
                "SELECT",
            ),
            (
                "SET \"session_replication_role\" = origin;",
                "session_replication_role",
            ),
        ] {
            let err = no(sql);
            assert!(err.contains(says), "{sql:?}: {err}");
        }
    }

    /// See: issue 26, finding 3.
    #[test]
    fn no_copy_block_after_a_trigger_is_made_or_changed() {
        for before in [
            "CREATE TRIGGER t BEFORE INSERT ON public.people FOR EACH ROW EXECUTE FUNCTION public.f();",
            "CREATE CONSTRAINT TRIGGER t AFTER INSERT ON public.people FOR EACH ROW EXECUTE FUNCTION public.f();",
            "ALTER TABLE public.people ENABLE ALWAYS TRIGGER t;",
            "ALTER TABLE public.people ENABLE REPLICA TRIGGER t;",
            "ALTER TABLE ONLY public.people DISABLE TRIGGER ALL;",
            "ALTER TRIGGER t ON public.people RENAME TO u;",
            "ALTER TABLE ONLY public.m ADD CONSTRAINT m_fk FOREIGN KEY (p) REFERENCES public.people(id);",
            "CREATE TABLE public.m (p integer REFERENCES public.people(id));",
        ] {
            let policy = after(&["CREATE SCHEMA s;"], Allowed::default());
            assert!(policy.copy_block("public.people").is_ok());
            let policy = after(&[before], Allowed::default());
            let err = policy.copy_block("public.people").unwrap_err();
            assert!(err.contains("line 1"), "{before}: {err}");
        }
    }

    /// See: issue 26, findings 4 to 6.
    #[test]
    fn foreign_data_needs_a_named_wrapper_and_no_connection() {
        let allowed = Allowed {
            wrappers: vec!["postgres_fdw".into()],
            extensions: vec!["postgres_fdw".into()],
        };
        let mut p = after(
            &[
                "CREATE EXTENSION IF NOT EXISTS postgres_fdw WITH SCHEMA public;",
                "CREATE SERVER prod FOREIGN DATA WRAPPER postgres_fdw;",
                "ALTER SERVER prod OWNER TO fas2;",
                "CREATE USER MAPPING FOR fas2 SERVER prod;",
                "CREATE FOREIGN TABLE public.ft (\n    a integer\n)\nSERVER prod\nOPTIONS (\n    schema_name 'public',\n    table_name 't'\n);",
                "ALTER FOREIGN TABLE public.ft OWNER TO fas2;",
                "GRANT USAGE ON FOREIGN SERVER prod TO app;",
            ],
            allowed.clone(),
        );
        for (sql, says) in [
            (
                "CREATE SERVER live FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname 'fas2');",
                "OPTIONS",
            ),
            (
                "CREATE USER MAPPING FOR fas2 SERVER prod OPTIONS (password 'x');",
                "OPTIONS",
            ),
            ("CREATE USER MAPPING FOR fas2 SERVER other;", "foreign"),
            (
                "CREATE FOREIGN TABLE public.f2 (a int) SERVER prod OPTIONS (program 'id');",
                "program",
            ),
            (
                "CREATE FOREIGN TABLE public.f2 (a int) SERVER prod OPTIONS (\"filename\" '/etc/passwd');",
                "filename",
            ),
            (
                "ALTER FOREIGN TABLE public.ft OPTIONS (ADD program 'id');",
                "program",
            ),
            ("ALTER SERVER prod OPTIONS (ADD host 'db01');", "OWNER TO"),
            ("CREATE SERVER f FOREIGN DATA WRAPPER file_fdw;", "foreign"),
        ] {
            let err = then(&mut p, sql).expect_err(sql);
            assert!(err.contains(says), "{sql}: {err}");
        }
    }

    #[test]
    fn extensions_come_before_any_object_but_schemas() {
        let mut p = after(
            &[
                "CREATE SCHEMA app;",
                "ALTER SCHEMA app OWNER TO fas2;",
                "COMMENT ON SCHEMA app IS 'x';",
                "CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA app;",
                "CREATE FUNCTION app.digest(text, text) RETURNS bytea LANGUAGE sql AS $$ SELECT NULL::bytea $$;",
            ],
            Allowed::default(),
        );
        let err = then(&mut p, "CREATE EXTENSION citext WITH SCHEMA app;").unwrap_err();
        assert!(
            err.contains("CREATE FUNCTION") && err.contains("line 1"),
            "{err}"
        );
    }

    #[test]
    fn owners_are_found_where_a_statement_makes_one() {
        let refs = |sql: &str| -> Vec<(String, String)> {
            owner_roles(&sql_lexer::tokens(sql.as_bytes()).unwrap())
                .into_iter()
                .map(|r| (sql[r.start..r.end].to_owned(), r.name))
                .collect()
        };
        assert_eq!(
            refs("ALTER TABLE public.t OWNER TO postgres;"),
            [("postgres".to_owned(), "postgres".to_owned())]
        );
        assert_eq!(
            refs("ALTER FUNCTION public.f(a integer) OWNER TO \"Admin\";"),
            [("\"Admin\"".to_owned(), "Admin".to_owned())]
        );
        assert_eq!(
            refs("ALTER DEFAULT PRIVILEGES FOR ROLE postgres, fas2 IN SCHEMA public GRANT SELECT ON TABLES TO app;"),
            [
                ("postgres".to_owned(), "postgres".to_owned()),
                ("fas2".to_owned(), "fas2".to_owned())
            ]
        );
        assert_eq!(refs("CREATE SCHEMA s AUTHORIZATION postgres;").len(), 1);
        assert!(refs("ALTER TABLE t OWNER TO CURRENT_USER;").is_empty());
        assert!(refs("COMMENT ON TABLE t IS 'OWNER TO postgres';").is_empty());
    }

    #[test]
    fn what_postgresql_s_parser_reads_otherwise_is_refused() {
        // Found by the sql_parser fuzz target: an operator between two constants ran
        // whatever operator the search path finds (one the stream made), inside a call
        // the checks took for pg_dump's own.
        for sql in [
            "SELECT pg_catalog.set_config('search_path', ''- false);",
            "SELECT pg_catalog.setval('public.s', 1 + 1, true);",
            "SELECT pg_catalog.setval('public.s' 'x', 1, true);",
            "SELECT pg_catalog.setval(-'1', 1, true);",
            "SELECT pg_catalog.setval(+1, 1, true);",
            "SELECT pg_catalog.setval('public.s', 1,);",
            "SELECT pg_catalog.setval(, 1);",
        ] {
            assert!(no(sql).contains("SELECT is refused"), "{sql}");
        }
        assert_eq!(
            ok("SELECT pg_catalog.setval('public.s', -5, true);"),
            Class::Serial
        );
        assert_eq!(ok("SELECT pg_catalog.lo_close(0);"), Class::Serial);
        assert_eq!(
            ok("SELECT pg_catalog.pg_restore_relation_stats('version', '180000'::integer, 'relpages', '1'::integer);"),
            Class::Serial
        );
        // Found by the fuzz target too: a statement PostgreSQL parses as another
        // command, and a value the check read one of two.
        assert!(
            no("ALTER TABLE ALL IN TABLESPACE pg_default SET TABLESPACE t;")
                .contains("ALL IN TABLESPACE")
        );
        assert!(no("ALTER INDEX ALL IN TABLESPACE a SET TABLESPACE b;").contains("ALL IN"));
        assert!(no("SET standard_conforming_strings = on, off;").contains("standard_conforming"));
        assert!(no("SET client_encoding = 'UTF8', 'LATIN1';").contains("client_encoding"));
        assert_eq!(
            ok("SET search_path = public, pg_catalog;"),
            Class::Setting {
                key: "search_path".into()
            }
        );
        // Numbers that PostgreSQL versions read differently.
        for sql in [
            "CREATE TABLE t (a integer DEFAULT 0x1F);",
            "CREATE TABLE t (a integer DEFAULT 1_000);",
            "ALTER TABLE t ALTER a SET DEFAULT 0xADD;",
            "SELECT pg_catalog.setval('public.s', 1abc, true);",
        ] {
            assert!(no(sql).contains("read it differently"), "{sql}");
        }
    }

    #[test]
    fn database_statements_need_a_plain_dash_c_stream() {
        let mut p = Policy::new(Some("x__stg_incoming".into()), Allowed::default());
        p.no_database_statements();
        let err = then(
            &mut p,
            "ALTER DATABASE \"x__stg_incoming\" SET work_mem = '1MB';",
        )
        .unwrap_err();
        assert!(err.contains("ALTER DATABASE"), "{err}");
    }
}
