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
