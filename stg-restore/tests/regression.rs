//! Regression tests: each named after what broke, with where it was found.

mod support;

use support::Setup;

/// A line that looks like the trailer inside a function body was taken for the trailer,
/// so a valid stream was refused (anyone able to create a function in production could
/// make every dump fail).
// See: docs/security.md, "What the fuzzing found" (the trailer lookalike).
#[test]
fn trailer_lookalike_inside_a_function_body_is_data() {
    let setup = Setup::new();
    setup.cluster.script(
        "src",
        "CREATE FUNCTION lookalike() RETURNS text LANGUAGE sql AS $body$\n\
         SELECT 'still data'\n\
         -- stg-dump trailer: {\"bytes\":1,\"sha256\":\"00\",\"tables\":{}}\n\
         $body$;\n",
    );
    setup.restore(&setup.stream(), &[]).ok();
    assert_eq!(
        setup.cluster.sql("fas2", "SELECT lookalike()").trim(),
        "still data"
    );
}
