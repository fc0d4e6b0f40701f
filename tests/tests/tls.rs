//! TLS to PostgreSQL, end to end through `stg-dump`: its own catalog connection and the
//! `pg_dump` it spawns follow the same `sslmode` (flag or `PGSSLMODE`), root certificate
//! and client certificate, as libpq defines them.
//!
//! The server refuses unencrypted TCP (`hostnossl ... reject`), so a dump that succeeds
//! proves both connections used TLS. Certificates come from the `openssl` command: a test
//! CA, a server certificate for `127.0.0.1`, one for another name, a client certificate, and
//! an unrelated CA that must not be trusted.
//!
//! Not for what is dumped (stg-dump's tests) or passwords (`secrets.rs`).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use stg_tests::run::{Run, RunExt};
use stg_tests::{cmd, pg::Cluster};

/// Certificates and keys made by `openssl` in a temp dir.
struct Pki {
    dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                stg_tests::require("the openssl command", "openssl");
            }
            panic!("run openssl: {e}")
        });
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    fn new() -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
        };
        pki.ca("ca");
        pki.ca("other-ca");
        pki.leaf(
            "server",
            "ca",
            "/CN=stg test server",
            "subjectAltName=IP:127.0.0.1",
        );
        pki.leaf(
            "misnamed",
            "ca",
            "/CN=db.staging.invalid",
            "subjectAltName=DNS:db.staging.invalid",
        );
        pki.leaf(
            "client",
            "ca",
            "/CN=certuser",
            "extendedKeyUsage=clientAuth",
        );
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn text(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    /// `openssl req` making a new unencrypted P-256 key `NAME.key` and, with `extra`, a
    /// certificate or request from it.
    fn new_key(&self, name: &str, extra: &[&str]) {
        let key = format!("{name}.key");
        let mut args = vec![
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ];
        args.extend(["-nodes", "-keyout", &key]);
        args.extend(extra);
        openssl(self.dir.path(), &args);
    }

    fn ca(&self, name: &str) {
        let (out, subject) = (format!("{name}.crt"), format!("/CN=stg test {name}"));
        self.new_key(
            name,
            &["-x509", "-out", &out, "-days", "2", "-subj", &subject]
                .into_iter()
                .chain(["-addext", "basicConstraints=critical,CA:TRUE"])
                .chain(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
                .collect::<Vec<_>>(),
        );
    }

    fn leaf(&self, name: &str, ca: &str, subject: &str, extension: &str) {
        self.new_key(name, &["-out", &format!("{name}.csr"), "-subj", subject]);
        std::fs::write(
            self.path(&format!("{name}.ext")),
            format!("basicConstraints=CA:FALSE\n{extension}\n"),
        )
        .unwrap();
        openssl(
            self.dir.path(),
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &format!("{ca}.crt"),
                "-CAkey",
                &format!("{ca}.key"),
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &format!("{name}.crt"),
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
        std::fs::set_permissions(
            self.path(&format!("{name}.key")),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
}

/// `stg-dump` of database `shop` as `user`, with extra environment (paths, mostly) and
/// arguments.
fn dump(cluster: &Cluster, user: &str, env: &[(&str, &Path)], args: &[&str]) -> Run {
    let mut c = cmd::stg("stg-dump");
    c.args([
        "-h",
        cluster.host(),
        "-p",
        &cluster.port().to_string(),
        "-U",
        user,
    ])
    .args(args)
    .arg("shop");
    for (name, value) in env {
        c.env(name, value);
    }
    c.run()
}

/// `stg-dump` as postgres with `--sslmode MODE` and `PGSSLROOTCERT=ROOT`.
fn verify(cluster: &Cluster, root: &Path, mode: &str) -> Run {
    dump(
        cluster,
        "postgres",
        &[("PGSSLROOTCERT", root)],
        &["--sslmode", mode],
    )
}

#[track_caller]
fn assert_dumped(out: &Run, what: &str) {
    assert_eq!(out.code, 0, "{what}:\n{}", out.stderr);
    assert!(
        out.bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
        "{what}: stdout is not a zstd stream"
    );
}

/// A refused connection: exit 3, nothing on stdout, and stderr holding every `needle`.
#[track_caller]
fn assert_refused(out: &Run, what: &str, needles: &[&str]) {
    let err = &out.stderr;
    assert_eq!(out.code, 3, "{what}:\n{err}");
    assert!(out.bytes.is_empty(), "{what}: wrote a stream");
    for needle in needles {
        assert!(err.contains(needle), "{what}: {needle:?} not in:\n{err}");
    }
}

#[test]
fn tls_modes_certificates_and_client_certificates_as_libpq() {
    let pki = Pki::new();
    let cluster = Cluster::start();
    cluster.createdb("shop");
    cluster.script(
        "shop",
        "CREATE TABLE items (id int PRIMARY KEY, name text);\n\
         INSERT INTO items VALUES (1, 'one'), (2, 'two');\n\
         CREATE ROLE certuser LOGIN SUPERUSER;\n",
    );
    let ca = pki.path("ca.crt");
    let other_ca = pki.path("other-ca.crt");
    let no_file = pki.path("absent.crt");

    // A server without TLS: require and stronger modes refuse to go on unencrypted.
    for mode in ["require", "verify-ca", "verify-full"] {
        let out = verify(&cluster, &ca, mode);
        assert_refused(&out, mode, &["could not connect", "TLS"]);
    }
    assert_dumped(&dump(&cluster, "postgres", &[], &[]), "prefer, no TLS");

    cluster.enable_tls(
        &pki.text("server.crt"),
        &pki.text("server.key"),
        Some(&pki.text("ca.crt")),
    );
    cluster.prepend_hba(
        "hostnossl all all 127.0.0.1/32 reject\n\
         hostssl all certuser 127.0.0.1/32 cert",
    );

    // The default (prefer) encrypts when the server offers it; without TLS it is refused.
    assert_dumped(&dump(&cluster, "postgres", &[], &[]), "default mode");
    let out = dump(&cluster, "postgres", &[], &["--sslmode", "disable"]);
    assert_refused(&out, "disable", &["could not connect", "no encryption"]);
    assert_dumped(
        &dump(&cluster, "postgres", &[], &["--sslmode", "require"]),
        "require without a root file",
    );

    // verify-full with the right root certificate, for stg-dump and for stg-restore (and
    // its psql) loading that stream.
    let stream = verify(&cluster, &ca, "verify-full");
    assert_dumped(&stream, "verify-full, right CA");
    let env_file = pki.path("environment");
    std::fs::write(&env_file, "staging\n").unwrap();
    let mut restore = cmd::stg("stg-restore")
        .env("STG_ENVIRONMENT_FILE", &env_file)
        .env("PGSSLROOTCERT", &ca)
        .args(["-h", cluster.host(), "-p", &cluster.port().to_string()])
        .args([
            "-U",
            "postgres",
            "--sslmode",
            "verify-full",
            "-d",
            "shop_copy",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    restore
        .stdin
        .take()
        .unwrap()
        .write_all(&stream.bytes)
        .unwrap();
    let _ = Run::from(restore.wait_with_output().unwrap()).ok();
    assert_eq!(
        cluster
            .sql("shop_copy", "SELECT count(*) FROM items")
            .trim(),
        "2"
    );
    // The flag wins over PGSSLMODE and reaches pg_dump too: with disable, pg_dump would be
    // refused by the server.
    let out = dump(
        &cluster,
        "postgres",
        &[("PGSSLMODE", Path::new("disable")), ("PGSSLROOTCERT", &ca)],
        &["--sslmode", "verify-ca"],
    );
    assert_dumped(&out, "flag over PGSSLMODE");
    // An invalid PGSSLMODE is a usage error naming it.
    let out = dump(
        &cluster,
        "postgres",
        &[("PGSSLMODE", Path::new("sometimes"))],
        &[],
    );
    let out = out.code_is(2);
    assert!(out.stderr.contains("sometimes"), "{}", out.stderr);

    // An untrusted server certificate is refused, in verify-ca, verify-full, and in
    // require when a root file exists (libpq's rule).
    for mode in ["verify-ca", "verify-full", "require"] {
        let out = verify(&cluster, &other_ca, mode);
        assert_refused(&out, mode, &["could not connect", "certificate"]);
    }
    // Verifying without a root file names the file it looked for.
    let out = verify(&cluster, &no_file, "verify-full");
    assert_refused(
        &out,
        "verify-full without roots",
        &[&format!("\"{}\" does not exist", no_file.display())],
    );

    // A self-signed certificate marked as a CA (the CA's own): refused with a hint when
    // checked, used for encryption alone in require without a root file.
    cluster.enable_tls(
        &pki.text("ca.crt"),
        &pki.text("ca.key"),
        Some(&pki.text("ca.crt")),
    );
    let out = verify(&cluster, &ca, "verify-full");
    assert_refused(
        &out,
        "a CA certificate as server certificate",
        &["marked as a CA"],
    );
    assert_dumped(
        &verify(&cluster, &no_file, "require"),
        "require, CA certificate, no root file",
    );

    // A certificate for another name: verify-ca accepts it, verify-full does not.
    cluster.enable_tls(
        &pki.text("misnamed.crt"),
        &pki.text("misnamed.key"),
        Some(&pki.text("ca.crt")),
    );
    assert_dumped(
        &verify(&cluster, &ca, "verify-ca"),
        "verify-ca, another name",
    );
    let out = verify(&cluster, &ca, "verify-full");
    assert_refused(&out, "verify-full, another name", &["127.0.0.1"]);
    assert!(out.stderr.to_lowercase().contains("name"), "{}", out.stderr);

    // A SCRAM password over TLS (the server offers channel binding, SCRAM-SHA-256-PLUS):
    // both connections authenticate; a wrong password is refused.
    cluster.sql("postgres", "CREATE ROLE pwuser LOGIN SUPERUSER");
    cluster.require_password("pwuser", "tls-Pw-4f2a");
    for (password, ok) in [("tls-Pw-4f2a", true), ("wrong", false)] {
        let out = dump(
            &cluster,
            "pwuser",
            &[("PGPASSWORD", Path::new(password)), ("PGSSLROOTCERT", &ca)],
            &["--sslmode", "verify-ca"],
        );
        if ok {
            assert_dumped(&out, "SCRAM over TLS");
        } else {
            assert_refused(
                &out,
                "wrong password over TLS",
                &["password authentication failed"],
            );
        }
    }

    // Client certificates: sent from PGSSLCERT/PGSSLKEY, by stg-dump and by pg_dump.
    let cert = pki.path("client.crt");
    let key = pki.path("client.key");
    assert_dumped(
        &dump(
            &cluster,
            "certuser",
            &[("PGSSLCERT", &cert), ("PGSSLKEY", &key)],
            &[],
        ),
        "client certificate",
    );
    let out = dump(&cluster, "certuser", &[("PGSSLCERT", &no_file)], &[]);
    assert_refused(
        &out,
        "no client certificate",
        &["could not connect", "certificate"],
    );
    // A key others can read is refused before connecting, naming the file.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = dump(
        &cluster,
        "certuser",
        &[("PGSSLCERT", &cert), ("PGSSLKEY", &key)],
        &[],
    );
    assert_refused(
        &out,
        "world-readable key",
        &[&key.display().to_string(), "group or world access"],
    );

    // Every connection was encrypted (the server logs each one): stg-dump's and stg-restore's
    // own ("stg"), pg_dump's, and stg-restore's psql ("stg-restore").
    let log = cluster.log();
    for app in [
        "application_name=stg ",
        "application_name=pg_dump ",
        "application_name=stg-restore ",
    ] {
        assert!(
            log.lines().any(|l| l.contains("connection authorized")
                && l.contains(app)
                && l.contains("SSL enabled")),
            "no TLS connection with {app} in the server log:\n{log}"
        );
    }
}
