//! The local executor: carries out the scheduling core's decisions with `orrery-worker` processes.
//!
//! Each trial gets a folder `<workdir>/<experiment>/trial-<index>/` holding one log per attempt
//! (`attempt-<n>.log`) and one work folder per attempt (`attempt-<n>/`: the worker's local
//! checkpoint and metric spill file). A retry starts in a fresh folder, as a new Pod does on a
//! cluster, and resumes from the newest checkpoint its worker uploaded to the API (the worker's
//! `train::remote`): one path for both executors. Workers run in their own process group, so a
//! terminal's Ctrl-C reaches only this process, which then cancels them itself and marks their
//! trials `Cancelled`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use orrery_api::Store;
use orrery_core::dto::InitState;
use orrery_core::schedule::{
    apply, decide, on_outcome, outcome_from_exit, Action, ExperimentPhase, Gate, Outcome, Policy,
    TrialPhase, TrialState,
};

pub struct Options {
    pub api_url: String,
    pub workdir: PathBuf,
    pub worker_bin: PathBuf,
    pub device: String,
    /// libtorch threads per worker.
    pub threads: usize,
    pub policy: Policy,
    /// Set by the first Ctrl-C: stop workers gracefully (SIGTERM) and cancel the rest.
    pub cancel: Arc<AtomicBool>,
    /// Set by the second Ctrl-C: kill workers at once (SIGKILL).
    pub abort: Arc<AtomicBool>,
}

enum Event {
    Progress {
        trial: usize,
        step: u64,
        steps: u64,
        loss: Option<f64>,
    },
    Exited {
        trial: usize,
        code: Option<i32>,
        signal: Option<i32>,
    },
}

struct Running {
    /// The worker leads its own process group; `None` if it exited before its pid was read.
    pid: Option<u32>,
    bar: ProgressBar,
    cancel_sent: bool,
    kill_sent: bool,
}

/// Signals a worker's whole process group.
fn signal_group(pid: Option<u32>, sig: i32) {
    if let Some(pid) = pid.filter(|p| *p > 0) {
        // SAFETY: kill(2) on the process group of a worker we spawned; no memory is involved.
        unsafe {
            libc::kill(-(pid as i32), sig);
        }
    }
}

fn say(mp: &MultiProgress, msg: String) {
    if mp.is_hidden() {
        eprintln!("{msg}");
    } else {
        let _ = mp.println(msg);
    }
}

/// Finds `orrery-worker`: `ORRERY_WORKER_BIN`, else next to this executable.
pub fn worker_binary() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("ORRERY_WORKER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate this executable: {e}"))?;
    let candidate = exe.with_file_name("orrery-worker");
    if candidate.exists() {
        Ok(candidate)
    } else {
        Err(format!(
            "orrery-worker not found next to {}; build it (`make build`) or set ORRERY_WORKER_BIN",
            exe.display()
        ))
    }
}

/// The device `device` (`auto | cpu | cuda | cuda:N`) means here, as the worker binary sees it
/// (`orrery-worker --resolve-device`, which asks libtorch): `auto` becomes `cpu` or `cuda:0`, and a
/// CUDA device that is not visible is an error (the worker's message), before any trial starts.
/// If the worker cannot be asked at all, the device stays as given and each worker resolves it.
pub fn resolve_device(worker_bin: &Path, device: &str) -> Result<String, String> {
    let out = std::process::Command::new(worker_bin)
        .args(["--resolve-device", "--device", device])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let d = String::from_utf8_lossy(&o.stdout).trim().to_string();
            Ok(if d.is_empty() { device.to_string() } else { d })
        }
        // Exit 2: the worker refused the device (unknown, or a GPU it cannot see).
        Ok(o) if o.status.code() == Some(orrery_core::schedule::exit::BAD_CONFIG) => {
            let err = String::from_utf8_lossy(&o.stderr);
            Err(err.trim().trim_start_matches("error: ").to_string())
        }
        _ => Ok(device.to_string()),
    }
}

