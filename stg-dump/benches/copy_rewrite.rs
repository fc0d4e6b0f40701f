//! The COPY masking path alone: rows/s and MB/s of the line reader + row rewriter on a large
//! FAS-like COPY block in memory, against a plain copy of the same bytes through the same
//! line reader. Prints one JSON object; `bench/run.sh` puts it in docs/benchmarks.md.
//!
//! Run: `cargo bench -p stg-dump --bench copy_rewrite [-- MEGABYTES]` (default 256).

use std::io::BufRead;
use std::time::Instant;

use stg_dump::masking::{ColumnPlan, Pseudonymizer, Scratch, TablePlan};
use stg_dump::rules::Transform;

/// One FAS-like `people` row as pg_dump writes it (13 columns, escapes included).
fn row(i: u64) -> String {
    let comment = match i % 4 {
        0 => "\\N".to_owned(),
        1 => format!("sponsored by user{}\\nsee ticket {}\\tthanks", i / 3, i * 7),
        2 => "Zoë Ñandú 日本語 packager".to_owned(),
        _ => format!("Bugzilla {i}: review request for python-{i}"),
    };
    format!(
        "{i}\tuser{i}\tPerson Number {i}\tuser{i}@fedoraproject.org\t$6$rounds=656000${:016x}${:032x}\t\
         ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{:040x} user{i}@laptop\t+1-555-{:04}\tnick{i}\ten_US\tUTC\t{comment}\t\
         {{\"seen\": {i}, \"lang\": \"en\", \"theme\": \"dark\"}}\t2015-06-01 12:00:00+00\n",
        i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        u128::from(i).wrapping_mul(0x2545_f491_4f6c_dd1d_0000_0001),
        u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        i % 10_000
    )
}

fn plan() -> TablePlan {
    let mask = |column: &str, transform: Transform| {
        Some(ColumnPlan {
            column: column.to_owned(),
            transform,
            max_chars: None,
        })
    };
    TablePlan {
        table: "public.people".into(),
        columns: vec![
            None,
            mask(
                "username",
                Transform::Pseudonym {
                    prefix: "u_".into(),
                },
            ),
            None,
            mask(
                "email",
                Transform::Email {
                    domain: Some("stg.fedoraproject.org".into()),
                },
            ),
            mask("password", Transform::Constant(Some("INVALID".into()))),
            mask("ssh_key", Transform::Null),
            mask("telephone", Transform::Null),
            None,
            None,
            None,
            mask(
                "comments",
                Transform::Replace {
                    from: Box::new(memchr::memmem::Finder::new("@fedoraproject.org").into_owned()),
                    to: "@stg.fedoraproject.org".into(),
                },
            ),
            None,
            None,
        ],
    }
}

fn main() {
    let megabytes: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(256);
    let mut block = Vec::with_capacity(megabytes << 20);
    let mut rows = 0u64;
    while block.len() < megabytes << 20 {
        block.extend_from_slice(row(rows).as_bytes());
        rows += 1;
    }
    let plan = plan();
    let keyed = Pseudonymizer::new(b"benchmark-key-0123456789abcdef");

    let measure = |masked: bool| {
        let mut reader = std::io::BufReader::with_capacity(1 << 20, &block[..]);
        let mut line = Vec::with_capacity(4096);
        let mut out = Vec::with_capacity(2 << 20);
        let mut scratch = Scratch::default();
        let mut written = 0usize;
        let start = Instant::now();
        let mut n = 0u64;
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).unwrap() == 0 {
                break;
            }
            n += 1;
            if masked {
                plan.rewrite_row(
                    &line[..line.len() - 1],
                    n,
                    Some(&keyed),
                    &mut scratch,
                    &mut out,
                )
                .unwrap();
            } else {
                out.extend_from_slice(&line);
            }
            if out.len() >= 1 << 20 {
                written += out.len();
                out.clear();
            }
        }
        written += out.len();
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(n, rows);
        (secs, written)
    };
    // Warm up, then measure each twice and keep the faster run.
    measure(false);
    let (plain_secs, _) = [measure(false), measure(false)]
        .into_iter()
        .fold((f64::MAX, 0), |a, b| if b.0 < a.0 { b } else { a });
    let (masked_secs, masked_bytes) = [measure(true), measure(true)]
        .into_iter()
        .fold((f64::MAX, 0), |a, b| if b.0 < a.0 { b } else { a });
    let mb = block.len() as f64 / 1e6;
    println!(
        "{{\"type\":\"copy_rewrite\",\"input_mb\":{mb:.1},\"rows\":{rows},\"masked_columns\":6,\
         \"plain_mb_s\":{:.1},\"masked_mb_s\":{:.1},\"masked_rows_s\":{:.0},\"masked_output_mb\":{:.1},\"ratio_to_plain\":{:.2}}}",
        mb / plain_secs,
        mb / masked_secs,
        rows as f64 / masked_secs,
        masked_bytes as f64 / 1e6,
        masked_secs / plain_secs
    );
}
