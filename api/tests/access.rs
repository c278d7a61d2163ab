//! Access control over real HTTP, on SQLite and PostgreSQL: the admin token, per-trial worker
//! tokens (a worker cannot write another trial), no token (cannot write), and reads open or behind
//! the read token as configured; 401 for a missing or unknown token, 403 for a known one that may
//! not do this.

mod support;

use std::sync::Arc;

use serde_json::Value;

use orrery_api::AuthConfig;
use support::Db;

on_both_databases!(
    worker_tokens_write_only_their_trial,
    reads_follow_the_setting
);

const SPEC: &str = "apiVersion: orrery.dev/v1alpha1\nkind: Experiment\nmetadata: {name: access}\nspec:\n  workload: stability\n  search:\n    space:\n      training.lr: {values: [1.0e-3, 1.0e-2]}\n";
const ADMIN: &str = "access-admin-token";
const READER: &str = "access-read-token";

async fn start(db: Db, auth: AuthConfig) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store(db, dir.path()).await;
    let (addr, _) = orrery_api::spawn(Arc::new(store), auth, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (format!("http://{addr}"), dir)
}

/// (status, WWW-Authenticate, body) of a request with `token`, if any.
fn call(token: Option<&str>, method: &str, url: &str, body: Option<&str>) -> (u16, String, Value) {
    let r = support::request(token, method, url, body);
    (r.status, r.challenge, r.body)
}

const POINT: &str =
    r#"{"points": [{"name": "train/loss", "step": 1, "value": 2.0, "wall_time": 0}]}"#;

async fn worker_tokens_write_only_their_trial(db: Db) {
    let (base, _dir) = start(db, AuthConfig::new(ADMIN, None)).await;
    tokio::task::spawn_blocking(move || {
        let exps = format!("{base}/api/v1/experiments");
        // Creating an experiment: admin only.
        let (st, challenge, _) = call(None, "POST", &exps, Some(SPEC));
        assert_eq!((st, challenge.as_str()), (401, "Bearer"));
        let (st, _, _) = call(Some("guessed"), "POST", &exps, Some(SPEC));
        assert_eq!(st, 401);
        let (st, _, exp) = call(Some(ADMIN), "POST", &exps, Some(SPEC));
        assert_eq!(st, 201, "{exp}");
        let (_, _, trials) = call(None, "GET", &format!("{exps}/{}/trials", exp["id"]), None);
        let ids: Vec<i64> = trials
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_i64().unwrap())
            .collect();
        let (a, b) = (ids[0], ids[1]);

        // Minting a worker token: admin only; the token is shown once.
        let mint = |t: i64| format!("{base}/api/v1/trials/{t}/token");
        assert_eq!(call(None, "POST", &mint(a), Some("")).0, 401);
        let (st, _, minted) = call(Some(ADMIN), "POST", &mint(a), Some(""));
        assert_eq!(st, 201, "{minted}");
        let token_a = minted["token"].as_str().unwrap().to_string();
        assert_eq!(call(Some(ADMIN), "POST", &mint(9999), Some("")).0, 404);

        let metrics = |t: i64| format!("{base}/api/v1/trials/{t}/metrics");
        let state = |t: i64| format!("{base}/api/v1/trials/{t}/state");
        let running = Some(r#"{"phase": "Running", "attempts": 1}"#);
        // The worker writes its own trial...
        assert_eq!(
            call(Some(&token_a), "POST", &metrics(a), Some(POINT)).0,
            200
        );
        assert_eq!(call(Some(&token_a), "POST", &state(a), running).0, 200);
        assert_eq!(
            call(
                Some(&token_a),
                "GET",
                &format!("{base}/api/v1/trials/{a}"),
                None
            )
            .0,
            200
        );
        // ... and nothing else: another trial, experiments, minting.
        let (st, _, body) = call(Some(&token_a), "POST", &metrics(b), Some(POINT));
        assert_eq!(st, 403, "{body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("cannot write trial"),
            "{body}"
        );
        assert_eq!(call(Some(&token_a), "POST", &state(b), running).0, 403);
        assert_eq!(call(Some(&token_a), "POST", &exps, Some(SPEC)).0, 403);
        assert_eq!(call(Some(&token_a), "POST", &mint(a), Some("")).0, 403);
        // No token writes nothing; nothing was stored for trial b.
        assert_eq!(call(None, "POST", &metrics(b), Some(POINT)).0, 401);
        assert_eq!(call(None, "POST", &state(b), running).0, 401);
        let (_, _, hist) = call(
            None,
            "GET",
            &format!("{}?name=train/loss", metrics(b)),
            None,
        );
        assert_eq!(hist.as_array().map(Vec::len), Some(0), "{hist}");
        // A malformed header is a 401, not a 500.
        let r = ureq::post(&metrics(a))
            .set("Authorization", "Basic abc")
            .send_string(POINT);
        assert!(matches!(r, Err(ureq::Error::Status(401, _))));
        // Minting again revokes the old token.
        let (_, _, again) = call(Some(ADMIN), "POST", &mint(a), Some(""));
        assert_eq!(
            call(Some(&token_a), "POST", &metrics(a), Some(POINT)).0,
            401
        );
        let token_a2 = again["token"].as_str().unwrap();
        assert_eq!(
            call(Some(token_a2), "POST", &metrics(a), Some(POINT)).0,
            200
        );
        // The admin may write any trial.
        assert_eq!(call(Some(ADMIN), "POST", &metrics(b), Some(POINT)).0, 200);
        // Health and readiness need nothing.
        assert_eq!(call(None, "GET", &format!("{base}/healthz"), None).0, 200);
        let (st, _, ready) = call(None, "GET", &format!("{base}/readyz"), None);
        assert_eq!((st, ready.as_str()), (200, Some("ready")));
    })
    .await
    .unwrap();
}

