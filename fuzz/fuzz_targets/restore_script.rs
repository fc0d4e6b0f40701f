//! stg-restore's reading of an untrusted stream: the decoder's bounds, the one SQL lexer
//! (`stg_core::sql_lexer`), the statement splitter (`stg_restore::script`) and the
//! allow-list (`stg_restore::policy`), through the real `stg_restore::reader::Reader`.
//!
//! The first byte of an input chooses how the rest is read: `0`, SQL that the target wraps
//! as stg-dump would (a manifest line in front, a recomputed trailer, zstd), so the fuzzer
//! works on the SQL a forged stream could hold; `1`, the same with a run of one byte (the
//! next byte) repeated as many KiB as the two bytes after it say (at most 4 MiB) put after
//! as many bytes of the SQL as the fourth byte says, so a small input reaches the line and
//! statement bounds; anything else, the rest as the
//! compressed stream itself (zstd or xz, manifest and trailer up to the input), so the
//! decoder's bounds are fuzzed too. Lines and statements are bounded at 1 MiB here.
//!
//! Properties:
//! - reading never panics, and ends (accepted or refused) with bounded memory;
//! - every statement handed to the loader, lexed again alone, gives exactly the tokens the
//!   splitter classified it by, ending at its `;` and holding one statement: lexing line by
//!   line inside a stream and lexing a statement's text alone agree (no state leaks from
//!   one statement into the next, a literal continued across lines ends where it ends);
//! - no statement handed on holds a top-level backslash (a psql meta-command);
//! - what the stream's allow-list accepted, the allow-list accepts alone too, with the same
//!   class (an event trigger held back to the end runs as a plain statement); the stream's
//!   state only ever refuses more (COPY after a trigger, foreign objects on servers it
//!   never made);
//!
//! Seeded (`fuzz/seeds/restore_script/`) with the forged inputs of issue 26's findings.

#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use stg_core::sql_lexer::{self, Kind};
use stg_restore::policy::{self, Class};
use stg_restore::reader::{Options, Reader};
use stg_restore::script::{one_statement, Item};

fn check_statement(sql: &str, class: &Class) {
    let tokens = sql_lexer::tokens(sql.as_bytes())
        .unwrap_or_else(|| panic!("a statement handed on does not lex alone: {sql:?}"));
    assert_eq!(
        tokens.last().map(|t| &t.kind),
        Some(&Kind::Char(b';')),
        "a statement handed on does not end at its `;`: {sql:?}"
    );
    assert!(one_statement(&tokens), "more than one statement: {sql:?}");
    assert!(
        !tokens.iter().any(|t| t.kind == Kind::Char(b'\\')),
        "a top-level backslash was handed on: {sql:?}"
    );
    match policy::classify(sql, None) {
        Ok(alone) => {
            let same = alone == *class || (alone == Class::Deferred && *class == Class::Serial);
            assert!(
                same,
                "classified {class:?} in the stream, {alone:?} alone: {sql:?}"
            );
        }
        Err(why) => panic!("accepted in the stream, refused alone ({why}): {sql:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let input = match (mode, rest) {
        (0, sql) => common::wrap(sql),
        (1, [fill, hi, lo, at, sql @ ..]) => {
            let kib = (usize::from(*hi) << 8 | usize::from(*lo)).min(4096);
            let at = usize::from(*at).min(sql.len());
            let mut body = sql[..at].to_vec();
            body.resize(at + (kib << 10), *fill);
            body.extend_from_slice(&sql[at..]);
            common::wrap(&body)
        }
        (1, _) => return,
        _ => rest.to_vec(),
    };
    let options = Options {
        max_line: 1 << 20,
        ..Options::default()
    };
    let Ok(mut reader) = Reader::open(&input[..], options) else {
        return;
    };
    loop {
        let mut items = Vec::new();
        let more = reader.fill(&mut items, 64 * 1024);
        // Items before an error are the ones that ran before the refused statement; each
        // of them was accepted on its own terms.
        for item in &items {
            if let Item::Statement(s) = item {
                // The tokens the splitter classified by are the statement's own.
                let tokens = sql_lexer::tokens(s.sql.as_bytes()).expect("lexes alone");
                assert!(!tokens.is_empty());
                check_statement(&s.sql, &s.class);
            }
        }
        match more {
            Ok(true) => {}
            Ok(false) => break,
            // A refusal ends the load: the loader's reader thread sends it and stops.
            Err(_) => return,
        }
    }
    let _ = reader.finish();
});
