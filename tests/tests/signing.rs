//! Signed streams end to end: `stg-dump --signing-key` (a key file, or ssh-agent) piped
//! into `stg-restore --allowed-signers`, on a real cluster, with keys made by ssh-keygen.
//!
//! What is tested: a signed stream restores and names its signer (report, provenance,
//! `verify`); every part's signature checks with `ssh-keygen -Y verify` alone; `zstdcat |
//! psql` loads a signed stream; an unsigned stream, one signed by a key the file does not
//! list, an expired key, a revoked key, and a stream with one byte changed (early, and in a
//! late COPY block) are refused with exit 1, and the server's log shows that no statement
//! of the changed part ran, with the live database untouched; an older signed stream is
//! refused over newer data unless `--allow-older`; an encrypted or world-readable key is
//! refused by stg-dump, naming what to do.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use stg_core::signed;
use stg_core::stream::{self, Tally};
use stg_tests::cmd;
use stg_tests::pg::Cluster;
use stg_tests::run::{run, Run};

const PRINCIPAL: &str = "ops@example.org";

fn workspace_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// A key pair made by ssh-keygen: the private key's path and the public key's line.
fn keygen(dir: &Path, name: &str, passphrase: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let out = cmd::program("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-C", name, "-N", passphrase, "-f"])
        .arg(&path)
        .output()
        .expect("run ssh-keygen");
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = std::fs::read_to_string(path.with_extension("pub")).expect("read the public key");
    (path, public.trim().to_owned())
}

struct Setup {
    cluster: Cluster,
    dir: tempfile::TempDir,
    env_file: PathBuf,
    key: PathBuf,
    public: String,
    allowed: PathBuf,
}

impl Setup {
    /// A cluster with `fas2src` (the fixture, plus enough rows for several parts) and an
    /// allowed-signers file listing one key.
    fn new() -> Setup {
        let cluster = Cluster::start();
        cluster.createdb("fas2src");
        cluster.script(
            "fas2src",
            &std::fs::read_to_string(workspace_file("tests/fixtures/fas2.sql"))
                .unwrap()
                .replace("ALTER DATABASE fas2 ", "ALTER DATABASE fas2src "),
        );
        cluster.sql(
            "fas2src",
            "INSERT INTO people (username, human_name, email, password, comments) \
             SELECT 'bulk' || g, 'Bulk ' || g, 'bulk' || g || '@example.org', 'x', repeat('c', 300) \
             FROM generate_series(1, 4000) g",
        );
        let dir = tempfile::tempdir().unwrap();
        let env_file = dir.path().join("environment");
        std::fs::write(&env_file, "staging\n").unwrap();
        let (key, public) = keygen(dir.path(), "signer", "");
        let allowed = dir.path().join("allowed_signers");
        std::fs::write(
            &allowed,
            format!("{PRINCIPAL} namespaces=\"stg-stream\" {public}\n"),
        )
        .unwrap();
        Setup {
            cluster,
            dir,
            env_file,
            key,
            public,
            allowed,
        }
    }

    /// `stg-dump fas2src` (zstd), signed with `key` when given, parts of 64 KiB.
    fn dump(&self, key: Option<&Path>, env: &[(&str, &str)]) -> Vec<u8> {
        let mut dump = cmd::stg("stg-dump");
        dump.args(self.cluster.conn_args()).arg("fas2src");
        if let Some(key) = key {
            dump.arg("--signing-key").arg(key);
            dump.args(["--signature-part-size", "64K"]);
        }
        for (k, v) in env {
            dump.env(k, v);
        }
        let out = run(dump, Vec::new());
        assert_eq!(out.code, 0, "stg-dump: {}", out.stderr);
        out.bytes
    }

    fn restore(&self, stream: &[u8], extra: &[String]) -> Run {
        let mut restore = cmd::stg("stg-restore");
        restore
            .env("STG_ENVIRONMENT_FILE", &self.env_file)
            .args(self.cluster.conn_args())
            .args(["-d", "fas2", "--format", "json"])
            .args(extra);
        run(restore, stream.to_vec())
    }

    fn trusting(&self) -> Vec<String> {
        vec![
            "--allowed-signers".into(),
            self.allowed.display().to_string(),
        ]
    }

