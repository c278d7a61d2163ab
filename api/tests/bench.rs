//! The API's benchmarks (issue 4). `#[ignore]`d, so `cargo test` only compiles them;
//! `scripts/bench-api.sh` runs them in release mode against a SQLite file and a durable
//! PostgreSQL server, and docs/benchmarks.md reports the figures. Nothing here asserts a timing:
//! each benchmark prints what it measured, as ratios against a peer measured in the same run.
//!
//! - `ingest_throughput`: metric rows/s through the API against raw multi-row INSERTs of the same
//!   rows into the same database (the practical limit), and against an MLflow tracking server's
//!   `log_batch` when `ORRERY_BENCH_PYTHON` names a Python with `mlflow` installed;
//! - `reads_at_scale`: leaderboard pages and a 10,000-point history, p50/p95, with 100,000 trials
//!   and 10 million metric points stored.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, TransactionTrait, Value};
use support::Db;

const ADMIN: &str = "bench-admin-token";

/// A stability sweep of `lrs` learning rates × `seeds` seeds (`lrs * seeds` trials).
fn sweep(name: &str, lrs: usize, seeds: usize) -> String {
    let values: Vec<String> = (0..lrs)
        .map(|i| format!("{:e}", 1e-4 * 1.05f64.powi(i as i32)))
        .collect();
    format!(
        "apiVersion: orrery.dev/v1alpha1\nkind: Experiment\nmetadata: {{name: {name}}}\nspec:\n  \
         workload: stability\n  search:\n    seeds: {seeds}\n    space:\n      training.lr: {{values: [{}]}}\n",
        values.join(", ")
    )
}

/// Creates the sweep through the store, like any spec; returns the experiment's and trials' ids.
async fn create_sweep(
    store: &orrery_api::Store,
    name: &str,
    lrs: usize,
    seeds: usize,
) -> (i64, Vec<i64>) {
    let yaml = sweep(name, lrs, seeds);
    let exp = store
        .create_experiment(&yaml, &orrery_core::load_spec(&yaml).unwrap())
        .await
        .unwrap();
    let trials = store.trials(exp.id).await.unwrap();
    (exp.id, trials.iter().map(|t| t.id).collect())
}

