//! A real PostgreSQL server for the integration tests: Debian's `postgresql` binaries (`initdb`,
//! `postgres`), started once per test process on a temporary data directory and a free loopback
//! port, one fresh database per test. Never skipped: without the binaries the tests fail and say
//! what to install.
//!
//! PostgreSQL refuses to run as root, so under root (CI containers) the server runs as the
//! `postgres` user the Debian package creates. A watchdog shell stops the server and removes its
//! folder once the test process has exited: test binaries have no teardown hook.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database};

pub struct Server {
    port: u16,
    next_db: AtomicU32,
    /// Never waited for: it outlives this process on purpose (it stops the server after us).
    _watchdog: Child,
}

/// The folder with `initdb` and `postgres`: `$ORRERY_PG_BIN`, else the newest Debian install
/// (`/usr/lib/postgresql/N/bin`), else whatever `PATH` has.
fn bin_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("ORRERY_PG_BIN") {
        return Some(PathBuf::from(d));
    }
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    debian.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    debian.pop().or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .find(|p| p.join("initdb").exists() && p.join("postgres").exists())
        })
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `cmd` as the `postgres` user when we are root, as ourselves otherwise.
fn as_server_user(program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", program]);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn start() -> Server {
    let bin = bin_dir().unwrap_or_else(|| {
        panic!(
            "PostgreSQL server binaries not found: install Debian's `postgresql` package (or set \
             ORRERY_PG_BIN to the folder holding initdb and postgres)"
        )
    });
    let root = tempfile::Builder::new()
        .prefix("orrery-pg-")
        .tempdir()
        .expect("a temporary folder")
        .keep();
    if is_root() {
        let ok = Command::new("chown")
            .args(["-R", "postgres:", root.to_str().unwrap()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cannot hand {} to the postgres user", root.display());
    }
    let data = root.join("data");
    let out = as_server_user(bin.join("initdb").to_str().unwrap())
        .args(["-D", data.to_str().unwrap()])
        .args([
            "-U",
            "orrery",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ])
        .output()
        .expect("initdb runs");
    assert!(
        out.status.success(),
        "initdb failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    // fsync off: the tests need a real server, not a durable one (the benchmarks set
    // ORRERY_PG_DURABLE=1 to measure a durable one). Paths reach the watchdog script as
    // environment variables and "$@", never spliced into its text.
    let fsync = if std::env::var_os("ORRERY_PG_DURABLE").is_some() {
        "fsync=on"
    } else {
        "fsync=off"
    };
    let watchdog = r#"
        "$@" >"$LOG" 2>&1 & pg=$!
        while [ -d "/proc/$PARENT" ] && kill -0 "$pg" 2>/dev/null; do sleep 1; done
        kill -INT "$pg" 2>/dev/null; wait "$pg"; rm -rf "$ROOT"
    "#;
    let mut child = as_server_user("env")
        .arg(format!("LOG={}", root.join("server.log").display()))
        .arg(format!("PARENT={}", std::process::id()))
        .arg(format!("ROOT={}", root.display()))
        .args(["sh", "-c", watchdog, "watchdog"])
        .arg(bin.join("postgres"))
        .args(["-D", data.to_str().unwrap(), "-p", &port.to_string()])
        .args(["-k", root.to_str().unwrap()])
        .args(["-c", "listen_addresses=127.0.0.1", "-c", fsync])
        .args(["-c", "max_connections=200"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the PostgreSQL watchdog starts");
    wait_ready(port, &root, &mut child);
    Server {
        port,
        next_db: AtomicU32::new(0),
        _watchdog: child,
    }
}

/// Until the server listens: its Unix socket in `root` (ours alone, unlike a TCP port someone else
/// could have taken) and the TCP port. A server that exits early fails at once, with its log.
fn wait_ready(port: u16, root: &Path, watchdog: &mut Child) {
    let log = || std::fs::read_to_string(root.join("server.log")).unwrap_or_default();
    let socket = root.join(format!(".s.PGSQL.{port}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if socket.exists() && TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = watchdog.try_wait() {
            panic!(
                "PostgreSQL exited ({status}) before it listened:\n{}",
                log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "PostgreSQL did not accept connections on port {port} within 60 s:\n{}",
        log()
    );
}

/// The server of this test process, started on first use.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(start)
}

impl Server {
    /// A new, empty database; returns its URL.
    pub async fn new_database(&self) -> String {
        let name = format!(
            "orrery_test_{}_{}",
            std::process::id(),
            self.next_db.fetch_add(1, Ordering::SeqCst)
        );
        let admin = format!("postgres://orrery@127.0.0.1:{}/postgres", self.port);
        // The server may still be finishing start-up after it opened its port.
        let deadline = Instant::now() + Duration::from_secs(30);
        let db = loop {
            match Database::connect(&admin).await {
                Ok(db) => break db,
                Err(e) if Instant::now() > deadline => panic!("cannot connect to {admin}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        db.execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        db.close().await.ok();
        format!("postgres://orrery@127.0.0.1:{}/{name}", self.port)
    }
}
