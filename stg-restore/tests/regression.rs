//! Regression tests: each named after what broke, with where it was found.

mod support;

use stg_tests::run::{run, Run, RunExt};
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

/// zstd frames that decode, one after the other, to `prefix`, then `len` bytes of `fill`,
/// then `suffix`: a stream of any length from a few KiB of compressed data, made without
/// holding the long part (frames of one 8 MiB block, repeated; zstd reads concatenated
/// frames as one stream).
fn repeated(prefix: &[u8], fill: u8, len: usize, suffix: &[u8]) -> Vec<u8> {
    const PIECE: usize = 8 << 20;
    let frame = |data: &[u8]| zstd::stream::encode_all(data, 3).expect("zstd");
    let mut out = frame(prefix);
    let whole = frame(&vec![fill; PIECE]);
    for _ in 0..len / PIECE {
        out.extend_from_slice(&whole);
    }
    let mut tail = vec![fill; len % PIECE];
    tail.extend_from_slice(suffix);
    out.extend(frame(&tail));
    out
}

/// A stream whose second line is a comment of `len` bytes, newline included, with a
/// matching trailer (so that it verifies when the line is accepted).
fn long_comment_stream(len: usize) -> Vec<u8> {
    let manifest = stg_core::stream::manifest_line(&stg_core::stream::Manifest::example());
    let mut line = b"-- ".to_vec();
    line.resize(len - 1, b'-');
    line.push(b'\n');
    let rest = b"CREATE SCHEMA s1;\n";
    let mut tally = stg_core::stream::Tally::new();
    tally.line(manifest.as_bytes());
    tally.line(&line);
    tally.line(rest);
    let trailer = stg_core::stream::trailer_line(&tally.finish());
    let mut suffix = rest.to_vec();
    suffix.extend_from_slice(trailer.as_bytes());
    let mut prefix = manifest.into_bytes();
    prefix.extend_from_slice(b"-- ");
    repeated(
        &prefix,
        b'-',
        len - 4,
        &[b"\n".as_slice(), &suffix].concat(),
    )
}

/// The stream in a file, as a stdin for [`stg_tests::cmd::output_bounded`].
fn stdin_of(dir: &tempfile::TempDir, data: &[u8]) -> std::process::Stdio {
    let path = dir.path().join("stream");
    std::fs::write(&path, data).expect("write the stream");
    std::fs::File::open(&path).expect("open the stream").into()
}

/// How much address space a bounded run may take: the issue's "under 256 MiB".
const BOUND: u64 = 256 << 20;

/// One line of 1 GiB (a comment; a few hundred KiB of zstd) was read whole: `verify` took
/// memory without bound (2.1 GB resident for a 2 GiB line).
// See: issue 26, finding 8.
#[test]
fn a_gigabyte_line_is_refused_by_verify_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = stg_core::stream::manifest_line(&stg_core::stream::Manifest::example());
    let bomb = repeated(manifest.as_bytes(), b'-', 1 << 30, b"\n");
    assert!(bomb.len() < 1 << 20, "the bomb is small: {}", bomb.len());
    let mut cmd = stg_tests::cmd::stg("stg-restore");
    cmd.args(["verify", "--format", "json"]);
    let out = Run::from(stg_tests::cmd::output_bounded(
        &cmd,
        stdin_of(&dir, &bomb),
        std::time::Duration::from_secs(120),
        BOUND,
    ))
    .code_is(1);
    let problems = out.summary()["verification"]["problems"].to_string();
    for part in ["line 2", "64 MiB", "--max-line-size"] {
        assert!(problems.contains(part), "{part}: {problems}");
    }
}