    fn people(&self) -> String {
        self.cluster
            .try_sql("fas2", "SELECT count(*) FROM people")
            .unwrap_or_default()
    }
}

fn plain(stream: &[u8]) -> Vec<u8> {
    zstd::decode_all(stream).expect("zstd")
}

fn zstd(plain: &[u8]) -> Vec<u8> {
    zstd::encode_all(plain, 1).expect("zstd")
}

/// `plain` (a signed stream) with `from` replaced by `to` (same length) at its first place
/// after byte `after`, and its trailer recomputed (anyone can): the signatures no longer
/// match the part that holds the change. Also the range of that part.
fn changed(plain: &[u8], after: usize, from: &str, to: &str) -> (Vec<u8>, std::ops::Range<usize>) {
    assert_eq!(from.len(), to.len());
    let at = after
        + plain[after..]
            .windows(from.len())
            .position(|w| w == from.as_bytes())
            .unwrap_or_else(|| panic!("{from:?} not in the stream"));
    let trailer = plain
        .windows(stream::TRAILER_PREFIX.len())
        .position(|w| w == stream::TRAILER_PREFIX.as_bytes())
        .expect("a trailer");
    let mut body = plain[..trailer].to_vec();
    body[at..at + from.len()].copy_from_slice(to.as_bytes());
    let mut tally = Tally::new();
    for line in body.split_inclusive(|b| *b == b'\n') {
        tally.line(line);
    }
    body.extend_from_slice(stream::trailer_line(&tally.finish()).as_bytes());
    // The part: from after the signature line before `at` to the next one.
    let sigs: Vec<usize> = line_starts(&body)
        .into_iter()
        .filter(|&s| body[s..].starts_with(signed::SIGNATURE_PREFIX.as_bytes()))
        .collect();
    let start = sigs.iter().rev().find(|&&s| s < at).map_or(0, |&s| {
        s + body[s..].iter().position(|b| *b == b'\n').unwrap() + 1
    });
    let end = *sigs
        .iter()
        .find(|&&s| s > at)
        .expect("a signature after the change");
    (body, start..end)
}

