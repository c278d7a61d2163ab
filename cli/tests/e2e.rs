//! End-to-end tests of `orrery` with real worker processes, a real SQLite file and the real API.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use orrery_api::Store;
use orrery_core::dto::Leaderboard;
use orrery_core::schedule::{ExperimentPhase, TrialPhase};

fn orrery() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_orrery"))
}

fn worker() -> PathBuf {
    let p = orrery().with_file_name("orrery-worker");
    assert!(
        p.exists(),
        "{} is missing: build the workspace (`cargo test --workspace`)",
        p.display()
    );
    p
}

fn run(args: &[&str], dir: &Path) -> Output {
    Command::new(orrery())
        .args(args)
        .current_dir(dir)
        .env("ORRERY_WORKER_BIN", worker())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn spec(name: &str, training: &str, extra: &str) -> String {
    format!(
        "apiVersion: orrery.dev/v1alpha1\nkind: Experiment\nmetadata: {{name: {name}}}\nspec:\n  workload: stability\n  model: {{preset: tiny, seq_len: 32}}\n  data: {{group_bytes: 20000}}\n  training: {{{training}}}\n{extra}"
    )
}

/// The folder of trial `i` of the first experiment run under `runs` (`runs/<id>-<stamp>/trial-<i>`);
/// `None` until the executor created it.
fn trial_dir(runs: &Path, i: usize) -> Option<PathBuf> {
    let exp = std::fs::read_dir(runs)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("1-"))
        })?;
    Some(exp.join(format!("trial-{i}")))
}

async fn open(db: &Path) -> Store {
    Store::open_sqlite(db).await.unwrap()
}

/// The steps stored for one metric of a trial, in order.
async fn stored_steps(store: &Store, trial_id: i64, name: &str) -> Vec<i64> {
    store
        .metric_history(trial_id, name)
        .await
        .unwrap()
        .iter()
        .map(|p| p.step)
        .collect()
}

/// Several processes opening one new SQLite file at once (two `orrery run`s on a fresh machine):
/// one applies the migrations, the others wait for it and find nothing to do; none fails.
#[test]
fn many_processes_open_one_new_database_at_once() {
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let children: Vec<Child> = (0..6)
            .map(|_| {
                Command::new(orrery())
                    .args(["--db", "new.db", "ls"])
                    .current_dir(dir.path())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}: {}", text(&out));
        }
    }
}

/// `model.init_from` (issue 15): `orrery run b.yaml a.yaml` runs A first, since B starts from it;
/// each B trial starts from the final weights of the A trial with its seed, which its first
/// evaluation shows (it equals that trial's last, on the same data), and its provenance records
/// their SHA-256.
#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_starts_each_trial_from_its_matching_source() {
    let dir = tempfile::tempdir().unwrap();
    let training = "steps: 20, batch_size: 8, log_every: 10, eval_every: 10, eval_batches: 2";
    let seeds = "  search:\n    space:\n      training.seed: {values: [1, 2]}\n  parallelism: 2\n";
    std::fs::write(dir.path().join("a.yaml"), spec("pretrain", training, seeds)).unwrap();
    let b = spec("finetune", "steps: 10, batch_size: 8, log_every: 10, eval_every: 10, eval_batches: 2, lr: 1.0e-3", seeds)
        .replace("  model: {preset: tiny, seq_len: 32}", "  model:\n    preset: tiny\n    seq_len: 32\n    init_from: {experiment: pretrain, match: [training.seed]}");
    std::fs::write(dir.path().join("b.yaml"), b).unwrap();
    let out = run(&["--db", "o.db", "run", "b.yaml", "a.yaml"], dir.path());
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.find("\"pretrain\"").unwrap() < t.find("\"finetune\"").unwrap(),
        "A runs first: {t}"
    );

    let store = open(&dir.path().join("o.db")).await;
    let a = store.find_experiment("pretrain").await.unwrap();
    let b = store.find_experiment("finetune").await.unwrap();
    assert_eq!(
        (a.phase, b.phase),
        (ExperimentPhase::Succeeded, ExperimentPhase::Succeeded)
    );
    let a_trials = store.trials(a.id).await.unwrap();
    for bt in store.trials(b.id).await.unwrap() {
        let source = bt.config.init_from.expect("resolved when submitted");
        assert_eq!(source.experiment_id, a.id);
        let at = a_trials
            .iter()
            .find(|t| Some(t.id) == source.trial_id)
            .expect("a trial of A");
        assert_eq!(at.config.training.seed, bt.config.training.seed);
        let a_eval = store.metric_history(at.id, "eval/loss").await.unwrap();
        let b_eval = store.metric_history(bt.id, "eval/loss").await.unwrap();
        let (a_last, b_first) = (a_eval.last().unwrap(), &b_eval[0]);
        assert_eq!((a_last.step, b_first.step), (20, 0));
        let (x, y) = (a_last.value, b_first.value);
        assert!((x - y).abs() <= 1e-5, "A's final eval {x}, B's first {y}");
        // Trained on from there, with a fresh optimizer.
        assert_ne!(b_eval.last().unwrap().value, b_first.value);
        let model = store.artifact(at.id, "model").await.unwrap().artifact;
        let prov = bt.provenance.expect("the worker reports it");
        assert_eq!(
            prov.init_from_sha256.as_deref(),
            Some(model.sha256.as_str())
        );
    }
    // A's own trials start from their own initialisation.
    assert!(a_trials.iter().all(|t| t.config.init_from.is_none()
        && t.provenance
            .as_ref()
            .is_some_and(|p| p.init_from_sha256.is_none())));
}

