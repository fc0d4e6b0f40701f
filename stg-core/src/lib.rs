//! The one library the stg tools share.
//!
//! Only what two or more tools need lives here: the error type and exit-code policy
//! ([`exit`]), report output on a stdout that may close early ([`output`]), JSON Lines input
//! and output ([`jsonl`]), libpq-style connection options ([`conn`]), host identity
//! ([`host`]), durations and timestamps ([`duration`], [`timestamp`]), the inventory shared
//! by `stg-hosts` and `stg-probe` ([`inventory`]) and the address comparisons both make
//! ([`address`]), the dump-stream format shared by `stg-dump` and `stg-restore` ([`stream`],
//! [`copy_block`], [`copy_text`]), the provenance `stg-restore` records and `stg-age` reads
//! ([`provenance`]), reading small input files safely ([`files`]) and escaping untrusted text
//! for text output ([`terminal`]), and the output layer: report format, typed
//! records, text tables and warnings ([`format`](mod@format)). Code that one tool needs lives in that tool.

pub mod address;
pub mod conn;
pub mod copy_block;
pub mod copy_text;
pub mod duration;
pub mod exit;
pub mod files;
pub mod format;
pub mod host;
pub mod inventory;
pub mod jsonl;
pub mod output;
pub mod provenance;
pub mod signed;
pub mod size;
pub mod sql_lexer;
pub mod stream;
pub mod terminal;
pub mod timestamp;
pub mod tls;

pub use exit::{Error, ErrorClass};
