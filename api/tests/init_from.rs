//! `model.init_from` over real HTTP, on SQLite and PostgreSQL: a spec whose source does not
//! resolve (no such experiment, no or several matching trials, another model shape) is refused
//! with 422 at its line:column, and `POST /experiments/check` says the same while storing nothing;
//! `match` and `{trial: ID}` resolve to a trial when submitted, `best` once the source experiment
//! has finished; `init-source` waits while the source runs, is ready (with the model's SHA-256)
//! once it succeeded with a model, and fails when it failed; a worker token downloads its source's
//! model and no other trial's.

mod support;

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

use orrery_api::artifacts::Limits;
use support::Db;

on_both_databases!(init_from_resolves_waits_and_scopes);

const ADMIN: &str = "init-admin-token";

/// A stability spec named `name`, sweeping `training.seed` over `seeds`, with `extra` lines under
/// `spec:` (two-space indented).
fn spec(name: &str, seeds: &str, extra: &str) -> String {
    format!(
        "apiVersion: orrery.dev/v1alpha1\nkind: Experiment\nmetadata: {{name: {name}}}\nspec:\n  workload: stability\n{extra}  search:\n    space:\n      training.seed: {{values: [{seeds}]}}\n"
    )
}

fn put_model(token: &str, url: &str, body: &[u8]) -> u16 {
    let digest = format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body))
    );
    match ureq::put(url)
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Digest", &digest)
        .send_bytes(body)
    {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(s, _)) => s,
        Err(e) => panic!("PUT {url}: {e}"),
    }
}

