//! Host identity: only a file that says `staging` makes a host staging.
//!
//! One test function on purpose: it changes `STG_ENVIRONMENT_FILE` for the whole process.

use stg_core::host::{environment, require_staging, Environment};

#[test]
fn only_an_explicit_staging_file_makes_a_staging_host() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("environment");
    std::env::set_var("STG_ENVIRONMENT_FILE", &file);

    // Missing file: production, and destructive actions are refused with a hint.
    assert!(matches!(environment(), Environment::Production { .. }));
    let err = require_staging("restore into database fas2").unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("refusing to restore into database fas2"),
        "{text}"
    );
    assert!(text.contains("/etc/stg/environment"), "{text}");
    assert_eq!(stg_core::exit::classify(&err), stg_core::ErrorClass::Usage);

    for (contents, staging) in [
        ("staging\n", true),
        ("# managed by ansible\n\n  staging  \n", true),
        ("production\n", false),
        ("Staging\n", false),
        ("staging-like\n", false),
        ("", false),
        ("# staging\n", false),
    ] {
        std::fs::write(&file, contents).unwrap();
        assert_eq!(
            environment() == Environment::Staging,
            staging,
            "{contents:?}"
        );
        assert_eq!(require_staging("x").is_ok(), staging, "{contents:?}");
    }

    // Unreadable (a directory): production.
    std::env::set_var("STG_ENVIRONMENT_FILE", dir.path());
    assert!(matches!(environment(), Environment::Production { .. }));
    std::env::remove_var("STG_ENVIRONMENT_FILE");
}
