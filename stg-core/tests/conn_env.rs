//! libpq environment handling, end to end: flags and `PG*` variables through clap, the
//! password file, and a real server that demands a password.
//!
//! One test function on purpose: it changes the process environment, which tests running
//! in parallel threads would otherwise see.

use std::os::unix::fs::PermissionsExt;

use clap::Parser;
use stg_core::conn::{Conn, ConnArgs};

#[derive(Parser)]
#[command(disable_help_flag = true)]
struct Cli {
    #[command(flatten)]
    conn: ConnArgs,
}

fn resolve(args: &[&str], dbname: Option<&str>) -> Conn {
    let cli = Cli::try_parse_from(std::iter::once("t").chain(args.iter().copied())).unwrap();
    Conn::resolve(&cli.conn, dbname)
}

fn clear_pg_env() {
    for var in [
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGPASSWORD",
        "PGPASSFILE",
    ] {
        std::env::remove_var(var);
    }
}

#[test]
fn libpq_environment_flags_and_password_file() {
    clear_pg_env();
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("HOME", dir.path());

    // Environment fills what flags leave out; flags win.
    std::env::set_var("PGHOST", "db01.example.org");
    std::env::set_var("PGPORT", "5433");
    std::env::set_var("PGUSER", "fas");
    std::env::set_var("PGDATABASE", "fas2");
    let conn = resolve(&[], None);
    assert_eq!(conn.describe(), "fas@db01.example.org:5433/fas2");
    let conn = resolve(&["-h", "db02", "-p", "6000", "-U", "admin"], Some("koji"));
    assert_eq!(conn.describe(), "admin@db02:6000/koji");
    assert!(!conn.is_socket());

    // Defaults: libpq's port, the database named after the user.
    clear_pg_env();
    let conn = resolve(&["-U", "someone"], None);
    assert_eq!(conn.port, 5432);
    assert_eq!(conn.dbname, "someone");

    // A bad port in the environment is a usage error from clap, naming it.
    std::env::set_var("PGPORT", "not-a-port");
    assert!(Cli::try_parse_from(["t"]).is_err());
    std::env::remove_var("PGPORT");

    // The password file: 0600 is used, group/world-readable is ignored (as libpq does).
    let pgpass = dir.path().join(".pgpass");
    std::fs::write(&pgpass, "db01:5432:*:fas:from-pgpass\n").unwrap();
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut cmd = std::process::Command::new("true");
    resolve(&["-h", "db01", "-U", "fas"], Some("fas2")).apply_env(&mut cmd);
    let env_var = |cmd: &std::process::Command, name: &str| {
        cmd.get_envs()
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
    };
    let env_password = |cmd: &std::process::Command| env_var(cmd, "PGPASSWORD");
    // A password from the file stays in the file: the child is pointed at it, not given it.
    assert_eq!(env_password(&cmd), None);
    assert_eq!(
        env_var(&cmd, "PGPASSFILE").as_deref(),
        Some(pgpass.to_str().unwrap())
    );
    assert!(
        cmd.get_args().all(|a| a != "from-pgpass"),
        "password on the command line"
    );
    // Over a Unix socket the child gets the password itself: libpq matches a socket
    // directory against "localhost" only when it is its compiled-in default.
    std::fs::write(&pgpass, "localhost:5432:*:fas:by-socket\n").unwrap();
    let mut cmd = std::process::Command::new("true");
    resolve(&["-h", "/run/custom-pg", "-U", "fas"], Some("fas2")).apply_env(&mut cmd);
    assert_eq!(env_password(&cmd).as_deref(), Some("by-socket"));
    assert_eq!(env_var(&cmd, "PGPASSFILE"), None);
    std::fs::write(&pgpass, "db01:5432:*:fas:from-pgpass\n").unwrap();
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = std::process::Command::new("true");
    resolve(&["-h", "db01", "-U", "fas"], Some("fas2")).apply_env(&mut cmd);
    assert_eq!(env_password(&cmd), None);

    // PGPASSWORD wins over the file; PGPASSFILE names another file.
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::env::set_var("PGPASSWORD", "from-env");
    let mut cmd = std::process::Command::new("true");
    resolve(&["-h", "db01", "-U", "fas"], Some("fas2")).apply_env(&mut cmd);
    assert_eq!(env_password(&cmd).as_deref(), Some("from-env"));
    std::env::remove_var("PGPASSWORD");

    // A real server that demands a password: the password file gets us in, tokio-postgres
    // and a spawned psql alike.
    let cluster = stg_tests::pg::Cluster::start();
    cluster.sql("postgres", "CREATE ROLE fas LOGIN");
    cluster.require_password("fas", "s3cret:with\\colon");
    let other = dir.path().join("other-pgpass");
    std::fs::write(
        &other,
        format!(
            "127.0.0.1:{}:postgres:fas:s3cret\\:with\\\\colon\n",
            cluster.port()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::env::set_var("PGPASSFILE", &other);
    let port = cluster.port().to_string();
    let conn = resolve(
        &["-h", "127.0.0.1", "-p", &port, "-U", "fas"],
        Some("postgres"),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let who: String = runtime.block_on(async {
        let client = conn.connect().await.unwrap();
        client
            .query_one("SELECT current_user::text", &[])
            .await
            .unwrap()
            .get(0)
    });
    assert_eq!(who, "fas");
    let mut psql = std::process::Command::new(cluster.bindir().join("psql"));
    conn.apply_env(&mut psql);
    let out = psql
        .args(["-X", "-At", "-w", "-c", "SELECT 1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut psql = std::process::Command::new("true");
    conn.apply_env(&mut psql);
    assert_eq!(env_password(&psql), None, "password copied out of the file");
    // Another database with no line of its own keeps the password it was found with, and
    // the child, which could not find it in the file, gets it in PGPASSWORD.
    let mut psql = std::process::Command::new("true");
    conn.with_dbname("fas2").apply_env(&mut psql);
    assert_eq!(env_password(&psql).as_deref(), Some("s3cret:with\\colon"));

    // And the wrong password is refused with a message that names the connection.
    std::env::set_var("PGPASSWORD", "wrong");
    let conn = resolve(
        &["-h", "127.0.0.1", "-p", &port, "-U", "fas"],
        Some("postgres"),
    );
    let err = runtime.block_on(conn.connect()).unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains(&format!(
            "could not connect to fas@127.0.0.1:{port}/postgres"
        )),
        "{text}"
    );
    assert!(text.contains("password authentication failed"), "{text}");
    assert!(!text.contains("wrong"), "password in the message: {text}");
    clear_pg_env();
}
