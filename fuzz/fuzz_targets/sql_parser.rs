//! stg-restore's one SQL lexer, its statement splitter and its allow-list, compared with
//! PostgreSQL's own scanner and parser (libpg_query, through the `pg_query` crate: the
//! server's `scan.l` and `gram.y`, built here only).
//!
//! The input is SQL, which the target wraps as stg-dump would (a manifest line in front, a
//! recomputed trailer, zstd) and reads through the real `stg_restore::reader::Reader`, as a
//! restore would.
//!
//! Properties (each a panic, so a disagreement is a finding):
//! - **Tokens.** Where both lex the input, stg's lexer and PostgreSQL's scanner find the
//!   same tokens at the same byte offsets, of matching kinds (a word is an identifier or a
//!   keyword, a literal the same kind of literal, an operator an operator...); literal and
//!   quoted-name values stg decodes are the values the server's parser reads.
//! - **Boundaries.** Every statement stg-restore would send, parsed alone by PostgreSQL
//!   (as the server parses it: the loader sends each statement alone, extended protocol), is
//!   one statement, or a syntax error (the server runs nothing of it either). Where every
//!   statement of the input was accepted and PostgreSQL parses the whole input, both cut it
//!   into the same statements.
//! - **Kinds.** What the allow-list read a statement as is what PostgreSQL parses it as:
//!   `CREATE TABLE` a `CreateStmt` (never `CREATE TABLE ... AS`), a setting the setting the
//!   check read (and `standard_conforming_strings`/`client_encoding` the value it read), a
//!   `SELECT` one of pg_dump's own calls with constant arguments, an owner change (run on the
//!   privileged connection) nothing but an owner change to the role it named, `CREATE
//!   EXTENSION` (also privileged) an allowed extension, a function no C or internal one, a
//!   materialized view created empty, a grant on nothing shared, foreign objects without a
//!   refused option; the `COPY ... FROM STDIN` the loader sends for a data block copies into
//!   the table and columns the header named, from the client, with no options.
//!
//! The input is untrusted SQL, so any disagreement must end in a refusal: a statement is
//! only ever sent when both read it alike. Seeded (`fuzz/seeds/sql_parser/`) with pg_dump
//! output of the test fixtures and issue 26's forged inputs; `fuzz/dicts/sql_parser.dict`
//! holds SQL's words.

#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use pg_query::protobuf::{self, a_const, KeywordKind, ObjectType, ScanToken, Token as Pg};
use pg_query::NodeEnum;
use stg_core::copy_text::CopyHeader;
use stg_core::sql_lexer::{self, Kind, StrKind, Token};
use stg_restore::policy::{self, Class, DEFAULT_EXTENSIONS, FOREIGN_TABLE_OPTIONS_REFUSED};
use stg_restore::reader::{Options, Reader};
use stg_restore::script::{copy_statement, Item, Statement};

/// PostgreSQL's parser with the server's defaults (standard-conforming strings on, as
/// stg-restore pins them).
fn parse(sql: &str) -> pg_query::Result<pg_query::ParseResult> {
    pg_query::parse(sql, pg_query::ParserOptions::DEFAULT)
}

// ---------------------------------------------------------------------------------------
// Tokens

