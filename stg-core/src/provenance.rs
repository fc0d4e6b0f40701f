//! Provenance of a restored database: where its data came from and when, recorded by
//! `stg-restore` as the database's comment (`COMMENT ON DATABASE ... IS '<json>'`) and read by
//! `stg-restore list` and `stg-age databases`.
//!
//! The comment is one JSON object with `"stg_provenance": 1` (the format version); a
//! database whose comment is anything else has no provenance (it was not restored by
//! stg, or someone replaced the comment). Kept copies (`<db>__stg_prev_<UTC stamp>`) keep
//! their comment through the rename, because comments belong to the database, not its name.

use serde::{Deserialize, Serialize};

use crate::stream::MaskingSummary;

/// The provenance format version.
pub const VERSION: u32 = 1;

/// Suffix of the database a restore loads into before the swap.
pub const INCOMING_SUFFIX: &str = "__stg_incoming";
/// Infix of kept previous copies: `<db>__stg_prev_<YYYYMMDDTHHMMSSZ>`.
pub const PREVIOUS_INFIX: &str = "__stg_prev_";

/// What `stg-restore` records on the database it restored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Provenance {
    /// Format version ([`VERSION`]); also marks the comment as stg's.
    pub stg_provenance: u32,
    /// Production host the dump came from (as `stg-dump` connected to it).
    pub source_host: String,
    /// Production database name.
    pub source_database: String,
    /// When the dump's snapshot was taken (RFC 3339 UTC); `None` for an unverified plain dump.
    pub dumped_at: Option<String>,
    /// When the restore finished loading (RFC 3339 UTC).
    pub restored_at: String,
    /// SHA-256 of the stream as stated by its trailer and verified; `None` when unverified.
    pub stream_sha256: Option<String>,
    /// True when the stream's trailer was checked and matched.
    pub verified: bool,
    /// Masking applied by `stg-dump`.
    pub masking: MaskingSummary,
    /// The restoring tool and version, e.g. `stg-restore 0.1.0`.
    pub restored_by: String,
}

impl Provenance {
    /// The JSON text to store as the database comment.
    #[must_use]
    pub fn to_comment(&self) -> String {
        serde_json::to_string(self).expect("provenance serializes")
    }

    /// Reads a database comment; `None` when it is not stg provenance.
    #[must_use]
    pub fn from_comment(comment: &str) -> Option<Provenance> {
        let value: serde_json::Value = serde_json::from_str(comment).ok()?;
        if value.get("stg_provenance")?.as_u64()? != u64::from(VERSION) {
            return None;
        }
        serde_json::from_value(value).ok()
    }
}

/// How a database name relates to stg's naming: the live copy, the incoming load, or a
/// kept previous copy of `base`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role<'a> {
    /// `<base>__stg_incoming`.
    Incoming {
        /// The database being replaced.
        base: &'a str,
    },
    /// `<base>__stg_prev_<stamp>`.
    Previous {
        /// The database this was a copy of.
        base: &'a str,
        /// The UTC stamp of the swap that retired it.
        stamp: &'a str,
    },
    /// Any other name.
    Live,
}

/// Classifies a database name.
#[must_use]
pub fn role_of(name: &str) -> Role<'_> {
    if let Some(base) = name.strip_suffix(INCOMING_SUFFIX) {
        return Role::Incoming { base };
    }
    if let Some(at) = name.rfind(PREVIOUS_INFIX) {
        return Role::Previous {
            base: &name[..at],
            stamp: &name[at + PREVIOUS_INFIX.len()..],
        };
    }
    Role::Live
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comment_round_trips_and_foreign_comments_are_none() {
        let p = Provenance {
            stg_provenance: VERSION,
            source_host: "db01".into(),
            source_database: "fas2".into(),
            dumped_at: Some("2026-11-28T01:00:00Z".into()),
            restored_at: "2026-11-28T01:05:00Z".into(),
            stream_sha256: Some("ab".repeat(32)),
            verified: true,
            masking: MaskingSummary::default(),
            restored_by: "stg-restore 0.1.0".into(),
        };
        assert_eq!(Provenance::from_comment(&p.to_comment()), Some(p));
        assert_eq!(Provenance::from_comment("FAS production database"), None);
        assert_eq!(Provenance::from_comment("{\"stg_provenance\": 9}"), None);
    }

    #[test]
    fn names_are_classified() {
        assert_eq!(
            role_of("fas2__stg_incoming"),
            Role::Incoming { base: "fas2" }
        );
        assert_eq!(
            role_of("fas2__stg_prev_20261128T010000Z"),
            Role::Previous {
                base: "fas2",
                stamp: "20261128T010000Z"
            }
        );
        assert_eq!(role_of("fas2"), Role::Live);
    }
}