async fn init_from_resolves_waits_and_scopes(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store(db, dir.path()).await;
    let addr = support::serve_with_artifacts(
        store,
        ADMIN,
        dir.path(),
        Limits {
            max_bytes: 1 << 20,
            quota: None,
        },
    )
    .await;
    let base = format!("http://{addr}/api/v1");
    tokio::task::spawn_blocking(move || {
        let call = |token: &str, method: &str, url: &str, body: Option<&str>| {
            let r = support::request(Some(token), method, url, body);
            (r.status, r.body)
        };
        let post = |yaml: &str| call(ADMIN, "POST", &format!("{base}/experiments"), Some(yaml));
        let check = |yaml: &str| {
            call(
                ADMIN,
                "POST",
                &format!("{base}/experiments/check"),
                Some(yaml),
            )
        };
        let trials = |exp: &Value| support::trial_ids(&base, ADMIN, exp);
        let token = |t: i64| support::worker_token(&base, ADMIN, t);
        let state = |t: i64, phase: &str| {
            let body = format!(
                r#"{{"phase": "{phase}", "attempts": 1, "message": "{phase} on purpose"}}"#
            );
            let (st, m) = call(
                ADMIN,
                "POST",
                &format!("{base}/trials/{t}/state"),
                Some(&body),
            );
            assert_eq!(st, 200, "{m}");
        };
        let init = |t: i64| {
            call(
                ADMIN,
                "GET",
                &format!("{base}/trials/{t}/init-source"),
                None,
            )
            .1
        };
        let experiments = || {
            call(ADMIN, "GET", &format!("{base}/experiments"), None)
                .1
                .as_array()
                .unwrap()
                .len()
        };

        // The source: two seeds; and a second experiment whose trials share seed 1.
        let (st, a) = post(&spec("pretrain", "1, 2", ""));
        assert_eq!(st, 201, "{a}");
        let a_trials = trials(&a);
        let (st, dup) = post(&spec("twins", "1, 1", ""));
        assert_eq!(st, 201, "{dup}");

        // Refusals, at the line:column of the value that does not resolve; nothing stored.
        let before = experiments();
        let refused = |yaml: &str, want: &str| {
            for (st, body) in [check(yaml), post(yaml)] {
                assert_eq!(st, 422, "{body}");
                let msg = body["error"].as_str().unwrap();
                assert!(msg.contains(want), "{msg}\nlacks {want}");
            }
        };
        let from = |source: &str| format!("  model:\n    init_from: {source}\n");
        refused(
            &spec(
                "ft",
                "1",
                &from("{experiment: pretrian, match: [training.seed]}"),
            ),
            "7:29: spec.model.init_from.experiment: there is no experiment \"pretrian\"",
        );
        refused(
            &spec(
                "ft",
                "3",
                &from("{experiment: pretrain, match: [training.seed]}"),
            ),
            "7:46: spec.model.init_from.match: no trial of experiment",
        );
        refused(
            &spec(
                "ft",
                "1",
                &from("{experiment: twins, match: [training.seed]}"),
            ),
            "2 trials of experiment",
        );
        refused(
            &spec(
                "ft",
                "1",
                &format!(
                    "{}    d_model: 32\n",
                    from("{experiment: pretrain, trial: best}")
                ),
            ),
            "spec.model.init_from.experiment: the model of trial",
        );
        refused(
            &spec("ft", "1", &from("{trial: 99999}")),
            "7:24: spec.model.init_from.trial: there is no trial 99999",
        );
        assert_eq!(experiments(), before, "a refused spec stored something");

        // `match` resolves per trial when submitted; `check` agrees and stores nothing.
        let b_spec = spec(
            "finetune",
            "2, 1",
            &from("{experiment: pretrain, match: [training.seed]}"),
        );
        assert_eq!(check(&b_spec), (200, serde_json::json!({"trials": 2})));
        assert_eq!(experiments(), before);
        let (st, b) = post(&b_spec);
        assert_eq!(st, 201, "{b}");
        let b_trials = trials(&b);
        let (_, b0) = call(
            ADMIN,
            "GET",
            &format!("{base}/trials/{}", b_trials[0]),
            None,
        );
        assert_eq!(
            b0["config"]["init_from"],
            serde_json::json!({"experiment_id": a["id"], "trial_id": a_trials[1]})
        );

        // While the source runs, the trial waits.
        let s = init(b_trials[0]);
        assert_eq!(s["state"], "waiting", "{s}");
        assert!(s["message"].as_str().unwrap().contains("Pending"), "{s}");
        state(a_trials[1], "Running");
        assert_eq!(init(b_trials[0])["state"], "waiting");
        // Succeeded without a model: the trial cannot start from it.
        state(a_trials[1], "Succeeded");
        let s = init(b_trials[0]);
        assert_eq!(s["state"], "failed", "{s}");
        assert!(
            s["message"]
                .as_str()
                .unwrap()
                .contains("no `model` artifact"),
            "{s}"
        );
        // With its model stored: ready, with the model's SHA-256.
        let weights = b"pretend these are weights";
        let ta = token(a_trials[1]);
        let model_url = format!("{base}/trials/{}/artifacts/model", a_trials[1]);
        assert_eq!(put_model(&ta, &model_url, weights), 201);
        let s = init(b_trials[0]);
        assert_eq!(s["state"], "ready", "{s}");
        assert_eq!(s["source_trial_id"], a_trials[1]);
        assert_eq!(
            s["sha256"].as_str().unwrap(),
            format!("{:x}", Sha256::digest(weights))
        );

        // B's worker downloads its source's model; not that of a trial it does not start from.
        let tb = token(b_trials[0]);
        let r = support::request(Some(&tb), "GET", &model_url, None);
        assert_eq!(r.status, 200, "{}", r.body);
        let ta0 = token(a_trials[0]);
        let other = format!("{base}/trials/{}/artifacts/model", a_trials[0]);
        assert_eq!(put_model(&ta0, &other, b"other weights"), 201);
        assert_eq!(support::request(Some(&tb), "GET", &other, None).status, 403);
        // Nor may it write the source's.
        assert_eq!(put_model(&tb, &model_url, b"overwritten"), 403);

        // A source that failed fails its followers, with its reason.
        state(a_trials[0], "Failed");
        let s = init(b_trials[1]);
        assert_eq!(s["state"], "failed", "{s}");
        assert!(
            s["message"]
                .as_str()
                .unwrap()
                .contains("Failed: Failed on purpose"),
            "{s}"
        );

        // `best`: known once the source experiment has finished.
        let (st, c) = post(&spec(
            "best-ft",
            "7",
            &from("{experiment: pretrain, trial: best}"),
        ));
        assert_eq!(st, 201, "{c}");
        let c0 = trials(&c)[0];
        let s = init(c0);
        assert_eq!(s["state"], "waiting", "{s}");
        assert!(s["source_trial_id"].is_null());
        // Ranked: it has an objective value.
        let point =
            r#"{"points": [{"name": "eval/loss", "step": 10, "value": 2.5, "wall_time": 0.0}]}"#;
        let (st, m) = call(
            &ta,
            "POST",
            &format!("{base}/trials/{}/metrics", a_trials[1]),
            Some(point),
        );
        assert_eq!(st, 200, "{m}");
        let finish = r#"{"phase": "Succeeded", "reason": "AllTrialsDone", "message": "done"}"#;
        let (st, m) = call(
            ADMIN,
            "POST",
            &format!("{base}/experiments/{}/state", a["id"]),
            Some(finish),
        );
        assert_eq!(st, 200, "{m}");
        let s = init(c0);
        // The only ranked trial of `pretrain` (the other failed) is the source; it has a model.
        assert_eq!(s["state"], "ready", "{s}");
        assert_eq!(s["source_trial_id"], a_trials[1]);

        // `{trial: ID}` names the source directly; a trial without init_from has none.
        let (st, d) = post(&spec(
            "by-id",
            "1",
            &from(&format!("{{trial: {}}}", a_trials[1])),
        ));
        assert_eq!(st, 201, "{d}");
        assert_eq!(init(trials(&d)[0])["state"], "ready");
        assert_eq!(init(a_trials[0])["state"], "none");

        // A source deleted meanwhile fails its followers (it does not break their executors).
        let (st, m) = call(
            ADMIN,
            "DELETE",
            &format!("{base}/experiments/{}", a["id"]),
            None,
        );
        assert_eq!(st, 204, "{m}");
        let s = init(c0);
        assert_eq!(s["state"], "failed", "{s}");
        assert!(
            s["message"].as_str().unwrap().contains("no longer exists"),
            "{s}"
        );
        let s = init(trials(&d)[0]);
        assert_eq!(s["state"], "failed", "{s}");
    })
    .await
    .unwrap();
}