/// Whether stg's token and PostgreSQL's are the same kind of token.
fn same_kind(ours: &Token, pg: &ScanToken, text: &[u8]) -> bool {
    let t = pg.token;
    let is = |k: Pg| t == k as i32;
    let keyword = pg.keyword_kind != KeywordKind::NoKeyword as i32;
    let first = text.get(pg.start as usize).copied();
    match &ours.kind {
        Kind::Word(_) => keyword || (is(Pg::Ident) && first != Some(b'"')),
        Kind::Quoted { unicode: false } => is(Pg::Ident) && first == Some(b'"'),
        Kind::Quoted { unicode: true } => is(Pg::Uident),
        Kind::Str(StrKind::Standard | StrKind::Escape | StrKind::Dollar) => is(Pg::Sconst),
        Kind::Str(StrKind::Unicode) => is(Pg::Usconst),
        Kind::Str(StrKind::Bit) => is(Pg::Bconst),
        Kind::Str(StrKind::Hex) => is(Pg::Xconst),
        Kind::Number => is(Pg::Iconst) || is(Pg::Fconst),
        // Refused whatever it is; where 18 reads it at all, it is one number.
        Kind::Junk => is(Pg::Iconst) || is(Pg::Fconst),
        Kind::Param => is(Pg::Param),
        Kind::Typecast => is(Pg::Typecast),
        Kind::Op(op) => match op.as_str() {
            ".." => is(Pg::DotDot),
            ":=" => is(Pg::ColonEquals),
            "=>" => is(Pg::EqualsGreater),
            "<=" => is(Pg::LessEquals),
            ">=" => is(Pg::GreaterEquals),
            "<>" | "!=" => is(Pg::NotEquals),
            _ => is(Pg::Op),
        },
        // A single character is itself to the scanner, or a one-character operator.
        Kind::Char(c) => t == i32::from(*c) || is(Pg::Op),
    }
}

/// Where both lex `sql`, they find the same tokens.
fn tokens_agree(sql: &str) {
    let Some(ours) = sql_lexer::tokens(sql.as_bytes()) else {
        return;
    };
    let Ok(scanned) = pg_query::scan(sql) else {
        return;
    };
    let comment =
        |t: &ScanToken| t.token == Pg::SqlComment as i32 || t.token == Pg::CComment as i32;
    let theirs: Vec<&ScanToken> = scanned.tokens.iter().filter(|t| !comment(t)).collect();
    let text = sql.as_bytes();
    let show =
        |t: &Token| String::from_utf8_lossy(&text[t.start as usize..t.end as usize]).into_owned();
    // The input around an offset, for a message.
    let around = |at: u64| {
        let at = (at as usize).min(sql.len());
        let from = (at.saturating_sub(80)..=at)
            .find(|&k| sql.is_char_boundary(k))
            .unwrap_or(0);
        let to = (at..=sql.len())
            .find(|&k| (k >= at + 80 || k == sql.len()) && sql.is_char_boundary(k))
            .unwrap_or(sql.len());
        &sql[from..to]
    };
    for (i, ours) in ours.iter().enumerate() {
        let Some(pg) = theirs.get(i) else {
            panic!(
                "stg's lexer finds a token PostgreSQL's does not: {:?} {:?} in {:?}",
                ours.kind,
                show(ours),
                around(ours.start)
            );
        };
        let span = (ours.start, ours.end) == (pg.start as u64, pg.end as u64);
        assert!(
            span && same_kind(ours, pg, text),
            "token {i}: stg reads {:?} {:?} at {}..{}, PostgreSQL {:?} at {}..{} in {:?}",
            ours.kind,
            show(ours),
            ours.start,
            ours.end,
            Pg::try_from(pg.token).map_or_else(
                |_| format!("{:?}", char::from(pg.token as u8)),
                |k| format!("{k:?}")
            ),
            pg.start,
            pg.end,
            around(ours.start),
        );
    }
    assert_eq!(
        ours.len(),
        theirs.len(),
        "PostgreSQL's lexer finds tokens after stg's last in {:?}",
        around(ours.last().map_or(0, |t| t.end))
    );
    // Values: each decoded literal and quoted name, read by the parser in a statement of
    // its own, is the same bytes.
    for t in ours.iter().filter(|t| t.value.is_some()).take(16) {
        let value = t.value.as_deref().expect("filtered");
        let source = show(t);
        let (probe, read): (String, fn(&protobuf::ParseResult) -> Option<String>) = match t.kind {
            Kind::Str(_) => (format!("SELECT {source}"), select_string),
            Kind::Quoted { .. } => (format!("SELECT 1 AS {source}"), select_alias),
            _ => continue,
        };
        let Ok(parsed) = parse(&probe) else {
            continue;
        };
        if let Some(pg) = read(&parsed.protobuf) {
            assert_eq!(
                value,
                pg.as_bytes(),
                "stg decodes {source:?} as {:?}, PostgreSQL as {pg:?}",
                String::from_utf8_lossy(value)
            );
        }
    }
}

