//! The JSON Lines records `stg-probe` reads on stdin (or from `--targets FILE`): stg-hosts'
//! `override` records and explicit `target` records, validated into [`Check`]s.
//!
//! A malformed line, an unknown record type, a port out of range or a bad host name is a
//! usage error naming the line (exit 3, since the probe speaks Nagios). `summary` records
//! (the last line of `stg-hosts emit --format json`) are skipped. Not for the inventory:
//! see [`crate::plan`].

use std::io::BufRead;
use std::net::IpAddr;

use serde::Deserialize;
use stg_core::exit::Error;
use stg_core::inventory::is_valid_hostname;

use crate::plan::{Check, Kind};

/// One input line, by its `"type"`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Record {
    /// `stg-hosts emit --format json`: this production name should resolve to `address`.
    /// Other fields stg-hosts may add are ignored.
    Override {
        name: String,
        address: IpAddr,
        #[serde(default)]
        service: Option<String>,
    },
    /// An explicit check.
    Target(TargetRecord),
    /// The closing record of another tool's report: carries nothing to check.
    Summary {},
}

/// `{"type":"target","check":"blocked"|"reachable"|"resolves","host":..,"port":..,"expect":[..]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetRecord {
    check: Kind,
    host: String,
    /// Read wide so that an out-of-range port is reported as such, not as a type error.
    #[serde(default)]
    port: Option<i64>,
    #[serde(default)]
    expect: Vec<IpAddr>,
    #[serde(default)]
    service: Option<String>,
}

fn valid_host(host: &str) -> bool {
    is_valid_hostname(host) || host.parse::<IpAddr>().is_ok()
}

fn bad(source_name: &str, line: usize, message: &str) -> anyhow::Error {
    Error::usage(format!("{source_name}: line {line}: {message}")).into()
}

/// Reads every record of `input` into checks; `source_name` names the input in messages.
pub fn read_checks(input: impl BufRead, source_name: &str) -> anyhow::Result<Vec<Check>> {
    let mut checks = Vec::new();
    for item in stg_core::jsonl::read::<Record>(input, source_name) {
        let (line, record) = item?;
        let origin = format!("{source_name}:{line}");
        match record {
            Record::Summary {} => {}
            Record::Override {
                name,
                address,
                service,
            } => {
                if !is_valid_hostname(&name) {
                    return Err(bad(
                        source_name,
                        line,
                        &format!("name: {name:?} is not a valid host name"),
                    ));
                }
                checks.push(Check {
                    kind: Kind::Resolves,
                    host: name,
                    port: None,
                    service,
                    source: origin,
                    expect: vec![address],
                    allowed: None,
                });
            }
            Record::Target(target) => {
                if !valid_host(&target.host) {
                    return Err(bad(
                        source_name,
                        line,
                        &format!(
                            "host: {:?} is not a valid host name or address",
                            target.host
                        ),
                    ));
                }
                let port = match (target.check, target.port) {
                    (Kind::Resolves, None) => None,
                    (Kind::Resolves, Some(port)) => {
                        return Err(bad(
                            source_name,
                            line,
                            &format!("port: a \"resolves\" check takes no port (got {port})"),
                        ))
                    }
                    (kind, None) => {
                        return Err(bad(
                            source_name,
                            line,
                            &format!("port: a {:?} check needs a port", kind.as_str()),
                        ))
                    }
                    (_, Some(port)) => Some(
                        u16::try_from(port)
                            .ok()
                            .filter(|p| *p != 0)
                            .ok_or_else(|| {
                                bad(
                                    source_name,
                                    line,
                                    &format!("port: {port} is out of range (1-65535)"),
                                )
                            })?,
                    ),
                };
                checks.push(Check {
                    kind: target.check,
                    host: target.host,
                    port,
                    service: target.service,
                    source: origin,
                    expect: target.expect,
                    allowed: None,
                });
            }
        }
    }
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_of(text: &str) -> String {
        read_checks(text.as_bytes(), "<stdin>")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn reads_overrides_targets_and_skips_summary() {
        let text = r#"{"type":"override","name":"fas.example.org","address":"10.0.0.5","service":"fas","extra":1}
{"type":"target","check":"blocked","host":"10.1.0.1","port":443}

{"type":"target","check":"resolves","host":"a.example.org","expect":["10.0.0.6"]}
{"type":"summary","entries":1}
"#;
        let checks = read_checks(text.as_bytes(), "<stdin>").unwrap();
        assert_eq!(checks.len(), 3);
        assert_eq!(checks[0].kind, Kind::Resolves);
        assert_eq!(
            checks[0].expect,
            vec!["10.0.0.5".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(checks[1].port, Some(443));
        assert_eq!(checks[2].source, "<stdin>:4");
    }

    #[test]
    fn bad_lines_are_named() {
        assert!(err_of(
            "{\"type\":\"target\",\"check\":\"blocked\",\"host\":\"h\",\"port\":70000}"
        )
        .contains("<stdin>: line 1: port: 70000 is out of range"));
        assert!(
            err_of("\n{\"type\":\"target\",\"check\":\"blocked\",\"host\":\"h\",\"port\":0}")
                .contains("line 2: port: 0 is out of range")
        );
        assert!(
            err_of("{\"type\":\"target\",\"check\":\"blocked\",\"host\":\"h\"}")
                .contains("needs a port")
        );
        assert!(err_of("{\"type\":\"nonsense\"}").contains("line 1"));
        assert!(
            err_of("{\"type\":\"target\",\"check\":\"blocked\",\"host\":\"a b\",\"port\":1}")
                .contains("host: \"a b\"")
        );
        assert!(
            err_of("{\"type\":\"target\",\"check\":\"pinged\",\"host\":\"h\",\"port\":1}")
                .contains("line 1")
        );
    }
}