fn databases() -> Vec<Db> {
    match std::env::var("ORRERY_BENCH_DB").as_deref() {
        Ok("sqlite") => vec![Db::Sqlite],
        Ok("postgres") => vec![Db::Postgres],
        _ => vec![Db::Sqlite, Db::Postgres],
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Multi-row `INSERT INTO metrics` of `rows` (trial, name, step, value, wall time), in the
/// database's own placeholder style.
fn insert_metrics(db: &DatabaseConnection, rows: &[(i64, &str, i64, f64, f64)]) -> Statement {
    let backend = db.get_database_backend();
    let postgres = backend == sea_orm::DatabaseBackend::Postgres;
    let mut sql =
        String::from("INSERT INTO metrics (trial_id, name, step, value, wall_time) VALUES ");
    let mut values: Vec<Value> = Vec::with_capacity(rows.len() * 5);
    for (i, (t, n, s, v, w)) in rows.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        if postgres {
            let b = i * 5;
            sql.push_str(&format!(
                "(${},${},${},${},${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5
            ));
        } else {
            sql.push_str("(?,?,?,?,?)");
        }
        values.extend([
            (*t).into(),
            (*n).into(),
            (*s).into(),
            (*v).into(),
            (*w).into(),
        ]);
    }
    Statement::from_sql_and_values(backend, sql, values)
}

/// A deterministic loss curve: falls from ~6 towards ~1, a little noise.
fn loss(trial: i64, step: i64) -> f64 {
    let noise = ((trial * 7919 + step * 104729) % 1000) as f64 / 1e4;
    1.0 + 5.0 / (1.0 + step as f64 / 50.0) + noise
}

struct Workload {
    trials: usize,
    points_per_trial: usize,
    batch: usize,
    clients: usize,
}

impl Workload {
    fn rows(&self) -> usize {
        self.trials * self.points_per_trial
    }
}

/// The request bodies of one trial's points, `batch` points each, two metrics interleaved.
fn bodies(trial: i64, w: &Workload) -> Vec<String> {
    let points: Vec<serde_json::Value> = (0..w.points_per_trial as i64)
        .map(|i| {
            let (name, step) = if i % 2 == 0 {
                ("train/loss", i / 2)
            } else {
                ("eval/loss", i / 2)
            };
            serde_json::json!({"name": name, "step": step, "value": loss(trial, step), "wall_time": 1.7e9 + i as f64})
        })
        .collect();
    points
        .chunks(w.batch)
        .map(|c| serde_json::json!({ "points": c }).to_string())
        .collect()
}

/// Rows/s through the API: `clients` threads, each with its own keep-alive connection, posting
/// the prepared batches of their trials.
async fn api_ingest(db: Db, w: &Workload) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(support::store(db, dir.path()).await);
    let (_, trials) = create_sweep(&store, "ingest", w.trials, 1).await;
    let (addr, _) = orrery_api::spawn(
        store.clone(),
        orrery_api::AuthConfig::new(ADMIN, None),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let work: Vec<(i64, Vec<String>)> = trials.iter().map(|&t| (t, bodies(t, w))).collect();
    let clients = w.clients;
    let elapsed = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        std::thread::scope(|s| {
            for c in 0..clients {
                let work = &work;
                s.spawn(move || {
                    let agent = ureq::agent();
                    for (t, bodies) in work.iter().skip(c).step_by(clients) {
                        let url = format!("http://{addr}/api/v1/trials/{t}/metrics");
                        for b in bodies {
                            agent
                                .post(&url)
                                .set("Authorization", &format!("Bearer {ADMIN}"))
                                .set("Content-Type", "application/json")
                                .send_string(b)
                                .unwrap();
                        }
                    }
                });
            }
        });
        started.elapsed()
    })
    .await
    .unwrap();
    let stored: u64 = {
        let mut n = 0;
        for t in &trials {
            n += store.count_points(*t).await.unwrap();
        }
        n
    };
    assert_eq!(stored as usize, w.rows(), "every row stored once");
    w.rows() as f64 / elapsed.as_secs_f64()
}

