//! The store: every read and write of experiments, trials and metrics. The HTTP handlers and the
//! local executor both go through it, so each rule (idempotent ingest, summaries, transitions) is
//! written once. One `impl Store` per concept: `experiments`, `trials`, `tokens` (workers'),
//! `metrics` (ingest and histories), `leaderboard` (scores, the ranked board and its views) and
//! `artifacts` (their metadata rows; the bytes are in `crate::artifacts`).

mod artifacts;
mod experiments;
mod init_from;
mod leaderboard;
mod metrics;
mod mixing_law;
mod tokens;
mod trials;

pub use artifacts::{quota_message, ArtifactRow};
pub use init_from::MODEL_ARTIFACT;

use std::time::Duration;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

use crate::events::Bus;
use crate::migration::Migrator;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    /// A write past a storage quota.
    #[error("{0}")]
    Insufficient(String),
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub struct Store {
    db: DatabaseConnection,
    /// SQLite allows one writer; serialising writes here turns "database is locked" into a short wait.
    write: tokio::sync::Mutex<()>,
    /// Committed changes, announced for live pages (`crate::events`).
    events: Bus,
}

fn parse_phase<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T> {
    s.parse()
        .map_err(|e: String| StoreError::Invalid(format!("stored phase: {e}")))
}

impl Store {
    /// Opens (creating if needed) the database at `url` and brings its schema up to date.
    /// `sqlite://PATH?mode=rwc` for a file; `postgres://...` once PostgreSQL is enabled.
    pub async fn open(url: &str) -> Result<Store> {
        let mut opts = ConnectOptions::new(url.to_string());
        opts.max_connections(8)
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(|o| {
                o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(30))
                    .foreign_keys(true)
            });
        let db = Database::connect(opts).await?;
        migrate(&db).await?;
        Ok(Store {
            db,
            write: tokio::sync::Mutex::new(()),
            events: Bus::default(),
        })
    }

    /// A SQLite file, created with its folder if missing.
    ///
    /// Several processes may open one new file at once (two `orrery run`s on a fresh machine),
    /// and each would apply the migrations, the second failing on tables the first just made. So
    /// the file is opened under an exclusive `flock` on its folder, held until the schema is up to
    /// date: the first migrates, the others wait and find nothing to do. The folder, not the file:
    /// closing any descriptor of the database file would drop the POSIX locks SQLite holds on it
    /// in this process (and another process could then delete the WAL under it).
    pub async fn open_sqlite(path: &std::path::Path) -> Result<Store> {
        let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Invalid(format!("cannot create {}: {e}", dir.display()))
                })?;
                dir.to_path_buf()
            }
            None => std::path::PathBuf::from("."),
        };
        let cannot = |e: std::io::Error| {
            StoreError::Invalid(format!(
                "cannot lock {} to open {}: {e}",
                dir.display(),
                path.display()
            ))
        };
        let folder = std::fs::File::open(&dir).map_err(cannot)?;
        let locked = tokio::task::spawn_blocking(move || {
            use std::os::fd::AsRawFd;
            // SAFETY: flock on a descriptor this closure owns (through `folder`) for the call.
            match unsafe { libc::flock(folder.as_raw_fd(), libc::LOCK_EX) } {
                0 => Ok(folder),
                _ => Err(std::io::Error::last_os_error()),
            }
        })
        .await
        .map_err(|e| cannot(std::io::Error::other(e)))?
        .map_err(cannot)?;
        let store = Store::open(&format!("sqlite://{}?mode=rwc", path.display())).await;
        // Closing the folder's descriptor releases the lock.
        drop(locked);
        store
    }

    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Where committed changes are announced.
    pub fn events(&self) -> &Bus {
        &self.events
    }
}

/// Brings the schema up to date. On PostgreSQL several processes may start at once (API
/// replicas, a rollout's old and new Pod): a session-level advisory lock, held on a connection of
/// its own for the duration, lets one migrate while the others wait and then find nothing to do.
async fn migrate(db: &DatabaseConnection) -> Result<()> {
    if db.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
        return Ok(Migrator::up(db, None).await?);
    }
    /// Any constant shared by every Orrery process ("orrery" in ASCII).
    const LOCK: i64 = 0x6f72_7265_7279;
    let lock_conn = db.begin().await?; // a connection of its own, until commit
    lock_conn
        .execute_unprepared(&format!("SELECT pg_advisory_xact_lock({LOCK})"))
        .await?;
    let migrated = Migrator::up(db, None).await;
    lock_conn.commit().await?; // releases the lock
    Ok(migrated?)
}
