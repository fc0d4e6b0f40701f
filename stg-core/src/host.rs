//! Host identity: is this host staging?
//!
//! A host is staging only if the file named by `STG_ENVIRONMENT_FILE` (default
//! `/etc/stg/environment`) says `staging`: its first line that is neither blank nor a `#`
//! comment is, trimmed, exactly `staging`. A missing, unreadable or different file means
//! production, so a host nobody marked is protected. Every command that changes a database
//! calls [`require_staging`] before it touches anything.

use std::path::PathBuf;

/// Default location of the environment file.
pub const DEFAULT_ENVIRONMENT_FILE: &str = "/etc/stg/environment";

/// What this host is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Environment {
    /// The environment file says `staging`.
    Staging,
    /// Anything else; `why` says what was found, for messages.
    Production {
        /// Why this host counts as production.
        why: String,
    },
}

/// The environment file in force (`STG_ENVIRONMENT_FILE` or the default).
#[must_use]
pub fn environment_file() -> PathBuf {
    std::env::var_os("STG_ENVIRONMENT_FILE")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_ENVIRONMENT_FILE), PathBuf::from)
}

/// Reads the host's identity.
#[must_use]
pub fn environment() -> Environment {
    let path = environment_file();
    match std::fs::read_to_string(&path) {
        Err(err) => Environment::Production {
            why: format!("{} could not be read ({err})", path.display()),
        },
        Ok(text) => {
            let first = text
                .lines()
                .map(str::trim)
                .find(|line| !line.is_empty() && !line.starts_with('#'));
            match first {
                Some("staging") => Environment::Staging,
                Some(other) => Environment::Production {
                    why: format!("{} says {other:?}", path.display()),
                },
                None => Environment::Production {
                    why: format!("{} is empty", path.display()),
                },
            }
        }
    }
}

/// Refuses (usage error, exit 2) unless this host is staging. `action` names what was
/// refused, e.g. `"restore into database fas2"`.
pub fn require_staging(action: &str) -> anyhow::Result<()> {
    match environment() {
        Environment::Staging => Ok(()),
        Environment::Production { why } => Err(crate::exit::Error::usage(format!(
            "refusing to {action}: this host is not marked as staging ({why}); \
             a staging host has a file {DEFAULT_ENVIRONMENT_FILE} containing the line `staging` \
             (or STG_ENVIRONMENT_FILE naming such a file)"
        ))
        .into()),
    }
}
