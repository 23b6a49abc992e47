//! Runs real PostgreSQL 15 clusters and talks to them with /usr/bin/psql.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use tg_local::{stop_persistent, Cluster, ClusterOptions};

fn temp(name: &str) -> Cluster {
    Cluster::start_temp(ClusterOptions {
        name: name.into(),
        ..Default::default()
    })
    .expect("start temp cluster")
}

/// `psql URL -Atc SQL`: Ok(trimmed stdout) or Err(stderr).
fn psql(url: &str, password: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("/usr/bin/psql")
        .arg(url)
        .arg("-Atc")
        .arg(sql)
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("run psql");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(stderr)
    }
}

fn query(c: &Cluster, sql: &str) -> String {
    psql(&c.url("postgres"), c.password(), sql)
        .unwrap_or_else(|e| panic!("{sql} on port {}: {e}", c.port()))
}

fn cluster_root(c: &Cluster) -> PathBuf {
    c.data_dir()
        .parent()
        .expect("data dir has a parent")
        .to_path_buf()
}

#[test]
fn two_temp_clusters_run_side_by_side_with_scram() {
    let us = temp("us-1");
    let eu = temp("eu-1");
    assert_ne!(us.port(), eu.port());
    assert_ne!(us.data_dir(), eu.data_dir());
    for c in [&us, &eu] {
        assert_eq!(c.host(), "127.0.0.1");
        assert_eq!(c.superuser(), "tg_admin");
        assert!(
            c.password().len() >= 24 && c.password().chars().all(|ch| ch.is_ascii_alphanumeric())
        );
        assert_eq!(
            c.url("db"),
            format!(
                "postgres://tg_admin:{}@127.0.0.1:{}/db",
                c.password(),
                c.port()
            )
        );
        assert!(c.is_running());
        assert_eq!(query(c, "show wal_level"), "logical");
        assert_eq!(query(c, "show password_encryption"), "scram-sha-256");
        assert_eq!(query(c, "show max_connections"), "200");
        assert_eq!(query(c, "show fsync"), "off");
        assert_eq!(query(c, "show server_version_num")[..2], *"15");
        assert_eq!(query(c, "select inet_server_port()"), c.port().to_string());
    }
    assert_ne!(us.password(), eu.password());
}

#[test]
fn many_clusters_start_in_parallel_on_distinct_ports() {
    let handles: Vec<_> = (0..6)
        .map(|i| std::thread::spawn(move || temp(&format!("par-{i}"))))
        .collect();
    let clusters: Vec<Cluster> = handles
        .into_iter()
        .map(|h| h.join().expect("start thread"))
        .collect();
    let mut ports: Vec<u16> = clusters.iter().map(Cluster::port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), clusters.len());
    for c in &clusters {
        assert_eq!(query(c, "select 1"), "1");
    }
}

#[test]
fn wrong_password_is_refused() {
    let c = temp("auth");
    assert_eq!(
        psql(&c.url("postgres"), c.password(), "select 1").as_deref(),
        Ok("1")
    );
    let wrong = format!(
        "postgres://tg_admin:not-the-password@127.0.0.1:{}/postgres",
        c.port()
    );
    let err = psql(&wrong, "not-the-password", "select 1").expect_err("wrong password must fail");
    assert!(err.contains("password authentication failed"), "{err}");
}

#[test]
fn unix_socket_also_requires_scram() {
    let c = temp("socket");
    let sock = cluster_root(&c).join("sock");
    let conn = format!(
        "host={} port={} user=tg_admin dbname=postgres",
        sock.display(),
        c.port()
    );
    assert_eq!(psql(&conn, c.password(), "select 1").as_deref(), Ok("1"));
    let err =
        psql(&conn, "wrong", "select 1").expect_err("wrong password over the socket must fail");
    assert!(err.contains("password authentication failed"), "{err}");
}

#[test]
fn options_reach_the_server() {
    let opts = ClusterOptions {
        name: "opts".into(),
        superuser: "boss".into(),
        max_connections: 50,
        extra_conf: vec![
            ("work_mem".into(), "7MB".into()),
            ("application_name".into(), "it's me".into()),
        ],
        ..Default::default()
    };
    let c = Cluster::start_temp(opts).expect("start");
    assert_eq!(c.superuser(), "boss");
    assert_eq!(query(&c, "show max_connections"), "50");
    assert_eq!(query(&c, "show work_mem"), "7MB");
    assert_eq!(query(&c, "show max_wal_senders"), "10");
    assert_eq!(query(&c, "show max_replication_slots"), "10");
    assert_eq!(query(&c, "show listen_addresses"), "127.0.0.1");
}

