//! The API over real HTTP against a real SQLite file and a real PostgreSQL server (each test runs on
//! both): spec submission, idempotent ingest, summaries, non-finite values, state transitions and
//! the error statuses; live events, `/metrics` and `/openapi.json`.

mod support;

use std::sync::Arc;

use serde_json::{json, Value};

use support::Db;

on_both_databases!(
    api_end_to_end,
    registration_is_idempotent_and_phases_are_reported,
    analysis_of_an_lr_sweep,
    long_history_is_downsampled_keeping_extremes,
    live_events_metrics_and_error_shape,
    concurrent_overlapping_batches_count_each_point_once,
);

const SPEC: &str = "apiVersion: orrery.dev/v1alpha1\nkind: Experiment\nmetadata: {name: api-test}\nspec:\n  workload: stability\n  search:\n    space:\n      training.lr: {values: [1.0e-3, 1.0e-2]}\n";

struct Server {
    base: String,
    _dir: tempfile::TempDir,
}

/// The admin token of the test servers; `call` sends it (access control has its own tests).
const ADMIN: &str = "test-admin-token";

async fn start(db: Db) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store(db, dir.path()).await;
    let (addr, _) = orrery_api::spawn(
        Arc::new(store),
        orrery_api::AuthConfig::new(ADMIN, None),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    Server {
        base: format!("http://{addr}"),
        _dir: dir,
    }
}

/// Submits `SPEC` (which must be accepted) and returns the experiment and its trials.
fn submit(base: &str) -> (Value, Value) {
    let (st, exp) = call("POST", &format!("{base}/api/v1/experiments"), Some(SPEC));
    assert_eq!(st, 201, "{exp}");
    let (_, trials) = call(
        "GET",
        &format!("{base}/api/v1/experiments/{}/trials", exp["id"]),
        None,
    );
    (exp, trials)
}

/// (status, body) of a request with the admin token, whatever the status.
fn call(method: &str, url: &str, body: Option<&str>) -> (u16, Value) {
    let r = support::request(Some(ADMIN), method, url, body);
    (r.status, r.body)
}