/// Rows/s of raw multi-row INSERTs of the same rows into the same schema: one statement and one
/// transaction per batch, as many concurrent connections as the API had clients. No idempotence
/// check, no summaries, no HTTP, no JSON: the practical limit of the database.
async fn raw_ingest(db: Db, w: &Workload) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store(db, dir.path()).await;
    let (_, trials) = create_sweep(&store, "raw", w.trials, 1).await;
    let conn = store.connection().clone();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..w.clients {
        let conn = conn.clone();
        let mine: Vec<i64> = trials.iter().copied().skip(c).step_by(w.clients).collect();
        let (per, batch) = (w.points_per_trial as i64, w.batch);
        tasks.push(tokio::spawn(async move {
            for t in mine {
                let rows: Vec<(i64, &str, i64, f64, f64)> = (0..per)
                    .map(|i| {
                        let name = if i % 2 == 0 {
                            "train/loss"
                        } else {
                            "eval/loss"
                        };
                        (t, name, i / 2, loss(t, i / 2), 1.7e9 + i as f64)
                    })
                    .collect();
                for chunk in rows.chunks(batch) {
                    let txn = conn.begin().await.unwrap();
                    txn.execute(insert_metrics(&conn, chunk)).await.unwrap();
                    txn.commit().await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    w.rows() as f64 / started.elapsed().as_secs_f64()
}

/// Rows/s of an MLflow tracking server (`scripts/bench/mlflow_ingest.py`), or `None` when no
/// Python with MLflow is configured.
fn mlflow_ingest(w: &Workload) -> Option<f64> {
    let python = std::env::var("ORRERY_BENCH_PYTHON").ok()?;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/bench/mlflow_ingest.py"
    );
    let out = std::process::Command::new(python)
        .arg(script)
        .args(["--trials", &w.trials.to_string()])
        .args(["--points-per-trial", &w.points_per_trial.to_string()])
        .args(["--batch", &w.batch.to_string()])
        .args(["--clients", &w.clients.to_string()])
        .output()
        .expect("the MLflow benchmark runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "mlflow_ingest.py failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = text.lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(last).expect("a JSON line");
    v["rows_per_s"].as_f64()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: scripts/bench-api.sh"]
async fn ingest_throughput() {
    let w = Workload {
        trials: env_usize("ORRERY_BENCH_TRIALS", 16),
        points_per_trial: env_usize("ORRERY_BENCH_POINTS", 20_000),
        batch: 1000,
        clients: env_usize("ORRERY_BENCH_CLIENTS", 4),
    };
    println!(
        "ingest: {} trials × {} points = {} rows, batches of {}, {} clients",
        w.trials,
        w.points_per_trial,
        w.rows(),
        w.batch,
        w.clients
    );
    let mlflow = mlflow_ingest(&w);
    match mlflow {
        Some(r) => println!("  MLflow log_batch (SQLite backend): {r:>10.0} rows/s"),
        None => println!("  MLflow: not run (set ORRERY_BENCH_PYTHON to a Python with mlflow)"),
    }
    for db in databases() {
        let raw = raw_ingest(db, &w).await;
        let api = api_ingest(db, &w).await;
        print!(
            "  {db:?}: API {api:>10.0} rows/s · raw INSERT {raw:>10.0} rows/s · API/raw {:.0} %",
            100.0 * api / raw
        );
        match mlflow {
            Some(m) => println!(" · API/MLflow {:.0}×", api / m),
            None => println!(),
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// p50 and p95 of `n` sequential GETs of `url` (after two warm-up requests).
fn latency(agent: &ureq::Agent, url: &str, n: usize) -> (Duration, Duration, usize) {
    let mut bytes = 0;
    for _ in 0..2 {
        agent.get(url).call().unwrap().into_string().unwrap();
    }
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            let body = agent.get(url).call().unwrap().into_string().unwrap();
            bytes = body.len();
            t.elapsed()
        })
        .collect();
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.95), bytes)
}

/// Seeds `trials` trials (100 LRs × seeds) and their metrics: trial 0 gets `long` steps of
/// `train/loss`, every other trial `per_trial` steps, plus a final `eval/loss`; summaries as
/// ingest would have written them. Raw INSERTs: seeding is not what is measured.
async fn seed(store: &orrery_api::Store, trials: usize, long: i64, per_trial: i64) -> (i64, i64) {
    let (exp, ids) = create_sweep(store, "scale", 100, trials / 100).await;
    let conn = store.connection();
    let backend = conn.get_database_backend();
    let mut rows: Vec<(i64, &str, i64, f64, f64)> = Vec::with_capacity(20_000);
    let mut summaries: Vec<String> = Vec::with_capacity(1000);
    let started = Instant::now();
    for (k, &t) in ids.iter().enumerate() {
        let steps = if k == 0 { long } else { per_trial };
        for s in 0..steps {
            rows.push((t, "train/loss", s, loss(t, s), 1.7e9 + s as f64));
        }
        let last = loss(t, steps - 1);
        let eval = loss(t, 10_000) + (t % 997) as f64 / 1e3;
        rows.push((t, "eval/loss", steps - 1, eval, 1.7e9));
        summaries.push(format!(
            "({t},'train/loss',{steps},0,{},{},{last},{last},{}),({t},'eval/loss',1,{},{eval},{},{eval},{eval},{eval})",
            loss(t, 0),
            steps - 1,
            loss(t, 0),
            steps - 1,
            steps - 1
        ));
        if rows.len() >= 10_000 || k + 1 == ids.len() {
            let txn = conn.begin().await.unwrap();
            for chunk in rows.chunks(1000) {
                txn.execute(insert_metrics(conn, chunk)).await.unwrap();
            }
            txn.execute(Statement::from_string(
                backend,
                format!(
                    "INSERT INTO metric_summaries (trial_id, name, count, first_step, first_value, \
                     last_step, last_value, min_value, max_value) VALUES {}",
                    summaries.join(",")
                ),
            ))
            .await
            .unwrap();
            txn.commit().await.unwrap();
            rows.clear();
            summaries.clear();
        }
        if k % 20_000 == 0 {
            println!(
                "    seeding: {k} trials, {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    // Nine in ten succeeded, one diverged; then the ranking as the store keeps it.
    let mut update = orrery_api::ranking::Sql::new(
        backend,
        "UPDATE trials SET phase = CASE WHEN trial_index % 10 = 9 THEN 'Diverged' \
         ELSE 'Succeeded' END WHERE experiment_id = ",
    );
    let e = update.bind(exp);
    update.push(&e);
    conn.execute(update.statement()).await.unwrap();
    store.rescore_experiment(exp).await.unwrap();
    // Measure the steady state, not the minutes after a bulk load: fresh planner statistics
    // (and on PostgreSQL a visibility map, so index-only scans skip the heap), as autovacuum
    // would leave them.
    let settle = if backend == sea_orm::DatabaseBackend::Postgres {
        "VACUUM ANALYZE"
    } else {
        "ANALYZE"
    };
    conn.execute_unprepared(settle).await.unwrap();
    (exp, ids[0])
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: scripts/bench-api.sh"]
async fn reads_at_scale() {
    let trials = env_usize("ORRERY_BENCH_SCALE_TRIALS", 100_000);
    let long = 10_000;
    // 10 million points in all: the long trial's, then the rest spread over the other trials
    // (each also has one eval/loss point).
    let per_trial = (10_000_000 - long - trials).div_ceil(trials - 1).max(1) as i64;
    let n = env_usize("ORRERY_BENCH_REQUESTS", 200);
    for db in databases() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(support::store(db, dir.path()).await);
        let started = Instant::now();
        let (exp, long_trial) = seed(&store, trials, long as i64, per_trial).await;
        let points = long as i64 + (trials as i64 - 1) * per_trial + trials as i64;
        println!(
            "reads, {db:?}: {trials} trials, {points} metric points (seeded in {:.0} s)",
            started.elapsed().as_secs_f64()
        );
        let (addr, _) = orrery_api::spawn(
            store.clone(),
            orrery_api::AuthConfig::new(ADMIN, None),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let base = format!("http://{addr}/api/v1");
        tokio::task::spawn_blocking(move || {
            let agent = ureq::agent();
            let cases = [
                ("leaderboard, first page of 50", format!("{base}/experiments/{exp}/leaderboard?limit=50"), n),
                ("leaderboard, page 1000 of 50", format!("{base}/experiments/{exp}/leaderboard?limit=50&offset=50000"), n / 4),
                ("leaderboard by lr, desc", format!("{base}/experiments/{exp}/leaderboard?limit=50&sort=param:training.lr&order=desc"), n / 4),
                ("leaderboard, one lr", format!("{base}/experiments/{exp}/leaderboard?limit=50&param.training.lr=1e-4"), n / 4),
                ("history, 10,000 points", format!("{base}/trials/{long_trial}/metrics?name=train/loss"), n),
                ("history, maxPoints=1000", format!("{base}/trials/{long_trial}/metrics?name=train/loss&maxPoints=1000"), n),
            ];
            for (what, url, n) in cases {
                let (p50, p95, bytes) = latency(&agent, &url, n);
                println!(
                    "  {what:<32} p50 {:>8.1} ms  p95 {:>8.1} ms  ({n} requests, {} kB)",
                    p50.as_secs_f64() * 1e3,
                    p95.as_secs_f64() * 1e3,
                    bytes / 1000
                );
            }
        })
        .await
        .unwrap();
    }
}

/// The database of the web pages' benchmark (scripts/bench-web.sh): an SQLite file at
/// `$ORRERY_WEB_BENCH_DB` with one LR sweep of `$ORRERY_BENCH_SCALE_TRIALS` trials (default
/// 10,000), seeded as `reads_at_scale` seeds them.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: scripts/bench-web.sh"]
async fn web_bench_database() {
    let path = std::env::var("ORRERY_WEB_BENCH_DB").expect("set ORRERY_WEB_BENCH_DB to a new file");
    let trials = env_usize("ORRERY_BENCH_SCALE_TRIALS", 10_000);
    let store = orrery_api::Store::open_sqlite(std::path::Path::new(&path))
        .await
        .unwrap();
    let (exp, _) = seed(&store, trials, 1_000, 100).await;
    println!("web benchmark database {path}: experiment {exp}, {trials} trials");
}