/// A trial whose source is still running waits, `Pending` with the reason, while another `orrery
/// run` trains the source; it starts once the source experiment finished, from its best trial, and
/// is judged as a fine-tune (its loss may rise above its start without counting as divergence).
#[tokio::test(flavor = "multi_thread")]
async fn a_trial_waits_for_a_running_source() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("s.yaml"),
        spec(
            "slow-source",
            "steps: 500, batch_size: 8, log_every: 100, eval_every: 250, eval_batches: 2",
            "",
        ),
    )
    .unwrap();
    let follower = spec("waiter", "steps: 10, batch_size: 8, log_every: 10, eval_every: 10, eval_batches: 2, lr: 1.0e-2", "").replace(
        "  model: {preset: tiny, seq_len: 32}",
        "  model:\n    preset: tiny\n    seq_len: 32\n    init_from: {experiment: slow-source, trial: best}",
    );
    std::fs::write(dir.path().join("f.yaml"), follower).unwrap();
    let mut source = start_run(dir.path());
    // The follower is submitted once the source is registered (its name must resolve): when its
    // first trial's folder appears (the database is not opened meanwhile: two processes
    // migrating one new SQLite file at once would race).
    let db = dir.path().join("o.db");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !trial_dir(&dir.path().join("runs"), 0).is_some_and(|d| d.exists()) {
        assert!(Instant::now() < deadline, "the source never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = run(
        &["--db", "o.db", "run", "f.yaml", "--workdir", "runs-f"],
        dir.path(),
    );
    let t = text(&out);
    let (status, source_log) = finish_run(&mut source);
    assert!(status.success(), "{source_log}");
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("trial 0 [] waits: waiting for experiment 1 \"slow-source\""),
        "{t}"
    );
    let store = open(&db).await;
    let src = store.find_experiment("slow-source").await.unwrap();
    let best = store.trials(src.id).await.unwrap()[0].clone();
    let w = store.find_experiment("waiter").await.unwrap();
    let wt = &store.trials(w.id).await.unwrap()[0];
    assert_eq!(wt.phase, TrialPhase::Succeeded, "{:?}", wt.message);
    let history: Vec<_> = store
        .trial_history(wt.id)
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.phase, h.message))
        .collect();
    assert!(
        history.iter().any(|(p, m)| *p == TrialPhase::Pending
            && m.as_deref().is_some_and(|m| m.contains("to finish"))),
        "the wait is in the trial's history: {history:?}"
    );
    let src_last = store
        .metric_history(best.id, "eval/loss")
        .await
        .unwrap()
        .last()
        .unwrap()
        .value;
    let first = store.metric_history(wt.id, "eval/loss").await.unwrap()[0].value;
    assert!((src_last - first).abs() <= 1e-5, "{src_last} vs {first}");
}

