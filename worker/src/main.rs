//! `orrery-worker`: runs one trial. Started by the local executor or as a Kubernetes pod; it reads
//! its configuration from the API (or `--config`), trains, streams metrics, and exits with
//! 0 (succeeded), 3 (diverged), 2 (bad configuration) or 1 (failure).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use orrery_core::client::ApiClient;
use orrery_core::spec::TrialConfig;
use std::sync::Arc;

use orrery_worker::train::remote::Remote;
use orrery_worker::train::reporter::{Reporter, ReporterOptions};
use orrery_worker::train::{checkpoint, init_from};
use orrery_worker::train::{RunEnv, TrainError, TrialResult};
use orrery_worker::{alloc, device_name, exit, parse_device, precision, threads, workloads};

#[derive(Parser, Debug)]
#[command(name = "orrery-worker", version, about = "Runs one Orrery trial")]
struct Args {
    /// Base URL of the Orrery API, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "ORRERY_API_URL")]
    api: Option<String>,
    /// The trial to run (its configuration is read from the API).
    #[arg(long, env = "ORRERY_TRIAL_ID")]
    trial_id: Option<i64>,
    /// Bearer token for the API.
    #[arg(long, env = "ORRERY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Run this trial configuration (JSON) instead of reading it from the API.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Folder for the checkpoint and the metric spill file; a rerun here resumes.
    #[arg(long, env = "ORRERY_WORKDIR", default_value = "orrery-trial")]
    workdir: PathBuf,
    /// auto | cpu | cuda | cuda:N
    #[arg(long, env = "ORRERY_DEVICE", default_value = "auto")]
    device: String,
    /// libtorch's intra-op threads; 0: the CPUs this process may use (its affinity and cgroup CPU
    /// quota). Executors set it to the trial's share: the local executor cores / parallelism, a
    /// Pod its `resources.cpu`.
    #[arg(long, env = "ORRERY_THREADS", default_value_t = 0)]
    threads: usize,
    /// Print the device `--device` resolves to (`cpu`, `cuda:0`) and exit.
    #[arg(long)]
    resolve_device: bool,
    /// Print JSON progress lines on stdout.
    #[arg(long)]
    progress: bool,
    /// Seconds to keep retrying an unreachable API after training ends.
    #[arg(long, default_value_t = 120)]
    final_wait: u64,
}

/// Why the configuration could not be had: a bad one (exit 2, not retried) or an API that did not
/// answer (exit 1, a failed attempt that is retried).
enum ConfigError {
    Bad(String),
    Unreachable(String),
}