/// The same line in a restore: refused at the load, in bounded memory, nothing replaced.
// See: issue 26, finding 8.
#[test]
fn a_gigabyte_line_is_refused_by_a_restore_in_bounded_memory() {
    let setup = Setup::new();
    let dir = tempfile::tempdir().unwrap();
    let manifest = stg_core::stream::manifest_line(&setup.manifest("src", "fas2"));
    let bomb = repeated(manifest.as_bytes(), b'-', 1 << 30, b"\n");
    let cmd = setup.restore_cmd(&["--format", "json"]);
    let out = Run::from(stg_tests::cmd::output_bounded(
        &cmd,
        stdin_of(&dir, &bomb),
        std::time::Duration::from_secs(120),
        BOUND,
    ))
    .code_is(2);
    let summary = out.summary();
    assert_eq!(summary["failed_step"], "load", "{summary}");
    let error = summary["error"].as_str().unwrap();
    for part in ["line 2", "64 MiB", "--max-line-size"] {
        assert!(error.contains(part), "{part}: {error}");
    }
    setup.assert_untouched();
}

/// The bound is the line's length with its newline: a line of exactly the bound passes, one
/// byte more is refused; raised, the longer line passes too.
// See: issue 26, finding 8.
#[test]
fn a_line_of_the_bound_passes_and_one_byte_more_needs_a_raised_bound() {
    let verify = |stream: &[u8], bound: Option<&str>| {
        let mut cmd = stg_tests::cmd::stg("stg-restore");
        cmd.args(["verify", "--format", "json"]);
        if let Some(bound) = bound {
            cmd.args(["--max-line-size", bound]);
        }
        run(cmd, stream.to_vec())
    };
    let at = long_comment_stream(1 << 20);
    let over = long_comment_stream((1 << 20) + 1);
    verify(&at, Some("1M")).ok();
    verify(&at, Some("1048576")).ok();
    let refused = verify(&over, Some("1M")).code_is(1);
    let problems = refused.summary()["verification"]["problems"].to_string();
    assert!(
        problems.contains("line 2") && problems.contains("1 MiB"),
        "{problems}"
    );
    verify(&over, Some("2M")).ok();
    // The default, 64 MiB, and past it.
    let big = long_comment_stream((64 << 20) + 1);
    verify(&big, None).code_is(1);
    verify(&big, Some("65M")).ok();
}

/// A lowered bound in a restore: a 60 KiB comment line and a 60 KiB COPY row pass
/// `--max-line-size 64K`; a 70 KiB row is refused, naming its line, and nothing is replaced.
// See: issue 26, finding 8.
#[test]
fn a_restore_takes_lines_up_to_a_lowered_bound_and_refuses_longer_ones() {
    let setup = Setup::new();
    let plain = setup.plain_stream();
    let body = support::without_trailer(&plain);
    // Where pg_dump writes data: before the first COPY block (after the post-data part, a
    // COPY block is refused, since triggers and foreign keys exist by then).
    let first_copy = support::find(&body, b"\nCOPY ").expect("a COPY block") + 1;
    let with_row = |len: usize| {
        let comment = format!("-- {}\n", "c".repeat(60 << 10));
        let row = format!("{}\n", "r".repeat(len));
        let mut sql = body[..first_copy].to_vec();
        sql.extend_from_slice(
            format!(
                "{comment}CREATE TABLE public.wide (v text);\n\
                 COPY public.wide (v) FROM stdin;\n{row}\\.\n"
            )
            .as_bytes(),
        );
        sql.extend_from_slice(&body[first_copy..]);
        support::Codec::Zstd.compress(&support::retrail(&sql))
    };
    let refused = setup
        .restore(
            &with_row(70 << 10),
            &["--max-line-size", "64K", "--format", "json"],
        )
        .code_is(2);
    let error = refused.summary()["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains("64 KiB") && error.contains("--max-line-size"),
        "{error}"
    );
    setup.assert_untouched();
    setup
        .restore(
            &with_row(60 << 10),
            &["--max-line-size", "64K", "--format", "json"],
        )
        .ok();
    assert_eq!(
        setup
            .cluster
            .sql("fas2", "SELECT length(v) FROM public.wide")
            .trim(),
        (60 << 10).to_string()
    );
}

/// A verified stream, xz with LZMA2 at `preset` and `dict_size`.
fn xz_stream(plain: &[u8], preset: u32, dict_size: u32) -> Vec<u8> {
    use liblzma::stream::{Check, Filters, LzmaOptions, Stream};
    let mut options = LzmaOptions::new_preset(preset).unwrap();
    options.dict_size(dict_size);
    let mut filters = Filters::new();
    filters.lzma2(&options);
    let stream = Stream::new_stream_encoder(&filters, Check::Crc64).unwrap();
    let mut enc = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
    std::io::Write::write_all(&mut enc, plain).unwrap();
    enc.finish().unwrap()
}