async fn api_end_to_end(db: Db) {
    let s = start(db).await;
    let base = s.base.clone();
    tokio::task::spawn_blocking(move || {
        // A bad spec: 422 with one detail per problem, nothing stored.
        let (st, body) = call(
            "POST",
            &format!("{base}/api/v1/experiments"),
            Some("apiVersion: x\nkind: Experiment\n"),
        );
        assert_eq!(st, 422, "{body}");
        assert_eq!(
            body["details"],
            json!([
                "1:1: missing required field `metadata`",
                "1:1: missing required field `spec`",
                "1:13: apiVersion: expected orrery.dev/v1alpha1, got \"x\""
            ])
        );
        let (_, list) = call("GET", &format!("{base}/api/v1/experiments"), None);
        assert_eq!(list, json!([]));

        let (st, exp) = call("POST", &format!("{base}/api/v1/experiments"), Some(SPEC));
        assert_eq!(st, 201, "{exp}");
        assert_eq!(exp["counts"]["total"], 2);
        let (_, trials) = call(
            "GET",
            &format!("{base}/api/v1/experiments/{}/trials", exp["id"]),
            None,
        );
        let tid = trials[1]["id"].as_i64().unwrap();
        assert_eq!(trials[1]["params"], json!({"training.lr": 0.01}));
        assert_eq!(trials[1]["config"]["training"]["lr"], json!(0.01));

        // Ingest twice: the second changes nothing.
        let batch = json!({"points": [
            {"name": "eval/loss", "step": 0, "value": 5.5, "wall_time": 1.0},
            {"name": "eval/loss", "step": 10, "value": 3.0, "wall_time": 2.0},
            {"name": "train/loss", "step": 10, "value": "NaN", "wall_time": 2.0},
            {"name": "grad/norm", "step": 10, "value": "Infinity", "wall_time": 2.0}
        ]})
        .to_string();
        for _ in 0..2 {
            let (st, r) = call(
                "POST",
                &format!("{base}/api/v1/trials/{tid}/metrics"),
                Some(&batch),
            );
            assert_eq!((st, r), (200, json!({"accepted": 4})));
        }
        let (_, hist) = call(
            "GET",
            &format!("{base}/api/v1/trials/{tid}/metrics?name=eval/loss"),
            None,
        );
        assert_eq!(hist.as_array().unwrap().len(), 2);
        let (_, hist) = call(
            "GET",
            &format!("{base}/api/v1/trials/{tid}/metrics?name=train/loss"),
            None,
        );
        assert_eq!(hist[0]["value"], json!("NaN"));
        let (_, hist) = call(
            "GET",
            &format!("{base}/api/v1/trials/{tid}/metrics?name=grad/norm"),
            None,
        );
        assert_eq!(hist[0]["value"], json!("Infinity"));

        // Transitions; a terminal trial cannot move again.
        let (st, _) = call(
            "POST",
            &format!("{base}/api/v1/trials/{tid}/state"),
            Some(r#"{"phase": "Succeeded"}"#),
        );
        assert_eq!(st, 200);
        let (st, body) = call(
            "POST",
            &format!("{base}/api/v1/trials/{tid}/state"),
            Some(r#"{"phase": "Running"}"#),
        );
        assert_eq!(st, 409, "{body}");
        let (st, _) = call(
            "POST",
            &format!("{base}/api/v1/trials/{tid}/state"),
            Some(r#"{"phase": "Sleeping"}"#),
        );
        assert_eq!(st, 422);
        // The state history: created, then each change (the refused ones are not in it).
        let (_, hist) = call("GET", &format!("{base}/api/v1/trials/{tid}/history"), None);
        let phases: Vec<&str> = hist
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["phase"].as_str().unwrap())
            .collect();
        assert_eq!(phases, ["Pending", "Succeeded"], "{hist}");
        let (_, sums) = call(
            "GET",
            &format!("{base}/api/v1/trials/{tid}/summaries"),
            None,
        );
        assert_eq!(sums["eval/loss"]["last"], json!(3.0), "{sums}");
        assert_eq!(sums["grad/norm"]["last"], json!("Infinity"), "{sums}");
        let (st, _) = call("GET", &format!("{base}/api/v1/trials/9999/history"), None);
        assert_eq!(st, 404);

        // The leaderboard ranks the trial with a result; summaries count each point once.
        let (_, board) = call(
            "GET",
            &format!("{base}/api/v1/experiments/{}/leaderboard", exp["id"]),
            None,
        );
        let top = &board["rows"][0];
        assert_eq!(
            (top["rank"].clone(), top["trial_id"].as_i64()),
            (json!(1), Some(tid))
        );
        assert_eq!(top["objective"], json!(3.0));
        assert_eq!(top["summaries"]["eval/loss"]["count"], json!(2));
        assert_eq!(top["summaries"]["eval/loss"]["first"], json!(5.5));
        assert_eq!(board["rows"][1]["rank"], Value::Null);

        // Errors: unknown trial, bad metric name, bad JSON.
        let (st, _) = call(
            "POST",
            &format!("{base}/api/v1/trials/9999/metrics"),
            Some(r#"{"points": []}"#),
        );
        assert_eq!(st, 404);
        let bad =
            json!({"points": [{"name": "bad name", "step": 1, "value": 1.0, "wall_time": 0.0}]})
                .to_string();
        let (st, body) = call(
            "POST",
            &format!("{base}/api/v1/trials/{tid}/metrics"),
            Some(&bad),
        );
        assert_eq!(st, 422, "{body}");
        let (st, _) = call(
            "POST",
            &format!("{base}/api/v1/trials/{tid}/metrics"),
            Some("{not json"),
        );
        assert!((400..500).contains(&st));
        let (st, page) = call("GET", &format!("{base}/experiments/{}", exp["id"]), None);
        assert_eq!(st, 200);
        assert!(page.as_str().unwrap().contains("api-test"));
        // The experiments list shows each experiment's best objective (the ranked trial's 3.0).
        let (st, list) = call("GET", &format!("{base}/"), None);
        assert_eq!(st, 200);
        assert!(
            list.as_str()
                .unwrap()
                .contains("<span class=\"num\">3.0000</span>"),
            "{list}"
        );
    })
    .await
    .unwrap();
}

/// What the operator relies on: registering the same Kubernetes object twice (a reconcile retried
/// after a crash) returns the first experiment, and executors report the experiment's phase.
async fn registration_is_idempotent_and_phases_are_reported(db: Db) {
    let s = start(db).await;
    let base = s.base.clone();
    tokio::task::spawn_blocking(move || {
        let url = format!("{base}/api/v1/experiments?externalId=uid-1");
        let (st, first) = call("POST", &url, Some(SPEC));
        assert_eq!(st, 201, "{first}");
        let (st, again) = call("POST", &url, Some(SPEC));
        assert_eq!(st, 200, "{again}");
        assert_eq!(again["id"], first["id"]);
        let (st, other) = call(
            "POST",
            &format!("{base}/api/v1/experiments?externalId=uid-2"),
            Some(SPEC),
        );
        assert_eq!(st, 201);
        assert_ne!(other["id"], first["id"]);
        let (_, list) = call("GET", &format!("{base}/api/v1/experiments"), None);
        assert_eq!(list.as_array().unwrap().len(), 2);

        let state = format!("{base}/api/v1/experiments/{}/state", first["id"]);
        let (st, body) = call(
            "POST",
            &state,
            Some(r#"{"phase": "Cancelled", "reason": "Deleted", "message": "the Experiment object was deleted"}"#),
        );
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["phase"], "Cancelled");
        assert_eq!(body["message"], "the Experiment object was deleted");
        // A finished experiment does not move again; a bad phase is a 422.
        let (st, _) = call("POST", &state, Some(r#"{"phase": "Running"}"#));
        assert_eq!(st, 409);
        let (st, _) = call("POST", &state, Some(r#"{"phase": "Sleeping"}"#));
        assert_eq!(st, 422);
        let (st, _) = call(
            "POST",
            &format!("{base}/api/v1/experiments/9999/state"),
            Some(r#"{"phase": "Running"}"#),
        );
        assert_eq!(st, 404);
    })
    .await
    .unwrap();
}

/// `GET /api/v1/experiments/{id}/analysis` computes the stability analysis from stored results.
async fn analysis_of_an_lr_sweep(db: Db) {
    let s = start(db).await;
    let base = s.base.clone();
    tokio::task::spawn_blocking(move || {
        let (_, exp) = call("POST", &format!("{base}/api/v1/experiments"), Some(SPEC));
        let id = exp["id"].as_i64().unwrap();
        let (_, trials) = call(
            "GET",
            &format!("{base}/api/v1/experiments/{id}/trials"),
            None,
        );
        // lr 1e-3 ends at 3.0, lr 1e-2 at 2.0; both start at ℓ₀ = 5.0.
        for t in trials.as_array().unwrap() {
            let tid = t["id"].as_i64().unwrap();
            let lr = t["params"]["training.lr"].as_f64().unwrap();
            let (last, logit) = if lr < 5e-3 { (3.0, 10.0) } else { (2.0, 40.0) };
            let batch = json!({"points": [
                {"name": "eval/loss", "step": 0, "value": 5.0, "wall_time": 0.0},
                {"name": "eval/loss", "step": 10, "value": last, "wall_time": 1.0},
                {"name": "attn/max_logit/L0", "step": 10, "value": logit, "wall_time": 1.0},
            ]});
            let url = format!("{base}/api/v1/trials/{tid}/metrics");
            assert_eq!(call("POST", &url, Some(&batch.to_string())).0, 200);
            let url = format!("{base}/api/v1/trials/{tid}/state");
            assert_eq!(call("POST", &url, Some(r#"{"phase": "Succeeded"}"#)).0, 200);
        }
        let (st, a) = call(
            "GET",
            &format!("{base}/api/v1/experiments/{id}/analysis"),
            None,
        );
        assert_eq!(st, 200, "{a}");
        let r = &a["lrSensitivity"][0];
        assert_eq!(r["config"], "base");
        assert!(
            (r["lr_sensitivity"].as_f64().unwrap() - 0.5).abs() < 1e-12,
            "{r}"
        );
        assert_eq!(r["best_lr"], 1e-2);
        assert_eq!(r["largest_stable_lr"], 1e-2);
        assert_eq!(r["curve"][1]["max_attn_logit"], 40.0);
        let (st, _) = call(
            "GET",
            &format!("{base}/api/v1/experiments/999/analysis"),
            None,
        );
        assert_eq!(st, 404);

        // The leaderboard as a filtered, sorted page.
        let board = |q: &str| {
            call(
                "GET",
                &format!("{base}/api/v1/experiments/{id}/leaderboard?{q}"),
                None,
            )
        };
        let (st, b) = board("");
        assert_eq!((st, b["total"].as_u64()), (200, Some(2)));
        assert_eq!(b["rows"][0]["objective"], 2.0, "best first");
        let (_, b) = board("sort=param:training.lr&order=asc&limit=1");
        assert_eq!(b["total"], 2);
        assert_eq!(b["rows"].as_array().unwrap().len(), 1);
        assert_eq!(b["rows"][0]["params"]["training.lr"], 1e-3);
        assert_eq!(b["rows"][0]["rank"], 2, "ranks stay those of the objective");
        let (_, b) = board("sort=metric:attn/max_logit/L0&order=desc&param.training.lr=0.01");
        assert_eq!(
            (b["total"].as_u64(), b["rows"][0]["objective"].as_f64()),
            (Some(1), Some(2.0))
        );
        let (_, b) = board("phase=Failed");
        assert_eq!(b["total"], 0);
        let (st, e) = board("sort=loss");
        assert_eq!(st, 400, "{e}");
        assert_eq!(board("limit=0").0, 400);
        assert_eq!(board("colour=red").0, 400);
    })
    .await
    .unwrap();
}

/// `?maxPoints=N` cuts a 10,000-point history to at most N points and keeps its spike and its
/// first and last points; without it the whole history comes back.
async fn long_history_is_downsampled_keeping_extremes(db: Db) {
    let s = start(db).await;
    let base = s.base.clone();
    tokio::task::spawn_blocking(move || {
        let (_, trials) = submit(&base);
        let tid = trials[0]["id"].as_i64().unwrap();
        let points: Vec<Value> = (0..10_000)
            .map(|i| {
                let v = if i == 6_543 { 99.0 } else { (i % 50) as f64 };
                json!({"name": "train/loss", "step": i, "value": v, "wall_time": 0.0})
            })
            .collect();
        let (st, _) = call(
            "POST",
            &format!("{base}/api/v1/trials/{tid}/metrics"),
            Some(&json!({ "points": points }).to_string()),
        );
        assert_eq!(st, 200);
        let url = format!("{base}/api/v1/trials/{tid}/metrics?name=train/loss");
        let (_, all) = call("GET", &url, None);
        assert_eq!(all.as_array().unwrap().len(), 10_000);
        let (st, few) = call("GET", &format!("{url}&maxPoints=500"), None);
        assert_eq!(st, 200);
        let few = few.as_array().unwrap();
        assert!(few.len() <= 500 && few.len() >= 400, "{}", few.len());
        assert_eq!(few[0]["step"], 0);
        assert_eq!(few[few.len() - 1]["step"], 9_999);
        assert!(few.iter().any(|p| p["value"] == 99.0), "the spike survives");
        let (st, _) = call("GET", &format!("{url}&maxPoints=lots"), None);
        assert_eq!(st, 400);
    })
    .await
    .unwrap();
}

/// The next SSE event (`event:` name and `data:` JSON) from a stream, skipping keep-alives.
fn next_event(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> (String, Value) {
    let (mut name, mut data) = (String::new(), String::new());
    for line in lines {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("event: ") {
            name = n.to_string();
        } else if let Some(d) = line.strip_prefix("data: ") {
            data.push_str(d);
        } else if line.is_empty() && !name.is_empty() {
            return (name, serde_json::from_str(&data).unwrap());
        }
    }
    panic!("the event stream ended");
}

async fn live_events_metrics_and_error_shape(db: Db) {
    use std::io::BufRead;
    let s = start(db).await;
    let base = s.base.clone();
    tokio::task::spawn_blocking(move || {
        let (_, exp) = call("POST", &format!("{base}/api/v1/experiments"), Some(SPEC));
        let (_, other) = call("POST", &format!("{base}/api/v1/experiments"), Some(SPEC));
        let (_, trials) = call(
            "GET",
            &format!("{base}/api/v1/experiments/{}/trials", exp["id"]),
            None,
        );
        let trial = trials[0]["id"].as_i64().unwrap();
        let (_, other_trials) = call(
            "GET",
            &format!("{base}/api/v1/experiments/{}/trials", other["id"]),
            None,
        );

        // A stream of one experiment's events: another experiment's changes do not reach it.
        let stream = ureq::get(&format!(
            "{base}/api/v1/experiments/{}/events",
            exp["id"]
        ))
        .call()
        .unwrap();
        assert_eq!(stream.content_type(), "text/event-stream");
        let mut lines = std::io::BufReader::new(stream.into_reader()).lines();
        let (st, _) = call(
            "POST",
            &format!("{base}/api/v1/trials/{}/state", other_trials[0]["id"]),
            Some(r#"{"phase":"Running"}"#),
        );
        assert_eq!(st, 200);
        call(
            "POST",
            &format!("{base}/api/v1/trials/{trial}/state"),
            Some(r#"{"phase":"Running"}"#),
        );
        let (name, ev) = next_event(&mut lines);
        assert_eq!(name, "trial");
        assert_eq!(
            ev,
            json!({"kind": "trial", "experiment_id": exp["id"], "trial_id": trial, "phase": "Running"})
        );
        let batch = r#"{"points":[{"name":"train/loss","step":3,"value":2.5,"wall_time":1.0},
                                  {"name":"eval/loss","step":3,"value":2.6,"wall_time":1.0}]}"#;
        call("POST", &format!("{base}/api/v1/trials/{trial}/metrics"), Some(batch));
        let (name, ev) = next_event(&mut lines);
        assert_eq!(name, "metrics");
        assert_eq!(ev["names"], json!(["eval/loss", "train/loss"]));
        assert_eq!(ev["last_step"], 3);
        // The same batch again stores nothing, so it announces nothing: the next event is the
        // experiment's phase change.
        call("POST", &format!("{base}/api/v1/trials/{trial}/metrics"), Some(batch));
        call(
            "POST",
            &format!("{base}/api/v1/experiments/{}/state", exp["id"]),
            Some(r#"{"phase":"Cancelled"}"#),
        );
        let (name, ev) = next_event(&mut lines);
        assert_eq!((name.as_str(), &ev["phase"]), ("experiment", &json!("Cancelled")));

        // /metrics: requests by route template, points ingested, the open stream.
        let text = ureq::get(&format!("{base}/metrics"))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        assert!(
            text.contains(
                "orrery_http_requests_total{method=\"POST\",route=\"/api/v1/trials/{id}/metrics\",status=\"200\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains("orrery_metric_points_ingested_total 4"), "{text}");
        assert!(text.contains("orrery_event_subscribers 1"), "{text}");

        // Errors axum writes itself come back as the JSON error body too.
        for (method, path, status) in [
            ("GET", "/api/v1/trials/abc", 400),
            ("GET", "/api/v1/experiments/1/leaderboard?limit=-1", 400),
            ("DELETE", "/api/v1/trials/1/metrics", 405),
            ("GET", "/api/v1/nothing-here", 404),
        ] {
            let (st, body) = call(method, &format!("{base}{path}"), None);
            assert_eq!(st, status, "{method} {path}: {body}");
            assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{path}: {body}");
        }

        // The OpenAPI description lists the routes the router serves.
        let (st, doc) = call("GET", &format!("{base}/openapi.json"), None);
        assert_eq!(st, 200);
        assert_eq!(doc["openapi"], "3.1.0");
        for path in [
            "/api/v1/experiments",
            "/api/v1/trials/{id}/metrics",
            "/api/v1/experiments/{id}/events",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} not described");
        }
    })
    .await
    .unwrap();
}

/// Eight writers send overlapping batches of the same trial at once (as retried workers or two API
/// replicas would): every point is stored once and the summary — merged inside the database —
/// counts each once, with the right first, last, min and max.
async fn concurrent_overlapping_batches_count_each_point_once(db: Db) {
    let s = start(db).await;
    let base = s.base.clone();
    tokio::task::spawn_blocking(move || {
        let (exp, trials) = submit(&base);
        let trial = trials[0]["id"].as_i64().unwrap();
        let url = format!("{base}/api/v1/trials/{trial}/metrics");
        // Writer w sends steps [50w, 50w + 200): each step is sent by up to four writers.
        // Value at step k: 1000 - k, except a NaN at step 7 and the lowest value at step 123.
        let value = |k: i64| match k {
            7 => json!("NaN"),
            123 => json!(-5.0),
            k => json!(1000.0 - k as f64),
        };
        std::thread::scope(|sc| {
            for w in 0..8i64 {
                let (url, value) = (&url, &value);
                sc.spawn(move || {
                    for chunk in (50 * w..50 * w + 200).collect::<Vec<_>>().chunks(40) {
                        let points: Vec<Value> = chunk
                            .iter()
                            .map(|&k| json!({"name": "eval/loss", "step": k, "value": value(k), "wall_time": 1.0}))
                            .collect();
                        let body = json!({ "points": points }).to_string();
                        let r = support::request(Some(ADMIN), "POST", url, Some(&body));
                        assert_eq!(r.status, 200, "{}", r.body);
                    }
                });
            }
        });
        let (_, board) = call(
            "GET",
            &format!("{base}/api/v1/experiments/{}/leaderboard", exp["id"]),
            None,
        );
        let row = board["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["trial_id"] == trial)
            .unwrap();
        let steps = 50 * 7 + 200; // 0..550
        assert_eq!(
            row["summaries"]["eval/loss"],
            json!({"count": steps, "first_step": 0, "first": 1000.0, "last_step": steps - 1,
                   "last": 1000.0 - (steps - 1) as f64, "min": -5.0, "max": 1000.0}),
        );
        let (_, history) = call("GET", &format!("{url}?name=eval/loss"), None);
        assert_eq!(history.as_array().unwrap().len() as i64, steps);

        // One batch, two metrics: `eval/loss` half stored already (steps 540..560, the duplicate
        // check), `train/loss` new (the append path on SQLite). Each new point counts once.
        let points: Vec<Value> = (540..560)
            .map(|k| json!({"name": "eval/loss", "step": k, "value": 1.0, "wall_time": 2.0}))
            .chain((0..10).map(|k| json!({"name": "train/loss", "step": k, "value": k, "wall_time": 2.0})))
            .collect();
        let body = json!({ "points": points }).to_string();
        let r = support::request(Some(ADMIN), "POST", &url, Some(&body));
        assert_eq!(r.status, 200, "{}", r.body);
        let (_, sums) = call("GET", &format!("{base}/api/v1/trials/{trial}/summaries"), None);
        assert_eq!(sums["eval/loss"]["count"], 560);
        assert_eq!(sums["eval/loss"]["last"], 1.0);
        assert_eq!(sums["eval/loss"]["min"], -5.0, "stored points are left as they are");
        assert_eq!(sums["train/loss"]["count"], 10);
        let (_, history) = call("GET", &format!("{url}?name=train/loss"), None);
        assert_eq!(history.as_array().unwrap().len(), 10);
    })
    .await
    .unwrap();
}