fn load_config(args: &Args, client: Option<&ApiClient>) -> Result<TrialConfig, ConfigError> {
    use ConfigError::{Bad, Unreachable};
    if client.is_some() && args.trial_id.is_none() {
        return Err(Bad(
            "--api needs --trial-id (or ORRERY_TRIAL_ID): metrics belong to a trial".into(),
        ));
    }
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Bad(format!("cannot read {}: {e}", path.display())))?;
        return serde_json::from_str(&text).map_err(|e| {
            Bad(format!(
                "{}: not a trial configuration: {e}",
                path.display()
            ))
        });
    }
    let (Some(client), Some(id)) = (client, args.trial_id) else {
        return Err(Bad("give --config FILE, or --api URL and --trial-id ID (or ORRERY_API_URL and ORRERY_TRIAL_ID)".into()));
    };
    // The API may still be starting (pods, restarts): retry for a while before giving up.
    let mut wait = std::time::Duration::from_millis(250);
    for _ in 0..10 {
        match client.get_trial(id) {
            Ok(t) => return Ok(t.config),
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "cannot fetch the trial yet; retrying in {wait:?}");
                std::thread::sleep(wait);
                wait = (wait * 2).min(std::time::Duration::from_secs(5));
            }
            Err(e) => return Err(Bad(e.to_string())),
        }
    }
    client.get_trial(id).map(|t| t.config).map_err(|e| {
        if e.is_transient() {
            Unreachable(e.to_string())
        } else {
            Bad(e.to_string())
        }
    })
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: the local executor writes stderr to the attempt's log
        // file, which the trial page serves as text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let device = match parse_device(&args.device) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::BAD_CONFIG as u8);
        }
    };
    if args.resolve_device {
        println!("{}", device_name(device));
        return ExitCode::SUCCESS;
    }
    let (threads, why) = threads::rule(args.threads);
    tch::set_num_threads(threads as i32);
    if !alloc::keep_freed_memory() {
        tracing::warn!("could not set the allocator to keep freed memory; steps may page-fault");
    }
    let client = args
        .api
        .as_deref()
        .map(|u| ApiClient::new(u, args.token.clone()));
    let cfg = match load_config(&args, client.as_ref()) {
        Ok(c) => c,
        Err(ConfigError::Bad(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::BAD_CONFIG as u8);
        }
        Err(ConfigError::Unreachable(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::FAILED as u8);
        }
    };
    let trial_id = args.trial_id.unwrap_or(0);
    let opts = ReporterOptions {
        final_wait: std::time::Duration::from_secs(args.final_wait),
        ..Default::default()
    };
    let reporter = Reporter::start(
        client.clone(),
        trial_id,
        args.workdir.join("metrics-spill.jsonl"),
        opts,
    );
    let (prec, _) = precision::resolve(cfg.training.precision, device);
    if device.is_cuda() {
        // fp32 products that remain (all of an fp32 trial's) may use TF32 tensor cores.
        precision::set_allow_tf32(true);
    }
    tracing::info!(
        device = device_name(device),
        precision = prec.as_str(),
        threads,
        workload = cfg.workload().as_str(),
        lr = cfg.training.lr,
        "starting trial {trial_id}: {threads} libtorch thread(s) ({why}), {} passes (training.precision {})",
        prec.as_str(),
        cfg.training.precision.as_str(),
    );
    let checkpoint_dir = args.workdir.join("checkpoint");
    // With an API, checkpoints go to its artifact store, and a start without a local checkpoint
    // (a new attempt in a fresh folder, a new Pod) resumes from the newest one there.
    let remote = match (&client, args.trial_id) {
        (Some(c), Some(id)) => Some(Arc::new(Remote::new(
            c.clone(),
            id,
            cfg.training.keep_checkpoints,
        ))),
        _ => None,
    };
    if let Some(r) = &remote {
        let file = checkpoint::path(&checkpoint_dir);
        if !file.exists() {
            if let Err(e) = r.fetch_checkpoint(&file) {
                // Starting over would redo what a checkpoint holds: fail the attempt instead,
                // and let the executor retry it.
                eprintln!("error: cannot fetch the trial's newest checkpoint: {e}");
                return ExitCode::from(exit::FAILED as u8);
            }
        }
    }
    // `model.init_from`: a fresh start (no checkpoint) downloads the source's final weights; a
    // resumed one continues from its checkpoint, and its provenance still names the source's.
    let resumed = checkpoint::path(&checkpoint_dir).exists();
    let init = match cfg.init_from {
        None => None,
        Some(_) if resumed => None,
        Some(source) => {
            match init_from::fetch(client.as_ref(), args.trial_id, &source, &args.workdir) {
                Ok(got) => got,
                Err((code, e)) => {
                    eprintln!("error: model.init_from: {e}");
                    return ExitCode::from(code as u8);
                }
            }
        }
    };
    if let (Some(c), Some(id)) = (&client, args.trial_id) {
        match orrery_worker::provenance::of(&cfg, device, threads) {
            Ok(mut p) => {
                p.init_from_sha256 = match (&init, cfg.init_from) {
                    (Some((_, sha)), _) => Some(sha.clone()),
                    (None, Some(_)) => c.init_status(id).ok().and_then(|s| s.sha256),
                    (None, None) => None,
                };
                if let Err(e) = c.set_provenance(id, &p) {
                    tracing::warn!(error = %e, "the trial's provenance was not recorded");
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(exit::BAD_CONFIG as u8);
            }
        }
    }
    let env = RunEnv {
        device,
        checkpoint_dir: Some(checkpoint_dir),
        progress: args.progress,
        span: Default::default(),
        remote,
        init_weights: init.map(|(file, _)| file),
    };
    let result = workloads::run(&cfg, &env, &reporter);
    let stats = reporter.finish();
    if stats.left_in_spill > 0 {
        tracing::warn!(
            points = stats.left_in_spill,
            "metrics left undelivered in {}",
            args.workdir.join("metrics-spill.jsonl").display()
        );
    }
    match result {
        Ok(TrialResult::Succeeded) => {
            tracing::info!(delivered = stats.delivered, "trial succeeded");
            ExitCode::from(exit::SUCCEEDED as u8)
        }
        Ok(TrialResult::Diverged(why)) => {
            tracing::warn!("trial diverged: {why}");
            ExitCode::from(exit::DIVERGED as u8)
        }
        Err(e @ (TrainError::Data(_) | TrainError::Init(_))) => {
            eprintln!("error: {e}");
            ExitCode::from(exit::BAD_CONFIG as u8)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit::FAILED as u8)
        }
    }
}
