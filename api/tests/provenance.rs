//! A trial's provenance over real HTTP, on SQLite and PostgreSQL: its worker records it, the trial
//! reads it back; another trial's worker may not write it; a body that is not one is refused.

mod support;

use std::sync::Arc;

use orrery_api::AuthConfig;
use support::Db;

on_both_databases!(provenance_is_recorded_by_the_trials_worker);

const SPEC: &str = "apiVersion: orrery.dev/v1alpha1\nkind: Experiment\nmetadata: {name: prov}\nspec:\n  workload: stability\n  search:\n    space:\n      training.lr: {values: [1.0e-3, 1.0e-2]}\n";
const ADMIN: &str = "prov-admin-token";

async fn provenance_is_recorded_by_the_trials_worker(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store(db, dir.path()).await;
    let (addr, _) = orrery_api::spawn(
        Arc::new(store),
        AuthConfig::new(ADMIN, None),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let base = format!("http://{addr}/api/v1");
    tokio::task::spawn_blocking(move || {
        let call = |token: &str, method: &str, url: &str, body: Option<&str>| {
            let r = support::request(Some(token), method, url, body);
            (r.status, r.body)
        };
        let (st, exp) = call(ADMIN, "POST", &format!("{base}/experiments"), Some(SPEC));
        assert_eq!(st, 201, "{exp}");
        let ids = support::trial_ids(&base, ADMIN, &exp);
        let (a, b) = (ids[0], ids[1]);
        let token = |t: i64| support::worker_token(&base, ADMIN, t);
        let (ta, tb) = (token(a), token(b));
        let (_, before) = call(&ta, "GET", &format!("{base}/trials/{a}"), None);
        assert!(before["provenance"].is_null(), "{before}");
        let record = r#"{"worker_version": "0.1.0 (abc)", "libtorch_version": "2.11.0", "device": "cpu (x, 2 threads)", "config_sha256": "c0", "data_sha256": "d0", "init_from_sha256": null}"#;
        let url = format!("{base}/trials/{a}/provenance");
        assert_eq!(call(&ta, "PUT", &url, Some(record)).0, 204);
        let (_, after) = call(&ta, "GET", &format!("{base}/trials/{a}"), None);
        assert_eq!(after["provenance"]["libtorch_version"], "2.11.0", "{after}");
        assert_eq!(after["provenance"]["data_sha256"], "d0");
        assert_eq!(call(&tb, "PUT", &url, Some(record)).0, 403);
        assert_eq!(call(&ta, "PUT", &url, Some(r#"{"device": 3}"#)).0, 422);
        assert_eq!(call(ADMIN, "PUT", &format!("{base}/trials/99999/provenance"), Some(record)).0, 404);
    })
    .await
    .unwrap();
}
