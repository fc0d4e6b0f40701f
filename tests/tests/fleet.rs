//! Fleet use: the Ansible role `contrib/ansible/roles/stg` run against localhost
//! (`connection: local`) on a temporary root, in check mode and for real, and again to
//! prove it idempotent; the `db-sync.yml` playbook and `make sync` piping stg-dump into
//! stg-restore between two throwaway clusters, with ssh replaced by a local shell.
//!
//! ansible-core is installed from PyPI, pinned, into a virtualenv in the target directory
//! the first time (`python3 -m venv`; needs python3-venv and PyPI).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{json, Value};
use stg_tests::cmd::{bin_path, program};
use stg_tests::pg::Cluster;

/// The ansible-core series the role and playbooks are tested with.
const ANSIBLE_CORE: &str = "ansible-core==2.17.*";

/// ssh replaced by a local shell: `$SSH HOST COMMAND` runs COMMAND here.
const LOCAL_SSH: &str = r#"sh -c 'shift; eval "$*"' ssh"#;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn build_dir() -> PathBuf {
    bin_path("stg-hosts")
        .parent()
        .expect("build dir")
        .to_path_buf()
}

/// `ansible-playbook` of a pinned ansible-core, installed once into the target directory.
fn ansible_playbook() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let target = build_dir().parent().expect("target dir").to_path_buf();
        let venv = target.join("stg-ansible-core-2.17");
        let playbook = venv.join("bin/ansible-playbook");
        // A stamp written after pip succeeded: a half-made virtualenv is made again.
        let stamp = venv.join(".stg-complete");
        if playbook.is_file() && stamp.is_file() {
            return playbook;
        }
        let _ = std::fs::remove_dir_all(&venv);
        let venv_ok = program("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        if !venv_ok {
            stg_tests::require("python3 with the venv module", "python3-venv");
        }
        // pip's own settings (index, certificates, proxy) pass through the hermetic
        // environment: they decide whether PyPI is reachable, not how the test behaves.
        let pip_env = std::env::vars().filter(|(k, _)| {
            k.starts_with("PIP_")
                || matches!(
                    k.to_ascii_lowercase().as_str(),
                    "http_proxy"
                        | "https_proxy"
                        | "no_proxy"
                        | "ssl_cert_file"
                        | "requests_ca_bundle"
                )
        });
        let pip = program(venv.join("bin/pip").to_str().expect("utf-8 path"))
            .env("HOME", &venv)
            .envs(pip_env)
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                ANSIBLE_CORE,
            ])
            .output()
            .expect("run pip");
        assert!(
            pip.status.success() && playbook.is_file(),
            "pip install {ANSIBLE_CORE} into {} failed (PyPI reachable?):\n{}",
            venv.display(),
            String::from_utf8_lossy(&pip.stderr)
        );
        std::fs::write(&stamp, ANSIBLE_CORE).expect("write stamp");
        playbook
    })
}

/// One `ansible-playbook` run: its output and the PLAY RECAP counters of localhost.
struct Playbook {
    ok: bool,
    output: String,
    recap: std::collections::BTreeMap<String, u64>,
}

impl Playbook {
    fn changed(&self) -> u64 {
        self.recap["changed"]
    }
}