/// A trial whose `model.init_from` source failed fails without an attempt, with the source's
/// reason; `orrery run` of several specs stops at the first that did not succeed.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_source_fails_its_followers() {
    let dir = tempfile::tempdir().unwrap();
    let training = "steps: 10, batch_size: 8, log_every: 10, eval_every: 10, eval_batches: 2";
    let bad = spec("broken", training, "").replace(
        "  data: {group_bytes: 20000}",
        "  data: {groups: [\"file:missing.txt\"]}",
    );
    std::fs::write(dir.path().join("bad.yaml"), bad).unwrap();
    let follower = spec("follower", training, "").replace(
        "  model: {preset: tiny, seq_len: 32}",
        "  model:\n    preset: tiny\n    seq_len: 32\n    init_from: {experiment: broken, trial: best}",
    );
    std::fs::write(dir.path().join("f.yaml"), follower).unwrap();
    let out = run(&["--db", "o.db", "run", "f.yaml", "bad.yaml"], dir.path());
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("bad.yaml did not succeed; not run: f.yaml"),
        "{t}"
    );
    let out = run(&["--db", "o.db", "run", "f.yaml"], dir.path());
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    // `orrery validate` resolves a source against the database: a trial that does not exist.
    let by_id = spec("by-id", training, "").replace(
        "  model: {preset: tiny, seq_len: 32}",
        "  model:\n    preset: tiny\n    seq_len: 32\n    init_from: {trial: 99999}",
    );
    std::fs::write(dir.path().join("id.yaml"), by_id).unwrap();
    let out = run(&["--db", "o.db", "validate", "id.yaml"], dir.path());
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("id.yaml:9:24: spec.model.init_from.trial: there is no trial 99999"),
        "{t}"
    );
    let store = open(&dir.path().join("o.db")).await;
    let f = store.find_experiment("follower").await.unwrap();
    assert_eq!(f.phase, ExperimentPhase::Failed);
    let ft = &store.trials(f.id).await.unwrap()[0];
    assert_eq!((ft.phase, ft.attempts), (TrialPhase::Failed, 0));
    let why = ft.message.clone().unwrap_or_default();
    assert!(
        why.starts_with("model.init_from: experiment") && why.contains("without a ranked trial"),
        "{why}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tiny_sweep_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(
        "tiny-sweep",
        "steps: 30, batch_size: 8, log_every: 10, eval_every: 10, eval_batches: 2",
        "  search:\n    space:\n      training.lr: {values: [1.0e-3, 1.0e-2]}\n  parallelism: 2\n",
    );
    std::fs::write(dir.path().join("s.yaml"), s).unwrap();
    let out = run(&["--db", "o.db", "run", "s.yaml"], dir.path());
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("LR sensitivity per configuration"), "{t}");

    // The SQLite rows.
    let store = open(&dir.path().join("o.db")).await;
    let exp = store.find_experiment("tiny-sweep").await.unwrap();
    assert_eq!(exp.phase, ExperimentPhase::Succeeded);
    assert_eq!((exp.counts.total, exp.counts.succeeded), (2, 2));
    for tr in store.trials(exp.id).await.unwrap() {
        assert_eq!(tr.phase, TrialPhase::Succeeded);
        assert_eq!(tr.attempts, 1);
        let steps = stored_steps(&store, tr.id, "train/loss").await;
        assert_eq!(steps, vec![10, 20, 30]);
        let eval = stored_steps(&store, tr.id, "eval/loss").await;
        assert_eq!(eval, vec![0, 10, 20, 30]);
        assert_eq!(
            store
                .metric_history(tr.id, "attn/max_logit/L1")
                .await
                .unwrap()
                .len(),
            4
        );
    }

    // The leaderboard JSON.
    let out = run(
        &["--db", "o.db", "show", "tiny-sweep", "--json"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let board: Leaderboard = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(board.rows.len(), 2);
    assert_eq!(board.rows[0].rank, Some(1));
    assert_eq!(board.rows[1].rank, Some(2));
    let (a, b) = (
        board.rows[0].objective.unwrap(),
        board.rows[1].objective.unwrap(),
    );
    assert!(
        a.is_finite() && a <= b,
        "sorted by eval/loss ascending: {a} {b}"
    );
    let s = &board.rows[0].summaries["eval/loss"];
    assert_eq!((s.count, s.first_step, s.last_step), (4, 0, 30));
    assert_eq!(s.last, board.rows[0].objective);

    // The plots of the sweep: two PNGs with something drawn in them.
    let out = run(
        &["--db", "o.db", "plot", "tiny-sweep", "--out", "plots"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    for name in ["tiny-sweep-lr-loss.png", "tiny-sweep-attn-logit.png"] {
        let png = std::fs::read(dir.path().join("plots").join(name)).unwrap();
        assert_eq!(&png[1..4], b"PNG", "{name}");
        assert!(png.len() > 10_000, "{name}: {} bytes", png.len());
    }
    // An experiment that does not exist is bad input: exit 2, nothing written.
    let out = run(
        &["--db", "o.db", "plot", "no-such", "--out", "none"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(!dir.path().join("none").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_spec_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let bad = spec("bad", "steps: 0, lr: -1", "  parallelism: 0\n");
    std::fs::write(dir.path().join("bad.yaml"), bad).unwrap();

    // No database yet: none is created.
    let out = run(
        &["--db", "o.db", "run", "bad.yaml", "--workdir", "runs"],
        dir.path(),
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("bad.yaml:8:21: spec.training.steps: must be ≥ 1 (got 0)"),
        "{t}"
    );
    assert!(
        t.contains("bad.yaml:8:28: spec.training.lr: must be > 0 (got -1)"),
        "{t}"
    );
    assert!(
        t.contains("bad.yaml:9:16: spec.parallelism: must be ≥ 1 (got 0)"),
        "{t}"
    );
    assert!(
        !dir.path().join("o.db").exists(),
        "a refused spec must not create the database"
    );
    assert!(!dir.path().join("runs").exists());

    // An existing database is left exactly as it was.
    let good = spec("good", "steps: 2, batch_size: 4, eval_batches: 1", "");
    std::fs::write(dir.path().join("good.yaml"), good).unwrap();
    assert!(run(
        &["--db", "o.db", "run", "good.yaml", "--workdir", "runs"],
        dir.path()
    )
    .status
    .success());
    // The database and its write-ahead log, byte for byte.
    let snapshot = |d: &Path| -> Vec<Option<Vec<u8>>> {
        ["o.db", "o.db-wal"]
            .iter()
            .map(|f| std::fs::read(d.join(f)).ok())
            .collect()
    };
    let before = snapshot(dir.path());
    let out = run(
        &["--db", "o.db", "run", "bad.yaml", "--workdir", "runs"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(snapshot(dir.path()), before);
    let out = run(&["validate", "bad.yaml"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let store = open(&dir.path().join("o.db")).await;
    assert_eq!(store.list_experiments().await.unwrap().len(), 1);
}

/// Starts `orrery run s.yaml` in `dir` in the background (database `o.db`, trials under `runs/`).
fn start_run(dir: &Path) -> Child {
    Command::new(orrery())
        .args(["--db", "o.db", "run", "s.yaml", "--workdir", "runs"])
        .current_dir(dir)
        .env("ORRERY_WORKER_BIN", worker())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for a run started by [`start_run`]; its exit status and what it printed on stderr.
fn finish_run(child: &mut Child) -> (std::process::ExitStatus, String) {
    let status = child.wait().unwrap();
    let mut out = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    (status, out)
}

/// The pid of the worker whose ORRERY_WORKDIR lies under `root`.
fn find_worker(root: &Path) -> Option<i32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let env = String::from_utf8_lossy(&env);
        let ours = env.split('\0').any(|kv| {
            kv.strip_prefix("ORRERY_WORKDIR=")
                .is_some_and(|d| Path::new(d).starts_with(root))
        });
        let cmd = std::fs::read_to_string(entry.path().join("cmdline")).unwrap_or_default();
        if ours && cmd.contains("orrery-worker") {
            return Some(pid);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_worker_is_retried_and_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(
        "kill-me",
        "steps: 1500, batch_size: 4, log_every: 10, eval_every: 500, eval_batches: 1, checkpoint_every: 50",
        "  retry: {maxRestarts: 1}\n",
    );
    std::fs::write(dir.path().join("s.yaml"), s).unwrap();
    let runs = dir.path().join("runs");
    let mut child = start_run(dir.path());
    // Wait for the first checkpoint uploaded to the API's artifact store.
    let deadline = Instant::now() + Duration::from_secs(120);
    // Open the database once the run has migrated it and started the worker.
    while trial_dir(&runs, 0).is_none() {
        assert!(Instant::now() < deadline, "no trial folder appeared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let watch = open(&dir.path().join("o.db")).await;
    let uploaded = loop {
        let trial = watch.find_experiment("kill-me").await.ok().map(|e| e.id);
        let listed = match trial {
            Some(e) => match watch.trials(e).await.unwrap().first() {
                Some(t) => watch.artifacts(t.id).await.unwrap_or_default(),
                None => Vec::new(),
            },
            None => Vec::new(),
        };
        if let Some(a) = listed.iter().find(|a| a.name.starts_with("checkpoint-")) {
            break a.clone();
        }
        assert!(Instant::now() < deadline, "no checkpoint was uploaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let pid = find_worker(&runs).expect("the worker process");
    // SAFETY: kill(2) on the worker we found; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let (status, out) = finish_run(&mut child);
    assert!(status.success(), "{out}");
    assert!(out.contains("retrying"), "{out}");

    let store = open(&dir.path().join("o.db")).await;
    let exp = store.find_experiment("kill-me").await.unwrap();
    let tr = &store.trials(exp.id).await.unwrap()[0];
    assert_eq!(tr.phase, TrialPhase::Succeeded);
    assert_eq!(tr.attempts, 2, "one retry");
    let resumed: Vec<(i64, f64)> = store
        .metric_history(tr.id, "sys/resumed_from_step")
        .await
        .unwrap()
        .iter()
        .map(|p| (p.step, p.value))
        .collect();
    assert_eq!(resumed.len(), 2, "one start per attempt: {resumed:?}");
    assert_eq!(resumed[0], (0, 0.0));
    assert!(
        resumed[1].0 >= 50 && resumed[1].0 % 50 == 0,
        "the retry continued from a checkpoint, not from 0: {resumed:?}"
    );
    let steps = stored_steps(&store, tr.id, "train/loss").await;
    assert_eq!(
        steps,
        (1..=150).map(|i| i * 10).collect::<Vec<_>>(),
        "every logged step exactly once"
    );
    // The retry ran in a fresh folder and resumed from the uploaded checkpoint it downloaded.
    let log2 = std::fs::read_to_string(trial_dir(&runs, 0).unwrap().join("attempt-2.log")).unwrap();
    assert!(
        log2.contains("downloaded the newest checkpoint from the API"),
        "{log2}"
    );
    assert!(log2.contains("resumed from checkpoint"), "{log2}");
    assert!(
        resumed[1].0 as u64 >= uploaded.step.unwrap() as u64,
        "{resumed:?} {uploaded:?}"
    );
    // At the end: the final model and the newest 3 checkpoints (keep_checkpoints' default).
    let names: Vec<String> = store
        .artifacts(tr.id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert!(names.contains(&"model".to_string()), "{names:?}");
    let checkpoints = names
        .iter()
        .filter(|n| n.starts_with("checkpoint-"))
        .count();
    assert_eq!(checkpoints, 3, "{names:?}");
}

/// Stores the spec and mints a worker token for its first trial: what an executor does before it
/// starts a worker against `orrery serve`.
async fn first_trial_with_token(db: &Path, spec_text: &str) -> (i64, String) {
    let store = open(db).await;
    let loaded = orrery_core::load_spec(spec_text).unwrap();
    let exp = store.create_experiment(spec_text, &loaded).await.unwrap();
    let id = store.trials(exp.id).await.unwrap()[0].id;
    (id, store.mint_trial_token(id).await.unwrap())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(db: &Path, port: u16) -> Child {
    let c = Command::new(orrery())
        .args([
            "--db",
            db.to_str().unwrap(),
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
        ])
        // A configured admin token: otherwise serve writes one to .orrery/admin-token.
        .env("ORRERY_ADMIN_TOKEN", "e2e-admin-token")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the API did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn api_down_for_20s_loses_no_metric_point() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("o.db");
    let (steps, log_every, eval_every) = (3000, 10, 500);
    let text = spec("outage", &format!("steps: {steps}, batch_size: 4, log_every: {log_every}, eval_every: {eval_every}, eval_batches: 1, checkpoint_every: 0"), "");
    let (trial_id, token) = first_trial_with_token(&db, &text).await;
    let port = free_port();
    let mut api = serve(&db, port);
    let log = std::fs::File::create(dir.path().join("worker.log")).unwrap();
    let mut w = Command::new(worker())
        .env("ORRERY_API_URL", format!("http://127.0.0.1:{port}"))
        .env("ORRERY_TRIAL_ID", trial_id.to_string())
        .env("ORRERY_TOKEN", token)
        .env("ORRERY_WORKDIR", dir.path().join("w"))
        .env("ORRERY_THREADS", "1")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    // Take the API away only once the worker is streaming (its first points are stored).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let store = open(&db).await;
        if !store
            .metric_history(trial_id, "train/loss")
            .await
            .unwrap()
            .is_empty()
        {
            break;
        }
        assert!(Instant::now() < deadline, "the worker never reported");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    api.kill().unwrap();
    api.wait().unwrap();
    std::thread::sleep(Duration::from_secs(20));
    let mut api = serve(&db, port);
    let status = w.wait().unwrap();
    let log = std::fs::read_to_string(dir.path().join("worker.log")).unwrap();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("spilling"),
        "the outage was seen by the worker: {log}"
    );
    assert!(log.contains("replayed spilled metrics"), "{log}");
    api.kill().unwrap();
    api.wait().unwrap();

    let store = open(&db).await;
    let count = |name: &'static str| {
        let store = &store;
        async move { store.metric_history(trial_id, name).await.unwrap().len() }
    };
    assert_eq!(count("train/loss").await, steps / log_every);
    assert_eq!(count("out/logz_mean").await, steps / log_every + 1);
    assert_eq!(count("eval/loss").await, steps / eval_every + 1);
    let s = store.summaries(&[trial_id]).await.unwrap();
    assert_eq!(
        s[&trial_id]["train/loss"].count as usize,
        steps / log_every,
        "summaries count each point once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_cancels_running_and_pending_trials() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(
        "cancel-me",
        "steps: 100000, batch_size: 4, log_every: 10, eval_every: 1000, eval_batches: 1",
        "  search:\n    space:\n      training.lr: {values: [1.0e-4, 2.0e-4, 3.0e-4, 4.0e-4]}\n  parallelism: 2\n",
    );
    std::fs::write(dir.path().join("s.yaml"), s).unwrap();
    let runs = dir.path().join("runs");
    let mut child = start_run(dir.path());
    // Wait until both workers have logged something (they are past start-up).
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(0..2).all(|i| {
        trial_dir(&runs, i)
            .and_then(|d| d.join("attempt-1.log").metadata().ok())
            .is_some_and(|m| m.len() > 0)
    }) {
        assert!(Instant::now() < deadline, "workers did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill(2) on our own child; no memory is involved.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let (status, out) = finish_run(&mut child);
    assert_eq!(status.code(), Some(130), "{out}");
    assert!(
        find_worker(&runs).is_none(),
        "no worker outlives a cancelled run"
    );
    let store = open(&dir.path().join("o.db")).await;
    let exp = store.find_experiment("cancel-me").await.unwrap();
    assert_eq!(exp.phase, ExperimentPhase::Cancelled);
    let phases: Vec<TrialPhase> = store
        .trials(exp.id)
        .await
        .unwrap()
        .iter()
        .map(|t| t.phase)
        .collect();
    assert_eq!(phases, vec![TrialPhase::Cancelled; 4]);
}

/// The API server SIGKILLed while a client streams metric batches into it, then restarted: every
/// batch it acknowledged is stored, and the client's retries of the batch in flight (which the
/// server may or may not have committed) add no duplicate. One transaction per batch and
/// idempotent ingest on (trial, name, step) make this hold.
#[tokio::test(flavor = "multi_thread")]
async fn api_killed_mid_ingest_loses_no_acknowledged_point_and_duplicates_none() {
    use orrery_core::client::{ApiClient, ClientError};
    use orrery_core::dto::{MetricBatch, MetricPoint};

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("o.db");
    let text = spec("ingest-kill", "steps: 10", "");
    let (trial_id, token) = first_trial_with_token(&db, &text).await;
    let port = free_port();
    let mut api = serve(&db, port);

    const BATCHES: i64 = 80;
    const PER_BATCH: i64 = 250;
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let client = {
        let acked = acked.clone();
        std::thread::spawn(move || {
            let api = ApiClient::new(&format!("http://127.0.0.1:{port}"), Some(token));
            let mut retries = 0;
            for b in 0..BATCHES {
                let points: Vec<MetricPoint> = (0..PER_BATCH)
                    .flat_map(|i| {
                        let step = b * PER_BATCH + i;
                        ["kill/a", "kill/b"].map(|name| MetricPoint {
                            name: name.into(),
                            step,
                            value: step as f64,
                            wall_time: 0.0,
                        })
                    })
                    .collect();
                let batch = MetricBatch { points };
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    match api.post_metrics(trial_id, &batch) {
                        Ok(_) => break,
                        Err(ClientError::Unreachable { .. }) if Instant::now() < deadline => {
                            retries += 1;
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        Err(e) => panic!("batch {b}: {e}"),
                    }
                }
                acked.store(b + 1, std::sync::atomic::Ordering::SeqCst);
            }
            retries
        })
    };
    // Kill the server mid-stream, keep it down a moment, bring it back.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(std::sync::atomic::Ordering::SeqCst) < BATCHES / 4 {
        assert!(Instant::now() < deadline, "the client never got going");
        std::thread::sleep(Duration::from_millis(5));
    }
    api.kill().unwrap();
    api.wait().unwrap();
    let acked_before_kill = acked.load(std::sync::atomic::Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(1));
    let mut api = serve(&db, port);
    let retries = client.join().unwrap();
    api.kill().unwrap();
    api.wait().unwrap();
    assert!(
        acked_before_kill < BATCHES && retries > 0,
        "the kill landed mid-stream ({acked_before_kill} of {BATCHES} batches acknowledged, {retries} retries)"
    );

    let store = open(&db).await;
    let want: Vec<i64> = (0..BATCHES * PER_BATCH).collect();
    for name in ["kill/a", "kill/b"] {
        let steps = stored_steps(&store, trial_id, name).await;
        assert_eq!(
            steps, want,
            "{name}: every acknowledged step once, in order"
        );
    }
    let s = store.summaries(&[trial_id]).await.unwrap();
    assert_eq!(s[&trial_id]["kill/a"].count, BATCHES * PER_BATCH);
    assert_eq!(
        s[&trial_id]["kill/b"].last,
        Some((BATCHES * PER_BATCH - 1) as f64)
    );
}
