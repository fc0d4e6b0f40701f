//! Regression tests for bugs found by fuzzing (`make fuzz`), named after what broke.

use serde::Deserialize;
use stg_core::exit::{classify, ErrorClass};

#[derive(Debug, Deserialize)]
struct Record {
    #[serde(rename = "type")]
    _kind: String,
}

// See: fuzz target `jsonl` (fuzz/fuzz_targets/jsonl.rs): a line that is not UTF-8 came back
// as an I/O error, so the tool exited 3 (runtime failure) for what is bad input (exit 2).
#[test]
fn a_line_that_is_not_utf8_is_a_usage_error_naming_its_line() {
    let input = b"{\"type\":\"a\"}\n{\"type\":\"\xff\"}\n{\"type\":\"c\"}\n";
    let items: Vec<_> = stg_core::jsonl::read::<Record>(&input[..], "in.jsonl").collect();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0].as_ref().unwrap().0, 1);
    let err = items[1].as_ref().unwrap_err();
    assert!(err.to_string().starts_with("in.jsonl: line 2: "), "{err:#}");
    assert_eq!(classify(err), ErrorClass::Usage, "{err:#}");
    // Reading goes on after the bad line, with the right line numbers.
    assert_eq!(items[2].as_ref().unwrap().0, 3);
}

// See: fuzz target `stream` (fuzz/fuzz_targets/stream.rs) and stg-dump's regression test
// of the same name: a line inside a function body or a string literal that looks exactly
// like a COPY header was taken for one, so the rows of the next real block were counted
// (and, in stg-dump, masked) as another table's. The one classifier both ends use now
// decides it, and the tally that classifies for itself agrees with the one handed classes.
#[test]
fn a_copy_header_inside_a_function_body_or_a_literal_is_sql() {
    use stg_core::copy_block::{Classifier, Line};
    use stg_core::stream::Tally;

    let text = "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $body$ SELECT '\n\
                COPY public.zzz (id) FROM stdin;\n\
                '::text $body$;\n\
                COMMENT ON TABLE zzz IS E'x\\'\n\
                COPY public.zzz (id) FROM stdin;\n\
                y';\n\
                CREATE VIEW v AS SELECT \"a\n\
                COPY public.nosuch (id) FROM stdin;\n\
                b\" FROM t;\n\
                COPY public.aaa (id, secret) FROM stdin;\n\
                1\thunter2-secret\n\
                \\.\n";
    let mut classifier = Classifier::new();
    let mut handed = Tally::new();
    let mut own = Tally::new();
    let mut headers = Vec::new();
    for line in text.split_inclusive('\n') {
        let class = classifier.line(line.as_bytes());
        if let Line::Header(header) = &class {
            headers.push(header.qualified.clone());
        }
        handed.counted(line.as_bytes(), &class);
        own.line(line.as_bytes());
    }
    assert_eq!(headers, ["public.aaa"]);
    assert!(classifier.at_top() && own.at_top_level());
    let (handed, own) = (handed.finish(), own.finish());
    assert_eq!(handed, own);
    assert_eq!(own.tables.len(), 1);
    assert_eq!(own.tables["public.aaa"], 1);
}
