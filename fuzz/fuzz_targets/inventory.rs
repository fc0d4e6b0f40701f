//! The inventory reader (`stg_core::inventory::Inventory::parse`), on arbitrary text.
//!
//! Properties:
//! - no panic on any input;
//! - every refusal is a usage error (exit 2) whose message names the file;
//! - what is accepted validates, and written back as JSON parses to the same inventory;
//! - every host name an accepted inventory gives stg-hosts is a valid host name, so nothing
//!   it writes into /etc/hosts can hold a space, a `#` or a newline.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stg_core::exit::{classify, ErrorClass};
use stg_core::inventory::{is_valid_hostname, Inventory};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Inventory::parse(text, "fuzz.json") {
        Err(e) => {
            assert_eq!(classify(&e), ErrorClass::Usage, "{e:#}");
            assert!(e.to_string().starts_with("inventory fuzz.json: "), "{e:#}");
        }
        Ok(inv) => {
            assert_eq!(inv.validate(), Ok(()));
            let again = serde_json::to_string(&inv).unwrap();
            assert_eq!(Inventory::parse(&again, "again").unwrap(), inv);
            for service in &inv.services {
                for name in &service.production {
                    assert!(is_valid_hostname(name));
                    assert!(!name.contains([' ', '\t', '#', '\n', '\r']));
                }
                if let Some(name) = &service.staging.name {
                    assert!(!name.contains([' ', '\t', '#', '\n', '\r']));
                }
            }
        }
    }
});