/// Delivers a trial's leftover spill file (points its worker could not send) straight to the store.
async fn replay_spill(store: &Store, trial_id: i64, dir: &Path) {
    let path = dir.join("metrics-spill.jsonl");
    match orrery_core::spill::read(&path) {
        Ok(points) if !points.is_empty() => match store.ingest(trial_id, &points).await {
            Ok(n) => {
                tracing::info!(trial_id, points = n, "replayed the worker's spill file");
                let _ = std::fs::remove_file(&path);
            }
            Err(e) => tracing::error!(trial_id, error = %e, "cannot replay {}", path.display()),
        },
        Ok(_) => {}
        Err(e) => tracing::error!(trial_id, error = %e, "cannot read {}", path.display()),
    }
}

/// The work folder of a trial's attempt `attempt` (fresh for each).
fn attempt_dir(trial_dir: &Path, attempt: u32) -> PathBuf {
    trial_dir.join(format!("attempt-{attempt}"))
}

fn spawn_worker(
    opts: &Options,
    trial: usize,
    trial_id: i64,
    token: &str,
    attempt: u32,
    dir: &Path,
    events: mpsc::UnboundedSender<Event>,
) -> std::io::Result<Option<u32>> {
    let work = attempt_dir(dir, attempt);
    std::fs::create_dir_all(&work)?;
    let log = std::fs::File::create(dir.join(format!("attempt-{attempt}.log")))?;
    let mut child = tokio::process::Command::new(&opts.worker_bin)
        .arg("--progress")
        .env("ORRERY_API_URL", &opts.api_url)
        .env("ORRERY_TRIAL_ID", trial_id.to_string())
        .env("ORRERY_TOKEN", token)
        .env("ORRERY_WORKDIR", &work)
        .env("ORRERY_DEVICE", &opts.device)
        .env("ORRERY_THREADS", opts.threads.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .process_group(0)
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id();
    let stdout = child.stdout.take();
    tokio::spawn(async move {
        if let Some(out) = stdout {
            let mut lines = BufReader::new(out).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if v["event"] == "progress" {
                        let _ = events.send(Event::Progress {
                            trial,
                            step: v["step"].as_u64().unwrap_or(0),
                            steps: v["steps"].as_u64().unwrap_or(0),
                            loss: v["loss"].as_f64(),
                        });
                    }
                }
            }
        }
        let status = child.wait().await;
        use std::os::unix::process::ExitStatusExt;
        let (code, signal) = match status {
            Ok(s) => (s.code(), s.signal()),
            Err(_) => (None, None),
        };
        let _ = events.send(Event::Exited {
            trial,
            code,
            signal,
        });
    });
    Ok(pid)
}

/// How often a trial that waits for its `model.init_from` source asks again.
const SOURCE_POLL: Duration = Duration::from_secs(2);