fn run_playbook(playbook: &str, vars: &Value, flags: &[&str]) -> Playbook {
    let ansible = ansible_playbook();
    let home = tempfile::tempdir().expect("temp dir");
    let vars_file = home.path().join("vars.json");
    let mut vars = vars.clone();
    vars["ansible_python_interpreter"] = json!(ansible.with_file_name("python"));
    std::fs::write(&vars_file, vars.to_string()).expect("write vars");
    let out = program(ansible.to_str().expect("utf-8 path"))
        .current_dir(repo_root().join("contrib/ansible"))
        .env("HOME", home.path())
        .env("LC_ALL", "C.UTF-8")
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
        .env("ANSIBLE_LOCAL_TEMP", home.path().join("local-tmp"))
        .env("ANSIBLE_REMOTE_TEMP", home.path().join("remote-tmp"))
        .env("ANSIBLE_CALLBACK_RESULT_FORMAT", "json")
        .env("ANSIBLE_PIPELINING", "1")
        .args(["-i", "localhost,", "-c", "local", "-e"])
        .arg(format!("@{}", vars_file.display()))
        .args(flags)
        .arg(playbook)
        .output()
        .expect("run ansible-playbook");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let recap_line = output
        .lines()
        .skip_while(|l| !l.starts_with("PLAY RECAP"))
        .find(|l| l.starts_with("localhost"))
        .unwrap_or_else(|| panic!("no PLAY RECAP for localhost:\n{output}"));
    let recap = recap_line
        .split_whitespace()
        .filter_map(|field| {
            let (key, value) = field.split_once('=')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect();
    Playbook {
        ok: out.status.success(),
        output,
        recap,
    }
}

/// The JSON value a `debug: var=NAME` task printed (result format json).
fn debug_var(run: &Playbook, name: &str) -> Value {
    let start = run
        .output
        .find(&format!("\"{name}\": "))
        .unwrap_or_else(|| panic!("no {name} in the output:\n{}", run.output));
    let object_start = run.output[..start].rfind('{').expect("result object");
    let mut stream =
        serde_json::Deserializer::from_str(&run.output[object_start..]).into_iter::<Value>();
    let object = stream
        .next()
        .expect("a JSON object")
        .expect("the debug result is JSON");
    object[name].clone()
}

fn inventory() -> Value {
    let text =
        std::fs::read_to_string(repo_root().join("stg-hosts/tests/fixtures/fedora-stg.json"))
            .expect("read the inventory fixture");
    serde_json::from_str(&text).expect("inventory JSON")
}

/// A copy of the built binaries, so a rebuild in the shared target directory during the
/// test cannot look like a change to the role.
fn binaries_snapshot(dir: &Path) -> PathBuf {
    let snapshot = dir.join("build");
    std::fs::create_dir_all(&snapshot).unwrap();
    for tool in TOOLS {
        std::fs::copy(bin_path(tool), snapshot.join(tool)).expect("copy a built binary");
    }
    snapshot
}

const TOOLS: [&str; 5] = [
    "stg-dump",
    "stg-restore",
    "stg-hosts",
    "stg-probe",
    "stg-age",
];

/// Role variables putting every path under `root`, installing from `build`.
fn role_vars(root: &Path, build: &Path, env: Option<&str>) -> Value {
    let mut vars = json!({
        "stg_become": false,
        "stg_bin_src": build,
        "stg_bin_dir": root.join("usr/local/bin"),
        "stg_etc_dir": root.join("etc/stg"),
        "stg_hosts_file": root.join("etc/hosts"),
        "stg_cron_file": root.join("etc/cron.d/stg"),
        "stg_cron_user": "root",
        "stg_mailto": "sysadmin-main@example.org",
        "stg_inventory": inventory(),
        "stg_age_repo": "/srv/ansible",
    });
    if let Some(env) = env {
        vars["env"] = json!(env);
    }
    vars
}

const HOSTS: &str = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n";

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir)
            .expect("read dir")
            .map(Result::unwrap)
        {
            let path = entry.path();
            if path.is_dir() {
                walk(base, &path, found);
            } else {
                found.push(path.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, dir, &mut found);
    found.sort();
    found
}

/// The role on a staging host: check mode changes nothing, the real run installs and
/// applies everything, the second run changes nothing, and check + diff mode shows the
/// hosts block's diff after the inventory changed, without changing the file.
#[test]
fn role_on_a_staging_host_check_mode_real_run_idempotent() {
    let root = tempfile::tempdir().expect("temp root");
    let work = tempfile::tempdir().expect("temp dir");
    let build = binaries_snapshot(work.path());
    let etc = root.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("hosts"), HOSTS).unwrap();
    let vars = role_vars(root.path(), &build, Some("staging"));

    // Check mode on a fresh host: reports changes, writes nothing.
    let run = run_playbook("playbooks/stg.yml", &vars, &["--check", "--diff"]);
    assert!(run.ok, "check mode failed:\n{}", run.output);
    assert!(
        run.changed() > 0,
        "check mode saw nothing to do:\n{}",
        run.output
    );
    assert_eq!(
        files_under(root.path()),
        vec!["etc/hosts"],
        "check mode wrote files"
    );
    assert_eq!(std::fs::read_to_string(etc.join("hosts")).unwrap(), HOSTS);

    // For real.
    let run = run_playbook("playbooks/stg.yml", &vars, &[]);
    assert!(run.ok, "the role failed:\n{}", run.output);
    assert!(run.changed() > 0);
    for tool in [
        "stg-dump",
        "stg-restore",
        "stg-hosts",
        "stg-probe",
        "stg-age",
        "stg-cron",
    ] {
        let installed = root.path().join("usr/local/bin").join(tool);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&installed)
                .unwrap_or_else(|e| panic!("{tool} not installed: {e}"))
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o755, "{tool} mode");
        if tool != "stg-cron" {
            assert!(
                std::fs::read(&installed).unwrap() == std::fs::read(build.join(tool)).unwrap(),
                "{tool} is not the built binary"
            );
        }
    }
    assert_eq!(
        std::fs::read_to_string(etc.join("stg/environment")).unwrap(),
        "staging\n"
    );
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(etc.join("stg/inventory.json")).unwrap())
            .expect("the templated inventory is JSON");
    assert_eq!(written, inventory());
    // The hosts block is in place: stg-hosts itself says so.
    let check = stg_tests::cmd::stg("stg-hosts")
        .args(["check", "--format", "json", "--inventory"])
        .arg(etc.join("stg/inventory.json"))
        .arg("--file")
        .arg(etc.join("hosts"))
        .output()
        .unwrap();
    assert_eq!(
        check.status.code(),
        Some(0),
        "hosts block not in sync: {}",
        String::from_utf8_lossy(&check.stdout)
    );
    let hosts = std::fs::read_to_string(etc.join("hosts")).unwrap();
    assert!(
        hosts.starts_with(HOSTS),
        "the rest of the hosts file is kept: {hosts}"
    );
    // Cron: mail to the admins, the probe every 15 minutes, stg-age weekly, both through
    // the wrapper that is silent on success.
    let cron = std::fs::read_to_string(etc.join("cron.d/stg")).unwrap();
    let lines: Vec<&str> = cron.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines[0], "MAILTO=\"sysadmin-main@example.org\"", "{cron}");
    let bin = root.path().join("usr/local/bin");
    let probe = format!(
        "*/15 * * * * root {0}/stg-cron {0}/stg-probe --inventory {1} --format text",
        bin.display(),
        etc.join("stg/inventory.json").display()
    );
    let age = format!(
        "30 6 * * 1 root {0}/stg-cron {0}/stg-age --repo /srv/ansible --max-age 90d --format text",
        bin.display()
    );
    assert_eq!(lines[1..], [probe.as_str(), age.as_str()], "{cron}");

    // Idempotent: nothing changes the second time.
    let run = run_playbook("playbooks/stg.yml", &vars, &[]);
    assert!(run.ok, "second run failed:\n{}", run.output);
    assert_eq!(
        run.changed(),
        0,
        "second run changed something:\n{}",
        run.output
    );
    let backups = files_under(&etc)
        .into_iter()
        .filter(|f| f.contains("stg-bak"))
        .count();
    assert_eq!(backups, 1, "one backup, from the one real change");

    // A new service in the inventory: check + diff mode shows the block's diff and
    // changes nothing.
    let mut vars = vars;
    vars["stg_inventory"]["services"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "name": "bodhi",
            "production": ["bodhi.fedoraproject.org"],
            "staging": {"name": "bodhi01.stg.phx2.fedoraproject.org", "address": "10.5.128.50"},
            "ports": [443]
        }));
    let run = run_playbook("playbooks/stg.yml", &vars, &["--check", "--diff"]);
    assert!(run.ok, "check mode failed:\n{}", run.output);
    assert!(
        run.changed() >= 1,
        "check mode missed the drift:\n{}",
        run.output
    );
    assert!(
        run.output
            .contains("+10.5.128.50\\tbodhi.fedoraproject.org")
            || run.output.contains("+10.5.128.50\tbodhi.fedoraproject.org"),
        "diff mode does not show the new line:\n{}",
        run.output
    );
    assert_eq!(std::fs::read_to_string(etc.join("hosts")).unwrap(), hosts);
}