/// An xz stream may ask for any dictionary (up to 4 GiB); the decoder had no memory limit,
/// so a 233 KB stream with a 1.5 GiB dictionary took 1.5 GB resident. Now refused, saying
/// what to do, in bounded memory; `xz -6`'s 8 MiB dictionary still decodes.
// See: issue 26, finding 9.
#[test]
fn an_xz_dictionary_past_8_mib_is_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = stg_core::stream::manifest_line(&stg_core::stream::Manifest::example());
    let plain = support::retrail(format!("{manifest}CREATE SCHEMA s1;\n").as_bytes());
    let verify = |stream: &[u8]| {
        let mut cmd = stg_tests::cmd::stg("stg-restore");
        cmd.args(["verify", "--format", "json"]);
        Run::from(stg_tests::cmd::output_bounded(
            &cmd,
            stdin_of(&dir, stream),
            std::time::Duration::from_secs(120),
            BOUND,
        ))
    };
    let out = verify(&xz_stream(&plain, 0, 1536 << 20)).code_is(1);
    let problems = out.summary()["verification"]["problems"].to_string();
    for part in ["dictionary larger than 8 MiB", "xz -6", "zstd"] {
        assert!(problems.contains(part), "{part}: {problems}");
    }
    verify(&xz_stream(&plain, 6, 8 << 20)).ok();
}

/// `CREATE DATABASE name TEMPLATE fas2`, with fas2's comment when `with_provenance`.
fn copy_of_fas2(setup: &Setup, name: &str, with_provenance: bool) {
    let c = &setup.cluster;
    c.sql(
        "postgres",
        &format!("CREATE DATABASE \"{name}\" TEMPLATE fas2"),
    );
    if with_provenance {
        c.sql(
            "postgres",
            &format!(
                "DO $$ BEGIN EXECUTE format('COMMENT ON DATABASE %I IS %L', '{name}', \
                 (SELECT shobj_description(oid, 'pg_database') FROM pg_database \
                  WHERE datname = 'fas2')); END $$"
            ),
        );
    }
}

/// Rows of `people` named `local-work`: the staging work made between two restores.
fn local_work(setup: &Setup, db: &str) -> String {
    setup
        .cluster
        .sql(
            db,
            "SELECT count(*) FROM people WHERE username = 'local-work'",
        )
        .trim()
        .to_owned()
}

