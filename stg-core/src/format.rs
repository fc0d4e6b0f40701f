//! The output layer every tool shares: the report [`Format`] and its default, JSON Lines
//! records whose `"type"` comes from their Rust type ([`Record`], written by
//! [`crate::jsonl::Writer::record`]), the aligned text [`Table`], and [`warn`]ings that name
//! the tool.
//!
//! The default format follows the house rule: text when stdout is a terminal (a person is
//! reading), JSON Lines otherwise (a pipe, cron, Ansible). `--format` overrides it.

use std::io::{self, IsTerminal, Write};
use std::sync::OnceLock;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use serde::Serialize;

/// How a report is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table (or lines) for people.
    Text,
    /// JSON Lines for programs: one record per line, the last a `summary`.
    Json,
    /// One Nagios plugin status line with perfdata (stg-probe only).
    Nagios,
}

impl Format {
    /// The format asked for, or the house default: [`Format::Text`] when stdout is a
    /// terminal, [`Format::Json`] otherwise.
    #[must_use]
    pub fn or_default(given: Option<Format>) -> Format {
        given.unwrap_or_else(|| Format::for_stdout(io::stdout().is_terminal()))
    }

    /// The default for a stdout that is (or is not) a terminal.
    #[must_use]
    pub fn for_stdout(terminal: bool) -> Format {
        if terminal {
            Format::Text
        } else {
            Format::Json
        }
    }

    /// A clap value parser that accepts `text` and `json` only, for the tools that have no
    /// Nagios output: `#[arg(long, value_parser = stg_core::format::text_or_json())]`.
    #[must_use]
    pub fn text_or_json() -> impl TypedValueParser<Value = Format> {
        // The values carry their doc comments, so `--help` says what each one is.
        PossibleValuesParser::new(
            [Format::Text, Format::Json]
                .iter()
                .filter_map(clap::ValueEnum::to_possible_value),
        )
        .map(|name| <Format as clap::ValueEnum>::from_str(&name, false).expect("a listed value"))
    }
}

/// A JSON Lines record: a serializable struct whose `"type"` is [`Record::TYPE`], written
/// first on the line by [`crate::jsonl::Writer::record`]. The struct itself has no `type`
/// field, so its name cannot drift from its kind.
pub trait Record: Serialize {
    /// The record's `"type"` (`"check"`, `"finding"`, `"summary"`...).
    const TYPE: &'static str;
}

/// A table for text output: left-aligned columns two spaces apart, as wide as their widest
/// cell (counted in characters). Cells are printed as given; escape untrusted text with
/// [`crate::terminal::escape`] first.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table whose first row is `header`.
    #[must_use]
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Table {
        let mut table = Table::default();
        table.row(header);
        table
    }

    /// Adds a row.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// The number of rows, header included.
    #[must_use]
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when the table has no row, not even a header.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Writes the table; the last column is not padded.
    pub fn write(&self, mut out: impl Write) -> io::Result<()> {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0usize; columns];
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    let pad = widths[i] - cell.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

static TOOL: OnceLock<String> = OnceLock::new();

/// Records the running tool's name for [`warn`] (done by [`crate::exit::run_main`]).
pub fn set_tool(name: &str) {
    let _ = TOOL.set(name.to_owned());
}

/// The running tool's name, as [`set_tool`] recorded it (`stg` before that).
#[must_use]
pub fn tool() -> &'static str {
    TOOL.get().map_or("stg", String::as_str)
}

/// Prints `tool: warning: message` on stderr, the message escaped for a terminal. A closed
/// stderr is ignored (a warning is never worth failing a run for).
pub fn warn(message: impl std::fmt::Display) {
    let text = message.to_string();
    let _ = writeln!(
        io::stderr(),
        "{}: warning: {}",
        tool(),
        crate::terminal::escape(&text)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Two {
        #[arg(long, value_parser = Format::text_or_json())]
        format: Option<Format>,
    }

    #[derive(Parser)]
    struct Three {
        #[arg(long)]
        format: Option<Format>,
    }

    #[test]
    fn help_says_what_each_value_is() {
        use clap::CommandFactory;
        let help = Two::command().render_long_help().to_string();
        assert!(help.contains("A table (or lines) for people"), "{help}");
        assert!(help.contains("JSON Lines for programs"), "{help}");
        assert!(!help.contains("Nagios"), "{help}");
    }

    #[test]
    fn text_on_a_terminal_json_in_a_pipe() {
        assert_eq!(Format::for_stdout(true), Format::Text);
        assert_eq!(Format::for_stdout(false), Format::Json);
        assert_eq!(Format::or_default(Some(Format::Nagios)), Format::Nagios);
    }

    #[test]
    fn tools_without_nagios_refuse_it() {
        let two = Two::try_parse_from(["t", "--format", "json"]).unwrap();
        assert_eq!(two.format, Some(Format::Json));
        let err = Two::try_parse_from(["t", "--format", "nagios"])
            .err()
            .expect("nagios refused");
        assert!(
            err.to_string().contains("[possible values: text, json]"),
            "{err}"
        );
        let three = Three::try_parse_from(["t", "--format", "nagios"]).unwrap();
        assert_eq!(three.format, Some(Format::Nagios));
    }

    #[test]
    fn table_aligns_by_characters_and_leaves_the_last_column_ragged() {
        let mut table = Table::new(["NAME", "AGE", "NOTE"]);
        table.row(["José", "12", "x"]);
        table.row(["a", "3", ""]);
        let mut out = Vec::new();
        table.write(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "NAME  AGE  NOTE\nJosé  12   x\na     3\n"
        );
    }
}