fn line_starts(text: &[u8]) -> Vec<usize> {
    std::iter::once(0)
        .chain(
            text.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .filter(|&i| i < text.len())
        .collect()
}

/// The statements a part starts, each by its first two lines (as the server's log shows
/// them), so that one is not taken for another that starts alike.
fn statements_in(text: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(text);
    let lines: Vec<&str> = text.lines().collect();
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            [
                "CREATE ",
                "ALTER ",
                "COPY ",
                "SELECT pg_catalog.setval",
                "COMMENT ",
                "GRANT ",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        .map(|(i, l)| {
            if l.ends_with(';') || i + 1 == lines.len() {
                l.trim_end_matches(';').to_owned()
            } else {
                format!("{l}\n{}", lines[i + 1].trim_end_matches(';'))
            }
        })
        .collect()
}

#[test]
fn a_signed_stream_restores_names_its_signer_and_checks_with_ssh_keygen() {
    let setup = Setup::new();
    let stream = setup.dump(Some(&setup.key), &[]);
    let text = plain(&stream);
    let sigs: Vec<&[u8]> = text
        .split_inclusive(|b| *b == b'\n')
        .filter(|l| l.starts_with(signed::SIGNATURE_PREFIX.as_bytes()))
        .collect();
    assert!(
        sigs.len() > 5,
        "the stream was cut into {} parts",
        sigs.len()
    );
    // A big COPY block was cut into blocks of the same table, each whole.
    let people_blocks = String::from_utf8_lossy(&text)
        .matches("COPY public.people (")
        .count();
    assert!(people_blocks > 1, "{people_blocks} COPY blocks of people");

    let out = setup.restore(&stream, &setup.trusting()).ok();
    let s = out.summary();
    assert_eq!(s["signature_checked"], true, "{s}");
    assert!(
        s["signed_by"].as_str().unwrap_or("").starts_with(PRINCIPAL),
        "{s}"
    );
    assert_eq!(setup.people(), "4201\n");
    let comment = setup.cluster.sql(
        "postgres",
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'fas2'",
    );
    assert!(
        comment.contains("\"signed_by\":\"ops@example.org"),
        "{comment}"
    );

    // verify checks it without a server.
    let mut verify = cmd::stg("stg-restore");
    verify
        .arg("verify")
        .args(setup.trusting())
        .args(["--format", "json"]);
    let v = run(verify, stream.clone()).ok();
    assert!(v.summary()["signed_by"]
        .as_str()
        .unwrap_or("")
        .starts_with(PRINCIPAL));

    // Every part checks with ssh-keygen alone (docs/stream.md, "Signed streams").
    let manifest_end = text.iter().position(|b| *b == b'\n').unwrap() + 1;
    let stream_id = signed::stream_id(&text[..manifest_end]);
    for line in &sigs {
        let sig = signed::parse_line(line).unwrap().unwrap();
        // Each signs the SHA-256 of the stream from its first byte up to the signature
        // line (what `head -c` of the decoded stream gives), and its part's length.
        let at = text
            .windows(line.len())
            .position(|w| w == &line[..])
            .expect("the signature line is in the stream");
        assert_eq!(
            sig.sha256,
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&text[..at])),
            "part {}",
            sig.part
        );
        let sig_file = setup.dir.path().join("part.sig");
        std::fs::write(&sig_file, signed::armored(&sig.sshsig)).unwrap();
        let mut keygen = cmd::program("ssh-keygen");
        keygen
            .args(["-Y", "verify", "-n", "stg-stream", "-I", PRINCIPAL, "-f"])
            .arg(&setup.allowed)
            .arg("-s")
            .arg(&sig_file);
        let checked = run(keygen, signed::message(&stream_id, &sig));
        assert_eq!(checked.code, 0, "ssh-keygen -Y verify: {}", checked.stderr);
    }

    // zstdcat | psql still loads it.
    setup
        .cluster
        .sql("postgres", "CREATE DATABASE by_psql OWNER fas2");
    let mut psql = setup.cluster.psql_cmd("by_psql");
    psql.args(["-X", "-q", "-v", "ON_ERROR_STOP=1"]);
    let loaded = run(psql, text.clone());
    assert_eq!(loaded.code, 0, "psql: {}", loaded.stderr);
    assert_eq!(
        setup.cluster.sql("by_psql", "SELECT count(*) FROM people"),
        "4201\n"
    );
}

#[test]
fn unsigned_unlisted_expired_revoked_and_changed_streams_are_refused() {
    let setup = Setup::new();
    let good = setup.dump(Some(&setup.key), &[]);
    setup.restore(&good, &setup.trusting()).ok();
    let before = setup.people();
    let c = &setup.cluster;
    c.sql("postgres", "ALTER SYSTEM SET log_statement = 'all'");
    c.reload();
    let refused = |stream: &[u8], extra: &[String], says: &str| {
        let log_from = c.log().len();
        let out = setup.restore(stream, extra);
        assert_eq!(out.code, 1, "exit code\n{}\n{}", out.stdout, out.stderr);
        let s = out.summary();
        assert_eq!(s["refused"], true, "{s}");
        let error = s["error"].as_str().unwrap_or("");
        assert!(error.contains(says), "{says:?} not in: {error}");
        assert_eq!(setup.people(), before, "the live database changed");
        c.log()[log_from..].to_owned()
    };

    // Unsigned.
    refused(&setup.dump(None, &[]), &setup.trusting(), "not signed");
    // Signed by a key the file does not list.
    let (other, _) = keygen(setup.dir.path(), "other", "");
    refused(
        &setup.dump(Some(&other), &[]),
        &setup.trusting(),
        "does not list",
    );
    // An expired key, and a revoked one.
    let expired = setup.dir.path().join("expired_signers");
    std::fs::write(
        &expired,
        format!("{PRINCIPAL} valid-before=\"20200101\" {}\n", setup.public),
    )
    .unwrap();
    refused(
        &good,
        &["--allowed-signers".into(), expired.display().to_string()],
        "expired",
    );
    let revoked = setup.dir.path().join("revoked_signers");
    std::fs::write(&revoked, format!("{}\n", setup.public)).unwrap();
    let mut with_revoked = setup.trusting();
    with_revoked.extend(["--revoked-signers".into(), revoked.display().to_string()]);
    refused(&good, &with_revoked, "revoked");

    // One byte changed early (a table's name), and in a late COPY block (a row): the part
    // that holds it never runs.
    let text = plain(&good);
    let (early, part) = changed(
        &text,
        0,
        "CREATE TABLE public.groups",
        "CREATE TABLE public.groupz",
    );
    let log = refused(&zstd(&early), &setup.trusting(), "not what was signed");
    assert!(
        !log.contains("groupz"),
        "a statement of the changed part ran:\n{log}"
    );
    for statement in statements_in(&early[part.clone()]) {
        assert!(
            !log.contains(&statement),
            "{statement:?} of the changed part ran"
        );
    }
    let last_rows = text
        .windows(b"bulk3999".len())
        .position(|w| w == b"bulk3999")
        .expect("a late row");
    let (late, part) = changed(&text, last_rows, "bulk3999", "evil3999");
    let part_statements = statements_in(&late[part.clone()]);
    assert!(
        !part_statements.is_empty(),
        "the late part holds statements too"
    );
    let log = refused(&zstd(&late), &setup.trusting(), "not what was signed");
    for statement in part_statements {
        assert!(
            !log.contains(&statement),
            "{statement:?} of the changed part ran:\n{log}"
        );
    }
    assert!(
        log.contains("COPY public.people"),
        "the earlier parts loaded"
    );
}