/// Runs every trial of experiment `exp_id` to a terminal state and returns the experiment's phase.
pub async fn run(
    store: Arc<Store>,
    exp_id: i64,
    opts: Options,
) -> Result<ExperimentPhase, orrery_api::StoreError> {
    let trials = store.trials(exp_id).await?;
    let ids: Vec<i64> = trials.iter().map(|t| t.id).collect();
    let labels: Vec<String> = trials
        .iter()
        .map(|t| {
            t.params
                .iter()
                .map(|(k, v)| format!("{}={v}", k.rsplit('.').next().unwrap_or(k)))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let mut states: Vec<TrialState> = trials
        .iter()
        .map(|t| TrialState {
            phase: t.phase,
            attempts: t.attempts,
        })
        .collect();
    // Unique per run, not per database id: another database's experiment 1 must not resume from
    // this one's checkpoints.
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let exp_dir = opts.workdir.join(format!("{exp_id}-{stamp}"));
    let trial_dir = |i: usize| exp_dir.join(format!("trial-{i}"));

    let mp = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
    let overall = mp.add(ProgressBar::new(states.len() as u64));
    overall.set_style(
        ProgressStyle::with_template(
            "{prefix:.bold} [{bar:30}] {pos}/{len} trials done  {elapsed_precise}  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    overall.set_prefix("experiment");
    let trial_style =
        ProgressStyle::with_template("  trial {prefix:>3} [{bar:20}] {pos:>5}/{len} steps  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());

    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let mut running: HashMap<usize, Running> = HashMap::new();
    let mut started_any = false;

    // Trials that start from another trial's weights (`model.init_from`) wait for it: closed
    // until the store says the source is ready, which it then stays (a waiting source is asked
    // again every couple of seconds).
    let mut gates: Vec<Gate> = trials
        .iter()
        .map(|t| match t.config.init_from {
            Some(_) => Gate::Waiting,
            None => Gate::Open,
        })
        .collect();
    let mut told_waiting = vec![false; states.len()];
    let mut reasons: HashMap<usize, String> = HashMap::new();
    let mut next_ask = vec![std::time::Instant::now(); states.len()];

    loop {
        let cancel = opts.cancel.load(Ordering::SeqCst);
        for i in 0..states.len() {
            if gates[i] == Gate::Open
                || states[i].phase != TrialPhase::Pending
                || std::time::Instant::now() < next_ask[i]
            {
                continue;
            }
            let status = store.init_status(ids[i]).await?;
            let message = status.message.unwrap_or_default();
            gates[i] = match status.state {
                InitState::None | InitState::Ready => Gate::Open,
                InitState::Waiting => {
                    next_ask[i] = std::time::Instant::now() + SOURCE_POLL;
                    if !told_waiting[i] {
                        told_waiting[i] = true;
                        say(&mp, format!("trial {i} [{}] waits: {message}", labels[i]));
                        store
                            .set_trial_state(ids[i], TrialPhase::Pending, None, Some(&message))
                            .await?;
                    }
                    Gate::Waiting
                }
                InitState::Failed => {
                    reasons.insert(i, message);
                    Gate::SourceFailed
                }
            };
        }
        for action in decide(&opts.policy, &states, &gates, cancel) {
            match action {
                Action::Fail { trial } => {
                    let why = reasons.remove(&trial).unwrap_or_default();
                    states[trial] = apply(states[trial], &action);
                    store
                        .set_trial_state(
                            ids[trial],
                            TrialPhase::Failed,
                            None,
                            Some(&format!("model.init_from: {why}")),
                        )
                        .await?;
                    say(
                        &mp,
                        format!(
                            "trial {trial} [{}] failed: model.init_from: {why}",
                            labels[trial]
                        ),
                    );
                    overall.inc(1);
                }
                Action::Start { trial, attempt } => {
                    let dir = trial_dir(trial);
                    // Each attempt gets a fresh worker token: it may write this trial only.
                    let token = store.mint_trial_token(ids[trial]).await?;
                    let spawned =
                        spawn_worker(&opts, trial, ids[trial], &token, attempt, &dir, tx.clone());
                    let pid = match spawned {
                        Ok(pid) => pid,
                        Err(e) => {
                            say(
                                &mp,
                                format!(
                                    "trial {trial}: cannot start {}: {e}",
                                    opts.worker_bin.display()
                                ),
                            );
                            states[trial] = apply(states[trial], &Action::Start { trial, attempt });
                            states[trial] =
                                on_outcome(&opts.policy, states[trial], &Outcome::AttemptFailed);
                            store
                                .set_trial_state(
                                    ids[trial],
                                    states[trial].phase,
                                    Some(attempt),
                                    Some(&format!("cannot start the worker: {e}")),
                                )
                                .await?;
                            if states[trial].phase.is_terminal() {
                                overall.inc(1);
                            }
                            continue;
                        }
                    };
                    if !started_any {
                        started_any = true;
                        store
                            .set_experiment_phase(exp_id, ExperimentPhase::Running, None, None)
                            .await?;
                    }
                    states[trial] = apply(states[trial], &action);
                    store
                        .set_trial_state(ids[trial], TrialPhase::Running, Some(attempt), None)
                        .await?;
                    let bar = mp.add(ProgressBar::new(0));
                    bar.set_style(trial_style.clone());
                    bar.set_prefix(trial.to_string());
                    let retry = if attempt > 1 {
                        format!(" (attempt {attempt})")
                    } else {
                        String::new()
                    };
                    bar.set_message(format!("{}{retry}", labels[trial]));
                    running.insert(
                        trial,
                        Running {
                            pid,
                            bar,
                            cancel_sent: false,
                            kill_sent: false,
                        },
                    );
                }
                Action::Cancel { trial } => {
                    if states[trial].phase == TrialPhase::Pending {
                        states[trial] = apply(states[trial], &action);
                        store
                            .set_trial_state(
                                ids[trial],
                                TrialPhase::Cancelled,
                                None,
                                Some("cancelled before it started"),
                            )
                            .await?;
                        overall.inc(1);
                    } else if let Some(r) = running.get_mut(&trial) {
                        if !r.cancel_sent {
                            r.cancel_sent = true;
                            signal_group(r.pid, libc::SIGTERM);
                        }
                        if opts.abort.load(Ordering::SeqCst) && !r.kill_sent {
                            r.kill_sent = true;
                            signal_group(r.pid, libc::SIGKILL);
                        }
                    }
                }
                Action::Finish {
                    phase,
                    reason,
                    message,
                } => {
                    overall.finish_with_message(format!("{phase}: {message}"));
                    store
                        .set_experiment_phase(exp_id, phase, Some(reason), Some(&message))
                        .await?;
                    let _ = mp.clear();
                    return Ok(phase);
                }
            }
        }

        let event = tokio::select! {
            e = rx.recv() => e,
            _ = tokio::time::sleep(Duration::from_millis(300)) => None,
        };
        match event {
            Some(Event::Progress {
                trial,
                step,
                steps,
                loss,
            }) => {
                if let Some(r) = running.get(&trial) {
                    r.bar.set_length(steps);
                    r.bar.set_position(step);
                    let loss = loss
                        .map(|l| format!("loss {l:.3}"))
                        .unwrap_or_else(|| "loss NaN".into());
                    r.bar.set_message(format!("{}  {loss}", labels[trial]));
                }
            }
            Some(Event::Exited {
                trial,
                code,
                signal,
            }) => {
                let cancelled = running.get(&trial).is_some_and(|r| r.cancel_sent);
                if let Some(r) = running.remove(&trial) {
                    r.bar.finish_and_clear();
                    mp.remove(&r.bar);
                }
                let (outcome, message) = outcome_from_exit(code, signal, cancelled);
                let before = states[trial];
                replay_spill(
                    &store,
                    ids[trial],
                    &attempt_dir(&trial_dir(trial), before.attempts),
                )
                .await;
                states[trial] = on_outcome(&opts.policy, before, &outcome);
                let phase = states[trial].phase;
                let msg = (!message.is_empty()).then_some(message.as_str());
                store
                    .set_trial_state(ids[trial], phase, Some(before.attempts), msg)
                    .await?;
                let log = trial_dir(trial).join(format!("attempt-{}.log", before.attempts));
                match phase {
                    TrialPhase::Pending => say(
                        &mp,
                        format!(
                            "trial {trial} [{}]: {message}; retrying (log: {})",
                            labels[trial],
                            log.display()
                        ),
                    ),
                    TrialPhase::Failed => say(
                        &mp,
                        format!(
                            "trial {trial} [{}] failed: {message} (log: {})",
                            labels[trial],
                            log.display()
                        ),
                    ),
                    p => say(&mp, format!("trial {trial} [{}] {p}", labels[trial])),
                }
                if phase.is_terminal() {
                    overall.inc(1);
                }
            }
            None => {}
        }
        if opts.cancel.load(Ordering::SeqCst) {
            overall.set_message("cancelling…");
        }
    }
}