#[test]
fn invalid_options_are_rejected() {
    let bad = ClusterOptions {
        superuser: "bad user".into(),
        ..Default::default()
    };
    let err = Cluster::start_temp(bad).expect_err("invalid superuser");
    assert!(err.to_string().contains("superuser"), "{err}");
}

#[test]
fn dropping_a_cluster_removes_its_directory() {
    let c = temp("drop");
    let root = cluster_root(&c);
    assert!(root.join("server.log").is_file());
    drop(c);
    assert!(!root.exists(), "{} should be gone", root.display());
}

#[test]
fn a_panicking_thread_still_cleans_up() {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let c = temp("panic");
        tx.send((cluster_root(&c), c.port())).expect("send dir");
        panic!("deliberate panic with a live cluster");
    });
    assert!(handle.join().is_err(), "the thread should have panicked");
    let (root, port) = rx.recv().expect("the thread reported its cluster");
    assert!(!root.exists(), "{} should be gone", root.display());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "server on {port} should be down"
    );
}

#[test]
fn kill_then_start_comes_back_on_the_same_port() {
    // fsync: true keeps synchronous_commit on, so committed data must survive the crash.
    let c = Cluster::start_temp(ClusterOptions {
        name: "crash".into(),
        fsync: true,
        ..Default::default()
    })
    .expect("start temp cluster");
    let port = c.port();
    assert_eq!(query(&c, "show synchronous_commit"), "on");
    query(&c, "create table t (x int)");
    c.kill().expect("kill");
    assert!(!c.is_running());
    assert!(psql(&c.url("postgres"), c.password(), "select 1").is_err());
    c.kill().expect("killing a dead server is fine");
    c.start().expect("start after crash");
    assert!(c.is_running());
    assert_eq!(c.port(), port);
    assert_eq!(query(&c, "select count(*) from t"), "0");
    c.stop().expect("fast stop");
    assert!(!c.is_running());
    c.stop().expect("stopping a stopped server is fine");
    c.start().expect("start after stop");
    assert_eq!(query(&c, "select 1"), "1");
}

/// Stops the persistent cluster even if an assertion fails.
struct StopOnDrop<'a>(&'a Path);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        let _ = stop_persistent(self.0);
    }
}

#[test]
fn persistent_cluster_keeps_port_and_password() {
    let parent = tempfile::Builder::new()
        .prefix("tg-persist-")
        .tempdir_in(std::env::temp_dir())
        .expect("tempdir");
    let dir = parent.path().join("us-1");
    let _guard = StopOnDrop(&dir);
    let opts = || ClusterOptions {
        name: "us-1".into(),
        fsync: true,
        ..Default::default()
    };

    let first = Cluster::open_persistent(&dir, opts()).expect("first open");
    let (port, password) = (first.port(), first.password().to_string());
    assert_eq!(query(&first, "show fsync"), "on");
    query(
        &first,
        "create table kept (x int); insert into kept values (42)",
    );
    drop(first);

    let second = Cluster::open_persistent(&dir, opts()).expect("second open (running)");
    assert!(
        second.is_running(),
        "drop must not stop a persistent cluster"
    );
    assert_eq!(
        (second.port(), second.password()),
        (port, password.as_str())
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("port"))
            .expect("port file")
            .trim(),
        port.to_string()
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("admin-password"))
            .expect("password file")
            .trim(),
        password
    );
    let mode = std::fs::metadata(dir.join("admin-password"))
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    stop_persistent(&dir).expect("stop");
    assert!(!second.is_running());
    let third = Cluster::open_persistent(&dir, opts()).expect("third open (stopped)");
    assert_eq!((third.port(), third.password()), (port, password.as_str()));
    assert_eq!(query(&third, "select x from kept"), "42");

    stop_persistent(&dir).expect("stop again");
    stop_persistent(&dir).expect("stopping a stopped cluster is fine");
    stop_persistent(&parent.path().join("absent")).expect("stopping an absent cluster is fine");
    std::fs::remove_dir_all(&dir).expect("remove persistent dir");
}