async fn reads_follow_the_setting(db: Db) {
    // Reads behind a read token.
    let (base, _dir) = start(db, AuthConfig::new(ADMIN, Some(READER))).await;
    let (open_base, _open_dir) = start(db, AuthConfig::new(ADMIN, None)).await;
    tokio::task::spawn_blocking(move || {
        let exps = format!("{base}/api/v1/experiments");
        let (st, _, exp) = call(Some(ADMIN), "POST", &exps, Some(SPEC));
        assert_eq!(st, 201);
        let (_, _, trials) = call(
            Some(READER),
            "GET",
            &format!("{exps}/{}/trials", exp["id"]),
            None,
        );
        let a = trials[0]["id"].as_i64().unwrap();
        let b = trials[1]["id"].as_i64().unwrap();
        let (_, _, minted) = call(
            Some(ADMIN),
            "POST",
            &format!("{base}/api/v1/trials/{a}/token"),
            Some(""),
        );
        let worker = minted["token"].as_str().unwrap().to_string();

        assert_eq!(call(None, "GET", &exps, None).0, 401);
        assert_eq!(call(None, "GET", &format!("{base}/"), None).0, 401);
        assert_eq!(call(Some("guessed"), "GET", &exps, None).0, 401);
        assert_eq!(call(Some(READER), "GET", &exps, None).0, 200);
        assert_eq!(call(Some(ADMIN), "GET", &exps, None).0, 200);
        // The read token cannot write.
        assert_eq!(call(Some(READER), "POST", &exps, Some(SPEC)).0, 403);
        let metrics = format!("{base}/api/v1/trials/{a}/metrics");
        assert_eq!(call(Some(READER), "POST", &metrics, Some(POINT)).0, 403);
        // A worker reads its own trial only.
        assert_eq!(
            call(
                Some(&worker),
                "GET",
                &format!("{base}/api/v1/trials/{a}"),
                None
            )
            .0,
            200
        );
        assert_eq!(
            call(
                Some(&worker),
                "GET",
                &format!("{base}/api/v1/trials/{b}"),
                None
            )
            .0,
            403
        );
        assert_eq!(call(Some(&worker), "GET", &exps, None).0, 403);
        assert_eq!(call(None, "GET", &format!("{base}/healthz"), None).0, 200);

        // Open reads: anyone reads, nobody without a token writes.
        let exps = format!("{open_base}/api/v1/experiments");
        assert_eq!(call(None, "GET", &exps, None).0, 200);
        assert_eq!(call(None, "GET", &format!("{open_base}/"), None).0, 200);
        assert_eq!(call(None, "POST", &exps, Some(SPEC)).0, 401);
    })
    .await
    .unwrap();
}