fn first_target(parsed: &protobuf::ParseResult) -> Option<&protobuf::ResTarget> {
    let NodeEnum::SelectStmt(s) = parsed.stmts.first()?.stmt.as_ref()?.node.as_ref()? else {
        return None;
    };
    match s.target_list.first()?.node.as_ref()? {
        NodeEnum::ResTarget(r) => Some(r),
        _ => None,
    }
}

fn select_string(parsed: &protobuf::ParseResult) -> Option<String> {
    string_const(first_target(parsed)?.val.as_deref()?)
}

fn select_alias(parsed: &protobuf::ParseResult) -> Option<String> {
    Some(first_target(parsed)?.name.clone())
}

fn string_const(node: &protobuf::Node) -> Option<String> {
    match node.node.as_ref()? {
        NodeEnum::AConst(c) => match c.val.as_ref()? {
            a_const::Val::Sval(s) => Some(s.sval.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn string_node(node: &protobuf::Node) -> Option<&str> {
    match node.node.as_ref()? {
        NodeEnum::String(s) => Some(&s.sval),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Statements

/// The node variant's name, as pg_query spells it (`CreateStmt`...).
fn node_name(node: &NodeEnum) -> String {
    let debug = format!("{node:?}");
    debug.split('(').next().unwrap_or("").to_owned()
}

/// What PostgreSQL may parse a statement as that the checks read as `CREATE kind`.
fn create_nodes(kind: &str) -> &'static [&'static str] {
    match kind {
        "ACCESS" => &["CreateAmStmt"],
        "AGGREGATE" | "COLLATION" | "TEXT" => &["DefineStmt"],
        "CAST" => &["CreateCastStmt"],
        "CONVERSION" => &["CreateConversionStmt"],
        "DOMAIN" => &["CreateDomainStmt"],
        "EVENT" => &["CreateEventTrigStmt"],
        "EXTENSION" => &["CreateExtensionStmt"],
        "FOREIGN" => &["CreateForeignTableStmt", "CreateFdwStmt"],
        "FUNCTION" | "PROCEDURE" => &["CreateFunctionStmt"],
        "INDEX" => &["IndexStmt"],
        "LANGUAGE" => &["CreatePlangStmt"],
        "MATERIALIZED" => &["CreateTableAsStmt"],
        "OPERATOR" => &["DefineStmt", "CreateOpClassStmt", "CreateOpFamilyStmt"],
        "POLICY" => &["CreatePolicyStmt"],
        "PUBLICATION" => &["CreatePublicationStmt"],
        "RULE" => &["RuleStmt"],
        "SCHEMA" => &["CreateSchemaStmt"],
        "SEQUENCE" => &["CreateSeqStmt"],
        "SERVER" => &["CreateForeignServerStmt"],
        "STATISTICS" => &["CreateStatsStmt"],
        "SUBSCRIPTION" => &["CreateSubscriptionStmt"],
        "TABLE" => &["CreateStmt"],
        "TRANSFORM" => &["CreateTransformStmt"],
        "TRIGGER" => &["CreateTrigStmt"],
        "TYPE" => &[
            "CompositeTypeStmt",
            "CreateEnumStmt",
            "CreateRangeStmt",
            "DefineStmt",
        ],
        "USER" => &["CreateUserMappingStmt"],
        "VIEW" => &["ViewStmt"],
        _ => &[],
    }
}

/// What an accepted `ALTER` may be to PostgreSQL: changes of one database's own objects.
/// Not here (refused whatever the checks read): roles, the server's settings,
/// tablespaces, subscriptions, extensions' contents, moving every table of a tablespace.
const ALTER_NODES: &[&str] = &[
    "AlterTableStmt",
    "AlterDomainStmt",
    "AlterSeqStmt",
    "AlterOwnerStmt",
    "RenameStmt",
    "AlterObjectSchemaStmt",
    "AlterFunctionStmt",
    "AlterEnumStmt",
    "AlterTypeStmt",
    "AlterDefaultPrivilegesStmt",
    "AlterOpFamilyStmt",
    "AlterOperatorStmt",
    "AlterStatsStmt",
    "AlterPolicyStmt",
    "AlterPublicationStmt",
    "AlterCollationStmt",
    "AlterTsconfigurationStmt",
    "AlterTsdictionaryStmt",
    "AlterForeignServerStmt",
    "AlterEventTrigStmt",
    "AlterObjectDependsStmt",
];

/// The DefElem names of a list of `DefElem` nodes, lowercase.
fn def_names(options: &[protobuf::Node]) -> Vec<String> {
    options
        .iter()
        .filter_map(|o| match o.node.as_ref()? {
            NodeEnum::DefElem(d) => Some(d.defname.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// A constant (a negative number is one to the parser), or a constant cast to a type.
fn constant(node: &protobuf::Node) -> bool {
    match node.node.as_ref() {
        Some(NodeEnum::AConst(_)) => true,
        Some(NodeEnum::TypeCast(c)) => c.arg.as_deref().is_some_and(constant),
        _ => false,
    }
}

/// `pg_catalog.<f>(constants)` with `f` one of pg_dump's calls; its arguments.
fn dump_call(node: &protobuf::Node) -> Option<&protobuf::FuncCall> {
    let NodeEnum::FuncCall(f) = node.node.as_ref()? else {
        return None;
    };
    let name: Vec<&str> = f.funcname.iter().filter_map(string_node).collect();
    let known = [
        "set_config",
        "setval",
        "lo_create",
        "lo_open",
        "lowrite",
        "lo_close",
        "pg_restore_relation_stats",
        "pg_restore_attribute_stats",
    ];
    let plain = f.agg_order.is_empty()
        && f.agg_filter.is_none()
        && f.over.is_none()
        && !f.agg_star
        && !f.agg_distinct
        && !f.func_variadic;
    (name.len() == 2
        && name[0] == "pg_catalog"
        && known.contains(&name[1])
        && plain
        && f.args.iter().all(constant))
    .then_some(f)
}

/// An accepted `SELECT`: one of pg_dump's calls with constant arguments, alone, as
/// `SELECT f(...)` or `SELECT * FROM f(...)`; the call.
fn select_call<'a>(s: &'a protobuf::SelectStmt, sql: &str) -> &'a protobuf::FuncCall {
    let bare = s.distinct_clause.is_empty()
        && s.into_clause.is_none()
        && s.where_clause.is_none()
        && s.group_clause.is_empty()
        && s.having_clause.is_none()
        && s.window_clause.is_empty()
        && s.values_lists.is_empty()
        && s.sort_clause.is_empty()
        && s.limit_offset.is_none()
        && s.limit_count.is_none()
        && s.locking_clause.is_empty()
        && s.with_clause.is_none()
        && s.larg.is_none()
        && s.rarg.is_none()
        && s.target_list.len() == 1;
    assert!(bare, "an accepted SELECT is more than a call: {sql:?}");
    let target = match s.target_list[0].node.as_ref() {
        Some(NodeEnum::ResTarget(r)) => r,
        other => panic!("an accepted SELECT selects {other:?}: {sql:?}"),
    };
    let call = if s.from_clause.is_empty() {
        target.val.as_deref().and_then(dump_call)
    } else {
        let star = matches!(
            target.val.as_deref().and_then(|v| v.node.as_ref()),
            Some(NodeEnum::ColumnRef(c)) if c.fields.len() == 1
                && matches!(c.fields[0].node, Some(NodeEnum::AStar(_)))
        );
        assert!(
            star && s.from_clause.len() == 1,
            "an accepted SELECT ... FROM is more than a call: {sql:?}"
        );
        match s.from_clause[0].node.as_ref() {
            Some(NodeEnum::RangeFunction(r))
                if r.functions.len() == 1
                    && !r.lateral
                    && !r.ordinality
                    && r.coldeflist.is_empty() =>
            {
                match r.functions[0].node.as_ref() {
                    Some(NodeEnum::List(l)) => l.items.first().and_then(dump_call),
                    _ => None,
                }
            }
            _ => None,
        }
    };
    call.unwrap_or_else(|| {
        panic!("an accepted SELECT is not one of pg_dump's calls with constant arguments: {sql:?}")
    })
}

/// The value of a setting PostgreSQL reads from a `SET`, where it is one constant.
fn set_value(v: &protobuf::VariableSetStmt) -> Option<String> {
    match v.args.as_slice() {
        [one] => string_const(one).or_else(|| match one.node.as_ref()? {
            NodeEnum::AConst(c) => match c.val.as_ref()? {
                a_const::Val::Ival(i) => Some(i.ival.to_string()),
                a_const::Val::Fval(f) => Some(f.fval.clone()),
                a_const::Val::Boolval(b) => Some(b.boolval.to_string()),
                _ => None,
            },
            _ => None,
        }),
        _ => None,
    }
}

/// A setting whose value decides how the load reads SQL: PostgreSQL reads the value the
/// check accepted.
fn check_value(key: &str, value: Option<String>, sql: &str) {
    let value = value.map(|v| v.to_ascii_lowercase());
    let ok = match key {
        "standard_conforming_strings" => matches!(value.as_deref(), Some("on" | "true" | "1")),
        "client_encoding" => matches!(value.as_deref(), Some("utf8" | "utf-8" | "unicode")),
        _ => true,
    };
    assert!(
        ok,
        "{key} accepted, PostgreSQL sets it to {value:?}: {sql:?}"
    );
}

/// Nothing but a change of owner, to `role`.
fn owner_change(node: &NodeEnum, role: Option<&str>, sql: &str) {
    let new_owner = match node {
        NodeEnum::AlterOwnerStmt(a) => a.newowner.as_ref(),
        NodeEnum::AlterTableStmt(a) => match a.cmds.as_slice() {
            [one] => match one.node.as_ref() {
                Some(NodeEnum::AlterTableCmd(c))
                    if c.subtype == protobuf::AlterTableType::AtChangeOwner as i32 =>
                {
                    c.newowner.as_ref()
                }
                _ => None,
            },
            _ => None,
        },
        _ => None,
    };
    let Some(new_owner) = new_owner else {
        panic!(
            "an owner change (run on the privileged connection) is {}: {sql:?}",
            node_name(node)
        );
    };
    if new_owner.roletype == protobuf::RoleSpecType::RolespecCstring as i32 {
        assert_eq!(
            Some(new_owner.rolename.as_str()),
            role,
            "an owner change read as to {role:?}, PostgreSQL reads it to {:?}: {sql:?}",
            new_owner.rolename
        );
    }
}

/// The statement stg-restore would send, as PostgreSQL parses it alone.
fn statement_agrees(s: &Statement) {
    let sql = s.sql.as_str();
    let Ok(parsed) = parse(sql) else {
        // A syntax error: the server runs nothing of it either.
        return;
    };
    let stmts = &parsed.protobuf.stmts;
    assert_eq!(
        stmts.len(),
        1,
        "one statement to stg, {} to PostgreSQL: {sql:?}",
        stmts.len()
    );
    let Some(node) = stmts[0].stmt.as_ref().and_then(|n| n.node.as_ref()) else {
        panic!("an empty statement handed on: {sql:?}");
    };
    let tokens = sql_lexer::tokens(sql.as_bytes()).expect("a statement handed on lexes alone");
    let (head, kind) = policy::statement_kind(&tokens);
    let name = node_name(node);
    let mismatch = || {
        format!(
            "stg reads {head} {kind} ({:?}), PostgreSQL {name}: {sql:?}",
            s.class
        )
    };
    if s.class == Class::EventTrigger {
        // Left out of the restore: never sent.
        return;
    }
    match head.as_str() {
        "SET" | "RESET" => {
            let NodeEnum::VariableSetStmt(v) = node else {
                panic!("{}", mismatch())
            };
            let Class::Setting { key } = &s.class else {
                panic!("{}", mismatch())
            };
            assert_eq!(&v.name.to_ascii_lowercase(), key, "{}", mismatch());
            if head == "SET" {
                check_value(key, set_value(v), sql);
            } else {
                check_value(key, None, sql);
            }
        }
        "SELECT" => {
            let NodeEnum::SelectStmt(sel) = node else {
                panic!("{}", mismatch())
            };
            let call = select_call(sel, sql);
            let function = call.funcname.last().and_then(string_node).unwrap_or("");
            match &s.class {
                Class::Setting { key } => {
                    assert_eq!(function, "set_config", "{}", mismatch());
                    // Setting names are not case-sensitive.
                    let name = call
                        .args
                        .first()
                        .and_then(string_const)
                        .map(|n| n.to_ascii_lowercase());
                    assert_eq!(name.as_ref(), Some(key), "{}", mismatch());
                    check_value(key, call.args.get(1).and_then(string_const), sql);
                }
                _ => assert_ne!(function, "set_config", "{}", mismatch()),
            }
        }
        "BEGIN" | "COMMIT" => {
            let NodeEnum::TransactionStmt(t) = node else {
                panic!("{}", mismatch())
            };
            let want = if head == "BEGIN" {
                protobuf::TransactionStmtKind::TransStmtBegin
            } else {
                protobuf::TransactionStmtKind::TransStmtCommit
            };
            assert!(
                t.kind == want as i32 && t.options.is_empty() && !t.chain,
                "{}",
                mismatch()
            );
        }
        "CREATE" => {
            assert!(
                create_nodes(&kind).contains(&name.as_str()),
                "{}",
                mismatch()
            );
            create_agrees(node, &s.class, sql);
        }
        "ALTER" => {
            if s.class == Class::Owner {
                let role = s.owners.last().map(|r| r.name.as_str());
                owner_change(node, role, sql);
            }
            assert!(ALTER_NODES.contains(&name.as_str()), "{}", mismatch());
            if let NodeEnum::AlterOwnerStmt(a) = node {
                assert_ne!(
                    a.object_type,
                    ObjectType::ObjectDatabase as i32,
                    "{}",
                    mismatch()
                );
            }
        }
        "COMMENT" => {
            let NodeEnum::CommentStmt(c) = node else {
                panic!("{}", mismatch())
            };
            let extension = c.objtype == ObjectType::ObjectExtension as i32;
            assert_eq!(extension, s.class == Class::Privileged, "{}", mismatch());
            assert_ne!(
                c.objtype,
                ObjectType::ObjectDatabase as i32,
                "{}",
                mismatch()
            );
        }
        "SECURITY" => {
            assert_eq!(name, "SecLabelStmt", "{}", mismatch());
        }
        "GRANT" | "REVOKE" => {
            // A grant of a role (GrantRoleStmt) is refused; nothing shared by the
            // databases, and no foreign server the stream did not make (none here).
            let NodeEnum::GrantStmt(g) = node else {
                panic!("{}", mismatch())
            };
            let shared = [
                ObjectType::ObjectDatabase,
                ObjectType::ObjectTablespace,
                ObjectType::ObjectParameterAcl,
                ObjectType::ObjectForeignServer,
                ObjectType::ObjectFdw,
            ];
            assert!(
                !shared.iter().any(|k| g.objtype == *k as i32),
                "{}",
                mismatch()
            );
        }
        "REFRESH" => assert_eq!(name, "RefreshMatViewStmt", "{}", mismatch()),
        _ => panic!("{}", mismatch()),
    }
    // The class decides the connection: only an owner change and an extension are
    // privileged.
    match s.class {
        Class::Owner => assert!(
            matches!(
                node,
                NodeEnum::AlterOwnerStmt(_) | NodeEnum::AlterTableStmt(_)
            ),
            "{}",
            mismatch()
        ),
        Class::Privileged => assert!(
            matches!(
                node,
                NodeEnum::CreateExtensionStmt(_) | NodeEnum::CommentStmt(_)
            ),
            "{}",
            mismatch()
        ),
        _ => {}
    }
}

/// The parts of a `CREATE` the checks decide on.
fn create_agrees(node: &NodeEnum, class: &Class, sql: &str) {
    match node {
        NodeEnum::CreateFunctionStmt(f) => {
            for o in &f.options {
                let Some(NodeEnum::DefElem(d)) = o.node.as_ref() else {
                    continue;
                };
                if d.defname == "language" {
                    let language = d.arg.as_deref().and_then(string_node).unwrap_or("");
                    assert!(
                        !matches!(language.to_ascii_lowercase().as_str(), "c" | "internal"),
                        "a function in LANGUAGE {language} accepted: {sql:?}"
                    );
                }
            }
        }
        NodeEnum::CreateTableAsStmt(c) => {
            let empty = c.objtype == ObjectType::ObjectMatview as i32
                && c.into.as_ref().is_some_and(|i| i.skip_data)
                && !c.is_select_into;
            assert!(
                empty,
                "a CREATE ... AS that runs its query accepted: {sql:?}"
            );
        }
        NodeEnum::CreateExtensionStmt(e) => {
            assert_eq!(
                class,
                &Class::Privileged,
                "CREATE EXTENSION not privileged: {sql:?}"
            );
            assert!(
                DEFAULT_EXTENSIONS.contains(&e.extname.as_str()),
                "extension {:?} accepted: {sql:?}",
                e.extname
            );
            let options = def_names(&e.options);
            assert!(
                options.iter().all(|o| o == "schema"),
                "CREATE EXTENSION with {options:?} accepted: {sql:?}"
            );
        }
        NodeEnum::CreateForeignTableStmt(f) => {
            let mut names = def_names(&f.options);
            for e in f.base_stmt.iter().flat_map(|b| &b.table_elts) {
                if let Some(NodeEnum::ColumnDef(c)) = e.node.as_ref() {
                    names.extend(def_names(&c.fdwoptions));
                }
            }
            let refused: Vec<&String> = names
                .iter()
                .filter(|n| FOREIGN_TABLE_OPTIONS_REFUSED.contains(&n.as_str()))
                .collect();
            assert!(
                refused.is_empty(),
                "a foreign table with {refused:?} accepted: {sql:?}"
            );
        }
        NodeEnum::CreateForeignServerStmt(f) => {
            assert!(
                f.options.is_empty(),
                "a foreign server with options accepted: {sql:?}"
            )
        }
        NodeEnum::CreateUserMappingStmt(u) => {
            assert!(
                u.options.is_empty(),
                "a user mapping with options accepted: {sql:?}"
            )
        }
        NodeEnum::CreatePlangStmt(_)
        | NodeEnum::CreateSubscriptionStmt(_)
        | NodeEnum::CreateFdwStmt(_) => {
            panic!("{} accepted: {sql:?}", node_name(node))
        }
        _ => {}
    }
}

/// The COPY the loader sends for a block, as PostgreSQL reads it.
fn copy_agrees(header: &CopyHeader) {
    let sql = copy_statement(header);
    let Ok(parsed) = parse(&sql) else {
        return;
    };
    let stmts = &parsed.protobuf.stmts;
    assert_eq!(
        stmts.len(),
        1,
        "the loader's COPY is {} statements: {sql:?}",
        stmts.len()
    );
    let Some(NodeEnum::CopyStmt(c)) = stmts[0].stmt.as_ref().and_then(|n| n.node.as_ref()) else {
        panic!("the loader's COPY is not a COPY: {sql:?}");
    };
    let plain = c.is_from
        && !c.is_program
        && c.filename.is_empty()
        && c.options.is_empty()
        && c.where_clause.is_none()
        && c.query.is_none();
    assert!(
        plain,
        "the loader's COPY is not a plain COPY FROM STDIN: {sql:?}"
    );
    let relation = c.relation.as_ref().expect("a table");
    assert_eq!(
        (
            relation.schemaname.as_str(),
            relation.relname.as_str(),
            relation.catalogname.as_str()
        ),
        (header.schema.as_str(), header.table.as_str(), ""),
        "the header names {}.{}, the loader's COPY copies into another table: {sql:?}",
        header.schema,
        header.table
    );
    let columns: Vec<&str> = c.attlist.iter().filter_map(string_node).collect();
    assert_eq!(
        columns, header.columns,
        "the loader's COPY names other columns: {sql:?}"
    );
}

// ---------------------------------------------------------------------------------------

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    if sql.contains('\0') {
        // Not text to PostgreSQL (nor to pg_query's C strings).
        return;
    }
    tokens_agree(sql);

    let options = Options {
        max_line: 1 << 20,
        ..Options::default()
    };
    let input = common::wrap(data);
    let Ok(mut reader) = Reader::open(&input[..], options) else {
        return;
    };
    let mut statements = Vec::new();
    let mut copies = false;
    let mut all = true;
    loop {
        let mut items = Vec::new();
        let more = reader.fill(&mut items, 64 * 1024);
        for item in items {
            match item {
                Item::Statement(s) => {
                    statement_agrees(&s);
                    statements.push(s.sql);
                }
                Item::CopyBegin { header, .. } => {
                    copy_agrees(&header);
                    copies = true;
                }
                Item::CopyData(_) | Item::CopyEnd { .. } => {}
            }
        }
        match more {
            Ok(true) => {}
            Ok(false) => break,
            Err(_) => {
                all = false;
                break;
            }
        }
    }
    let outcome = reader.finish();
    if !all || copies || !outcome.mismatches.is_empty() {
        return;
    }
    // Every statement accepted: PostgreSQL, parsing the whole input, cuts it alike.
    let Ok(whole) = parse(sql) else {
        return;
    };
    // Event triggers are left out of the restore by the reader: not among ours.
    let theirs: Vec<&str> = whole
        .protobuf
        .stmts
        .iter()
        .map(|r| {
            let start = r.stmt_location as usize;
            let end = if r.stmt_len == 0 {
                sql.len()
            } else {
                start + r.stmt_len as usize
            };
            &sql[start..end]
        })
        .filter(|s| policy::classify(&format!("{s};"), None) != Ok(Class::EventTrigger))
        .collect();
    assert_eq!(
        statements.len(),
        theirs.len(),
        "stg cuts the input into {statements:?}, PostgreSQL into {theirs:?}"
    );
    // The same statements; in another order where the reader holds some back to the end
    // (FORCE ROW LEVEL SECURITY, event triggers).
    let key =
        |sql: &str| match parse(sql).and_then(|p| p.deparse(pg_query::DeparseOptions::default())) {
            Ok(deparsed) => deparsed,
            Err(_) => sql.trim().trim_end_matches(';').trim_end().to_owned(),
        };
    let mut ours: Vec<String> = statements.iter().map(|s| key(s)).collect();
    let mut theirs: Vec<String> = theirs.iter().map(|s| key(s)).collect();
    ours.sort();
    theirs.sort();
    assert_eq!(
        ours, theirs,
        "stg and PostgreSQL cut the input into other statements"
    );
});