#[test]
fn an_older_signed_stream_is_not_replayed_over_newer_data() {
    let setup = Setup::new();
    let older = setup.dump(Some(&setup.key), &[]);
    // A later dump (dumped_at has second resolution).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    setup
        .cluster
        .sql("fas2src", "DELETE FROM people WHERE username = 'bulk1'");
    let newer = setup.dump(Some(&setup.key), &[]);
    setup.restore(&newer, &setup.trusting()).ok();
    let out = setup.restore(&older, &setup.trusting());
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.summary()["error"]
            .as_str()
            .unwrap_or("")
            .contains("--allow-older"),
        "{}",
        out.stdout
    );
    assert_eq!(setup.people(), "4200\n");
    let mut allow = setup.trusting();
    allow.push("--allow-older".into());
    setup.restore(&older, &allow).ok();
    assert_eq!(setup.people(), "4201\n");
}

#[test]
fn ssh_agent_signs_and_bad_keys_are_refused_by_name() {
    let setup = Setup::new();
    // A key in ssh-agent, given by its public half.
    let socket = setup.dir.path().join("agent.sock");
    let mut agent = cmd::program("ssh-agent")
        .args(["-D", "-a"])
        .arg(&socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ssh-agent");
    for _ in 0..100 {
        if socket.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let added = cmd::program("ssh-add")
        .env("SSH_AUTH_SOCK", &socket)
        .arg(&setup.key)
        .output()
        .expect("run ssh-add");
    assert!(
        added.status.success(),
        "ssh-add: {}",
        String::from_utf8_lossy(&added.stderr)
    );
    let public = setup.key.with_extension("pub");
    let socket_text = socket.display().to_string();
    let stream = setup.dump(Some(&public), &[("SSH_AUTH_SOCK", &socket_text)]);
    let out = setup.restore(&stream, &setup.trusting()).ok();
    assert!(out.summary()["signed_by"]
        .as_str()
        .unwrap_or("")
        .starts_with(PRINCIPAL));
    let _ = agent.kill();
    let _ = agent.wait();

    let refused = |key: &Path, says: &str| {
        let mut dump = cmd::stg("stg-dump");
        dump.args(setup.cluster.conn_args())
            .arg("--signing-key")
            .arg(key)
            .arg("fas2src");
        let out = run(dump, Vec::new());
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(out.stderr.contains(says), "{says:?} not in: {}", out.stderr);
        assert!(out.bytes.is_empty(), "a stream was written");
    };
    let (encrypted, _) = keygen(setup.dir.path(), "encrypted", "a passphrase");
    refused(&encrypted, "ssh-add");
    let open = setup.dir.path().join("open");
    std::fs::copy(&setup.key, &open).unwrap();
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    refused(&open, "chmod 600");
    refused(&public, "SSH_AUTH_SOCK");
}