/// A host whose `env` is not "staging" (here: not set at all) is production: the
/// environment file says so, its hosts file is left alone, and no probe is scheduled.
#[test]
fn role_on_a_production_host_touches_no_hosts_file() {
    let root = tempfile::tempdir().expect("temp root");
    let etc = root.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("hosts"), HOSTS).unwrap();
    let work = tempfile::tempdir().expect("temp dir");
    let build = binaries_snapshot(work.path());
    let run = run_playbook(
        "playbooks/stg.yml",
        &role_vars(root.path(), &build, None),
        &[],
    );
    assert!(run.ok, "the role failed:\n{}", run.output);
    assert_eq!(
        std::fs::read_to_string(etc.join("stg/environment")).unwrap(),
        "production\n"
    );
    assert_eq!(std::fs::read_to_string(etc.join("hosts")).unwrap(), HOSTS);
    let cron = std::fs::read_to_string(etc.join("cron.d/stg")).unwrap();
    assert!(
        !cron.contains("stg-probe"),
        "probe scheduled on production:\n{cron}"
    );
    assert!(cron.contains("stg-age --repo /srv/ansible"), "{cron}");
}

/// The cron wrapper is silent when the check passes and prints the report and the exit
/// status (for cron to mail) when it does not, keeping the status.
#[test]
fn cron_wrapper_is_silent_on_success_and_reports_failure() {
    let wrapper = repo_root().join("contrib/ansible/roles/stg/files/stg-cron");
    let wrapper = wrapper.to_str().unwrap();
    let out = program(wrapper)
        .args(["sh", "-c", "echo fine"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    let out = program(wrapper)
        .args([
            "sh",
            "-c",
            "echo 'stale: wiki.fedoraproject.org'; echo oops >&2; exit 2",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("stale: wiki.fedoraproject.org") && stdout.contains("oops"));
    assert!(stdout.contains("exit status 2"), "{stdout}");
}

/// The role on a staging database host: the load role stg-restore runs a stream's SQL as
/// is made (LOGIN, nothing else) and pg_hba.conf gets the line that lets it in with a
/// password, the server reloaded; check mode changes nothing, a second run nothing either.
#[test]
fn role_on_a_staging_database_host_makes_the_load_role_and_its_pg_hba_line() {
    let root = tempfile::tempdir().expect("temp root");
    let work = tempfile::tempdir().expect("temp dir");
    let build = binaries_snapshot(work.path());
    let etc = root.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("hosts"), HOSTS).unwrap();
    let cluster = Cluster::start();
    let hba = cluster.data_dir().join("pg_hba.conf");
    let hba_before = std::fs::read_to_string(&hba).unwrap();
    let psql: Vec<String> = std::iter::once(cluster.bindir().join("psql").display().to_string())
        .chain(cluster.conn_args())
        .chain(["-d".into(), "postgres".into()])
        .collect();
    let mut reload = psql.clone();
    reload.extend(["-X".into(), "-c".into(), "SELECT pg_reload_conf()".into()]);
    let line = "host all stg_load 127.0.0.1/32 scram-sha-256";
    let mut vars = role_vars(root.path(), &build, Some("staging"));
    vars["stg_restore_host"] = json!(true);
    vars["stg_psql"] = json!(psql);
    vars["stg_pg_hba_file"] = json!(hba);
    vars["stg_load_role_hba_line"] = json!(line);
    vars["stg_pg_reload"] = json!(reload);
    let signer = "ops@example.org namespaces=\"stg-stream\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTheRoleTestOnly00000000000000000";
    vars["stg_allowed_signers"] = json!([signer]);
    let role_exists = || {
        cluster
            .sql(
                "postgres",
                "SELECT rolcanlogin::text || rolsuper::text FROM pg_roles WHERE rolname = 'stg_load'",
            )
            .trim()
            .to_owned()
    };

    let run = run_playbook("playbooks/stg.yml", &vars, &["--check", "--diff"]);
    assert!(run.ok, "check mode failed:\n{}", run.output);
    assert_eq!(role_exists(), "", "check mode made the role");
    assert_eq!(std::fs::read_to_string(&hba).unwrap(), hba_before);

    let run = run_playbook("playbooks/stg.yml", &vars, &[]);
    assert!(run.ok, "the role failed:\n{}", run.output);
    assert_eq!(role_exists(), "truefalse");
    let allowed = std::fs::read_to_string(etc.join("stg/allowed_signers")).unwrap();
    assert!(allowed.lines().any(|l| l == signer), "{allowed}");
    let hba_now = std::fs::read_to_string(&hba).unwrap();
    assert_eq!(hba_now.lines().next(), Some(line), "{hba_now}");
    // The server reads the line (the file stayed readable to it).
    assert_eq!(
        cluster
            .sql(
                "postgres",
                "SELECT auth_method FROM pg_hba_file_rules WHERE 'stg_load' = ANY (user_name)",
            )
            .trim(),
        "scram-sha-256"
    );

    let run = run_playbook("playbooks/stg.yml", &vars, &[]);
    assert!(run.ok, "the second run failed:\n{}", run.output);
    assert_eq!(
        run.changed(),
        0,
        "a second run changed things:\n{}",
        run.output
    );
}

/// Production data and a stale staging copy, in two throwaway clusters.
fn clusters() -> (Cluster, Cluster) {
    let prod = Cluster::start();
    prod.createdb("fas2");
    prod.script(
        "fas2",
        "CREATE TABLE people (id int PRIMARY KEY, username text NOT NULL, email text);\n\
         INSERT INTO people SELECT g, 'user' || g, 'user' || g || '@fedoraproject.org' \
         FROM generate_series(1, 500) g;\n\
         CREATE TABLE groups (name text PRIMARY KEY);\n\
         INSERT INTO groups VALUES ('sysadmin-main'), ('packager');\n",
    );
    let stg = Cluster::start();
    stg.createdb("fas2");
    stg.script(
        "fas2",
        "CREATE TABLE people (id int PRIMARY KEY, username text);\n\
         INSERT INTO people VALUES (1, 'stale');\n",
    );
    (prod, stg)
}

fn environment_file(dir: &Path, content: &str) -> PathBuf {
    let path = dir.join(format!("environment-{}", content.trim()));
    std::fs::write(&path, content).unwrap();
    path
}

/// The restore command as the staging host would run it: its environment file, and the
/// staging cluster's psql.
fn restore_command(env_file: &Path) -> String {
    format!(
        "env STG_ENVIRONMENT_FILE={} {}",
        env_file.display(),
        bin_path("stg-restore").display()
    )
}

#[test]
fn db_sync_playbook_pipes_dump_into_restore_and_runs_the_hooks() {
    let (prod, stg) = clusters();
    let dir = tempfile::tempdir().unwrap();
    let hooks_log = dir.path().join("hooks.log");
    let staging_env = environment_file(dir.path(), "staging\n");
    let mut dump_args = prod.conn_args();
    dump_args.extend([
        "--pg-dump".into(),
        prod.bindir().join("pg_dump").display().to_string(),
    ]);
    let restore_args = stg.conn_args();
    let vars = json!({
        "db_sync_from": "localhost",
        "db_sync_to": "db02.stg",
        "db_sync_db": "fas2",
        "db_sync_become": false,
        "db_sync_ssh": LOCAL_SSH,
        "db_sync_dump": bin_path("stg-dump"),
        "db_sync_dump_args": dump_args,
        "db_sync_restore": restore_command(&staging_env),
        "db_sync_restore_args": restore_args,
        "db_sync_pre_hook": format!("echo 'stop httpd' >> {}", hooks_log.display()),
        "db_sync_post_hook": format!("echo 'start httpd' >> {}", hooks_log.display()),
    });
    let run = run_playbook("playbooks/db-sync.yml", &vars, &[]);
    assert!(run.ok, "db-sync failed:\n{}", run.output);
    assert_eq!(run.changed(), 1, "{}", run.output);

    assert_eq!(stg.table_contents("fas2"), prod.table_contents("fas2"));
    assert_eq!(
        std::fs::read_to_string(&hooks_log).unwrap(),
        "stop httpd\nstart httpd\n",
        "the app is stopped and started around the swap"
    );
    let report = debug_var(&run, "db_sync_report");
    let summary = report
        .as_array()
        .and_then(|r| r.last())
        .expect("a report with a summary");
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["ok"], true, "{summary:#}");
    assert_eq!(summary["database"], "fas2");
    assert_eq!(summary["rows"]["public.people"], 500, "{summary:#}");
    assert_eq!(summary["verification"]["verified"], true, "{summary:#}");
    // The stale copy is kept beside it, as stg-restore does.
    let previous = summary["previous"].as_str().expect("previous copy");
    assert_eq!(stg.sql(previous, "SELECT username FROM people"), "stale\n");
}

#[test]
fn db_sync_playbook_fails_and_changes_nothing_on_a_production_target() {
    let (prod, stg) = clusters();
    let dir = tempfile::tempdir().unwrap();
    let production_env = environment_file(dir.path(), "production\n");
    let before = stg.table_contents("fas2");
    let databases = stg.databases();
    let mut dump_args = prod.conn_args();
    dump_args.extend([
        "--pg-dump".into(),
        prod.bindir().join("pg_dump").display().to_string(),
    ]);
    let vars = json!({
        "db_sync_from": "localhost",
        "db_sync_to": "db02",
        "db_sync_db": "fas2",
        "db_sync_become": false,
        "db_sync_ssh": LOCAL_SSH,
        "db_sync_dump": bin_path("stg-dump"),
        "db_sync_dump_args": dump_args,
        "db_sync_restore": restore_command(&production_env),
        "db_sync_restore_args": stg.conn_args(),
    });
    let run = run_playbook("playbooks/db-sync.yml", &vars, &[]);
    assert!(!run.ok, "a sync into production must fail:\n{}", run.output);
    assert_eq!(run.recap["failed"], 1, "{}", run.output);
    assert!(
        run.output.contains("staging"),
        "the failure says why:\n{}",
        run.output
    );
    assert_eq!(stg.table_contents("fas2"), before);
    assert_eq!(stg.databases(), databases);
}

/// `make sync`: the same pipeline from the Makefile, with SSH replaced by a local shell.
#[test]
fn make_sync_pipes_dump_into_restore() {
    let (prod, stg) = clusters();
    let dir = tempfile::tempdir().unwrap();
    let staging_env = environment_file(dir.path(), "staging\n");
    // The "remote" PATH has the built tools and the staging cluster's psql.
    let path = format!(
        "{}:{}:{}",
        build_dir().display(),
        prod.bindir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = program("make")
        .arg("-C")
        .arg(repo_root())
        .arg("--no-print-directory")
        .env("PATH", path)
        .env("STG_ENVIRONMENT_FILE", &staging_env)
        .args([
            "sync",
            "DB=fas2",
            "FROM=db01",
            "TO=db02.stg",
            "FORMAT=json",
            "KEEP=0",
        ])
        .arg(format!("SSH={}", LOCAL_SSH.replace('$', "$$")))
        .arg(format!("DUMP_ARGS={}", prod.conn_args().join(" ")))
        .arg(format!("RESTORE_ARGS={}", stg.conn_args().join(" ")))
        .output()
        .expect("run make");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "make sync failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = stdout
        .lines()
        .rfind(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .expect("a summary");
    assert_eq!(summary["ok"], true, "{summary:#}");
    assert_eq!(stg.table_contents("fas2"), prod.table_contents("fas2"));
    assert_eq!(
        stg.databases(),
        vec!["fas2", "postgres"],
        "KEEP=0 keeps no copy"
    );

    // Without DB, FROM and TO it stops before running anything.
    let out = program("make")
        .arg("-C")
        .arg(repo_root())
        .args(["sync", "DB=fas2"])
        .output()
        .expect("run make");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("FROM="));
}

fn make_target(args: &[String], env_file: Option<&Path>) -> (Option<i32>, Vec<Value>, String) {
    let mut cmd = program("make");
    cmd.arg("-C")
        .arg(repo_root())
        .arg("--no-print-directory")
        .args(args);
    if let Some(env_file) = env_file {
        cmd.env("STG_ENVIRONMENT_FILE", env_file);
    }
    let out = cmd.output().expect("run make");
    let records = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    (
        out.status.code(),
        records,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `make hosts` and `make age` run the tools with the Makefile's variables (TOOLDIR,
/// INVENTORY, HOSTS_FILE, DRY_RUN, REPO, MAX_AGE, FORMAT), and fail when the tool does.
#[test]
fn make_hosts_and_age_pass_their_variables() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, HOSTS).unwrap();
    let staging_env = environment_file(dir.path(), "staging\n");
    let vars = |extra: &[&str]| -> Vec<String> {
        let mut v = vec![
            "hosts".to_owned(),
            format!("TOOLDIR={}", build_dir().display()),
            format!(
                "INVENTORY={}",
                repo_root()
                    .join("stg-hosts/tests/fixtures/fedora-stg.json")
                    .display()
            ),
            format!("HOSTS_FILE={}", hosts.display()),
            "FORMAT=json".to_owned(),
        ];
        v.extend(extra.iter().map(|s| (*s).to_owned()));
        v
    };
    let (code, records, stderr) = make_target(&vars(&["DRY_RUN=1"]), None);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(records[0]["type"], "diff");
    assert_eq!(records.last().unwrap()["dry_run"], true);
    assert_eq!(std::fs::read_to_string(&hosts).unwrap(), HOSTS);
    let (code, records, stderr) = make_target(&vars(&[]), Some(&staging_env));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(records.last().unwrap()["changed"], true);
    assert!(std::fs::read_to_string(&hosts)
        .unwrap()
        .contains("# BEGIN stg-hosts fedora-stg"));

    let repo = stg_tests::git::Repo::new();
    repo.write(
        "roles/base/tasks/main.yml",
        "- name: staging only\n  when: env == \"staging\"\n  ansible.builtin.debug: msg=hi\n",
    );
    repo.commit("staging-only debug", "2020-01-01T00:00:00Z");
    let age = |max_age: &str| {
        make_target(
            &[
                "age".to_owned(),
                format!("TOOLDIR={}", build_dir().display()),
                format!("REPO={}", repo.path().display()),
                format!("MAX_AGE={max_age}"),
                "FORMAT=json".to_owned(),
            ],
            None,
        )
    };
    let (code, records, stderr) = age("90d");
    assert_ne!(
        code,
        Some(0),
        "a 2020 change is older than 90 days: {records:#?}"
    );
    assert!(
        stderr.contains("Error 1"),
        "make reports stg-age's exit 1: {stderr}"
    );
    assert_eq!(records.last().unwrap()["type"], "summary", "{records:#?}");
    assert!(
        records
            .iter()
            .any(|r| r.to_string().contains("roles/base/tasks/main.yml")),
        "{records:#?}"
    );
    let (code, _, stderr) = age("100000d");
    assert_eq!(code, Some(0), "{stderr}");
}
