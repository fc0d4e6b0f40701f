//! Tests of the test support itself: the throwaway PostgreSQL cluster and git repositories.

use stg_tests::{git, pg};

#[test]
fn two_clusters_start_in_parallel_on_different_ports_and_clean_up() {
    let handles: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(pg::Cluster::start))
        .collect();
    let clusters: Vec<pg::Cluster> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_ne!(clusters[0].port(), clusters[1].port());
    for (i, cluster) in clusters.iter().enumerate() {
        cluster.createdb(&format!("db{i}"));
        assert_eq!(cluster.sql(&format!("db{i}"), "SELECT 40 + 2").trim(), "42");
        assert!(!cluster.databases().contains(&format!("db{}", 1 - i)));
    }
    let dirs: Vec<_> = clusters.iter().map(pg::Cluster::data_dir).collect();
    let port = clusters[0].port();
    drop(clusters);
    for dir in dirs {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "server still listening on {port}"
    );
}

#[test]
fn cluster_is_removed_when_a_test_panics() {
    let dir = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen = dir.clone();
    let result = std::thread::spawn(move || {
        let cluster = pg::Cluster::start();
        *seen.lock().unwrap() = Some(cluster.data_dir());
        panic!("test failure inside a test");
    })
    .join();
    assert!(result.is_err());
    let data_dir = dir.lock().unwrap().clone().unwrap();
    assert!(!data_dir.exists());
}

#[test]
fn git_repo_commits_at_fixed_dates() {
    let repo = git::Repo::new();
    repo.write("a.yml", "x: 1\n");
    let id = repo.commit("first", "2021-03-04T05:06:07Z");
    let date = repo.git(&["log", "-1", "--format=%cI", &id]);
    assert!(date.starts_with("2021-03-04T05:06:07"), "{date}");
}

#[test]
fn sshd_runs_a_remote_command_over_loopback() {
    let server = stg_tests::sshd::Sshd::start();
    let out = server
        .ssh("echo hello-from-sshd; echo err >&2; exit 7")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "hello-from-sshd",
        "{}",
        server.log()
    );
    assert_eq!(out.status.code(), Some(7));
}
