//! What the API integration tests share: a store on either database, and a macro that runs one
//! test body against both (the issue asks for the same suite on SQLite and PostgreSQL).

#![allow(dead_code)] // each test binary uses its own subset

pub mod postgres;

use orrery_api::Store;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A fresh, migrated store: a SQLite file in `dir`, or a new database on the test PostgreSQL
/// server.
pub async fn store(db: Db, dir: &std::path::Path) -> Store {
    match db {
        Db::Sqlite => Store::open_sqlite(&dir.join("api.db")).await.unwrap(),
        Db::Postgres => {
            let url = postgres::server().new_database().await;
            Store::open(&url)
                .await
                .unwrap_or_else(|e| panic!("{url}: {e}"))
        }
    }
}

/// An API on a loopback port over `store`, with `admin` as its admin token and its artifacts in
/// `dir/artifacts` under `limits`; returns its address.
pub async fn serve_with_artifacts(
    store: Store,
    admin: &str,
    dir: &std::path::Path,
    limits: orrery_api::artifacts::Limits,
) -> std::net::SocketAddr {
    let artifacts = orrery_api::artifacts::Artifacts::open(
        dir.join("artifacts").to_str().unwrap(),
        &[],
        limits,
    )
    .unwrap();
    let options = orrery_api::Options {
        auth: orrery_api::AuthConfig::new(admin, None),
        logs: None,
        artifacts: Some(std::sync::Arc::new(artifacts)),
    };
    orrery_api::spawn(
        std::sync::Arc::new(store),
        options,
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap()
    .0
}

/// The ids of experiment `experiment`'s trials, in index order, read by the admin (`api`:
/// `http://HOST:PORT/api/v1`).
pub fn trial_ids(api: &str, admin: &str, experiment: &Value) -> Vec<i64> {
    let url = format!("{api}/experiments/{}/trials", experiment["id"]);
    let r = request(Some(admin), "GET", &url, None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect()
}

/// A new worker token of trial `trial`, minted by the admin.
pub fn worker_token(api: &str, admin: &str, trial: i64) -> String {
    let r = request(
        Some(admin),
        "POST",
        &format!("{api}/trials/{trial}/token"),
        Some(""),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["token"].as_str().unwrap().to_string()
}

/// What a request got back, whatever its status.
pub struct Reply {
    pub status: u16,
    /// The `WWW-Authenticate` header ("" when absent).
    pub challenge: String,
    /// The JSON body, or the text as a JSON string when it is not JSON.
    pub body: Value,
}

/// A request with `Authorization: Bearer TOKEN` when `token` is given.
pub fn request(token: Option<&str>, method: &str, url: &str, body: Option<&str>) -> Reply {
    let mut req = ureq::request(method, url).set("Content-Type", "application/json");
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let r = match body {
        Some(b) => req.send_string(b),
        None => req.call(),
    };
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = resp.status();
    let challenge = resp.header("WWW-Authenticate").unwrap_or("").to_string();
    let text = resp.into_string().unwrap();
    Reply {
        status,
        challenge,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

/// `on_both_databases!(name)` turns `async fn name(db: Db)` into two tests, `name::sqlite` and
/// `name::postgres`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread")]
            async fn sqlite() {
                super::$name($crate::support::Db::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn postgres() {
                super::$name($crate::support::Db::Postgres).await
            }
        }
    )*};
}