/// Kept copies were ordered by the stamp in their names, so a copy named for a time in the
/// future (retired while a clock was ahead, or made by hand) sorted first: `--keep 1`
/// dropped the copy the restore had just retired, the one holding the staging work, and
/// kept the future one; `rollback` went to the future one too. No warning.
// See: issue 26, finding 7; docs/security.md, "A backup stamped in the future" (stg-hosts).
#[test]
fn a_future_stamped_kept_copy_cannot_push_out_the_one_just_retired() {
    let setup = Setup::new();
    let c = &setup.cluster;
    let stream = setup.stream();
    setup.restore(&stream, &["--keep", "1"]).ok();
    // Two copies named for the future: one made by hand, one with fas2's provenance (as a
    // copy retired while the clock was ahead has).
    let bare = "fas2__stg_prev_20991231T235959Z";
    let with_provenance = "fas2__stg_prev_20991230T000000Z";
    copy_of_fas2(&setup, bare, false);
    copy_of_fas2(&setup, with_provenance, true);
    c.script(
        "fas2",
        "INSERT INTO people (username, human_name, email, password) \
         VALUES ('local-work', 'Local Work', 'lw@stg.example', 'x');",
    );

    let out = setup
        .restore(&stream, &["--keep", "1", "--format", "json"])
        .ok();
    let s = out.summary();
    let retired = s["previous"].as_str().unwrap().to_owned();
    assert_eq!(local_work(&setup, &retired), "1", "the local work is kept");
    assert!(setup.stg_databases().contains(&retired), "{s}");
    let warnings = s["warnings"].to_string();
    for name in [bare, with_provenance] {
        assert!(warnings.contains(name), "{name}: {warnings}");
        assert!(
            out.stderr.contains(name),
            "{name} on stderr: {}",
            out.stderr
        );
    }
    assert!(warnings.contains("future"), "{warnings}");
    // The one with provenance is ordered by its restore time (older than the copy just
    // retired) and pruned; the one of unknown age is never pruned.
    assert_eq!(s["dropped"].as_array().unwrap().len(), 2, "{s}");
    assert!(!s["dropped"].to_string().contains(bare), "{s}");
    let mut kept = setup.stg_databases();
    kept.sort();
    let mut expected = vec![retired.clone(), bare.to_owned()];
    expected.sort();
    assert_eq!(kept, expected);

    // list: the same order, the future copy last and unordered, the warning again.
    let out = setup.cmd(&["list", "fas2", "--format", "json"]).run().ok();
    let recs = out.of_type("database");
    let names: Vec<&str> = recs.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["fas2", retired.as_str(), bare], "{recs:?}");
    assert_eq!(recs[1]["ordered_by"], "retired_at");
    assert_eq!(recs[2]["ordered_by"], serde_json::Value::Null);
    assert!(out.summary()["warnings"].to_string().contains(bare));
    assert!(out.stderr.contains(bare), "{}", out.stderr);

    // rollback: the copy with the local work comes back, not the future one.
    let out = setup
        .cmd(&["rollback", "fas2", "--format", "json"])
        .run()
        .ok();
    assert_eq!(out.summary()["restored_from"], retired.as_str());
    assert_eq!(local_work(&setup, "fas2"), "1");
    assert!(out.summary()["warnings"].to_string().contains(bare));
    // And a second rollback undoes the first (the copy it retired is now the newest).
    let undone = out.summary()["previous"].as_str().unwrap().to_owned();
    let out = setup
        .cmd(&["rollback", "fas2", "--format", "json"])
        .run()
        .ok();
    assert_eq!(out.summary()["restored_from"], undone.as_str());
    assert_eq!(local_work(&setup, "fas2"), "0");
    // --no-keep drops every copy of known age; the one of unknown age stays, warned about.
    let out = setup
        .restore(&stream, &["--no-keep", "--format", "json"])
        .ok();
    assert!(out.summary()["warnings"].to_string().contains(bare));
    assert_eq!(setup.stg_databases(), [bare]);
}

/// After a rollback the live copy is older than a kept one by restore time: a restore then
/// retires it, and ordering by restore time alone would prune it (and roll back past it).
/// The retire time the swap records keeps the copy just retired first.
// See: issue 26, finding 7.
#[test]
fn kept_copies_are_ordered_by_when_they_were_retired_not_restored() {
    let setup = Setup::new();
    let c = &setup.cluster;
    let stream = setup.stream();
    setup.restore(&stream, &["--keep", "2"]).ok();
    setup.restore(&stream, &["--keep", "2"]).ok();
    // Live: the second restore; kept: the first restore and the original.
    let out = setup
        .cmd(&["rollback", "fas2", "--format", "json"])
        .run()
        .ok();
    // Live now: the first restore (restored earlier than the kept second one).
    let second = out.summary()["previous"].as_str().unwrap().to_owned();
    c.script(
        "fas2",
        "INSERT INTO people (username, human_name, email, password) \
         VALUES ('local-work', 'Local Work', 'lw@stg.example', 'x');",
    );
    let out = setup
        .restore(&stream, &["--keep", "2", "--format", "json"])
        .ok();
    let retired = out.summary()["previous"].as_str().unwrap().to_owned();
    assert_eq!(local_work(&setup, &retired), "1");
    let recs = setup
        .cmd(&["list", "fas2", "--format", "json"])
        .run()
        .ok()
        .of_type("database");
    let names: Vec<&str> = recs.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["fas2", retired.as_str(), second.as_str()],
        "{recs:?}"
    );
    let out = setup
        .cmd(&["rollback", "fas2", "--format", "json"])
        .run()
        .ok();
    assert_eq!(out.summary()["restored_from"], retired.as_str());
    assert_eq!(local_work(&setup, "fas2"), "1");
}
